#pragma once
// Conversion between float and the small formats.
//
//   convert<T>(x, sat)          one value, round to nearest even, overflow as `sat` says
//   convert_n<T>(in, out, n)    arrays; SIMD where the CPU has it, bit-exact with convert<T>
//   to_float_n<T>(in, out, n)   arrays back to float, exact
//
// The bulk functions pick their implementation once per process from selected_isa_tier()
// (LOWBIT_ISA forces a tier); detail::convert_n_tier lets tests call a tier directly.
#include <cstddef>
#include <cstdint>

#include "lowbit/dispatch/cpu_features.hpp"
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

// Tier-explicit entry points (tests compare every tier with scalar through these).
template <class T>
void convert_n_tier(isa_tier tier, const float* in, T* out, std::size_t n, saturation s) {
  (void)tier;
  convert_n_scalar(in, out, n, s);
}

template <class T>
void to_float_n_tier(isa_tier tier, const T* in, float* out, std::size_t n) {
  (void)tier;
  to_float_n_scalar(in, out, n);
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

}  // namespace lowbit
