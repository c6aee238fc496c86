#pragma once
// AMX-INT8 sub-tier of the integer-activation family (x86-64 with AMX-TILE + AMX-INT8, on
// Linux after arch_prctl granted tile data: dispatch/cpu_features.hpp).
//
// Operands: TDPBSUD multiplies SIGNED bytes of A (M x K) by UNSIGNED bytes of B (K x N). The
// activations (int8 codes) are A, one 16-token x 64-input tile loaded straight from the
// workspace rows; the weights are B, stored biased and unsigned as for VPDPBUSD (int8: w + 128,
// int4: w + 8), so the same per-(token, group) correction B * sum(a) made in prepare removes
// the bias, and every int32 group sum equals the vector tiers' (and the scalar reference's).
// TDPBSUD accumulates in int32 without saturation, wrapping like VPDPBUSD.
//
// Layout: the avx512 tier's (32-column tiles of two 16-column sub-blocks) with every group
// padded to 64 inputs (pack/int_packing.hpp), so one K block never spans two groups:
//   int8: the B tile of sub-block v, K block b is 16 rows at w + b * 2048 + v * 64, stride 128;
//   int4: the 8 steps of a K block unpack (AND / SHIFT+AND) to two 1 KiB B tiles in L1.
// Tiles: C 2 token blocks x 2 sub-blocks (tmm0-3), A (tmm4-5), B (tmm6-7): 32 tokens x 32
// columns per 4 TDPBSUD. Token rows past m are zero in the workspace (allocated to a multiple
// of 16), so every tile is 16 x 64 bytes and one configuration serves the whole call.
// Per group, in order: the C tiles are stored, the correction subtracted, and the group's
// contribution added to the fp32 total by the same FMA as the other tiers (or, for M2, the
// same shift-and-add in int32), so the results are bit-identical to the scalar reference.
// Groups longer than `amx_chunk_blocks` K blocks carry their C tiles through scratch.
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
#include "lowbit/pack/int_packing.hpp"

#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
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
  _tile_loadconfig(&cfg);
}

// Scratch of one run() call (per thread).
struct amx_int_scratch {
  aligned_buffer<std::uint8_t> b;      // unpacked int4 B tiles: [block][sub-block] x 1 KiB
  aligned_buffer<std::int32_t> c;      // C tiles of a long group between chunks: m_pad x 32
  aligned_buffer<std::int32_t> cout;   // C tiles of one token-block pair for the epilogue
  aligned_buffer<std::int32_t> total;  // per token and column: fp32 bits, or int32 for M2
};

// int4: K blocks [b0, b0 + nb) of a group (8 steps of 128 bytes each) -> two B tiles each.
LOWBIT_TARGET_AMX inline void amx_unpack_int4(const std::uint8_t* w, std::int64_t nb, std::uint8_t* out) {
  const __m512i low4 = _mm512_set1_epi8(0x0F);
  for (std::int64_t b = 0; b < nb; ++b)
    for (int s = 0; s < 8; ++s)
      for (int v = 0; v < 2; ++v) {
        const __m512i raw = _mm512_load_si512(reinterpret_cast<const void*>(w + (b * 8 + s) * 128 + v * 64));
        std::uint8_t* tile = out + (b * 2 + v) * 1024;
        _mm512_store_si512(reinterpret_cast<void*>(tile + (2 * s) * 64), _mm512_and_si512(raw, low4));
        _mm512_store_si512(reinterpret_cast<void*>(tile + (2 * s + 1) * 64),
                           _mm512_and_si512(_mm512_srli_epi16(raw, 4), low4));
      }
}

// The group epilogue for token rows [t0, t0 + rows) whose C tiles are in `c` (per token block
// b and sub-block v, 16 x 16 int32 at c + (b * 2 + v) * 256): subtract the correction, then
// the group's contribution to the totals, exactly as the avx512 tier does.
template <bool M2>
LOWBIT_TARGET_AMX void amx_group_epilogue(const int_packed& p, const int_workspace& ws, const std::int32_t* c,
                                          std::int64_t t0, std::int64_t blocks, std::int64_t g,
                                          const std::uint8_t* params, std::int32_t* total) {
  for (std::int64_t b = 0; b < blocks; ++b)
    for (std::int64_t i = 0; i < amx_token_rows; ++i) {
      const std::int64_t t = t0 + b * amx_token_rows + i;
      if (t >= ws.m) return;
      const __m512i comp = _mm512_set1_epi32(ws.comp[static_cast<std::size_t>(t * p.groups + g)]);
      for (int v = 0; v < 2; ++v) {
        const __m512i acc = _mm512_sub_epi32(_mm512_load_si512(c + (b * 2 + v) * 256 + i * 16), comp);
        std::int32_t* tp = total + t * 32 + v * 16;
        if constexpr (M2) {
          const __m512i sh = _mm512_load_si512(reinterpret_cast<const void*>(params + v * 64));
          _mm512_store_si512(tp, _mm512_add_epi32(_mm512_load_si512(tp), _mm512_sllv_epi32(acc, sh)));
        } else {
          const __m512 sc = _mm512_load_ps(reinterpret_cast<const float*>(params + v * 64));
          _mm512_store_ps(reinterpret_cast<float*>(tp),
                          _mm512_fmadd_ps(_mm512_cvtepi32_ps(acc), sc, _mm512_load_ps(reinterpret_cast<const float*>(tp))));
        }
      }
    }
}

