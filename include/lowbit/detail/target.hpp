#pragma once
// Target attributes for ISA-specific functions. SIMD code is compiled per function with
// these attributes (Highway's model), never with global -m flags, so one binary carries
// every tier and picks one at run time (dispatch/cpu_features.hpp).
//
// On aarch64 with GCC 12, the target must be spelled "arch=armv8.2-a+dotprod": the bare
// "+dotprod" form fails to inline the NEON intrinsics.

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
#define LOWBIT_TARGET_AVX2_VNNI __attribute__((target("avx2,fma,f16c,bmi2,avxvnni")))
#define LOWBIT_TARGET_AVX512 \
  __attribute__((target("avx512f,avx512bw,avx512vl,avx512dq,avx512cd,fma,f16c,avx2,bmi2")))
#define LOWBIT_TARGET_AVX512_VNNI                                                          \
  __attribute__((target(                                                                   \
      "avx512f,avx512bw,avx512vl,avx512dq,avx512cd,avx512vnni,avx512bf16,fma,f16c,avx2,bmi2")))
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

#if LOWBIT_ARM64 && (defined(__GNUC__) || defined(__clang__))
#define LOWBIT_HAVE_NEON 1
#define LOWBIT_TARGET_NEON
#define LOWBIT_TARGET_NEON_DOTPROD __attribute__((target("arch=armv8.2-a+dotprod")))
#define LOWBIT_TARGET_NEON_I8MM __attribute__((target("arch=armv8.6-a+i8mm")))
#else
#define LOWBIT_HAVE_NEON 0
#endif
