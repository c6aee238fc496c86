#pragma once
// AVX-512 tier of the float-decoding family (include through kernels/float_family.hpp).
//
// Two paths over the same packed layout:
//  - few tokens (<= 4): weights are streamed once and decoded in registers (nibbles: one
//    zero-extension, a shift and two 16-entry VPERMPS; E4M3: a bit move into fp16 and
//    VCVTPH2PS; int8: sign extension and VCVTDQ2PS); raw code values are accumulated per
//    group in fp32 and the group scale (and zero point, through the per-group sums of x) is
//    applied once per group. This is the memory-bound decode path, so its job is to keep up
//    with DRAM.
//  - more tokens: a 128 x 32 tile of w_hat is decoded once per block and chunk and reused by
//    every token; a 12-token x 32-column register block of fp32 FMAs runs over it.
// Loops over a register block carry `#pragma GCC unroll 16` (docs/design.md, "Register blocks
// are unrolled by pragma").
#include "lowbit/detail/target.hpp"
#include "lowbit/kernels/float_layout.hpp"
#include "lowbit/kernels/x86/avx512fp16_float.hpp"
#include "lowbit/kernels/x86/dpbusd.hpp"
#include "lowbit/kernels/x86/nibble_pairs.hpp"

#if LOWBIT_HAVE_X86_SIMD
#include <immintrin.h>

// GCC 12 warns (-Wmaybe-uninitialized) inside its own AVX-512 intrinsics, whose results
// start from an undefined vector (GCC bug 105593); the warning is about GCC's code, not ours.
#pragma GCC diagnostic push
LOWBIT_IGNORE_GCC_MAYBE_UNINITIALIZED

namespace lowbit::detail {

// 16 bytes of nibbles -> raw code values of columns 0..15 (low) and 16..31 (high).
LOWBIT_TARGET_AVX512 inline void avx512_decode_nibbles(const std::uint8_t* p, __m512 lut,
                                                       __m512& lo, __m512& hi) {
  const __m512i v = _mm512_cvtepu8_epi32(_mm_loadu_si128(reinterpret_cast<const __m128i*>(p)));
  lo = _mm512_permutexvar_ps(v, lut);  // VPERMPS reads only the low 4 bits of each index
  hi = _mm512_permutexvar_ps(_mm512_srli_epi32(v, 4), lut);
}

// 32 E4M3 codes -> their values times 2^-8, exactly: S.EEEE.MMM moved to fp16 bit positions
// S.0EEEE.MMM0000000 is the same number scaled by 2^(7 - 15), subnormals included.
LOWBIT_TARGET_AVX512 inline void avx512_decode_e4m3_scaled(const std::uint8_t* p, __m512& lo,
                                                           __m512& hi) {
  const __m512i c = _mm512_cvtepu8_epi16(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(p)));
  const __m512i h =
      _mm512_or_si512(_mm512_slli_epi16(_mm512_and_si512(c, _mm512_set1_epi16(0x7F)), 7),
                      _mm512_slli_epi16(_mm512_and_si512(c, _mm512_set1_epi16(0x80)), 8));
  lo = _mm512_cvtph_ps(_mm512_castsi512_si256(h));
  hi = _mm512_cvtph_ps(_mm512_extracti64x4_epi64(h, 1));
}

// 32 int8 codes -> their exact values (sign extension, VCVTDQ2PS).
LOWBIT_TARGET_AVX512 inline void avx512_decode_int8(const std::uint8_t* p, __m512& lo, __m512& hi) {
  lo = _mm512_cvtepi32_ps(_mm512_cvtepi8_epi32(_mm_loadu_si128(reinterpret_cast<const __m128i*>(p))));
  hi = _mm512_cvtepi32_ps(_mm512_cvtepi8_epi32(_mm_loadu_si128(reinterpret_cast<const __m128i*>(p + 16))));
}

template <float_code C>
LOWBIT_TARGET_AVX512 inline void avx512_decode_raw(const std::uint8_t* p, __m512 lut, __m512& lo,
                                                   __m512& hi) {
  if constexpr (C == float_code::e4m3) {
    (void)lut;
    avx512_decode_e4m3_scaled(p, lo, hi);
  } else if constexpr (C == float_code::int8_signed) {
    (void)lut;
    avx512_decode_int8(p, lo, hi);
  } else {
    avx512_decode_nibbles(p, lut, lo, hi);
  }
}

// Buffered path: dst[kk * 32 + j] = w_hat of k-row k0 + kk, the same fp32 value as
// dequantize() ((value - zero) * scale; E4M3: (value * 2^-8) * 2^8 * scale).
template <float_code C>
LOWBIT_TARGET_AVX512 void avx512_decode_rows_t(const float_packed& w, std::int64_t b,
                                               std::int64_t k0, std::int64_t kc, float* dst) {
  const std::uint8_t* codes = w.block_codes(b);
  const float* scales = w.block_scales(b);
  const float* zeros = w.block_zeros(b);
  const __m512 lut = float_code_is_4bit(C) ? _mm512_loadu_ps(nibble_table(C)) : _mm512_setzero_ps();
  const __m512 two8 = _mm512_set1_ps(256.0f);
  std::int64_t k = k0;
  const std::int64_t k_end = k0 + kc;
  while (k < k_end) {
    const std::int64_t g = k / w.group_size;
    const std::int64_t g_end = std::min(k_end, (g + 1) * w.group_size);
    const __m512 s0 = _mm512_loadu_ps(scales + g * float_block_cols);
    const __m512 s1 = _mm512_loadu_ps(scales + g * float_block_cols + 16);
    __m512 z0 = _mm512_setzero_ps(), z1 = _mm512_setzero_ps();
    if constexpr (float_code_has_group_term(C)) {
      z0 = _mm512_loadu_ps(zeros + g * float_block_cols);
      z1 = _mm512_loadu_ps(zeros + g * float_block_cols + 16);
    } else {
      (void)zeros;
    }
    for (; k < g_end; ++k) {
      __m512 lo, hi;
      avx512_decode_raw<C>(codes + k * w.krow_bytes, lut, lo, hi);
      if constexpr (C == float_code::e4m3) {
        lo = _mm512_mul_ps(lo, two8);
        hi = _mm512_mul_ps(hi, two8);
      }
      if constexpr (C == float_code::uint4_with_zero) {
        lo = _mm512_sub_ps(lo, z0);
        hi = _mm512_sub_ps(hi, z1);
      }
      float* out = dst + (k - k0) * float_block_cols;
      if constexpr (C == float_code::uint4_with_offset) {  // fma(code, s, offset): dequantize()'s bits
        _mm512_storeu_ps(out, _mm512_fmadd_ps(lo, s0, z0));
        _mm512_storeu_ps(out + 16, _mm512_fmadd_ps(hi, s1, z1));
        continue;
      }
      _mm512_storeu_ps(out, _mm512_mul_ps(lo, s0));
      _mm512_storeu_ps(out + 16, _mm512_mul_ps(hi, s1));
    }
  }
}

inline void avx512_decode_rows(const float_packed& w, std::int64_t b, std::int64_t k0,
                               std::int64_t kc, float* dst) {
  switch (w.code) {
    case float_code::e4m3: return avx512_decode_rows_t<float_code::e4m3>(w, b, k0, kc, dst);
    case float_code::e2m1: return avx512_decode_rows_t<float_code::e2m1>(w, b, k0, kc, dst);
    case float_code::int4_signed: return avx512_decode_rows_t<float_code::int4_signed>(w, b, k0, kc, dst);
    case float_code::uint4_with_zero:
      return avx512_decode_rows_t<float_code::uint4_with_zero>(w, b, k0, kc, dst);
    case float_code::int8_signed: return avx512_decode_rows_t<float_code::int8_signed>(w, b, k0, kc, dst);
    case float_code::uint4_with_offset:
      return avx512_decode_rows_t<float_code::uint4_with_offset>(w, b, k0, kc, dst);
  }
}

