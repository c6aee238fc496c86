#pragma once
// NEON (dotprod) tier of the integer-activation family. SDOT multiplies signed by signed
// bytes, so the biased weights are used as follows: int4 weights (0..15) are already valid
// signed bytes and give the biased sum, corrected per group like on x86; int8 weights are
// turned back into signed values (XOR 0x80) and give the plain sum, with no correction.
// Tile: 16 output columns (four q registers) x 2 tokens.
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

LOWBIT_TARGET_NEON_DOTPROD inline int8x16_t neon_bcast32(const std::int8_t* p) {
  std::int32_t v;
  std::memcpy(&v, p, 4);
  return vreinterpretq_s8_s32(vdupq_n_s32(v));
}

template <int MR, bool Int4, bool M2>
LOWBIT_TARGET_NEON_DOTPROD void neon_int_tile(const int_packed& p, const int_workspace& ws, const std::uint8_t* w,
                                              std::int64_t t0, float* y, std::int64_t ldy, int ncols) {
  constexpr int NV = 4;
  const std::int8_t* arow[MR];
#pragma GCC unroll 16
  for (int i = 0; i < MR; ++i) arow[i] = ws.a.data() + (t0 + i) * ws.a_stride;
  float32x4_t totf[MR][NV];
  int32x4_t toti[MR][NV];
#pragma GCC unroll 16
  for (int i = 0; i < MR; ++i)
#pragma GCC unroll 16
    for (int v = 0; v < NV; ++v) {
      totf[i][v] = vdupq_n_f32(0.0f);
      toti[i][v] = vdupq_n_s32(0);
    }
  const uint8x16_t low4 = vdupq_n_u8(0x0F), sign = vdupq_n_u8(0x80);
  std::int64_t koff = 0;
  for (std::int64_t g = 0; g < p.groups; ++g) {
    const std::int64_t plen = p.padded_len(g);
    int32x4_t acc[MR][NV];
#pragma GCC unroll 16
    for (int i = 0; i < MR; ++i)
#pragma GCC unroll 16
      for (int v = 0; v < NV; ++v) acc[i][v] = vdupq_n_s32(0);
    if constexpr (Int4) {
      for (std::int64_t s = 0; s < plen; s += 8, w += 64) {
        int8x16_t lo[NV], hi[NV];
#pragma GCC unroll 16
        for (int v = 0; v < NV; ++v) {
          const uint8x16_t raw = vld1q_u8(w + v * 16);
          lo[v] = vreinterpretq_s8_u8(vandq_u8(raw, low4));
          hi[v] = vreinterpretq_s8_u8(vshrq_n_u8(raw, 4));
        }
#pragma GCC unroll 16
        for (int i = 0; i < MR; ++i) {
          const int8x16_t alo = neon_bcast32(arow[i] + koff + s), ahi = neon_bcast32(arow[i] + koff + s + 4);
#pragma GCC unroll 16
          for (int v = 0; v < NV; ++v) {
            acc[i][v] = vdotq_s32(acc[i][v], lo[v], alo);
            acc[i][v] = vdotq_s32(acc[i][v], hi[v], ahi);
          }
        }
      }
#pragma GCC unroll 16
      for (int i = 0; i < MR; ++i) {
        const int32x4_t c = vdupq_n_s32(ws.comp[static_cast<std::size_t>((t0 + i) * p.groups + g)]);
#pragma GCC unroll 16
        for (int v = 0; v < NV; ++v) acc[i][v] = vsubq_s32(acc[i][v], c);
      }
    } else {
      for (std::int64_t s = 0; s < plen; s += 4, w += 64) {
        int8x16_t wv[NV];
#pragma GCC unroll 16
        for (int v = 0; v < NV; ++v) wv[v] = vreinterpretq_s8_u8(veorq_u8(vld1q_u8(w + v * 16), sign));
#pragma GCC unroll 16
        for (int i = 0; i < MR; ++i) {
          const int8x16_t a4 = neon_bcast32(arow[i] + koff + s);
#pragma GCC unroll 16
          for (int v = 0; v < NV; ++v) acc[i][v] = vdotq_s32(acc[i][v], wv[v], a4);
        }
      }
    }
#pragma GCC unroll 16
    for (int v = 0; v < NV; ++v) {
      if constexpr (M2) {
        const int32x4_t sh = vld1q_s32(reinterpret_cast<const std::int32_t*>(w + v * 16));
#pragma GCC unroll 16
        for (int i = 0; i < MR; ++i) toti[i][v] = vaddq_s32(toti[i][v], vshlq_s32(acc[i][v], sh));
      } else {
        const float32x4_t sc = vld1q_f32(reinterpret_cast<const float*>(w + v * 16));
#pragma GCC unroll 16
        for (int i = 0; i < MR; ++i) totf[i][v] = vfmaq_f32(totf[i][v], vcvtq_f32_s32(acc[i][v]), sc);
      }
    }
    w += 64;
    koff += plen;
  }
#pragma GCC unroll 16
  for (int i = 0; i < MR; ++i) {
    const float sa = ws.a_scale[static_cast<std::size_t>(t0 + i)];
    float* yrow = y + (t0 + i) * ldy;
#pragma GCC unroll 16
    for (int v = 0; v < NV; ++v) {
      float32x4_t out = totf[i][v];
      if constexpr (M2)
        out = vmulq_f32(vcvtq_f32_s32(toti[i][v]), vld1q_f32(reinterpret_cast<const float*>(w + v * 16)));
      out = vmulq_n_f32(out, sa);
      const int left = ncols - v * 4;
      if (left <= 0) break;
      if (left >= 4) {
        vst1q_f32(yrow + v * 4, out);
      } else {
        float tmp[4];
        vst1q_f32(tmp, out);
        std::memcpy(yrow + v * 4, tmp, static_cast<std::size_t>(left) * sizeof(float));
      }
    }
  }
}

template <bool Int4, bool M2>
LOWBIT_TARGET_NEON_DOTPROD void neon_int_tiles(const int_packed& p, const int_workspace& ws, float* y, std::int64_t ldy,
                                               std::int64_t tile_begin, std::int64_t tile_end) {
  for (std::int64_t t = tile_begin; t < tile_end; ++t) {
    const std::uint8_t* w = p.tile(t);
    float* yt = y + t * p.nt;
    const int ncols = static_cast<int>(std::min<std::int64_t>(p.nt, p.rows - t * p.nt));
    std::int64_t t0 = 0;
    for (; t0 + 2 <= ws.m; t0 += 2) neon_int_tile<2, Int4, M2>(p, ws, w, t0, yt, ldy, ncols);
    if (t0 < ws.m) neon_int_tile<1, Int4, M2>(p, ws, w, t0, yt, ldy, ncols);
  }
}

// The entry point of the neondot sub-tier (SDOT), one instantiation per scheme
// (kernels/registry.hpp).
template <gemm_scheme S>
inline void run_int_neondot(const int_packed& p, const int_workspace& ws, float* y, std::int64_t ldy,
                            std::int64_t tile_begin, std::int64_t tile_end) {
  neon_int_tiles<int_scheme_is_int4(S), int_scheme_is_m2(S)>(p, ws, y, ldy, tile_begin, tile_end);
}

}  // namespace lowbit::detail

#endif  // LOWBIT_HAVE_NEON
