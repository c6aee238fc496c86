#pragma once
// AVX2 (+FMA, F16C) tier of the float-decoding family (include through
// kernels/float_family.hpp). One path: decode a 128 x 32 tile of w_hat once per block and
// chunk (exactly the fp32 value dequantize() gives), then a 3-token x 32-column register
// block of fp32 FMAs (12 ymm accumulators) runs over it for every token.
// Decoding: nibbles through two 8-entry VPERMPS lookups blended on the index's bit 3; int8
// by sign extension and VCVTDQ2PS; E4M3 through the fp16 bit move (see avx512_float.hpp) and
// VCVTPH2PS.
#include "lowbit/detail/target.hpp"
#include "lowbit/kernels/float_layout.hpp"

#if LOWBIT_HAVE_X86_SIMD
#include <immintrin.h>

namespace lowbit::detail {

// 8 nibble indices (one per dword, in bits 0..3) -> table values.
LOWBIT_TARGET_AVX2 inline __m256 avx2_lookup16(__m256i idx, __m256 lut_lo, __m256 lut_hi) {
  const __m256 a = _mm256_permutevar8x32_ps(lut_lo, idx);  // reads index bits 0..2
  const __m256 b = _mm256_permutevar8x32_ps(lut_hi, idx);
  return _mm256_blendv_ps(a, b, _mm256_castsi256_ps(_mm256_slli_epi32(idx, 28)));  // bit 3
}

template <float_code C>
LOWBIT_TARGET_AVX2 void avx2_decode_rows_t(const float_packed& w, std::int64_t b, std::int64_t k0,
                                           std::int64_t kc, float* dst) {
  const std::uint8_t* codes = w.block_codes(b);
  const float* scales = w.block_scales(b);
  const float* zeros = w.block_zeros(b);
  const float* table = float_code_is_4bit(C) ? nibble_table(C) : nibble_table(float_code::uint4_with_zero);
  const __m256 lut_lo = _mm256_loadu_ps(table), lut_hi = _mm256_loadu_ps(table + 8);
  const __m256i mask7f = _mm256_set1_epi16(0x7F), mask80 = _mm256_set1_epi16(0x80);
  for (std::int64_t kk = 0; kk < kc; ++kk) {
    const std::int64_t k = k0 + kk;
    const float* s = scales + (k / w.group_size) * float_block_cols;
    const std::uint8_t* krow = codes + k * w.krow_bytes;
    __m256 v[4];  // columns 0-7, 8-15, 16-23, 24-31
    if constexpr (C == float_code::int8_signed) {
#pragma GCC unroll 4
      for (int h = 0; h < 4; ++h)  // sign-extend 8 bytes to dwords: exact int -> fp32
        v[h] = _mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(_mm_loadl_epi64(reinterpret_cast<const __m128i*>(krow + 8 * h))));
    } else if constexpr (C == float_code::e4m3) {
#pragma GCC unroll 2
      for (int h = 0; h < 2; ++h) {
        const __m256i c = _mm256_cvtepu8_epi16(_mm_loadu_si128(reinterpret_cast<const __m128i*>(krow + 16 * h)));
        const __m256i f16 = _mm256_or_si256(_mm256_slli_epi16(_mm256_and_si256(c, mask7f), 7),
                                            _mm256_slli_epi16(_mm256_and_si256(c, mask80), 8));
        const __m256 two8 = _mm256_set1_ps(256.0f);  // the bit move scaled by 2^-8
        v[2 * h] = _mm256_mul_ps(_mm256_cvtph_ps(_mm256_castsi256_si128(f16)), two8);
        v[2 * h + 1] = _mm256_mul_ps(_mm256_cvtph_ps(_mm256_extracti128_si256(f16, 1)), two8);
      }
    } else {
#pragma GCC unroll 2
      for (int h = 0; h < 2; ++h) {
        const __m256i bytes = _mm256_cvtepu8_epi32(_mm_loadl_epi64(reinterpret_cast<const __m128i*>(krow + 8 * h)));
        v[h] = avx2_lookup16(bytes, lut_lo, lut_hi);                              // low nibbles
        v[h + 2] = avx2_lookup16(_mm256_srli_epi32(bytes, 4), lut_lo, lut_hi);    // high nibbles
      }
    }
    float* out = dst + kk * float_block_cols;
#pragma GCC unroll 4
    for (int h = 0; h < 4; ++h) {
      __m256 x = v[h];
      if constexpr (C == float_code::uint4_with_offset) {  // fma(code, s, offset): one rounding
        _mm256_storeu_ps(out + 8 * h, _mm256_fmadd_ps(x, _mm256_loadu_ps(s + 8 * h),
                                                      _mm256_loadu_ps(zeros + (k / w.group_size) * float_block_cols + 8 * h)));
        continue;
      }
      if constexpr (C == float_code::uint4_with_zero)
        x = _mm256_sub_ps(x, _mm256_loadu_ps(zeros + (k / w.group_size) * float_block_cols + 8 * h));
      else
        (void)zeros;
      _mm256_storeu_ps(out + 8 * h, _mm256_mul_ps(x, _mm256_loadu_ps(s + 8 * h)));
    }
  }
}

