#pragma once
// float8_e8m0fnu: the OCP MX shared-scale type. An unsigned 8-bit exponent, bias 127:
// code c means 2^(c - 127) for c in 0..254 (2^-127 .. 2^127); 0xFF is NaN. No zero, no sign.
#include <array>
#include <cstdint>
#include <limits>

#include "lowbit/formats/exmy.hpp"

namespace lowbit {

struct e8m0_desc {
  static constexpr int exponent_bits = 8;
  static constexpr int mantissa_bits = 0;
  static constexpr int bias = 127;
  static constexpr int bits = 8;
  static constexpr std::uint8_t code_mask = 0xFF;
  static constexpr std::uint8_t max_finite_code = 0xFE;
  static constexpr std::uint8_t nan_code = 0xFF;
  static constexpr bool has_inf = false;
  static constexpr bool has_nan = true;

  static constexpr bool is_nan_code(std::uint8_t c) noexcept { return c == 0xFF; }
  static constexpr bool is_inf_code(std::uint8_t) noexcept { return false; }
  static constexpr float decode(std::uint8_t c) noexcept {
    return c == 0xFF ? std::numeric_limits<float>::quiet_NaN() : detail::exp2i(int(c) - 127);
  }

  // Nearest power of two with ties rounding up (the midpoint 1.5 * 2^e goes to 2^(e+1)), as
  // ml_dtypes does. Zero, negative and NaN inputs give NaN (0xFF): there is no code for them.
  // Values below 2^-127 give 2^-127; overflow saturates to 2^127 (finite) or gives NaN (none).
  // MX quantization does not use this: it computes scales with the spec's floor rule.
  static constexpr std::uint8_t encode(float x, saturation sat) noexcept {
    const std::uint32_t u = detail::float_bits_c(x);
    if ((u >> 31) != 0 || u == 0 || (u & 0x7fffffffu) > 0x7f800000u) return nan_code;
    if (u == 0x7f800000u) return sat == saturation::none ? nan_code : max_finite_code;
    const int fexp = static_cast<int>(u >> 23);
    const std::uint32_t mant = u & 0x7fffffu;
    int e = 0;         // floor(log2 x)
    bool up = false;   // x >= 1.5 * 2^e
    if (fexp != 0) {
      e = fexp - 127;
      up = (mant & 0x400000u) != 0;
    } else {
      int p = 22;
      while (((mant >> p) & 1u) == 0) --p;  // mant != 0 here
      e = p - 149;
      up = p > 0 && ((mant >> (p - 1)) & 1u) != 0;
    }
    int code = e + 127 + (up ? 1 : 0);
    if (code < 0) code = 0;
    if (code > 254) return sat == saturation::none ? nan_code : max_finite_code;
    return static_cast<std::uint8_t>(code);
  }

  static constexpr std::array<float, 256> make_table() noexcept {
    std::array<float, 256> t{};
    for (unsigned c = 0; c < 256; ++c) t[c] = decode(static_cast<std::uint8_t>(c));
    return t;
  }
};

struct float8_e8m0fnu {
  using desc = e8m0_desc;
  static constexpr std::array<float, 256> decode_table = e8m0_desc::make_table();

  float8_e8m0fnu() = default;
  constexpr explicit float8_e8m0fnu(float x) noexcept : rep_(e8m0_desc::encode(x, saturation::finite)) {}
  static constexpr float8_e8m0fnu from_bits(std::uint8_t b) noexcept {
    return float8_e8m0fnu(bits_tag{}, b);
  }
  // 2^e exactly, for e in [-127, 127].
  static constexpr float8_e8m0fnu from_exponent(int e) noexcept {
    return from_bits(static_cast<std::uint8_t>(e + 127));
  }
  constexpr std::uint8_t bits() const noexcept { return rep_; }
  constexpr int exponent() const noexcept { return int(rep_) - 127; }
  constexpr float to_float() const noexcept { return decode_table[rep_]; }
  constexpr explicit operator float() const noexcept { return to_float(); }
  constexpr bool is_nan() const noexcept { return rep_ == 0xFF; }
  constexpr bool is_inf() const noexcept { return false; }

  static constexpr float8_e8m0fnu max() noexcept { return from_bits(0xFE); }
  static constexpr float8_e8m0fnu lowest() noexcept { return from_bits(0x00); }
  static constexpr float8_e8m0fnu min_normal() noexcept { return from_bits(0x00); }
  static constexpr float8_e8m0fnu min_subnormal() noexcept { return from_bits(0x00); }

 private:
  struct bits_tag {};
  constexpr float8_e8m0fnu(bits_tag, std::uint8_t b) noexcept : rep_(b) {}
  std::uint8_t rep_;
};

}  // namespace lowbit
