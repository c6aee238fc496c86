#pragma once
// AVX-512 tier of the integer-activation family: VPDPBUSD (AVX512-VNNI), or VPMADDUBSW +
// VPMADDWD on AVX-512 CPUs without VNNI. Tile: 32 output columns (two zmm); register block:
// 8 tokens x 32 columns (16 int32 accumulators); loop order per tile: group (chunk of <= 512
// inputs) outer, token blocks inner, so the chunk's weights are read from L1 by every block.
//
// Inner step (int4): one 64-byte load gives 16 columns x 8 inputs; AND / SHIFT+AND split it
// into two zmm of biased weights (0..15), each fed to VPDPBUSD against the token's 4 int8
// activations broadcast from memory. Group epilogue: subtract the bias correction, then
// either fp32 (cvt + FMA with the group scale) or, for M2, int32 (shift left by the group's
// shift and add), so M2 keeps all of K in one int32 accumulator.
// Loops over a register block carry `#pragma GCC unroll 16` (docs/design.md, "Register blocks
// are unrolled by pragma").
#include "lowbit/detail/target.hpp"

#if LOWBIT_HAVE_X86_SIMD
#include <immintrin.h>

#include <cstdint>
#include <cstring>

#include "lowbit/kernels/int_workspace.hpp"
#include "lowbit/kernels/x86/dpbusd.hpp"
#include "lowbit/pack/int_packing.hpp"

// GCC 12 reports the intrinsics' internal _mm512_undefined_*() operands as uninitialized once
// they are inlined here (a known false positive); silence it for this header only.
#pragma GCC diagnostic push
LOWBIT_IGNORE_GCC_MAYBE_UNINITIALIZED
#pragma GCC diagnostic ignored "-Wuninitialized"

