#pragma once
// VPDPBUSD (AVX512-VNNI) and its broadcast operand, for the integer family's kernels
// (x86/avx512_int.hpp) and the float family's one-token integer path (x86/avx512_float.hpp);
// and VPERMB (AVX512-VBMI), which that path also needs. Both through inline asm, for the
// reason below.
#include "lowbit/detail/target.hpp"

#if LOWBIT_HAVE_X86_SIMD
#include <immintrin.h>

#include <cstdint>
#include <cstring>

namespace lowbit::detail {

// acc (16 int32) += sum over each dword's 4 bytes of (unsigned w) * (signed a).
// Inline asm ties the accumulator to one register: with the intrinsic, GCC 12 copies the
// accumulators between two register sets every step (and spills), halving throughput. It also
// keeps the avx512vnni target off the callers, so code for CPUs without VNNI holds no VNNI
// instruction (docs/design.md, "A sub-tier's code holds only its sub-tier's instructions"):
// callers run it only where the CPU has VNNI.
LOWBIT_TARGET_AVX512 inline __m512i avx512_dpbusd(__m512i acc, __m512i w, __m512i a) {
  __asm__("vpdpbusd %2, %1, %0" : "+v"(acc) : "v"(w), "v"(a));
  return acc;
}

// The 4 signed bytes at p in every dword: a VPDPBUSD activation operand (a broadcast load).
LOWBIT_TARGET_AVX512 inline __m512i avx512_bcast32(const std::int8_t* p) {
  std::int32_t v;
  std::memcpy(&v, p, 4);
  return _mm512_set1_epi32(v);
}

// r[i] = table[index[i] & 63] over the 64 bytes: one shuffle uop however the bytes move (the
// same as a VPERMD and a VPSHUFB together, or a VPSHUFB lookup without its AND). Inline asm
// like VPDPBUSD above: the callers carry the plain AVX-512 target and run it only where the
// CPU has AVX512-VBMI (float_layout.hpp, avx512_int_planes_runs).
LOWBIT_TARGET_AVX512 inline __m512i avx512_permb(__m512i index, __m512i table) {
  __m512i r;
  __asm__("vpermb %2, %1, %0" : "=v"(r) : "v"(index), "v"(table));
  return r;
}

}  // namespace lowbit::detail

#endif  // LOWBIT_HAVE_X86_SIMD
