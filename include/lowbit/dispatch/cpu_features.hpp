#pragma once
// What this CPU can run, detected once (CPUID + XGETBV on x86, getauxval on Linux/aarch64)
// and cached; the ISA tier every dispatcher uses, overridable with LOWBIT_ISA.
//
// Tiers are coarse on purpose: a kernel family offers one implementation per tier and may
// look at the finer feature bits (VNNI, BF16, FP16, dotprod) inside its tier. Sub-tiers name
// those finer choices where a family implements more than one per tier (the integer kernels:
// VPMADDUBSW or VPDPBUSD, AMX tiles); LOWBIT_ISA and PackOptions::subtier force any of them,
// so every implemented path runs in the tests of a CPU that can execute it.
#include <array>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "lowbit/detail/target.hpp"
#include "lowbit/error.hpp"

#if LOWBIT_X86
#include <cpuid.h>
#endif
#if LOWBIT_X86 && defined(__linux__)
#include <sys/syscall.h>
#include <unistd.h>
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

// The implementations inside a tier, named as selected_kernel() ends (w8a8_int8_pc_avx512vnni):
//   avx2 / avx2vnni          AVX2 with VPMADDUBSW, or AVX-VNNI's VPDPBUSD on ymm
//   avx512bw / avx512vnni    AVX-512 with VPMADDUBSW, or VPDPBUSD on zmm
//   amx                      AMX-INT8 tiles (TDPBSSD) inside the AVX-512 tier
//   neon / neondot           AArch64 without / with SDOT
//   neoni8mm                 AArch64 with I8MM (USMMLA, ARMv8.6+: Graviton 3/4, Apple M2+)
// Families with one implementation per tier (the float kernels, bulk conversion) run their
// tier's code on every sub-tier of it.
enum class isa_subtier : int { scalar = 0, avx2, avx2vnni, avx512bw, avx512vnni, amx, neon, neondot, neoni8mm };

struct cpu_features {
  bool avx2 = false, fma = false, f16c = false, bmi2 = false, avxvnni = false;
  bool avx512f = false, avx512bw = false, avx512vl = false, avx512dq = false;
  bool avx512vnni = false, avx512bf16 = false, avx512fp16 = false;
  bool avx512vbmi = false;  // VPERMB (full 64-byte permutes): the one-token integer planes
  // Not an instruction set: 512-bit operations run as two 256-bit halves (AMD family 19h with
  // AVX-512, i.e. Zen 4), so a path's cost is its count of vector uops (float_layout.hpp's
  // one-token rule reads it).
  bool avx512_halves = false;
  // AMX: CPUID and XCR0 say the CPU and the OS support tiles; amx_permitted says the kernel
  // granted this process the tile data state (arch_prctl(ARCH_REQ_XCOMP_PERM), Linux 5.16+).
  bool amx_tile = false, amx_int8 = false, amx_bf16 = false, amx_permitted = false;
  bool neon = false, dotprod = false, i8mm = false;
};

