// The AMX-BF16 records of the float-decoding family (kernels/x86/amx_float.hpp) against the
// scalar float reference (kernels/float_reference.hpp) within the family's tolerance
// (float_layout.hpp), over the edge-case menu: tokens below, at and across the 16-row A tile
// and the few-token cut (1..128), N not a multiple of the 32-column block, K below / not a
// multiple of the 32-k tile, groups of 32, 128, 48 (not a tile multiple), 17 (odd), ragged last groups and
// per channel; every scheme and fp32 / fp16 / bf16 activations (fp32: the hi + lo split).
// The same kernel with a scalar model of the tiles runs on any AVX-512 CPU, so the staging, the
// bf16 parts and the epilogue are tested here too; the tiles themselves only where the CPU has
// AMX-BF16 and the OS granted tile data: the log says that they ran, or why not. The AVX-512
// records' VDPBF16PS engine of the same tiles runs wherever the CPU has AVX512-BF16 (forced on
// where it would not be chosen), with the same report.
#include <catch2/catch.hpp>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <cstdlib>
#include <iterator>
#include <limits>
#include <random>
#include <string>
#include <vector>

#include "lowbit/gemm.hpp"
#include "lowbit/kernels/float_reference.hpp"
#include "lowbit/kernels/registry.hpp"
#include "test_gemm_support.hpp"

