// The AMX-INT8 sub-tier (kernels/x86/amx_int.hpp) against the scalar oracle, bit for bit, over
// the edge-case menu: tokens that fill no tile / one / several (paired and unpaired token
// blocks), K below and across the 64-input tile K, ragged and odd groups, groups longer than a
// chunk (C tiles carried through scratch), N not a multiple of the 32-column tile, bias and
// LoRC. Runs only where the CPU has AMX and the OS granted tile data (qemu cannot run AMX):
// the log says that it ran, or why it was skipped, never a silent pass.
#include <catch2/catch.hpp>

#include <cstdlib>
#include <string>

#include "lowbit/gemm.hpp"
#include "lowbit/kernels/reference.hpp"
#include "test_gemm_support.hpp"

// One namespace per test file, so that any set of test files can be compiled as one
// unity translation unit (tests/CMakeLists.txt) without their file-local names clashing.
namespace test_gemm_amx_cpp {

using namespace lowbit;
using lowbit::test::int_matrix_recipe;

namespace {

bool amx_here() {
  const bool ok = detail::subtier_supported(isa_subtier::amx, host_cpu_features());
  if (!ok) {
    const cpu_features& f = host_cpu_features();
    WARN("SKIPPED: AMX tests need AMX-INT8 and OS tile permission (cpu amx_int8=" << f.amx_int8
         << ", permitted=" << f.amx_permitted << ")");
  }
  return ok;
}

std::int64_t count_mismatches(const RowMatrixXf& want, const RowMatrixXf& got) {
  std::int64_t bad = 0;
  for (std::int64_t i = 0; i < want.rows(); ++i)
    for (std::int64_t j = 0; j < want.cols(); ++j)
      if (!(want(i, j) == got(i, j))) {
        if (bad == 0) UNSCOPED_INFO("first mismatch at (" << i << ", " << j << "): " << want(i, j) << " vs " << got(i, j));
        ++bad;
      }
  return bad;
}

struct amx_case {
  element_format format;
  std::int64_t group;  // 0: per channel
  bool m2;
  gemm_scheme scheme;
};

}  // namespace

TEST_CASE("AMX-INT8 matches the scalar reference bit for bit", "[gemm][amx]") {
  if (!amx_here()) return;
  const amx_case cases[] = {
      {element_format::int8, 0, false, gemm_scheme::w8a8_int8},
      {element_format::int8, 100, false, gemm_scheme::w8a8_int8},   // ragged: 100, 72
      {element_format::int4, 0, false, gemm_scheme::w4a8_int4},
      {element_format::int4, 32, false, gemm_scheme::w4a8_int4},    // groups below one tile K
      {element_format::int4, 128, false, gemm_scheme::w4a8_int4},
      {element_format::int4, 1024, false, gemm_scheme::w4a8_int4},  // longer than a chunk
      {element_format::int4, 48, true, gemm_scheme::w4a8_int4_m2},  // odd group, M2
      {element_format::int4, 128, true, gemm_scheme::w4a8_int4_m2},
  };
  const std::int64_t tokens[] = {1, 2, 3, 7, 16, 33, 65, 150};  // 65: a ragged tile row in one super-block; 150: two 128-token super-blocks, the second ragged
  const std::int64_t ks[] = {1, 2, 31, 32, 33, 172, 4096};
  std::uint32_t seed = 500;
  std::int64_t runs = 0;
  for (const amx_case& c : cases)
    for (std::int64_t k : ks) {
      int_matrix_recipe r;
      r.rows = k == 4096 ? 70 : 37;  // not tile multiples
      r.cols = k;
      r.format = c.format;
      r.group = c.group;
      r.m2 = c.m2;
      r.code_lo = c.format == element_format::int8 ? -127 : -8;
      r.code_hi = c.format == element_format::int8 ? 127 : 7;
      r.seed = ++seed;
      const QuantizedMatrix q = lowbit::test::make_int_matrix(r);
      PackOptions po;
      po.subtier = isa_subtier::amx;
      const PackedWeights w = pack(q, po);
      REQUIRE(w.scheme() == c.scheme);
      REQUIRE(std::string(selected_kernel(w)).size() > 4);
      CHECK(std::string(selected_kernel(w)).substr(std::string(selected_kernel(w)).size() - 4) == "_amx");
      for (std::int64_t m : tokens) {
        const RowMatrixXf x = lowbit::test::random_activations(m, k, ++seed);
        const RowMatrixXf want = detail::reference_gemm_int(q, detail::reference_quantize_int8(x), c.scheme);
        RowMatrixXf y(m, r.rows);
        GemmOptions o;
        o.num_threads = 1 + static_cast<int>(m % 2);  // tile state is per thread: run on workers too
        gemm(x, w, y, o);
        INFO(selected_kernel(w) << " m=" << m << " n=" << r.rows << " k=" << k);
        CHECK(count_mismatches(want, y) == 0);
        ++runs;
      }
    }
  WARN("AMX-INT8 tests RAN: " << runs << " bit-exact comparisons against the scalar reference");
}

TEST_CASE("AMX-INT8 with bias, LoRC and many tokens", "[gemm][amx]") {
  if (!amx_here()) return;
  const std::int64_t n = 45, k = 300, rank = 3;
  for (element_format fmt : {element_format::int8, element_format::int4}) {
    int_matrix_recipe r;
    r.rows = n;
    r.cols = k;
    r.format = fmt;
    r.group = fmt == element_format::int4 ? 64 : 0;
    const QuantizedMatrix q = lowbit::test::make_int_matrix(r);
    PackOptions po;
    po.subtier = isa_subtier::amx;
    const PackedWeights w = pack(q, po);
    PackOptions ps;
    ps.subtier = isa_subtier::scalar;
    const PackedWeights ws = pack(q, ps);
    const Eigen::VectorXf bias = Eigen::VectorXf::LinSpaced(n, -1.0f, 2.0f);
    const RowMatrixXf u = RowMatrixXf::Random(n, rank) * 0.1f, v = RowMatrixXf::Random(rank, k) * 0.1f;
    for (std::int64_t m : {5, 64, 129}) {
      const RowMatrixXf x = lowbit::test::random_activations(m, k, static_cast<std::uint32_t>(m));
      for (int use_bias = 0; use_bias < 2; ++use_bias)
        for (int use_lorc = 0; use_lorc < 2; ++use_lorc) {
          INFO(selected_kernel(w) << " m=" << m << " bias=" << use_bias << " lorc=" << use_lorc);
          GemmOptions o;
          o.num_threads = 2;
          if (use_bias) o.bias = &bias;
          if (use_lorc) {
            o.lorc_u = &u;
            o.lorc_v = &v;
          }
          RowMatrixXf y(m, n), want(m, n);
          gemm(x, w, y, o);
          gemm(x, ws, want, o);  // the scalar tier: the same epilogue terms in the same order
          CHECK(count_mismatches(want, y) == 0);
        }
    }
  }
}

TEST_CASE("AMX refusal and AMX weights on a host without AMX", "[gemm][amx]") {
  // A kernel that refuses tile data: the permission request reports false (and logs why), so
  // best_subtier() falls back to the AVX-512 tier. LOWBIT_AMX_DENY simulates the refusal.
  cpu_features f = host_cpu_features();
  f.amx_tile = f.amx_int8 = true;
  ::setenv("LOWBIT_AMX_DENY", "1", 1);
  CHECK_FALSE(detail::request_amx_permission(f));
  ::unsetenv("LOWBIT_AMX_DENY");
  f.amx_permitted = false;
  f.avx512f = f.avx512bw = f.avx512vl = f.avx512dq = f.avx2 = f.fma = f.f16c = f.avx512vnni = true;
  CHECK(detail::best_subtier(f) == isa_subtier::avx512vnni);
  f.amx_permitted = true;
  CHECK(detail::best_subtier(f) == isa_subtier::amx);

  // Weights recorded as AMX-packed on a host that cannot run AMX: "pack them again".
  if (detail::subtier_supported(isa_subtier::amx, host_cpu_features())) return;
  if (!detail::tier_supported(isa_tier::avx512, host_cpu_features())) return;
  int_matrix_recipe r;
  r.rows = 40;
  r.cols = 64;
  const QuantizedMatrix q = lowbit::test::make_int_matrix(r);
  PackOptions po;
  po.tier = isa_tier::avx512;
  PackedWeights w = pack(q, po);
  w.int_weights_mutable().subtier = isa_subtier::amx;
  w.int_weights_mutable().k_align = 64;
  const RowMatrixXf x = lowbit::test::random_activations(2, 64, 4);
  RowMatrixXf y(2, 40);
  CHECK_THROWS_WITH(gemm(x, w, y), Catch::Contains("pack them again"));
}
}  // namespace test_gemm_amx_cpp
