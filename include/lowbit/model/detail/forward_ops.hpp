#pragma once
// The float steps of the forward pass that cost real time besides the linear layers: SiLU
// (silu_mul_n), attention's softmax (softmax_n) and attention's two products (gemm_f32), on
// the dispatched SIMD tiers like the linears. They were Eigen expressions, and Eigen's code
// is compiled for the build's baseline ISA: SSE2 in a portable x86-64 build, where a 1-thread
// 128-token prefill of a 1B model spent 17% of its time in them (docs/performance.md,
// "Session 35").
//
// Every tier computes the same bits as the scalar code here, for any length, alignment or
// split of the work, because each output is one chain of correctly rounded operations (fma,
// add, mul, div) in an order that does not depend on the vector width:
//  - exp_ref: Cody-Waite reduction by ln 2 and cephes' degree-5 expf polynomial in fma,
//    scaled by 2^n in two exact steps. +inf above ln(FLT_MAX), 0 below -104, NaN kept.
//    Within 1 ulp of exp over the normal range (tests/test_float_forward_ops.cpp).
//  - silu_mul_n: g = g / fma(exp's two factors, 1) * u, element by element.
//  - softmax_n: x = exp((x - max) * scale) / sum, the sum taken in 16 interleaved partial
//    sums (element i goes to sum i % 16) folded 8, 4, 2, 1: what one 16-lane accumulator
//    does, and what two 8-lane accumulators do.
//  - gemm_f32: c[i][j] = one fma chain over p = 0 .. k-1 starting from 0 (a vector lane
//    holds one output; k is never split).
// So the model's outputs depend neither on the thread count nor on LOWBIT_ISA. On AArch64
// the scalar code is the implementation (its loops are written so that the compiler can
// vectorize them with the baseline's NEON and fused multiply-adds).
//
// Loops over a register block carry `#pragma GCC unroll 16` (docs/design.md, "Register blocks
// are unrolled by pragma").
#include <algorithm>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <cstring>

#include "lowbit/detail/target.hpp"
#include "lowbit/dispatch/cpu_features.hpp"

#if LOWBIT_HAVE_X86_SIMD
#include <immintrin.h>
#endif

