#pragma once
// Bit-level helpers shared by the formats: a constexpr-friendly bit_cast for float, and
// round-to-nearest-even right shifts on integers.
#include <cstdint>
#include <cstring>
#include <type_traits>

namespace lowbit::detail {

template <class To, class From>
inline To bit_cast(const From& from) noexcept {
  static_assert(sizeof(To) == sizeof(From) && std::is_trivially_copyable_v<From> &&
                std::is_trivially_copyable_v<To>);
  To to;
  std::memcpy(&to, &from, sizeof(To));
  return to;
}

inline std::uint32_t float_bits(float f) noexcept { return bit_cast<std::uint32_t>(f); }
inline float bits_float(std::uint32_t u) noexcept { return bit_cast<float>(u); }

// v >> shift, rounded to nearest with ties to even. shift may exceed 31 (result 0 then).
constexpr std::uint32_t shift_right_rne(std::uint32_t v, int shift) noexcept {
  if (shift <= 0) return v << (-shift);
  if (shift > 32) return 0;
  const std::uint64_t w = v;
  const std::uint64_t kept = w >> shift;
  const std::uint64_t rem = w & ((std::uint64_t{1} << shift) - 1);
  const std::uint64_t half = std::uint64_t{1} << (shift - 1);
  const bool up = rem > half || (rem == half && (kept & 1));
  return static_cast<std::uint32_t>(kept + (up ? 1 : 0));
}

}  // namespace lowbit::detail
