#pragma once
// AMX-BF16 sub-tier of the float-decoding family (w8a8_fp8, w4a8_fp4, w4a16_int4, w4a16_fp4,
// w8a16_int8): x86-64 with AMX-TILE + AMX-BF16, on Linux after arch_prctl granted tile data
// (dispatch/cpu_features.hpp). Its records (kernels/registry.hpp) come before the AVX-512 ones
// on sub-tier amx and pack the same "colblock32" layout (float_layout.hpp): the compact codes
// stay in memory, so the one-token path reads 4-bit codes as before.
// The same "bf16 tiles" (staging, activation parts, epilogue) also run on VDPBF16PS instead of
// the TMUL unit, as a many-token path of the AVX-512 records on CPUs where that pays
// (avx512bf16_tiles below; float_uses_avx512bf16_tiles, float_layout.hpp, says when).
//
// Why bf16 tiles lose nothing but fp32 summation order: TDPBF16PS multiplies bf16 pairs into
// fp32 (8 x 8 significant bits: exact) and sums in fp32. Every weight code of the family is a
// bf16 number (int4 -8..7, uint4 0..15, E2M1, int8 -128..127 with 8 significant bits, E4M3 with
// 4 significant bits and exponents 2^-9..2^8), and so are the A8 activations (E4M3 values) and
// bf16 inputs. Other activations (fp32; fp16, with 11 significant bits) are split per element:
//   x' = x * 2^e(t)   (per token, 2^e putting max_k |x'| in [1, 2): exact; keeps every part
//                      clear of bf16 subnormals, which TDPBF16PS reads as zero)
//   hi = bf16(x'), lo = bf16(x' - hi)   (both round to nearest even; x' - hi is exact in fp32)
//   r  = x' - hi - lo.
// With 2^q <= |x'| < 2^(q+1): |x' - hi| <= 2^(q-8) (half an ulp of an 8-bit significand); if
// |x' - hi| = 2^(q-8) it is a power of two and r = 0, else it lies below 2^(q-8), its ulp is at
// most 2^(q-16) and |r| <= 2^(q-17) <= 2^-17 |x'|. So each product is exact but for a relative
// 2^-17 = 7.6e-6, inside the family's tolerance 2e-5 * sum|x||w_hat| with room for the fp32
// sums (which the other tiers have too). fp16 inputs have r = 0 (11 bits = hi's 8 + lo's 3).
// A call runs a second tile pass only for token super-blocks where some lo is non-zero, so
// A8 schemes and bf16 inputs take one pass. PackOptions::bf16_activations (opt-in) keeps hi
// alone: one pass, each product off by up to 2^-8 relative (amx_float_split_rows).
//
// Tiles (all 16 rows x 64 bytes, one configuration for the call): A = 16 tokens x 32 k of one
// part (bf16, straight from the workspace rows), B = 32 k x 16 columns in pairs (row r holds
// k-rows 2r and 2r+1 of each column: TDPBF16PS's pairing), C = 16 x 16 fp32. A 32-column block
// is two B tiles; two token blocks x two B tiles are 4 C tiles (tmm0-3), A tmm4-5, B tmm6-7,
// as in amx_int.hpp. B is decoded per chunk (up to 8 k-blocks of 32, 16 KiB) into L1 from the
// packed codes (4-bit: VPERMW of a 32-entry bf16 table; E4M3: bit moves, a table for its
// subnormals; int8: through fp32) and reused by every token block of the super-block.
// Groups: each group's k-blocks start at the group's first k-row (group sizes that are not
// multiples of 32 waste part of their last tile; the staged rows past the group end are zero,
// so the A values there are multiplied by 0). Each group's C tiles are stored raw; the vector
// epilogue adds C * scale per column (and, for zero points or float offsets, the group's term
// times sum_group(x), as the few-token path does) into an fp32 accumulator, in group order.
// It runs one group behind the tiles, between the tile chunks of the next group (see
// amx_float_tiles_t), so that it overlaps the TMUL unit's work instead of adding to it.
#include <cstdint>

#include "lowbit/detail/target.hpp"
#include "lowbit/kernels/float_layout.hpp"

namespace lowbit::detail {

// At most this many tokens run the AVX-512 float code (x86/avx512_float.hpp) on the same packed
// weights: they fill a sixteenth of an A tile, and those calls are memory-bound (the one-token
// paths read the 4-bit codes once).
constexpr std::int64_t amx_float_min_tokens = 4;

// Whether a call with `tokens` rows of `input` activations runs the bf16 tiles (the workspace
// then holds the bf16 parts): on the AMX unit, for weights packed by the AMX-BF16 records, or
// on VDPBF16PS, for the AVX-512 records' calls that float_uses_avx512bf16_tiles sends there.
inline bool float_uses_bf16_tiles(const float_packed& w, std::int64_t tokens,
                                  activation_dtype input = activation_dtype::f32) {
  return (w.amx_bf16 && tokens > amx_float_min_tokens) || float_uses_avx512bf16_tiles(w, tokens, input);
}

// Whether such a call reads the activation rows straight into the bf16 parts
// (prepare_float_bf16_tiles_rows): no activation quantization needs them as fp32 first. gemm()
// then hands fp16 / bf16 activations over without widening.
inline bool float_bf16_tiles_read_rows(const float_packed& w, std::int64_t tokens,
                                       activation_dtype input = activation_dtype::f32) {
  return float_uses_bf16_tiles(w, tokens, input) && !scheme_quantizes_activations(w.scheme);
}

}  // namespace lowbit::detail

#if LOWBIT_HAVE_X86_SIMD
#include <immintrin.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <type_traits>

#include "lowbit/detail/aligned_buffer.hpp"
#include "lowbit/kernels/x86/amx_int.hpp"
#include "lowbit/kernels/x86/avx512_float.hpp"
#include "lowbit/kernels/x86/nibble_pairs.hpp"

#pragma GCC diagnostic push
LOWBIT_IGNORE_GCC_MAYBE_UNINITIALIZED
#pragma GCC diagnostic ignored "-Wuninitialized"