namespace lowbit::model::detail {

// The constants of exp_ref, shared by every tier.
struct exp_constants {
  static constexpr float hi = 88.72283172607422f;  // the largest float whose exp is finite
  static constexpr float lo = -104.0f;             // below ln(2^-150): exp rounds to 0
  static constexpr float log2e = 1.44269504088896341f;
  static constexpr float round_magic = 12582912.0f;  // 1.5 * 2^23: adding it rounds to an integer
  static constexpr float ln2_hi = 0.693359375f;      // ln 2 = ln2_hi + ln2_lo (cephes' split)
  static constexpr float ln2_lo = -2.12194440e-4f;
  static constexpr float p0 = 1.9875691500e-4f, p1 = 1.3981999507e-3f, p2 = 8.3334519073e-3f,
                         p3 = 4.1665795894e-2f, p4 = 1.6666665459e-1f, p5 = 5.0000001201e-1f;
};

// 2^e as a float, for e in [-126, 127].
inline float exp2_int(std::int32_t e) noexcept {
  const std::uint32_t bits = static_cast<std::uint32_t>(e + 127) << 23;
  float f;
  std::memcpy(&f, &bits, sizeof f);
  return f;
}

// exp(x) as y * s, in the operations every tier performs: y is the polynomial times 2^e1, s
// is 2^e2 (out of range or NaN: y is the result, s is 1). The callers multiply (exp_ref) or
// fuse the last step into their own sum (silu's 1 + exp(-g), softmax's running sums) with an
// explicit fma: written out so, no product is left for a compiler's FMA contraction to fuse
// differently in one tier than in another (GCC contracts a * b + c, intrinsics included, in
// its default gnu++ mode).
struct exp_pair {
  float y, s;
};

inline exp_pair exp_split(float x) noexcept {
  using K = exp_constants;
  if (std::isnan(x)) return {x, 1.0f};
  if (x > K::hi) return {HUGE_VALF, 1.0f};
  if (x < K::lo) return {0.0f, 1.0f};
  const float n = std::fma(x, K::log2e, K::round_magic) - K::round_magic;  // nearest integer
  float r = std::fma(-n, K::ln2_hi, x);
  r = std::fma(-n, K::ln2_lo, r);
  float p = K::p0;
  p = std::fma(p, r, K::p1);
  p = std::fma(p, r, K::p2);
  p = std::fma(p, r, K::p3);
  p = std::fma(p, r, K::p4);
  p = std::fma(p, r, K::p5);
  const float y = std::fma(p, r * r, r) + 1.0f;
  // n is in [-150, 128]: 2^n as two normal factors; y * 2^e1 is exact.
  const std::int32_t e = static_cast<std::int32_t>(n), e1 = e >> 1, e2 = e - e1;
  return {y * exp2_int(e1), exp2_int(e2)};
}

inline float exp_ref(float x) noexcept {
  const exp_pair e = exp_split(x);
  return e.y * e.s;
}

inline void silu_mul_scalar(float* g, const float* u, std::size_t n) noexcept {
  for (std::size_t i = 0; i < n; ++i) {
    const exp_pair e = exp_split(-g[i]);
    g[i] = g[i] / std::fma(e.y, e.s, 1.0f) * u[i];
  }
}

// The partial sums and their fold of softmax_n.
constexpr std::size_t softmax_lanes = 16;

inline void softmax_scalar(float* x, std::size_t n, float scale) noexcept {
  if (n == 0) return;
  float mx = x[0];
  for (std::size_t i = 1; i < n; ++i) mx = x[i] > mx ? x[i] : mx;
  float part[softmax_lanes] = {};
  for (std::size_t i = 0; i < n; ++i) {
    const exp_pair e = exp_split((x[i] - mx) * scale);
    x[i] = e.y * e.s;
    part[i % softmax_lanes] = std::fma(e.y, e.s, part[i % softmax_lanes]);
  }
  for (std::size_t w = softmax_lanes / 2; w >= 1; w /= 2)
    for (std::size_t i = 0; i < w; ++i) part[i] += part[i + w];
  const float sum = part[0];
  for (std::size_t i = 0; i < n; ++i) x[i] /= sum;
}

// c[m, n] = a[m, k] b[k, n], all row-major with the given row strides. Loops i, p, j: each
// c[i][j] is still the fma chain over p in order, and the inner loop over j vectorizes.
inline void gemm_f32_scalar(int m, int n, int k, const float* a, std::ptrdiff_t lda, const float* b,
                            std::ptrdiff_t ldb, float* c, std::ptrdiff_t ldc) noexcept {
  for (int i = 0; i < m; ++i) {
    float* ci = c + i * ldc;
    std::fill(ci, ci + n, 0.0f);
    for (int p = 0; p < k; ++p) {
      const float aip = a[i * lda + p];
      const float* bp = b + p * ldb;
      for (int j = 0; j < n; ++j) ci[j] = std::fma(aip, bp[j], ci[j]);
    }
  }
}

#if LOWBIT_HAVE_X86_SIMD
#pragma GCC diagnostic push
LOWBIT_IGNORE_GCC_MAYBE_UNINITIALIZED

namespace avx512 {

// exp_split lane by lane: y and s as exp_split returns them.
LOWBIT_TARGET_AVX512 inline void exp_split(__m512 x, __m512& y, __m512& s) {
  using K = exp_constants;
  // max/min return their second operand when either is NaN: a NaN lane stays NaN.
  const __m512 xc = _mm512_min_ps(_mm512_set1_ps(K::hi), _mm512_max_ps(_mm512_set1_ps(K::lo), x));
  const __m512 magic = _mm512_set1_ps(K::round_magic);
  const __m512 n = _mm512_sub_ps(_mm512_fmadd_ps(xc, _mm512_set1_ps(K::log2e), magic), magic);
  __m512 r = _mm512_fnmadd_ps(n, _mm512_set1_ps(K::ln2_hi), xc);
  r = _mm512_fnmadd_ps(n, _mm512_set1_ps(K::ln2_lo), r);
  __m512 p = _mm512_set1_ps(K::p0);
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(K::p1));
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(K::p2));
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(K::p3));
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(K::p4));
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(K::p5));
  y = _mm512_add_ps(_mm512_fmadd_ps(p, _mm512_mul_ps(r, r), r), _mm512_set1_ps(1.0f));
  const __m512i e = _mm512_cvtps_epi32(n);
  const __m512i e1 = _mm512_srai_epi32(e, 1), e2 = _mm512_sub_epi32(e, e1);
  const __m512i bias = _mm512_set1_epi32(127);
  y = _mm512_mul_ps(y, _mm512_castsi512_ps(_mm512_slli_epi32(_mm512_add_epi32(e1, bias), 23)));
  s = _mm512_castsi512_ps(_mm512_slli_epi32(_mm512_add_epi32(e2, bias), 23));
  // Out of range or NaN (xc != x, unordered included): y the result, s one. Rare: skipped
  // when no lane is.
  const __mmask16 special = _mm512_cmp_ps_mask(xc, x, _CMP_NEQ_UQ);
  if (special == 0) return;
  y = _mm512_mask_blend_ps(_mm512_cmp_ps_mask(x, _mm512_set1_ps(K::hi), _CMP_GT_OQ), y,
                           _mm512_set1_ps(HUGE_VALF));
  y = _mm512_mask_blend_ps(_mm512_cmp_ps_mask(x, _mm512_set1_ps(K::lo), _CMP_LT_OQ), y, _mm512_setzero_ps());
  y = _mm512_mask_blend_ps(_mm512_cmp_ps_mask(x, x, _CMP_UNORD_Q), y, x);
  s = _mm512_mask_blend_ps(special, s, _mm512_set1_ps(1.0f));
}

