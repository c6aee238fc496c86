#pragma once
// format_traits<T>: the facts about each format that printing, tests and quantizers need,
// all derived from the bit description. Type lists let tests and tables loop over formats.
#include <cstdint>
#include <string_view>
#include <tuple>

#include "lowbit/formats/e8m0.hpp"
#include "lowbit/formats/float4.hpp"
#include "lowbit/formats/float6.hpp"
#include "lowbit/formats/float8.hpp"

namespace lowbit {

template <class T>
struct format_traits;

namespace detail {
template <class T>
struct minifloat_traits_base {
  using desc = typename T::desc;
  static constexpr int bits = desc::bits;
  static constexpr int exponent_bits = desc::exponent_bits;
  static constexpr int mantissa_bits = desc::mantissa_bits;
  static constexpr int bias = desc::bias;
  static constexpr bool has_inf = desc::has_inf;
  static constexpr bool has_nan = desc::has_nan;
  static constexpr bool is_signed = true;
  static constexpr std::uint8_t max_finite_code = desc::max_finite_code;
  static constexpr unsigned code_count = 1u << desc::bits;
  static float max_finite() noexcept { return T::max().to_float(); }
  static float min_normal() noexcept { return T::min_normal().to_float(); }
  static float min_subnormal() noexcept { return T::min_subnormal().to_float(); }
};
}  // namespace detail

template <>
struct format_traits<float8_e4m3fn> : detail::minifloat_traits_base<float8_e4m3fn> {
  static constexpr std::string_view name = "float8_e4m3fn";
};
template <>
struct format_traits<float8_e5m2> : detail::minifloat_traits_base<float8_e5m2> {
  static constexpr std::string_view name = "float8_e5m2";
};
template <>
struct format_traits<float6_e3m2fn> : detail::minifloat_traits_base<float6_e3m2fn> {
  static constexpr std::string_view name = "float6_e3m2fn";
};
template <>
struct format_traits<float6_e2m3fn> : detail::minifloat_traits_base<float6_e2m3fn> {
  static constexpr std::string_view name = "float6_e2m3fn";
};
template <>
struct format_traits<float4_e2m1fn> : detail::minifloat_traits_base<float4_e2m1fn> {
  static constexpr std::string_view name = "float4_e2m1fn";
};
template <>
struct format_traits<float8_e8m0fnu> {
  using desc = e8m0_desc;
  static constexpr std::string_view name = "float8_e8m0fnu";
  static constexpr int bits = 8;
  static constexpr int exponent_bits = 8;
  static constexpr int mantissa_bits = 0;
  static constexpr int bias = 127;
  static constexpr bool has_inf = false;
  static constexpr bool has_nan = true;
  static constexpr bool is_signed = false;
  static constexpr std::uint8_t max_finite_code = 0xFE;
  static constexpr unsigned code_count = 256;
  static float max_finite() noexcept { return float8_e8m0fnu::max().to_float(); }
  static float min_normal() noexcept { return float8_e8m0fnu::lowest().to_float(); }
  static float min_subnormal() noexcept { return float8_e8m0fnu::lowest().to_float(); }
};

template <class... T>
struct type_list {};

// The signed element formats (what weights and activations are stored in).
using element_float_formats =
    type_list<float8_e4m3fn, float8_e5m2, float6_e3m2fn, float6_e2m3fn, float4_e2m1fn>;
// Every small float format, the scale type included.
using all_float_formats = type_list<float8_e4m3fn, float8_e5m2, float6_e3m2fn, float6_e2m3fn,
                                    float4_e2m1fn, float8_e8m0fnu>;

// Calls f(T{}) for each T of a type_list, in order.
template <class... T, class F>
void for_each_format(type_list<T...>, F&& f) {
  (f(T{}), ...);
}

}  // namespace lowbit