// TB tokens x 32 columns of fp32 accumulators in registers (2 x TB zmm), over kc k-rows.
template <int TB>
LOWBIT_TARGET_AVX512 void avx512_accumulate_tile(const float* x, std::int64_t xs,
                                                 const float* tile, std::int64_t kc, float* acc,
                                                 bool first) {
  __m512 c0[TB], c1[TB];
#pragma GCC unroll 16
  for (int t = 0; t < TB; ++t) {
    c0[t] = first ? _mm512_setzero_ps() : _mm512_loadu_ps(acc + t * float_block_cols);
    c1[t] = first ? _mm512_setzero_ps() : _mm512_loadu_ps(acc + t * float_block_cols + 16);
  }
  for (std::int64_t kk = 0; kk < kc; ++kk) {
    const __m512 w0 = _mm512_loadu_ps(tile + kk * float_block_cols);
    const __m512 w1 = _mm512_loadu_ps(tile + kk * float_block_cols + 16);
#pragma GCC unroll 16
    for (int t = 0; t < TB; ++t) {
      const __m512 xb = _mm512_set1_ps(x[t * xs + kk]);
      c0[t] = _mm512_fmadd_ps(xb, w0, c0[t]);
      c1[t] = _mm512_fmadd_ps(xb, w1, c1[t]);
    }
  }
#pragma GCC unroll 16
  for (int t = 0; t < TB; ++t) {
    _mm512_storeu_ps(acc + t * float_block_cols, c0[t]);
    _mm512_storeu_ps(acc + t * float_block_cols + 16, c1[t]);
  }
}

inline void avx512_accumulate(const float* x, std::int64_t xs, std::int64_t tokens,
                              const float* tile, std::int64_t kc, float* acc, bool first) {
  constexpr int tb = 12;
  std::int64_t t = 0;
  for (; t + tb <= tokens; t += tb)
    avx512_accumulate_tile<tb>(x + t * xs, xs, tile, kc, acc + t * float_block_cols, first);
  const float* xr = x + t * xs;
  float* ar = acc + t * float_block_cols;
  switch (tokens - t) {
    case 0: break;
    case 1: avx512_accumulate_tile<1>(xr, xs, tile, kc, ar, first); break;
    case 2: avx512_accumulate_tile<2>(xr, xs, tile, kc, ar, first); break;
    case 3: avx512_accumulate_tile<3>(xr, xs, tile, kc, ar, first); break;
    case 4: avx512_accumulate_tile<4>(xr, xs, tile, kc, ar, first); break;
    case 5: avx512_accumulate_tile<5>(xr, xs, tile, kc, ar, first); break;
    case 6: avx512_accumulate_tile<6>(xr, xs, tile, kc, ar, first); break;
    case 7: avx512_accumulate_tile<7>(xr, xs, tile, kc, ar, first); break;
    case 8: avx512_accumulate_tile<8>(xr, xs, tile, kc, ar, first); break;
    case 9: avx512_accumulate_tile<9>(xr, xs, tile, kc, ar, first); break;
    case 10: avx512_accumulate_tile<10>(xr, xs, tile, kc, ar, first); break;
    default: avx512_accumulate_tile<11>(xr, xs, tile, kc, ar, first); break;
  }
}

// How far ahead the few-token path prefetches, in k-rows (2 KiB of 4-bit codes). Reading
// up to a few KiB past the block's end is harmless: prefetches do not fault.
constexpr std::int64_t avx512_prefetch_rows = 128;

// Cold, the one-token paths need one demand load per 4 KiB page of codes, 16 KiB ahead of
// the k-row being decoded (avx512_touch_bytes); software prefetch alone does not do it.
// Measured on Zen 5 (2026-12-02, docs/performance.md), on a stand-alone copy of the bf16 pair
// loop below: without the load it read its weights from DRAM at ~0.5-0.7 x dram_read
// whatever the software prefetch did (none, T0/T1/T2/NTA, 1 to 32 KiB ahead, one or four
// lines a step: all alike); hot from L3 it read ~44 GB/s, so decode and memory did not
// overlap. The same loop decoding L1 data while prefetching the real stream 8 KiB ahead ran
// at its L1 rate (~54 GB/s, above what DRAM delivers), i.e. those prefetches fetched next to
// nothing (consistent with prefetches to pages without a TLB entry being dropped). The
// demand load walks the page table and starts the hardware stream on that page early:
// 0.76-0.89 x dram_read, 0.94 with the compact pairs below. 8 to 48 KiB ahead measured
// alike; two loads a page measured worse.
constexpr std::int64_t avx512_touch_bytes = 16384;

// The touch loads stay inside the codes (a load, unlike a prefetch, may fault): in block b,
// k-rows below this bound have codes + k * krow_bytes + avx512_touch_bytes in the array
// (negative: none).
inline std::int64_t avx512_touch_end(const float_packed& w, std::int64_t b) noexcept {
  const std::int64_t left = static_cast<std::int64_t>(w.codes.size()) - (w.block_codes(b) - w.codes.data());
  return (left - avx512_touch_bytes) / w.krow_bytes;
}

// The group scales (and zero points) live apart from the codes, so the code prefetch does
// not bring them: fetch those of a group two ahead (the next block's first ones at a block's
// end, blocks being contiguous), or every group would start with a DRAM miss when cold.
inline void prefetch_group_params(const float* scales, const float* zeros, std::int64_t g) noexcept {
  const float* s = scales + (g + 2) * float_block_cols;
  _mm_prefetch(reinterpret_cast<const char*>(s), _MM_HINT_T0);
  _mm_prefetch(reinterpret_cast<const char*>(s + 16), _MM_HINT_T0);
  if (zeros != nullptr) {
    const float* z = zeros + (g + 2) * float_block_cols;
    _mm_prefetch(reinterpret_cast<const char*>(z), _MM_HINT_T0);
    _mm_prefetch(reinterpret_cast<const char*>(z + 16), _MM_HINT_T0);
  }
}

