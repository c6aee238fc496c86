#pragma once
// AVX-512 (F/BW/VL) bulk conversion between float and the small formats: 16 lanes at a
// time following the integer recipe of codec_constants.hpp; array tails use masked loads and
// stores, so the same vector code handles them (and reads nothing past the end).
// Bit-exact with convert<T> / T::to_float(); tests/test_formats_bulk.cpp checks it.
#include <cstddef>
#include <cstdint>

#include "lowbit/detail/target.hpp"
#include "lowbit/formats/detail/codec_constants.hpp"

#if LOWBIT_HAVE_X86_SIMD
#include <immintrin.h>

// GCC 12 warns (-Wmaybe-uninitialized) inside its own AVX-512 intrinsics, whose results
// start from _mm512_undefined_epi32() (GCC bug 105593); the warning is about the headers,
// not this code.
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic push
LOWBIT_IGNORE_GCC_MAYBE_UNINITIALIZED
#endif

namespace lowbit::detail::avx512 {

// ---- float -> code ----------------------------------------------------------------------

template <class Desc>
LOWBIT_TARGET_AVX512 inline __m512i encode_exmy(__m512 x, __m512i overflow_code, __m512i nan_code) {
  using K = exmy_codec_constants<Desc>;
  const __m512i u = _mm512_castps_si512(x);
  const __m512i a = _mm512_and_si512(u, _mm512_set1_epi32(0x7fffffff));
  const __m512i sign = _mm512_and_si512(_mm512_srli_epi32(u, K::sign_shift), _mm512_set1_epi32(K::sign_mask));
  // Normal in the target: round the float's bits to M mantissa bits, then rebias.
  const __m512i odd = _mm512_and_si512(_mm512_srli_epi32(a, K::drop_bits), _mm512_set1_epi32(1));
  __m512i normal = _mm512_add_epi32(a, _mm512_add_epi32(_mm512_set1_epi32(K::round_half_minus_1), odd));
  normal = _mm512_sub_epi32(_mm512_srli_epi32(normal, K::drop_bits), _mm512_set1_epi32(K::rebias));
  // Subnormal in the target: |x| scaled to units of the smallest subnormal, rounded to even.
  const __m512 units = _mm512_mul_ps(_mm512_castsi512_ps(a), _mm512_set1_ps(K::subnormal_units));
  const __m512i sub = _mm512_cvttps_epi32(_mm512_roundscale_ps(units, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC));
  const __mmask16 is_sub = _mm512_cmplt_epi32_mask(a, _mm512_set1_epi32(K::normal_threshold));
  __m512i code = _mm512_mask_blend_epi32(is_sub, normal, sub);
  const __mmask16 over = _mm512_cmpgt_epi32_mask(code, _mm512_set1_epi32(K::max_finite_code));
  code = _mm512_mask_blend_epi32(over, code, overflow_code);
  code = _mm512_or_si512(code, sign);
  const __mmask16 is_nan = _mm512_cmpgt_epi32_mask(a, _mm512_set1_epi32(0x7f800000));
  const __m512i nan_value = K::nan_keeps_sign ? _mm512_or_si512(sign, nan_code) : nan_code;
  return _mm512_mask_blend_epi32(is_nan, code, nan_value);
}

LOWBIT_TARGET_AVX512 inline __m512i encode_e8m0(__m512 x, __m512i overflow_code) {
  using K = e8m0_codec_constants;
  const __m512i u = _mm512_castps_si512(x);
  const __mmask16 float_subnormal = _mm512_cmplt_epu32_mask(u, _mm512_set1_epi32(K::min_normal_float_bits));
  const __m512i round = _mm512_mask_blend_epi32(float_subnormal, _mm512_set1_epi32(K::normal_round),
                                                _mm512_set1_epi32(K::subnormal_round));
  __m512i code = _mm512_srli_epi32(_mm512_add_epi32(u, round), 23);
  const __mmask16 over = _mm512_cmpgt_epi32_mask(code, _mm512_set1_epi32(K::max_code));
  code = _mm512_mask_blend_epi32(over, code, overflow_code);
  // u == 0, negative, or NaN  <=>  u - 1 >= 0x7f800000 as unsigned.
  const __mmask16 is_nan = _mm512_cmpge_epu32_mask(_mm512_sub_epi32(u, _mm512_set1_epi32(1)),
                                                   _mm512_set1_epi32(0x7f800000));
  return _mm512_mask_blend_epi32(is_nan, code, _mm512_set1_epi32(K::nan_code));
}

template <class T>
LOWBIT_TARGET_AVX512 inline __m512i encode(__m512 x, __m512i overflow_code, __m512i nan_code) {
  if constexpr (is_e8m0_v<T>) {
    (void)nan_code;
    return encode_e8m0(x, overflow_code);
  } else {
    return encode_exmy<typename T::desc>(x, overflow_code, nan_code);
  }
}

template <class T>
LOWBIT_TARGET_AVX512 void convert_n(const float* in, T* out, std::size_t n, saturation s) {
  std::int32_t overflow = 0, nan = 0;
  if constexpr (is_e8m0_v<T>) {
    overflow = e8m0_codec_constants::overflow_code(s);
  } else {
    using K = exmy_codec_constants<typename T::desc>;
    overflow = K::overflow_code(s);
    nan = K::nan_code;
  }
  const __m512i overflow_v = _mm512_set1_epi32(overflow), nan_v = _mm512_set1_epi32(nan);
  auto* dst = reinterpret_cast<std::uint8_t*>(out);
  std::size_t i = 0;
  for (; i + 32 <= n; i += 32) {  // two vectors per step keep both ports busy
    const __m512i c0 = encode<T>(_mm512_loadu_ps(in + i), overflow_v, nan_v);
    const __m512i c1 = encode<T>(_mm512_loadu_ps(in + i + 16), overflow_v, nan_v);
    _mm_storeu_si128(reinterpret_cast<__m128i*>(dst + i), _mm512_cvtepi32_epi8(c0));
    _mm_storeu_si128(reinterpret_cast<__m128i*>(dst + i + 16), _mm512_cvtepi32_epi8(c1));
  }
  for (; i < n; i += 16) {
    const std::size_t left = n - i < 16 ? n - i : 16;
    const __mmask16 m = static_cast<__mmask16>((1u << left) - 1);
    const __m512i c = encode<T>(_mm512_maskz_loadu_ps(m, in + i), overflow_v, nan_v);
    _mm_mask_storeu_epi8(dst + i, m, _mm512_cvtepi32_epi8(c));
  }
}

// ---- code -> float ----------------------------------------------------------------------

template <class Desc>
LOWBIT_TARGET_AVX512 inline __m512 decode_exmy(__m512i c) {
  using K = exmy_codec_constants<Desc>;
  if constexpr (K::code_mask != 0xFF) c = _mm512_and_si512(c, _mm512_set1_epi32(K::code_mask));
  const __m512i sign = _mm512_slli_epi32(_mm512_and_si512(c, _mm512_set1_epi32(K::sign_mask)),
                                         K::code_sign_to_float_sign);
  const __m512i mag = _mm512_andnot_si512(_mm512_set1_epi32(K::sign_mask), c);
  __m512i bits = _mm512_add_epi32(_mm512_slli_epi32(mag, K::drop_bits), _mm512_set1_epi32(K::exponent_rebias_bits));
  const __m512 sub = _mm512_mul_ps(_mm512_cvtepi32_ps(mag), _mm512_set1_ps(K::subnormal_scale));
  bits = _mm512_mask_blend_epi32(_mm512_cmplt_epi32_mask(mag, _mm512_set1_epi32(K::subnormal_limit)), bits,
                                 _mm512_castps_si512(sub));
  if constexpr (K::has_special) {
    bits = _mm512_mask_blend_epi32(_mm512_cmpge_epi32_mask(mag, _mm512_set1_epi32(K::first_special_mag)),
                                   bits, _mm512_set1_epi32(0x7fc00000));
    if constexpr (K::ieee)
      bits = _mm512_mask_blend_epi32(_mm512_cmpeq_epi32_mask(mag, _mm512_set1_epi32(K::inf_mag)), bits,
                                     _mm512_set1_epi32(0x7f800000));
  }
  return _mm512_castsi512_ps(_mm512_or_si512(bits, sign));
}

LOWBIT_TARGET_AVX512 inline __m512 decode_e8m0(__m512i c) {
  using K = e8m0_codec_constants;
  __m512i bits = _mm512_slli_epi32(c, 23);
  bits = _mm512_mask_blend_epi32(_mm512_cmpeq_epi32_mask(c, _mm512_setzero_si512()), bits,
                                 _mm512_set1_epi32(K::code0_float_bits));
  bits = _mm512_mask_blend_epi32(_mm512_cmpeq_epi32_mask(c, _mm512_set1_epi32(K::nan_code)), bits,
                                 _mm512_set1_epi32(K::nan_float_bits));
  return _mm512_castsi512_ps(bits);
}

// Formats with at most 32 magnitudes (FP4, FP6): look the magnitude up in the format's own
// decode table held in two registers (one vpermi2ps), then OR the sign in. Same numbers as
// the scalar path by construction, and a third of the instructions of the arithmetic.
template <class T>
LOWBIT_TARGET_AVX512 inline __m512 decode_small_table(__m512i c) {
  using K = exmy_codec_constants<typename T::desc>;
  static_assert(K::sign_mask <= 32 && !K::has_special);
  const __m512 lo = _mm512_loadu_ps(T::decode_table.data());
  const __m512 hi = K::sign_mask > 16 ? _mm512_loadu_ps(T::decode_table.data() + 16) : lo;
  const __m512i mag = _mm512_and_si512(c, _mm512_set1_epi32(K::sign_mask - 1));
  const __m512i sign = _mm512_slli_epi32(_mm512_and_si512(c, _mm512_set1_epi32(K::sign_mask)),
                                         K::code_sign_to_float_sign);
  const __m512 mag_value = _mm512_permutex2var_ps(lo, mag, hi);
  return _mm512_castsi512_ps(_mm512_or_si512(_mm512_castps_si512(mag_value), sign));
}

template <class T>
LOWBIT_TARGET_AVX512 inline __m512 decode(__m512i c) {
  if constexpr (is_e8m0_v<T>) {
    return decode_e8m0(c);
  } else if constexpr (T::desc::sign_mask <= 32) {
    return decode_small_table<T>(c);
  } else {
    return decode_exmy<typename T::desc>(c);
  }
}

template <class T>
LOWBIT_TARGET_AVX512 void to_float_n(const T* in, float* out, std::size_t n) {
  const auto* src = reinterpret_cast<const std::uint8_t*>(in);
  std::size_t i = 0;
  for (; i + 32 <= n; i += 32) {
    const __m512i c0 = _mm512_cvtepu8_epi32(_mm_loadu_si128(reinterpret_cast<const __m128i*>(src + i)));
    const __m512i c1 = _mm512_cvtepu8_epi32(_mm_loadu_si128(reinterpret_cast<const __m128i*>(src + i + 16)));
    _mm512_storeu_ps(out + i, decode<T>(c0));
    _mm512_storeu_ps(out + i + 16, decode<T>(c1));
  }
  for (; i < n; i += 16) {
    const std::size_t left = n - i < 16 ? n - i : 16;
    const __mmask16 m = static_cast<__mmask16>((1u << left) - 1);
    const __m512i c = _mm512_cvtepu8_epi32(_mm_maskz_loadu_epi8(m, src + i));
    _mm512_mask_storeu_ps(out + i, m, decode<T>(c));
  }
}

}  // namespace lowbit::detail::avx512

#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic pop
#endif

#endif  // LOWBIT_HAVE_X86_SIMD
