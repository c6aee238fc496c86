#pragma once
// Target attributes for ISA-specific functions. SIMD code is compiled per function with
// these attributes (Highway's model), never with global -m flags, so one binary carries
// every tier and picks one at run time (dispatch/cpu_features.hpp).
//
// On aarch64 with GCC 12, the target must be spelled "arch=armv8.2-a+dotprod": the bare
// "+dotprod" form fails to inline the NEON intrinsics.
#include <cstdint>

#if defined(__x86_64__) || defined(_M_X64)
#define LOWBIT_X86 1
#else
#define LOWBIT_X86 0
#endif

#if defined(__aarch64__)
#define LOWBIT_ARM64 1
#else
#define LOWBIT_ARM64 0
#endif

#if LOWBIT_X86 && (defined(__GNUC__) || defined(__clang__))
#define LOWBIT_HAVE_X86_SIMD 1
#define LOWBIT_TARGET_AVX2 __attribute__((target("avx2,fma,f16c,bmi2")))
#define LOWBIT_TARGET_AVX512 \
  __attribute__((target("avx512f,avx512bw,avx512vl,avx512dq,avx512cd,fma,f16c,avx2,bmi2")))
// No VNNI target: the int kernels issue VPDPBUSD through inline asm (docs/design.md, "A
// sub-tier's code holds only its sub-tier's instructions").
#define LOWBIT_TARGET_AVX512_FP16                                                          \
  __attribute__((target(                                                                   \
      "avx512f,avx512bw,avx512vl,avx512dq,avx512cd,avx512vnni,avx512bf16,avx512fp16,fma,f16c,avx2,bmi2")))
// AMX tile code: the AVX-512 VNNI set (for the epilogues and unpacking) plus the tile ISA.
#define LOWBIT_TARGET_AMX                                                                  \
  __attribute__((target(                                                                   \
      "avx512f,avx512bw,avx512vl,avx512dq,avx512cd,avx512vnni,avx512bf16,fma,f16c,avx2,bmi2,amx-tile,amx-int8,amx-bf16")))
#else
#define LOWBIT_HAVE_X86_SIMD 0
#endif

// AVX512-FP16 intrinsics (the __m512h type, VFMADD231PH): GCC 12 and clang 15 have them;
// Debian 12's default clang (14) does not, and with it the AVX512-FP16 path is left out
// (float_uses_fp16_path is then false and the other AVX-512 paths run).
#if LOWBIT_HAVE_X86_SIMD && ((defined(__clang__) && __clang_major__ >= 15) || \
                             (!defined(__clang__) && defined(__GNUC__) && __GNUC__ >= 12))
#define LOWBIT_HAVE_AVX512FP16 1
#else
#define LOWBIT_HAVE_AVX512FP16 0
#endif

// Inside a `#pragma GCC diagnostic push` ... `pop` region of SIMD code: GCC 12 warns
// (-Wmaybe-uninitialized) inside its own AVX-512 intrinsics (GCC bug 105593), whose results
// are fully defined. clang has no such warning, and naming it would be an unknown-warning
// warning in every program that includes lowbit with clang -Wall.
#if defined(__GNUC__) && !defined(__clang__)
#define LOWBIT_IGNORE_GCC_MAYBE_UNINITIALIZED _Pragma("GCC diagnostic ignored \"-Wmaybe-uninitialized\"")
#else
#define LOWBIT_IGNORE_GCC_MAYBE_UNINITIALIZED
#endif

#if LOWBIT_ARM64 && (defined(__GNUC__) || defined(__clang__))
#define LOWBIT_HAVE_NEON 1
#define LOWBIT_TARGET_NEON
#define LOWBIT_TARGET_NEON_DOTPROD __attribute__((target("arch=armv8.2-a+dotprod")))
#define LOWBIT_TARGET_NEON_I8MM __attribute__((target("arch=armv8.6-a+i8mm")))
#else
#define LOWBIT_HAVE_NEON 0
#endif

namespace lowbit::detail {

// One demand load of the byte at p, its value unused: the kernels that stream cold weights
// issue one per 4 KiB page some KiB ahead, because on Zen 4/5 a software prefetch into a page
// without a TLB entry fetched nothing (the measurements: kernels/x86/avx512_float.hpp,
// avx512_touch_bytes). Unlike a prefetch, a load can fault: p must be inside the array.
inline void touch_load(const void* p) noexcept {
  const std::uint8_t v = *static_cast<const volatile std::uint8_t*>(p);
  static_cast<void>(v);
}

}  // namespace lowbit::detail
