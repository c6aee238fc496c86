#pragma once
// Nibble packing for every 4-bit format (int4, uint4, float4_e2m1fn).
//
// Layout: element 2i goes in the LOW nibble of byte i, element 2i+1 in the HIGH nibble
// (the order of ggml, PyTorch's uint4x2 and ml_dtypes). An odd count leaves the high nibble
// of the last byte zero. Rows of a matrix each start on a byte boundary.
#include <cstddef>
#include <cstdint>

namespace lowbit {

constexpr std::size_t packed_nibble_bytes(std::size_t n) noexcept { return (n + 1) / 2; }

// Packs the low 4 bits of each of `n` codes into packed_nibble_bytes(n) bytes.
inline void pack_nibbles(const std::uint8_t* codes, std::size_t n, std::uint8_t* out) noexcept {
  const std::size_t pairs = n / 2;
  for (std::size_t i = 0; i < pairs; ++i)
    out[i] = static_cast<std::uint8_t>((codes[2 * i] & 0xF) | ((codes[2 * i + 1] & 0xF) << 4));
  if (n & 1) out[pairs] = static_cast<std::uint8_t>(codes[n - 1] & 0xF);
}

// Unpacks `n` codes (each 0..15) from packed_nibble_bytes(n) bytes.
inline void unpack_nibbles(const std::uint8_t* packed, std::size_t n, std::uint8_t* codes) noexcept {
  const std::size_t pairs = n / 2;
  for (std::size_t i = 0; i < pairs; ++i) {
    codes[2 * i] = packed[i] & 0xF;
    codes[2 * i + 1] = packed[i] >> 4;
  }
  if (n & 1) codes[n - 1] = packed[pairs] & 0xF;
}

// The i-th nibble of a packed buffer.
constexpr std::uint8_t get_nibble(const std::uint8_t* packed, std::size_t i) noexcept {
  return (i & 1) ? static_cast<std::uint8_t>(packed[i / 2] >> 4) : static_cast<std::uint8_t>(packed[i / 2] & 0xF);
}
inline void set_nibble(std::uint8_t* packed, std::size_t i, std::uint8_t v) noexcept {
  std::uint8_t& b = packed[i / 2];
  b = (i & 1) ? static_cast<std::uint8_t>((b & 0x0F) | ((v & 0xF) << 4))
              : static_cast<std::uint8_t>((b & 0xF0) | (v & 0xF));
}

}  // namespace lowbit
