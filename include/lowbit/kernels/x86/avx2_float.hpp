#pragma once
// AVX2 (+FMA, F16C) tier of the float-decoding family (include through
// kernels/float_family.hpp). One path: decode a 128 x 32 tile of w_hat once per block and
// chunk (shared decoder, exact as dequantize()), then a 3-token x 32-column register block
// of fp32 FMAs (12 ymm accumulators) runs over it for every token.
#include "lowbit/detail/target.hpp"
#include "lowbit/kernels/float_layout.hpp"

#if LOWBIT_HAVE_X86_SIMD
#include <immintrin.h>

namespace lowbit::detail {

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

inline void run_float_avx2(const float_packed& w, const float_workspace& ws, RowMatrixRef y,
                           std::int64_t n_begin, std::int64_t n_end) {
  run_float_buffered(w, ws, y, n_begin, n_end, decode_float_rows_scalar, avx2_accumulate);
}

}  // namespace lowbit::detail

#endif  // LOWBIT_HAVE_X86_SIMD
