#pragma once
// AMX-INT8 sub-tier of the integer-activation family (x86-64 with AMX-TILE + AMX-INT8, on
// Linux after arch_prctl granted tile data: dispatch/cpu_features.hpp).
//
// Operands: TDPBSSD multiplies SIGNED bytes of A (M x K) by SIGNED bytes of B (K x N). The
// activations (int8 codes) are A, one 16-token x 64-input tile loaded straight from the
// workspace rows; the weights are B. They are stored biased and unsigned for VPDPBUSD (int8:
// w + 128, int4: w + 8), and staging into L1 takes the bias off again (int8: XOR 0x80, int4:
// minus 8), so the tiles sum a * w itself and the epilogue has no correction B * sum(a) to
// subtract: modulo 2^32 the int32 group sums are the vector tiers' (and the scalar
// reference's) bits. TDPBSSD accumulates in int32 without saturation, wrapping.
//
// Layout: the avx512 tier's (32-column tiles of two 16-column sub-blocks) with every group
// padded to 64 inputs (pack/int_packing.hpp), so one K block never spans two groups:
//   int8: the B tile of sub-block v, K block b is 16 rows at w + b * 2048 + v * 64, stride 128;
//   int4: the 8 steps of a K block unpack (AND / SHIFT+AND) to two 1 KiB B tiles;
// both are staged per chunk into L1 (int8 copied), since tile loads of 16 lines straight from
// L3 ran the int8 kernel below the VNNI one.
// Tiles: C 2 token blocks x 2 sub-blocks (tmm0-3), A (tmm4-5), B (tmm6-7): 32 tokens x 32
// columns per 4 TDPBSSD. Token rows past m are zero in the workspace (it has whole 16-row
// blocks, and prepare zeroes the rows past m: kernels/int_family.hpp), so every tile is
// 16 x 64 bytes and one configuration serves the whole call.
// Each group's C tiles are stored as int32 sums of a * w; afterwards, per token and column,
// the groups' contributions are added in group order by the same
// FMA as the other tiers (or, for M2, the same shift-and-add in int32), so the results are
// bit-identical to the scalar reference. Groups longer than `amx_chunk_blocks` K blocks carry
// their C tiles through scratch.
#include <cstdint>

#include "lowbit/detail/target.hpp"

namespace lowbit::detail {

constexpr std::int64_t amx_token_rows = 16;  // rows of an A / C tile
constexpr std::int64_t amx_min_tokens = 4;   // at most this many tokens run on VPDPBUSD instead

}  // namespace lowbit::detail

#if LOWBIT_HAVE_X86_SIMD
#include <immintrin.h>

#include <algorithm>
#include <cstring>

#include "lowbit/detail/aligned_buffer.hpp"
#include "lowbit/kernels/int_workspace.hpp"
#include "lowbit/kernels/x86/avx512_int.hpp"
#include "lowbit/pack/int_packing.hpp"

#pragma GCC diagnostic push
LOWBIT_IGNORE_GCC_MAYBE_UNINITIALIZED
#pragma GCC diagnostic ignored "-Wuninitialized"

