// The float-decoding kernel family (w8a8_fp8, w4a8_fp4, w4a16_int4, w4a16_fp4, w8a16_int8): every ISA
// tier this CPU runs against the scalar oracle (kernels/float_reference.hpp) over the
// edge-case menu, the E4M3 activation rule bit for bit, end to end against dequantize + an
// fp32 product, and the checked errors.
#include <catch2/catch.hpp>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <limits>
#include <random>
#include <string>
#include <vector>

#include "lowbit/kernels/float_family.hpp"
#include "lowbit/kernels/registry.hpp"
#include "lowbit/quant/activation.hpp"
#include "test_gemm_support.hpp"

// One namespace per test file, so that any set of test files can be compiled as one
// unity translation unit (tests/CMakeLists.txt) without their file-local names clashing.
namespace test_float_kernels_cpp {

using namespace lowbit;
using namespace lowbit::detail;

namespace {

struct scheme_case {
  gemm_scheme scheme;
  element_format format;
  bool symmetric;
  bool offset = false;  // float-offset groups (GGUF Q4_K imports)
};

const scheme_case all_cases[] = {
    {gemm_scheme::w8a8_fp8, element_format::float8_e4m3fn, true},
    {gemm_scheme::w4a8_fp4, element_format::float4_e2m1fn, true},
    {gemm_scheme::w4a16_int4, element_format::int4, true},
    {gemm_scheme::w4a16_int4, element_format::int4, false},
    {gemm_scheme::w4a16_fp4, element_format::float4_e2m1fn, true},
    {gemm_scheme::w8a16_int8, element_format::int8, true},
    {gemm_scheme::w4a16_int4, element_format::int4, false, true},
};

// Random codes and scales built by hand (test_gemm_support.hpp); symmetric int4 without -8.
QuantizedMatrix random_matrix(const scheme_case& sc, std::int64_t rows, std::int64_t cols,
                              std::int64_t group, std::uint32_t seed) {
  return lowbit::test::random_float_family_matrix(sc.format, sc.symmetric, rows, cols, group, seed, false, sc.offset);
}

RowMatrixXf random_activations(std::int64_t tokens, std::int64_t cols, std::uint32_t seed) {
  std::mt19937 rng(seed);
  std::normal_distribution<float> d(0.0f, 1.0f);
  RowMatrixXf x(tokens, cols);
  for (std::int64_t t = 0; t < tokens; ++t)
    for (std::int64_t c = 0; c < cols; ++c) x(t, c) = d(rng) * (c % 17 == 3 ? 20.0f : 1.0f);
  if (tokens > 2) x.row(1).setZero();  // amax == 0: scale 0, y row 0
  return x;
}

// The stated tolerance (test_gemm_support.hpp) and the AVX512-FP16 w4a8_fp4 path's
// (x86/avx512fp16_float.hpp).
constexpr float float_tolerance = lowbit::test::float_family_tolerance;
constexpr float fp16_path_tolerance = 1.0f / 64;
using lowbit::test::worst_ratio;
RowMatrixXf tolerance(const QuantizedMatrix& q, gemm_scheme scheme, const RowMatrixXf& x) {
  return lowbit::test::float_family_tolerances(q, scheme, x);
}

std::int64_t group_for(std::int64_t k, int variant) {
  if (variant == 1) return k;  // per channel
  return k >= 1024 ? 128 : k >= 64 ? 32 : 16;
}

}  // namespace

TEST_CASE("float kernels: e4m3_code_fast equals convert<float8_e4m3fn>", "[float_kernels]") {
  auto check = [](float v) {
    const std::uint8_t want = convert<float8_e4m3fn>(v, saturation::finite).bits();
    const std::uint8_t got = e4m3_code_fast(v);
    if (got != want) FAIL("v = " << v << " fast " << int(got) << " convert " << int(want));
  };
  // Every code's value, the midpoints between neighbours and one ulp either side.
  for (int c = 0; c < 0x7F; ++c) {
    const float a = float8_e4m3fn::from_bits(static_cast<std::uint8_t>(c)).to_float();
    const float b = c + 1 < 0x7F ? float8_e4m3fn::from_bits(static_cast<std::uint8_t>(c + 1)).to_float() : 464.0f;
    for (float v : {a, 0.5f * (a + b)})
      for (float u : {v, std::nextafter(v, 0.0f), std::nextafter(v, 1e9f)}) {
        check(u);
        check(-u);
      }
  }
  for (float v : {448.0f, 449.0f, 463.99f, 464.0f, 465.0f, 480.0f, 1e-30f, 0.0f, -0.0f}) check(v);
  std::mt19937 rng(7);
  std::uniform_real_distribution<float> e(-14.0f, 9.0f);
  std::uniform_real_distribution<float> m(1.0f, 2.0f);
  for (int i = 0; i < 200000; ++i) check((i & 1 ? -1.0f : 1.0f) * m(rng) * std::exp2(std::floor(e(rng))));
}

TEST_CASE("float kernels: prepare quantizes activations with the reference rule", "[float_kernels]") {
  const scheme_case sc = all_cases[1];
  // Every one-token path's workspace (the CPU rule, then each one forced where it can run).
  struct restore_path {
    ~restore_path() { one_token_path_override().store(one_token_path::automatic); }
  } restore;
  for (one_token_path path : {one_token_path::automatic, one_token_path::quad, one_token_path::bf16_pairs,
                              one_token_path::int_planes})
  for (std::int64_t k : {1, 7, 300})
    for (isa_tier tier : supported_isa_tiers())
      for (std::int64_t tokens : {1, 4, 6}) {  // 1: AVX-512's x_quad; 6: AVX512-FP16's x_half
        one_token_path_override().store(path);
        INFO("K " << k << " tier " << to_string(tier) << " tokens " << tokens << " path " << static_cast<int>(path));
        const QuantizedMatrix q = random_matrix(sc, 5, k, 16, 3);
        const float_packed w = pack_float(q, sc.scheme, tier);
        RowMatrixXf big = random_activations(tokens, k + 3, 11);
        big(0, 1) = 1e-7f;  // tiny values round to (signed) zero / subnormals
        if (tokens > 1) big(tokens - 1, 0) = -1e30f;  // one huge value flushes its token
        const ConstRowMatrixRef x = big.leftCols(k);  // strided input
        const float_workspace ws = prepare_float(w, x);
        const bool half = float_uses_fp16_path(w, tokens);
        REQUIRE(ws.x_half.empty() != half);
        const bool quad = float_uses_quad_path(w, tokens);
        REQUIRE(ws.x_quad.empty() != quad);
        // The bf16-pair and integer-plane paths replace it where they pay, and then x_quad is
        // not made; the planes (w4a8_fp4, groups of 16 here) are made exactly for the latter.
        const bool planes = float_uses_int_planes(w, tokens);
        REQUIRE(ws.x_planes.empty() != planes);
        CHECK(quad == (tokens == 1 && tier == isa_tier::avx512 && !float_uses_bf16_pairs(w, tokens) && !planes));
        if (path == one_token_path::int_planes)
          CHECK(planes == (tokens == 1 && tier == isa_tier::avx512 && k >= 4 &&
                           avx512_int_planes_runs(host_cpu_features())));
        std::vector<std::uint8_t> codes(static_cast<std::size_t>(k));
        for (std::int64_t t = 0; t < tokens; ++t) {
          const RowMatrixXf row = x.row(t);
          float s = -1.0f;
          quantize_token_e4m3_reference(row.data(), k, t, codes.data(), &s);
          REQUIRE(s == ws.token_scales[static_cast<std::size_t>(t)]);
          for (std::int64_t c = 0; c < k; ++c) {
            REQUIRE(int(codes[static_cast<std::size_t>(c)]) == int(ws.codes[static_cast<std::size_t>(t * k + c)]));
            const float value = float8_e4m3fn::from_bits(codes[static_cast<std::size_t>(c)]).to_float();
            const std::size_t at = static_cast<std::size_t>(t * ws.x_stride + c);
            if (half)
              REQUIRE(Eigen::numext::bit_cast<Eigen::half>(ws.x_half[at]) == Eigen::half(value / 2));
            else
              REQUIRE(value == ws.x[at]);
            if (quad)
              for (std::size_t r = 0; r < 4; ++r) REQUIRE(value == ws.x_quad[4 * static_cast<std::size_t>(c) + r]);
            if (planes && c < k / 4 * 4) {  // the digits of value * 2^9
              const std::size_t n = static_cast<std::size_t>(k / 4 * 4), cc = static_cast<std::size_t>(c);
              REQUIRE(static_cast<double>(value) * 512.0 ==
                      ws.x_planes[cc] + 256.0 * ws.x_planes[n + cc] + 65536.0 * ws.x_planes[2 * n + cc]);
            }
          }
        }
      }
}

TEST_CASE("float kernels: prepare agrees with lowbit::quantize_activations bit for bit", "[float_kernels]") {
  const scheme_case sc = all_cases[0];
  for (std::int64_t k : {1, 33, 4096}) {
    const QuantizedMatrix q = random_matrix(sc, 3, k, k, 8);
    const float_packed w = pack_float(q, sc.scheme, isa_tier::scalar);
    RowMatrixXf x = random_activations(6, k, 12);
    x(0, 0) = 3e-6f;
    const float_workspace ws = prepare_float(w, x);
    const QuantizedActivations a = quantize_activations(x, act_format::float8_e4m3fn);
    REQUIRE(a.groups_per_row == 1);
    for (std::int64_t t = 0; t < 6; ++t) REQUIRE(a.scales[static_cast<std::size_t>(t)] == ws.token_scales[static_cast<std::size_t>(t)]);
    REQUIRE(a.codes.size() == ws.codes.size());
    REQUIRE(std::equal(a.codes.begin(), a.codes.end(), ws.codes.data()));
  }
}

TEST_CASE("float kernels: every tier matches the reference over the edge-case menu", "[float_kernels]") {
  const std::int64_t n_out = 45;  // one full 32-column block and a ragged one
  std::uint32_t seed = 1;
  for (const scheme_case& sc : all_cases)
    for (std::int64_t k : {1, 2, 31, 32, 33, 172, 4096})
      for (int variant : {0, 1}) {
        if (variant == 1 && k != 172 && k != 33) continue;
        const QuantizedMatrix q = random_matrix(sc, n_out, k, group_for(k, variant), seed++);
        std::vector<std::int64_t> token_counts = {1, 2, 3, 7, 16, 33};
        if (k == 4096) token_counts = {1, 3, 16, 33};
        for (std::int64_t tokens : token_counts) {
          const RowMatrixXf x = random_activations(tokens, k, seed++);
          const RowMatrixXf ref = float_reference_gemm(q, sc.scheme, x);
          const RowMatrixXf tol = tolerance(q, sc.scheme, x);
          for (isa_tier tier : supported_isa_tiers()) {
            INFO("scheme " << to_string(sc.scheme) << (sc.symmetric ? "" : " asym") << (sc.offset ? " offset" : "")
                           << " tier " << to_string(tier) << " K " << k << " group " << q.group_size
                           << " tokens " << tokens);
            const float_packed w = pack_float(q, sc.scheme, tier);
            const float_workspace ws = prepare_float(w, x);
            // Strided output with a sentinel frame, filled in three column ranges that do
            // not start on block boundaries.
            RowMatrixXf big = RowMatrixXf::Constant(tokens + 2, n_out + 7, 12345.0f);
            RowMatrixRef y = big.block(1, 3, tokens, n_out);
            run_float(w, ws, y, 0, 5);
            run_float(w, ws, y, 5, 37);
            run_float(w, ws, y, 37, n_out);
            if (float_uses_fp16_path(w, tokens)) {
              // fp16 runs: the bound of avx512fp16_float.hpp, and a typical-error check.
              CHECK(worst_ratio(RowMatrixXf(y), ref, tol * (fp16_path_tolerance / float_tolerance)) <= 1.0);
              CHECK((RowMatrixXf(y) - ref).norm() <= 2e-3 * ref.norm());
            } else {
              CHECK(worst_ratio(RowMatrixXf(y), ref, tol) <= 1.0);
            }
            CHECK((big.leftCols(3).array() == 12345.0f).all());
            CHECK((big.rightCols(4).array() == 12345.0f).all());
            CHECK((big.row(0).array() == 12345.0f).all());
            CHECK((big.row(tokens + 1).array() == 12345.0f).all());
          }
        }
      }
}

// The buffered paths multiply x by a tile of w_hat decoded once per chunk; each tier's decoder
// must give dequantize()'s fp32 value bit for bit (the reference's weight_value_reference).
TEST_CASE("float kernels: every tier's tile decoder equals dequantize bit for bit", "[float_kernels]") {
  for (const scheme_case& sc : all_cases)
    for (std::int64_t k : {33, 300}) {
      const QuantizedMatrix q = random_matrix(sc, 45, k, k == 33 ? 16 : 32, 41);
      for (isa_tier tier : supported_isa_tiers()) {
        INFO("scheme " << to_string(sc.scheme) << (sc.symmetric ? "" : " asym") << (sc.offset ? " offset" : "")
                       << " tier " << to_string(tier) << " K " << k);
        const float_packed w = pack_float(q, sc.scheme, tier);
        std::vector<float> tile(static_cast<std::size_t>(k * float_block_cols));
        for (std::int64_t b = 0; b < w.blocks; ++b) {
#if LOWBIT_HAVE_X86_SIMD
          if (tier == isa_tier::avx512)
            avx512_decode_rows(w, b, 0, k, tile.data());
          else if (tier == isa_tier::avx2)
            avx2_decode_rows(w, b, 0, k, tile.data());
          else
#endif
            decode_float_rows_scalar(w, b, 0, k, tile.data());
          std::int64_t bad = 0;
          for (std::int64_t j = 0; j < float_block_cols; ++j) {
            const std::int64_t r = b * float_block_cols + j;
            if (r >= q.rows) break;
            for (std::int64_t c = 0; c < k; ++c) {
              const float want = weight_value_reference(q, r, c), got = tile[static_cast<std::size_t>(c * 32 + j)];
              if (Eigen::numext::bit_cast<std::uint32_t>(want) != Eigen::numext::bit_cast<std::uint32_t>(got)) ++bad;
            }
          }
          CHECK(bad == 0);
        }
      }
    }
}

TEST_CASE("float kernels: end to end against dequantize + fp32 product", "[float_kernels]") {
  for (const scheme_case& sc : all_cases) {
    const std::int64_t n_out = 70, k = 333, tokens = 9;
    const QuantizedMatrix q = random_matrix(sc, n_out, k, 64, 99);
    const RowMatrixXf x = random_activations(tokens, k, 98);
    RowMatrixXf w_hat(n_out, k);
    for (std::int64_t r = 0; r < n_out; ++r)
      for (std::int64_t c = 0; c < k; ++c) w_hat(r, c) = weight_value_reference(q, r, c);
    RowMatrixXf x_hat = x;  // what the kernel multiplies: x, or its E4M3 round trip
    if (scheme_quantizes_activations(sc.scheme)) {
      std::vector<std::uint8_t> codes(static_cast<std::size_t>(k));
      for (std::int64_t t = 0; t < tokens; ++t) {
        const RowMatrixXf row = x.row(t);
        float s = 0.0f;
        quantize_token_e4m3_reference(row.data(), k, t, codes.data(), &s);
        for (std::int64_t c = 0; c < k; ++c)
          x_hat(t, c) = float8_e4m3fn::from_bits(codes[static_cast<std::size_t>(c)]).to_float() * s;
      }
    }
    const RowMatrixXf expect = x_hat * w_hat.transpose();
    const RowMatrixXf tol = tolerance(q, sc.scheme, x);
    for (isa_tier tier : supported_isa_tiers()) {
      INFO("scheme " << to_string(sc.scheme) << " tier " << to_string(tier));
      const float_packed w = pack_float(q, sc.scheme, tier);
      RowMatrixXf y(tokens, n_out);
      run_float(w, prepare_float(w, x), y, 0, n_out);
      const float factor = float_uses_fp16_path(w, tokens) ? fp16_path_tolerance / float_tolerance : 1.0f;
      CHECK(worst_ratio(y, expect, tol * factor) <= 1.0);
      CHECK(float_packed_bytes(w) > 0);
      CHECK(float_kernel_name(w).find(std::string(to_string(tier))) != std::string::npos);
    }
  }
}

TEST_CASE("float kernels: scheme choice and names", "[float_kernels]") {
  QuantSpec s;
  s.format = element_format::float4_e2m1fn;
  CHECK(choose_float_scheme(s, act_format::float8_e4m3fn) == gemm_scheme::w4a8_fp4);
  CHECK(choose_float_scheme(s, std::nullopt) == gemm_scheme::w4a16_fp4);
  s.format = element_format::int4;
  CHECK(choose_float_scheme(s, std::nullopt) == gemm_scheme::w4a16_int4);
  CHECK_THROWS_AS(choose_float_scheme(s, act_format::float8_e4m3fn), lowbit::error);
  CHECK_THROWS_AS(choose_float_scheme(s, act_format::int8), lowbit::error);
  s.format = element_format::float8_e4m3fn;
  CHECK(choose_float_scheme(s, act_format::float8_e4m3fn) == gemm_scheme::w8a8_fp8);
  CHECK_THROWS_AS(choose_float_scheme(s, std::nullopt), lowbit::error);
  s.format = element_format::float8_e5m2;
  CHECK_THROWS_AS(choose_float_scheme(s, act_format::float8_e4m3fn), lowbit::error);
  // Weight-only int8 (GGUF Q8_0/Q6_K imports): symmetric only, never with E4M3 activations.
  s.format = element_format::int8;
  CHECK(choose_float_scheme(s, std::nullopt) == gemm_scheme::w8a16_int8);
  CHECK_THROWS_AS(choose_float_scheme(s, act_format::float8_e4m3fn), lowbit::error);
  s.symmetric = false;
  CHECK_THROWS_AS(choose_float_scheme(s, std::nullopt), lowbit::error);

  const QuantizedMatrix q = random_matrix(all_cases[1], 8, 256, 128, 5);
  CHECK(float_kernel_name(pack_float(q, gemm_scheme::w4a8_fp4, isa_tier::scalar)) == "w4a8_fp4_g128_scalar");
  const QuantizedMatrix q8 = random_matrix(all_cases[5], 8, 256, 32, 5);
  for (isa_tier tier : supported_isa_tiers()) {
    const float_packed w8 = pack_float(q8, gemm_scheme::w8a16_int8, tier);
    CHECK(float_kernel_name(w8) == "w8a16_int8_g32_" + std::string(to_string(tier)));
    CHECK(w8.code == float_code::int8_signed);
    CHECK(w8.krow_bytes == 32);
    // Only fp32 paths: no one-token 4-bit paths, no AVX512-FP16 (|w| up to 128 * scale).
    for (std::int64_t tokens : {1, 8})
      for (activation_dtype in : {activation_dtype::f32, activation_dtype::f16, activation_dtype::bf16}) {
        CHECK_FALSE(float_uses_fp16_path(w8, tokens, in));
        CHECK_FALSE(float_uses_quad_path(w8, tokens));
        CHECK_FALSE(float_uses_bf16_pairs(w8, tokens));
      }
  }
  // The int8 codes are not E4M3: 0x7F/0xFF (127, -1) pack, and int8 packs only as w8a16_int8.
  QuantizedMatrix q8n = q8;
  q8n.codes[0] = 0x7F;
  q8n.codes[1] = 0xFF;
  CHECK_NOTHROW(pack_float(q8n, gemm_scheme::w8a16_int8, isa_tier::scalar));
  CHECK_THROWS_AS(pack_float(q8, gemm_scheme::w4a16_int4, isa_tier::scalar), lowbit::error);
  CHECK_THROWS_AS(pack_float(q8, gemm_scheme::w8a8_fp8, isa_tier::scalar), lowbit::error);
  CHECK_THROWS_AS(pack_float(q, gemm_scheme::w8a16_int8, isa_tier::scalar), lowbit::error);
}

TEST_CASE("float kernels: float-offset groups (GGUF Q4_K) pack, name and refuse as documented", "[float_kernels]") {
  const scheme_case sc = all_cases[6];
  REQUIRE(sc.offset);
  const QuantizedMatrix q = random_matrix(sc, 40, 96, 32, 31);
  for (isa_tier tier : supported_isa_tiers()) {
    const float_packed w = pack_float(q, gemm_scheme::w4a16_int4, tier);
    CHECK(w.code == float_code::uint4_with_offset);
    CHECK(float_kernel_name(w) == "w4a16_int4_offset_g32_" + std::string(to_string(tier)));
    // The offsets ride in the zero-point slots: [block][group][32].
    CHECK(w.zeros[static_cast<std::size_t>(0 * w.groups + 1) * 32 + 5] == q.offsets[5 * 3 + 1]);
    // No AVX512-FP16 path for them: fp16/bf16 activations widen to fp32.
    for (activation_dtype in : {activation_dtype::f16, activation_dtype::bf16})
      CHECK_FALSE(float_uses_fp16_path(w, 8, in));
  }
  QuantizedMatrix m = q;
  m.offsets.pop_back();
  CHECK_THROWS_WITH(pack_float(m, gemm_scheme::w4a16_int4, isa_tier::scalar), Catch::Contains("offset"));
  m = q;
  m.offsets[7] = std::numeric_limits<float>::quiet_NaN();
  CHECK_THROWS_WITH(pack_float(m, gemm_scheme::w4a16_int4, isa_tier::scalar), Catch::Contains("non-finite offset"));
}

TEST_CASE("float kernels: checked errors", "[float_kernels]") {
  const QuantizedMatrix q = random_matrix(all_cases[1], 40, 64, 32, 21);
  const float_packed w = pack_float(q, gemm_scheme::w4a8_fp4, isa_tier::scalar);
  const RowMatrixXf x = random_activations(3, 64, 22);
  const float_workspace ws = prepare_float(w, x);
  RowMatrixXf y(3, 40);

  // Wrong layout id, a workspace of other weights, a tier the CPU lacks, bad shapes.
  float_packed bad = w;
  bad.layout = 0x1234;
  CHECK_THROWS_AS(run_float(bad, ws, y, 0, 40), lowbit::error);
  CHECK_THROWS_AS(prepare_float(bad, x), lowbit::error);
  const QuantizedMatrix q2 = random_matrix(all_cases[1], 40, 64, 16, 23);
  const float_packed w2 = pack_float(q2, gemm_scheme::w4a8_fp4, isa_tier::scalar);
  CHECK_THROWS_AS(run_float(w2, ws, y, 0, 40), lowbit::error);
  const float_packed w16 = pack_float(q, gemm_scheme::w4a16_fp4, isa_tier::scalar);
  CHECK_THROWS_AS(run_float(w16, ws, y, 0, 40), lowbit::error);
  for (isa_tier t : {isa_tier::avx2, isa_tier::avx512, isa_tier::neon}) {
    if (detail::tier_supported(t, host_cpu_features())) continue;
    CHECK_THROWS_AS(pack_float(q, gemm_scheme::w4a8_fp4, t), lowbit::error);
    float_packed forged = w;
    forged.tier = t;
    CHECK_THROWS_AS(run_float(forged, ws, y, 0, 40), lowbit::error);
  }
  RowMatrixXf y_bad(3, 39);
  CHECK_THROWS_AS(run_float(w, ws, y_bad, 0, 39), lowbit::error);
  CHECK_THROWS_AS(run_float(w, ws, y, 10, 41), lowbit::error);
  CHECK_THROWS_AS(run_float(w, ws, y, 10, 9), lowbit::error);
  CHECK_THROWS_AS(prepare_float(w, RowMatrixXf(3, 63)), lowbit::error);

  // Non-finite activations of an A8 scheme name the token and column.
  RowMatrixXf x_nan = x;
  x_nan(2, 17) = std::numeric_limits<float>::quiet_NaN();
  CHECK_THROWS_WITH(prepare_float(w, x_nan), Catch::Contains("token 2, column 17"));
  x_nan(2, 17) = std::numeric_limits<float>::infinity();
  CHECK_THROWS_AS(prepare_float(w, x_nan), lowbit::error);

  // Malformed matrices.
  QuantizedMatrix m = q;
  m.scales.pop_back();
  CHECK_THROWS_AS(pack_float(m, gemm_scheme::w4a8_fp4, isa_tier::scalar), lowbit::error);
  m = q;
  m.scales[5] = std::numeric_limits<float>::infinity();
  CHECK_THROWS_AS(pack_float(m, gemm_scheme::w4a8_fp4, isa_tier::scalar), lowbit::error);
  CHECK_THROWS_AS(pack_float(q, gemm_scheme::w8a8_fp8, isa_tier::scalar), lowbit::error);
  QuantizedMatrix e = random_matrix(all_cases[0], 4, 8, 8, 1);
  e.codes[3] = 0xFF;
  CHECK_THROWS_AS(pack_float(e, gemm_scheme::w8a8_fp8, isa_tier::scalar), lowbit::error);
  m = random_matrix(all_cases[3], 4, 8, 8, 1);
  m.zeros.clear();
  CHECK_THROWS_AS(pack_float(m, gemm_scheme::w4a16_int4, isa_tier::scalar), lowbit::error);
}
}  // namespace test_float_kernels_cpp