// Few-token path for one block: per group, fp32 sums of x * raw code value (two sets of
// accumulators on alternate k-rows hide the FMA latency), then acc += scale * sum
// (- scale * zero * sum_group(x) for zero points).
template <int T, float_code C>
LOWBIT_TARGET_AVX512 void avx512_direct_block(const float_packed& w, const float_workspace& ws,
                                              std::int64_t b, float* out) {
  const std::uint8_t* codes = w.block_codes(b);
  const float* scales = w.block_scales(b);
  const float* zeros = w.block_zeros(b);
  const std::int64_t k_in = w.cols, kb = w.krow_bytes;
  const std::int64_t k_touch_end = avx512_touch_end(w, b);
  const float* x = ws.x.data();
  const std::int64_t xs = ws.x_stride;
  const __m512 lut = float_code_is_4bit(C) ? _mm512_loadu_ps(nibble_table(C)) : _mm512_setzero_ps();
  __m512 a0[T], a1[T];
#pragma GCC unroll 4
  for (int t = 0; t < T; ++t) a0[t] = a1[t] = _mm512_setzero_ps();
  for (std::int64_t g = 0; g < w.groups; ++g) {
    const std::int64_t k1 = std::min(k_in, (g + 1) * w.group_size);
    std::int64_t k = g * w.group_size;
    prefetch_group_params(scales, zeros, g);
    __m512 p0[T], p1[T], q0[T], q1[T];
#pragma GCC unroll 4
    for (int t = 0; t < T; ++t) p0[t] = p1[t] = q0[t] = q1[t] = _mm512_setzero_ps();
    for (; k + 1 < k1; k += 2) {
      // Weights are read once: fetch ahead so that DRAM latency overlaps the arithmetic.
      _mm_prefetch(reinterpret_cast<const char*>(codes + (k + avx512_prefetch_rows) * kb), _MM_HINT_T0);
      // Once per 4 KiB of codes (see avx512_touch_bytes). With groups of odd length k is odd
      // in every other group, whose pages then go untouched: slower, not wrong.
      if (((k * kb) & 4095) == 0 && k < k_touch_end) touch_load(codes + k * kb + avx512_touch_bytes);
      __m512 wa0, wa1, wb0, wb1;
      avx512_decode_raw<C>(codes + k * kb, lut, wa0, wa1);
      avx512_decode_raw<C>(codes + (k + 1) * kb, lut, wb0, wb1);
#pragma GCC unroll 4
      for (int t = 0; t < T; ++t) {
        const __m512 xa = _mm512_set1_ps(x[t * xs + k]);
        const __m512 xb = _mm512_set1_ps(x[t * xs + k + 1]);
        p0[t] = _mm512_fmadd_ps(xa, wa0, p0[t]);
        p1[t] = _mm512_fmadd_ps(xa, wa1, p1[t]);
        q0[t] = _mm512_fmadd_ps(xb, wb0, q0[t]);
        q1[t] = _mm512_fmadd_ps(xb, wb1, q1[t]);
      }
    }
    if (k < k1) {
      __m512 wa0, wa1;
      avx512_decode_raw<C>(codes + k * kb, lut, wa0, wa1);
#pragma GCC unroll 4
      for (int t = 0; t < T; ++t) {
        const __m512 xa = _mm512_set1_ps(x[t * xs + k]);
        p0[t] = _mm512_fmadd_ps(xa, wa0, p0[t]);
        p1[t] = _mm512_fmadd_ps(xa, wa1, p1[t]);
      }
    }
    __m512 s0 = _mm512_loadu_ps(scales + g * float_block_cols);
    __m512 s1 = _mm512_loadu_ps(scales + g * float_block_cols + 16);
    if constexpr (C == float_code::e4m3) {
      s0 = _mm512_mul_ps(s0, _mm512_set1_ps(256.0f));
      s1 = _mm512_mul_ps(s1, _mm512_set1_ps(256.0f));
    }
#pragma GCC unroll 4
    for (int t = 0; t < T; ++t) {
      a0[t] = _mm512_fmadd_ps(_mm512_add_ps(p0[t], q0[t]), s0, a0[t]);
      a1[t] = _mm512_fmadd_ps(_mm512_add_ps(p1[t], q1[t]), s1, a1[t]);
    }
    if constexpr (C == float_code::uint4_with_zero) {
      const __m512 sz0 = _mm512_mul_ps(s0, _mm512_loadu_ps(zeros + g * float_block_cols));
      const __m512 sz1 = _mm512_mul_ps(s1, _mm512_loadu_ps(zeros + g * float_block_cols + 16));
#pragma GCC unroll 4
      for (int t = 0; t < T; ++t) {
        const __m512 gs = _mm512_set1_ps(ws.group_sums[static_cast<std::size_t>(t * w.groups + g)]);
        a0[t] = _mm512_fnmadd_ps(sz0, gs, a0[t]);
        a1[t] = _mm512_fnmadd_ps(sz1, gs, a1[t]);
      }
    } else if constexpr (C == float_code::uint4_with_offset) {  // + offset * sum_group(x)
      const __m512 o0 = _mm512_loadu_ps(zeros + g * float_block_cols);
      const __m512 o1 = _mm512_loadu_ps(zeros + g * float_block_cols + 16);
#pragma GCC unroll 4
      for (int t = 0; t < T; ++t) {
        const __m512 gs = _mm512_set1_ps(ws.group_sums[static_cast<std::size_t>(t * w.groups + g)]);
        a0[t] = _mm512_fmadd_ps(o0, gs, a0[t]);
        a1[t] = _mm512_fmadd_ps(o1, gs, a1[t]);
      }
    } else {
      (void)zeros;
    }
  }
#pragma GCC unroll 4
  for (int t = 0; t < T; ++t) {
    _mm512_storeu_ps(out + t * float_block_cols, a0[t]);
    _mm512_storeu_ps(out + t * float_block_cols + 16, a1[t]);
  }
}

template <int T>
inline void avx512_direct_block_any(const float_packed& w, const float_workspace& ws,
                                    std::int64_t b, float* out) {
  switch (w.code) {
    case float_code::e4m3: return avx512_direct_block<T, float_code::e4m3>(w, ws, b, out);
    case float_code::e2m1: return avx512_direct_block<T, float_code::e2m1>(w, ws, b, out);
    case float_code::int4_signed: return avx512_direct_block<T, float_code::int4_signed>(w, ws, b, out);
    case float_code::uint4_with_zero:
      return avx512_direct_block<T, float_code::uint4_with_zero>(w, ws, b, out);
    case float_code::int8_signed: return avx512_direct_block<T, float_code::int8_signed>(w, ws, b, out);
    case float_code::uint4_with_offset:
      return avx512_direct_block<T, float_code::uint4_with_offset>(w, ws, b, out);
  }
}

// The end of a group in the one-token loops (avx512_direct_block_quad,
// avx512bf16_direct_block_pairs, avx512_direct_block_int_planes), which take k-rows 4 or 16
// at a time: the leftover k-rows [k, k1), row by row in natural column order, scaled once
// into a0/a1 (columns 0..15 and 16..31), then the group's zero-point term. One home, so the
// loops cannot drift apart.
template <float_code C>
LOWBIT_TARGET_AVX512 inline void avx512_finish_group(const float_workspace& ws, std::int64_t g,
                                                     const std::uint8_t* codes, const float* x,
                                                     std::int64_t k, std::int64_t k1, __m512 lut,
                                                     __m512 s0, __m512 s1, const float* zeros,
                                                     __m512& a0, __m512& a1) {
  if (k < k1) {
    __m512 r0 = _mm512_setzero_ps(), r1 = _mm512_setzero_ps();
    for (; k < k1; ++k) {
      __m512 lo, hi;
      avx512_decode_nibbles(codes + k * 16, lut, lo, hi);
      const __m512 xb = _mm512_set1_ps(x[k]);
      r0 = _mm512_fmadd_ps(xb, lo, r0);
      r1 = _mm512_fmadd_ps(xb, hi, r1);
    }
    a0 = _mm512_fmadd_ps(r0, s0, a0);
    a1 = _mm512_fmadd_ps(r1, s1, a1);
  }
  if constexpr (C == float_code::uint4_with_zero) {
    const __m512 gs = _mm512_set1_ps(ws.group_sums[static_cast<std::size_t>(g)]);
    a0 = _mm512_fnmadd_ps(_mm512_mul_ps(s0, _mm512_loadu_ps(zeros + g * float_block_cols)), gs, a0);
    a1 = _mm512_fnmadd_ps(_mm512_mul_ps(s1, _mm512_loadu_ps(zeros + g * float_block_cols + 16)), gs, a1);
  } else if constexpr (C == float_code::uint4_with_offset) {
    const __m512 gs = _mm512_set1_ps(ws.group_sums[static_cast<std::size_t>(g)]);
    a0 = _mm512_fmadd_ps(_mm512_loadu_ps(zeros + g * float_block_cols), gs, a0);
    a1 = _mm512_fmadd_ps(_mm512_loadu_ps(zeros + g * float_block_cols + 16), gs, a1);
  } else {
    (void)ws, (void)g, (void)zeros;
  }
}