namespace detail {

// Requirements as bit masks (kernels/registry.hpp's records carry them): one bit per
// cpu_features flag.
enum class cpu_feature : unsigned {
  avx2, fma, f16c, bmi2, avxvnni, avx512f, avx512bw, avx512vl, avx512dq, avx512vnni, avx512bf16, avx512fp16, avx512vbmi,
  amx_tile, amx_int8, amx_bf16, amx_permitted, neon, dotprod, i8mm
};
using feature_mask = std::uint32_t;
constexpr feature_mask feature_bit(cpu_feature c) noexcept { return feature_mask{1} << static_cast<unsigned>(c); }

// One row per tier and one per sub-tier: the name (LOWBIT_ISA's value and the end of
// selected_kernel()'s), the tier, and the instructions its code needs. Every function below
// reads these tables, so a new sub-tier is an enum value and one row here (plus its kernel
// records in kernels/registry.hpp), not an edit of switches.
struct tier_row {
  isa_tier id;
  std::string_view name;
  feature_mask needs;  // what the tier's code needs (the scalar tier: nothing)
};
constexpr feature_mask avx2_tier_needs =
    feature_bit(cpu_feature::avx2) | feature_bit(cpu_feature::fma) | feature_bit(cpu_feature::f16c);
inline constexpr tier_row tier_rows[] = {
    {isa_tier::scalar, "scalar", 0},
    {isa_tier::avx2, "avx2", avx2_tier_needs},
    {isa_tier::avx512, "avx512",
     avx2_tier_needs | feature_bit(cpu_feature::avx512f) | feature_bit(cpu_feature::avx512bw) |
         feature_bit(cpu_feature::avx512vl) | feature_bit(cpu_feature::avx512dq)},
    {isa_tier::neon, "neon", feature_bit(cpu_feature::neon)},
};

struct subtier_row {
  isa_subtier id;
  std::string_view name;
  isa_tier tier;
  feature_mask own_needs;  // beyond its tier's
  bool vector;             // a vector sub-tier (LOWBIT_ISA=<tier> may pick it); false: tiles
};
// In enum order; within a tier from weakest to strongest (the last one the CPU supports is
// the tier's best). tier_rows likewise go from weakest to strongest.
inline constexpr subtier_row subtier_rows[] = {
    {isa_subtier::scalar, "scalar", isa_tier::scalar, 0, true},
    {isa_subtier::avx2, "avx2", isa_tier::avx2, 0, true},  // VPMADDUBSW ymm
    {isa_subtier::avx2vnni, "avx2vnni", isa_tier::avx2, feature_bit(cpu_feature::avxvnni), true},
    {isa_subtier::avx512bw, "avx512bw", isa_tier::avx512, 0, true},  // VPMADDUBSW zmm
    {isa_subtier::avx512vnni, "avx512vnni", isa_tier::avx512, feature_bit(cpu_feature::avx512vnni), true},
    // Tiles; VNNI too, for its few-token path, and the OS's permission for tile data.
    {isa_subtier::amx, "amx", isa_tier::avx512,
     feature_bit(cpu_feature::avx512vnni) | feature_bit(cpu_feature::amx_tile) | feature_bit(cpu_feature::amx_int8) |
         feature_bit(cpu_feature::amx_permitted),
     false},
    {isa_subtier::neon, "neon", isa_tier::neon, 0, true},  // AArch64 without SDOT
    {isa_subtier::neondot, "neondot", isa_tier::neon, feature_bit(cpu_feature::dotprod), true},
    {isa_subtier::neoni8mm, "neoni8mm", isa_tier::neon, feature_bit(cpu_feature::i8mm), true},
};

constexpr bool rows_in_enum_order() noexcept {
  for (std::size_t i = 0; i < std::size(tier_rows); ++i)
    if (static_cast<std::size_t>(tier_rows[i].id) != i) return false;
  for (std::size_t i = 0; i < std::size(subtier_rows); ++i)
    if (static_cast<std::size_t>(subtier_rows[i].id) != i) return false;
  return true;
}
static_assert(rows_in_enum_order(), "tier_rows / subtier_rows must list every tier and sub-tier in enum order");

}  // namespace detail

namespace detail {
// The row of s / t; nullptr for a value outside the tables (a corrupt or future enum value).
constexpr const subtier_row* subtier_row_of(isa_subtier s) noexcept {
  const auto i = static_cast<std::size_t>(s);
  return i < std::size(subtier_rows) ? &subtier_rows[i] : nullptr;
}
constexpr const tier_row* tier_row_of(isa_tier t) noexcept {
  const auto i = static_cast<std::size_t>(t);
  return i < std::size(tier_rows) ? &tier_rows[i] : nullptr;
}
}  // namespace detail

constexpr isa_tier tier_of(isa_subtier s) noexcept {
  const detail::subtier_row* r = detail::subtier_row_of(s);
  return r ? r->tier : isa_tier::scalar;
}

constexpr std::string_view to_string(isa_subtier s) noexcept {
  const detail::subtier_row* r = detail::subtier_row_of(s);
  return r ? r->name : "unknown";
}

constexpr std::string_view to_string(isa_tier t) noexcept {
  const detail::tier_row* r = detail::tier_row_of(t);
  return r ? r->name : "unknown";
}

// Every sub-tier, in enum order (scalar first).
inline constexpr auto all_isa_subtiers = [] {
  std::array<isa_subtier, std::size(detail::subtier_rows)> out{};
  for (std::size_t i = 0; i < out.size(); ++i) out[i] = detail::subtier_rows[i].id;
  return out;
}();

