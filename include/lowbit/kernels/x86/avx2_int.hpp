#pragma once
// AVX2 tier of the integer-activation family: AVX-VNNI's VPDPBUSD on ymm where present,
// VPMADDUBSW + VPMADDWD otherwise (same exactness argument as kernels/x86/avx512_int.hpp).
// Tile: 16 output columns (two ymm) x 2 tokens, which with the group accumulators and
// totals fills the 16 ymm registers.
#include "lowbit/detail/target.hpp"

#if LOWBIT_HAVE_X86_SIMD
#include <immintrin.h>

#include <algorithm>
#include <cstdint>
#include <cstring>

#include "lowbit/kernels/int_workspace.hpp"
#include "lowbit/pack/int_packing.hpp"

namespace lowbit::detail {

LOWBIT_TARGET_AVX2 inline __m256i avx2_bcast32(const std::int8_t* p) {
  std::int32_t v;
  std::memcpy(&v, p, 4);
  return _mm256_set1_epi32(v);
}

template <bool Vnni, bool Int8>
LOWBIT_TARGET_AVX2 inline __m256i avx2_dot(__m256i acc, __m256i w, __m256i a) {
  if constexpr (Vnni) {
    // Inline asm, so that the kernels carry no avxvnni target and the compiler cannot put a
    // VNNI instruction into the plain avx2 sub-tier (docs/design.md, "A sub-tier's code holds
    // only its sub-tier's instructions").
    __asm__("%{vex%} vpdpbusd %2, %1, %0" : "+x"(acc) : "x"(w), "x"(a));
    return acc;
  } else if constexpr (!Int8) {
    const __m256i p16 = _mm256_maddubs_epi16(w, a);
    return _mm256_add_epi32(acc, _mm256_madd_epi16(p16, _mm256_set1_epi16(1)));
  } else {
    const __m256i ws = _mm256_xor_si256(w, _mm256_set1_epi8(static_cast<char>(0x80)));
    const __m256i p16 = _mm256_maddubs_epi16(_mm256_abs_epi8(ws), _mm256_sign_epi8(a, ws));
    return _mm256_add_epi32(acc, _mm256_madd_epi16(p16, _mm256_set1_epi16(1)));
  }
}

template <int MR, bool Int4, bool M2, bool Vnni>
LOWBIT_TARGET_AVX2 void avx2_int_tile(const int_packed& p, const int_workspace& ws, const std::uint8_t* w,
                                           std::int64_t t0, float* y, std::int64_t ldy, int ncols) {
  constexpr int NV = 2;
  constexpr bool unbiased = !Vnni && !Int4;
  const std::int8_t* arow[MR];
  for (int i = 0; i < MR; ++i) arow[i] = ws.a.data() + (t0 + i) * ws.a_stride;
  __m256 totf[MR][NV];
  __m256i toti[MR][NV];
  for (int i = 0; i < MR; ++i)
    for (int v = 0; v < NV; ++v) {
      totf[i][v] = _mm256_setzero_ps();
      toti[i][v] = _mm256_setzero_si256();
    }
  const __m256i low4 = _mm256_set1_epi8(0x0F);
  std::int64_t koff = 0;
  for (std::int64_t g = 0; g < p.groups; ++g) {
    const std::int64_t plen = p.padded_len(g);
    __m256i acc[MR][NV];
    for (int i = 0; i < MR; ++i)
      for (int v = 0; v < NV; ++v) acc[i][v] = _mm256_setzero_si256();
    if constexpr (Int4) {
      for (std::int64_t s = 0; s < plen; s += 8, w += 64) {
        __m256i lo[NV], hi[NV];
        for (int v = 0; v < NV; ++v) {
          const __m256i raw = _mm256_load_si256(reinterpret_cast<const __m256i*>(w + v * 32));
          lo[v] = _mm256_and_si256(raw, low4);
          hi[v] = _mm256_and_si256(_mm256_srli_epi16(raw, 4), low4);
        }
        for (int i = 0; i < MR; ++i) {
          const __m256i alo = avx2_bcast32(arow[i] + koff + s);
          const __m256i ahi = avx2_bcast32(arow[i] + koff + s + 4);
          for (int v = 0; v < NV; ++v) {
            acc[i][v] = avx2_dot<Vnni, false>(acc[i][v], lo[v], alo);
            acc[i][v] = avx2_dot<Vnni, false>(acc[i][v], hi[v], ahi);
          }
        }
      }
    } else {
      for (std::int64_t s = 0; s < plen; s += 4, w += 64) {
        __m256i wv[NV];
        for (int v = 0; v < NV; ++v) wv[v] = _mm256_load_si256(reinterpret_cast<const __m256i*>(w + v * 32));
        for (int i = 0; i < MR; ++i) {
          const __m256i a4 = avx2_bcast32(arow[i] + koff + s);
          for (int v = 0; v < NV; ++v) acc[i][v] = avx2_dot<Vnni, true>(acc[i][v], wv[v], a4);
        }
      }
    }
    if constexpr (!unbiased) {
      for (int i = 0; i < MR; ++i) {
        const __m256i c = _mm256_set1_epi32(ws.comp[static_cast<std::size_t>((t0 + i) * p.groups + g)]);
        for (int v = 0; v < NV; ++v) acc[i][v] = _mm256_sub_epi32(acc[i][v], c);
      }
    }
    if constexpr (M2) {
      for (int v = 0; v < NV; ++v) {
        const __m256i sh = _mm256_load_si256(reinterpret_cast<const __m256i*>(w + v * 32));
        for (int i = 0; i < MR; ++i) toti[i][v] = _mm256_add_epi32(toti[i][v], _mm256_sllv_epi32(acc[i][v], sh));
      }
    } else {
      for (int v = 0; v < NV; ++v) {
        const __m256 sc = _mm256_load_ps(reinterpret_cast<const float*>(w + v * 32));
        for (int i = 0; i < MR; ++i) totf[i][v] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(acc[i][v]), sc, totf[i][v]);
      }
    }
    w += 64;
    koff += plen;
  }
  for (int i = 0; i < MR; ++i) {
    const __m256 sa = _mm256_set1_ps(ws.a_scale[static_cast<std::size_t>(t0 + i)]);
    float* yrow = y + (t0 + i) * ldy;
    for (int v = 0; v < NV; ++v) {
      __m256 out = totf[i][v];
      if constexpr (M2)
        out = _mm256_mul_ps(_mm256_cvtepi32_ps(toti[i][v]), _mm256_load_ps(reinterpret_cast<const float*>(w + v * 32)));
      out = _mm256_mul_ps(out, sa);
      const int left = ncols - v * 8;
      if (left <= 0) break;
      if (left >= 8) {
        _mm256_storeu_ps(yrow + v * 8, out);
      } else {
        alignas(32) float tmp[8];
        _mm256_store_ps(tmp, out);
        std::memcpy(yrow + v * 8, tmp, static_cast<std::size_t>(left) * sizeof(float));
      }
    }
  }
}