// One token, 4-bit codes: decode-bound (each weight is used once), so this path spends fewer
// shuffle-class uops per weight. One 64-byte load holds 4 k-rows; dword lane i
// holds bytes 4(i % 4) .. 4(i % 4) + 3 of k-row k + i / 4, so VPERMPS of (v >> 4s), s = 0..7,
// decodes nibble s of every dword: 16 weights of columns c(i, s) = 4(i % 4) + s / 2 +
// 16 (s % 2) at k-row k + i / 4, with no zero-extension step (2 shuffle-class uops per 32
// weights instead of 3). The activation each lane needs, x[k + i / 4], comes from xq, a copy
// of x with every element repeated 4 times (xq[j] = x[j / 4]: the workspace's x_quad, made
// in prepare). Per group the eight lane-layout sums are scaled by the group scales permuted
// into the same layout; the 4 k-row quarters of each column are added once per block.
// k-rows left over when a group's length is not a multiple of 4 take the per-row path. Summation order differs from
// the per-row path, so results agree within the float tolerance, not bit for bit.
template <float_code C>
LOWBIT_TARGET_AVX512 void avx512_direct_block_quad(const float_packed& w, const float_workspace& ws,
                                                   const float* xq, std::int64_t b, float* out) {
  static_assert(float_code_is_4bit(C), "4-bit codes only");
  const std::uint8_t* codes = w.block_codes(b);
  const float* scales = w.block_scales(b);
  const float* zeros = w.block_zeros(b);
  const std::int64_t k_in = w.cols;
  const float* x = ws.x.data();
  const __m512 lut = _mm512_loadu_ps(nibble_table(C));
  // Lane i of the scale vector of set s: column 4(i % 4) + s / 2 (+ 16 for odd s, taken
  // from the second 16-column half).
  const __m512i lane_col = _mm512_set_epi32(12, 8, 4, 0, 12, 8, 4, 0, 12, 8, 4, 0, 12, 8, 4, 0);
  __m512 acc[8];
#pragma GCC unroll 8
  for (int s = 0; s < 8; ++s) acc[s] = _mm512_setzero_ps();
  __m512 a0 = _mm512_setzero_ps(), a1 = _mm512_setzero_ps();  // per-row path, natural order
  for (std::int64_t g = 0; g < w.groups; ++g) {
    const std::int64_t k1 = std::min(k_in, (g + 1) * w.group_size);
    std::int64_t k = g * w.group_size;
    prefetch_group_params(scales, zeros, g);
    __m512 p[8];
#pragma GCC unroll 8
    for (int s = 0; s < 8; ++s) p[s] = _mm512_setzero_ps();
    for (; k + 4 <= k1; k += 4) {
      _mm_prefetch(reinterpret_cast<const char*>(codes + (k + avx512_prefetch_rows) * 16), _MM_HINT_T0);
      const __m512i v = _mm512_loadu_si512(codes + k * 16);
      const __m512 xv = _mm512_loadu_ps(xq + 4 * k);
      p[0] = _mm512_fmadd_ps(xv, _mm512_permutexvar_ps(v, lut), p[0]);
      p[1] = _mm512_fmadd_ps(xv, _mm512_permutexvar_ps(_mm512_srli_epi32(v, 4), lut), p[1]);
      p[2] = _mm512_fmadd_ps(xv, _mm512_permutexvar_ps(_mm512_srli_epi32(v, 8), lut), p[2]);
      p[3] = _mm512_fmadd_ps(xv, _mm512_permutexvar_ps(_mm512_srli_epi32(v, 12), lut), p[3]);
      p[4] = _mm512_fmadd_ps(xv, _mm512_permutexvar_ps(_mm512_srli_epi32(v, 16), lut), p[4]);
      p[5] = _mm512_fmadd_ps(xv, _mm512_permutexvar_ps(_mm512_srli_epi32(v, 20), lut), p[5]);
      p[6] = _mm512_fmadd_ps(xv, _mm512_permutexvar_ps(_mm512_srli_epi32(v, 24), lut), p[6]);
      p[7] = _mm512_fmadd_ps(xv, _mm512_permutexvar_ps(_mm512_srli_epi32(v, 28), lut), p[7]);
    }
    const __m512 s0 = _mm512_loadu_ps(scales + g * float_block_cols);
    const __m512 s1 = _mm512_loadu_ps(scales + g * float_block_cols + 16);
    avx512_finish_group<C>(ws, g, codes, x, k, k1, lut, s0, s1, zeros, a0, a1);
#pragma GCC unroll 8
    for (int s = 0; s < 8; ++s) {
      const __m512i idx = _mm512_add_epi32(lane_col, _mm512_set1_epi32(s / 2));
      acc[s] = _mm512_fmadd_ps(p[s], _mm512_permutexvar_ps(idx, (s % 2) ? s1 : s0), acc[s]);
    }
  }
  // Columns from the lane layout: out[c(i, s)] += acc[s][i] over the 4 k-row quarters.
  alignas(64) float lanes[8][16];
#pragma GCC unroll 8
  for (int s = 0; s < 8; ++s) _mm512_store_ps(lanes[s], acc[s]);
  _mm512_storeu_ps(out, a0);
  _mm512_storeu_ps(out + 16, a1);
#pragma GCC unroll 8
  for (int s = 0; s < 8; ++s)
#pragma GCC unroll 4
    for (int r = 0; r < 4; ++r)
      out[4 * r + s / 2 + 16 * (s % 2)] += (lanes[s][r] + lanes[s][4 + r]) + (lanes[s][8 + r] + lanes[s][12 + r]);
}

template <class Deferred = void>  // see "Compile time" in docs/design.md
inline void avx512_direct_block_quad_any(const float_packed& w, const float_workspace& ws, const float* xq,
                                         std::int64_t b, float* out) {
  switch (w.code) {
    case float_code::e2m1: return avx512_direct_block_quad<float_code::e2m1>(w, ws, xq, b, out);
    case float_code::int4_signed: return avx512_direct_block_quad<float_code::int4_signed>(w, ws, xq, b, out);
    case float_code::uint4_with_zero:
      return avx512_direct_block_quad<float_code::uint4_with_zero>(w, ws, xq, b, out);
    case float_code::uint4_with_offset:
      return avx512_direct_block_quad<float_code::uint4_with_offset>(w, ws, xq, b, out);
    case float_code::e4m3:
    case float_code::int8_signed: break;  // 4-bit codes only (float_uses_quad_path etc.)
  }
}

// One token of 4-bit codes on CPUs with AVX512-BF16 (w4a8_fp4, w4a16_int4, w4a16_fp4):
// VDPBF16PS (two bf16 products summed into each fp32 lane: 32 weights per instruction)
// replaces the fp32 FMA (16), and VPERMW decodes 32 nibbles per instruction instead of
// VPERMPS's 16. Every 4-bit code value is exact in bf16. The activations are split into
// bf16 parts, x' = x * 2^e = hi + lo (+ r), hi = bf16(x'), lo = bf16(x' - hi) (RNE), with 2^e
// putting max |x'| in [1, 2); one part when every lo is 0 (E4M3 activations of w4a8_fp4,
// bf16 inputs): products exact, partial sums fp32; two parts otherwise: |r| <= 2^-18 |x|,
// which adds 2^-18 |x||w| per product to the fp32 summation error, inside the float
// tolerance of float_layout.hpp (2e-5). Measured on Zen 5 (a 16-KiB loop, no memory
// traffic): 1.8x the quad path's rate with one part, 1.35x with two.
// VDPBF16PS treats bf16 subnormals as zero and flushes subnormal results: after the scaling
// that only touches parts below 2^-126, i.e. activations (or residuals) below 2^-126 of the
// token's largest one; the tolerance can then be missed only by an output all of whose
// nonzero-weight terms are that small, which the fp32 path would not miss.
//
// Pairing: VDPBF16PS multiplies the two 16-bit halves of each dword lane with the two halves
// of the other operand, so both halves must hold the same output column. Four 64-byte loads
// (k-rows k..k+15, one k-row per 128-bit lane L of each: a = rows k+L, b = k+4+L, c = k+8+L,
// d = k+12+L) are interleaved by byte then by word (VPUNPCK*, cheap) into t[q], q = 0..3,
// whose dword lane (L, i) (i = 0..3) holds byte j = 4q + i of the four rows [a, b, c, d].
// Its 16-bit halves are [a_j, b_j] and [c_j, d_j]; nibble s of each half (a 16-bit shift by
// 4s, then VPERMW, which reads 5 index bits: the table is repeated) is
//   s = 0: column j      of rows (k+L,   k+8+L)      s = 1: column j + 16 of the same rows
//   s = 2: column j      of rows (k+4+L, k+12+L)     s = 3: column j + 16 of the same rows
// and the activation operand is the matching pair, the same in every dword of lane L:
// pattern 0 = (x'[k+L], x'[k+8+L]), pattern 1 = (x'[k+4+L], x'[k+12+L]), per part, for the
// step k = 16m (built once per run call by avx512bf16_build_pairs, stored once per lane: 32
// bytes per step and part, spread over the lanes by VPERMD). Per group the 16
// lane-layout sums are scaled by the group scales permuted into the same layout; the four
// lanes L of each column are added, and 2^-e applied, once per block. Groups must start on
// multiples of 16 k-rows (avx512bf16_pairs_ok); a group's last len % 16 k-rows take the
// per-row fp32 path with the unscaled x, as do the zero points (through sum_group(x)).
#define LOWBIT_TARGET_AVX512_BF16 \
  __attribute__((target("avx512f,avx512bw,avx512vl,avx512dq,avx512cd,avx512bf16,fma,f16c,avx2,bmi2")))

