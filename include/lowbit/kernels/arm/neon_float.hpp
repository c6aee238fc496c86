#pragma once
// NEON (AArch64) tier of the float-decoding family (include through
// kernels/float_family.hpp). One path: decode a 128 x 32 tile of w_hat once per block and
// chunk (shared decoder, exact as dequantize()), then a 2-token x 32-column register block
// of fp32 FMAs (16 q-register accumulators, 8 for the weights) runs over it.
#include "lowbit/detail/target.hpp"
#include "lowbit/kernels/float_layout.hpp"

#if LOWBIT_HAVE_NEON
#include <arm_neon.h>

namespace lowbit::detail {

template <int TB>
inline void neon_accumulate_tile(const float* x, std::int64_t xs, const float* tile,
                                 std::int64_t kc, float* acc, bool first) {
  float32x4_t c[TB][8];
#pragma GCC unroll 2
  for (int t = 0; t < TB; ++t)
#pragma GCC unroll 8
    for (int h = 0; h < 8; ++h)
      c[t][h] = first ? vdupq_n_f32(0.0f) : vld1q_f32(acc + t * float_block_cols + 4 * h);
  for (std::int64_t kk = 0; kk < kc; ++kk) {
    const float* wr = tile + kk * float_block_cols;
    float32x4_t wv[8];
#pragma GCC unroll 8
    for (int h = 0; h < 8; ++h) wv[h] = vld1q_f32(wr + 4 * h);
#pragma GCC unroll 2
    for (int t = 0; t < TB; ++t) {
      const float xv = x[t * xs + kk];
#pragma GCC unroll 8
      for (int h = 0; h < 8; ++h) c[t][h] = vfmaq_n_f32(c[t][h], wv[h], xv);
    }
  }
#pragma GCC unroll 2
  for (int t = 0; t < TB; ++t)
#pragma GCC unroll 8
    for (int h = 0; h < 8; ++h) vst1q_f32(acc + t * float_block_cols + 4 * h, c[t][h]);
}

inline void neon_accumulate(const float* x, std::int64_t xs, std::int64_t tokens,
                            const float* tile, std::int64_t kc, float* acc, bool first) {
  std::int64_t t = 0;
  for (; t + 2 <= tokens; t += 2)
    neon_accumulate_tile<2>(x + t * xs, xs, tile, kc, acc + t * float_block_cols, first);
  if (t < tokens) neon_accumulate_tile<1>(x + t * xs, xs, tile, kc, acc + t * float_block_cols, first);
}

template <class Deferred = void>  // see "Compile time" in docs/design.md
inline void run_float_neon(const float_packed& w, const float_workspace& ws, RowMatrixRef y,
                           std::int64_t n_begin, std::int64_t n_end) {
  run_float_buffered(w, ws, y, n_begin, n_end, decode_float_rows_scalar, neon_accumulate);
}

}  // namespace lowbit::detail

#endif  // LOWBIT_HAVE_NEON