LOWBIT_TARGET_AVX512 inline __mmask16 tail_mask(std::size_t count) {
  return count >= 16 ? __mmask16(0xffff) : static_cast<__mmask16>((1u << count) - 1u);
}

LOWBIT_TARGET_AVX512 inline void silu_mul(float* g, const float* u, std::size_t n) {
  const __m512 one = _mm512_set1_ps(1.0f);
  for (std::size_t i = 0; i < n; i += 16) {
    const __mmask16 m = tail_mask(n - i);
    const __m512 gv = _mm512_maskz_loadu_ps(m, g + i), uv = _mm512_maskz_loadu_ps(m, u + i);
    __m512 y, s;
    exp_split(_mm512_xor_ps(gv, _mm512_set1_ps(-0.0f)), y, s);  // -g, as the scalar minus
    _mm512_mask_storeu_ps(g + i, m, _mm512_mul_ps(_mm512_div_ps(gv, _mm512_fmadd_ps(y, s, one)), uv));
  }
}

LOWBIT_TARGET_AVX512 inline void softmax(float* x, std::size_t n, float scale) {
  if (n == 0) return;
  // Masked-off lanes hold x[0], which leaves the maximum unchanged.
  __m512 mv = _mm512_set1_ps(x[0]);
  for (std::size_t i = 0; i < n; i += 16) {
    const __mmask16 m = tail_mask(n - i);
    // max(v, mv) takes v where v > mv, as the scalar `x[i] > mx ? x[i] : mx` does.
    mv = _mm512_mask_max_ps(mv, m, _mm512_mask_loadu_ps(mv, m, x + i), mv);
  }
  float lanes[16];
  _mm512_storeu_ps(lanes, mv);
  float mx = x[0];
  for (float v : lanes) mx = v > mx ? v : mx;
  const __m512 mxv = _mm512_set1_ps(mx), sv = _mm512_set1_ps(scale);
  __m512 sum = _mm512_setzero_ps();
  for (std::size_t i = 0; i < n; i += 16) {
    const __mmask16 m = tail_mask(n - i);
    __m512 y, s;
    exp_split(_mm512_mul_ps(_mm512_sub_ps(_mm512_maskz_loadu_ps(m, x + i), mxv), sv), y, s);
    _mm512_mask_storeu_ps(x + i, m, _mm512_mul_ps(y, s));
    sum = _mm512_mask3_fmadd_ps(y, s, sum, m);  // masked-off lanes keep their sum
  }
  // The fold 8, 4, 2, 1 of softmax_scalar.
  __m256 s8 = _mm256_add_ps(_mm512_castps512_ps256(sum), _mm512_extractf32x8_ps(sum, 1));
  __m128 s4 = _mm_add_ps(_mm256_castps256_ps128(s8), _mm256_extractf128_ps(s8, 1));
  __m128 s2 = _mm_add_ps(s4, _mm_movehl_ps(s4, s4));
  const float total = _mm_cvtss_f32(_mm_add_ss(s2, _mm_movehdup_ps(s2)));
  const __m512 tv = _mm512_set1_ps(total);
  for (std::size_t i = 0; i < n; i += 16) {
    const __mmask16 m = tail_mask(n - i);
    _mm512_mask_storeu_ps(x + i, m, _mm512_div_ps(_mm512_maskz_loadu_ps(m, x + i), tv));
  }
}