constexpr std::int64_t avx512bf16_prefetch_bytes = 8192;

// The path is chosen by float_uses_bf16_pairs (float_layout.hpp, with the CPUs where it pays).
inline bool avx512bf16_pairs_ok(const float_packed& w, const float_workspace& ws) {
  return float_uses_bf16_pairs(w, ws.tokens) && !ws.x.empty();
}

// The activation pairs of one call (token 0): words[(m * parts + p) * 8 + 4 pattern + L] for
// the K / 16 full 16-row steps m; the kernel repeats each over the 4 dwords of lane L
// (VPERMD). Stored once per lane, the table is 8 (one part) or 16 KiB (two) at K = 4096:
// repeated 4 times in memory (earlier layout) it took 32 or 64 KiB of the 48 KiB L1 that the
// streaming codes also pass through: cold (with the touch load) that read at ~0.83 (one
// part) and ~0.59 (two parts) x dram_read, this table at 0.94 (same run, Zen 5); hot, from
// L3, the one-token rows got faster too. unscale = 2^-e.
struct avx512bf16_pairs {
  std::vector<std::uint32_t> words;
  int parts = 1;
  float unscale = 1.0f;
};

inline std::uint32_t avx512bf16_round(float v) noexcept {  // fp32 -> bf16 bits, RNE (v finite)
  std::uint32_t u;
  std::memcpy(&u, &v, 4);
  return (u + 0x7FFFu + ((u >> 16) & 1u)) >> 16;
}

// The table, one activation at a time: the reference avx512bf16_build_pairs is tested
// against. The scaling is two exact multiplies (t = x * 2^a, v = t * 2^b); lo is rounded from
// fma(t, 2^b, -hi), the exact v - hi even where v itself was rounded (v subnormal), and the
// explicit fma keeps that the same in both versions whatever the compiler contracts.
inline void avx512bf16_build_pairs_scalar(const float_workspace& ws, avx512bf16_pairs& out) {
  const std::int64_t steps = ws.cols / 16, k_in = ws.cols;
  const float* x = ws.x.data();
  float amax = 0.0f;
  for (std::int64_t k = 0; k < k_in; ++k) amax = std::max(amax, std::fabs(x[k]));
  int e = 0;
  if (amax > 0.0f) {
    (void)std::frexp(amax, &e);  // amax in [2^(e-1), 2^e)
    e = 1 - e;                   // amax * 2^e in [1, 2)
  }
  // 2^e and 2^-e in two exact steps each: one of them may lie outside the normal range.
  const float up_a = std::ldexp(1.0f, e / 2), up_b = std::ldexp(1.0f, e - e / 2);
  out.unscale = std::ldexp(1.0f, -e);
  std::vector<std::uint16_t> hi(static_cast<std::size_t>(steps * 16)), lo(hi.size());
  bool two = false;
  for (std::size_t k = 0; k < hi.size(); ++k) {
    const float t = x[k] * up_a;
    const float v = t * up_b;
    const std::uint32_t h = avx512bf16_round(v);
    const std::uint32_t hbits = h << 16;
    float hv;
    std::memcpy(&hv, &hbits, 4);
    const std::uint32_t l = avx512bf16_round(std::fma(t, up_b, -hv));
    hi[k] = static_cast<std::uint16_t>(h);
    lo[k] = static_cast<std::uint16_t>(l);
    two |= (l & 0x7FFFu) != 0;
  }
  out.parts = two ? 2 : 1;
  out.words.resize(static_cast<std::size_t>(steps * out.parts * 8));
  for (std::int64_t m = 0; m < steps; ++m)
    for (int p = 0; p < out.parts; ++p) {
      const std::uint16_t* src = (p == 0 ? hi.data() : lo.data()) + 16 * m;
      std::uint32_t* dst = out.words.data() + (m * out.parts + p) * 8;
#pragma GCC unroll 2
      for (int pattern = 0; pattern < 2; ++pattern)
#pragma GCC unroll 4
        for (int l = 0; l < 4; ++l)
          dst[4 * pattern + l] = src[4 * pattern + l] | (static_cast<std::uint32_t>(src[8 + 4 * pattern + l]) << 16);
    }
}

// The same table 16 activations at a time, with the same operations per activation. The
// scalar loop cost ~3 ns an activation, 25 us for a K = 8192 call on Zen 5, against ~230 us
// for the call's 8.9 MB of codes from DRAM; the table is built on every call and thread.
// Both parts are written as if two were needed, and compacted when no lo is nonzero.
LOWBIT_TARGET_AVX512 inline __m512i avx512bf16_round16(__m512i u) {  // avx512bf16_round, 16 lanes
  const __m512i lsb = _mm512_and_si512(_mm512_srli_epi32(u, 16), _mm512_set1_epi32(1));
  return _mm512_srli_epi32(_mm512_add_epi32(_mm512_add_epi32(u, _mm512_set1_epi32(0x7FFF)), lsb), 16);
}

LOWBIT_TARGET_AVX512 inline __m256i avx512bf16_pair_words(__m512i h) {  // word i = h[i] | h[i + 8] << 16
  return _mm256_or_si256(_mm512_castsi512_si256(h), _mm256_slli_epi32(_mm512_extracti64x4_epi64(h, 1), 16));
}

LOWBIT_TARGET_AVX512 inline void avx512bf16_build_pairs(const float_workspace& ws, avx512bf16_pairs& out) {
  const std::int64_t steps = ws.cols / 16, k_in = ws.cols;
  const float* x = ws.x.data();
  __m512 vmax = _mm512_setzero_ps();  // a maximum is exact in any order
  std::int64_t k = 0;
  for (; k + 16 <= k_in; k += 16) vmax = _mm512_max_ps(vmax, _mm512_abs_ps(_mm512_loadu_ps(x + k)));
  if (k < k_in)
    vmax = _mm512_max_ps(vmax, _mm512_abs_ps(_mm512_maskz_loadu_ps(static_cast<__mmask16>((1u << (k_in - k)) - 1u), x + k)));
  alignas(64) float lanes[16];
  _mm512_store_ps(lanes, vmax);
  float amax = 0.0f;
  for (float v : lanes) amax = std::max(amax, v);
  int e = 0;
  if (amax > 0.0f) {
    (void)std::frexp(amax, &e);
    e = 1 - e;
  }
  const __m512 up_a = _mm512_set1_ps(std::ldexp(1.0f, e / 2)), up_b = _mm512_set1_ps(std::ldexp(1.0f, e - e / 2));
  out.unscale = std::ldexp(1.0f, -e);
  out.words.resize(static_cast<std::size_t>(steps * 16));
  std::uint32_t* const words = out.words.data();
  __m512i lo_bits = _mm512_setzero_si512();
  for (std::int64_t m = 0; m < steps; ++m) {
    const __m512 t = _mm512_mul_ps(_mm512_loadu_ps(x + 16 * m), up_a);
    const __m512i h = avx512bf16_round16(_mm512_castps_si512(_mm512_mul_ps(t, up_b)));
    const __m512 hv = _mm512_castsi512_ps(_mm512_slli_epi32(h, 16));
    const __m512i l = avx512bf16_round16(_mm512_castps_si512(_mm512_fmsub_ps(t, up_b, hv)));
    lo_bits = _mm512_or_si512(lo_bits, l);
    _mm256_storeu_si256(reinterpret_cast<__m256i*>(words + m * 16), avx512bf16_pair_words(h));
    _mm256_storeu_si256(reinterpret_cast<__m256i*>(words + m * 16 + 8), avx512bf16_pair_words(l));
  }
  const bool two = _mm512_test_epi32_mask(lo_bits, _mm512_set1_epi32(0x7FFF)) != 0;
  out.parts = two ? 2 : 1;
  if (!two) {  // step m's hi words move from 16 m to 8 m: never over a step not yet moved
    for (std::int64_t m = 1; m < steps; ++m)
      _mm256_storeu_si256(reinterpret_cast<__m256i*>(words + m * 8),
                          _mm256_loadu_si256(reinterpret_cast<const __m256i*>(words + m * 16)));
    out.words.resize(static_cast<std::size_t>(steps * 8));
  }
}

