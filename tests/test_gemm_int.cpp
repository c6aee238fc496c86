// The integer-activation kernels (w8a8_int8, w4a8_int4, w4a8_int4_m2): every tier against the
// oracle of kernels/reference.hpp, bit for bit, over the edge-case menu; then end to end
// against dequantize + an fp32 product.
#include <catch2/catch.hpp>

#include <limits>
#include <string>
#include <vector>

#include "lowbit/gemm.hpp"
#include "lowbit/kernels/reference.hpp"
#include "test_gemm_support.hpp"

// One namespace per test file, so that any set of test files can be compiled as one
// unity translation unit (tests/CMakeLists.txt) without their file-local names clashing.
namespace test_gemm_int_cpp {

using namespace lowbit;
using lowbit::test::int_matrix_recipe;

namespace {

struct scheme_case {
  const char* name;
  element_format format;
  std::int64_t group;
  bool m2;
  gemm_scheme scheme;
};

const scheme_case kCases[] = {
    {"w8a8 per-channel", element_format::int8, 0, false, gemm_scheme::w8a8_int8},
    {"w8a8 g32", element_format::int8, 32, false, gemm_scheme::w8a8_int8},
    {"w4a8 per-channel", element_format::int4, 0, false, gemm_scheme::w4a8_int4},
    {"w4a8 g32", element_format::int4, 32, false, gemm_scheme::w4a8_int4},
    {"w4a8 m2 g32", element_format::int4, 32, true, gemm_scheme::w4a8_int4_m2},
};

std::string describe(const scheme_case& c, isa_subtier t, std::int64_t m, std::int64_t n, std::int64_t k) {
  return std::string(c.name) + " tier=" + std::string(to_string(t)) + " m=" + std::to_string(m) +
         " n=" + std::to_string(n) + " k=" + std::to_string(k);
}

// The matrix recipe of a case: its format, group and M2 scales, codes over the whole range.
int_matrix_recipe case_recipe(const scheme_case& c, std::int64_t rows, std::int64_t cols) {
  int_matrix_recipe r;
  r.rows = rows;
  r.cols = cols;
  r.format = c.format;
  r.group = c.group;
  r.m2 = c.m2;
  r.code_lo = c.format == element_format::int8 ? -127 : -8;
  r.code_hi = c.format == element_format::int8 ? 127 : 7;
  return r;
}

// Count of elements that differ in bits (exact comparison that prints one offender).
std::int64_t mismatches(const RowMatrixXf& want, const RowMatrixRef& got) {
  std::int64_t bad = 0;
  for (std::int64_t i = 0; i < want.rows(); ++i)
    for (std::int64_t j = 0; j < want.cols(); ++j)
      if (!(want(i, j) == got(i, j))) {
        if (bad == 0) UNSCOPED_INFO("first mismatch at (" << i << ", " << j << "): " << want(i, j) << " vs " << got(i, j));
        ++bad;
      }
  return bad;
}

// Packs q for every sub-tier this CPU runs and requires gemm() to give `want` bit for bit.
void int_gemm_on_every_subtier(const scheme_case& sc, const QuantizedMatrix& q, const RowMatrixXf& x,
                               const RowMatrixXf& want, const std::string& what) {
  for (isa_subtier tier : supported_isa_subtiers()) {
    PackOptions po;
    po.subtier = tier;
    const PackedWeights w = pack(q, po);
    REQUIRE(w.scheme() == sc.scheme);
    RowMatrixXf y(x.rows(), q.rows);
    gemm(x, w, y);
    INFO(describe(sc, tier, x.rows(), q.rows, q.cols) << what);
    CHECK(mismatches(want, y) == 0);
  }
}

}  // namespace

TEST_CASE("integer kernels match the reference bit for bit on every sub-tier", "[gemm]") {
  const std::int64_t tokens[] = {1, 2, 3, 7, 16, 33};
  const std::int64_t ks[] = {1, 2, 31, 32, 33, 172, 4096};
  std::uint32_t seed = 10;
  for (const scheme_case& sc : kCases) {
    for (std::int64_t k : ks) {
      int_matrix_recipe r = case_recipe(sc, 37, k);  // 37 rows: not a multiple of any tile width
      r.seed = ++seed;
      const QuantizedMatrix q = lowbit::test::make_int_matrix(r);
      for (std::int64_t m : tokens) {
        if (k == 4096 && m > 3) continue;  // keep the run short
        const RowMatrixXf x = lowbit::test::random_activations(m, k, ++seed);
        const auto qa = detail::reference_quantize_int8(x);
        const RowMatrixXf want = detail::reference_gemm_int(q, qa, sc.scheme);
        int_gemm_on_every_subtier(sc, q, x, want, "");
      }
    }
  }
}

TEST_CASE("integer kernels are bit-exact with group sizes off every k step and pair", "[gemm]") {
  // Groups that are not multiples of the k step (4 or 8) or of the I8MM pair of steps (8 or
  // 16): the packer's element path, padding inside every group, and pairs straddling the
  // padding; odd token counts leave one token for the I8MM kernel to pair with itself.
  const std::int64_t groups[] = {4, 12, 20, 24, 40};
  const std::int64_t tokens[] = {1, 2, 5};
  std::uint32_t seed = 500;
  for (const scheme_case& sc : kCases) {
    if (sc.group == 0) continue;
    for (std::int64_t group : groups) {
      int_matrix_recipe r = case_recipe(sc, 21, 3 * group + 5);  // a ragged last group
      r.group = group;
      r.seed = ++seed;
      const QuantizedMatrix q = lowbit::test::make_int_matrix(r);
      for (std::int64_t m : tokens) {
        const RowMatrixXf x = lowbit::test::random_activations(m, r.cols, ++seed);
        const RowMatrixXf want = detail::reference_gemm_int(q, detail::reference_quantize_int8(x), sc.scheme);
        int_gemm_on_every_subtier(sc, q, x, want, " group=" + std::to_string(group));
      }
    }
  }
}

TEST_CASE("bias, LoRC and strided outputs", "[gemm]") {
  const std::int64_t m = 7, n = 45, k = 172, rank = 4;
  for (const scheme_case& sc : kCases) {
    const QuantizedMatrix q = lowbit::test::make_int_matrix(case_recipe(sc, n, k));
    const RowMatrixXf x = lowbit::test::random_activations(m, k, 99);
    const RowMatrixXf plain = detail::reference_gemm_int(q, detail::reference_quantize_int8(x), sc.scheme);
    const Eigen::VectorXf bias = Eigen::VectorXf::LinSpaced(n, -1.0f, 2.0f);
    const RowMatrixXf u = RowMatrixXf::Random(n, rank) * 0.1f, v = RowMatrixXf::Random(rank, k) * 0.1f;
    const RowMatrixXf lorc = (x * v.transpose()) * u.transpose();
    for (isa_subtier tier : supported_isa_subtiers()) {
      PackOptions po;
      po.subtier = tier;
      const PackedWeights w = pack(q, po);
      for (int use_bias = 0; use_bias < 2; ++use_bias)
        for (int use_lorc = 0; use_lorc < 2; ++use_lorc) {
          INFO(std::string(sc.name) << " tier=" << to_string(tier) << " bias=" << use_bias << " lorc=" << use_lorc);
          RowMatrixXf big = RowMatrixXf::Constant(m, n + 5, -7.0f);  // y is a strided block of it
          RowMatrixRef y = big.middleCols(2, n);
          GemmOptions o;
          if (use_bias) o.bias = &bias;
          if (use_lorc) {
            o.lorc_u = &u;
            o.lorc_v = &v;
          }
          gemm(x, w, y, o);
          RowMatrixXf want = plain;
          if (use_bias) want.rowwise() += bias.transpose();
          if (!use_lorc) {
            CHECK(mismatches(want, y) == 0);  // bias is one fp32 add, in the same order
          } else {
            want += lorc;
            CHECK(((want - RowMatrixXf(y)).cwiseAbs().maxCoeff()) <= 1e-5f * (1.0f + want.cwiseAbs().maxCoeff()));
          }
          CHECK((big.leftCols(2).array() == -7.0f).all());
          CHECK((big.rightCols(3).array() == -7.0f).all());
        }
    }
  }
}

TEST_CASE("end to end: gemm agrees with dequantize then an fp32 product", "[gemm]") {
  // |y - x W_hat^T| <= sum_k |w_hat| * |x - x_hat| <= 0.5 * s_a * sum_k |w_hat| (activation
  // rounding) plus fp32 rounding of the two products (bounded by 1e-5 * sum |x| |w_hat|).
  const std::int64_t m = 5, n = 70, k = 300;
  for (const scheme_case& sc : kCases) {
    const QuantizedMatrix q = lowbit::test::make_int_matrix(case_recipe(sc, n, k));
    const RowMatrixXf what = lowbit::test::dequantize_int(q);
    const RowMatrixXf x = lowbit::test::random_activations(m, k, 5);
    const RowMatrixXf exact = x * what.transpose();
    const PackedWeights w = pack(q);
    RowMatrixXf y(m, n);
    gemm(x, w, y);
    const RowMatrixXf abs_prod = x.cwiseAbs() * what.cwiseAbs().transpose();
    for (std::int64_t t = 0; t < m; ++t) {
      const float s_a = x.row(t).cwiseAbs().maxCoeff() / 127.0f;
      for (std::int64_t j = 0; j < n; ++j) {
        const float bound = 0.5f * s_a * what.row(j).cwiseAbs().sum() * 1.0001f + 1e-5f * abs_prod(t, j);
        INFO(sc.name << " t=" << t << " n=" << j);
        CHECK(std::fabs(y(t, j) - exact(t, j)) <= bound);
      }
    }
  }
}

TEST_CASE("pre-quantized activations give the same result as on-the-fly quantization", "[gemm]") {
  int_matrix_recipe r;
  r.rows = 40;
  r.cols = 100;
  const QuantizedMatrix q = lowbit::test::make_int_matrix(r);
  const RowMatrixXf x = lowbit::test::random_activations(3, 100, 8);
  const auto qa = detail::reference_quantize_int8(x);
  RowMatrixXi8 codes(3, 100);
  for (std::int64_t i = 0; i < codes.size(); ++i) codes.data()[i] = qa.codes[static_cast<std::size_t>(i)];
  const Eigen::VectorXf scales = Eigen::Map<const Eigen::VectorXf>(qa.scales.data(), 3);
  const PackedWeights w = pack(q);
  RowMatrixXf y1(3, 40), y2(3, 40);
  gemm(x, w, y1);
  gemm(codes, scales, w, y2);
  CHECK(mismatches(y1, y2) == 0);
  codes(1, 7) = -128;
  CHECK_THROWS_AS(gemm(codes, scales, w, y2), lowbit::error);
  // quantize_activations (the quantizer's per-token int8) gives exactly what gemm does inside.
  const QuantizedActivations xq = quantize_activations(x, act_format::int8);
  RowMatrixXf y3(3, 40);
  gemm(xq, w, y3);
  CHECK(mismatches(y1, y3) == 0);
  CHECK_THROWS_AS(gemm(quantize_activations(x, act_format::int8, 32), w, y3), lowbit::error);
}

TEST_CASE("SIMD activation quantization matches the scalar rule, ties included", "[gemm]") {
  int_matrix_recipe r;
  r.rows = 16;
  r.cols = 301;
  r.group = 64;
  const QuantizedMatrix q = lowbit::test::make_int_matrix(r);
  RowMatrixXf x = lowbit::test::random_activations(4, 301, 3);
  for (std::int64_t c = 0; c < 301; ++c) x(2, c) = static_cast<float>(c % 255) - 127.0f + 0.5f;  // exact ties
  x(2, 0) = 127.0f;  // amax = 127: inv = 1
  x.row(3).setZero();  // amax = 0
  const auto ref = detail::reference_quantize_int8(x);
  for (isa_subtier tier : supported_isa_subtiers()) {
    PackOptions po;
    po.subtier = tier;
    const PackedWeights w = pack(q, po);
    const detail::int_workspace ws = detail::prepare_int(w.int_weights(), x, tier_of(tier));
    for (std::int64_t t = 0; t < 4; ++t) {
      CHECK(ws.a_scale[static_cast<std::size_t>(t)] == ref.scales[static_cast<std::size_t>(t)]);
      for (std::int64_t c = 0; c < 301; ++c) {
        const std::int64_t g = c / 64;
        const std::int8_t got = ws.a[static_cast<std::size_t>(t * ws.a_stride + g * w.int_weights().group_padded + c % 64)];
        if (got != ref.codes[static_cast<std::size_t>(t * 301 + c)]) {
          FAIL("tier " << to_string(tier) << " token " << t << " column " << c);
        }
      }
    }
  }
}

TEST_CASE("bad input raises lowbit::error", "[gemm]") {
  int_matrix_recipe r;
  r.rows = 20;
  r.cols = 50;
  const QuantizedMatrix q = lowbit::test::make_int_matrix(r);
  const PackedWeights w = pack(q);
  RowMatrixXf x = lowbit::test::random_activations(2, 50, 1);
  RowMatrixXf y(2, 20);
  RowMatrixXf wrong_y(2, 21);
  CHECK_THROWS_AS(gemm(x, w, wrong_y), lowbit::error);
  RowMatrixXf wrong_x(2, 49);
  CHECK_THROWS_AS(gemm(wrong_x, w, y), lowbit::error);
  x(1, 3) = std::numeric_limits<float>::quiet_NaN();
  CHECK_THROWS_WITH(gemm(x, w, y), Catch::Contains("row 1"));
  x(1, 3) = 0.0f;
  const Eigen::VectorXf short_bias(19);
  GemmOptions o;
  o.bias = &short_bias;
  CHECK_THROWS_AS(gemm(x, w, y, o), lowbit::error);
  QuantizedMatrix asym = q;
  asym.spec.symmetric = false;
  PackOptions po;
  po.activations = activation_quant::int8;
  CHECK_THROWS_WITH(pack(asym, po), Catch::Contains("symmetric"));
  PackOptions force8;
  force8.scheme = gemm_scheme::w8a8_int8;
  CHECK_THROWS_WITH(pack(q, force8), Catch::Contains("element format"));
  CHECK_THROWS_AS(gemm(x, PackedWeights{}, y), lowbit::error);
}

TEST_CASE("selected_kernel names scheme, grouping and ISA", "[gemm]") {
  int_matrix_recipe r;
  r.rows = 20;
  r.cols = 256;
  r.group = 128;
  const QuantizedMatrix q = lowbit::test::make_int_matrix(r);
  PackOptions po;
  po.tier = isa_tier::scalar;
  CHECK(selected_kernel(pack(q, po)) == "w4a8_int4_g128_scalar");
  const std::string best(selected_kernel(pack(q)));
  CHECK(best.rfind("w4a8_int4_g128_", 0) == 0);
  r.format = element_format::int8;
  r.group = 0;
  CHECK(selected_kernel(pack(lowbit::test::make_int_matrix(r), po)) == "w8a8_int8_pc_scalar");
}

TEST_CASE("activations are quantized over token ranges on the pool: same bits, errors reach the caller",
          "[gemm][threads]") {
  int_matrix_recipe r;
  r.rows = 70;
  r.cols = 96;
  r.group = 32;
  const QuantizedMatrix q = lowbit::test::make_int_matrix(r);
  for (isa_subtier tier : supported_isa_subtiers()) {
    INFO("tier=" << to_string(tier));
    PackOptions po;
    po.subtier = tier;
    const PackedWeights w = pack(q, po);
    // 40 tokens: with 2 threads, prepare runs as two ranges of 20 (at least 8 tokens a task).
    RowMatrixXf x = lowbit::test::random_activations(40, 96, 77);
    RowMatrixXf y1(40, 70), y2(40, 70);
    GemmOptions o1, o2;
    o1.num_threads = 1;
    o2.num_threads = 2;
    gemm(x, w, y1, o1);
    gemm(x, w, y2, o2);
    CHECK(mismatches(y1, y2) == 0);
    const RowMatrixXf want = detail::reference_gemm_int(q, detail::reference_quantize_int8(x), w.scheme());
    CHECK(mismatches(want, y2) == 0);
    // Token 35 lies in the second range, which a worker may run.
    x(35, 90) = std::numeric_limits<float>::infinity();
    CHECK_THROWS_WITH(gemm(x, w, y2, o2), Catch::Contains("row 35"));
  }
}
}  // namespace test_gemm_int_cpp
