#pragma once
// k-row pairs of 4-bit codes as VPERMW indices: the one decode step shared by the kernels that
// turn colblock32 nibbles into 16-bit weight pairs (the AMX-BF16 B tiles, x86/amx_float.hpp,
// and the AVX512-FP16 pair tiles, x86/avx512fp16_float.hpp); and k-row quads as VPDPBUSD
// operands (the one-token integer path of x86/avx512_float.hpp). Include through
// kernels/float_family.hpp.
//
// Layout in (float_layout.hpp): a k-row is 16 bytes, byte j holding column j in its low nibble
// and column 16 + j in its high one. Layout out, per pair of k-rows (a, b): 32 words, word 2j
// holding a's byte j and word 2j + 1 b's byte j (in both halves of the word). A 32-entry VPERMW
// table whose 16 values repeat then gives columns 0..15 in pairs from the word itself (VPERMW
// reads the low 5 index bits: the low nibble and one bit it ignores) and columns 16..31 from
// the word shifted right by 4 (the high nibble, then bit 0 of the copy in the upper byte).
//
// Why this shape: the per-pair step it replaces (two 16-byte loads, PUNPCKLBW/HBW, an insert
// and a VPMOVZXBW) spent 4 shuffle uops per 64 weights beside the two VPERMW lookups, which
// compete for the same shuffle port: 12 per 128 weights in all. Here one 64-byte load holds four
// k-rows (one per 128-bit lane), a VPERMD transposes their dwords so that lane L holds bytes
// 4L..4L+3 of every row, and one in-lane VPSHUFB per pair puts each byte in both halves of its
// word: 3 shuffle uops per 128 weights, 7 with the lookups (counted from the code; what it
// changed on the device Xeon is in docs/performance.md, "Session 32 (device Xeon)").
#include "lowbit/detail/target.hpp"

#if LOWBIT_HAVE_X86_SIMD
#include <immintrin.h>

#include <cstdint>

#include "lowbit/kernels/x86/dpbusd.hpp"

// GCC 12 warns (-Wmaybe-uninitialized) inside its own AVX-512 intrinsics (GCC bug 105593).
#pragma GCC diagnostic push
LOWBIT_IGNORE_GCC_MAYBE_UNINITIALIZED

namespace lowbit::detail {

// Four k-rows (one per 128-bit lane) -> lane L holds bytes 4L..4L+3 of row i in its dword i:
// dword i of lane L <- dword L of lane i (a 4 x 4 transpose of the rows' dwords).
LOWBIT_TARGET_AVX512 inline __m512i nibble_rows_by_lane(__m512i v) {
  return _mm512_permutexvar_epi32(_mm512_set_epi32(15, 11, 7, 3, 14, 10, 6, 2, 13, 9, 5, 1, 12, 8, 4, 0), v);
}

// Four consecutive 16-byte k-rows at p as VPDPBUSD operands: dword j (j = 0..15) holds byte j
// of rows 0, 1, 2, 3 (its low nibbles are column j of the four rows, its high ones column
// 16 + j). One VPERMB (AVX512-VBMI: callers check it), where the dword transpose above and an
// in-lane byte transpose took a VPERMD and a VPSHUFB.
LOWBIT_TARGET_AVX512 inline __m512i nibble_row_quads(const std::uint8_t* p) {
  // Byte 4j + r <- byte 16r + j (row r's byte j). _mm512_set_epi8 lists bytes 63..0.
  const __m512i s = _mm512_set_epi8(63, 47, 31, 15, 62, 46, 30, 14, 61, 45, 29, 13, 60, 44, 28, 12,  //
                                    59, 43, 27, 11, 58, 42, 26, 10, 57, 41, 25, 9, 56, 40, 24, 8,    //
                                    55, 39, 23, 7, 54, 38, 22, 6, 53, 37, 21, 5, 52, 36, 20, 4,      //
                                    51, 35, 19, 3, 50, 34, 18, 2, 49, 33, 17, 1, 48, 32, 16, 0);
  return avx512_permb(s, _mm512_loadu_si512(p));
}

// `rows` (0..4) consecutive 16-byte k-rows from p, the rest read as zero codes (a masked load:
// nothing past the last row is touched), as the words of pairs (row 0, row 1) and (row 2, row 3).
LOWBIT_TARGET_AVX512 inline void nibble_row_pairs(const std::uint8_t* p, std::int64_t rows, __m512i& pair01,
                                                  __m512i& pair23) {
  const __m512i v = rows >= 4 ? _mm512_loadu_si512(p)
                              : _mm512_maskz_loadu_epi8(rows <= 0 ? __mmask64{0} : ~__mmask64{0} >> (64 - 16 * rows), p);
  const __m512i t = nibble_rows_by_lane(v);
  // Within a lane: byte c of row a is byte c, of row b byte 4 + c (c = 0..3); word 2c + h of
  // the pair repeats row h's byte c. _mm512_set_epi8 lists bytes from 63 down to 0.
  const __m512i s01 = _mm512_set_epi8(7, 7, 3, 3, 6, 6, 2, 2, 5, 5, 1, 1, 4, 4, 0, 0,   //
                                      7, 7, 3, 3, 6, 6, 2, 2, 5, 5, 1, 1, 4, 4, 0, 0,   //
                                      7, 7, 3, 3, 6, 6, 2, 2, 5, 5, 1, 1, 4, 4, 0, 0,   //
                                      7, 7, 3, 3, 6, 6, 2, 2, 5, 5, 1, 1, 4, 4, 0, 0);
  const __m512i s23 = _mm512_add_epi8(s01, _mm512_set1_epi8(8));
  pair01 = _mm512_shuffle_epi8(t, s01);
  pair23 = _mm512_shuffle_epi8(t, s23);
}

}  // namespace lowbit::detail

#pragma GCC diagnostic pop

#endif  // LOWBIT_HAVE_X86_SIMD
