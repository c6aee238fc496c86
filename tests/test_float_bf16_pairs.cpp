// The one-token path of the AVX-512 float tier for 4-bit codes on CPUs with AVX512-BF16
// (x86/avx512_float.hpp, avx512bf16_direct_block_pairs): weights and activations as bf16
// pairs (one part for E4M3 or bf16-exact activations, hi + lo otherwise), 16 k-rows
// transposed per step. Its tails: K not a multiple of 16 (the last group's leftover k-rows
// take the per-row path), groups of 16, 32, 128 and per channel, a group size that is not a
// multiple of 16 (falls back to the quad path), ragged last blocks, column ranges that split
// blocks, zero points, E4M3 subnormal activations, and rows of tiny or huge magnitude (the
// power-of-two scaling; VDPBF16PS flushes bf16 subnormals). Checked against the scalar
// oracle with the stated tolerance of float_layout.hpp.
#include <catch2/catch.hpp>
#include <cmath>
#include <cstdint>
#include <random>
#include <vector>

#include "lowbit/formats/nibbles.hpp"
#include "lowbit/gemm.hpp"
#include "lowbit/kernels/float_family.hpp"
#include "lowbit/kernels/registry.hpp"
#include "test_gemm_support.hpp"

namespace test_float_bf16_pairs_cpp {

using namespace lowbit;
using namespace lowbit::detail;

namespace {

struct bf16_pairs_scheme {
  gemm_scheme scheme;
  element_format format;
  bool symmetric;
  bool float_offset = false;
};
const bf16_pairs_scheme bf16_pairs_schemes[] = {
    {gemm_scheme::w4a8_fp4, element_format::float4_e2m1fn, true},
    {gemm_scheme::w4a16_fp4, element_format::float4_e2m1fn, true},
    {gemm_scheme::w4a16_int4, element_format::int4, true},
    {gemm_scheme::w4a16_int4, element_format::int4, false},
    {gemm_scheme::w4a16_int4, element_format::int4, false, true},
};

QuantizedMatrix bf16_pairs_random(const bf16_pairs_scheme& sc, std::int64_t rows, std::int64_t cols,
                                  std::int64_t group, std::uint32_t seed) {
  return lowbit::test::random_float_family_matrix(sc.format, sc.symmetric, rows, cols, group, seed, true,
                                                  sc.float_offset);
}

#if LOWBIT_HAVE_X86_SIMD  // used by the x86-only test below
// One token with outliers and values that quantize to E4M3 subnormals (down to the smallest,
// 2^-9 of the token scale).
RowMatrixXf bf16_pairs_activations(std::int64_t cols, std::uint32_t seed, float magnitude = 1.0f) {
  std::mt19937 rng(seed);
  std::normal_distribution<float> d(0.0f, 1.0f);
  RowMatrixXf x(1, cols);
  for (std::int64_t c = 0; c < cols; ++c) x(0, c) = d(rng) * (c % 17 == 3 ? 20.0f : 1.0f);
  x(0, 0) = 100.0f;  // amax: token scale 100 / 448
  const float smallest = 100.0f / 448.0f * std::ldexp(1.0f, -9);
  for (std::int64_t c = 1; c < cols; c += 7) x(0, c) = (c % 2 ? 1.0f : -3.0f) * smallest;
  return x * magnitude;
}
#endif

// 2e-5 * s_a * sum_k |xq(k)| * |w_hat(n, k)|, as test_float_kernels.cpp computes it.
// Zero points: |w_hat| read as (|v| + z) * s, float offsets as |v| * s + |offset|, as
// float_layout.hpp states.
RowMatrixXf bf16_pairs_tolerance(const QuantizedMatrix& q, gemm_scheme scheme, const RowMatrixXf& x) {
  RowMatrixXf w_abs(q.rows, q.cols);
  for (std::int64_t r = 0; r < q.rows; ++r)
    for (std::int64_t c = 0; c < q.cols; ++c) {
      const std::size_t gi = static_cast<std::size_t>(r * q.groups_per_row + c / q.group_size);
      w_abs(r, c) = !q.offsets.empty() ? std::fabs(weight_code_value_reference(q, r, c)) * q.scales[gi] + std::fabs(q.offsets[gi])
                    : q.zeros.empty()    ? std::fabs(weight_value_reference(q, r, c))
                                         : (std::fabs(weight_code_value_reference(q, r, c)) + q.zeros[gi]) * q.scales[gi];
    }
  RowMatrixXf xa = x.cwiseAbs();
  if (scheme_quantizes_activations(scheme)) {
    std::vector<std::uint8_t> codes(static_cast<std::size_t>(x.cols()));
    float s = 0.0f;
    const RowMatrixXf row = x.row(0);
    quantize_token_e4m3_reference(row.data(), x.cols(), 0, codes.data(), &s);
    for (std::int64_t c = 0; c < x.cols(); ++c)
      xa(0, c) = std::fabs(float8_e4m3fn::from_bits(codes[static_cast<std::size_t>(c)]).to_float()) * s;
  }
  RowMatrixXf tol = (xa * w_abs.transpose()) * 2e-5f;
  tol.array() += 1e-30f;
  return tol;
}

}  // namespace

// The pair path's functions exist in x86 builds only (x86/avx512_float.hpp).
#if LOWBIT_HAVE_X86_SIMD
TEST_CASE("float bf16 pairs: the vector table equals the scalar one bit for bit", "[float_kernels]") {
  if (!tier_supported(isa_tier::avx512, host_cpu_features())) {
    WARN("no AVX-512 on this CPU: avx512bf16_build_pairs is not run here");
    return;
  }
  std::mt19937 rng(5);
  std::normal_distribution<float> d(0.0f, 1.0f);
  int checked = 0;
  for (const std::int64_t k : {1, 15, 16, 17, 31, 32, 48, 100, 520, 4096, 4099, 8192})
    for (int variant = 0; variant < 6; ++variant) {
      // 0 plain, 1 tiny (1e-33: the scaling's 2^e beyond the normal range), 2 huge (1e33),
      // 3 bf16-exact (one part), 4 with subnormal-after-scaling values and zeros, 5 all zero.
      float_workspace ws;
      ws.cols = k;
      ws.tokens = 1;
      ws.x = aligned_buffer<float>(static_cast<std::size_t>(k + 16));
      for (std::int64_t c = 0; c < k; ++c) {
        float v = d(rng) * (c % 13 == 5 ? 30.0f : 1.0f);
        if (variant == 1) v *= 1e-33f;
        if (variant == 2) v *= 1e33f;
        if (variant == 3) v = static_cast<float>(Eigen::bfloat16(v));
        if (variant == 4 && c % 3 == 1) v = (c % 2 ? 1.0f : -1.0f) * std::ldexp(1.5f + c * 1e-3f, -140 - static_cast<int>(c % 9));
        if (variant == 4 && c % 5 == 2) v = c % 2 ? 0.0f : -0.0f;
        if (variant == 5) v = 0.0f;
        ws.x[static_cast<std::size_t>(c)] = v;
      }
      INFO("K " << k << " variant " << variant);
      avx512bf16_pairs vec, ref;
      vec.words.assign(3, 0xDEADBEEFu);  // a table left from an earlier, different call
      avx512bf16_build_pairs(ws, vec);
      avx512bf16_build_pairs_scalar(ws, ref);
      CHECK(vec.parts == ref.parts);
      CHECK(vec.unscale == ref.unscale);
      CHECK(vec.words == ref.words);
      if (variant == 3 || variant == 5) CHECK(ref.parts == 1);
      ++checked;
    }
  CHECK(checked == 72);
}

TEST_CASE("float bf16 pairs: one token matches the reference over its tails", "[float_kernels]") {
  if (!tier_supported(isa_tier::avx512, host_cpu_features())) {
    WARN("no AVX-512 on this CPU: the bf16 pair path is not built here");
    return;
  }
  // Every one-token path on every shape where the CPU can run it (one_token_path_override):
  // the quad path always, the pairs with AVX512-BF16 (a Zen 5 takes them by default, an
  // Intel CPU with AVX512-FP16 only when forced), the integer planes with VNNI.
  std::vector<one_token_path> paths = {one_token_path::quad};
  if (host_cpu_features().avx512bf16) paths.push_back(one_token_path::bf16_pairs);
  else WARN("no AVX512-BF16: the bf16 pairs do not run");
  if (avx512_int_planes_runs(host_cpu_features())) paths.push_back(one_token_path::int_planes);
  else WARN("no AVX512-VNNI: the integer planes do not run");
  struct restore_path {
    ~restore_path() { one_token_path_override().store(one_token_path::automatic); }
  } restore;
  for (one_token_path path : paths) {
    one_token_path_override().store(path);
    const bool bf16 = path == one_token_path::bf16_pairs, planes = path == one_token_path::int_planes;
    std::uint32_t seed = 100;
    struct shape {
      std::int64_t n, k, group;
    };
    const shape shapes[] = {
        {45, 16, 16},   {45, 17, 16},    {33, 48, 16},     {45, 160, 32},   {45, 172, 32},  {64, 172, 172},
        {97, 300, 300}, {31, 4104, 128}, {45, 4096, 128},  {45, 4099, 4099}, {45, 40, 24},  {1, 520, 64},
        {45, 60, 6},    {45, 3, 3},      {33, 4, 4},
    };
    for (const bf16_pairs_scheme& sc : bf16_pairs_schemes)
      for (const shape& sh : shapes)
        for (int variant = 0; variant < 5; ++variant) {
          // 0: plain; 1, 2: the whole row scaled by 1e-33 / 1e33; 3: bf16-exact values (one part);
          // 4: bf16-exact values without the tiny ones but one in 64 (W4A16's spans on the
          // integer planes take three planes, with a few fixes).
          if (variant > 0 && sh.k != 172 && sh.k != 4099 && !(variant == 4 && sh.k == 4096)) continue;
          const float magnitude = variant == 1 ? 1e-33f : variant == 2 ? 1e33f : 1.0f;
          INFO((bf16 ? "bf16 pairs" : planes ? "int planes" : "quad") << " scheme " << to_string(sc.scheme) << (sc.symmetric ? "" : " asym") << (sc.float_offset ? " offset" : "")
                                              << " N " << sh.n << " K " << sh.k
                         << " group " << sh.group << " variant " << variant);
          const QuantizedMatrix q = bf16_pairs_random(sc, sh.n, sh.k, sh.group, seed++);
          const float_packed w = pack_float(q, sc.scheme, isa_tier::avx512);
          RowMatrixXf x = bf16_pairs_activations(sh.k, seed++, magnitude);
          if (variant == 4)
            for (Eigen::Index c = 1; c < x.cols(); c += 7)
              if (c % 64 != 1) x(0, c) = 0.5f;
          if (variant >= 3)
            for (Eigen::Index c = 0; c < x.cols(); ++c) x(0, c) = static_cast<float>(Eigen::bfloat16(x(0, c)));
          const float_workspace ws = prepare_float(w, x);
          // The pairs are taken exactly when groups start on multiples of 16 k-rows; the
          // integer planes in groups of whole 4-row steps.
          CHECK(avx512bf16_pairs_ok(w, ws) == (bf16 && (q.groups_per_row == 1 || sh.group % 16 == 0)));
          const bool int_planes = planes && sh.k >= 4 && (q.groups_per_row == 1 || sh.group % 4 == 0);
          CHECK(!ws.x_planes.empty() == int_planes);
          CHECK(ws.x_quad.empty() == (avx512bf16_pairs_ok(w, ws) || int_planes));  // or the quad path runs
          if (int_planes && variant == 4 && sc.scheme != gemm_scheme::w4a8_fp4) {
            // Every span of 128 k-rows or more (it may hold four fixes) takes three planes.
            int long_spans = 0;
            for (std::int64_t s = 0; s < static_cast<std::int64_t>(ws.plane_count.size()); ++s) {
              const std::int64_t g0 = s / ws.spans_per_group * ws.group_size;
              const std::int64_t k0 = g0 + s % ws.spans_per_group * float_int_planes_span;
              const std::int64_t k1 = std::min({sh.k / 4 * 4, g0 + ws.group_size, k0 + float_int_planes_span});
              if (k1 - k0 < 128) continue;
              ++long_spans;
              CHECK(int{ws.plane_count[static_cast<std::size_t>(s)]} == 3);
            }
            CHECK((long_spans > 0) == (std::min(sh.k / 4 * 4, ws.group_size) >= 128));
          }
          if (avx512bf16_pairs_ok(w, ws)) {  // one part exactly when the scaled x is bf16
            avx512bf16_pairs pairs;
            avx512bf16_build_pairs(ws, pairs);
            const bool one = sc.scheme == gemm_scheme::w4a8_fp4 || variant >= 3;
            CHECK(pairs.parts == (one || sh.k < 16 ? 1 : 2));
          }
          const RowMatrixXf ref = float_reference_gemm(q, sc.scheme, x);
          const RowMatrixXf tol = bf16_pairs_tolerance(q, sc.scheme, x);
          RowMatrixXf big = RowMatrixXf::Constant(3, sh.n + 5, 777.0f);
          RowMatrixRef y = big.block(1, 2, 1, sh.n);
          // Ranges that split blocks: each run builds its pairs and starts mid-block.
          const std::int64_t mid = std::min<std::int64_t>(sh.n, 37);
          run_float(w, ws, y, 0, mid);
          run_float(w, ws, y, mid, sh.n);
          double worst = 0.0;
          for (std::int64_t j = 0; j < sh.n; ++j) {
            const double d = std::fabs(static_cast<double>(y(0, j)) - ref(0, j));
            if (!(d <= tol(0, j))) worst = std::max(worst, std::isnan(d) ? 1e30 : d / tol(0, j));
          }
          CHECK(worst <= 1.0);
          CHECK((big.row(0).array() == 777.0f).all());
          CHECK((big.row(2).array() == 777.0f).all());
          CHECK((big.leftCols(2).array() == 777.0f).all());
          CHECK((big.rightCols(3).array() == 777.0f).all());
        }
  }
}

#endif  // LOWBIT_HAVE_X86_SIMD

// Through gemm(): the pairs path serves one token, the quad/buffered paths the rest, and a
// token of all zeros (scale 0) gives zeros.
TEST_CASE("float bf16 pairs: gemm of one token agrees with the many-token path", "[float_kernels]") {
  const QuantizedMatrix q = bf16_pairs_random(bf16_pairs_schemes[0], 70, 333, 32, 7);
  PackOptions po;
  po.activations = activation_quant::float8_e4m3fn;
  const PackedWeights w = pack(q, po);
  RowMatrixXf x(6, 333);
  std::mt19937 rng(9);
  std::normal_distribution<float> d(0.0f, 1.0f);
  for (Eigen::Index i = 0; i < x.size(); ++i) x.data()[i] = d(rng);
  x.row(4).setZero();
  RowMatrixXf y_all(6, 70);
  gemm(x, w, y_all);
  // On AVX512-FP16 hosts with the AVX-512 tier (LOWBIT_ISA=avx512 on an Intel Xeon), six
  // tokens of w4a8_fp4 run the fp16 path, whose stated bound is 2^-6 instead of 2e-5
  // (x86/avx512fp16_float.hpp); the one-token call keeps the fp32 bound.
  const float many = float_uses_fp16_path(w.float_weights(), 6) ? (1.0f / 64) / 2e-5f : 1.0f;
  for (Eigen::Index t = 0; t < 6; ++t) {
    RowMatrixXf y1(1, 70);
    gemm(RowMatrixXf(x.row(t)), w, y1);
    const RowMatrixXf tol = bf16_pairs_tolerance(q, gemm_scheme::w4a8_fp4, RowMatrixXf(x.row(t)));
    // Both within their stated tolerance of the exact result, so within the sum of each other.
    for (Eigen::Index j = 0; j < 70; ++j) CHECK(std::fabs(y1(0, j) - y_all(t, j)) <= (1 + many) * tol(0, j));
  }
  RowMatrixXf y0(1, 70);
  gemm(RowMatrixXf(x.row(4)), w, y0);
  CHECK((y0.array() == 0.0f).all());
}

}  // namespace test_float_bf16_pairs_cpp
