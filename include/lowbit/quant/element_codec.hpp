#pragma once
// Encoding one scaled value into a stored code, and the value of every stored code, for each
// element format. A stored code is what QuantizedMatrix::codes holds for one element: a byte
// (8-bit formats, 6-bit formats in the low bits) or a nibble (int4, float4_e2m1fn).
//   symmetric integers: two's complement, round half to even, clamp to [lo, hi]
//                       (lo = -qmax, or -(qmax + 1) for the q4_0 rule)
//   asymmetric integers: unsigned, round(x) + zero clamped to [0, qmax]
//   floats: convert<T>(x, saturation::finite), round to nearest even on the mantissa
#include <array>
#include <cmath>
#include <cstdint>

#include "lowbit/formats/convert.hpp"
#include "lowbit/formats/intn.hpp"
#include "lowbit/quant/scheme.hpp"

namespace lowbit::detail {

// Integer clamp bounds of a group (unused by float formats).
struct code_bounds {
  int lo = 0, hi = 0;  // symmetric: code range; asymmetric: range of round(x) (= -zero .. qmax - zero)
  int zero = 0;
};

inline code_bounds make_code_bounds(const QuantSpec& s, int zero) noexcept {
  const int bits = element_bits(s.format);
  const int qmax_sym = (1 << (bits - 1)) - 1;
  if (!s.symmetric) {
    const int qmax = (1 << bits) - 1;
    return {-zero, qmax - zero, zero};
  }
  const int lo = s.int_rule == int_scale_rule::q4_0 ? -(qmax_sym + 1) : -qmax_sym;
  return {lo, qmax_sym, 0};
}

template <element_format F>
struct element_codec;

template <>
struct element_codec<element_format::int8> {
  static std::uint8_t encode(float xs, const code_bounds& b) noexcept {
    return static_cast<std::uint8_t>(round_clamp(xs, b.lo, b.hi) + b.zero);
  }
};
template <>
struct element_codec<element_format::int4> {
  static std::uint8_t encode(float xs, const code_bounds& b) noexcept {
    return static_cast<std::uint8_t>((round_clamp(xs, b.lo, b.hi) + b.zero) & 0xF);
  }
};

template <class T>
struct float_element_codec {
  static std::uint8_t encode(float xs, const code_bounds&) noexcept {
    return T::desc::encode(xs, saturation::finite);
  }
};
template <>
struct element_codec<element_format::float8_e4m3fn> : float_element_codec<float8_e4m3fn> {};
template <>
struct element_codec<element_format::float8_e5m2> : float_element_codec<float8_e5m2> {};
template <>
struct element_codec<element_format::float6_e3m2fn> : float_element_codec<float6_e3m2fn> {};
template <>
struct element_codec<element_format::float6_e2m3fn> : float_element_codec<float6_e2m3fn> {};
template <>
struct element_codec<element_format::float4_e2m1fn> : float_element_codec<float4_e2m1fn> {};

using code_value_table = std::array<float, 256>;

namespace code_tables {
inline code_value_table build(element_format f, bool symmetric) noexcept {
  code_value_table t{};
  for (int c = 0; c < 256; ++c) {
    float v = 0.0f;
    switch (f) {
      case element_format::int8: v = symmetric ? float(std::int8_t(std::uint8_t(c))) : float(c); break;
      case element_format::int4:
        v = c > 15 ? 0.0f : symmetric ? int4::from_bits(std::uint8_t(c)).to_float() : float(c);
        break;
      case element_format::float8_e4m3fn: v = float8_e4m3fn::from_bits(std::uint8_t(c)).to_float(); break;
      case element_format::float8_e5m2: v = float8_e5m2::from_bits(std::uint8_t(c)).to_float(); break;
      case element_format::float6_e3m2fn: v = float6_e3m2fn::from_bits(std::uint8_t(c)).to_float(); break;
      case element_format::float6_e2m3fn: v = float6_e2m3fn::from_bits(std::uint8_t(c)).to_float(); break;
      case element_format::float4_e2m1fn: v = float4_e2m1fn::from_bits(std::uint8_t(c)).to_float(); break;
    }
    t[std::size_t(c)] = v;
  }
  return t;
}
}  // namespace code_tables

// The value of every stored code (index = the stored byte or nibble).
inline const code_value_table& code_values(element_format f, bool symmetric) noexcept {
  static const std::array<code_value_table, 14> tables = [] {
    std::array<code_value_table, 14> all{};
    for (int i = 0; i < 7; ++i)
      for (int s = 0; s < 2; ++s) all[std::size_t(i * 2 + s)] = code_tables::build(element_format(i), s == 1);
    return all;
  }();
  return tables[std::size_t(static_cast<int>(f) * 2 + (symmetric ? 1 : 0))];
}

// Calls f(std::integral_constant<element_format, F>{}) for the runtime format: the one
// switch that turns a QuantSpec into a template instantiation.
template <class Fn>
decltype(auto) dispatch_element_format(element_format f, Fn&& fn) {
  switch (f) {
    case element_format::int8: return fn(std::integral_constant<element_format, element_format::int8>{});
    case element_format::int4: return fn(std::integral_constant<element_format, element_format::int4>{});
    case element_format::float8_e4m3fn:
      return fn(std::integral_constant<element_format, element_format::float8_e4m3fn>{});
    case element_format::float8_e5m2:
      return fn(std::integral_constant<element_format, element_format::float8_e5m2>{});
    case element_format::float6_e3m2fn:
      return fn(std::integral_constant<element_format, element_format::float6_e3m2fn>{});
    case element_format::float6_e2m3fn:
      return fn(std::integral_constant<element_format, element_format::float6_e2m3fn>{});
    case element_format::float4_e2m1fn:
      return fn(std::integral_constant<element_format, element_format::float4_e2m1fn>{});
  }
  fail("unknown element format");
}

}  // namespace lowbit::detail