// R rows x 32 columns of c (masks m0, m1 for the two 16-column halves). Not inlined (nor its
// AVX2 twin): a tile is its own function, whose registers hold its block alone (clang -O3,
// inlining every tile into gemm_f32, spilled the tail masks around them), and that
// tests/isa.cmake can check for a block left on the stack.
template <int R>
__attribute__((noinline)) LOWBIT_TARGET_AVX512 void gemm_tile(int k, const float* a, std::ptrdiff_t lda, const float* b,
                                                              std::ptrdiff_t ldb, float* c, std::ptrdiff_t ldc,
                                                              __mmask16 m0, __mmask16 m1) {
  __m512 c0[R], c1[R];
#pragma GCC unroll 16
  for (int r = 0; r < R; ++r) c0[r] = c1[r] = _mm512_setzero_ps();
  for (int p = 0; p < k; ++p) {
    const __m512 b0 = _mm512_maskz_loadu_ps(m0, b + p * ldb), b1 = _mm512_maskz_loadu_ps(m1, b + p * ldb + 16);
#pragma GCC unroll 16
    for (int r = 0; r < R; ++r) {
      const __m512 av = _mm512_set1_ps(a[r * lda + p]);
      c0[r] = _mm512_fmadd_ps(av, b0, c0[r]);
      c1[r] = _mm512_fmadd_ps(av, b1, c1[r]);
    }
  }
#pragma GCC unroll 16
  for (int r = 0; r < R; ++r) {
    _mm512_mask_storeu_ps(c + r * ldc, m0, c0[r]);
    _mm512_mask_storeu_ps(c + r * ldc + 16, m1, c1[r]);
  }
}

LOWBIT_TARGET_AVX512 inline void gemm_f32(int m, int n, int k, const float* a, std::ptrdiff_t lda, const float* b,
                                          std::ptrdiff_t ldb, float* c, std::ptrdiff_t ldc) {
  constexpr int mr = 8;
  for (int j = 0; j < n; j += 32) {
    const std::size_t left = static_cast<std::size_t>(n - j);
    const __mmask16 m0 = tail_mask(left), m1 = left > 16 ? tail_mask(left - 16) : __mmask16(0);
    for (int i = 0; i < m; i += mr) {
      const float* ai = a + i * lda;
      float* ci = c + i * ldc + j;
      switch (std::min(mr, m - i)) {
        case 8: gemm_tile<8>(k, ai, lda, b + j, ldb, ci, ldc, m0, m1); break;
        case 7: gemm_tile<7>(k, ai, lda, b + j, ldb, ci, ldc, m0, m1); break;
        case 6: gemm_tile<6>(k, ai, lda, b + j, ldb, ci, ldc, m0, m1); break;
        case 5: gemm_tile<5>(k, ai, lda, b + j, ldb, ci, ldc, m0, m1); break;
        case 4: gemm_tile<4>(k, ai, lda, b + j, ldb, ci, ldc, m0, m1); break;
        case 3: gemm_tile<3>(k, ai, lda, b + j, ldb, ci, ldc, m0, m1); break;
        case 2: gemm_tile<2>(k, ai, lda, b + j, ldb, ci, ldc, m0, m1); break;
        default: gemm_tile<1>(k, ai, lda, b + j, ldb, ci, ldc, m0, m1); break;
      }
    }
  }
}

}  // namespace avx512