namespace detail {

inline cpu_features detect_cpu_features() noexcept {
  cpu_features f;
#if LOWBIT_X86
  unsigned a = 0, b = 0, c = 0, d = 0;
  if (__get_cpuid_max(0, nullptr) < 7) return f;
  __cpuid_count(1, 0, a, b, c, d);
  const unsigned sig = a;  // family, model, stepping
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
  const bool os_amx = (xcr0 & 0x60000) == 0x60000;  // XTILECFG, XTILEDATA
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
    f.avx512vbmi = (c7 >> 1) & 1;
    unsigned vendor[3] = {0, 0, 0};
    __cpuid(0, a, vendor[0], vendor[2], vendor[1]);  // "AuthenticAMD" in EBX, EDX, ECX
    const unsigned base = (sig >> 8) & 0xF, family = base == 0xF ? base + ((sig >> 20) & 0xFF) : base;
    f.avx512_halves = f.avx512f && std::memcmp(vendor, "AuthenticAMD", 12) == 0 && family == 0x19;
  }
  if (os_amx) {
    f.amx_bf16 = (d7 >> 22) & 1;
    f.amx_tile = (d7 >> 24) & 1;
    f.amx_int8 = (d7 >> 25) & 1;
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

// Asks Linux for the AMX tile data state (XFEATURE_XTILEDATA, 18) once per process; without
// it the first tile instruction faults. On refusal (a kernel before 5.16, or a sandbox) the
// reason goes to stderr once and AMX is reported unusable, so `best` picks AVX-512 instead.
inline bool request_amx_permission(const cpu_features& f) noexcept {
  if (!(f.amx_tile && (f.amx_int8 || f.amx_bf16))) return false;
#if LOWBIT_X86 && defined(__linux__)
  constexpr long arch_get_xcomp_perm = 0x1022, arch_req_xcomp_perm = 0x1023, xfeature_xtiledata = 18;
  const char* deny = std::getenv("LOWBIT_AMX_DENY");  // tests: simulate a refusing kernel
  if (deny != nullptr && *deny != '\0' && std::strcmp(deny, "0") != 0) {
    std::fprintf(stderr, "lowbit: AMX unusable (LOWBIT_AMX_DENY is set); using AVX-512\n");
    return false;
  }
  if (syscall(SYS_arch_prctl, arch_req_xcomp_perm, xfeature_xtiledata) != 0) {
    std::fprintf(stderr, "lowbit: AMX unusable: the kernel refused tile data (arch_prctl ARCH_REQ_XCOMP_PERM); "
                         "using AVX-512\n");
    return false;
  }
  unsigned long long mask = 0;
  if (syscall(SYS_arch_prctl, arch_get_xcomp_perm, &mask) != 0 || !((mask >> xfeature_xtiledata) & 1)) {
    std::fprintf(stderr, "lowbit: AMX unusable: tile data not in the permitted state; using AVX-512\n");
    return false;
  }
  return true;
#else
  return false;
#endif
}

inline feature_mask features_of(const cpu_features& f) noexcept {
  const std::pair<bool, cpu_feature> flags[] = {
      {f.avx2, cpu_feature::avx2},         {f.fma, cpu_feature::fma},
      {f.f16c, cpu_feature::f16c},         {f.bmi2, cpu_feature::bmi2},
      {f.avxvnni, cpu_feature::avxvnni},   {f.avx512f, cpu_feature::avx512f},
      {f.avx512bw, cpu_feature::avx512bw}, {f.avx512vl, cpu_feature::avx512vl},
      {f.avx512dq, cpu_feature::avx512dq}, {f.avx512vnni, cpu_feature::avx512vnni},
      {f.avx512bf16, cpu_feature::avx512bf16}, {f.avx512fp16, cpu_feature::avx512fp16},
      {f.avx512vbmi, cpu_feature::avx512vbmi},
      {f.amx_tile, cpu_feature::amx_tile}, {f.amx_int8, cpu_feature::amx_int8},
      {f.amx_bf16, cpu_feature::amx_bf16}, {f.amx_permitted, cpu_feature::amx_permitted},
      {f.neon, cpu_feature::neon},         {f.dotprod, cpu_feature::dotprod},
      {f.i8mm, cpu_feature::i8mm}};
  feature_mask m = 0;
  for (const auto& [has, bit] : flags)
    if (has) m |= feature_bit(bit);
  return m;
}

// What a tier's / sub-tier's code needs (a sub-tier: its tier's features and its own
// instructions). A value outside the tables needs what no CPU has, so it is never supported.
constexpr feature_mask tier_needs(isa_tier t) noexcept {
  const tier_row* r = tier_row_of(t);
  return r ? r->needs : ~feature_mask{0};
}
constexpr feature_mask subtier_needs(isa_subtier s) noexcept {
  const subtier_row* r = subtier_row_of(s);
  return r ? tier_needs(r->tier) | r->own_needs : ~feature_mask{0};
}

constexpr bool features_cover(feature_mask have, feature_mask needs) noexcept { return (needs & ~have) == 0; }

inline bool tier_supported(isa_tier t, const cpu_features& f) noexcept {
  return features_cover(features_of(f), tier_needs(t));
}

inline bool subtier_supported(isa_subtier s, const cpu_features& f) noexcept {
  return features_cover(features_of(f), subtier_needs(s));
}

// The best vector (non-tile) sub-tier of tier t: what LOWBIT_ISA=avx512 and PackOptions::tier
// alone mean. The last row of tier t that is a vector sub-tier and that f supports (rows go
// from weakest to strongest); scalar when none is.
inline isa_subtier best_vector_subtier(isa_tier t, const cpu_features& f) noexcept {
  isa_subtier best = isa_subtier::scalar;
  for (const subtier_row& r : subtier_rows)
    if (r.tier == t && r.vector && subtier_supported(r.id, f)) best = r.id;
  return best;
}

// The preferred tier f supports: AVX-512, AVX2, NEON, scalar (a real CPU never has both x86
// and AArch64 tiers, but a made-up feature set in a test may, and x86 comes first).
inline isa_tier best_tier(const cpu_features& f) noexcept {
  for (isa_tier t : {isa_tier::avx512, isa_tier::avx2, isa_tier::neon})
    if (tier_supported(t, f)) return t;
  return isa_tier::scalar;
}

// The strongest sub-tier of the best tier that f supports, tiles included (AMX where the CPU
// has it and the OS granted tile data).
inline isa_subtier best_subtier(const cpu_features& f) noexcept {
  const isa_tier t = best_tier(f);
  isa_subtier best = best_vector_subtier(t, f);
  for (const subtier_row& r : subtier_rows)
    if (r.tier == t && subtier_supported(r.id, f)) best = r.id;
  return best;
}

// Parses LOWBIT_ISA: a sub-tier name, `avx512` (the best AVX-512 vector sub-tier, never AMX),
// or unset / empty / `best`. A sub-tier this CPU lacks, or an unknown name, is an error:
// silently running another kernel would make a forced benchmark lie.
inline isa_subtier subtier_from_env(const cpu_features& f) {
  const char* env = std::getenv("LOWBIT_ISA");
  if (env == nullptr || *env == '\0' || std::strcmp(env, "best") == 0) return best_subtier(f);
  if (std::strcmp(env, "avx512") == 0) {
    if (!tier_supported(isa_tier::avx512, f)) throw error("LOWBIT_ISA=avx512: this CPU does not support that tier");
    return best_vector_subtier(isa_tier::avx512, f);
  }
  for (isa_subtier s : all_isa_subtiers) {
    if (to_string(s) == env) {
      if (!subtier_supported(s, f))
        throw error("LOWBIT_ISA=" + std::string(env) + ": this CPU does not support that tier" +
                    (s == isa_subtier::amx && f.amx_int8 ? " (the kernel refused AMX tile data)" : ""));
      return s;
    }
  }
  std::string names;
  for (const subtier_row& r : subtier_rows) names += (names.empty() ? "" : ", ") + std::string(r.name);
  throw error("LOWBIT_ISA=" + std::string(env) + ": unknown tier (expected a sub-tier: " + names +
              "; avx512: its best vector sub-tier; or best)");
}

}  // namespace detail

// The features of the CPU this process runs on (detected on first call, then cached; the
// first call also asks the OS for AMX tile data where the CPU has AMX).
inline const cpu_features& host_cpu_features() noexcept {
  static const cpu_features f = [] {
    cpu_features d = detail::detect_cpu_features();
    d.amx_permitted = detail::request_amx_permission(d);
    return d;
  }();
  return f;
}

namespace detail {
// Running a tier the CPU lacks would crash on an illegal instruction: the tier-explicit entry
// points (convert_n, the forward pass's float steps) refuse it instead.
inline void check_tier_runs_here(isa_tier tier, const char* what) {
  if (!tier_supported(tier, host_cpu_features()))
    throw error(std::string(what) + ": ISA tier '" + std::string(to_string(tier)) +
                "' is not supported by this CPU");
}
}  // namespace detail

// The sub-tier the integer kernels use: the best this CPU supports, or LOWBIT_ISA's choice.
// Read once per process.
inline isa_subtier selected_isa_subtier() {
  static const isa_subtier s = detail::subtier_from_env(host_cpu_features());
  return s;
}

// The tier every dispatcher uses: the tier of selected_isa_subtier().
inline isa_tier selected_isa_tier() { return tier_of(selected_isa_subtier()); }

// Every tier this CPU can run, scalar first: tests loop over it to compare each tier with
// the scalar reference.
inline std::vector<isa_tier> supported_isa_tiers() {
  std::vector<isa_tier> out;
  for (const detail::tier_row& r : detail::tier_rows)
    if (detail::tier_supported(r.id, host_cpu_features())) out.push_back(r.id);
  return out;
}

// Every sub-tier this CPU can run, scalar first (the integer kernels' tests loop over it).
inline std::vector<isa_subtier> supported_isa_subtiers() {
  std::vector<isa_subtier> out;
  for (isa_subtier s : all_isa_subtiers)
    if (detail::subtier_supported(s, host_cpu_features())) out.push_back(s);
  return out;
}

}  // namespace lowbit
