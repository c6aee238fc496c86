#pragma once
// AVX2 bulk conversion between float and the small formats: 8 lanes per vector, 32 elements
// per step, following the integer recipe of codec_constants.hpp. AVX2 has no masked byte
// stores, so a tail is copied into a zero-padded block on the stack, converted by the same
// vector code, and copied back: the tail is still checked against the scalar reference.
// Decoding uses the formats' own decode tables (vpermps for FP4, a gather for FP6/FP8)
// and the arithmetic of codec_constants.hpp for E8M0.
#include <cstddef>
#include <cstdint>
#include <cstring>

#include "lowbit/detail/target.hpp"
#include "lowbit/formats/detail/codec_constants.hpp"

#if LOWBIT_HAVE_X86_SIMD
#include <immintrin.h>

namespace lowbit::detail::avx2 {

LOWBIT_TARGET_AVX2 inline __m256i set1(std::int32_t v) { return _mm256_set1_epi32(v); }

// a < b as unsigned 32-bit (AVX2 compares are signed: flip the sign bits first).
LOWBIT_TARGET_AVX2 inline __m256i cmplt_epu32(__m256i a, __m256i b) {
  const __m256i flip = set1(static_cast<std::int32_t>(0x80000000u));
  return _mm256_cmpgt_epi32(_mm256_xor_si256(b, flip), _mm256_xor_si256(a, flip));
}

// ---- float -> code ----------------------------------------------------------------------

template <class Desc>
LOWBIT_TARGET_AVX2 inline __m256i encode_exmy(__m256 x, __m256i overflow_code, __m256i nan_code) {
  using K = exmy_codec_constants<Desc>;
  const __m256i u = _mm256_castps_si256(x);
  const __m256i one = set1(1);
  const __m256i a = _mm256_and_si256(u, set1(0x7fffffff));
  const __m256i sign = _mm256_and_si256(_mm256_srli_epi32(u, K::sign_shift), set1(K::sign_mask));
  const __m256i odd = _mm256_and_si256(_mm256_srli_epi32(a, K::drop_bits), one);
  __m256i normal = _mm256_add_epi32(a, _mm256_add_epi32(set1(K::round_half_minus_1), odd));
  normal = _mm256_sub_epi32(_mm256_srli_epi32(normal, K::drop_bits), set1(K::rebias));
  // Subnormal in the target: |x| scaled to units of the smallest subnormal, rounded to even.
  const __m256 units = _mm256_mul_ps(_mm256_castsi256_ps(a), _mm256_set1_ps(K::subnormal_units));
  const __m256i sub = _mm256_cvttps_epi32(_mm256_round_ps(units, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC));
  const __m256i is_sub = _mm256_cmpgt_epi32(set1(K::normal_threshold), a);
  __m256i code = _mm256_blendv_epi8(normal, sub, is_sub);
  const __m256i over = _mm256_cmpgt_epi32(code, set1(K::max_finite_code));
  code = _mm256_or_si256(_mm256_blendv_epi8(code, overflow_code, over), sign);
  const __m256i is_nan = _mm256_cmpgt_epi32(a, set1(0x7f800000));
  const __m256i nan_value = K::nan_keeps_sign ? _mm256_or_si256(sign, nan_code) : nan_code;
  return _mm256_blendv_epi8(code, nan_value, is_nan);
}

LOWBIT_TARGET_AVX2 inline __m256i encode_e8m0(__m256 x, __m256i overflow_code) {
  using K = e8m0_codec_constants;
  const __m256i u = _mm256_castps_si256(x);
  const __m256i float_subnormal = cmplt_epu32(u, set1(K::min_normal_float_bits));
  const __m256i round = _mm256_blendv_epi8(set1(K::normal_round), set1(K::subnormal_round), float_subnormal);
  __m256i code = _mm256_srli_epi32(_mm256_add_epi32(u, round), 23);
  code = _mm256_blendv_epi8(code, overflow_code, _mm256_cmpgt_epi32(code, set1(K::max_code)));
  // u == 0, negative, or NaN  <=>  u - 1 >= 0x7f800000 as unsigned: keep the code where
  // u - 1 < 0x7f800000. (Blending on that mask rather than on its complement: GCC 12 with
  // AVX-512 enabled folded the complement into the blend the wrong way round, and every
  // lane's NaN test came out inverted; tests/test_formats_bulk.cpp caught it in a Release
  // -march=x86-64-v4 build, and a small program reproduced it at -O1 with -mavx512bw.)
  const __m256i finite = cmplt_epu32(_mm256_sub_epi32(u, set1(1)), set1(0x7f800000));
  return _mm256_blendv_epi8(set1(K::nan_code), code, finite);
}

template <class T>
LOWBIT_TARGET_AVX2 inline __m256i encode(__m256 x, __m256i overflow_code, __m256i nan_code) {
  if constexpr (is_e8m0_v<T>) {
    (void)nan_code;
    return encode_e8m0(x, overflow_code);
  } else {
    return encode_exmy<typename T::desc>(x, overflow_code, nan_code);
  }
}

// 32 floats -> 32 codes.
template <class T>
LOWBIT_TARGET_AVX2 inline void encode_block32(const float* in, std::uint8_t* dst, __m256i overflow_v,
                                              __m256i nan_v) {
  const __m256i c0 = encode<T>(_mm256_loadu_ps(in), overflow_v, nan_v);
  const __m256i c1 = encode<T>(_mm256_loadu_ps(in + 8), overflow_v, nan_v);
  const __m256i c2 = encode<T>(_mm256_loadu_ps(in + 16), overflow_v, nan_v);
  const __m256i c3 = encode<T>(_mm256_loadu_ps(in + 24), overflow_v, nan_v);
  // Codes are 0..255, so the saturating packs are plain narrowing; they interleave the two
  // 128-bit lanes, which the final dword permutation undoes.
  const __m256i p01 = _mm256_packus_epi32(c0, c1);
  const __m256i p23 = _mm256_packus_epi32(c2, c3);
  const __m256i bytes = _mm256_packus_epi16(p01, p23);
  const __m256i ordered = _mm256_permutevar8x32_epi32(bytes, _mm256_setr_epi32(0, 4, 1, 5, 2, 6, 3, 7));
  _mm256_storeu_si256(reinterpret_cast<__m256i*>(dst), ordered);
}

template <class T>
LOWBIT_TARGET_AVX2 void convert_n(const float* in, T* out, std::size_t n, saturation s) {
  std::int32_t overflow = 0, nan = 0;
  if constexpr (is_e8m0_v<T>) {
    overflow = e8m0_codec_constants::overflow_code(s);
  } else {
    using K = exmy_codec_constants<typename T::desc>;
    overflow = K::overflow_code(s);
    nan = K::nan_code;
  }
  const __m256i overflow_v = set1(overflow), nan_v = set1(nan);
  auto* dst = reinterpret_cast<std::uint8_t*>(out);
  std::size_t i = 0;
  for (; i + 32 <= n; i += 32) encode_block32<T>(in + i, dst + i, overflow_v, nan_v);
  if (i < n) {
    float tail_in[32] = {};
    std::uint8_t tail_out[32];
    std::memcpy(tail_in, in + i, (n - i) * sizeof(float));
    encode_block32<T>(tail_in, tail_out, overflow_v, nan_v);
    std::memcpy(dst + i, tail_out, n - i);
  }
}

// ---- code -> float ----------------------------------------------------------------------

// FP8 and FP6: a gather from the format's own decode table. Measured faster here than the
// arithmetic decode (which needs two blends for subnormals and specials on AVX2), and equal
// to the scalar path by construction.
template <class T>
LOWBIT_TARGET_AVX2 inline __m256 decode_gather(__m256i c) {
  return _mm256_i32gather_ps(T::decode_table.data(), _mm256_and_si256(c, set1(T::desc::code_mask)), 4);
}

LOWBIT_TARGET_AVX2 inline __m256 decode_e8m0(__m256i c) {
  using K = e8m0_codec_constants;
  __m256i bits = _mm256_slli_epi32(c, 23);
  bits = _mm256_blendv_epi8(bits, set1(K::code0_float_bits), _mm256_cmpeq_epi32(c, _mm256_setzero_si256()));
  bits = _mm256_blendv_epi8(bits, set1(K::nan_float_bits), _mm256_cmpeq_epi32(c, set1(K::nan_code)));
  return _mm256_castsi256_ps(bits);
}

// FP4 has 8 magnitudes: one vpermps into the format's own decode table, then OR the sign in.
template <class T>
LOWBIT_TARGET_AVX2 inline __m256 decode_fp4_table(__m256i c) {
  using K = exmy_codec_constants<typename T::desc>;
  static_assert(K::sign_mask == 8 && !K::has_special);
  const __m256 table = _mm256_loadu_ps(T::decode_table.data());
  const __m256i sign = _mm256_slli_epi32(_mm256_and_si256(c, set1(K::sign_mask)), K::code_sign_to_float_sign);
  const __m256 mag_value = _mm256_permutevar8x32_ps(table, _mm256_and_si256(c, set1(K::sign_mask - 1)));
  return _mm256_castsi256_ps(_mm256_or_si256(_mm256_castps_si256(mag_value), sign));
}

template <class T>
LOWBIT_TARGET_AVX2 inline __m256 decode(__m256i c) {
  if constexpr (is_e8m0_v<T>) {
    return decode_e8m0(c);
  } else if constexpr (T::desc::sign_mask == 8) {
    return decode_fp4_table<T>(c);
  } else {
    return decode_gather<T>(c);
  }
}

// 16 codes -> 16 floats.
template <class T>
LOWBIT_TARGET_AVX2 inline void decode_block16(const std::uint8_t* src, float* out) {
  const __m128i bytes = _mm_loadu_si128(reinterpret_cast<const __m128i*>(src));
  _mm256_storeu_ps(out, decode<T>(_mm256_cvtepu8_epi32(bytes)));
  _mm256_storeu_ps(out + 8, decode<T>(_mm256_cvtepu8_epi32(_mm_unpackhi_epi64(bytes, bytes))));
}

template <class T>
LOWBIT_TARGET_AVX2 void to_float_n(const T* in, float* out, std::size_t n) {
  const auto* src = reinterpret_cast<const std::uint8_t*>(in);
  std::size_t i = 0;
  for (; i + 16 <= n; i += 16) decode_block16<T>(src + i, out + i);
  if (i < n) {
    std::uint8_t tail_in[16] = {};
    float tail_out[16];
    std::memcpy(tail_in, src + i, n - i);
    decode_block16<T>(tail_in, tail_out);
    std::memcpy(out + i, tail_out, (n - i) * sizeof(float));
  }
}

}  // namespace lowbit::detail::avx2

#endif  // LOWBIT_HAVE_X86_SIMD