namespace avx2 {

// exp_split lane by lane: y and s as exp_split returns them.
LOWBIT_TARGET_AVX2 inline void exp_split(__m256 x, __m256& y, __m256& s) {
  using K = exp_constants;
  // max/min return their second operand when either is NaN: a NaN lane stays NaN.
  const __m256 xc = _mm256_min_ps(_mm256_set1_ps(K::hi), _mm256_max_ps(_mm256_set1_ps(K::lo), x));
  const __m256 magic = _mm256_set1_ps(K::round_magic);
  const __m256 n = _mm256_sub_ps(_mm256_fmadd_ps(xc, _mm256_set1_ps(K::log2e), magic), magic);
  __m256 r = _mm256_fnmadd_ps(n, _mm256_set1_ps(K::ln2_hi), xc);
  r = _mm256_fnmadd_ps(n, _mm256_set1_ps(K::ln2_lo), r);
  __m256 p = _mm256_set1_ps(K::p0);
  p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(K::p1));
  p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(K::p2));
  p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(K::p3));
  p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(K::p4));
  p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(K::p5));
  y = _mm256_add_ps(_mm256_fmadd_ps(p, _mm256_mul_ps(r, r), r), _mm256_set1_ps(1.0f));
  const __m256i e = _mm256_cvtps_epi32(n);
  const __m256i e1 = _mm256_srai_epi32(e, 1), e2 = _mm256_sub_epi32(e, e1);
  const __m256i bias = _mm256_set1_epi32(127);
  y = _mm256_mul_ps(y, _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_add_epi32(e1, bias), 23)));
  s = _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_add_epi32(e2, bias), 23));
  // Out of range or NaN (xc != x, unordered included): y the result, s one. Rare: skipped
  // when no lane is.
  const __m256 special = _mm256_cmp_ps(xc, x, _CMP_NEQ_UQ);
  if (_mm256_movemask_ps(special) == 0) return;
  y = _mm256_blendv_ps(y, _mm256_set1_ps(HUGE_VALF), _mm256_cmp_ps(x, _mm256_set1_ps(K::hi), _CMP_GT_OQ));
  y = _mm256_blendv_ps(y, _mm256_setzero_ps(), _mm256_cmp_ps(x, _mm256_set1_ps(K::lo), _CMP_LT_OQ));
  y = _mm256_blendv_ps(y, x, _mm256_cmp_ps(x, x, _CMP_UNORD_Q));
  s = _mm256_blendv_ps(s, _mm256_set1_ps(1.0f), special);
}

// Lanes [0, count) set (count clamped to 8), for maskload / maskstore.
LOWBIT_TARGET_AVX2 inline __m256i tail_mask(std::size_t count) {
  const __m256i lane = _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7);
  return _mm256_cmpgt_epi32(_mm256_set1_epi32(static_cast<int>(std::min<std::size_t>(count, 8))), lane);
}

// The first min(count, 8) lanes (the rest zero).
LOWBIT_TARGET_AVX2 inline __m256 load_lanes(const float* p, std::size_t count) {
  return count >= 8 ? _mm256_loadu_ps(p) : _mm256_maskload_ps(p, tail_mask(count));
}

// Stores the first min(count, 8) lanes. VMASKMOVPS stores are microcoded and slow on AMD
// (masked stores on every vector ran SiLU at half the scalar code's speed on Zen 5), so only
// a tail takes one; whole vectors are stored plainly.
LOWBIT_TARGET_AVX2 inline void store_lanes(float* p, __m256 v, std::size_t count) {
  if (count >= 8)
    _mm256_storeu_ps(p, v);
  else
    _mm256_maskstore_ps(p, tail_mask(count), v);
}

LOWBIT_TARGET_AVX2 inline void silu_mul(float* g, const float* u, std::size_t n) {
  const __m256 one = _mm256_set1_ps(1.0f);
  for (std::size_t i = 0; i < n; i += 8) {
    const __m256 gv = load_lanes(g + i, n - i), uv = load_lanes(u + i, n - i);
    __m256 y, s;
    exp_split(_mm256_xor_ps(gv, _mm256_set1_ps(-0.0f)), y, s);  // -g, as the scalar minus
    store_lanes(g + i, _mm256_mul_ps(_mm256_div_ps(gv, _mm256_fmadd_ps(y, s, one)), uv), n - i);
  }
}

