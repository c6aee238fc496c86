#pragma once
// Element types of safetensors tensors: their names in the file, their sizes, and exact
// conversion of the floating and integer ones to float (for quantizer input).
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <optional>
#include <string_view>

#include "lowbit/formats/float8.hpp"

namespace lowbit {

enum class tensor_dtype : std::uint8_t {
  f64, f32, f16, bf16, f8_e4m3, f8_e5m2, i64, i32, i16, i8, u64, u32, u16, u8, boolean,
};

// The dtype's spelling in a safetensors header ("F32", "BF16", "F8_E4M3", ...).
constexpr std::string_view dtype_name(tensor_dtype t) noexcept {
  switch (t) {
    case tensor_dtype::f64: return "F64";
    case tensor_dtype::f32: return "F32";
    case tensor_dtype::f16: return "F16";
    case tensor_dtype::bf16: return "BF16";
    case tensor_dtype::f8_e4m3: return "F8_E4M3";
    case tensor_dtype::f8_e5m2: return "F8_E5M2";
    case tensor_dtype::i64: return "I64";
    case tensor_dtype::i32: return "I32";
    case tensor_dtype::i16: return "I16";
    case tensor_dtype::i8: return "I8";
    case tensor_dtype::u64: return "U64";
    case tensor_dtype::u32: return "U32";
    case tensor_dtype::u16: return "U16";
    case tensor_dtype::u8: return "U8";
    case tensor_dtype::boolean: return "BOOL";
  }
  return "?";
}

constexpr std::size_t dtype_size(tensor_dtype t) noexcept {
  switch (t) {
    case tensor_dtype::f64: case tensor_dtype::i64: case tensor_dtype::u64: return 8;
    case tensor_dtype::f32: case tensor_dtype::i32: case tensor_dtype::u32: return 4;
    case tensor_dtype::f16: case tensor_dtype::bf16: case tensor_dtype::i16: case tensor_dtype::u16: return 2;
    default: return 1;
  }
}

inline std::optional<tensor_dtype> dtype_from_name(std::string_view s) noexcept {
  for (int i = 0; i <= static_cast<int>(tensor_dtype::boolean); ++i) {
    const auto t = static_cast<tensor_dtype>(i);
    if (dtype_name(t) == s) return t;
  }
  return std::nullopt;
}

// Whether to_float() converts this dtype (64-bit integers and bool are raw-only).
constexpr bool dtype_converts_to_float(tensor_dtype t) noexcept {
  return t != tensor_dtype::i64 && t != tensor_dtype::u64 && t != tensor_dtype::boolean;
}

namespace detail {

inline float bits_to_float(std::uint32_t u) noexcept {
  float f;
  std::memcpy(&f, &u, 4);
  return f;
}
inline std::uint32_t float_to_bits(float f) noexcept {
  std::uint32_t u;
  std::memcpy(&u, &f, 4);
  return u;
}

// IEEE binary16 -> float, exact (subnormals, Inf and NaN included).
inline float half_to_float(std::uint16_t h) noexcept {
  const std::uint32_t sign = static_cast<std::uint32_t>(h & 0x8000u) << 16;
  const std::uint32_t exp = (h >> 10) & 0x1Fu;
  std::uint32_t man = h & 0x3FFu;
  if (exp == 0x1F) return bits_to_float(sign | 0x7F800000u | (man << 13));
  if (exp != 0) return bits_to_float(sign | ((exp + 112u) << 23) | (man << 13));
  if (man == 0) return bits_to_float(sign);
  // Subnormal: value = man * 2^-24; normalize into a float.
  int e = -1;
  do { man <<= 1; ++e; } while ((man & 0x400u) == 0);
  return bits_to_float(sign | static_cast<std::uint32_t>(112 - e) << 23 | ((man & 0x3FFu) << 13));
}

// float -> binary16, round to nearest even, overflow to Inf (IEEE conversion).
inline std::uint16_t float_to_half(float f) noexcept {
  const std::uint32_t u = float_to_bits(f);
  const std::uint16_t sign = static_cast<std::uint16_t>((u >> 16) & 0x8000u);
  const std::uint32_t a = u & 0x7FFFFFFFu;
  if (a > 0x7F800000u) return static_cast<std::uint16_t>(sign | 0x7E00u | ((a >> 13) & 0x3FFu));
  if (a >= 0x47800000u) return static_cast<std::uint16_t>(sign | 0x7C00u);  // >= 65536: Inf
  if (a < 0x38800000u) {  // below the smallest normal half (2^-14): subnormal or zero
    if (a < 0x33000000u) return sign;  // < 2^-25 rounds to zero (2^-25 itself ties to 0)
    const std::uint32_t man = (a & 0x7FFFFFu) | 0x800000u;
    const int shift = 126 - static_cast<int>(a >> 23);  // 14..24 for this range
    const std::uint32_t q = man >> shift, rem = man & ((1u << shift) - 1), half = 1u << (shift - 1);
    const std::uint32_t r = q + ((rem > half || (rem == half && (q & 1u))) ? 1u : 0u);
    return static_cast<std::uint16_t>(sign | r);
  }
  const std::uint32_t r = a - 0x38000000u;  // rebias exponent 127 -> 15
  const std::uint32_t q = r >> 13, rem = r & 0x1FFFu;
  const std::uint32_t out = q + ((rem > 0x1000u || (rem == 0x1000u && (q & 1u))) ? 1u : 0u);
  return static_cast<std::uint16_t>(sign | out);  // a carry into the exponent is correct (and 0x7C00 = Inf)
}

inline float bf16_to_float(std::uint16_t b) noexcept { return bits_to_float(static_cast<std::uint32_t>(b) << 16); }

// float -> bfloat16, round to nearest even; NaN stays a quiet NaN.
inline std::uint16_t float_to_bf16(float f) noexcept {
  const std::uint32_t u = float_to_bits(f);
  if ((u & 0x7FFFFFFFu) > 0x7F800000u) return static_cast<std::uint16_t>((u >> 16) | 0x40u);
  const std::uint32_t rounded = u + 0x7FFFu + ((u >> 16) & 1u);
  return static_cast<std::uint16_t>(rounded >> 16);
}

template <class T>
inline T load_unaligned(const std::byte* p) noexcept {
  T v;
  std::memcpy(&v, p, sizeof(T));
  return v;
}

}  // namespace detail

// Converts n elements of `dtype` at `src` (any alignment, little-endian as safetensors
// stores them) to float. Returns false for dtypes that do not convert (I64, U64, BOOL).
inline bool dtype_to_float(tensor_dtype dtype, const std::byte* src, float* out, std::size_t n) noexcept {
  using detail::load_unaligned;
  switch (dtype) {
    case tensor_dtype::f32: std::memcpy(out, src, n * 4); return true;
    case tensor_dtype::f64:
      for (std::size_t i = 0; i < n; ++i) out[i] = static_cast<float>(load_unaligned<double>(src + 8 * i));
      return true;
    case tensor_dtype::f16:
      for (std::size_t i = 0; i < n; ++i) out[i] = detail::half_to_float(load_unaligned<std::uint16_t>(src + 2 * i));
      return true;
    case tensor_dtype::bf16:
      for (std::size_t i = 0; i < n; ++i) out[i] = detail::bf16_to_float(load_unaligned<std::uint16_t>(src + 2 * i));
      return true;
    case tensor_dtype::f8_e4m3:
      for (std::size_t i = 0; i < n; ++i) out[i] = float8_e4m3fn::from_bits(static_cast<std::uint8_t>(src[i])).to_float();
      return true;
    case tensor_dtype::f8_e5m2:
      for (std::size_t i = 0; i < n; ++i) out[i] = float8_e5m2::from_bits(static_cast<std::uint8_t>(src[i])).to_float();
      return true;
    case tensor_dtype::i32:
      for (std::size_t i = 0; i < n; ++i) out[i] = static_cast<float>(load_unaligned<std::int32_t>(src + 4 * i));
      return true;
    case tensor_dtype::u32:
      for (std::size_t i = 0; i < n; ++i) out[i] = static_cast<float>(load_unaligned<std::uint32_t>(src + 4 * i));
      return true;
    case tensor_dtype::i16:
      for (std::size_t i = 0; i < n; ++i) out[i] = static_cast<float>(load_unaligned<std::int16_t>(src + 2 * i));
      return true;
    case tensor_dtype::u16:
      for (std::size_t i = 0; i < n; ++i) out[i] = static_cast<float>(load_unaligned<std::uint16_t>(src + 2 * i));
      return true;
    case tensor_dtype::i8:
      for (std::size_t i = 0; i < n; ++i) out[i] = static_cast<float>(static_cast<std::int8_t>(src[i]));
      return true;
    case tensor_dtype::u8:
      for (std::size_t i = 0; i < n; ++i) out[i] = static_cast<float>(static_cast<std::uint8_t>(src[i]));
      return true;
    default: return false;
  }
}

}  // namespace lowbit