namespace lowbit::detail {

// acc += sum over 4 bytes of (unsigned w) * (signed a). Without VNNI: the int4 weights are
// small (<= 15) so VPMADDUBSW cannot saturate; int8 weights are first turned back into
// signed values and multiplied with the sign trick (|w| * sign(a, w) <= 127 * 127 per byte,
// pairs <= 32,258), which gives the unbiased product (Unbiased = true).
template <bool Vnni, bool Int8>
LOWBIT_TARGET_AVX512 inline __m512i avx512_dot(__m512i acc, __m512i w, __m512i a) {
  if constexpr (Vnni) {
    return avx512_dpbusd(acc, w, a);  // inline asm: why in x86/dpbusd.hpp
  } else if constexpr (!Int8) {
    const __m512i p16 = _mm512_maddubs_epi16(w, a);
    return _mm512_add_epi32(acc, _mm512_madd_epi16(p16, _mm512_set1_epi16(1)));
  } else {
    const __m512i ws = _mm512_xor_si512(w, _mm512_set1_epi8(static_cast<char>(0x80)));
    const __m512i wabs = _mm512_abs_epi8(ws);
    const __mmask64 neg = _mm512_movepi8_mask(ws);
    const __m512i asgn = _mm512_mask_sub_epi8(a, neg, _mm512_setzero_si512(), a);
    const __m512i p16 = _mm512_maddubs_epi16(wabs, asgn);
    return _mm512_add_epi32(acc, _mm512_madd_epi16(p16, _mm512_set1_epi16(1)));
  }
}

// The inner step, written once for both drivers below (avx512_int_chunk and
// avx512_int_groups): k step `s` of one tile for MR tokens. int4: one 64-byte load per
// vector gives 16 columns x 8 inputs, split by AND / SHIFT+AND into low and high nibbles
// (biased weights 0..15), each multiplied with the token's 4 int8 activations of that half;
// int8: one load per vector, 4 inputs. acc[i][v] += the step's dot products.
template <int MR, bool Int4, bool Vnni>
LOWBIT_TARGET_AVX512 inline void avx512_int_step(__m512i (&acc)[MR][2], const std::uint8_t* w,
                                                      const std::int8_t* const* arow, std::int64_t s) {
  constexpr int NV = 2;
  if constexpr (MR <= 2) {  // few tokens: the weights stream from L3/DRAM, fetch ahead
    _mm_prefetch(reinterpret_cast<const char*>(w + 4096), _MM_HINT_T0);
    _mm_prefetch(reinterpret_cast<const char*>(w + 4096 + 64), _MM_HINT_T0);
  }
  if constexpr (Int4) {
    const __m512i low4 = _mm512_set1_epi8(0x0F);
    __m512i lo[NV], hi[NV];
#pragma GCC unroll 16
    for (int v = 0; v < NV; ++v) {
      const __m512i raw = _mm512_load_si512(reinterpret_cast<const void*>(w + v * 64));
      lo[v] = _mm512_and_si512(raw, low4);
      hi[v] = _mm512_and_si512(_mm512_srli_epi16(raw, 4), low4);
    }
#pragma GCC unroll 16
    for (int i = 0; i < MR; ++i) {
      const __m512i alo = avx512_bcast32(arow[i] + s * 8);
      const __m512i ahi = avx512_bcast32(arow[i] + s * 8 + 4);
#pragma GCC unroll 16
      for (int v = 0; v < NV; ++v) {
        acc[i][v] = avx512_dot<Vnni, false>(acc[i][v], lo[v], alo);
        acc[i][v] = avx512_dot<Vnni, false>(acc[i][v], hi[v], ahi);
      }
    }
  } else {
    __m512i wv[NV];
#pragma GCC unroll 16
    for (int v = 0; v < NV; ++v) wv[v] = _mm512_load_si512(reinterpret_cast<const void*>(w + v * 64));
#pragma GCC unroll 16
    for (int i = 0; i < MR; ++i) {
      const __m512i a4 = avx512_bcast32(arow[i] + s * 4);
#pragma GCC unroll 16
      for (int v = 0; v < NV; ++v) acc[i][v] = avx512_dot<Vnni, true>(acc[i][v], wv[v], a4);
    }
  }
}

// Scratch of one run() call: per (token, column of the tile) the int32 partial sum of the
// current group and the running total (fp32, or int32 for M2).
struct avx512_int_scratch {
  aligned_buffer<std::int32_t> acc;
  aligned_buffer<std::int32_t> total;  // fp32 bits or int32
};

// One chunk of k steps of one tile for MR tokens: acc (from scratch, or zero at a group's
// start) += the chunk's dot products; at a group's end, the bias correction and the group's
// contribution to the total. Weights of a chunk (<= 16 KiB) stay in L1 while every token
// block of the call passes over them.
template <int MR, bool Int4, bool M2, bool Vnni>
LOWBIT_TARGET_AVX512 void avx512_int_chunk(const int_packed& p, const int_workspace& ws, const std::uint8_t* w,
                                                std::int64_t steps, std::int64_t koff, std::int64_t t0, std::int64_t g,
                                                bool group_start, const std::uint8_t* group_end_params,
                                                avx512_int_scratch& scr) {
  constexpr int NV = 2;
  constexpr int NT = 32;
  constexpr bool unbiased = !Vnni && !Int4;
  const std::int8_t* arow[MR];
#pragma GCC unroll 16
  for (int i = 0; i < MR; ++i) arow[i] = ws.a.data() + (t0 + i) * ws.a_stride + koff;
  std::int32_t* accp = scr.acc.data() + t0 * NT;
  __m512i acc[MR][NV];
#pragma GCC unroll 16
  for (int i = 0; i < MR; ++i)
#pragma GCC unroll 16
    for (int v = 0; v < NV; ++v)
      acc[i][v] = group_start ? _mm512_setzero_si512() : _mm512_load_si512(accp + i * NT + v * 16);
  for (std::int64_t s = 0; s < steps; ++s, w += NV * 64) avx512_int_step<MR, Int4, Vnni>(acc, w, arow, s);
  if (group_end_params == nullptr) {
#pragma GCC unroll 16
    for (int i = 0; i < MR; ++i)
#pragma GCC unroll 16
      for (int v = 0; v < NV; ++v) _mm512_store_si512(accp + i * NT + v * 16, acc[i][v]);
    return;
  }
  std::int32_t* totp = scr.total.data() + t0 * NT;
#pragma GCC unroll 16
  for (int i = 0; i < MR; ++i) {
    if constexpr (!unbiased) {
      const __m512i c = _mm512_set1_epi32(ws.comp[static_cast<std::size_t>((t0 + i) * p.groups + g)]);
#pragma GCC unroll 16
      for (int v = 0; v < NV; ++v) acc[i][v] = _mm512_sub_epi32(acc[i][v], c);
    }
#pragma GCC unroll 16
    for (int v = 0; v < NV; ++v) {
      std::int32_t* tp = totp + i * NT + v * 16;
      const void* param = group_end_params + v * 64;
      if constexpr (M2) {
        const __m512i t = _mm512_add_epi32(_mm512_load_si512(tp), _mm512_sllv_epi32(acc[i][v], _mm512_load_si512(param)));
        _mm512_store_si512(tp, t);
      } else {
        const __m512 t = _mm512_fmadd_ps(_mm512_cvtepi32_ps(acc[i][v]), _mm512_load_ps(static_cast<const float*>(param)),
                                         _mm512_load_ps(reinterpret_cast<const float*>(tp)));
        _mm512_store_ps(reinterpret_cast<float*>(tp), t);
      }
    }
  }
}

template <bool Int4, bool M2, bool Vnni>
LOWBIT_TARGET_AVX512 void avx512_int_chunk_rows(const int_packed& p, const int_workspace& ws, const std::uint8_t* w,
                                                     std::int64_t steps, std::int64_t koff, std::int64_t g,
                                                     bool group_start, const std::uint8_t* params,
                                                     avx512_int_scratch& scr) {
  constexpr int MR = 8;
  std::int64_t t0 = 0;
  for (; t0 + MR <= ws.m; t0 += MR)
    avx512_int_chunk<MR, Int4, M2, Vnni>(p, ws, w, steps, koff, t0, g, group_start, params, scr);
  switch (ws.m - t0) {
    case 7: avx512_int_chunk<7, Int4, M2, Vnni>(p, ws, w, steps, koff, t0, g, group_start, params, scr); break;
    case 6: avx512_int_chunk<6, Int4, M2, Vnni>(p, ws, w, steps, koff, t0, g, group_start, params, scr); break;
    case 5: avx512_int_chunk<5, Int4, M2, Vnni>(p, ws, w, steps, koff, t0, g, group_start, params, scr); break;
    case 4: avx512_int_chunk<4, Int4, M2, Vnni>(p, ws, w, steps, koff, t0, g, group_start, params, scr); break;
    case 3: avx512_int_chunk<3, Int4, M2, Vnni>(p, ws, w, steps, koff, t0, g, group_start, params, scr); break;
    case 2: avx512_int_chunk<2, Int4, M2, Vnni>(p, ws, w, steps, koff, t0, g, group_start, params, scr); break;
    case 1: avx512_int_chunk<1, Int4, M2, Vnni>(p, ws, w, steps, koff, t0, g, group_start, params, scr); break;
    default: break;
  }
}

// Whole groups [g0, g1) of one tile for MR tokens (groups of <= 512 inputs): per group, zero
// accumulators, all its k steps, then its correction and contribution to the totals. One call
// covers several groups so the per-call setup is paid once per ~512 inputs.
template <int MR, bool Int4, bool M2, bool Vnni>
LOWBIT_TARGET_AVX512 void avx512_int_groups(const int_packed& p, const int_workspace& ws, const std::uint8_t* w,
                                                 std::int64_t koff, std::int64_t t0, std::int64_t g0, std::int64_t g1,
                                                 avx512_int_scratch& scr) {
  constexpr int NV = 2;
  constexpr int NT = 32;
  constexpr bool unbiased = !Vnni && !Int4;
  const std::int8_t* arow[MR];
#pragma GCC unroll 16
  for (int i = 0; i < MR; ++i) arow[i] = ws.a.data() + (t0 + i) * ws.a_stride + koff;
  std::int32_t* totp = scr.total.data() + t0 * NT;
  const std::int32_t* comp = ws.comp.data() + t0 * p.groups;
  for (std::int64_t g = g0; g < g1; ++g) {
    const std::int64_t steps = p.padded_len(g) / p.kstep;
    __m512i acc[MR][NV];
#pragma GCC unroll 16
    for (int i = 0; i < MR; ++i)
#pragma GCC unroll 16
      for (int v = 0; v < NV; ++v) acc[i][v] = _mm512_setzero_si512();
    for (std::int64_t s = 0; s < steps; ++s, w += NV * 64) avx512_int_step<MR, Int4, Vnni>(acc, w, arow, s);
#pragma GCC unroll 16
    for (int i = 0; i < MR; ++i) {
      arow[i] += steps * p.kstep;
      if constexpr (!unbiased) {
        const __m512i c = _mm512_set1_epi32(comp[i * p.groups + g]);
#pragma GCC unroll 16
        for (int v = 0; v < NV; ++v) acc[i][v] = _mm512_sub_epi32(acc[i][v], c);
      }
#pragma GCC unroll 16
      for (int v = 0; v < NV; ++v) {
        std::int32_t* tp = totp + i * NT + v * 16;
        if constexpr (M2) {
          const __m512i sh = _mm512_load_si512(reinterpret_cast<const void*>(w + v * 64));
          _mm512_store_si512(tp, _mm512_add_epi32(_mm512_load_si512(tp), _mm512_sllv_epi32(acc[i][v], sh)));
        } else {
          const __m512 sc = _mm512_load_ps(reinterpret_cast<const float*>(w + v * 64));
          _mm512_store_ps(reinterpret_cast<float*>(tp),
                          _mm512_fmadd_ps(_mm512_cvtepi32_ps(acc[i][v]), sc, _mm512_load_ps(reinterpret_cast<const float*>(tp))));
        }
      }
    }
    w += NV * 64;  // the group's parameters
  }
}

template <bool Int4, bool M2, bool Vnni>
LOWBIT_TARGET_AVX512 void avx512_int_groups_rows(const int_packed& p, const int_workspace& ws, const std::uint8_t* w,
                                                      std::int64_t koff, std::int64_t g0, std::int64_t g1,
                                                      avx512_int_scratch& scr) {
  constexpr int MR = 8;
  std::int64_t t0 = 0;
  for (; t0 + MR <= ws.m; t0 += MR) avx512_int_groups<MR, Int4, M2, Vnni>(p, ws, w, koff, t0, g0, g1, scr);
  switch (ws.m - t0) {
    case 7: avx512_int_groups<7, Int4, M2, Vnni>(p, ws, w, koff, t0, g0, g1, scr); break;
    case 6: avx512_int_groups<6, Int4, M2, Vnni>(p, ws, w, koff, t0, g0, g1, scr); break;
    case 5: avx512_int_groups<5, Int4, M2, Vnni>(p, ws, w, koff, t0, g0, g1, scr); break;
    case 4: avx512_int_groups<4, Int4, M2, Vnni>(p, ws, w, koff, t0, g0, g1, scr); break;
    case 3: avx512_int_groups<3, Int4, M2, Vnni>(p, ws, w, koff, t0, g0, g1, scr); break;
    case 2: avx512_int_groups<2, Int4, M2, Vnni>(p, ws, w, koff, t0, g0, g1, scr); break;
    case 1: avx512_int_groups<1, Int4, M2, Vnni>(p, ws, w, koff, t0, g0, g1, scr); break;
    default: break;
  }
}

// Tile loop: batches of whole groups up to 512 inputs (a longer group in chunks of 512
// inputs with its int32 sums carried in scratch), every token block per batch, then the store: y = total * s_a, or float(total) * row factor * s_a for M2.
template <bool Int4, bool M2, bool Vnni>
LOWBIT_TARGET_AVX512 void avx512_int_tiles(const int_packed& p, const int_workspace& ws, float* y,
                                                std::int64_t ldy, std::int64_t tile_begin, std::int64_t tile_end) {
  constexpr std::int64_t chunk_k = 512;
  constexpr std::int64_t NT = 32;
  const std::int64_t lane_bytes = NT * 4;
  avx512_int_scratch scr;
  scr.acc.resize(static_cast<std::size_t>(ws.m * NT));
  scr.total.resize(static_cast<std::size_t>(ws.m * NT));
  for (std::int64_t t = tile_begin; t < tile_end; ++t) {
    std::memset(static_cast<void*>(scr.total.data()), 0, static_cast<std::size_t>(ws.m * NT) * 4);
    const std::uint8_t* w = p.tile(t);
    std::int64_t koff = 0;
    if (p.group_padded <= chunk_k) {  // short groups: batches of whole groups
      const std::int64_t batch = chunk_k / p.group_padded;
      for (std::int64_t g0 = 0; g0 < p.groups; g0 += batch) {
        const std::int64_t g1 = std::min(p.groups, g0 + batch);
        avx512_int_groups_rows<Int4, M2, Vnni>(p, ws, w, koff, g0, g1, scr);
        for (std::int64_t g = g0; g < g1; ++g) {
          w += (p.padded_len(g) / p.kstep + 1) * lane_bytes;
          koff += p.padded_len(g);
        }
      }
    }
    for (std::int64_t g = 0; g < p.groups && p.group_padded > chunk_k; ++g) {
      const std::int64_t plen = p.padded_len(g);
      const std::uint8_t* params = w + (plen / p.kstep) * lane_bytes;
      for (std::int64_t c0 = 0; c0 < plen; c0 += chunk_k) {
        const std::int64_t clen = std::min(chunk_k, plen - c0);
        avx512_int_chunk_rows<Int4, M2, Vnni>(p, ws, w + (c0 / p.kstep) * lane_bytes, clen / p.kstep, koff + c0, g,
                                              c0 == 0, c0 + clen == plen ? params : nullptr, scr);
      }
      w = params + lane_bytes;
      koff += plen;
    }
    const int ncols = static_cast<int>(std::min<std::int64_t>(NT, p.rows - t * NT));
    for (std::int64_t i = 0; i < ws.m; ++i) {
      const __m512 sa = _mm512_set1_ps(ws.a_scale[static_cast<std::size_t>(i)]);
      float* yrow = y + i * ldy + t * NT;
      for (int v = 0; v < 2; ++v) {
        const int left = ncols - v * 16;
        if (left <= 0) break;
        const std::int32_t* tp = scr.total.data() + i * NT + v * 16;
        __m512 out;
        if constexpr (M2)
          out = _mm512_mul_ps(_mm512_cvtepi32_ps(_mm512_load_si512(tp)),
                              _mm512_load_ps(reinterpret_cast<const float*>(w + v * 64)));
        else
          out = _mm512_load_ps(reinterpret_cast<const float*>(tp));
        out = _mm512_mul_ps(out, sa);
        const __mmask16 mask = left >= 16 ? __mmask16(0xFFFF) : __mmask16((1u << left) - 1u);
        _mm512_mask_storeu_ps(yrow + v * 16, mask, out);
      }
    }
  }
}

// The entry points of the avx512bw (VPMADDUBSW) and avx512vnni (VPDPBUSD) sub-tiers, one
// instantiation per scheme (kernels/registry.hpp's records point at them): tiles
// [tile_begin, tile_end) of p into y (row stride ldy).
template <gemm_scheme S>
inline void run_int_avx512bw(const int_packed& p, const int_workspace& ws, float* y, std::int64_t ldy,
                             std::int64_t tile_begin, std::int64_t tile_end) {
  avx512_int_tiles<int_scheme_is_int4(S), int_scheme_is_m2(S), false>(p, ws, y, ldy, tile_begin, tile_end);
}
template <gemm_scheme S>
inline void run_int_avx512vnni(const int_packed& p, const int_workspace& ws, float* y, std::int64_t ldy,
                               std::int64_t tile_begin, std::int64_t tile_end) {
  avx512_int_tiles<int_scheme_is_int4(S), int_scheme_is_m2(S), true>(p, ws, y, ldy, tile_begin, tile_end);
}

// max |x| over n floats, and whether any is NaN (bit-exact with the scalar loop: max is exact).
LOWBIT_TARGET_AVX512 inline float avx512_absmax(const float* x, std::int64_t n, bool& has_nan) {
  __m512 m = _mm512_setzero_ps();
  __mmask16 nan = 0;
  std::int64_t i = 0;
  for (; i + 16 <= n; i += 16) {
    const __m512 v = _mm512_loadu_ps(x + i);
    nan |= _mm512_cmp_ps_mask(v, v, _CMP_UNORD_Q);
    m = _mm512_max_ps(m, _mm512_abs_ps(v));
  }
  if (i < n) {
    const __mmask16 k = static_cast<__mmask16>((1u << (n - i)) - 1u);
    const __m512 v = _mm512_maskz_loadu_ps(k, x + i);
    nan |= _mm512_cmp_ps_mask(v, v, _CMP_UNORD_Q);
    m = _mm512_max_ps(m, _mm512_abs_ps(v));
  }
  has_nan = nan != 0;
  return _mm512_reduce_max_ps(m);
}

// codes = clamp(round_half_even(x * inv), -127, 127); returns their sum. Clamping before the
// rounding gives the same codes (the bounds are integers); VCVTPS2DQ rounds half to even.
LOWBIT_TARGET_AVX512 inline std::int32_t avx512_quantize_codes(const float* x, std::int64_t n, float inv,
                                                               std::int8_t* out) {
  const __m512 vinv = _mm512_set1_ps(inv), hi = _mm512_set1_ps(127.0f), lo = _mm512_set1_ps(-127.0f);
  __m512i sum = _mm512_setzero_si512();
  for (std::int64_t i = 0; i < n; i += 16) {
    const __mmask16 k = n - i >= 16 ? __mmask16(0xFFFF) : static_cast<__mmask16>((1u << (n - i)) - 1u);
    const __m512 v = _mm512_mul_ps(_mm512_maskz_loadu_ps(k, x + i), vinv);
    const __m512i q = _mm512_cvtps_epi32(_mm512_min_ps(_mm512_max_ps(v, lo), hi));
    sum = _mm512_add_epi32(sum, q);
    _mm512_mask_cvtepi32_storeu_epi8(out + i, k, q);
  }
  return _mm512_reduce_add_epi32(sum);
}

}  // namespace lowbit::detail

#pragma GCC diagnostic pop

#endif  // LOWBIT_HAVE_X86_SIMD
