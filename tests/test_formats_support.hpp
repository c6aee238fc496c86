#pragma once
// Shared helpers for the format tests: the formats' parameters written out by hand (not read
// from the library, so the tests check the library's bit descriptions instead of trusting
// them), an independent decoder built on std::ldexp, and bit-level float helpers.
#include <cmath>
#include <cstdint>
#include <cstring>
#include <limits>
#include <string>

#include "lowbit/formats.hpp"

namespace lowbit_test {

inline std::uint32_t bits_of(float f) {
  std::uint32_t u;
  std::memcpy(&u, &f, 4);
  return u;
}
inline float float_of(std::uint32_t u) {
  float f;
  std::memcpy(&f, &u, 4);
  return f;
}
inline bool same_bits(float a, float b) { return bits_of(a) == bits_of(b); }

enum class specials { ieee, nan_only, none };

// One format's defining numbers, as the OCP specs and DESIGN.md §3 state them.
struct format_spec {
  const char* name;
  int exponent_bits, mantissa_bits, bias;
  specials kind;
  float max_finite, min_subnormal;
};

template <class T>
format_spec spec_of();
template <>
inline format_spec spec_of<lowbit::float8_e4m3fn>() {
  return {"float8_e4m3fn", 4, 3, 7, specials::nan_only, 448.0f, 0x1p-9f};
}
template <>
inline format_spec spec_of<lowbit::float8_e5m2>() {
  return {"float8_e5m2", 5, 2, 15, specials::ieee, 57344.0f, 0x1p-16f};
}
template <>
inline format_spec spec_of<lowbit::float6_e3m2fn>() {
  return {"float6_e3m2fn", 3, 2, 3, specials::none, 28.0f, 0x1p-4f};
}
template <>
inline format_spec spec_of<lowbit::float6_e2m3fn>() {
  return {"float6_e2m3fn", 2, 3, 1, specials::none, 7.5f, 0x1p-3f};
}
template <>
inline format_spec spec_of<lowbit::float4_e2m1fn>() {
  return {"float4_e2m1fn", 2, 1, 1, specials::none, 6.0f, 0.5f};
}

inline int code_count(const format_spec& s) { return 1 << (1 + s.exponent_bits + s.mantissa_bits); }
inline unsigned sign_bit(const format_spec& s) { return 1u << (s.exponent_bits + s.mantissa_bits); }

// The value of a code by the textbook formula: NaN is returned as a quiet NaN with the
// code's sign; Inf as +-infinity.
inline float reference_decode(const format_spec& s, unsigned code) {
  const int M = s.mantissa_bits, E = s.exponent_bits;
  const bool neg = (code & sign_bit(s)) != 0;
  const int ef = static_cast<int>((code >> M) & ((1u << E) - 1));
  const int mf = static_cast<int>(code & ((1u << M) - 1));
  const int ef_max = (1 << E) - 1, mf_max = (1 << M) - 1;
  float mag;
  if (s.kind == specials::ieee && ef == ef_max)
    mag = mf == 0 ? std::numeric_limits<float>::infinity() : std::numeric_limits<float>::quiet_NaN();
  else if (s.kind == specials::nan_only && ef == ef_max && mf == mf_max)
    mag = std::numeric_limits<float>::quiet_NaN();
  else if (ef == 0)
    mag = std::ldexp(static_cast<float>(mf), 1 - s.bias - M);
  else
    mag = std::ldexp(1.0f + static_cast<float>(mf) / static_cast<float>(1 << M), ef - s.bias);
  return neg ? -mag : mag;
}

inline bool is_even(unsigned code) { return (code & 1u) == 0; }

}  // namespace lowbit_test
