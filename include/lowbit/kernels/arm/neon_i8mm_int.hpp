#pragma once
// NEON I8MM tier (sub-tier neoni8mm, ARMv8.6+: Graviton 3/4, Apple M2+) of the integer-
// activation family. USMMLA multiplies a 2 x 8 block of UNSIGNED bytes by the transpose of a
// 2 x 8 block of SIGNED bytes into a 2 x 2 int32 block, so it keeps the x86 operand roles:
// the biased weights (int8: w + 128, int4: w + 8, both unsigned) are the first operand, two
// weight rows per 16-byte load (the `mmla` layout of pack/int_packing.hpp), the activations
// of two tokens the second, and the bias is removed once per group with prepare's correction
// (B * sum a). Every int32 operation wraps like the scalar reference's uint32 arithmetic, so
// the group sums are exact (docs/performance.md, "Overflow").
//
// Accumulator p of a token pair holds [n(2p) t0, n(2p) t1, n(2p+1) t0, n(2p+1) t1]: the group
// scales (or M2 shifts) are widened to that order with a zip, the corrections are
// [c(t0), c(t1), c(t0), c(t1)], and the epilogue de-interleaves (uzp) into token rows. Each
// lane then runs the scalar reference's operations in its order, so outputs are bit-exact.
// An odd last token is paired with itself (the activation load reads its row twice) and the
// second half of its results is discarded.
// Tile: 16 output columns (eight accumulators) x 2 tokens.
// Loops over a register block carry `#pragma GCC unroll 16` (docs/design.md, "Register blocks
// are unrolled by pragma").
#include "lowbit/detail/target.hpp"

#if LOWBIT_HAVE_NEON
#include <arm_neon.h>

#include <algorithm>
#include <cstdint>
#include <cstring>

#include "lowbit/kernels/int_workspace.hpp"
#include "lowbit/pack/int_packing.hpp"