LOWBIT_TARGET_AVX2 inline void softmax(float* x, std::size_t n, float scale) {
  if (n == 0) return;
  const __m256 first = _mm256_set1_ps(x[0]);
  __m256 mv = first;
  for (std::size_t i = 0; i < n; i += 8) {
    const __m256i m = tail_mask(n - i);
    const __m256 v = _mm256_blendv_ps(first, load_lanes(x + i, n - i), _mm256_castsi256_ps(m));
    mv = _mm256_blendv_ps(mv, v, _mm256_cmp_ps(v, mv, _CMP_GT_OQ));
  }
  float lanes[8];
  _mm256_storeu_ps(lanes, mv);
  float mx = x[0];
  for (float v : lanes) mx = v > mx ? v : mx;
  const __m256 mxv = _mm256_set1_ps(mx), sv = _mm256_set1_ps(scale);
  // Two accumulators: elements i % 16 < 8 in lo, the others in hi (softmax_scalar's 16 sums).
  __m256 lo = _mm256_setzero_ps(), hi = _mm256_setzero_ps();
  for (std::size_t i = 0; i < n; i += 8) {
    const __m256i m = tail_mask(n - i);
    __m256 y, s;
    exp_split(_mm256_mul_ps(_mm256_sub_ps(load_lanes(x + i, n - i), mxv), sv), y, s);
    store_lanes(x + i, _mm256_mul_ps(y, s), n - i);
    const __m256 ym = _mm256_and_ps(y, _mm256_castsi256_ps(m));  // masked-off lanes add +0
    if ((i / 8) % 2 == 0)
      lo = _mm256_fmadd_ps(ym, s, lo);
    else
      hi = _mm256_fmadd_ps(ym, s, hi);
  }
  const __m256 s8 = _mm256_add_ps(lo, hi);
  const __m128 s4 = _mm_add_ps(_mm256_castps256_ps128(s8), _mm256_extractf128_ps(s8, 1));
  const __m128 s2 = _mm_add_ps(s4, _mm_movehl_ps(s4, s4));
  const float total = _mm_cvtss_f32(_mm_add_ss(s2, _mm_movehdup_ps(s2)));
  const __m256 tv = _mm256_set1_ps(total);
  for (std::size_t i = 0; i < n; i += 8) {
    store_lanes(x + i, _mm256_div_ps(load_lanes(x + i, n - i), tv), n - i);
  }
}

// R rows x 16 columns of c, of which the first `left` (all 16 when Full) are stored.
template <int R, bool Full>
__attribute__((noinline)) LOWBIT_TARGET_AVX2 void gemm_tile(int k, const float* a, std::ptrdiff_t lda, const float* b,
                                                            std::ptrdiff_t ldb, float* c, std::ptrdiff_t ldc,
                                                            std::size_t left) {
  const std::size_t left1 = left > 8 ? left - 8 : 0;
  __m256 c0[R], c1[R];
#pragma GCC unroll 16
  for (int r = 0; r < R; ++r) c0[r] = c1[r] = _mm256_setzero_ps();
  for (int p = 0; p < k; ++p) {
    const float* bp = b + p * ldb;
    const __m256 b0 = Full ? _mm256_loadu_ps(bp) : load_lanes(bp, left);
    const __m256 b1 = Full ? _mm256_loadu_ps(bp + 8) : load_lanes(bp + 8, left1);
#pragma GCC unroll 16
    for (int r = 0; r < R; ++r) {
      const __m256 av = _mm256_broadcast_ss(a + r * lda + p);
      c0[r] = _mm256_fmadd_ps(av, b0, c0[r]);
      c1[r] = _mm256_fmadd_ps(av, b1, c1[r]);
    }
  }
#pragma GCC unroll 16
  for (int r = 0; r < R; ++r) {
    if (Full) {
      _mm256_storeu_ps(c + r * ldc, c0[r]);
      _mm256_storeu_ps(c + r * ldc + 8, c1[r]);
    } else {
      store_lanes(c + r * ldc, c0[r], left);
      store_lanes(c + r * ldc + 8, c1[r], left1);
    }
  }
}

template <int R>
LOWBIT_TARGET_AVX2 inline void gemm_tile_any(int k, const float* a, std::ptrdiff_t lda, const float* b,
                                             std::ptrdiff_t ldb, float* c, std::ptrdiff_t ldc, std::size_t left) {
  if (left >= 16)
    gemm_tile<R, true>(k, a, lda, b, ldb, c, ldc, left);
  else
    gemm_tile<R, false>(k, a, lda, b, ldb, c, ldc, left);
}