LOWBIT_TARGET_AVX512_BF16 inline __m512 avx512bf16_dot(__m512 acc, __m512i w, __m512i x) {
  return _mm512_dpbf16_ps(acc, (__m512bh)w, (__m512bh)x);  // GCC vector casts: same bits
}

template <float_code C, int P>
LOWBIT_TARGET_AVX512_BF16 void avx512bf16_direct_block_pairs(const float_packed& w, const float_workspace& ws,
                                                             const avx512bf16_pairs& xp, std::int64_t b,
                                                             float* out) {
  static_assert(float_code_is_4bit(C), "4-bit codes only");
  const std::uint8_t* codes = w.block_codes(b);
  const float* scales = w.block_scales(b);
  const float* zeros = w.block_zeros(b);
  const std::int64_t k_in = w.cols;
  const float* x = ws.x.data();
  const std::int64_t k_touch_end = avx512_touch_end(w, b);
  // Lane L of the expanded activation operand: dword L (pattern 0) or 4 + L (pattern 1).
  const __m512i sel0 = _mm512_set_epi32(3, 3, 3, 3, 2, 2, 2, 2, 1, 1, 1, 1, 0, 0, 0, 0);
  const __m512i sel1 = _mm512_add_epi32(sel0, _mm512_set1_epi32(4));
  const __m512 lut_ps = _mm512_loadu_ps(nibble_table(C));
  // bf16 bits of the 16 code values, repeated: VPERMW reads 5 index bits.
  alignas(64) std::uint16_t table[32];
  for (int i = 0; i < 32; ++i) {
    const float v = nibble_table(C)[i & 15];
    std::uint32_t u;
    std::memcpy(&u, &v, 4);
    table[i] = static_cast<std::uint16_t>(u >> 16);  // exact: the values have <= 4 significant bits
  }
  const __m512i lut = _mm512_load_si512(table);
  // Lane (L, i) of the scale vector of t[q]: column 4q + i (+ 16 for the odd nibbles).
  const __m512i lane_col = _mm512_set_epi32(3, 2, 1, 0, 3, 2, 1, 0, 3, 2, 1, 0, 3, 2, 1, 0);
  alignas(64) float total[8][16] = {};  // [2q + half][lane]
  __m512 a0 = _mm512_setzero_ps(), a1 = _mm512_setzero_ps();  // per-row path, natural order
  for (std::int64_t g = 0; g < w.groups; ++g) {
    const std::int64_t k1 = std::min(k_in, (g + 1) * w.group_size);
    std::int64_t k = g * w.group_size;
    prefetch_group_params(scales, zeros, g);
    __m512 acc[4][4];
#pragma GCC unroll 4
    for (int q = 0; q < 4; ++q)
#pragma GCC unroll 4
      for (int s = 0; s < 4; ++s) acc[q][s] = _mm512_setzero_ps();
    for (; k + 16 <= k1; k += 16) {
      const std::uint8_t* c = codes + k * 16;
      // 8 KiB ahead: measured against 2 and 4 KiB (T0) and 4-16 KiB (T1) on Zen 5, about 15%
      // more cold bandwidth than 2 KiB; this path consumes a line every ~4 ns. With the touch
      // load below it measured neither better nor worse (2026-12-02); kept for the CPUs where
      // it was not measured (Zen 4).
#pragma GCC unroll 4
      for (int l = 0; l < 4; ++l)
        _mm_prefetch(reinterpret_cast<const char*>(c + avx512bf16_prefetch_bytes + 64 * l), _MM_HINT_T0);
      if ((k & 255) == 0 && k < k_touch_end) touch_load(c + avx512_touch_bytes);  // once per 4 KiB
      const __m512i va = _mm512_loadu_si512(c), vb = _mm512_loadu_si512(c + 64);
      const __m512i vc = _mm512_loadu_si512(c + 128), vd = _mm512_loadu_si512(c + 192);
      const __m512i abl = _mm512_unpacklo_epi8(va, vb), abh = _mm512_unpackhi_epi8(va, vb);
      const __m512i cdl = _mm512_unpacklo_epi8(vc, vd), cdh = _mm512_unpackhi_epi8(vc, vd);
      const __m512i t[4] = {_mm512_unpacklo_epi16(abl, cdl), _mm512_unpackhi_epi16(abl, cdl),
                            _mm512_unpacklo_epi16(abh, cdh), _mm512_unpackhi_epi16(abh, cdh)};
      const std::uint32_t* pk = xp.words.data() + (k / 16) * P * 8;
      __m512i x0[P], x1[P];
#pragma GCC unroll 16
      for (int p = 0; p < P; ++p) {
        const __m512i v = _mm512_zextsi256_si512(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(pk + 8 * p)));
        x0[p] = _mm512_permutexvar_epi32(sel0, v);
        x1[p] = _mm512_permutexvar_epi32(sel1, v);
      }
#pragma GCC unroll 4
      for (int q = 0; q < 4; ++q) {
        const __m512i w0 = _mm512_permutexvar_epi16(t[q], lut);
        const __m512i w1 = _mm512_permutexvar_epi16(_mm512_srli_epi16(t[q], 4), lut);
        const __m512i w2 = _mm512_permutexvar_epi16(_mm512_srli_epi16(t[q], 8), lut);
        const __m512i w3 = _mm512_permutexvar_epi16(_mm512_srli_epi16(t[q], 12), lut);
#pragma GCC unroll 16
        for (int p = 0; p < P; ++p) {  // both parts into one accumulator: 16 chains suffice
          acc[q][0] = avx512bf16_dot(acc[q][0], w0, x0[p]);
          acc[q][1] = avx512bf16_dot(acc[q][1], w1, x0[p]);
          acc[q][2] = avx512bf16_dot(acc[q][2], w2, x1[p]);
          acc[q][3] = avx512bf16_dot(acc[q][3], w3, x1[p]);
        }
      }
    }
    const __m512 s0 = _mm512_loadu_ps(scales + g * float_block_cols);
    const __m512 s1 = _mm512_loadu_ps(scales + g * float_block_cols + 16);
    avx512_finish_group<C>(ws, g, codes, x, k, k1, lut_ps, s0, s1, zeros, a0, a1);
#pragma GCC unroll 4
    for (int q = 0; q < 4; ++q) {
      const __m512i idx = _mm512_add_epi32(lane_col, _mm512_set1_epi32(4 * q));
      float* tl = total[2 * q];
      float* th = total[2 * q + 1];
      _mm512_store_ps(tl, _mm512_fmadd_ps(_mm512_add_ps(acc[q][0], acc[q][2]), _mm512_permutexvar_ps(idx, s0),
                                          _mm512_load_ps(tl)));
      _mm512_store_ps(th, _mm512_fmadd_ps(_mm512_add_ps(acc[q][1], acc[q][3]), _mm512_permutexvar_ps(idx, s1),
                                          _mm512_load_ps(th)));
    }
  }
  // Columns from the lane layout: out[4q + i (+ 16)] += 2^-e * the four lanes L of (L, i).
  _mm512_storeu_ps(out, a0);
  _mm512_storeu_ps(out + 16, a1);
#pragma GCC unroll 4
  for (int q = 0; q < 4; ++q)
#pragma GCC unroll 2
    for (int h = 0; h < 2; ++h)
#pragma GCC unroll 4
      for (int i = 0; i < 4; ++i) {
        const float* tv = total[2 * q + h];
        out[4 * q + i + 16 * h] += ((tv[i] + tv[4 + i]) + (tv[8 + i] + tv[12 + i])) * xp.unscale;
      }
}