namespace lowbit::detail {

// Writes `ncols` (<= 4) lanes of v to dst.
LOWBIT_TARGET_NEON_I8MM inline void neon_i8mm_store(float* dst, float32x4_t v, int ncols) {
  if (ncols >= 4) {
    vst1q_f32(dst, v);
  } else {
    float tmp[4];
    vst1q_f32(tmp, v);
    std::memcpy(dst, tmp, static_cast<std::size_t>(ncols) * sizeof(float));
  }
}

template <bool Pair, bool Int4, bool M2>
LOWBIT_TARGET_NEON_I8MM void neon_i8mm_tile(const int_packed& p, const int_workspace& ws, const std::uint8_t* w,
                                            std::int64_t t0, float* y, std::int64_t ldy, int ncols) {
  constexpr int NP = 8;  // column pairs of the 16-column tile
  const std::int64_t t1 = Pair ? t0 + 1 : t0;
  const std::int8_t* a0 = ws.a.data() + t0 * ws.a_stride;
  const std::int8_t* a1 = ws.a.data() + t1 * ws.a_stride;
  float32x4_t totf[NP];
  int32x4_t toti[NP];
#pragma GCC unroll 16
  for (int q = 0; q < NP; ++q) {
    totf[q] = vdupq_n_f32(0.0f);
    toti[q] = vdupq_n_s32(0);
  }
  const uint8x16_t low4 = vdupq_n_u8(0x0F);
  std::int64_t koff = 0;
  for (std::int64_t g = 0; g < p.groups; ++g) {
    const std::int64_t plen = p.padded_len(g);  // a multiple of 2 * kstep
    int32x4_t acc[NP];
#pragma GCC unroll 16
    for (int q = 0; q < NP; ++q) acc[q] = vdupq_n_s32(0);
    if constexpr (Int4) {
      for (std::int64_t s = 0; s < plen; s += 16, w += 128) {
        const std::int8_t* x0 = a0 + koff + s;
        const std::int8_t* x1 = a1 + koff + s;
        const int8x16_t alo = vcombine_s8(vld1_s8(x0), vld1_s8(x1));          // inputs s .. s+7
        const int8x16_t ahi = vcombine_s8(vld1_s8(x0 + 8), vld1_s8(x1 + 8));  // s+8 .. s+15
#pragma GCC unroll 16
        for (int q = 0; q < NP; ++q) {
          const uint8x16_t raw = vld1q_u8(w + q * 16);
          acc[q] = vusmmlaq_s32(acc[q], vandq_u8(raw, low4), alo);
          acc[q] = vusmmlaq_s32(acc[q], vshrq_n_u8(raw, 4), ahi);
        }
      }
    } else {
      for (std::int64_t s = 0; s < plen; s += 8, w += 128) {
        const int8x16_t a = vcombine_s8(vld1_s8(a0 + koff + s), vld1_s8(a1 + koff + s));
#pragma GCC unroll 16
        for (int q = 0; q < NP; ++q) acc[q] = vusmmlaq_s32(acc[q], vld1q_u8(w + q * 16), a);
      }
    }
    const std::int32_t c0 = ws.comp[static_cast<std::size_t>(t0 * p.groups + g)];
    const std::int32_t c1 = ws.comp[static_cast<std::size_t>(t1 * p.groups + g)];
    const std::int32_t cc[4] = {c0, c1, c0, c1};
    const int32x4_t corr = vld1q_s32(cc);
#pragma GCC unroll 16
    for (int q = 0; q < NP; ++q) acc[q] = vsubq_s32(acc[q], corr);
    for (int v = 0; v < NP / 2; ++v) {  // columns 4v .. 4v+3: pairs 2v and 2v+1
      if constexpr (M2) {
        const int32x4_t sh = vld1q_s32(reinterpret_cast<const std::int32_t*>(w + v * 16));
        toti[2 * v] = vaddq_s32(toti[2 * v], vshlq_s32(acc[2 * v], vzip1q_s32(sh, sh)));
        toti[2 * v + 1] = vaddq_s32(toti[2 * v + 1], vshlq_s32(acc[2 * v + 1], vzip2q_s32(sh, sh)));
      } else {
        const float32x4_t sc = vld1q_f32(reinterpret_cast<const float*>(w + v * 16));
        totf[2 * v] = vfmaq_f32(totf[2 * v], vcvtq_f32_s32(acc[2 * v]), vzip1q_f32(sc, sc));
        totf[2 * v + 1] = vfmaq_f32(totf[2 * v + 1], vcvtq_f32_s32(acc[2 * v + 1]), vzip2q_f32(sc, sc));
      }
    }
    w += 64;
    koff += plen;
  }
  const float sa0 = ws.a_scale[static_cast<std::size_t>(t0)];
  const float sa1 = ws.a_scale[static_cast<std::size_t>(t1)];
  float* y0 = y + t0 * ldy;
  float* y1 = y + t1 * ldy;
  for (int v = 0; v < NP / 2; ++v) {
    const int left = ncols - v * 4;
    if (left <= 0) break;
    float32x4_t r0, r1;  // token t0's and t1's columns 4v .. 4v+3
    if constexpr (M2) {
      const float32x4_t rowf = vld1q_f32(reinterpret_cast<const float*>(w + v * 16));
      r0 = vmulq_f32(vcvtq_f32_s32(vuzp1q_s32(toti[2 * v], toti[2 * v + 1])), rowf);
      r1 = vmulq_f32(vcvtq_f32_s32(vuzp2q_s32(toti[2 * v], toti[2 * v + 1])), rowf);
    } else {
      r0 = vuzp1q_f32(totf[2 * v], totf[2 * v + 1]);
      r1 = vuzp2q_f32(totf[2 * v], totf[2 * v + 1]);
    }
    neon_i8mm_store(y0 + v * 4, vmulq_n_f32(r0, sa0), left);
    if constexpr (Pair) neon_i8mm_store(y1 + v * 4, vmulq_n_f32(r1, sa1), left);
  }
}

template <bool Int4, bool M2>
LOWBIT_TARGET_NEON_I8MM void neon_i8mm_tiles(const int_packed& p, const int_workspace& ws, float* y, std::int64_t ldy,
                                             std::int64_t tile_begin, std::int64_t tile_end) {
  for (std::int64_t t = tile_begin; t < tile_end; ++t) {
    const std::uint8_t* w = p.tile(t);
    float* yt = y + t * p.nt;
    const int ncols = static_cast<int>(std::min<std::int64_t>(p.nt, p.rows - t * p.nt));
    std::int64_t t0 = 0;
    for (; t0 + 2 <= ws.m; t0 += 2) neon_i8mm_tile<true, Int4, M2>(p, ws, w, t0, yt, ldy, ncols);
    if (t0 < ws.m) neon_i8mm_tile<false, Int4, M2>(p, ws, w, t0, yt, ldy, ncols);
  }
}

// The entry point of the neoni8mm sub-tier (USMMLA), one instantiation per scheme
// (kernels/registry.hpp).
template <gemm_scheme S>
inline void run_int_neoni8mm(const int_packed& p, const int_workspace& ws, float* y, std::int64_t ldy,
                             std::int64_t tile_begin, std::int64_t tile_end) {
  neon_i8mm_tiles<int_scheme_is_int4(S), int_scheme_is_m2(S)>(p, ws, y, ldy, tile_begin, tile_end);
}

}  // namespace lowbit::detail

#endif  // LOWBIT_HAVE_NEON