inline void avx2_decode_rows(const float_packed& w, std::int64_t b, std::int64_t k0,
                             std::int64_t kc, float* dst) {
  switch (w.code) {
    case float_code::e4m3: return avx2_decode_rows_t<float_code::e4m3>(w, b, k0, kc, dst);
    case float_code::e2m1: return avx2_decode_rows_t<float_code::e2m1>(w, b, k0, kc, dst);
    case float_code::int4_signed: return avx2_decode_rows_t<float_code::int4_signed>(w, b, k0, kc, dst);
    case float_code::uint4_with_zero:
      return avx2_decode_rows_t<float_code::uint4_with_zero>(w, b, k0, kc, dst);
    case float_code::int8_signed: return avx2_decode_rows_t<float_code::int8_signed>(w, b, k0, kc, dst);
    case float_code::uint4_with_offset:
      return avx2_decode_rows_t<float_code::uint4_with_offset>(w, b, k0, kc, dst);
  }
}

template <int TB>
LOWBIT_TARGET_AVX2 void avx2_accumulate_tile(const float* x, std::int64_t xs, const float* tile,
                                             std::int64_t kc, float* acc, bool first) {
  __m256 c[TB][4];
#pragma GCC unroll 4
  for (int t = 0; t < TB; ++t)
#pragma GCC unroll 4
    for (int h = 0; h < 4; ++h)
      c[t][h] = first ? _mm256_setzero_ps() : _mm256_loadu_ps(acc + t * float_block_cols + 8 * h);
  for (std::int64_t kk = 0; kk < kc; ++kk) {
    const float* wr = tile + kk * float_block_cols;
    const __m256 w0 = _mm256_loadu_ps(wr), w1 = _mm256_loadu_ps(wr + 8);
    const __m256 w2 = _mm256_loadu_ps(wr + 16), w3 = _mm256_loadu_ps(wr + 24);
#pragma GCC unroll 4
    for (int t = 0; t < TB; ++t) {
      const __m256 xb = _mm256_broadcast_ss(x + t * xs + kk);
      c[t][0] = _mm256_fmadd_ps(xb, w0, c[t][0]);
      c[t][1] = _mm256_fmadd_ps(xb, w1, c[t][1]);
      c[t][2] = _mm256_fmadd_ps(xb, w2, c[t][2]);
      c[t][3] = _mm256_fmadd_ps(xb, w3, c[t][3]);
    }
  }
#pragma GCC unroll 4
  for (int t = 0; t < TB; ++t)
#pragma GCC unroll 4
    for (int h = 0; h < 4; ++h) _mm256_storeu_ps(acc + t * float_block_cols + 8 * h, c[t][h]);
}

inline void avx2_accumulate(const float* x, std::int64_t xs, std::int64_t tokens,
                            const float* tile, std::int64_t kc, float* acc, bool first) {
  std::int64_t t = 0;
  for (; t + 3 <= tokens; t += 3)
    avx2_accumulate_tile<3>(x + t * xs, xs, tile, kc, acc + t * float_block_cols, first);
  if (tokens - t == 2) avx2_accumulate_tile<2>(x + t * xs, xs, tile, kc, acc + t * float_block_cols, first);
  if (tokens - t == 1) avx2_accumulate_tile<1>(x + t * xs, xs, tile, kc, acc + t * float_block_cols, first);
}

template <class Deferred = void>  // see "Compile time" in docs/design.md
inline void run_float_avx2(const float_packed& w, const float_workspace& ws, RowMatrixRef y,
                           std::int64_t n_begin, std::int64_t n_end) {
  run_float_buffered(w, ws, y, n_begin, n_end, avx2_decode_rows, avx2_accumulate);
}

}  // namespace lowbit::detail

#endif  // LOWBIT_HAVE_X86_SIMD