template <class Deferred = void>  // see "Compile time" in docs/design.md
inline void avx512bf16_direct_block_pairs_any(const float_packed& w, const float_workspace& ws,
                                              const avx512bf16_pairs& xp, std::int64_t b, float* out) {
  const bool two = xp.parts == 2;
  switch (w.code) {
    case float_code::e2m1:
      return two ? avx512bf16_direct_block_pairs<float_code::e2m1, 2>(w, ws, xp, b, out)
                 : avx512bf16_direct_block_pairs<float_code::e2m1, 1>(w, ws, xp, b, out);
    case float_code::int4_signed:
      return two ? avx512bf16_direct_block_pairs<float_code::int4_signed, 2>(w, ws, xp, b, out)
                 : avx512bf16_direct_block_pairs<float_code::int4_signed, 1>(w, ws, xp, b, out);
    case float_code::uint4_with_zero:
      return two ? avx512bf16_direct_block_pairs<float_code::uint4_with_zero, 2>(w, ws, xp, b, out)
                 : avx512bf16_direct_block_pairs<float_code::uint4_with_zero, 1>(w, ws, xp, b, out);
    case float_code::uint4_with_offset:
      return two ? avx512bf16_direct_block_pairs<float_code::uint4_with_offset, 2>(w, ws, xp, b, out)
                 : avx512bf16_direct_block_pairs<float_code::uint4_with_offset, 1>(w, ws, xp, b, out);
    case float_code::e4m3:
    case float_code::int8_signed: break;  // 4-bit codes only (float_uses_quad_path etc.)
  }
}

// One token of 4-bit codes on VPDPBUSD (float_uses_int_planes): integer products in place of
// the quad path's fp32 decode. Each code becomes an unsigned byte u = m w + bias by one
// VPERMB lookup a nibble (E2M1: 2w + 12, m = 2; int4: w + 8; uint4 codes: w, their
// zero point or offset added per group through sum_group(x) as on the other paths). The token
// is integers in signed-byte planes, one exponent a span (float_workspace::x_planes).
// Per span of up to 512 k-rows of a group and per plane, VPDPBUSD sums u * q exactly in
// int32; minus bias * (the plane's span sum) that is D_p = sum (m w) q_p, |D_p| <= 15 * 128 *
// 512 < 2^24, so each converts to fp32 exactly.
//   - w4a8_fp4 (planes_exact: E4M3 values times 2^9, below 2^18): D0 + 2^8 D1 + 2^16 D2 =
//     sum (2w) v is formed in int32, exact: |D0| <= 12 * 128 * 512, |2^8 D1| <= 12 * 2^15 * 512
//     and |2^16 D2| <= 12 * 2^18 * 512, so every partial sum stays below 1.82e9 < 2^31. A
//     span's sum of a * w is then exact until its one conversion to fp32.
//   - W4A16 (|v| up to 2^30, four planes; below 2^22, three, in spans of 16-bit values):
//     the D_p are combined in fp32 (three roundings),
//     and the span's fixes (activations too small for its fixed point) add r * w in fp32.
// The spans of a group and the groups (times their scales) are summed in fp32, as on every
// fp32 path. One 64-byte load holds 4 k-rows; one VPERMB (nibble_row_quads) makes dword j
// hold column j (low nibbles) and 16 + j (high) of the 4 rows, so the lanes are the columns
// in their natural order, and a VPERMB lookup a nibble gives the bytes. Per 128 weights: 4
// shuffle/shift uops (three VPERMB, a shift; 7 before, with a VPERMD, three VPSHUFB and two
// ANDs) and two VPDPBUSD a plane (w4a8_fp4: 4 or 6, its plane 2 skipped in spans where it is
// 0; W4A16: 8, or 6 in spans of 16-bit values), against the quad path's 23 uops. Two sets of
// accumulators on alternate steps hide VPDPBUSD's latency. A group's trailing K % 4 k-rows
// (the last group's only) take the per-row fp32 path.
template <int P>  // planes 0..P-1 (the span's plane_count)
LOWBIT_TARGET_AVX512 inline void avx512_int_planes_step(const std::uint8_t* c, const std::int8_t* planes,
                                                        std::int64_t plane_len, std::int64_t k, __m512i lut,
                                                        __m512i (&acc)[4][2]) {
  const __m512i t = nibble_row_quads(c);
  // lut repeats its 16 bytes four times, so VPERMB reads a nibble from the low 4 bits of any
  // byte: the shift's bits from the next byte (and bits 6-7, which VPERMB ignores) do not count.
  const __m512i u0 = avx512_permb(t, lut);
  const __m512i u1 = avx512_permb(_mm512_srli_epi16(t, 4), lut);
#pragma GCC unroll 4
  for (int p = 0; p < P; ++p) {
    const __m512i a = avx512_bcast32(planes + p * plane_len + k);
    acc[p][0] = avx512_dpbusd(acc[p][0], u0, a);
    acc[p][1] = avx512_dpbusd(acc[p][1], u1, a);
  }
}

// A span's steps from k-row k to span_end on P planes: 8 k-rows a step, alternating the two
// accumulator sets, then a last 4-row step if left; returns span_end. P is a template
// argument so that the step has no branch per plane (the count is the span's, one switch).
// Always inlined: four copies called from one switch tempt GCC to call them, and then the
// accumulators live in memory (2.5x slower, seen with a variant that took two more
// arguments).
template <int P>
LOWBIT_TARGET_AVX512 __attribute__((always_inline)) inline std::int64_t avx512_int_planes_span(
    const std::uint8_t* codes, const std::int8_t* planes, std::int64_t plane_len, std::int64_t k,
    std::int64_t span_end, __m512i lut, __m512i (&acc)[2][4][2], bool prefetch_l2) {
  for (; k + 8 <= span_end; k += 8) {
    const std::uint8_t* c = codes + k * 16;
    // Prefetch only: the other one-token paths' touch loads (avx512_touch_bytes, needed on
    // Zen 5) cost this path 7-10% cold on the device Xeon (3 alternated rounds: 0.87-0.89 x
    // dram_read with them, 0.94-0.96 without; session 44). Into L1 8 KiB ahead, or on Zen 4
    // into L2 16 KiB ahead (avx512_int_planes_prefetch_l2; a branch taken the same way
    // throughout: no measurable cost hot).
    if (prefetch_l2) {
      _mm_prefetch(reinterpret_cast<const char*>(c + 2 * avx512bf16_prefetch_bytes), _MM_HINT_T2);
      _mm_prefetch(reinterpret_cast<const char*>(c + 2 * avx512bf16_prefetch_bytes + 64), _MM_HINT_T2);
    } else {
      _mm_prefetch(reinterpret_cast<const char*>(c + avx512bf16_prefetch_bytes), _MM_HINT_T0);
      _mm_prefetch(reinterpret_cast<const char*>(c + avx512bf16_prefetch_bytes + 64), _MM_HINT_T0);
    }
    avx512_int_planes_step<P>(c, planes, plane_len, k, lut, acc[0]);
    avx512_int_planes_step<P>(c + 64, planes, plane_len, k + 4, lut, acc[1]);
  }
  if (k < span_end) {  // one 4-row step left
    avx512_int_planes_step<P>(codes + k * 16, planes, plane_len, k, lut, acc[0]);
    k += 4;
  }
  return k;
}