namespace lowbit::detail {

constexpr std::int64_t amx_chunk_blocks = 8;  // K blocks (of 64 inputs) unpacked / visited at once

// The 64-byte tile configuration (palette 1): every tile 16 rows x 64 bytes.
struct alignas(64) amx_tile_config {
  std::uint8_t palette = 1;
  std::uint8_t start_row = 0;
  std::uint8_t reserved[14] = {};
  std::uint16_t colsb[16] = {};
  std::uint8_t rows[16] = {};
};

LOWBIT_TARGET_AMX inline void amx_configure_16x64() {
  amx_tile_config cfg;
  for (int i = 0; i < 8; ++i) {
    cfg.colsb[i] = 64;
    cfg.rows[i] = 16;
  }
  // Not _tile_loadconfig: GCC 12's macro tells the compiler it reads only the first 8 bytes,
  // so the stores of rows / colsb were dropped as dead, ldtilecfg loaded an empty
  // configuration and the first tile instruction raised SIGILL. The asm operand here is the
  // whole 64-byte structure.
  __asm__ volatile("ldtilecfg %0" : : "m"(cfg));
}

// Scratch of one thread, kept between calls (its sizes depend only on the groups and the
// tokens). It was made and zero-filled by every run() call before: with g128 that is 512 KiB
// per call and column chunk (4 chunks a thread), which a 16-thread call paid on every thread.
struct amx_int_scratch {
  aligned_buffer<std::uint8_t> b;      // B tiles of a chunk in L1: [block][sub-block] x 1 KiB
  aligned_buffer<std::int32_t> c;      // C tiles of a long group between chunks: tokens x 32
  aligned_buffer<std::int32_t> acc;    // per group, token and column: the raw int32 group sum
};

// A scratch buffer of at least n elements, grown but never cleared: the kernels read only
// what the same call wrote there (B staged before its tiles load it, C saved before it is
// reloaded, every group's sums stored before the epilogue reads them).
template <class T>
T* amx_scratch_grow(aligned_buffer<T>& buf, std::int64_t n) {
  if (buf.size() < static_cast<std::size_t>(n)) buf.resize_uninitialized(static_cast<std::size_t>(n));
  return buf.data();
}

// K blocks [0, nb) of a group into L1 as contiguous B tiles of signed weights. int4: the 8
// steps of a block unpack (AND / SHIFT+AND, minus the bias 8) to two tiles; int8: the 16 steps
// of a block are copied with the bias 128 flipped off, so the tile loads never wait on 16
// scattered lines from L3 (the vector loads here prefetch well).
template <bool Int4>
LOWBIT_TARGET_AMX inline void amx_stage_b(const std::uint8_t* w, std::int64_t nb, std::uint8_t* out) {
  const __m512i low4 = _mm512_set1_epi8(0x0F), bias4 = _mm512_set1_epi8(8), bias8 = _mm512_set1_epi8(-128);
  for (std::int64_t b = 0; b < nb; ++b) {
    if constexpr (Int4) {
      for (int s = 0; s < 8; ++s)
        for (int v = 0; v < 2; ++v) {
          const __m512i raw = _mm512_load_si512(reinterpret_cast<const void*>(w + (b * 8 + s) * 128 + v * 64));
          std::uint8_t* tile = out + (b * 2 + v) * 1024;
          _mm512_store_si512(reinterpret_cast<void*>(tile + (2 * s) * 64),
                             _mm512_sub_epi8(_mm512_and_si512(raw, low4), bias4));
          _mm512_store_si512(reinterpret_cast<void*>(tile + (2 * s + 1) * 64),
                             _mm512_sub_epi8(_mm512_and_si512(_mm512_srli_epi16(raw, 4), low4), bias4));
        }
    } else {
      for (int s = 0; s < 16; ++s)
        for (int v = 0; v < 2; ++v)
          _mm512_store_si512(reinterpret_cast<void*>(out + (b * 2 + v) * 1024 + s * 64),
                             _mm512_xor_si512(
                                 _mm512_load_si512(reinterpret_cast<const void*>(w + (b * 16 + s) * 128 + v * 64)),
                                 bias8));
    }
  }
}

// K blocks [0, nb) of a chunk for one token-block pair (Pair) or one token block, starting
// from zero (first) or from the C tiles saved in `csave` (16 x 32 int32 per token block); the
// C tiles end in `cdst` (row stride 128 bytes: 32 int32 per token, sub-block v at + 16 v).
template <bool Pair>
LOWBIT_TARGET_AMX void amx_chunk(const std::int8_t* a, std::int64_t a_stride, const std::uint8_t* bsrc,
                                 std::int64_t nb, bool first, const std::int32_t* csave, std::int32_t* cdst) {
  constexpr std::int64_t cstride = 128;
  constexpr std::int64_t blk = amx_token_rows * 32;  // int32 per token block
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
  const std::int8_t* a1 = a + amx_token_rows * a_stride;
  for (std::int64_t b = 0; b < nb; ++b) {
    _tile_loadd(4, a + b * 64, a_stride);
    _tile_loadd(6, bsrc + (b * 2) * 1024, 64);
    _tile_loadd(7, bsrc + (b * 2 + 1) * 1024, 64);
    _tile_dpbssd(0, 4, 6);
    _tile_dpbssd(1, 4, 7);
    if constexpr (Pair) {
      _tile_loadd(5, a1 + b * 64, a_stride);
      _tile_dpbssd(2, 5, 6);
      _tile_dpbssd(3, 5, 7);
    }
  }
  _tile_stored(0, cdst, cstride);
  _tile_stored(1, cdst + 16, cstride);
  if constexpr (Pair) {
    _tile_stored(2, cdst + blk, cstride);
    _tile_stored(3, cdst + blk + 16, cstride);
  }
}

// Tokens are taken in super-blocks of amx_super_tokens so the raw group sums of one column
// tile (groups x tokens x 32 int32) stay in L2. Per super-block: phase 1 runs only tile code
// (stage B, TDPBSSD, store C) for every group; phase 2 runs the vector epilogue of every
// group in group order. Keeping the two apart avoids switching between AMX and the AVX-512
// epilogue every group, and the int32 sums phase 2 reads were stored long before.
constexpr std::int64_t amx_super_tokens = 128;

template <bool Int4, bool M2>
LOWBIT_TARGET_AMX void amx_int_tiles(const int_packed& p, const int_workspace& ws, float* y, std::int64_t ldy,
                                     std::int64_t tile_begin, std::int64_t tile_end) {
  constexpr std::int64_t NT = 32;
  const std::int64_t lane_bytes = NT * 4;
  const std::int64_t group_bytes = (p.group_padded / p.kstep + 1) * lane_bytes;  // every group but the last
  const std::int64_t sup = std::min(amx_super_tokens, round_up(ws.m, amx_token_rows));
  thread_local amx_int_scratch scr;
  std::uint8_t* const bt = amx_scratch_grow(scr.b, amx_chunk_blocks * 2 * 1024);
  std::int32_t* const csave_all = amx_scratch_grow(scr.c, sup * NT);
  std::int32_t* const acc_all = amx_scratch_grow(scr.acc, p.groups * sup * NT);
  amx_configure_16x64();
  for (std::int64_t t = tile_begin; t < tile_end; ++t) {
    const std::uint8_t* tile = p.tile(t);
    const int ncols = static_cast<int>(std::min<std::int64_t>(NT, p.rows - t * NT));
    for (std::int64_t s0 = 0; s0 < ws.m; s0 += sup) {
      const std::int64_t blocks = (std::min(sup, ws.m - s0) + amx_token_rows - 1) / amx_token_rows;
      // Phase 1: tiles only.
      const std::uint8_t* w = tile;
      std::int64_t koff = 0;
      for (std::int64_t g = 0; g < p.groups; ++g) {
        const std::int64_t plen = p.padded_len(g);
        const std::int64_t nkb = plen / 64;
        std::int32_t* accg = acc_all + g * sup * NT;
        for (std::int64_t c0 = 0; c0 < nkb; c0 += amx_chunk_blocks) {
          const std::int64_t nb = std::min(amx_chunk_blocks, nkb - c0);
          const bool first = c0 == 0, last = c0 + nb == nkb;
          amx_stage_b<Int4>(w + c0 * (Int4 ? 8 : 16) * lane_bytes, nb, bt);
          for (std::int64_t b = 0; b < blocks; b += 2) {
            const std::int8_t* a = ws.a.data() + (s0 + b * amx_token_rows) * ws.a_stride + koff + c0 * 64;
            std::int32_t* csave = csave_all + b * amx_token_rows * NT;
            std::int32_t* cdst = last ? accg + b * amx_token_rows * NT : csave;
            if (b + 1 < blocks)
              amx_chunk<true>(a, ws.a_stride, bt, nb, first, csave, cdst);
            else
              amx_chunk<false>(a, ws.a_stride, bt, nb, first, csave, cdst);
          }
        }
        w += (plen / p.kstep + 1) * lane_bytes;
        koff += plen;
      }
      // Phase 2: per token, the groups in order (the arithmetic of every other tier). `w` is
      // now past the last group's parameters: M2's row factors, if any, start there.
      const std::uint8_t* last_params = w - lane_bytes;
      for (std::int64_t i = s0; i < std::min(ws.m, s0 + sup); ++i) {
        const __m512 sa = _mm512_set1_ps(ws.a_scale[static_cast<std::size_t>(i)]);
        float* yrow = y + i * ldy + t * NT;
        for (int v = 0; v < 2; ++v) {
          const int left = ncols - v * 16;
          if (left <= 0) break;
          const std::int32_t* accp = acc_all + (i - s0) * NT + v * 16;
          const std::uint8_t* params = tile + (p.group_padded / p.kstep) * lane_bytes + v * 64;
          auto group_params = [&](std::int64_t g) {
            return g + 1 < p.groups ? params + g * group_bytes : last_params + v * 64;
          };
          __m512 out;
          if constexpr (M2) {
            __m512i tot = _mm512_setzero_si512();
            for (std::int64_t g = 0; g < p.groups; ++g) {
              const __m512i acc = _mm512_load_si512(accp + g * sup * NT);
              tot = _mm512_add_epi32(
                  tot, _mm512_sllv_epi32(acc, _mm512_load_si512(reinterpret_cast<const void*>(group_params(g)))));
            }
            out = _mm512_mul_ps(_mm512_cvtepi32_ps(tot), _mm512_load_ps(reinterpret_cast<const float*>(w + v * 64)));
          } else {
            __m512 tot = _mm512_setzero_ps();
            for (std::int64_t g = 0; g < p.groups; ++g) {
              const __m512i acc = _mm512_load_si512(accp + g * sup * NT);
              tot = _mm512_fmadd_ps(_mm512_cvtepi32_ps(acc), _mm512_load_ps(reinterpret_cast<const float*>(group_params(g))),
                                    tot);
            }
            out = tot;
          }
          out = _mm512_mul_ps(out, sa);
          const __mmask16 mask = left >= 16 ? __mmask16(0xFFFF) : __mmask16((1u << left) - 1u);
          _mm512_mask_storeu_ps(yrow + v * 16, mask, out);
        }
      }
    }
  }
  _tile_release();  // back to the init state: no tile data in this thread's context switches
}

// The entry point of the amx sub-tier, one instantiation per scheme (kernels/registry.hpp).
// A handful of tokens would fill 1/16 of each tile: those calls run VPDPBUSD, which reads the
// same layout (a call path of this kernel, not another layout).
template <gemm_scheme S>
inline void run_int_amx(const int_packed& p, const int_workspace& ws, float* y, std::int64_t ldy,
                        std::int64_t tile_begin, std::int64_t tile_end) {
  if (ws.m <= amx_min_tokens)
    run_int_avx512vnni<S>(p, ws, y, ldy, tile_begin, tile_end);
  else
    amx_int_tiles<int_scheme_is_int4(S), int_scheme_is_m2(S)>(p, ws, y, ldy, tile_begin, tile_end);
}

}  // namespace lowbit::detail

#pragma GCC diagnostic pop

#endif  // LOWBIT_HAVE_X86_SIMD