// K blocks [0, nb) of a chunk for one token-block pair (Pair) or one token block, starting
// from zero (first) or from the C tiles saved in `csave`; at the group's end the C tiles go to
// `cout` for the epilogue, otherwise back to `csave`.
template <bool Pair, bool Int4>
LOWBIT_TARGET_AMX void amx_chunk(const std::int8_t* a, std::int64_t a_stride, const std::uint8_t* bsrc,
                                 std::int64_t nb, bool first, std::int32_t* csave, std::int32_t* cdst) {
  constexpr std::int64_t cstride = 64;  // bytes per C row (16 int32)
  if (first) {
    _tile_zero(0);
    _tile_zero(1);
    if constexpr (Pair) {
      _tile_zero(2);
      _tile_zero(3);
    }
  } else {
    _tile_loadd(0, csave, cstride);
    _tile_loadd(1, csave + 256, cstride);
    if constexpr (Pair) {
      _tile_loadd(2, csave + 512, cstride);
      _tile_loadd(3, csave + 768, cstride);
    }
  }
  const std::int8_t* a1 = a + amx_token_rows * a_stride;
  for (std::int64_t b = 0; b < nb; ++b) {
    _tile_loadd(4, a + b * 64, a_stride);
    if constexpr (Int4) {
      _tile_loadd(6, bsrc + (b * 2) * 1024, 64);
      _tile_loadd(7, bsrc + (b * 2 + 1) * 1024, 64);
    } else {
      _tile_loadd(6, bsrc + b * 2048, 128);
      _tile_loadd(7, bsrc + b * 2048 + 64, 128);
    }
    _tile_dpbsud(0, 4, 6);
    _tile_dpbsud(1, 4, 7);
    if constexpr (Pair) {
      _tile_loadd(5, a1 + b * 64, a_stride);
      _tile_dpbsud(2, 5, 6);
      _tile_dpbsud(3, 5, 7);
    }
  }
  _tile_stored(0, cdst, cstride);
  _tile_stored(1, cdst + 256, cstride);
  if constexpr (Pair) {
    _tile_stored(2, cdst + 512, cstride);
    _tile_stored(3, cdst + 768, cstride);
  }
}

template <bool Int4, bool M2>
LOWBIT_TARGET_AMX void amx_int_tiles(const int_packed& p, const int_workspace& ws, float* y, std::int64_t ldy,
                                     std::int64_t tile_begin, std::int64_t tile_end) {
  constexpr std::int64_t NT = 32;
  const std::int64_t lane_bytes = NT * 4;
  const std::int64_t blocks = (ws.m + amx_token_rows - 1) / amx_token_rows;  // token blocks
  const std::int64_t m_pad = blocks * amx_token_rows;
  amx_int_scratch scr;
  if constexpr (Int4) scr.b.resize(static_cast<std::size_t>(amx_chunk_blocks * 2 * 1024));
  scr.c.resize(static_cast<std::size_t>(m_pad * NT));
  scr.cout.resize(static_cast<std::size_t>(2 * amx_token_rows * NT));
  scr.total.resize(static_cast<std::size_t>(m_pad * NT));
  amx_configure_16x64();
  for (std::int64_t t = tile_begin; t < tile_end; ++t) {
    std::memset(static_cast<void*>(scr.total.data()), 0, scr.total.size() * 4);
    const std::uint8_t* w = p.tile(t);
    std::int64_t koff = 0;
    for (std::int64_t g = 0; g < p.groups; ++g) {
      const std::int64_t plen = p.padded_len(g);
      const std::int64_t nkb = plen / 64;
      const std::uint8_t* params = w + (plen / p.kstep) * lane_bytes;
      for (std::int64_t c0 = 0; c0 < nkb; c0 += amx_chunk_blocks) {
        const std::int64_t nb = std::min(amx_chunk_blocks, nkb - c0);
        const bool first = c0 == 0, last = c0 + nb == nkb;
        const std::uint8_t* bsrc = w + c0 * 16 * lane_bytes;  // int8: 16 steps of 4 inputs per block
        if constexpr (Int4) {
          amx_unpack_int4(w + c0 * 8 * lane_bytes, nb, scr.b.data());  // 8 steps of 8 inputs
          bsrc = scr.b.data();
        }
        for (std::int64_t b = 0; b < blocks; b += 2) {
          const bool pair = b + 1 < blocks;
          const std::int8_t* a = ws.a.data() + b * amx_token_rows * ws.a_stride + koff + c0 * 64;
          std::int32_t* csave = scr.c.data() + b * amx_token_rows * NT;
          std::int32_t* cdst = last ? scr.cout.data() : csave;
          if (pair)
            amx_chunk<true, Int4>(a, ws.a_stride, bsrc, nb, first, csave, cdst);
          else
            amx_chunk<false, Int4>(a, ws.a_stride, bsrc, nb, first, csave, cdst);
          if (last)
            amx_group_epilogue<M2>(p, ws, scr.cout.data(), b * amx_token_rows, pair ? 2 : 1, g, params,
                                   scr.total.data());
        }
      }
      w = params + lane_bytes;
      koff += plen;
    }
    const int ncols = static_cast<int>(std::min<std::int64_t>(NT, p.n - t * NT));
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
  _tile_release();  // back to the init state: no tile data in this thread's context switches
}

inline void amx_int_run(const int_packed& p, const int_workspace& ws, float* y, std::int64_t ldy,
                        std::int64_t tile_begin, std::int64_t tile_end) {
  if (p.scheme == gemm_scheme::w8a8_int8)
    amx_int_tiles<false, false>(p, ws, y, ldy, tile_begin, tile_end);
  else if (p.scheme == gemm_scheme::w4a8_int4)
    amx_int_tiles<true, false>(p, ws, y, ldy, tile_begin, tile_end);
  else
    amx_int_tiles<true, true>(p, ws, y, ldy, tile_begin, tile_end);
}

}  // namespace lowbit::detail

#pragma GCC diagnostic pop

#endif  // LOWBIT_HAVE_X86_SIMD