template <bool Int4, bool M2, bool Vnni>
LOWBIT_TARGET_AVX2 void avx2_int_tiles(const int_packed& p, const int_workspace& ws, float* y, std::int64_t ldy,
                                            std::int64_t tile_begin, std::int64_t tile_end) {
  for (std::int64_t t = tile_begin; t < tile_end; ++t) {
    const std::uint8_t* w = p.tile(t);
    float* yt = y + t * p.nt;
    const int ncols = static_cast<int>(std::min<std::int64_t>(p.nt, p.rows - t * p.nt));
    std::int64_t t0 = 0;
    for (; t0 + 2 <= ws.m; t0 += 2) avx2_int_tile<2, Int4, M2, Vnni>(p, ws, w, t0, yt, ldy, ncols);
    if (t0 < ws.m) avx2_int_tile<1, Int4, M2, Vnni>(p, ws, w, t0, yt, ldy, ncols);
  }
}

// The entry points of the avx2 (VPMADDUBSW) and avx2vnni (AVX-VNNI VPDPBUSD) sub-tiers, one
// instantiation per scheme (kernels/registry.hpp).
template <gemm_scheme S>
inline void run_int_avx2(const int_packed& p, const int_workspace& ws, float* y, std::int64_t ldy,
                         std::int64_t tile_begin, std::int64_t tile_end) {
  avx2_int_tiles<int_scheme_is_int4(S), int_scheme_is_m2(S), false>(p, ws, y, ldy, tile_begin, tile_end);
}
template <gemm_scheme S>
inline void run_int_avx2vnni(const int_packed& p, const int_workspace& ws, float* y, std::int64_t ldy,
                             std::int64_t tile_begin, std::int64_t tile_end) {
  avx2_int_tiles<int_scheme_is_int4(S), int_scheme_is_m2(S), true>(p, ws, y, ldy, tile_begin, tile_end);
}

}  // namespace lowbit::detail

#endif  // LOWBIT_HAVE_X86_SIMD