// One namespace per test file, so that any set of test files can be compiled as one
// unity translation unit (tests/CMakeLists.txt) without their file-local names clashing.
namespace test_gemm_amx_bf16_cpp {

using namespace lowbit;

namespace {

struct scheme_case {
  gemm_scheme scheme;
  element_format format;
  bool symmetric;
  bool offset = false;
};

const scheme_case amx_cases[] = {
    {gemm_scheme::w8a8_fp8, element_format::float8_e4m3fn, true},
    {gemm_scheme::w4a8_fp4, element_format::float4_e2m1fn, true},
    {gemm_scheme::w4a16_int4, element_format::int4, true},
    {gemm_scheme::w4a16_int4, element_format::int4, false},        // zero points
    {gemm_scheme::w4a16_int4, element_format::int4, false, true},  // float offsets
    {gemm_scheme::w4a16_fp4, element_format::float4_e2m1fn, true},
    {gemm_scheme::w8a16_int8, element_format::int8, true},
};

bool amx_bf16_here() {
  const cpu_features& f = host_cpu_features();
  const bool ok = detail::subtier_supported(isa_subtier::amx, f) &&
                  detail::features_cover(detail::features_of(f), detail::float_amx_needs());
  if (!ok)
    WARN("AMX-BF16 tests SKIPPED: they need AMX-BF16 and OS tile permission (cpu amx_bf16="
         << f.amx_bf16 << ", amx_tile=" << f.amx_tile << ", permitted=" << f.amx_permitted << ")");
  return ok;
}

bool avx512_here() {
  const bool ok = detail::tier_supported(isa_tier::avx512, host_cpu_features());
  if (!ok) WARN("AMX-BF16 tile-model tests SKIPPED: they need AVX-512");
  return ok;
}

QuantizedMatrix random_matrix(const scheme_case& sc, std::int64_t rows, std::int64_t cols, std::int64_t group,
                              std::uint32_t seed) {
  return lowbit::test::random_float_family_matrix(sc.format, sc.symmetric, rows, cols, group, seed, true, sc.offset);
}

RowMatrixXf random_x(std::int64_t tokens, std::int64_t cols, std::uint32_t seed) {
  std::mt19937 rng(seed);
  std::normal_distribution<float> d(0.0f, 1.0f);
  RowMatrixXf x(tokens, cols);
  for (std::int64_t t = 0; t < tokens; ++t)
    for (std::int64_t c = 0; c < cols; ++c) x(t, c) = d(rng) * (c % 17 == 3 ? 20.0f : 1.0f);
  if (tokens > 2) x.row(1).setZero();  // amax 0: scale 0 (A8), 2^e = 1
  if (tokens > 3) x.row(2) *= 1e-20f;  // tiny rows: the per-token 2^e keeps them off bf16 subnormals
  return x;
}

using lowbit::test::worst_ratio;
RowMatrixXf tolerance(const QuantizedMatrix& q, gemm_scheme scheme, const RowMatrixXf& x) {
  return lowbit::test::float_family_tolerances(q, scheme, x);
}

// The menu: (K, group) pairs, 0 = per channel.
struct shape_case {
  std::int64_t k, group;
};
const shape_case amx_shapes[] = {
    {31, 0},     // K below one tile, per channel
    {33, 32},    // one full group, one group of 1
    {100, 48},   // groups not a tile multiple; ragged last (4)
    {70, 17},    // odd groups: a group ends inside a 4-k-row decode step (its other rows are
                 // the next group's and must stage as zeros); ragged last (2)
    {300, 128},  // ragged last group (44)
    {300, 0},    // per channel, K not a multiple of 32
    {1024, 32},  // many groups: several epilogue batches
    {1100, 0},   // a group longer than a chunk (C carried between chunks), ragged K
};
const std::int64_t amx_tokens[] = {1, 2, 4, 5, 15, 16, 17, 33, 128};

enum class input_kind { f32, f16, bf16 };

// x as the call sees it (fp16 / bf16 values widened exactly) and y from gemm().
RowMatrixXf run_gemm(const PackedWeights& w, const RowMatrixXf& x, input_kind in, RowMatrixXf& seen, int threads) {
  RowMatrixXf y(x.rows(), w.rows());
  GemmOptions o;
  o.num_threads = threads;
  if (in == input_kind::f16) {
    const RowMatrixXh xh = x.cast<Eigen::half>();
    seen = xh.cast<float>();
    gemm(xh, w, y, o);
  } else if (in == input_kind::bf16) {
    const RowMatrixXbf16 xb = x.cast<Eigen::bfloat16>();
    seen = xb.cast<float>();
    gemm(xb, w, y, o);
  } else {
    seen = x;
    gemm(x, w, y, o);
  }
  return y;
}

const char* input_name(input_kind in) { return in == input_kind::f16 ? "f16" : in == input_kind::bf16 ? "bf16" : "f32"; }

}  // namespace

TEST_CASE("AMX-BF16 float kernels match the scalar float reference", "[gemm][amx_bf16]") {
  if (!amx_bf16_here()) return;
  std::uint32_t seed = 900;
  std::int64_t runs = 0;
  for (const scheme_case& sc : amx_cases)
    for (const shape_case& sh : amx_shapes) {
      const std::int64_t n = sh.k >= 1024 ? 70 : 45;  // ragged last 32-column block
      const std::int64_t group = sh.group == 0 ? sh.k : sh.group;
      const QuantizedMatrix q = random_matrix(sc, n, sh.k, group, ++seed);
      PackOptions po;
      po.subtier = isa_subtier::amx;
      po.scheme = sc.scheme;
      const PackedWeights w = pack(q, po);
      REQUIRE(w.scheme() == sc.scheme);
      const std::string name(selected_kernel(w));
      INFO(name);
      REQUIRE(name.size() > 4);
      CHECK(name.substr(name.size() - 4) == "_amx");
      CHECK(w.float_weights().amx_bf16);
      for (std::int64_t m : amx_tokens) {
        const RowMatrixXf x = random_x(m, sh.k, ++seed);
        // gemm() hands 16-bit rows to the tiles as they are exactly when the family rule says
        // so: weight-only schemes on more than 4 tokens (the A8 ones quantize fp32 rows).
        CHECK(w.kernel()->ops->reads_16bit(w.header(), m, activation_dtype::bf16) ==
              (m > detail::amx_float_min_tokens && !detail::scheme_quantizes_activations(sc.scheme)));
        for (input_kind in : {input_kind::f32, input_kind::f16, input_kind::bf16}) {
          RowMatrixXf seen;
          const RowMatrixXf y = run_gemm(w, x, in, seen, 1 + static_cast<int>(m % 2));  // workers too
          const RowMatrixXf ref = detail::float_reference_gemm(q, sc.scheme, seen);
          INFO(name << " m=" << m << " n=" << n << " k=" << sh.k << " input=" << input_name(in));
          CHECK(worst_ratio(y, ref, tolerance(q, sc.scheme, seen)) <= 1.0);
          ++runs;
        }
      }
    }
  WARN("AMX-BF16 tests RAN: " << runs << " comparisons against the scalar float reference");
}

// The tile model is x86 code (the kernel's staging and epilogue are AVX-512): AArch64 builds
// compile neither it nor these two cases.
#if LOWBIT_HAVE_X86_SIMD
namespace {

// A scalar model of the tiles (the policy of detail::amx_float_tiles_t): TDPBF16PS as its
// pseudocode states it (per C element, the k pairs in order, each pair's two exact products
// added one after the other in fp32), in plain C++, in amx_bf16_chunk's order (per k-block
// the hi part, then the lo part): lets the staging, the bf16 parts and the epilogue run, and
// be tested, on CPUs without AMX. Not a fast path.
struct amx_bf16_model {
  static void begin() {}
  static void end() {}
  static float bf16_value(std::uint16_t h) noexcept {
    const std::uint32_t u = static_cast<std::uint32_t>(h) << 16;
    float v;
    std::memcpy(&v, &u, 4);
    return (u & 0x7F800000u) == 0 ? 0.0f * v : v;  // bf16 subnormals read as zero, as the tiles do
  }
  static void chunk(bool pair, const std::uint16_t* a, const std::uint16_t* alo, std::int64_t a_stride,
                    const std::uint16_t* b, std::int64_t nb, bool first, const float* csave, float* cdst,
                    std::int64_t /*rows: all 16 or 32 are modelled*/) {
    const std::int64_t as = a_stride / 2;
    for (int tb = 0; tb < (pair ? 2 : 1); ++tb)
      for (int v = 0; v < 2; ++v) {
        float c[16][16];
        for (int m = 0; m < 16; ++m)
          for (int n = 0; n < 16; ++n)
            c[m][n] = first ? 0.0f : csave[tb * detail::amx_float_tile_elems + m * 32 + v * 16 + n];
        // Tiles widened to fp32 once each (not per product: the tests run this model
        // unoptimised under the sanitizers too), then the products in TDPBF16PS's order.
        float bf[16 * 32], af[32];
        for (std::int64_t kb = 0; kb < nb; ++kb) {
          const std::uint16_t* bt = b + (2 * kb + v) * detail::amx_float_tile_elems;
          for (int i = 0; i < 16 * 32; ++i) bf[i] = bf16_value(bt[i]);
          for (const std::uint16_t* part : {a, alo}) {
            if (part == nullptr) continue;
            for (int m = 0; m < 16; ++m) {
              const std::uint16_t* ar = part + (tb * 16 + m) * as + kb * detail::amx_float_k_block;
              for (int i = 0; i < 32; ++i) af[i] = bf16_value(ar[i]);
              float* cm = c[m];
              for (int kp = 0; kp < 16; ++kp) {
                const float a0 = af[2 * kp], a1 = af[2 * kp + 1];
                const float* br = bf + kp * 32;
                for (int n = 0; n < 16; ++n) {
                  cm[n] += a0 * br[2 * n];
                  cm[n] += a1 * br[2 * n + 1];
                }
              }
            }
          }
        }
        for (int m = 0; m < 16; ++m)
          for (int n = 0; n < 16; ++n) cdst[tb * detail::amx_float_tile_elems + m * 32 + v * 16 + n] = c[m][n];
      }
  }
};

// detail::run_float_amx with amx_bf16_model for the tiles (any AVX-512 CPU).
void run_float_amx_model(const detail::float_packed& w, const detail::float_workspace& ws, RowMatrixRef y,
                         std::int64_t n_begin, std::int64_t n_end) {
  if (ws.x_bf16.empty()) {
    detail::run_float_avx512(w, ws, y, n_begin, n_end);
    return;
  }
  detail::amx_float_tiles<amx_bf16_model>(w, ws, y, n_begin, n_end);
}

}  // namespace

TEST_CASE("AMX-BF16 float kernel on the scalar tile model matches the reference", "[gemm][amx_bf16]") {
  // The kernel's staging, bf16 parts and epilogue with amx_bf16_model in place of the tiles:
  // runs on any AVX-512 CPU; column ranges that start and end inside blocks.
  if (!avx512_here()) return;
  std::uint32_t seed = 300;
  std::int64_t runs = 0;
  for (const scheme_case& sc : amx_cases)
    for (const shape_case& sh : amx_shapes) {
      const std::int64_t n = 45;
      const std::int64_t group = sh.group == 0 ? sh.k : sh.group;
      const QuantizedMatrix q = random_matrix(sc, n, sh.k, group, ++seed);
      detail::float_packed w = detail::pack_float(q, sc.scheme, isa_tier::avx512);
      w.amx_bf16 = true;  // what the AMX-BF16 record packs (the same bytes)
      for (std::int64_t m : {5, 17, 33, 200}) {  // 200: a second 128-token super-block
        const RowMatrixXf x = random_x(m, sh.k, ++seed);
        for (input_kind in : {input_kind::f32, input_kind::bf16}) {
          const RowMatrixXf seen = in == input_kind::bf16 ? RowMatrixXf(x.cast<Eigen::bfloat16>().cast<float>()) : x;
          detail::float_workspace ws = detail::make_float_bf16_tiles_workspace(w, m, sh.k);
          REQUIRE(!ws.x_bf16.empty());
          detail::prepare_float_bf16_tiles_tokens(w, seen, ws, 0, m / 2);
          detail::prepare_float_bf16_tiles_tokens(w, seen, ws, m / 2, m);
          RowMatrixXf y = RowMatrixXf::Constant(m, n, 12345.0f);
          run_float_amx_model(w, ws, y, 0, 7);  // ranges as a thread pool might cut them
          run_float_amx_model(w, ws, y, 7, 40);
          run_float_amx_model(w, ws, y, 40, n);
          const RowMatrixXf ref = detail::float_reference_gemm(q, sc.scheme, seen);
          INFO(to_string(sc.scheme) << " code=" << static_cast<int>(w.code) << " m=" << m << " k=" << sh.k
                                    << " group=" << group << " input=" << input_name(in));
          CHECK(worst_ratio(y, ref, tolerance(q, sc.scheme, seen)) <= 1.0);
          // The VDPBF16PS engine on the same workspace: with fp32 inputs, two parts (the lo
          // pass, which its calls through gemm() never need).
          if (host_cpu_features().avx512bf16) {
            RowMatrixXf y2 = RowMatrixXf::Constant(m, n, 12345.0f);
            detail::amx_float_tiles<detail::avx512bf16_tiles>(w, ws, y2, 0, 7);
            detail::amx_float_tiles<detail::avx512bf16_tiles>(w, ws, y2, 7, n);
            CHECK(worst_ratio(y2, ref, tolerance(q, sc.scheme, seen)) <= 1.0);
          }
          // bf16 inputs and E4M3 activations are exact in bf16: one pass, no lo part.
          bool two = false;
          for (std::uint8_t b : ws.bf16_two) two = two || b != 0;
          if (in == input_kind::bf16 || detail::scheme_quantizes_activations(sc.scheme)) CHECK(!two);
          if (in == input_kind::f32 && !detail::scheme_quantizes_activations(sc.scheme)) CHECK(two);
          ++runs;
        }
      }
    }
  INFO("tile-model comparisons: " << runs);
  CHECK(runs > 0);
}

TEST_CASE("AMX-BF16 opt-in: activations rounded to bf16 stay within (2^-8 + 2e-5) sum|x||w_hat|", "[gemm][amx_bf16]") {
  // PackOptions::bf16_activations: one pass on hi = bf16(x') alone. The bound is checked on
  // the tile model here and on the tiles where the CPU has them; and the rounding must really
  // happen (some output outside the exact split's tolerance, no lo part in the workspace).
  const float factor = (std::ldexp(1.0f, -8) + 2e-5f) / 2e-5f;
  std::uint32_t seed = 700;
  double worst_default = 0.0;
  for (const scheme_case& sc : amx_cases) {
    if (detail::scheme_quantizes_activations(sc.scheme)) continue;  // A8: exact in bf16 anyway
    for (const shape_case& sh : {shape_case{300, 128}, shape_case{100, 48}}) {
      const std::int64_t n = 45, m = 17;
      const QuantizedMatrix q = random_matrix(sc, n, sh.k, sh.group, ++seed);
      const RowMatrixXf x = random_x(m, sh.k, ++seed);
      const RowMatrixXf ref = detail::float_reference_gemm(q, sc.scheme, x);
      const RowMatrixXf tol = tolerance(q, sc.scheme, x);
      INFO(to_string(sc.scheme) << " k=" << sh.k << " group=" << sh.group);
      if (avx512_here()) {
        detail::float_packed w = detail::pack_float(q, sc.scheme, isa_tier::avx512);
        w.amx_bf16 = true;
        w.bf16_round_activations = true;
        detail::float_workspace ws = detail::make_float_bf16_tiles_workspace(w, m, sh.k);
        detail::prepare_float_bf16_tiles_tokens(w, x, ws, 0, m);
        for (std::uint8_t b : ws.bf16_two) CHECK(b == 0);
        RowMatrixXf y(m, n);
        run_float_amx_model(w, ws, y, 0, n);
        CHECK(worst_ratio(y, ref, tol * factor) <= 1.0);
        worst_default = std::max(worst_default, worst_ratio(y, ref, tol));
      }
      if (detail::features_cover(detail::features_of(host_cpu_features()), detail::float_amx_needs()) &&
          detail::subtier_supported(isa_subtier::amx, host_cpu_features())) {
        PackOptions po;
        po.subtier = isa_subtier::amx;
        po.scheme = sc.scheme;
        po.bf16_activations = true;
        const PackedWeights w = pack(q, po);
        CHECK(w.float_weights().bf16_round_activations);
        RowMatrixXf y(m, n);
        gemm(x, w, y);
        CHECK(worst_ratio(y, ref, tol * factor) <= 1.0);
      }
    }
  }
  if (avx512_here()) CHECK(worst_default > 1.0);  // it rounded: the exact split's bound is missed
  // Other kernels ignore the option.
  PackOptions po;
  po.tier = isa_tier::scalar;
  po.bf16_activations = true;
  po.activations = activation_quant::none;
  CHECK_FALSE(pack(random_matrix(amx_cases[2], 8, 40, 32, 3), po).float_weights().bf16_round_activations);
}
#endif  // LOWBIT_HAVE_X86_SIMD

namespace {

// Forces the AVX-512 float records' many-token path for one scope.
struct many_token_path_guard {
  explicit many_token_path_guard(detail::many_token_path p) { detail::many_token_path_override() = p; }
  ~many_token_path_guard() { detail::many_token_path_override() = detail::many_token_path::automatic; }
  many_token_path_guard(const many_token_path_guard&) = delete;
  many_token_path_guard& operator=(const many_token_path_guard&) = delete;
};

bool avx512bf16_here() {
  const cpu_features& f = host_cpu_features();
  const bool ok = detail::tier_supported(isa_tier::avx512, f) && f.avx512bf16;
  if (!ok) WARN("AVX512-BF16 tile tests SKIPPED: they need AVX-512 with AVX512-BF16 (avx512bf16=" << f.avx512bf16 << ")");
  return ok;
}

bool ends_with(const std::string& s, const std::string& tail) {
  return s.size() >= tail.size() && s.compare(s.size() - tail.size(), tail.size(), tail) == 0;
}

}  // namespace

TEST_CASE("AVX512-BF16 tiles (VDPBF16PS) match the scalar float reference", "[gemm][avx512bf16]") {
  // The AVX-512 records' many-token path on VDPBF16PS, forced on (a CPU where it does not pay
  // runs it too), through pack() and gemm(): which calls take it (one bf16 pass: A8 schemes,
  // bf16 inputs), that they read 16-bit rows as they are, and the family's tolerance over the
  // edge-case menu, on 1 and 2 threads.
  if (!avx512bf16_here()) return;
  many_token_path_guard forced(detail::many_token_path::bf16_tiles);
  std::uint32_t seed = 1900;
  std::int64_t runs = 0, tile_runs = 0;
  for (const scheme_case& sc : amx_cases)
    for (const shape_case& sh : amx_shapes) {
      const std::int64_t n = sh.k >= 1024 ? 70 : 45;
      const std::int64_t group = sh.group == 0 ? sh.k : sh.group;
      const QuantizedMatrix q = random_matrix(sc, n, sh.k, group, ++seed);
      PackOptions po;
      po.tier = isa_tier::avx512;
      po.subtier = isa_subtier::avx512bw;  // not the AMX sub-tier, which an AMX host would resolve to
      po.scheme = sc.scheme;
      const PackedWeights w = pack(q, po);
      REQUIRE_FALSE(w.float_weights().amx_bf16);
      const bool a8 = detail::scheme_quantizes_activations(sc.scheme);
      for (std::int64_t m : amx_tokens) {
        const RowMatrixXf x = random_x(m, sh.k, ++seed);
        for (input_kind in : {input_kind::f32, input_kind::bf16}) {
          const activation_dtype dt = in == input_kind::bf16 ? activation_dtype::bf16 : activation_dtype::f32;
          const bool tiles = m > 4 && (a8 || in == input_kind::bf16);
          const std::string name(selected_kernel(w, dt));
          INFO(name << " m=" << m << " n=" << n << " k=" << sh.k << " group=" << group << " input=" << input_name(in));
          CHECK(ends_with(name, "_avx512bf16") == (a8 || in == input_kind::bf16));
          CHECK(detail::float_uses_avx512bf16_tiles(w.float_weights(), m, dt) == tiles);
          if (in == input_kind::bf16)
            CHECK(w.kernel()->ops->reads_16bit(w.header(), m, dt) == (tiles && !a8));
          RowMatrixXf seen;
          const RowMatrixXf y = run_gemm(w, x, in, seen, 1 + static_cast<int>(m % 2));
          const RowMatrixXf ref = detail::float_reference_gemm(q, sc.scheme, seen);
          CHECK(worst_ratio(y, ref, tolerance(q, sc.scheme, seen)) <= 1.0);
          ++runs;
          tile_runs += tiles ? 1 : 0;
        }
      }
    }
  WARN("AVX512-BF16 tile tests RAN: " << runs << " comparisons against the scalar float reference, " << tile_runs
                                      << " of them on the tiles");
  CHECK(tile_runs > 0);
}

TEST_CASE("AVX512-BF16 tiles: the CPU rule, the fp32 override, and the bf16 opt-in for fp32 inputs", "[gemm][avx512bf16]") {
  if (!avx512bf16_here()) return;
  const scheme_case fp8{gemm_scheme::w8a8_fp8, element_format::float8_e4m3fn, true};
  const scheme_case int4{gemm_scheme::w4a16_int4, element_format::int4, true};
  const std::int64_t n = 45, k = 300, m = 17;
  PackOptions po;
  po.tier = isa_tier::avx512;
  po.subtier = isa_subtier::avx512bw;  // not the AMX sub-tier, which an AMX host would resolve to
  const PackedWeights w8 = pack(random_matrix(fp8, n, k, k, 11), po);
  // Automatic: where VDPBF16PS pays (AVX512-BF16 without AVX512-FP16); forced off: never.
  CHECK(detail::float_uses_avx512bf16_tiles(w8.float_weights(), m) == detail::avx512bf16_pays(host_cpu_features()));
  {
    many_token_path_guard off(detail::many_token_path::fp32);
    CHECK_FALSE(detail::float_uses_avx512bf16_tiles(w8.float_weights(), m));
    CHECK_FALSE(ends_with(detail::float_kernel_name(w8.float_weights()), "bf16"));
  }
  // PackOptions::bf16_activations sends fp32 inputs of weight-only schemes to the tiles, one
  // pass on hi = bf16(x'): within (2^-8 + 2e-5) sum|x||w_hat|, and really rounded (some
  // output misses the exact bound).
  many_token_path_guard forced(detail::many_token_path::bf16_tiles);
  const QuantizedMatrix q = random_matrix(int4, n, k, 128, 12);
  po.bf16_activations = true;
  po.activations = activation_quant::none;
  const PackedWeights w = pack(q, po);
  REQUIRE(w.float_weights().bf16_round_activations);
  CHECK(detail::float_uses_avx512bf16_tiles(w.float_weights(), m));
  CHECK(ends_with(std::string(selected_kernel(w)), "_avx512bf16"));
  const RowMatrixXf x = random_x(m, k, 13);
  RowMatrixXf y(m, n);
  gemm(x, w, y);
  const RowMatrixXf ref = detail::float_reference_gemm(q, int4.scheme, x);
  const RowMatrixXf tol = tolerance(q, int4.scheme, x);
  CHECK(worst_ratio(y, ref, tol * ((std::ldexp(1.0f, -8) + 2e-5f) / 2e-5f)) <= 1.0);
  CHECK(worst_ratio(y, ref, tol) > 1.0);
}

TEST_CASE("AMX-BF16 activation split: |x' - hi - lo| <= 2^-17 |x'|, exact for fp16 and bf16 values", "[gemm][amx_bf16]") {
  // The bound amx_float.hpp states for the hi + lo split, element by element, over values
  // across the exponent range (tokens whose largest value is near FLT_MAX or far below 1),
  // and r = 0 for values that fp16 or bf16 hold (their calls lose nothing to the split).
  if (!avx512_here()) return;
  const scheme_case sc{gemm_scheme::w4a16_int4, element_format::int4, true};
  const std::int64_t k = 301, tokens = 6;
  const QuantizedMatrix q = random_matrix(sc, 32, k, 64, 5);
  detail::float_packed w = detail::pack_float(q, sc.scheme, isa_tier::avx512);
  w.amx_bf16 = true;
  std::mt19937 rng(99);
  std::uniform_real_distribution<float> mant(-1.0f, 1.0f);
  std::uniform_int_distribution<int> expo(-40, 40);
  RowMatrixXf x(tokens, k);
  for (std::int64_t t = 0; t < tokens; ++t)
    for (std::int64_t c = 0; c < k; ++c) x(t, c) = std::ldexp(mant(rng), expo(rng));
  x.row(1) *= 1e-30f;                                                 // tiny token
  x.row(2) = x.row(2) / x.row(2).cwiseAbs().maxCoeff() * 3.0e38f;     // near FLT_MAX
  for (std::int64_t c = 0; c < k; ++c) x(3, c) = std::ldexp(mant(rng), expo(rng) / 3);  // fp16's range
  x.row(3) = RowMatrixXf(x.row(3).cast<Eigen::half>().cast<float>()); // fp16 values
  x.row(4) = RowMatrixXf(x.row(4).cast<Eigen::bfloat16>().cast<float>());
  detail::float_workspace ws = detail::make_float_bf16_tiles_workspace(w, tokens, k);
  detail::prepare_float_bf16_tiles_tokens(w, x, ws, 0, tokens);
  const auto value = [](std::uint16_t h) {
    const std::uint32_t u = static_cast<std::uint32_t>(h) << 16;
    float v;
    std::memcpy(&v, &u, 4);
    return static_cast<double>(v);
  };
  double worst = 0.0;
  for (std::int64_t t = 0; t < tokens; ++t) {
    const double scale = ws.bf16_scale[static_cast<std::size_t>(t)];
    CHECK(scale * ws.bf16_unscale[static_cast<std::size_t>(t)] == 1.0);
    CHECK(x.row(t).cwiseAbs().maxCoeff() * scale < 4.0);
    for (std::int64_t c = 0; c < k; ++c) {
      const double xs = static_cast<double>(x(t, c)) * scale;
      const std::uint16_t* hi = ws.x_bf16.data() + t * ws.bf16_stride;
      const std::uint16_t* lo = hi + ws.bf16_rows * ws.bf16_stride;
      const double r = xs - value(hi[c]) - value(lo[c]);
      INFO("token " << t << " column " << c << " x " << x(t, c));
      CHECK(std::fabs(r) <= std::ldexp(std::fabs(xs), -17));
      if (t == 3 || t == 4) CHECK(r == 0.0);
      if (t == 4) CHECK(lo[c] % 0x8000 == 0);  // bf16 values: no lo part at all
      if (xs != 0.0) worst = std::max(worst, std::fabs(r) / std::fabs(xs));
    }
  }
  CHECK(ws.bf16_two[4] == 0);
  CHECK(ws.bf16_two[0] == 1);
  INFO("worst |r| / |x'| = " << worst << " (bound 2^-17 = " << std::ldexp(1.0, -17) << ")");
  CHECK(worst > std::ldexp(1.0, -19));  // the bound is not loose by orders of magnitude
}

TEST_CASE("AMX-BF16 parts from 16-bit rows equal the parts of the widened rows, bit for bit", "[gemm][amx_bf16]") {
  // gemm() hands fp16 / bf16 activations to a weight-only tile call without widening them
  // (prepare_float_bf16_tiles_rows): the bf16 parts, 2^e, the lo flags and the group sums (zero
  // points, offsets) must be exactly those of the fp32 call on the widened values.
  if (!avx512_here()) return;
  std::uint32_t seed = 700;
  std::int64_t compared = 0;
  for (const scheme_case& sc : amx_cases) {
    if (detail::scheme_quantizes_activations(sc.scheme)) continue;
    for (const shape_case& sh : amx_shapes) {
      const std::int64_t group = sh.group == 0 ? sh.k : sh.group;
      const QuantizedMatrix q = random_matrix(sc, 32, sh.k, group, ++seed);
      detail::float_packed w = detail::pack_float(q, sc.scheme, isa_tier::avx512);
      w.amx_bf16 = true;
      const std::int64_t m = 21;
      const RowMatrixXf x0 = random_x(m, sh.k, ++seed);
      for (input_kind in : {input_kind::f16, input_kind::bf16}) {
        RowMatrixXf x = x0;
        if (in == input_kind::bf16) x.row(5) *= 1e30f;  // far beyond fp16's range
        const RowMatrixXh xh = x.cast<Eigen::half>();
        const RowMatrixXbf16 xb = x.cast<Eigen::bfloat16>();
        const RowMatrixXf widened = in == input_kind::f16 ? RowMatrixXf(xh.cast<float>()) : RowMatrixXf(xb.cast<float>());
        const void* rows = in == input_kind::f16 ? static_cast<const void*>(xh.data()) : static_cast<const void*>(xb.data());
        const activation_dtype dt = in == input_kind::f16 ? activation_dtype::f16 : activation_dtype::bf16;
        detail::float_workspace a = detail::make_float_bf16_tiles_workspace(w, m, sh.k);
        detail::float_workspace b = detail::make_float_bf16_tiles_workspace(w, m, sh.k, dt);
        REQUIRE(detail::float_bf16_tiles_read_rows(w, m));
        CHECK(a.x.empty());  // the tiles never read x: not even made
        detail::prepare_float_bf16_tiles_tokens(w, widened, a, 0, m);
        detail::prepare_float_bf16_tiles_rows(w, rows, sh.k, dt, b, 0, 8);
        detail::prepare_float_bf16_tiles_rows(w, rows, sh.k, dt, b, 8, m);
        INFO(to_string(sc.scheme) << " k=" << sh.k << " group=" << group << " input=" << input_name(in));
        // bf16 rows take one pass: no lo plane, and the widened call's lo plane is all zero
        // (bf16 values split into themselves and 0), so nothing it would have held is lost.
        const std::size_t plane = static_cast<std::size_t>(a.bf16_rows * a.bf16_stride);
        CHECK(a.bf16_planes == 2);
        CHECK(b.bf16_planes == (in == input_kind::bf16 ? 1 : 2));
        REQUIRE(b.x_bf16.size() == plane * static_cast<std::size_t>(b.bf16_planes));
        CHECK(std::memcmp(a.x_bf16.data(), b.x_bf16.data(), b.x_bf16.size() * 2) == 0);
        if (in == input_kind::bf16)
          CHECK(std::all_of(a.x_bf16.data() + plane, a.x_bf16.data() + 2 * plane, [](std::uint16_t v) { return v == 0; }));
        CHECK(a.bf16_scale == b.bf16_scale);
        CHECK(a.bf16_unscale == b.bf16_unscale);
        CHECK(a.bf16_two == b.bf16_two);
        CHECK(a.group_sums == b.group_sums);
        if (sc.symmetric) CHECK(a.group_sums.empty());
        else CHECK(!a.group_sums.empty());
        ++compared;
      }
    }
  }
  CHECK(compared == 5 * 2 * static_cast<std::int64_t>(std::size(amx_shapes)));  // five weight-only cases
}

TEST_CASE("AMX-BF16 parts of E4M3 activations: each code's value times 2^e, lo zero", "[gemm][amx_bf16]") {
  // A8 tile calls move the E4M3 codes straight into the hi part (amx_float_e4m3_rows). Each
  // element must be bf16(decode(code) * 2^e(t)) with 2^e(t) putting the token's largest value
  // in [1, 2), computed here in scalar code from the codes prepare wrote.
  if (!avx512_here()) return;
  std::uint32_t seed = 800;
  for (const scheme_case& sc : amx_cases) {
    if (!detail::scheme_quantizes_activations(sc.scheme)) continue;
    for (std::int64_t k : {31, 64, 100, 1100}) {
      const QuantizedMatrix q = random_matrix(sc, 32, k, k, ++seed);
      detail::float_packed w = detail::pack_float(q, sc.scheme, isa_tier::avx512);
      w.amx_bf16 = true;
      const std::int64_t m = 19;
      RowMatrixXf x = random_x(m, k, ++seed);
      x.row(4) *= 1e-3f;                      // E4M3 subnormals among the codes
      x(6, k - 1) = -x.row(6).cwiseAbs().maxCoeff() * 2.0f;  // the largest value is negative, last
      detail::float_workspace ws = detail::make_float_bf16_tiles_workspace(w, m, k);
      CHECK(ws.x.empty());
      detail::prepare_float_bf16_tiles_tokens(w, x, ws, 0, m);
      INFO(to_string(sc.scheme) << " k=" << k);
      for (std::int64_t t = 0; t < m; ++t) {
        float amax = 0.0f;
        for (std::int64_t c = 0; c < k; ++c)
          amax = std::max(amax, std::fabs(float8_e4m3fn::decode_table[ws.codes[static_cast<std::size_t>(t * k + c)]]));
        const float scale = amax > 0.0f ? std::ldexp(1.0f, -std::ilogb(amax)) : 1.0f;  // amax * scale in [1, 2)
        INFO("token " << t << " amax " << amax);
        CHECK(ws.bf16_scale[static_cast<std::size_t>(t)] == scale);
        CHECK(ws.bf16_unscale[static_cast<std::size_t>(t)] == 1.0f / scale);
        CHECK(ws.bf16_two[static_cast<std::size_t>(t)] == 0);
        const std::uint16_t* hi = ws.x_bf16.data() + t * ws.bf16_stride;
        std::int64_t wrong = 0;
        for (std::int64_t c = 0; c < ws.bf16_stride; ++c) {
          const float v = c < k ? float8_e4m3fn::decode_table[ws.codes[static_cast<std::size_t>(t * k + c)]] * scale : 0.0f;
          std::uint32_t u;
          std::memcpy(&u, &v, 4);
          REQUIRE((u & 0xFFFFu) == 0);  // exact in bf16
          wrong += hi[c] != static_cast<std::uint16_t>(u >> 16);
        }
        CHECK(wrong == 0);
      }
      for (std::int64_t r = m; r < ws.bf16_rows; ++r)  // padding rows
        for (std::int64_t c = 0; c < ws.bf16_stride; ++c) REQUIRE(ws.x_bf16[static_cast<std::size_t>(r * ws.bf16_stride + c)] == 0);
    }
  }
}

TEST_CASE("AMX-BF16 parts: a non-finite activation is an error naming token and column", "[gemm][amx_bf16]") {
  if (!avx512_here()) return;
  const scheme_case sc{gemm_scheme::w4a16_int4, element_format::int4, true};
  const QuantizedMatrix q = random_matrix(sc, 32, 100, 32, 3);
  detail::float_packed w = detail::pack_float(q, sc.scheme, isa_tier::avx512);
  w.amx_bf16 = true;
  RowMatrixXf x = random_x(9, 100, 4);
  for (const float bad : {std::numeric_limits<float>::quiet_NaN(), std::numeric_limits<float>::infinity()}) {
    x(6, 97) = bad;
    const RowMatrixXbf16 xb = x.cast<Eigen::bfloat16>();
    const RowMatrixXh xh = x.cast<Eigen::half>();
    detail::float_workspace ws = detail::make_float_bf16_tiles_workspace(w, 9, 100);
    const std::string msg = "activations: non-finite value at token 6, column 97";
    CHECK_THROWS_WITH(detail::prepare_float_bf16_tiles_tokens(w, x, ws, 0, 9), msg);
    detail::float_workspace one = detail::make_float_bf16_tiles_workspace(w, 9, 100, activation_dtype::bf16);
    CHECK_THROWS_WITH(detail::prepare_float_bf16_tiles_rows(w, xb.data(), 100, activation_dtype::bf16, one, 0, 9), msg);
    // A workspace made for another input is refused (bf16 rows have no lo plane).
    CHECK_THROWS_WITH(detail::prepare_float_bf16_tiles_rows(w, xb.data(), 100, activation_dtype::bf16, ws, 0, 9),
                      Catch::Contains("planes do not match"));
    CHECK_THROWS_WITH(detail::prepare_float_bf16_tiles_rows(w, xh.data(), 100, activation_dtype::f16, ws, 4, 9), msg);
    x(6, 97) = 1.0f;
  }
}

// x86 builds only: the records it selects have code only there.
#if LOWBIT_HAVE_X86_SIMD
TEST_CASE("AMX-BF16 float records: selection, refusal and AMX weights on a host without AMX", "[gemm][amx_bf16]") {
  // A host with everything: the AMX-BF16 record; without tile permission (a refusing kernel,
  // simulated by LOWBIT_AMX_DENY) best_subtier() falls back to AVX-512 and its float record.
  cpu_features f{};
  f.avx2 = f.fma = f.f16c = f.bmi2 = true;
  f.avx512f = f.avx512bw = f.avx512vl = f.avx512dq = f.avx512vnni = f.avx512bf16 = true;
  f.amx_tile = f.amx_int8 = f.amx_bf16 = f.amx_permitted = true;
  for (const scheme_case& sc : amx_cases) {
    const detail::kernel_record& r = detail::select_kernel(sc.scheme, isa_subtier::amx, f);
    CHECK(r.suffix == "amx");
    CHECK(detail::float_record_is_amx(r));
  }
  cpu_features int8_only = f;  // AMX-INT8 without AMX-BF16: the AVX-512 float record serves amx
  int8_only.amx_bf16 = false;
  CHECK_FALSE(detail::float_record_is_amx(detail::select_kernel(gemm_scheme::w4a16_int4, isa_subtier::amx, int8_only)));
  ::setenv("LOWBIT_AMX_DENY", "1", 1);
  CHECK_FALSE(detail::request_amx_permission(f));
  ::unsetenv("LOWBIT_AMX_DENY");
  f.amx_permitted = false;
  CHECK(detail::best_subtier(f) == isa_subtier::avx512vnni);
  CHECK_FALSE(detail::float_record_is_amx(detail::select_kernel(gemm_scheme::w4a8_fp4, detail::best_subtier(f), f)));

  // This process: where AMX was refused (LOWBIT_AMX_DENY set when it started) on an AMX-BF16
  // CPU, pack() picks the AVX-512 float record and the results are still right.
  const cpu_features& host = host_cpu_features();
  const scheme_case sc{gemm_scheme::w4a16_int4, element_format::int4, true};
  const QuantizedMatrix q = random_matrix(sc, 40, 96, 32, 11);
  const RowMatrixXf x = random_x(20, 96, 12);
  if (host.amx_bf16 && !host.amx_permitted) {
    PackOptions po;
    po.activations = activation_quant::none;
    const PackedWeights w = pack(q, po);
    const std::string name(selected_kernel(w));
    INFO(name);
    CHECK(name.find("_amx") == std::string::npos);
    CHECK_FALSE(w.float_weights().amx_bf16);
    RowMatrixXf y(20, 40);
    gemm(x, w, y);
    CHECK(worst_ratio(y, detail::float_reference_gemm(q, sc.scheme, x), tolerance(q, sc.scheme, x)) <= 1.0);
    WARN("AMX-BF16 refused (LOWBIT_AMX_DENY): fell back to " << name);
  }

  // Weights recorded as AMX-BF16-packed on a host that cannot run them: "pack them again".
  if (detail::subtier_supported(isa_subtier::amx, host)) return;
  if (!detail::tier_supported(isa_tier::avx512, host)) return;
  PackOptions po;
  po.tier = isa_tier::avx512;
  po.activations = activation_quant::none;
  PackedWeights w = pack(q, po);
  const isa_subtier packed_on = w.subtier();
  w.float_weights_mutable().subtier = isa_subtier::amx;
  w.float_weights_mutable().amx_bf16 = true;
  RowMatrixXf y(20, 40);
  CHECK_THROWS_WITH(gemm(x, w, y), Catch::Contains("pack them again"));
  // The flag alone (AMX-BF16 weights run by the AVX-512 record) is refused too.
  w.float_weights_mutable().subtier = packed_on;
  CHECK_THROWS_WITH(gemm(x, w, y), Catch::Contains("pack them again"));
  w.float_weights_mutable().amx_bf16 = false;
  CHECK_NOTHROW(gemm(x, w, y));
}
#endif  // LOWBIT_HAVE_X86_SIMD

}  // namespace test_gemm_amx_bf16_cpp