namespace lowbit::detail {

constexpr std::int64_t amx_float_k_block = 32;        // k per A / B tile (bf16 pairs)
constexpr std::int64_t amx_float_chunk_blocks = 8;    // k-blocks staged at once: 2 x 8 KiB of B
constexpr std::int64_t amx_float_super_tokens = 128;  // tokens per pass over a block's K
constexpr std::int64_t amx_float_tile_elems = 16 * 32;      // bf16 per B tile, fp32 per 16 x 32 C

// ---- activations: bf16 parts ---------------------------------------------------------------

// bf16 bits (in the low 16 bits of each lane) of 16 finite fp32 values, round to nearest even;
// `rounded` gets the rounded values as fp32.
LOWBIT_TARGET_AVX512 inline __m512i amx_bf16_round(__m512 v, __m512& rounded) {
  const __m512i u = _mm512_castps_si512(v);
  const __m512i odd = _mm512_and_si512(_mm512_srli_epi32(u, 16), _mm512_set1_epi32(1));
  const __m512i r = _mm512_and_si512(_mm512_add_epi32(u, _mm512_add_epi32(odd, _mm512_set1_epi32(0x7FFF))),
                                     _mm512_set1_epi32(static_cast<int>(0xFFFF0000u)));
  rounded = _mm512_castsi512_ps(r);
  return _mm512_srli_epi32(r, 16);
}

// 16 activations k.. of a row as exact fp32 values, past the mask zero: fp32, bf16 or fp16
// rows.
template <activation_dtype In>
LOWBIT_TARGET_AVX512 inline __m512 amx_load_activations(const void* row, std::int64_t k, __mmask16 m) {
  if constexpr (In == activation_dtype::f32) {
    return _mm512_maskz_loadu_ps(m, static_cast<const float*>(row) + k);
  } else {
    return fp16_widen_16bit(_mm256_maskz_loadu_epi16(m, static_cast<const std::uint16_t*>(row) + k),
                            In == activation_dtype::bf16);
  }
}

// Tokens [t0, t1) of a weight-only call, read from the caller's rows (`src` + t * `stride`
// elements of In: the fp32 call's x, or the fp16 / bf16 activations gemm() was given), straight
// into ws.x_bf16's hi and lo planes, with the per-token 2^e (ws.bf16_scale), whether any lo
// is non-zero (ws.bf16_two) and, for zero points and float offsets, the group sums: every
// thing the tiles read, in one pass over the row besides the max. The tiles never read
// ws.x, so it is not written: that copy, the widened copy of 16-bit inputs made before it and
// the split's second read were 4-15% of a 16-thread bf16-input call on the device Xeon
// (docs/performance.md, "Session 33").
// round_only (PackOptions::bf16_activations): hi alone, and every call runs one pass;
// |x' - hi| <= 2^(q-8) <= 2^-8 |x'| (half an ulp of an 8-bit significand), so each product
// errs by up to 2^-8 relative. bf16 inputs are hi alone too (exactly). Such calls have no lo
// plane (float_workspace::bf16_planes = 1): lo is neither stored nor read. A non-finite value
// is an error, as on every other path. Disjoint ranges may run on different threads.
template <activation_dtype In>
LOWBIT_TARGET_AVX512 void amx_float_split_rows(const float_packed& w, const void* src, std::int64_t stride,
                                               float_workspace& ws, std::int64_t t0, std::int64_t t1,
                                               bool round_only = false) {
  constexpr std::size_t elem = In == activation_dtype::f32 ? 4 : 2;
  const std::int64_t k_in = ws.cols, bs = ws.bf16_stride;
  const std::int64_t plane = ws.bf16_rows * bs;
  const bool hi_only = round_only || In == activation_dtype::bf16;  // every lo is 0
  if (hi_only != (ws.bf16_planes == 1)) fail("gemm: the bf16 workspace's planes do not match the call's input");
  const bool sums = float_code_has_group_term(w.code);
  std::vector<float> widened(sums ? static_cast<std::size_t>(k_in) : 0);  // the row as fp32, for the sums
  for (std::int64_t t = t0; t < t1; ++t) {
    const void* xr = static_cast<const char*>(src) + t * stride * static_cast<std::int64_t>(elem);
    // max |x| as the largest magnitude's bits: finite floats order as their bits do, and Inf
    // or NaN compare above every finite value.
    __m512i mx = _mm512_setzero_si512();
    for (std::int64_t k = 0; k < k_in; k += 16) {
      const __mmask16 m = k + 16 <= k_in ? __mmask16(0xFFFF) : __mmask16((1u << (k_in - k)) - 1u);
      const __m512 v = amx_load_activations<In>(xr, k, m);
      mx = _mm512_max_epu32(mx, _mm512_and_si512(_mm512_castps_si512(v), _mm512_set1_epi32(0x7FFFFFFF)));
      if (sums) _mm512_mask_storeu_ps(widened.data() + k, m, v);
    }
    const std::uint32_t max_bits = static_cast<std::uint32_t>(_mm512_reduce_max_epu32(mx));
    if (max_bits >= 0x7F800000u)  // find the culprit for the message
      for (std::int64_t k = 0; k < k_in; ++k) {
        alignas(64) float v[16];
        _mm512_store_ps(v, amx_load_activations<In>(xr, k, 1));
        if (!std::isfinite(v[0]))
          fail("activations: non-finite value at token " + std::to_string(t) + ", column " + std::to_string(k));
      }
    float amax;
    std::memcpy(&amax, &max_bits, 4);
    if (sums)  // in k order, as prepare_float_tokens sums x for the other tiers
      for (std::int64_t g = 0; g < ws.groups; ++g) {
        const std::int64_t k0 = g * ws.group_size, k1 = std::min(k_in, k0 + ws.group_size);
        float s = 0.0f;
        for (std::int64_t k = k0; k < k1; ++k) s += widened[static_cast<std::size_t>(k)];
        ws.group_sums[static_cast<std::size_t>(t * ws.groups + g)] = s;
      }
    int e = 0;
    if (amax > 0.0f) {
      (void)std::frexp(amax, &e);             // amax in [2^(e-1), 2^e)
      e = std::clamp(1 - e, -126, 126);       // amax * 2^e in [1, 2) unless clamped; both
    }                                         // 2^e and 2^-e normal floats
    const float scale = std::ldexp(1.0f, e);
    ws.bf16_scale[static_cast<std::size_t>(t)] = scale;
    ws.bf16_unscale[static_cast<std::size_t>(t)] = std::ldexp(1.0f, -e);
    const __m512 sv = _mm512_set1_ps(scale);
    std::uint16_t* hi = ws.x_bf16.data() + t * bs;
    std::uint16_t* lo = hi + plane;
    __m512i any = _mm512_setzero_si512();
    for (std::int64_t k = 0; k < k_in; k += 16) {
      const __mmask16 m = k + 16 <= k_in ? __mmask16(0xFFFF) : __mmask16((1u << (k_in - k)) - 1u);
      const __m512 v = _mm512_mul_ps(amx_load_activations<In>(xr, k, m), sv);
      __m512 hv, lv;
      const __m512i h = amx_bf16_round(v, hv);
      const __m512i l = amx_bf16_round(_mm512_sub_ps(v, hv), lv);  // v - hv: exact
      _mm256_mask_storeu_epi16(hi + k, m, _mm512_cvtepi32_epi16(h));
      if (hi_only) continue;
      any = _mm512_or_si512(any, _mm512_and_si512(l, _mm512_set1_epi32(0x7FFF)));  // -0 counts as 0
      _mm256_mask_storeu_epi16(lo + k, m, _mm512_cvtepi32_epi16(l));
    }
    // The rest of the row is zero (the workspace is not initialised when made): a group's
    // last A tile reads up to 31 values past K, met by zero B rows (and 0 * NaN is NaN).
    std::fill(hi + k_in, hi + bs, std::uint16_t{0});
    if (!hi_only) std::fill(lo + k_in, lo + bs, std::uint16_t{0});
    ws.bf16_two[static_cast<std::size_t>(t)] = _mm512_test_epi32_mask(any, any) != 0 ? 1 : 0;
  }
}

// ---- weights: B tiles ------------------------------------------------------------------------

// The 32-entry VPERMW table of a code (bf16 bits; VPERMW reads 5 index bits): the 16 nibble
// values repeated, or E4M3's subnormal values M * 2^-9 (M = 0..7) for the E4M3 decode.
inline void amx_float_table(float_code c, std::uint16_t* table) noexcept {
  for (int i = 0; i < 32; ++i) {
    float v = 0.0f;
    if (float_code_is_4bit(c)) v = nibble_table(c)[i & 15];
    else if (c == float_code::e4m3 && i < 8) v = std::ldexp(static_cast<float>(i), -9);
    std::uint32_t u;
    std::memcpy(&u, &v, 4);
    table[i] = static_cast<std::uint16_t>(u >> 16);  // exact: at most 4 significant bits
  }
}

// 32 E4M3 codes -> their bf16 bits: a normal code S.EEEE.MMM is S.(EEEE + 120).MMM0000 in
// bf16; subnormals (EEEE = 0) from the table.
LOWBIT_TARGET_AVX512 inline __m512i amx_bf16_from_e4m3(__m256i codes, __m512i sub_table) {
  const __m512i w = _mm512_cvtepu8_epi16(codes);
  const __m512i mag = _mm512_and_si512(w, _mm512_set1_epi16(0x7F));
  const __m512i sign = _mm512_slli_epi16(_mm512_and_si512(w, _mm512_set1_epi16(0x80)), 8);
  const __m512i normal = _mm512_add_epi16(_mm512_slli_epi16(mag, 4), _mm512_set1_epi16(120 << 7));
  const __m512i sub = _mm512_permutexvar_epi16(mag, sub_table);
  const __mmask32 is_sub = _mm512_cmplt_epu16_mask(mag, _mm512_set1_epi16(8));
  return _mm512_or_si512(_mm512_mask_blend_epi16(is_sub, normal, sub), sign);
}

// 32 int8 codes -> their bf16 bits: through fp32, whose top 16 bits hold every int8 exactly.
LOWBIT_TARGET_AVX512 inline __m512i amx_bf16_from_int8(__m256i codes) {
  const __m512i a = _mm512_srli_epi32(
      _mm512_castps_si512(_mm512_cvtepi32_ps(_mm512_cvtepi8_epi32(_mm256_castsi256_si128(codes)))), 16);
  const __m512i b = _mm512_srli_epi32(
      _mm512_castps_si512(_mm512_cvtepi32_ps(_mm512_cvtepi8_epi32(_mm256_extracti128_si256(codes, 1)))), 16);
  return _mm512_inserti64x4(_mm512_castsi256_si512(_mm512_cvtepi32_epi16(a)), _mm512_cvtepi32_epi16(b), 1);
}

// Tokens [t0, t1) of an A8 call (E4M3 activations): ws.codes, which prepare_float_tokens
// wrote, straight into the hi plane. A code's value is a bf16 number (4 significant bits,
// 2^-9..448), and x' = value * 2^e(t) only moves its exponent (|x'| stays in [2^-18, 2): no
// bf16 subnormal), so hi is that value with e added to its exponent, lo is 0 (never read:
// bf16_two = 0), and the planes are the bits amx_float_split_rows makes from the decoded
// values, without decoding them to fp32 first.
LOWBIT_TARGET_AVX512 inline void amx_float_e4m3_rows(float_workspace& ws, std::int64_t t0, std::int64_t t1) {
  const std::int64_t k_in = ws.cols, bs = ws.bf16_stride;
  alignas(64) std::uint16_t sub_bits[32];
  amx_float_table(float_code::e4m3, sub_bits);
  const __m512i sub_table = _mm512_load_si512(sub_bits);
  for (std::int64_t t = t0; t < t1; ++t) {
    const std::uint8_t* codes = ws.codes.data() + t * k_in;
    // The largest magnitude code is the largest value (E4M3 orders as its bits; prepare
    // saturates to finite codes, so no NaN code 0x7F).
    __m512i mx = _mm512_setzero_si512();
    for (std::int64_t k = 0; k < k_in; k += 64) {
      const __mmask64 m = k + 64 <= k_in ? ~__mmask64(0) : (__mmask64(1) << (k_in - k)) - 1u;
      mx = _mm512_max_epu8(mx, _mm512_and_si512(_mm512_maskz_loadu_epi8(m, codes + k), _mm512_set1_epi8(0x7F)));
    }
    const __m256i m32 = _mm256_max_epu8(_mm512_castsi512_si256(mx), _mm512_extracti64x4_epi64(mx, 1));
    alignas(32) std::uint8_t lanes[32];
    _mm256_store_si256(reinterpret_cast<__m256i*>(lanes), m32);
    const std::uint8_t top = *std::max_element(lanes, lanes + 32);
    const float amax = float8_e4m3fn::decode_table[top];
    int e = 0;  // the rule of amx_float_split_rows
    if (amax > 0.0f) {
      (void)std::frexp(amax, &e);
      e = std::clamp(1 - e, -126, 126);
    }
    ws.bf16_scale[static_cast<std::size_t>(t)] = std::ldexp(1.0f, e);
    ws.bf16_unscale[static_cast<std::size_t>(t)] = std::ldexp(1.0f, -e);
    const __m512i shift = _mm512_set1_epi16(static_cast<short>(e * 128));  // e in the exponent field
    std::uint16_t* hi = ws.x_bf16.data() + t * bs;
    for (std::int64_t k = 0; k < k_in; k += 32) {
      const __mmask32 m = k + 32 <= k_in ? ~__mmask32(0) : (__mmask32(1) << (k_in - k)) - 1u;
      const __m512i b = amx_bf16_from_e4m3(_mm256_maskz_loadu_epi8(m, codes + k), sub_table);
      const __mmask32 nonzero = _mm512_test_epi16_mask(b, _mm512_set1_epi16(0x7FFF));
      _mm512_mask_storeu_epi16(hi + k, m, _mm512_mask_add_epi16(b, nonzero, b, shift));
    }
    std::fill(hi + k_in, hi + bs, std::uint16_t{0});  // as amx_float_split_rows
    ws.bf16_two[static_cast<std::size_t>(t)] = 0;
  }
}

// K-rows [k0, k1) of a block (k1 - k0 <= nb * 32) as nb k-blocks of two B tiles each:
// out[(2 blk + v) * 512 + r * 32 + 2 j + i] = value of k-row k0 + 32 blk + 2 r + i, column
// 16 v + j, in bf16; k-rows at or past k1 are 0 (they meet the A values of the next group).
template <float_code C>
LOWBIT_TARGET_AVX512 void amx_float_stage(const std::uint8_t* codes, std::int64_t k0, std::int64_t k1,
                                          std::int64_t nb, __m512i table, std::uint16_t* out) {
  for (std::int64_t blk = 0; blk < nb; ++blk) {
    std::uint16_t* t0 = out + (2 * blk) * amx_float_tile_elems;  // columns 0..15
    std::uint16_t* t1 = t0 + amx_float_tile_elems;                // columns 16..31
    const std::int64_t kb = k0 + blk * amx_float_k_block;
    if constexpr (float_code_is_4bit(C)) {
      // Four k-rows (two tile rows) a step; a k-row's byte j holds columns j and j + 16.
      for (std::int64_t r = 0; r < 16; r += 2) {
        const std::int64_t ka = kb + 2 * r, rows = std::clamp<std::int64_t>(k1 - ka, 0, 4);
        __m512i p01, p23;
        nibble_row_pairs(rows > 0 ? codes + ka * 16 : codes, rows, p01, p23);
        _mm512_storeu_si512(t0 + r * 32, _mm512_permutexvar_epi16(p01, table));  // the table repeats
        _mm512_storeu_si512(t1 + r * 32, _mm512_permutexvar_epi16(_mm512_srli_epi16(p01, 4), table));
        _mm512_storeu_si512(t0 + r * 32 + 32, _mm512_permutexvar_epi16(p23, table));
        _mm512_storeu_si512(t1 + r * 32 + 32, _mm512_permutexvar_epi16(_mm512_srli_epi16(p23, 4), table));
      }
    } else {
      for (std::int64_t r = 0; r < 16; ++r) {
        const std::int64_t ka = kb + 2 * r;
        const __m256i a = ka < k1 ? _mm256_loadu_si256(reinterpret_cast<const __m256i*>(codes + ka * 32))
                                  : _mm256_setzero_si256();
        const __m256i b = ka + 1 < k1 ? _mm256_loadu_si256(reinterpret_cast<const __m256i*>(codes + (ka + 1) * 32))
                                      : _mm256_setzero_si256();
        // unpack works per 128-bit lane: lo = [cols 0-7 | 16-23], hi = [8-15 | 24-31].
        const __m256i lo = _mm256_unpacklo_epi8(a, b), hi = _mm256_unpackhi_epi8(a, b);
        const __m256i p0 = _mm256_permute2x128_si256(lo, hi, 0x20);  // columns 0..15
        const __m256i p1 = _mm256_permute2x128_si256(lo, hi, 0x31);  // columns 16..31
        if constexpr (C == float_code::e4m3) {
          _mm512_storeu_si512(t0 + r * 32, amx_bf16_from_e4m3(p0, table));
          _mm512_storeu_si512(t1 + r * 32, amx_bf16_from_e4m3(p1, table));
        } else {
          (void)table;
          _mm512_storeu_si512(t0 + r * 32, amx_bf16_from_int8(p0));
          _mm512_storeu_si512(t1 + r * 32, amx_bf16_from_int8(p1));
        }
      }
    }
  }
}

// ---- the tile chunk: real AMX, or a scalar model of it -----------------------------------------

// Prefetches the 16 (Pair: 32) A rows, of both parts with Lo, of the k-block at `off`.
template <bool Pair, bool Lo>
inline void amx_prefetch_a(const std::uint16_t* a, const std::uint16_t* alo, std::int64_t a_stride,
                           std::int64_t next, std::int64_t off) noexcept {
  const char* pa = reinterpret_cast<const char*>(a + off);
  const char* pl = Lo ? reinterpret_cast<const char*>(alo + off) : nullptr;
  for (int r = 0; r < (Pair ? 32 : 16); ++r) {
    const std::int64_t at = r < 16 ? r * a_stride : (r - 16) * a_stride + next * 2;
    _mm_prefetch(pa + at, _MM_HINT_T0);
    if constexpr (Lo) _mm_prefetch(pl + at, _MM_HINT_T0);
  }
}

// K-blocks [0, nb) for one token-block pair (Pair) or one token block: C starts from zero
// (first) or from `csave` (row stride 32 fp32: sub-block v at + 16 v, the second token block at
// + 512) and ends in `cdst` (same shape; may equal csave). A rows are `a_stride` bytes apart;
// with Lo, the lo parts (`alo`) go into the same C tiles right after the hi parts, against the
// same B tiles: one set of C tiles, stores and epilogue for both passes.
template <bool Pair, bool Lo>
LOWBIT_TARGET_AMX void amx_bf16_chunk(const std::uint16_t* a, const std::uint16_t* alo, std::int64_t a_stride,
                                      const std::uint16_t* b, std::int64_t nb, bool first, const float* csave,
                                      float* cdst) {
  constexpr std::int64_t cstride = 128;
  constexpr std::int64_t blk = amx_float_tile_elems;
  if (first) {
    _tile_zero(0);
    _tile_zero(1);
    if constexpr (Pair) {
      _tile_zero(2);
      _tile_zero(3);
    }
  } else {
    _tile_loadd(0, csave, cstride);
    _tile_loadd(1, csave + 16, cstride);
    if constexpr (Pair) {
      _tile_loadd(2, csave + blk, cstride);
      _tile_loadd(3, csave + blk + 16, cstride);
    }
  }
  const std::int64_t next = 16 * (a_stride / 2);  // the second token block's rows
  for (std::int64_t kb = 0; kb < nb; ++kb) {
    // The A rows of the next k-block into L1 now: A comes from L2 (the token rows of a whole
    // call), and a tile load may not start before the TDPBF16PS reading its register are done,
    // so its L2 latency would stall every k-block.
    if (kb + 1 < nb) amx_prefetch_a<Pair, Lo>(a, alo, a_stride, next, (kb + 1) * amx_float_k_block);
    _tile_loadd(4, a + kb * amx_float_k_block, a_stride);
    _tile_loadd(6, b + (2 * kb) * blk, 64);
    _tile_loadd(7, b + (2 * kb + 1) * blk, 64);
    _tile_dpbf16ps(0, 4, 6);
    _tile_dpbf16ps(1, 4, 7);
    if constexpr (Pair) {
      _tile_loadd(5, a + next + kb * amx_float_k_block, a_stride);
      _tile_dpbf16ps(2, 5, 6);
      _tile_dpbf16ps(3, 5, 7);
    }
    if constexpr (Lo) {
      _tile_loadd(4, alo + kb * amx_float_k_block, a_stride);
      _tile_dpbf16ps(0, 4, 6);
      _tile_dpbf16ps(1, 4, 7);
      if constexpr (Pair) {
        _tile_loadd(5, alo + next + kb * amx_float_k_block, a_stride);
        _tile_dpbf16ps(2, 5, 6);
        _tile_dpbf16ps(3, 5, 7);
      }
    } else {
      (void)alo;
    }
  }
  _tile_stored(0, cdst, cstride);
  _tile_stored(1, cdst + 16, cstride);
  if constexpr (Pair) {
    _tile_stored(2, cdst + blk, cstride);
    _tile_stored(3, cdst + blk + 16, cstride);
  }
}

LOWBIT_TARGET_AMX inline void amx_release_tiles() { _tile_release(); }

// The tiles on the CPU (its only AMX instructions: the configuration, the chunk, the release).
// amx_float_tiles_t takes the tiles as this policy (begin, chunk, end), so that a test can put
// a scalar model of TDPBF16PS in their place and run the staging, the bf16 parts and the
// epilogue on CPUs without AMX (tests/test_gemm_amx_bf16.cpp).
struct amx_bf16_hardware {
  static void begin() { amx_configure_16x64(); }
  static void end() { amx_release_tiles(); }
  static void chunk(bool pair, const std::uint16_t* a, const std::uint16_t* alo, std::int64_t a_stride,
                    const std::uint16_t* b, std::int64_t nb, bool first, const float* csave, float* cdst,
                    std::int64_t /*rows: the tiles run all 16 or 32*/) {
    if (alo != nullptr) {
      if (pair)
        amx_bf16_chunk<true, true>(a, alo, a_stride, b, nb, first, csave, cdst);
      else
        amx_bf16_chunk<false, true>(a, alo, a_stride, b, nb, first, csave, cdst);
    } else if (pair) {
      amx_bf16_chunk<true, false>(a, alo, a_stride, b, nb, first, csave, cdst);
    } else {
      amx_bf16_chunk<false, false>(a, alo, a_stride, b, nb, first, csave, cdst);
    }
  }
};

// The same tiles on AVX512-BF16 (VDPBF16PS: per fp32 lane, two bf16 products added to the
// lane in fp32), for the AVX-512 float records' many-token calls on CPUs where VDPBF16PS runs
// at twice the fp32 FMA's multiply rate (float_uses_bf16_tiles). A staged B tile row (two
// k-rows of 16 columns, paired per column) is exactly one VDPBF16PS operand, and an A row's
// k pair one 32-bit broadcast, so the chunk is a register block over those: T tokens x 32
// columns of fp32 accumulators (2T zmm), both B rows loaded once per k pair and shared by the
// T tokens. With Lo the lo part's products follow the hi part's per k-block, as on the tiles.
template <int T, bool Lo>
LOWBIT_TARGET_AVX512_BF16 void avx512bf16_tile_rows(const std::uint16_t* a, const std::uint16_t* alo,
                                                    std::int64_t as, const std::uint16_t* b, std::int64_t nb,
                                                    bool first, const float* csave, float* cdst) {
  constexpr std::int64_t blk = amx_float_tile_elems;
  __m512 c0[T], c1[T];
#pragma GCC unroll 16
  for (int t = 0; t < T; ++t) {
    c0[t] = first ? _mm512_setzero_ps() : _mm512_loadu_ps(csave + t * 32);
    c1[t] = first ? _mm512_setzero_ps() : _mm512_loadu_ps(csave + t * 32 + 16);
  }
  constexpr int parts = Lo ? 2 : 1;
  for (std::int64_t kb = 0; kb < nb; ++kb) {
    const std::uint16_t* b0 = b + (2 * kb) * blk;
    const std::uint16_t* b1 = b0 + blk;
    const std::uint16_t* ak[2] = {a + kb * amx_float_k_block, Lo ? alo + kb * amx_float_k_block : nullptr};
    for (int r = 0; r < 16; ++r) {
      const __m512i w0 = _mm512_load_si512(b0 + r * 32), w1 = _mm512_load_si512(b1 + r * 32);
#pragma GCC unroll 2
      for (int p = 0; p < parts; ++p)
#pragma GCC unroll 16
        for (int t = 0; t < T; ++t) {
          std::int32_t pair;
          std::memcpy(&pair, ak[p] + t * as + 2 * r, 4);
          const __m512i x = _mm512_set1_epi32(pair);
          c0[t] = avx512bf16_dot(c0[t], w0, x);
          c1[t] = avx512bf16_dot(c1[t], w1, x);
        }
    }
  }
#pragma GCC unroll 16
  for (int t = 0; t < T; ++t) {
    _mm512_storeu_ps(cdst + t * 32, c0[t]);
    _mm512_storeu_ps(cdst + t * 32 + 16, c1[t]);
  }
}

struct avx512bf16_tiles {
  static void begin() {}
  static void end() {}
  // The chunk's token rows that hold tokens (`rows` of its 16 or 32: the padding rows of the
  // last A tile cost the TMUL unit nothing, but here they would be whole register blocks: a
  // 5-token call ran at 0.71-0.83 x the fp32 tile with them) as register blocks of 8 and one
  // of the rest. C rows are 32 fp32 apart, the second token block's right after the first's.
  static void chunk(bool pair, const std::uint16_t* a, const std::uint16_t* alo, std::int64_t a_stride,
                    const std::uint16_t* b, std::int64_t nb, bool first, const float* csave, float* cdst,
                    std::int64_t rows) {
    const std::int64_t as = a_stride / 2;
    const int n = static_cast<int>(std::min<std::int64_t>(rows, pair ? 32 : 16));
    auto block = [&](auto t_tag, int t0) {
      constexpr int T = decltype(t_tag)::value;
      const float* cs = first ? nullptr : csave + t0 * 32;
      if (alo != nullptr)
        avx512bf16_tile_rows<T, true>(a + t0 * as, alo + t0 * as, as, b, nb, first, cs, cdst + t0 * 32);
      else
        avx512bf16_tile_rows<T, false>(a + t0 * as, nullptr, as, b, nb, first, cs, cdst + t0 * 32);
    };
    int t0 = 0;
    for (; t0 + 8 <= n; t0 += 8) block(std::integral_constant<int, 8>{}, t0);
    switch (n - t0) {
      case 0: break;
      case 1: block(std::integral_constant<int, 1>{}, t0); break;
      case 2: block(std::integral_constant<int, 2>{}, t0); break;
      case 3: block(std::integral_constant<int, 3>{}, t0); break;
      case 4: block(std::integral_constant<int, 4>{}, t0); break;
      case 5: block(std::integral_constant<int, 5>{}, t0); break;
      case 6: block(std::integral_constant<int, 6>{}, t0); break;
      default: block(std::integral_constant<int, 7>{}, t0); break;
    }
  }
};

// ---- the kernel ------------------------------------------------------------------------------

// Slice `part` of `parts` of the 64-byte lines in [p, p + bytes), into L1: the next chunk's codes,
// fetched while this chunk's tiles run (see amx_float_tiles_t).
inline void amx_float_prefetch_slice(const std::uint8_t* p, std::int64_t bytes, std::int64_t part,
                                     std::int64_t parts) noexcept {
  const std::int64_t lines = (bytes + 63) / 64;
  for (std::int64_t l = part * lines / parts, e = (part + 1) * lines / parts; l < e; ++l)
    _mm_prefetch(reinterpret_cast<const char*>(p + 64 * l), _MM_HINT_T0);
}

// Scratch of one thread (kept between calls: the sizes depend only on K's groups and tokens).
struct amx_float_scratch {
  aligned_buffer<std::uint16_t> b;  // B tiles of a chunk: [k-block][v] x 16 x 32 bf16
  aligned_buffer<float> c;          // C tiles of a group longer than a chunk: [token][32]
  aligned_buffer<float> cg;         // the last two groups' C: [2][token][32]
  aligned_buffer<float> acc;        // [token][32]: sum over groups of C * scale (+ group terms)
};

// One group's epilogue for tokens [i0, i1) of the super-block at s0: acc += C * scale, and
// for zero points / offsets the group's term times sum_group(x) (in the units of x': an exact
// power-of-two product), as the few-token path computes them.
template <float_code C>
LOWBIT_TARGET_AVX512 inline void amx_float_epilogue(const float_workspace& ws, const float* cslot, const float* scales,
                                                    const float* zeros, std::int64_t g, std::int64_t s0,
                                                    std::int64_t i0, std::int64_t i1, float* acc) {
  constexpr std::int64_t NB = float_block_cols;
  const __m512 s0v = _mm512_loadu_ps(scales + g * NB), s1v = _mm512_loadu_ps(scales + g * NB + 16);
  __m512 t0 = _mm512_setzero_ps(), t1 = _mm512_setzero_ps();  // the group term's column factor
  if constexpr (C == float_code::uint4_with_zero) {           // - scale * zero * sum_group(x)
    t0 = _mm512_mul_ps(s0v, _mm512_loadu_ps(zeros + g * NB));
    t1 = _mm512_mul_ps(s1v, _mm512_loadu_ps(zeros + g * NB + 16));
  } else if constexpr (C == float_code::uint4_with_offset) {  // + offset * sum_group(x)
    t0 = _mm512_loadu_ps(zeros + g * NB);
    t1 = _mm512_loadu_ps(zeros + g * NB + 16);
  } else {
    (void)zeros, (void)s0;
  }
  for (std::int64_t i = i0; i < i1; ++i) {
    __m512 a0 = _mm512_loadu_ps(acc + i * NB), a1 = _mm512_loadu_ps(acc + i * NB + 16);
    a0 = _mm512_fmadd_ps(_mm512_loadu_ps(cslot + i * NB), s0v, a0);
    a1 = _mm512_fmadd_ps(_mm512_loadu_ps(cslot + i * NB + 16), s1v, a1);
    if constexpr (float_code_has_group_term(C)) {
      const std::size_t t = static_cast<std::size_t>(s0 + i);
      const __m512 gs = _mm512_set1_ps(ws.group_sums[t * static_cast<std::size_t>(ws.groups) + static_cast<std::size_t>(g)] *
                                       ws.bf16_scale[t]);
      if constexpr (C == float_code::uint4_with_zero) {
        a0 = _mm512_fnmadd_ps(t0, gs, a0);
        a1 = _mm512_fnmadd_ps(t1, gs, a1);
      } else {
        a0 = _mm512_fmadd_ps(t0, gs, a0);
        a1 = _mm512_fmadd_ps(t1, gs, a1);
      }
    }
    _mm512_storeu_ps(acc + i * NB, a0);
    _mm512_storeu_ps(acc + i * NB + 16, a1);
  }
}

// Per 32-column block and super-block of tokens: per group, per chunk of its k-blocks, stage
// B, then per token-block pair issue the tiles (C to the group's slot) and, in the first
// chunk, run the previous group's epilogue for the same tokens. The TMUL unit works through
// the tile instructions while the core runs that vector epilogue, and the C rows it reads
// were stored a whole group earlier; two C slots alternate between groups.
template <class Tiles, float_code C>
LOWBIT_TARGET_AVX512 void amx_float_tiles_t(const float_packed& w, const float_workspace& ws, RowMatrixRef y,
                                            std::int64_t n_begin, std::int64_t n_end) {
  constexpr std::int64_t NB = float_block_cols;
  const std::int64_t tokens = ws.tokens, k_in = w.cols, gsz = w.group_size, groups = w.groups;
  const std::int64_t bs = ws.bf16_stride, plane = ws.bf16_rows * bs;
  const std::int64_t sup = std::min(amx_float_super_tokens, round_up(tokens, 16));
  thread_local amx_float_scratch scr;
  std::uint16_t* bt = amx_scratch_grow(scr.b, amx_float_chunk_blocks * 2 * amx_float_tile_elems);
  float* csave_all = amx_scratch_grow(scr.c, sup * NB);
  float* cg = amx_scratch_grow(scr.cg, 2 * sup * NB);
  float* acc = amx_scratch_grow(scr.acc, sup * NB);
  alignas(64) std::uint16_t table_bits[32];
  amx_float_table(C, table_bits);
  const __m512i table = _mm512_load_si512(table_bits);
  Tiles::begin();
  const std::int64_t b_end = (n_end + NB - 1) / NB;
  for (std::int64_t blk = n_begin / NB; blk < b_end; ++blk) {
    const std::uint8_t* codes = w.block_codes(blk);
    const float* scales = w.block_scales(blk);
    const float* zeros = w.block_zeros(blk);
    const std::int64_t n0 = blk * NB;
    for (std::int64_t s0 = 0; s0 < tokens; s0 += sup) {
      const std::int64_t cnt = std::min(sup, tokens - s0);
      const std::int64_t tblocks = (cnt + 15) / 16;
      bool two = false;  // the second pass, where some token of the super-block has a lo part
      for (std::int64_t t = s0; t < s0 + cnt; ++t) two = two || ws.bf16_two[static_cast<std::size_t>(t)] != 0;
      std::fill(acc, acc + cnt * NB, 0.0f);
      for (std::int64_t g = 0; g < groups; ++g) {
        float* slot = cg + (g % 2) * sup * NB;
        const float* prev = cg + ((g + 1) % 2) * sup * NB;
        const std::int64_t k0 = g * gsz, k1 = std::min(k_in, k0 + gsz);
        const std::int64_t nkb = (k1 - k0 + amx_float_k_block - 1) / amx_float_k_block;
        for (std::int64_t c0 = 0; c0 < nkb; c0 += amx_float_chunk_blocks) {
          const std::int64_t nb = std::min(amx_float_chunk_blocks, nkb - c0);
          const bool first = c0 == 0, last = c0 + nb == nkb;
          const std::int64_t kc0 = k0 + c0 * amx_float_k_block;
          const std::int64_t kc1 = std::min(k1, kc0 + nb * amx_float_k_block);
          amx_float_stage<C>(codes, kc0, kc1, nb, table, bt);
          // The codes after this chunk's are the next chunk's (or the next block's: blocks are
          // contiguous; a super-block's restart reads its block again from cache). Staged cold,
          // they stalled the staging on DRAM. As many bytes as this chunk, clamped to the codes.
          const std::uint8_t* pf = codes + kc1 * w.krow_bytes;
          const std::int64_t pf_bytes = std::min<std::int64_t>(
              (kc1 - kc0) * w.krow_bytes, static_cast<std::int64_t>(w.codes.size()) - (pf - w.codes.data()));
          const std::int64_t pairs = (tblocks + 1) / 2;
          const std::uint16_t* xa = ws.x_bf16.data() + s0 * bs + kc0;
          for (std::int64_t tb = 0; tb < tblocks; tb += 2) {
            amx_float_prefetch_slice(pf, pf_bytes, tb / 2, pairs);
            float* csave = csave_all + tb * 16 * NB;
            float* cdst = last ? slot + tb * 16 * NB : csave;
            const std::uint16_t* a = xa + tb * 16 * bs;
            // The last argument: how many of the 16 (32) rows hold tokens; C rows past them
            // may be left unwritten (the epilogue reads tokens only).
            Tiles::chunk(tb + 1 < tblocks, a, two ? a + plane : nullptr, bs * 2, bt, nb, first, csave, cdst,
                         cnt - tb * 16);
            if (first && g > 0)
              amx_float_epilogue<C>(ws, prev, scales, zeros, g - 1, s0, tb * 16, std::min(cnt, tb * 16 + 32), acc);
          }
        }
      }
      amx_float_epilogue<C>(ws, cg + ((groups - 1) % 2) * sup * NB, scales, zeros, groups - 1, s0, 0, cnt, acc);
      // y = acc * 2^-e(t) * token scale (A8 s_a, 1 otherwise), over the range's columns.
      const std::int64_t j0 = std::max<std::int64_t>(n_begin - n0, 0), j1 = std::min<std::int64_t>(n_end - n0, NB);
      for (std::int64_t i = 0; i < cnt; ++i) {
        const std::int64_t t = s0 + i;
        const __m512 un = _mm512_set1_ps(ws.bf16_unscale[static_cast<std::size_t>(t)]);
        const __m512 ts = _mm512_set1_ps(ws.token_scales[static_cast<std::size_t>(t)]);
        float* yrow = y.data() + t * y.outerStride() + n0;
        for (int v = 0; v < 2; ++v) {
          const std::int64_t lo = std::max<std::int64_t>(j0, 16 * v), hi = std::min<std::int64_t>(j1, 16 * v + 16);
          if (lo >= hi) continue;
          const __mmask16 m = static_cast<__mmask16>(((1u << (hi - lo)) - 1u) << (lo - 16 * v));
          const __m512 out = _mm512_mul_ps(_mm512_mul_ps(_mm512_loadu_ps(acc + i * NB + 16 * v), un), ts);
          _mm512_mask_storeu_ps(yrow + 16 * v, m, out);
        }
      }
    }
  }
  Tiles::end();
}

template <class Tiles>
void amx_float_tiles(const float_packed& w, const float_workspace& ws, RowMatrixRef y, std::int64_t n_begin,
                     std::int64_t n_end) {
  switch (w.code) {
    case float_code::e4m3: return amx_float_tiles_t<Tiles, float_code::e4m3>(w, ws, y, n_begin, n_end);
    case float_code::e2m1: return amx_float_tiles_t<Tiles, float_code::e2m1>(w, ws, y, n_begin, n_end);
    case float_code::int4_signed: return amx_float_tiles_t<Tiles, float_code::int4_signed>(w, ws, y, n_begin, n_end);
    case float_code::uint4_with_zero:
      return amx_float_tiles_t<Tiles, float_code::uint4_with_zero>(w, ws, y, n_begin, n_end);
    case float_code::int8_signed: return amx_float_tiles_t<Tiles, float_code::int8_signed>(w, ws, y, n_begin, n_end);
    case float_code::uint4_with_offset:
      return amx_float_tiles_t<Tiles, float_code::uint4_with_offset>(w, ws, y, n_begin, n_end);
  }
}

// The entry point of the AMX-BF16 records (kernels/registry.hpp). Calls of at most
// amx_float_min_tokens tokens (no bf16 parts in the workspace) run the AVX-512 float code on
// the same weights and workspace: a call path of this record, not another record.
template <class Deferred = void>  // see "Compile time" in docs/design.md
inline void run_float_amx(const float_packed& w, const float_workspace& ws, RowMatrixRef y, std::int64_t n_begin,
                          std::int64_t n_end) {
  if (ws.x_bf16.empty()) {
    run_float_avx512<Deferred>(w, ws, y, n_begin, n_end);
    return;
  }
  amx_float_tiles<amx_bf16_hardware>(w, ws, y, n_begin, n_end);
}

// The entry point of the AVX-512 float records (kernels/registry.hpp): calls whose workspace
// holds the bf16 parts (float_uses_avx512bf16_tiles) run the bf16 tiles on VDPBF16PS, the
// others the AVX-512 float code. Call paths of one record, as for the AMX-BF16 records.
template <class Deferred = void>  // see "Compile time" in docs/design.md
inline void run_float_avx512_tier(const float_packed& w, const float_workspace& ws, RowMatrixRef y,
                                  std::int64_t n_begin, std::int64_t n_end) {
  if (ws.x_bf16.empty()) {
    run_float_avx512<Deferred>(w, ws, y, n_begin, n_end);
    return;
  }
  amx_float_tiles<avx512bf16_tiles>(w, ws, y, n_begin, n_end);
}

}  // namespace lowbit::detail

