// gemm() with fp16 and bf16 activations: W4A16 weights on every tier against the float
// family's oracle (kernels/float_reference.hpp) over the edge-case menu, the AVX512-FP16
// path's stated bound (kernels/x86/avx512fp16_float.hpp) including inputs at the ends of
// both formats' ranges, the exact widening used by every other case, names and errors.
#include <catch2/catch.hpp>

#include <cmath>
#include <cstdint>
#include <limits>
#include <random>
#include <string>
#include <vector>

#include "lowbit/gemm.hpp"
#include "test_gemm_support.hpp"

// One namespace per test file, so that any set of test files can be compiled as one
// unity translation unit (tests/CMakeLists.txt) without their file-local names clashing.
namespace test_gemm_half_input_cpp {

using namespace lowbit;
using namespace lowbit::detail;

namespace {

struct w4a16_case {
  gemm_scheme scheme;
  element_format format;
  bool symmetric;
};

const w4a16_case w4a16_cases[] = {
    {gemm_scheme::w4a16_int4, element_format::int4, true},
    {gemm_scheme::w4a16_int4, element_format::int4, false},
    {gemm_scheme::w4a16_fp4, element_format::float4_e2m1fn, true},
};

// Random 4-bit codes (int4 -8..7 or 0..15 with zero points, E2M1 all 16) and scales.
QuantizedMatrix random_w4(const w4a16_case& c, std::int64_t rows, std::int64_t cols, std::int64_t group,
                          std::uint32_t seed) {
  return lowbit::test::random_float_family_matrix(c.format, c.symmetric, rows, cols, group, seed);
}

// LLM-like activations: normal, outlier channels, one all-zero token.
RowMatrixXf random_x(std::int64_t tokens, std::int64_t cols, std::uint32_t seed) {
  std::mt19937 rng(seed);
  std::normal_distribution<float> d(0.0f, 1.0f);
  RowMatrixXf x(tokens, cols);
  for (std::int64_t t = 0; t < tokens; ++t)
    for (std::int64_t k = 0; k < cols; ++k) x(t, k) = d(rng) * (k % 17 == 3 ? 30.0f : 1.0f);
  if (tokens > 2) x.row(1).setZero();
  return x;
}

// |w_hat| for the bound; zero points count as (|v| + z) * s, which covers the fp32 few-token
// path that subtracts z * sum(x) once per group.
RowMatrixXf abs_weights(const QuantizedMatrix& q) {
  RowMatrixXf a(q.rows, q.cols);
  for (std::int64_t r = 0; r < q.rows; ++r)
    for (std::int64_t k = 0; k < q.cols; ++k) {
      const std::size_t gi = static_cast<std::size_t>(r * q.groups_per_row + k / q.group_size);
      a(r, k) = q.zeros.empty() ? std::fabs(weight_value_reference(q, r, k))
                                : (std::fabs(weight_code_value_reference(q, r, k)) + q.zeros[gi]) * q.scales[gi];
    }
  return a;
}

constexpr double fp32_path_tolerance = 2e-5;        // kernels/float_layout.hpp
constexpr double fp16_path_tolerance = 1.0 / 63.0;  // gamma_32 of fp16, just above 2^-6

// max over outputs of |y - ref| / (tol * sum_k |x w_hat|) (<= 1 passes).
double worst_ratio(const RowMatrixXf& y, const RowMatrixXf& ref, const RowMatrixXf& sum_abs, double tol) {
  double worst = 0.0;
  for (Eigen::Index i = 0; i < y.rows(); ++i)
    for (Eigen::Index j = 0; j < y.cols(); ++j) {
      const double d = std::fabs(static_cast<double>(y(i, j)) - ref(i, j));
      const double bound = tol * sum_abs(i, j) + 1e-30;
      if (!(d <= bound)) worst = std::max(worst, std::isnan(d) ? 1e30 : d / bound);
    }
  return worst;
}

std::int64_t group_for(std::int64_t k, int variant) {
  if (variant == 1) return k;        // per channel (one group, odd K included)
  if (variant == 2) return 33;       // odd groups: k-row pairs would straddle them
  return k >= 1024 ? 128 : k >= 64 ? 32 : 16;
}

template <class Half>
using RowMatrixX16 = Eigen::Matrix<Half, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>;

template <class Half>
constexpr activation_dtype dtype_of() {
  return std::is_same<Half, Eigen::half>::value ? activation_dtype::f16 : activation_dtype::bf16;
}

template <class Half>
void check_menu(int& fp16_runs) {
  const std::int64_t n_out = 45;  // a full 32-column block and a ragged one
  std::uint32_t seed = 11;
  for (const w4a16_case& c : w4a16_cases)
    for (std::int64_t k : {1, 2, 31, 32, 33, 172, 4096})
      for (int variant : {0, 1, 2}) {
        if (variant == 1 && k != 172 && k != 33) continue;
        if (variant == 2 && k != 172) continue;
        const QuantizedMatrix q = random_w4(c, n_out, k, group_for(k, variant), seed++);
        const RowMatrixXf w_abs = abs_weights(q);
        std::vector<std::int64_t> token_counts = {1, 2, 3, 7, 16, 33};
        if (k == 4096) token_counts = {1, 3, 16, 33};
        for (std::int64_t tokens : token_counts) {
          const RowMatrixX16<Half> xh = random_x(tokens, k, seed++).template cast<Half>();
          const RowMatrixXf xf = xh.template cast<float>();  // exactly the values passed
          const RowMatrixXf ref = float_reference_gemm(q, c.scheme, xf);
          const RowMatrixXf sum_abs = xf.cwiseAbs() * w_abs.transpose();
          for (isa_tier tier : supported_isa_tiers()) {
            INFO(to_string(c.scheme) << (c.symmetric ? "" : " asym") << " " << to_string(dtype_of<Half>()) << " tier "
                                     << to_string(tier) << " K " << k << " group " << q.group_size << " tokens "
                                     << tokens);
            PackOptions po;
            po.tier = tier;
            // The AVX-512 vector sub-tier, so that the AVX512-FP16 path runs on AMX hosts too (their
            // default sub-tier packs the AMX-BF16 records: tests/test_gemm_amx_bf16.cpp).
            if (tier == isa_tier::avx512) po.subtier = detail::best_vector_subtier(tier, host_cpu_features());
            po.activations = activation_quant::none;
            const PackedWeights w = pack(q, po);
            REQUIRE(w.scheme() == c.scheme);
            const bool fp16 = float_uses_fp16_path(w.float_weights(), tokens, dtype_of<Half>());
            fp16_runs += fp16;
            // Strided output inside a sentinel frame.
            RowMatrixXf big = RowMatrixXf::Constant(tokens + 2, n_out + 7, 12345.0f);
            RowMatrixRef y = big.block(1, 3, tokens, n_out);
            gemm(xh, w, y);
            const RowMatrixXf yv = y;
            if (fp16) {
              CHECK(worst_ratio(yv, ref, sum_abs, fp16_path_tolerance) <= 1.0);
              CHECK((yv - ref).norm() <= 2e-3 * ref.norm());
            } else if (detail::float_uses_avx512bf16_tiles(w.float_weights(), tokens, dtype_of<Half>())) {
              // bf16 rows on the VDPBF16PS tiles (AVX512-BF16 CPUs where it pays), as they are:
              // the family's fp32 tolerance (tests/test_gemm_amx_bf16.cpp has the menu).
              CHECK(worst_ratio(yv, ref, sum_abs, fp32_path_tolerance) <= 1.0);
            } else {
              // Every other path widens x and runs the fp32 kernel: bit-exact with gemm(xf).
              RowMatrixXf y32(tokens, n_out);
              gemm(xf, w, y32);
              CHECK((yv.array() == y32.array()).all());
              CHECK(worst_ratio(yv, ref, sum_abs, fp32_path_tolerance) <= 1.0);
            }
            CHECK((big.leftCols(3).array() == 12345.0f).all());
            CHECK((big.rightCols(4).array() == 12345.0f).all());
            CHECK((big.row(0).array() == 12345.0f).all());
            CHECK((big.row(tokens + 1).array() == 12345.0f).all());

            if (tokens == 7 || tokens == 33) {
              // Bias and LoRC are added to the same product, in the same call.
              std::mt19937 rng(static_cast<std::uint32_t>(k + tokens));
              std::normal_distribution<float> d(0.0f, 0.1f);
              const std::int64_t rank = 3;
              Eigen::VectorXf bias(n_out);
              RowMatrixXf u(n_out, rank), v(rank, k);
              for (Eigen::Index i = 0; i < bias.size(); ++i) bias[i] = d(rng);
              for (Eigen::Index i = 0; i < u.size(); ++i) u.data()[i] = d(rng);
              for (Eigen::Index i = 0; i < v.size(); ++i) v.data()[i] = d(rng);
              GemmOptions o;
              o.bias = &bias;
              o.lorc_u = &u;
              o.lorc_v = &v;
              RowMatrixXf y_terms(tokens, n_out);
              gemm(xh, w, y_terms, o);
              const RowMatrixXf expect = yv + (xf * v.transpose()) * u.transpose() + bias.transpose().replicate(tokens, 1);
              CHECK((y_terms - expect).cwiseAbs().maxCoeff() <= 1e-4f * (1.0f + expect.cwiseAbs().maxCoeff()));
            }
          }
        }
      }
}

}  // namespace

TEST_CASE("gemm with fp16 activations: every tier matches the reference over the edge-case menu",
          "[gemm_half_input]") {
  int fp16_runs = 0;
  check_menu<Eigen::half>(fp16_runs);
  if (LOWBIT_HAVE_AVX512FP16 && host_cpu_features().avx512fp16) CHECK(fp16_runs > 0);  // the AVX512-FP16 path really ran
}

TEST_CASE("gemm with bf16 activations: every tier matches the reference over the edge-case menu",
          "[gemm_half_input]") {
  int fp16_runs = 0;
  check_menu<Eigen::bfloat16>(fp16_runs);
  if (LOWBIT_HAVE_AVX512FP16 && host_cpu_features().avx512fp16) CHECK(fp16_runs > 0);
}

TEST_CASE("gemm with 16-bit activations: the ends of the fp16 and bf16 ranges", "[gemm_half_input]") {
  // Tokens mixing the largest and smallest magnitudes each format holds: the per-token power
  // of two keeps fp16 lanes from overflowing, and only values below 2^-20 of the token's
  // largest lose bits (the bound's second term).
  const std::int64_t n_out = 40, k = 256, tokens = 8;
  for (const w4a16_case& c : w4a16_cases) {
    const QuantizedMatrix q = random_w4(c, n_out, k, 64, 77);
    const RowMatrixXf w_abs = abs_weights(q);
    const float w_max = w_abs.maxCoeff();
    for (activation_dtype dt : {activation_dtype::f16, activation_dtype::bf16}) {
      const bool bf = dt == activation_dtype::bf16;
      const float big = bf ? 1e30f : 65504.0f, small = bf ? 1e-30f : 6e-8f;
      const float sub = bf ? 1e-39f : 3e-5f;  // bf16 subnormal; fp16 near its normal minimum
      RowMatrixXf x = random_x(tokens, k, 5);
      for (std::int64_t i = 0; i < k; ++i) {
        x(0, i) = (i % 2 ? -big : big) * (i % 3 == 0 ? 1.0f : 0.5f);  // every product at the top
        x(2, i) = i % 5 == 0 ? big : small * static_cast<float>(i % 7);
        x(3, i) = sub * static_cast<float>(1 + i % 4) * (i % 2 ? -1.0f : 1.0f);
        x(4, i) = i == 100 ? big : 0.0f;
      }
      for (isa_tier tier : supported_isa_tiers()) {
        INFO(to_string(c.scheme) << (c.symmetric ? "" : " asym") << " " << to_string(dt) << " tier "
                                 << to_string(tier));
        PackOptions po;
        po.tier = tier;
        po.activations = activation_quant::none;
        const PackedWeights w = pack(q, po);
        RowMatrixXf xf, y(tokens, n_out);
        if (bf) {
          const RowMatrixXbf16 xh = x.cast<Eigen::bfloat16>();
          xf = xh.cast<float>();
          gemm(xh, w, y);
        } else {
          const RowMatrixXh xh = x.cast<Eigen::half>();
          xf = xh.cast<float>();
          gemm(xh, w, y);
        }
        REQUIRE(y.allFinite());
        const RowMatrixXf ref = float_reference_gemm(q, c.scheme, xf);
        const RowMatrixXf sum_abs = xf.cwiseAbs() * w_abs.transpose();
        const bool fp16 = float_uses_fp16_path(w.float_weights(), tokens, dt);
        double worst = 0.0;
        for (std::int64_t t = 0; t < tokens; ++t)
          for (std::int64_t n = 0; n < n_out; ++n) {
            const double amax = xf.row(t).cwiseAbs().maxCoeff();
            const double bound = fp16 ? fp16_path_tolerance * sum_abs(t, n) + k * std::ldexp(amax, -30) * w_max
                                      : fp32_path_tolerance * sum_abs(t, n);
            const double d = std::fabs(static_cast<double>(y(t, n)) - ref(t, n));
            worst = std::max(worst, d / (bound + 1e-300));
          }
        CHECK(worst <= 1.0);
      }
    }
  }
}

TEST_CASE("gemm with 16-bit activations: non-finite values name their token and column", "[gemm_half_input]") {
  const QuantizedMatrix q = random_w4(w4a16_cases[0], 40, 96, 32, 3);
  for (isa_tier tier : supported_isa_tiers()) {
    PackOptions po;
    po.tier = tier;
    po.activations = activation_quant::none;
    const PackedWeights w = pack(q, po);
    for (std::int64_t tokens : {1, 9}) {  // the widening path and (AVX512-FP16) the fast one
      INFO("tier " << to_string(tier) << " tokens " << tokens);
      RowMatrixXf y(tokens, 40);
      RowMatrixXh xh = random_x(tokens, 96, 4).cast<Eigen::half>();
      xh(tokens - 1, 37) = Eigen::half(std::numeric_limits<float>::infinity());
      CHECK_THROWS_WITH(gemm(xh, w, y), Catch::Contains("token " + std::to_string(tokens - 1) + ", column 37"));
      xh(tokens - 1, 37) = Eigen::half(std::numeric_limits<float>::quiet_NaN());
      CHECK_THROWS_WITH(gemm(xh, w, y), Catch::Contains("column 37"));
      RowMatrixXbf16 xb = random_x(tokens, 96, 4).cast<Eigen::bfloat16>();
      xb(0, 95) = Eigen::bfloat16(-std::numeric_limits<float>::infinity());
      CHECK_THROWS_WITH(gemm(xb, w, y), Catch::Contains("token 0, column 95"));
      xb(0, 95) = Eigen::bfloat16(std::numeric_limits<float>::quiet_NaN());
      CHECK_THROWS_WITH(gemm(xb, w, y), Catch::Contains("column 95"));
      // Shapes are checked before anything runs.
      RowMatrixXf y_bad(tokens, 39);
      CHECK_THROWS_WITH(gemm(RowMatrixXh(xh), w, y_bad), Catch::Contains("y is"));
      CHECK_THROWS_WITH(gemm(RowMatrixXh(tokens, 95), w, y), Catch::Contains("K = 96"));
    }
  }
}

TEST_CASE("gemm with 16-bit activations: other schemes and smoothing widen to fp32 exactly", "[gemm_half_input]") {
  const std::int64_t n_out = 50, k = 160, tokens = 9;
  const RowMatrixXh xh = random_x(tokens, k, 8).cast<Eigen::half>();
  const RowMatrixXbf16 xb = random_x(tokens, k, 8).cast<Eigen::bfloat16>();
  const RowMatrixXf xhf = xh.cast<float>(), xbf = xb.cast<float>();
  std::vector<std::pair<QuantizedMatrix, PackOptions>> cases;
  test::int_matrix_recipe r8;
  r8.rows = n_out;
  r8.cols = k;
  r8.format = element_format::int8;
  r8.group = 0;
  r8.code_lo = -127;
  r8.code_hi = 127;
  cases.push_back({test::make_int_matrix(r8), PackOptions{}});
  test::int_matrix_recipe r4 = r8;
  r4.format = element_format::int4;
  r4.group = 32;
  r4.code_lo = -7;
  r4.code_hi = 7;
  cases.push_back({test::make_int_matrix(r4), PackOptions{}});
  // Weight-only int8 (w8a16_int8) has no AVX512-FP16 path: it widens too.
  test::int_matrix_recipe r8g = r8;
  r8g.group = 16;
  r8g.code_lo = -128;
  PackOptions weight_only;
  weight_only.activations = activation_quant::none;
  cases.push_back({test::make_int_matrix(r8g), weight_only});
  PackOptions fp8;
  fp8.activations = activation_quant::float8_e4m3fn;
  cases.push_back({random_w4({gemm_scheme::w4a8_fp4, element_format::float4_e2m1fn, true}, n_out, k, 32, 9), fp8});
  for (const auto& [q, po0] : cases)
    for (isa_tier tier : supported_isa_tiers()) {
      PackOptions po = po0;
      po.tier = tier;
      const PackedWeights w = pack(q, po);
      INFO(selected_kernel(w));
      RowMatrixXf y16(tokens, n_out), y32(tokens, n_out);
      gemm(xh, w, y16);
      gemm(xhf, w, y32);
      CHECK((y16.array() == y32.array()).all());
      gemm(xb, w, y16);
      if (w.is_float_family() && detail::float_uses_avx512bf16_tiles(w.float_weights(), tokens, activation_dtype::bf16) &&
          !detail::scheme_quantizes_activations(w.scheme())) {
        // bf16 rows on the VDPBF16PS tiles; the widened rows take the fp32 kernel unless the
        // weights round fp32 inputs to bf16, which leaves bf16 values as they are: same bits.
        PackOptions rounding = po;
        rounding.bf16_activations = true;
        gemm(xbf, pack(q, rounding), y32);
      } else {
        gemm(xbf, w, y32);
      }
      CHECK((y16.array() == y32.array()).all());
      CHECK(selected_kernel(w, activation_dtype::f16) == std::string(selected_kernel(w)));
      // The record's family rule says which (gemm() asks it): none of these, except weight-only
      // int8 on the bf16 tiles, which read the rows as they are (the same bits: checked above):
      // packed for AMX-BF16 (both inputs), or on VDPBF16PS where it pays (bf16 inputs only: an
      // fp16 row would need two bf16 parts); a workspace for 16-bit rows is refused where the
      // rule says no.
      for (activation_dtype dt : {activation_dtype::f16, activation_dtype::bf16}) {
        const bool tiles_read =
            w.is_float_family() && !detail::scheme_quantizes_activations(w.scheme()) &&
            (w.float_weights().amx_bf16 || detail::float_uses_avx512bf16_tiles(w.float_weights(), tokens, dt));
        if (w.is_float_family() && w.float_weights().tier == isa_tier::avx512 && !w.float_weights().amx_bf16 &&
            dt == activation_dtype::bf16 && !detail::scheme_quantizes_activations(w.scheme()))
          CHECK(detail::float_uses_avx512bf16_tiles(w.float_weights(), tokens, dt) ==
                detail::avx512bf16_pays(host_cpu_features()));
        CHECK(w.kernel()->ops->reads_16bit(w.header(), tokens, dt) == tiles_read);
        if (!tiles_read) CHECK_THROWS_AS(w.kernel()->ops->make_workspace(w.header(), tokens, k, dt), lowbit::error);
      }
      // The widening runs over token ranges on the pool: same bits with 2 threads, and a
      // non-finite value in a worker's range (token 33 of 40) reaches the caller.
      RowMatrixXh xh40 = random_x(40, k, 11).cast<Eigen::half>();
      RowMatrixXf y40a(40, n_out), y40b(40, n_out);
      GemmOptions two;
      two.num_threads = 2;
      gemm(RowMatrixXf(xh40.cast<float>()), w, y40a);
      gemm(xh40, w, y40b, two);
      CHECK((y40a.array() == y40b.array()).all());
      xh40(33, 100) = Eigen::half(std::numeric_limits<float>::quiet_NaN());
      CHECK_THROWS_WITH(gemm(xh40, w, y40b, two), Catch::Contains("token 33, column 100"));
    }
  // W4A16 with a smoothing vector: x / s is computed in fp32, so the fp32 path runs.
  const QuantizedMatrix q = random_w4(w4a16_cases[0], n_out, k, 32, 10);
  Eigen::VectorXf s = Eigen::VectorXf::LinSpaced(k, 0.5f, 3.0f);
  GemmOptions o;
  o.smoothing = &s;
  for (isa_tier tier : supported_isa_tiers()) {
    PackOptions po;
    po.tier = tier;
    po.activations = activation_quant::none;
    const PackedWeights w = pack(q, po);
    REQUIRE(w.scheme() == gemm_scheme::w4a16_int4);
    RowMatrixXf y16(tokens, n_out), y32(tokens, n_out);
    gemm(xh, w, y16, o);
    gemm(xhf, w, y32, o);
    CHECK((y16.array() == y32.array()).all());
  }
}

TEST_CASE("gemm with 16-bit activations: kernel names, threads", "[gemm_half_input]") {
  // (the w4a8_fp4 rows below check the fp32-input prepare split over threads as well)
  const QuantizedMatrix q = random_w4(w4a16_cases[2], 100, 256, 128, 12);
  const QuantizedMatrix q_odd = random_w4(w4a16_cases[2], 100, 256, 33, 12);
  for (isa_tier tier : supported_isa_tiers()) {
    PackOptions po;
    po.tier = tier;
    // The AVX-512 vector sub-tier, so that the AVX512-FP16 path runs on AMX hosts too (their
    // default sub-tier packs the AMX-BF16 records: tests/test_gemm_amx_bf16.cpp).
    if (tier == isa_tier::avx512) po.subtier = detail::best_vector_subtier(tier, host_cpu_features());
    po.activations = activation_quant::none;
    const PackedWeights w = pack(q, po), w_odd = pack(q_odd, po);
    REQUIRE(w.scheme() == gemm_scheme::w4a16_fp4);
    const bool fp16 = tier == isa_tier::avx512 && LOWBIT_HAVE_AVX512FP16 && host_cpu_features().avx512fp16;
    // bf16 rows on the VDPBF16PS tiles instead, where those pay (AVX512-BF16 without -FP16).
    const bool bf16_tiles = tier == isa_tier::avx512 && detail::avx512bf16_pays(host_cpu_features());
    const std::string base(selected_kernel(w));
    CHECK(selected_kernel(w, activation_dtype::f32) == base);
    CHECK(selected_kernel(w, activation_dtype::f16) == (fp16 ? base + "fp16" : base));
    CHECK(selected_kernel(w, activation_dtype::bf16) == (fp16 ? base + "fp16" : bf16_tiles ? base + "bf16" : base));
    CHECK(selected_kernel(w_odd, activation_dtype::f16) == std::string(selected_kernel(w_odd)));  // odd groups
    // The family rule gemm() asks: fp16 path for more than 4 tokens, never for odd groups.
    CHECK(w.kernel()->ops->reads_16bit(w.header(), 5, activation_dtype::f16) == fp16);
    CHECK(w.kernel()->ops->reads_16bit(w.header(), 5, activation_dtype::bf16) == (fp16 || bf16_tiles));
    CHECK_FALSE(w.kernel()->ops->reads_16bit(w.header(), 4, activation_dtype::f16));
    CHECK_FALSE(w.kernel()->ops->reads_16bit(w.header(), 5, activation_dtype::f32));
    CHECK_FALSE(w_odd.kernel()->ops->reads_16bit(w_odd.header(), 5, activation_dtype::f16));

    // Column ranges split over threads give the same bits as one thread.
    const RowMatrixXh xh = random_x(21, 256, 13).cast<Eigen::half>();
    RowMatrixXf y1(21, 100), y2(21, 100);
    GemmOptions o1, o2;
    o1.num_threads = 1;
    o2.num_threads = 2;
    gemm(xh, w, y1, o1);
    gemm(xh, w, y2, o2);
    CHECK((y1.array() == y2.array()).all());

    // Activations are prepared over token ranges on the pool too: same bits, and an error
    // in a range run by a worker reaches the caller.
    RowMatrixXh xh40 = random_x(40, 256, 14).cast<Eigen::half>();
    RowMatrixXf y40a(40, 100), y40b(40, 100);
    gemm(xh40, w, y40a, o1);
    gemm(xh40, w, y40b, o2);
    CHECK((y40a.array() == y40b.array()).all());
    xh40(33, 200) = Eigen::half(std::numeric_limits<float>::infinity());
    CHECK_THROWS_WITH(gemm(xh40, w, y40b, o2), Catch::Contains("token 33, column 200"));
    PackOptions pa8 = po;
    pa8.activations = activation_quant::float8_e4m3fn;
    const PackedWeights wa8 = pack(q, pa8);
    RowMatrixXf x40 = random_x(40, 256, 15);
    gemm(x40, wa8, y40a, o1);
    gemm(x40, wa8, y40b, o2);
    CHECK((y40a.array() == y40b.array()).all());
    x40(35, 3) = std::numeric_limits<float>::quiet_NaN();
    CHECK_THROWS_WITH(gemm(x40, wa8, y40b, o2), Catch::Contains("token 35, column 3"));

    // No tokens: nothing to do, no error.
    RowMatrixXf y0(0, 100);
    CHECK_NOTHROW(gemm(RowMatrixXh(0, 256), w, y0));
    CHECK_NOTHROW(gemm(RowMatrixXbf16(0, 256), w, y0));
  }
}
}  // namespace test_gemm_half_input_cpp
