#pragma once
// What this CPU can run, detected once (CPUID + XGETBV on x86, getauxval on Linux/aarch64)
// and cached; the ISA tier every dispatcher uses, overridable with LOWBIT_ISA.
//
// Tiers are coarse on purpose: a kernel family offers one implementation per tier and may
// look at the finer feature bits (VNNI, BF16, FP16, dotprod) inside its tier.
#include <cstdlib>
#include <cstring>
#include <string>
#include <string_view>
#include <vector>

#include "lowbit/detail/target.hpp"
#include "lowbit/error.hpp"

#if LOWBIT_X86
#include <cpuid.h>
#endif
#if LOWBIT_ARM64 && defined(__linux__)
#include <asm/hwcap.h>
#include <sys/auxv.h>
#endif

namespace lowbit {

enum class isa_tier : int {
  scalar = 0,  // portable C++: the reference every other tier is tested against
  avx2 = 1,    // AVX2 + FMA + F16C (+ AVX-VNNI where present)
  avx512 = 2,  // AVX-512 F/BW/VL/DQ (+ VNNI, BF16, FP16 where present)
  neon = 3,    // AArch64 Advanced SIMD (+ dotprod, i8mm where present)
};

struct cpu_features {
  bool avx2 = false, fma = false, f16c = false, bmi2 = false, avxvnni = false;
  bool avx512f = false, avx512bw = false, avx512vl = false, avx512dq = false;
  bool avx512vnni = false, avx512bf16 = false, avx512fp16 = false;
  bool neon = false, dotprod = false, i8mm = false;
};

inline std::string_view to_string(isa_tier t) noexcept {
  switch (t) {
    case isa_tier::scalar: return "scalar";
    case isa_tier::avx2: return "avx2";
    case isa_tier::avx512: return "avx512";
    case isa_tier::neon: return "neon";
  }
  return "unknown";
}

namespace detail {

inline cpu_features detect_cpu_features() noexcept {
  cpu_features f;
#if LOWBIT_X86
  unsigned a = 0, b = 0, c = 0, d = 0;
  if (__get_cpuid_max(0, nullptr) < 7) return f;
  __cpuid_count(1, 0, a, b, c, d);
  const bool osxsave = (c >> 27) & 1;
  const bool has_fma = (c >> 12) & 1, has_f16c = (c >> 29) & 1, has_avx = (c >> 28) & 1;
  unsigned long long xcr0 = 0;
  if (osxsave) {
    unsigned lo = 0, hi = 0;
    __asm__ volatile("xgetbv" : "=a"(lo), "=d"(hi) : "c"(0));
    xcr0 = (static_cast<unsigned long long>(hi) << 32) | lo;
  }
  const bool os_avx = (xcr0 & 0x6) == 0x6;         // XMM and YMM state
  const bool os_avx512 = (xcr0 & 0xE6) == 0xE6;    // + opmask, ZMM_Hi256, Hi16_ZMM
  __cpuid_count(7, 0, a, b, c, d);
  const unsigned b7 = b, c7 = c, d7 = d;
  __cpuid_count(7, 1, a, b, c, d);
  const unsigned a71 = a;
  if (has_avx && os_avx) {
    f.avx2 = (b7 >> 5) & 1;
    f.fma = has_fma;
    f.f16c = has_f16c;
    f.bmi2 = (b7 >> 8) & 1;
    f.avxvnni = (a71 >> 4) & 1;
  }
  if (os_avx512) {
    f.avx512f = (b7 >> 16) & 1;
    f.avx512dq = (b7 >> 17) & 1;
    f.avx512bw = (b7 >> 30) & 1;
    f.avx512vl = (b7 >> 31) & 1;
    f.avx512vnni = (c7 >> 11) & 1;
    f.avx512bf16 = (a71 >> 5) & 1;
    f.avx512fp16 = (d7 >> 23) & 1;
  }
#elif LOWBIT_ARM64
  f.neon = true;  // mandatory on AArch64
#if defined(__linux__)
  const unsigned long hw = getauxval(AT_HWCAP);
  const unsigned long hw2 = getauxval(AT_HWCAP2);
#ifdef HWCAP_ASIMDDP
  f.dotprod = (hw & HWCAP_ASIMDDP) != 0;
#endif
#ifdef HWCAP2_I8MM
  f.i8mm = (hw2 & HWCAP2_I8MM) != 0;
#endif
  (void)hw;
  (void)hw2;
#endif
#endif
  return f;
}

inline isa_tier best_tier(const cpu_features& f) noexcept {
  if (f.avx512f && f.avx512bw && f.avx512vl && f.avx512dq && f.avx2 && f.fma && f.f16c)
    return isa_tier::avx512;
  if (f.avx2 && f.fma && f.f16c) return isa_tier::avx2;
  if (f.neon) return isa_tier::neon;
  return isa_tier::scalar;
}

inline bool tier_supported(isa_tier t, const cpu_features& f) noexcept {
  switch (t) {
    case isa_tier::scalar: return true;
    case isa_tier::avx2: return f.avx2 && f.fma && f.f16c;
    case isa_tier::avx512: return best_tier(f) == isa_tier::avx512;
    case isa_tier::neon: return f.neon;
  }
  return false;
}

// Parses LOWBIT_ISA. Unset or empty means "best". A tier this CPU lacks, or an unknown
// name, is an error: silently running another tier would make a forced benchmark lie.
inline isa_tier tier_from_env(const cpu_features& f) {
  const char* env = std::getenv("LOWBIT_ISA");
  if (env == nullptr || *env == '\0' || std::strcmp(env, "best") == 0) return best_tier(f);
  for (isa_tier t : {isa_tier::scalar, isa_tier::avx2, isa_tier::avx512, isa_tier::neon}) {
    if (to_string(t) == env) {
      if (!tier_supported(t, f))
        throw error("LOWBIT_ISA=" + std::string(env) + ": this CPU does not support that tier");
      return t;
    }
  }
  throw error("LOWBIT_ISA=" + std::string(env) +
              ": unknown tier (expected scalar, avx2, avx512, neon or best)");
}

}  // namespace detail

// The features of the CPU this process runs on (detected on first call, then cached).
inline const cpu_features& host_cpu_features() noexcept {
  static const cpu_features f = detail::detect_cpu_features();
  return f;
}

// The tier every dispatcher uses: the best this CPU supports, or LOWBIT_ISA's choice.
// Read once per process.
inline isa_tier selected_isa_tier() {
  static const isa_tier t = detail::tier_from_env(host_cpu_features());
  return t;
}

// Every tier this CPU can run, scalar first: tests loop over it to compare each tier with
// the scalar reference.
inline std::vector<isa_tier> supported_isa_tiers() {
  std::vector<isa_tier> out;
  for (isa_tier t : {isa_tier::scalar, isa_tier::avx2, isa_tier::avx512, isa_tier::neon})
    if (detail::tier_supported(t, host_cpu_features())) out.push_back(t);
  return out;
}

}  // namespace lowbit