#pragma GCC diagnostic pop

#endif  // LOWBIT_HAVE_X86_SIMD

namespace lowbit::detail {

// The workspace of a call on weights whose many-token calls may run the bf16 tiles (the
// AMX-BF16 records; the AVX-512 records on AVX512-BF16 CPUs): the AVX-512 tier's (its
// few-token paths read it), plus the bf16 parts when the tiles will run.
inline float_workspace make_float_bf16_tiles_workspace(const float_packed& w, std::int64_t tokens, std::int64_t k,
                                                       activation_dtype input = activation_dtype::f32) {
  float_workspace ws = make_float_workspace(w, tokens, k);
  if (!float_uses_bf16_tiles(w, tokens, input)) return ws;
  ws.bf16_rows = (tokens + 15) / 16 * 16;  // whole A tiles; prepare zeroes the padding rows
  // K rounded up to the k-block, plus one k-block: a group's last A tile may read up to 31
  // values past K (met by zero B rows), and the extra 64 bytes keep the 16 rows of an A tile
  // off one L1 set when K is a multiple of 2048.
  ws.bf16_stride = (w.cols + 31) / 32 * 32 + 32;
  // Not initialised here: prepare_float_bf16_tiles_tokens writes every row of its tokens, and the
  // call that prepares the last token the padding rows, on the pool.
  const bool one_pass =
      scheme_quantizes_activations(w.scheme) || input == activation_dtype::bf16 || w.bf16_round_activations;
  ws.bf16_planes = one_pass ? 1 : 2;
  ws.x_bf16.resize_uninitialized(static_cast<std::size_t>(ws.bf16_planes * ws.bf16_rows * ws.bf16_stride));
  ws.bf16_scale.assign(static_cast<std::size_t>(tokens), 1.0f);
  ws.bf16_unscale.assign(static_cast<std::size_t>(tokens), 1.0f);
  ws.bf16_two.assign(static_cast<std::size_t>(tokens), 0);
  // The tiles read the bf16 parts, the codes and the group sums, never x: weight-only calls
  // go from the caller's rows to the parts, A8 calls from the codes (prepare_float_bf16_tiles_tokens).
  // Only an A8 code with a group term would still sum the decoded x (no scheme has one).
  if (float_bf16_tiles_read_rows(w, tokens, input) || !float_code_has_group_term(w.code)) ws.x = aligned_buffer<float>{};
  return ws;
}

// The padding rows of the last A tile, zero in every plane; by the call that prepares the
// last token.
inline void amx_float_zero_padding(float_workspace& ws, std::int64_t t1) {
  if (t1 != ws.tokens) return;
  for (std::int64_t part = 0; part < ws.bf16_planes; ++part) {
    std::uint16_t* base = ws.x_bf16.data() + (part * ws.bf16_rows + ws.tokens) * ws.bf16_stride;
    std::fill(base, base + (ws.bf16_rows - ws.tokens) * ws.bf16_stride, std::uint16_t{0});
  }
}

// Tokens [t0, t1) of a call whose tiles read its activations straight (float_bf16_tiles_read_rows):
// `x` rows of `input` (fp32, fp16 or bf16), `stride` elements apart.
inline void prepare_float_bf16_tiles_rows(const float_packed& w, const void* x, std::int64_t stride, activation_dtype input,
                                   float_workspace& ws, std::int64_t t0, std::int64_t t1) {
#if LOWBIT_HAVE_X86_SIMD
  const bool round = w.bf16_round_activations;
  switch (input) {
    case activation_dtype::f32: amx_float_split_rows<activation_dtype::f32>(w, x, stride, ws, t0, t1, round); break;
    case activation_dtype::f16: amx_float_split_rows<activation_dtype::f16>(w, x, stride, ws, t0, t1, round); break;
    case activation_dtype::bf16: amx_float_split_rows<activation_dtype::bf16>(w, x, stride, ws, t0, t1, round); break;
  }
  amx_float_zero_padding(ws, t1);
#else
  (void)w, (void)x, (void)stride, (void)input, (void)ws, (void)t0, (void)t1;
  fail("gemm: the bf16 tiles are x86 only");
#endif
}

// The prepare of those weights' fp32 calls: calls without the bf16 parts as the AVX-512 tier;
// tile calls of weight-only schemes read x straight into the bf16 parts; A8 calls quantize x
// to E4M3 codes (prepare_float_tokens, the one rule) and move the codes into the hi part.
inline void prepare_float_bf16_tiles_tokens(const float_packed& w, ConstRowMatrixRef x, float_workspace& ws, std::int64_t t0,
                                     std::int64_t t1) {
  if (ws.x_bf16.empty()) {
    prepare_float_tokens(w, x, ws, t0, t1);
    return;
  }
  if (!scheme_quantizes_activations(w.scheme)) {
    prepare_float_bf16_tiles_rows(w, x.data(), x.outerStride(), activation_dtype::f32, ws, t0, t1);
    return;
  }
  prepare_float_tokens(w, x, ws, t0, t1);
#if LOWBIT_HAVE_X86_SIMD
  amx_float_e4m3_rows(ws, t0, t1);
  amx_float_zero_padding(ws, t1);
#else
  fail("gemm: the bf16 tiles are x86 only");
#endif
}

}  // namespace lowbit::detail