LOWBIT_TARGET_AVX2 inline void gemm_f32(int m, int n, int k, const float* a, std::ptrdiff_t lda, const float* b,
                                        std::ptrdiff_t ldb, float* c, std::ptrdiff_t ldc) {
  constexpr int mr = 6;  // 12 accumulators, 2 B vectors and a broadcast in 16 registers
  for (int j = 0; j < n; j += 16) {
    const std::size_t left = static_cast<std::size_t>(n - j);
    for (int i = 0; i < m; i += mr) {
      const float* ai = a + i * lda;
      float* ci = c + i * ldc + j;
      switch (std::min(mr, m - i)) {
        case 6: gemm_tile_any<6>(k, ai, lda, b + j, ldb, ci, ldc, left); break;
        case 5: gemm_tile_any<5>(k, ai, lda, b + j, ldb, ci, ldc, left); break;
        case 4: gemm_tile_any<4>(k, ai, lda, b + j, ldb, ci, ldc, left); break;
        case 3: gemm_tile_any<3>(k, ai, lda, b + j, ldb, ci, ldc, left); break;
        case 2: gemm_tile_any<2>(k, ai, lda, b + j, ldb, ci, ldc, left); break;
        default: gemm_tile_any<1>(k, ai, lda, b + j, ldb, ci, ldc, left); break;
      }
    }
  }
}

}  // namespace avx2

#pragma GCC diagnostic pop
#endif  // LOWBIT_HAVE_X86_SIMD

// Runs `tier`'s code, which the caller has checked this CPU runs.
inline void silu_mul_on(isa_tier tier, float* g, const float* u, std::size_t n) {
#if LOWBIT_HAVE_X86_SIMD
  if (tier == isa_tier::avx512) return avx512::silu_mul(g, u, n);
  if (tier == isa_tier::avx2) return avx2::silu_mul(g, u, n);
#endif
  static_cast<void>(tier);
  silu_mul_scalar(g, u, n);
}

inline void softmax_on(isa_tier tier, float* x, std::size_t n, float scale) {
#if LOWBIT_HAVE_X86_SIMD
  if (tier == isa_tier::avx512) return avx512::softmax(x, n, scale);
  if (tier == isa_tier::avx2) return avx2::softmax(x, n, scale);
#endif
  static_cast<void>(tier);
  softmax_scalar(x, n, scale);
}

inline void gemm_f32_on(isa_tier tier, int m, int n, int k, const float* a, std::ptrdiff_t lda, const float* b,
                        std::ptrdiff_t ldb, float* c, std::ptrdiff_t ldc) {
  if (m <= 0 || n <= 0) return;
#if LOWBIT_HAVE_X86_SIMD
  if (tier == isa_tier::avx512) return avx512::gemm_f32(m, n, k, a, lda, b, ldb, c, ldc);
  if (tier == isa_tier::avx2) return avx2::gemm_f32(m, n, k, a, lda, b, ldb, c, ldc);
#endif
  static_cast<void>(tier);
  gemm_f32_scalar(m, n, k, a, lda, b, ldb, c, ldc);
}

// Tier-explicit entry points (the tests and benchmarks compare the tiers through these; a
// tier the CPU lacks is an error). The NEON tier runs the portable code.
inline void silu_mul_n(isa_tier tier, float* g, const float* u, std::size_t n) {
  lowbit::detail::check_tier_runs_here(tier, "silu_mul_n");
  silu_mul_on(tier, g, u, n);
}
inline void softmax_n(isa_tier tier, float* x, std::size_t n, float scale) {
  lowbit::detail::check_tier_runs_here(tier, "softmax_n");
  softmax_on(tier, x, n, scale);
}
inline void gemm_f32(isa_tier tier, int m, int n, int k, const float* a, std::ptrdiff_t lda, const float* b,
                     std::ptrdiff_t ldb, float* c, std::ptrdiff_t ldc) {
  lowbit::detail::check_tier_runs_here(tier, "gemm_f32");
  gemm_f32_on(tier, m, n, k, a, lda, b, ldb, c, ldc);
}

// The same on the process's tier (selected_isa_tier(), LOWBIT_ISA; supported by construction,
// so not checked per call: attention calls softmax_n once per row).
inline void silu_mul_n(float* g, const float* u, std::size_t n) { silu_mul_on(selected_isa_tier(), g, u, n); }
inline void softmax_n(float* x, std::size_t n, float scale) { softmax_on(selected_isa_tier(), x, n, scale); }
inline void gemm_f32(int m, int n, int k, const float* a, std::ptrdiff_t lda, const float* b, std::ptrdiff_t ldb,
                     float* c, std::ptrdiff_t ldc) {
  gemm_f32_on(selected_isa_tier(), m, n, k, a, lda, b, ldb, c, ldc);
}

}  // namespace lowbit::model::detail
