#pragma once
// Vector pieces of the generic fused quantizer, each with a scalar reference beside it:
//   abs_max_bits(x, n)        max over i of (bits(x[i]) & 0x7fffffff): the amax as bits, and
//                             >= 0x7f800000 exactly when the group holds a NaN or Inf
//   scale_round_clamp(...)    integer codes clamp(nearbyint(x * inv), lo, hi) + zero as bytes
// Float formats encode through convert_n (formats/convert.hpp), bit-exact with convert<T>.
// The fused quantize() path uses these; quantize_column() uses the scalar element codec; the
// basic tests compare the two for every spec, so every tier is checked against the scalar one.
#include <algorithm>
#include <cstdint>

#include "lowbit/detail/target.hpp"
#include "lowbit/dispatch/cpu_features.hpp"
#include "lowbit/formats/intn.hpp"
#include "lowbit/quant/scale_rules.hpp"

#if LOWBIT_HAVE_X86_SIMD
#include <immintrin.h>
#endif

namespace lowbit::detail {

inline std::uint32_t abs_max_bits_scalar(const float* x, std::int64_t n) noexcept {
  std::uint32_t m = 0;
  for (std::int64_t i = 0; i < n; ++i) m = std::max(m, scale_bits(x[i]) & 0x7fffffffu);
  return m;
}

inline void scale_round_clamp_scalar(const float* x, std::int64_t n, float inv, int lo, int hi, int zero,
                                     std::uint8_t* out) noexcept {
  for (std::int64_t i = 0; i < n; ++i) out[i] = static_cast<std::uint8_t>(round_clamp(x[i] * inv, lo, hi) + zero);
}

#if LOWBIT_HAVE_X86_SIMD
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic push
LOWBIT_IGNORE_GCC_MAYBE_UNINITIALIZED  // GCC bug 105593, in the intrinsics
#pragma GCC diagnostic ignored "-Wuninitialized"
#endif

LOWBIT_TARGET_AVX512 inline std::uint32_t abs_max_bits_avx512(const float* x, std::int64_t n) noexcept {
  const __m512i mask = _mm512_set1_epi32(0x7fffffff);
  __m512i m = _mm512_setzero_si512();
  for (std::int64_t i = 0; i < n; i += 16) {
    const __mmask16 k = n - i >= 16 ? __mmask16(0xFFFF) : __mmask16((1u << (n - i)) - 1);
    m = _mm512_max_epu32(m, _mm512_and_si512(_mm512_maskz_loadu_epi32(k, x + i), mask));
  }
  return _mm512_reduce_max_epu32(m);
}

LOWBIT_TARGET_AVX512 inline void scale_round_clamp_avx512(const float* x, std::int64_t n, float inv, int lo, int hi,
                                                          int zero, std::uint8_t* out) noexcept {
  const __m512 vinv = _mm512_set1_ps(inv);
  const __m512 vlo = _mm512_set1_ps(float(lo)), vhi = _mm512_set1_ps(float(hi));
  const __m512i vz = _mm512_set1_epi32(zero);
  for (std::int64_t i = 0; i < n; i += 16) {
    const __mmask16 k = n - i >= 16 ? __mmask16(0xFFFF) : __mmask16((1u << (n - i)) - 1);
    __m512 y = _mm512_mul_ps(_mm512_maskz_loadu_ps(k, x + i), vinv);
    y = _mm512_roundscale_ps(y, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
    y = _mm512_min_ps(_mm512_max_ps(y, vlo), vhi);
    const __m512i v = _mm512_add_epi32(_mm512_cvtps_epi32(y), vz);
    _mm_mask_storeu_epi8(out + i, k, _mm512_cvtepi32_epi8(v));
  }
}

#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic pop
#endif
#endif  // LOWBIT_HAVE_X86_SIMD

inline std::uint32_t abs_max_bits(const float* x, std::int64_t n) noexcept {
#if LOWBIT_HAVE_X86_SIMD
  static const bool use_avx512 = selected_isa_tier() == isa_tier::avx512;
  if (use_avx512) return abs_max_bits_avx512(x, n);
#endif
  return abs_max_bits_scalar(x, n);
}

inline void scale_round_clamp(const float* x, std::int64_t n, float inv, int lo, int hi, int zero,
                              std::uint8_t* out) noexcept {
#if LOWBIT_HAVE_X86_SIMD
  static const bool use_avx512 = selected_isa_tier() == isa_tier::avx512;
  if (use_avx512) return scale_round_clamp_avx512(x, n, inv, lo, hi, zero, out);
#endif
  scale_round_clamp_scalar(x, n, inv, lo, hi, zero, out);
}

}  // namespace lowbit::detail
