#pragma once
// Conversion between float and the small formats.
//
//   convert<T>(x, sat)          one value, round to nearest even, overflow as `sat` says
//   convert_n<T>(in, out, n)    arrays; SIMD where the CPU has it, bit-exact with convert<T>
//   to_float_n<T>(in, out, n)   arrays back to float, exact
//
// The bulk functions pick their implementation once per process from selected_isa_tier()
// (LOWBIT_ISA forces a tier); the overloads that take an isa_tier run that tier (one the CPU
// supports, else lowbit::error), for comparing tiers (tests, `lowbit formats`' throughput).
#include <cstddef>
#include <cstdint>
#include <string>

#include "lowbit/dispatch/cpu_features.hpp"
#include "lowbit/error.hpp"
#include "lowbit/formats/detail/convert_avx2.hpp"
#include "lowbit/formats/detail/convert_avx512.hpp"
#include "lowbit/formats/detail/convert_neon.hpp"
#include "lowbit/formats/traits.hpp"

namespace lowbit {

template <class T>
constexpr T convert(float x, saturation s = saturation::finite) noexcept {
  return T::from_bits(T::desc::encode(x, s));
}

namespace detail {

template <class T>
void convert_n_scalar(const float* in, T* out, std::size_t n, saturation s) noexcept {
  for (std::size_t i = 0; i < n; ++i) out[i] = convert<T>(in[i], s);
}

template <class T>
void to_float_n_scalar(const T* in, float* out, std::size_t n) noexcept {
  for (std::size_t i = 0; i < n; ++i) out[i] = in[i].to_float();
}

// Tier-explicit entry points (tests compare every tier with scalar through these). A tier
// that this build has no code for (NEON on x86, AVX on ARM) is never supported at run time,
// so the check above rejects it before the switch.
template <class T>
void convert_n_tier(isa_tier tier, const float* in, T* out, std::size_t n, saturation s) {
  static_assert(sizeof(T) == 1, "convert_n stores one code per byte");
  check_tier_runs_here(tier, "convert_n");
  switch (tier) {
#if LOWBIT_HAVE_X86_SIMD
    case isa_tier::avx512: return avx512::convert_n(in, out, n, s);
    case isa_tier::avx2: return avx2::convert_n(in, out, n, s);
#endif
#if LOWBIT_HAVE_NEON
    case isa_tier::neon: return neon::convert_n(in, out, n, s);
#endif
    default: return convert_n_scalar(in, out, n, s);
  }
}

template <class T>
void to_float_n_tier(isa_tier tier, const T* in, float* out, std::size_t n) {
  static_assert(sizeof(T) == 1, "to_float_n reads one code per byte");
  check_tier_runs_here(tier, "to_float_n");
  switch (tier) {
#if LOWBIT_HAVE_X86_SIMD
    case isa_tier::avx512: return avx512::to_float_n(in, out, n);
    case isa_tier::avx2: return avx2::to_float_n(in, out, n);
#endif
#if LOWBIT_HAVE_NEON
    case isa_tier::neon: return neon::to_float_n(in, out, n);
#endif
    default: return to_float_n_scalar(in, out, n);
  }
}

}  // namespace detail

template <class T>
void convert_n(const float* in, T* out, std::size_t n, saturation s = saturation::finite) {
  detail::convert_n_tier(selected_isa_tier(), in, out, n, s);
}

template <class T>
void to_float_n(const T* in, float* out, std::size_t n) {
  detail::to_float_n_tier(selected_isa_tier(), in, out, n);
}

template <class T>
void convert_n(isa_tier tier, const float* in, T* out, std::size_t n, saturation s = saturation::finite) {
  detail::convert_n_tier(tier, in, out, n, s);
}

template <class T>
void to_float_n(isa_tier tier, const T* in, float* out, std::size_t n) {
  detail::to_float_n_tier(tier, in, out, n);
}

}  // namespace lowbit
