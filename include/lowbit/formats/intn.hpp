#pragma once
// 4-bit integers: lowbit::int4 (two's complement, -8..7) and lowbit::uint4 (0..15), each a
// one-byte value holding the nibble in its low 4 bits. Symmetric quantizers use -7..7 and
// leave -8 unused, so that negation is exact; Q4_0-style scale rules may use -8.
#include <cmath>
#include <cstdint>

namespace lowbit {

namespace detail {
// Round half to even, then clamp to [lo, hi]. NaN gives 0.
inline int round_clamp(float x, int lo, int hi) noexcept {
  if (!(x == x)) return 0;
  if (x <= static_cast<float>(lo)) return lo;
  if (x >= static_cast<float>(hi)) return hi;
  return static_cast<int>(std::nearbyint(x));
}
}  // namespace detail

struct int4 {
  static constexpr int min_value = -8;
  static constexpr int max_value = 7;
  static constexpr int bits_count = 4;
  int4() = default;
  static constexpr int4 from_bits(std::uint8_t b) noexcept {
    return int4(bits_tag{}, static_cast<std::uint8_t>(b & 0xF));
  }
  static constexpr int4 from_int(int i) noexcept {
    return from_bits(static_cast<std::uint8_t>(i < min_value ? min_value : i > max_value ? max_value : i));
  }
  constexpr std::uint8_t bits() const noexcept { return rep_; }
  constexpr int to_int() const noexcept { return (rep_ & 0x8) ? int(rep_) - 16 : int(rep_); }
  constexpr float to_float() const noexcept { return static_cast<float>(to_int()); }
  constexpr explicit operator float() const noexcept { return to_float(); }

 private:
  struct bits_tag {};
  constexpr int4(bits_tag, std::uint8_t b) noexcept : rep_(b) {}
  std::uint8_t rep_;
};

struct uint4 {
  static constexpr int min_value = 0;
  static constexpr int max_value = 15;
  static constexpr int bits_count = 4;
  uint4() = default;
  static constexpr uint4 from_bits(std::uint8_t b) noexcept {
    return uint4(bits_tag{}, static_cast<std::uint8_t>(b & 0xF));
  }
  static constexpr uint4 from_int(int i) noexcept {
    return from_bits(static_cast<std::uint8_t>(i < 0 ? 0 : i > 15 ? 15 : i));
  }
  constexpr std::uint8_t bits() const noexcept { return rep_; }
  constexpr int to_int() const noexcept { return rep_; }
  constexpr float to_float() const noexcept { return static_cast<float>(rep_); }
  constexpr explicit operator float() const noexcept { return to_float(); }

 private:
  struct bits_tag {};
  constexpr uint4(bits_tag, std::uint8_t b) noexcept : rep_(b) {}
  std::uint8_t rep_;
};

}  // namespace lowbit
