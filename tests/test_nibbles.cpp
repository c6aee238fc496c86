// Nibble packing: low nibble first, odd counts leave the last high nibble zero, and packing
// round-trips every byte value and every length.
#include <catch2/catch.hpp>

#include <cstdint>
#include <random>
#include <vector>

#include "lowbit/formats.hpp"

// One namespace per test file, so that any set of test files can be compiled as one
// unity translation unit (tests/CMakeLists.txt) without their file-local names clashing.
namespace test_nibbles_cpp {

using namespace lowbit;

TEST_CASE("every byte value round-trips through unpack and pack", "[nibbles]") {
  for (int b = 0; b < 256; ++b) {
    const std::uint8_t byte = static_cast<std::uint8_t>(b);
    std::uint8_t codes[2] = {0xEE, 0xEE};
    unpack_nibbles(&byte, 2, codes);
    REQUIRE(codes[0] == (b & 0xF));  // element 0 is the low nibble
    REQUIRE(codes[1] == (b >> 4));
    REQUIRE(get_nibble(&byte, 0) == (b & 0xF));
    REQUIRE(get_nibble(&byte, 1) == (b >> 4));
    std::uint8_t packed = 0x5A;
    pack_nibbles(codes, 2, &packed);
    REQUIRE(packed == byte);
    std::uint8_t built = 0;
    set_nibble(&built, 1, codes[1]);
    set_nibble(&built, 0, codes[0]);
    REQUIRE(built == byte);
  }
}

TEST_CASE("pack/unpack round-trips every length, odd ones included", "[nibbles]") {
  std::mt19937 rng(5);
  for (std::size_t n = 0; n <= 67; ++n) {
    std::vector<std::uint8_t> codes(n);
    for (auto& c : codes) c = static_cast<std::uint8_t>(rng() & 0xF);
    const std::size_t bytes = packed_nibble_bytes(n);
    REQUIRE(bytes == (n + 1) / 2);
    std::vector<std::uint8_t> packed(bytes + 1, 0xCC);  // one guard byte
    pack_nibbles(codes.data(), n, packed.data());
    REQUIRE(packed[bytes] == 0xCC);
    if (n & 1) REQUIRE((packed[bytes - 1] >> 4) == 0);  // odd count: high nibble zero
    for (std::size_t i = 0; i < n; ++i) REQUIRE(get_nibble(packed.data(), i) == codes[i]);
    std::vector<std::uint8_t> back(n + 1, 0xDD);
    unpack_nibbles(packed.data(), n, back.data());
    REQUIRE(back[n] == 0xDD);
    back.pop_back();
    REQUIRE(back == codes);
  }
}

TEST_CASE("pack_nibbles keeps only the low 4 bits of each code", "[nibbles]") {
  const std::uint8_t codes[3] = {0xF1, 0x72, 0xA3};
  std::uint8_t packed[2] = {0xFF, 0xFF};
  pack_nibbles(codes, 3, packed);
  REQUIRE(packed[0] == 0x21);
  REQUIRE(packed[1] == 0x03);
}

TEST_CASE("set_nibble leaves the other nibble alone", "[nibbles]") {
  std::uint8_t buf[3] = {0x00, 0xFF, 0x5A};
  set_nibble(buf, 0, 0x7);
  set_nibble(buf, 3, 0x1);
  set_nibble(buf, 4, 0xFC);  // only 0xC is kept
  REQUIRE(buf[0] == 0x07);
  REQUIRE(buf[1] == 0x1F);
  REQUIRE(buf[2] == 0x5C);
}

TEST_CASE("E2M1 and int4 codes pack as nibbles and decode back", "[nibbles]") {
  std::vector<float> x = {0.0f, 0.5f, -1.0f, 1.5f, 2.0f, -3.0f, 4.0f, 6.0f, -6.0f, 0.25f, 100.0f};
  std::vector<float4_e2m1fn> q(x.size());
  convert_n(x.data(), q.data(), x.size());
  std::vector<std::uint8_t> codes(x.size()), packed(packed_nibble_bytes(x.size()));
  for (std::size_t i = 0; i < x.size(); ++i) codes[i] = q[i].bits();
  pack_nibbles(codes.data(), codes.size(), packed.data());
  for (std::size_t i = 0; i < x.size(); ++i) {
    const float back = float4_e2m1fn::from_bits(get_nibble(packed.data(), i)).to_float();
    REQUIRE(back == convert<float4_e2m1fn>(x[i]).to_float());
  }
  const int4 v = int4::from_int(-3);
  std::uint8_t b = 0;
  set_nibble(&b, 1, v.bits());
  REQUIRE(int4::from_bits(get_nibble(&b, 1)).to_int() == -3);
}
}  // namespace test_nibbles_cpp