template <float_code C>
LOWBIT_TARGET_AVX512 void avx512_direct_block_int_planes(const float_packed& w, const float_workspace& ws,
                                                         std::int64_t b, float* out) {
  static_assert(float_code_is_4bit(C), "4-bit codes only");
  const std::uint8_t* codes = w.block_codes(b);
  const float* scales = w.block_scales(b);
  const float* zeros = w.block_zeros(b);
  const std::int64_t k_in = w.cols, whole = k_in / 4 * 4;  // whole: the planes' length
  const std::int8_t* planes = ws.x_planes.data();
  const bool l2 = avx512_int_planes_prefetch_l2(host_cpu_features());
  const __m512 lut_ps = _mm512_loadu_ps(nibble_table(C));
  alignas(64) std::uint8_t table[64];
  for (int i = 0; i < 64; ++i)  // exact: small integers
    table[i] = static_cast<std::uint8_t>(ws.plane_m * nibble_table(C)[i & 15] + static_cast<float>(ws.plane_bias));
  const __m512i lut = _mm512_load_si512(table);
  __m512 a0 = _mm512_setzero_ps(), a1 = _mm512_setzero_ps();
  for (std::int64_t g = 0; g < w.groups; ++g) {
    const std::int64_t k1 = std::min(k_in, (g + 1) * w.group_size);
    const std::int64_t q1 = std::min(k1, whole);  // the group's k-rows in whole steps
    std::int64_t k = g * w.group_size;
    prefetch_group_params(scales, zeros, g);
    __m512 r0 = _mm512_setzero_ps(), r1 = _mm512_setzero_ps();
    for (std::int64_t span = g * ws.spans_per_group; k < q1; ++span) {
      const std::int64_t span_end = std::min(q1, k + float_int_planes_span);
      const int plane_count = ws.plane_count[static_cast<std::size_t>(span)];
      __m512i acc[2][4][2];
#pragma GCC unroll 2
      for (int s = 0; s < 2; ++s)
#pragma GCC unroll 4
        for (int p = 0; p < 4; ++p) acc[s][p][0] = acc[s][p][1] = _mm512_setzero_si512();
      switch (plane_count) {
        case 1: k = avx512_int_planes_span<1>(codes, planes, whole, k, span_end, lut, acc, l2); break;
        case 2: k = avx512_int_planes_span<2>(codes, planes, whole, k, span_end, lut, acc, l2); break;
        case 3: k = avx512_int_planes_span<3>(codes, planes, whole, k, span_end, lut, acc, l2); break;
        default: k = avx512_int_planes_span<4>(codes, planes, whole, k, span_end, lut, acc, l2); break;
      }
      const std::int32_t* sums = ws.plane_sums.data() + 4 * span;
      __m512i d[4][2];
#pragma GCC unroll 4
      for (int p = 0; p < 4; ++p)
#pragma GCC unroll 2
        for (int h = 0; h < 2; ++h)
          d[p][h] = _mm512_sub_epi32(_mm512_add_epi32(acc[0][p][h], acc[1][p][h]), _mm512_set1_epi32(sums[p]));
      const __m512 unit = _mm512_set1_ps(ws.plane_unit[static_cast<std::size_t>(span)]);
      __m512 f[2];
#pragma GCC unroll 2
      for (int h = 0; h < 2; ++h) {
        if (ws.planes_exact) {  // D0 + 2^8 D1 + 2^16 D2 in int32 (shifts of negatives multiply too)
          f[h] = _mm512_cvtepi32_ps(
              _mm512_add_epi32(d[0][h], _mm512_add_epi32(_mm512_slli_epi32(d[1][h], 8), _mm512_slli_epi32(d[2][h], 16))));
        } else {  // each D_p exactly, combined in fp32
          f[h] = _mm512_cvtepi32_ps(d[0][h]);
#pragma GCC unroll 3
          for (int p = 1; p < 4; ++p)
            f[h] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(d[p][h]), _mm512_set1_ps(static_cast<float>(1 << (8 * p))), f[h]);
        }
      }
      r0 = _mm512_fmadd_ps(f[0], unit, r0);
      r1 = _mm512_fmadd_ps(f[1], unit, r1);
      // The span's fixes: r * w(k, :) for the activations its fixed point does not hold.
      const std::size_t fix_end = static_cast<std::size_t>(ws.fix_begin[static_cast<std::size_t>(span) + 1]);
      for (std::size_t i = static_cast<std::size_t>(ws.fix_begin[static_cast<std::size_t>(span)]); i < fix_end; ++i) {
        __m512 lo, hi;
        avx512_decode_nibbles(codes + ws.fix_k[i] * std::int64_t{16}, lut_ps, lo, hi);
        const __m512 rv = _mm512_set1_ps(ws.fix_r[i]);
        r0 = _mm512_fmadd_ps(rv, lo, r0);
        r1 = _mm512_fmadd_ps(rv, hi, r1);
      }
    }
    const __m512 s0 = _mm512_loadu_ps(scales + g * float_block_cols);
    const __m512 s1 = _mm512_loadu_ps(scales + g * float_block_cols + 16);
    a0 = _mm512_fmadd_ps(r0, s0, a0);
    a1 = _mm512_fmadd_ps(r1, s1, a1);
    avx512_finish_group<C>(ws, g, codes, ws.x.data(), k, k1, lut_ps, s0, s1, zeros, a0, a1);
  }
  _mm512_storeu_ps(out, a0);
  _mm512_storeu_ps(out + 16, a1);
}

template <class Deferred = void>  // see "Compile time" in docs/design.md
inline void avx512_direct_block_int_planes_any(const float_packed& w, const float_workspace& ws, std::int64_t b,
                                               float* out) {
  switch (w.code) {
    case float_code::e2m1: return avx512_direct_block_int_planes<float_code::e2m1>(w, ws, b, out);
    case float_code::int4_signed: return avx512_direct_block_int_planes<float_code::int4_signed>(w, ws, b, out);
    case float_code::uint4_with_zero:
      return avx512_direct_block_int_planes<float_code::uint4_with_zero>(w, ws, b, out);
    case float_code::uint4_with_offset:
      return avx512_direct_block_int_planes<float_code::uint4_with_offset>(w, ws, b, out);
    case float_code::e4m3:
    case float_code::int8_signed: break;  // 4-bit codes only (float_one_token_path)
  }
}

constexpr std::int64_t avx512_direct_max_tokens = 4;

template <class Deferred = void>  // see "Compile time" in docs/design.md
inline void run_float_avx512(const float_packed& w, const float_workspace& ws, RowMatrixRef y,
                             std::int64_t n_begin, std::int64_t n_end) {
  if (!ws.x_half.empty()) {  // prepare chose the AVX512-FP16 path (float_uses_fp16_path)
    run_float_avx512fp16(w, ws, y, n_begin, n_end);
    return;
  }
  if (ws.tokens > avx512_direct_max_tokens) {
    run_float_buffered(w, ws, y, n_begin, n_end, avx512_decode_rows, avx512_accumulate);
    return;
  }
  thread_local std::vector<float> acc_buf;
  float* acc = float_scratch(acc_buf, static_cast<std::size_t>(ws.tokens * float_block_cols));
  const std::int64_t b_end = (n_end + float_block_cols - 1) / float_block_cols;
  if (!ws.x_planes.empty()) {  // prepare chose the integer path (float_uses_int_planes)
    for (std::int64_t b = n_begin / float_block_cols; b < b_end; ++b) {
      avx512_direct_block_int_planes_any(w, ws, b, acc);
      store_float_block(ws, acc, b * float_block_cols, n_begin, n_end, y);
    }
    return;
  }
  if (avx512bf16_pairs_ok(w, ws)) {
    thread_local avx512bf16_pairs pairs;
    avx512bf16_build_pairs(ws, pairs);
    for (std::int64_t b = n_begin / float_block_cols; b < b_end; ++b) {
      avx512bf16_direct_block_pairs_any(w, ws, pairs, b, acc);
      store_float_block(ws, acc, b * float_block_cols, n_begin, n_end, y);
    }
    return;
  }
  if (!ws.x_quad.empty()) {  // prepare chose the one-token path (float_uses_quad_path)
    for (std::int64_t b = n_begin / float_block_cols; b < b_end; ++b) {
      avx512_direct_block_quad_any(w, ws, ws.x_quad.data(), b, acc);
      store_float_block(ws, acc, b * float_block_cols, n_begin, n_end, y);
    }
    return;
  }
  for (std::int64_t b = n_begin / float_block_cols; b < b_end; ++b) {
    switch (ws.tokens) {
      case 1: avx512_direct_block_any<1>(w, ws, b, acc); break;
      case 2: avx512_direct_block_any<2>(w, ws, b, acc); break;
      case 3: avx512_direct_block_any<3>(w, ws, b, acc); break;
      default: avx512_direct_block_any<4>(w, ws, b, acc); break;
    }
    store_float_block(ws, acc, b * float_block_cols, n_begin, n_end, y);
  }
}

}  // namespace lowbit::detail

#pragma GCC diagnostic pop

#endif  // LOWBIT_HAVE_X86_SIMD
