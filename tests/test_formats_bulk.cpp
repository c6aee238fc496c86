// Bulk conversion (convert_n / to_float_n) equals the scalar conversion bit for bit, for
// every ISA tier this CPU runs (scalar forced included), every format, both saturation
// modes, every length 0..1000 and unaligned starts, with special values mixed in. Guard
// bytes after each output catch writes past the end of the array.
#include <catch2/catch.hpp>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <limits>
#include <random>
#include <string>
#include <vector>

#include "test_formats_support.hpp"

// One namespace per test file, so that any set of test files can be compiled as one
// unity translation unit (tests/CMakeLists.txt) without their file-local names clashing.
namespace test_formats_bulk_cpp {

using namespace lowbit;
using lowbit_test::bits_of;
using lowbit_test::float_of;

namespace {

constexpr std::size_t max_len = 1000;
constexpr std::size_t max_offset = 15;  // unaligned starts: 0..15 elements in
constexpr std::size_t guard = 64;
constexpr std::uint8_t guard_byte = 0xA5;

// Inputs that stress every branch of the encoders: NaNs (payloads, both signs), infinities,
// zeros, float subnormals, each format's codes, midpoints and their neighbours, values just
// over the top, random exponents and random bit patterns.
template <class T>
std::vector<float> make_inputs(std::mt19937& rng, std::size_t n) {
  std::vector<float> special = {0.0f, -0.0f, std::numeric_limits<float>::infinity(),
                                -std::numeric_limits<float>::infinity(),
                                std::numeric_limits<float>::quiet_NaN(), -std::numeric_limits<float>::quiet_NaN(),
                                float_of(0x7f800001u), float_of(0xffbfffffu), float_of(0x00000001u),
                                float_of(0x80600000u), float_of(0x00400000u), float_of(0x00600000u),
                                std::numeric_limits<float>::max(), -std::numeric_limits<float>::max(),
                                std::numeric_limits<float>::min(), 448.0f, 464.0f, 465.0f, 480.0f, 1e6f,
                                57344.0f, 61440.0f, 6.0f, 7.0f, 8.0f, 28.0f, 30.0f, 7.5f, 7.75f, 1.5f,
                                0x1.8p127f, 0x1p-127f};
  const std::size_t codes = std::size_t{1} << format_traits<T>::bits;
  for (std::size_t c = 0; c + 1 < codes; ++c) {
    const float lo = T::from_bits(static_cast<std::uint8_t>(c)).to_float();
    const float hi = T::from_bits(static_cast<std::uint8_t>(c + 1)).to_float();
    special.push_back(lo);
    if (std::isfinite(lo) && std::isfinite(hi)) {
      const float mid = lo + (hi - lo) / 2;
      special.push_back(mid);
      special.push_back(std::nextafter(mid, lo));
      special.push_back(std::nextafter(mid, hi));
    }
  }
  std::vector<float> out(n);
  std::uniform_int_distribution<int> pick(0, 3), exp_dist(-140, 130);
  std::uniform_int_distribution<std::size_t> special_idx(0, special.size() - 1);
  std::uniform_real_distribution<float> mant(-2.0f, 2.0f);
  for (auto& x : out) {
    switch (pick(rng)) {
      case 0: x = special[special_idx(rng)]; break;
      case 1: x = float_of(static_cast<std::uint32_t>(rng())); break;
      default: x = std::ldexp(mant(rng), exp_dist(rng)); break;
    }
  }
  return out;
}

std::string tier_name(isa_tier t) { return std::string(to_string(t)); }

template <class T>
void check_convert_n(isa_tier tier, saturation s) {
  std::mt19937 rng(1234);
  const std::vector<float> input = make_inputs<T>(rng, max_len + max_offset);
  std::vector<T> expected(max_len + max_offset);
  detail::convert_n_scalar(input.data(), expected.data(), input.size(), s);
  std::vector<std::uint8_t> out(max_len + max_offset + guard);
  for (std::size_t n = 0; n <= max_len; ++n) {
    const std::size_t offset = n % (max_offset + 1);
    std::memset(out.data(), guard_byte, out.size());
    auto* dst = reinterpret_cast<T*>(out.data() + offset);
    detail::convert_n_tier(tier, input.data() + offset, dst, n, s);
    for (std::size_t i = 0; i < n; ++i) {
      if (dst[i].bits() != expected[offset + i].bits()) {
        FAIL_CHECK(format_traits<T>::name << " tier " << tier_name(tier) << " saturation " << int(s) << " n "
                                          << n << " i " << i << " x " << input[offset + i] << " (bits 0x"
                                          << std::hex << bits_of(input[offset + i]) << ") got 0x"
                                          << int(dst[i].bits()) << " want 0x" << int(expected[offset + i].bits()));
        return;
      }
    }
    bool guards_intact = true;
    for (std::size_t i = 0; i < out.size(); ++i)
      if ((i < offset || i >= offset + n) && out[i] != guard_byte) guards_intact = false;
    INFO(format_traits<T>::name << " tier " << tier_name(tier) << " n " << n << " offset " << offset);
    REQUIRE(guards_intact);
  }
}

template <class T>
void check_to_float_n(isa_tier tier) {
  std::mt19937 rng(99);
  std::vector<T> input(max_len + max_offset);
  for (auto& c : input) c = T::from_bits(static_cast<std::uint8_t>(rng()));
  std::vector<float> expected(input.size());
  detail::to_float_n_scalar(input.data(), expected.data(), input.size());
  const float guard_value = float_of(0x7fa5a5a5u);
  std::vector<float> out(max_len + max_offset + guard);
  for (std::size_t n = 0; n <= max_len; ++n) {
    const std::size_t offset = (n * 7) % (max_offset + 1);
    std::fill(out.begin(), out.end(), guard_value);
    detail::to_float_n_tier(tier, input.data() + offset, out.data() + offset, n);
    for (std::size_t i = 0; i < n; ++i) {
      if (bits_of(out[offset + i]) != bits_of(expected[offset + i])) {
        FAIL_CHECK(format_traits<T>::name << " tier " << tier_name(tier) << " n " << n << " code 0x" << std::hex
                                          << int(input[offset + i].bits()) << " got 0x"
                                          << bits_of(out[offset + i]) << " want 0x"
                                          << bits_of(expected[offset + i]));
        return;
      }
    }
    bool guards_intact = true;
    for (std::size_t i = 0; i < out.size(); ++i)
      if ((i < offset || i >= offset + n) && bits_of(out[i]) != bits_of(guard_value)) guards_intact = false;
    INFO(format_traits<T>::name << " tier " << tier_name(tier) << " n " << n << " offset " << offset);
    REQUIRE(guards_intact);
  }
}

}  // namespace

TEMPLATE_TEST_CASE("convert_n equals convert<T> on every tier", "[formats]", float8_e4m3fn,
                   float8_e5m2, float6_e3m2fn, float6_e2m3fn, float4_e2m1fn, float8_e8m0fnu) {
  for (isa_tier tier : supported_isa_tiers()) {
    for (saturation s : {saturation::finite, saturation::none}) {
      INFO("tier " << tier_name(tier));
      check_convert_n<TestType>(tier, s);
    }
  }
}

TEMPLATE_TEST_CASE("to_float_n equals to_float on every tier", "[formats]", float8_e4m3fn,
                   float8_e5m2, float6_e3m2fn, float6_e2m3fn, float4_e2m1fn, float8_e8m0fnu) {
  for (isa_tier tier : supported_isa_tiers()) check_to_float_n<TestType>(tier);
}

TEMPLATE_TEST_CASE("every code decodes the same on every tier", "[formats]", float8_e4m3fn,
                   float8_e5m2, float6_e3m2fn, float6_e2m3fn, float4_e2m1fn, float8_e8m0fnu) {
  std::vector<TestType> codes(256);
  for (int c = 0; c < 256; ++c) codes[c] = TestType::from_bits(static_cast<std::uint8_t>(c));
  std::vector<float> values(256), back_in(256);
  for (isa_tier tier : supported_isa_tiers()) {
    detail::to_float_n_tier(tier, codes.data(), values.data(), codes.size());
    for (int c = 0; c < 256; ++c) {
      INFO("tier " << tier_name(tier) << " code " << c);
      REQUIRE(bits_of(values[c]) == bits_of(codes[c].to_float()));
    }
    // And back: every non-NaN code survives a bulk round trip.
    std::vector<TestType> again(256);
    detail::convert_n_tier(tier, values.data(), again.data(), values.size(), saturation::none);
    for (int c = 0; c < 256; ++c) {
      if (codes[c].is_nan()) {
        REQUIRE(again[c].is_nan());
      } else {
        REQUIRE(again[c].bits() == codes[c].bits());
      }
    }
  }
}

TEST_CASE("the public convert_n/to_float_n use a supported tier and agree with scalar",
          "[formats]") {
  const auto tiers = supported_isa_tiers();
  REQUIRE(tiers.front() == isa_tier::scalar);
  REQUIRE(std::find(tiers.begin(), tiers.end(), selected_isa_tier()) != tiers.end());
  std::mt19937 rng(7);
  const auto x = make_inputs<float8_e4m3fn>(rng, 333);
  std::vector<float8_e4m3fn> a(x.size()), b(x.size());
  convert_n(x.data(), a.data(), x.size());
  detail::convert_n_scalar(x.data(), b.data(), x.size(), saturation::finite);
  for (std::size_t i = 0; i < x.size(); ++i) REQUIRE(a[i].bits() == b[i].bits());
  std::vector<float> fa(x.size()), fb(x.size());
  to_float_n(a.data(), fa.data(), a.size());
  detail::to_float_n_scalar(a.data(), fb.data(), a.size());
  for (std::size_t i = 0; i < x.size(); ++i) REQUIRE(bits_of(fa[i]) == bits_of(fb[i]));
}

TEST_CASE("a tier this CPU lacks is refused with lowbit::error", "[formats]") {
  const auto tiers = supported_isa_tiers();
  float x[4] = {1, 2, 3, 4};
  float4_e2m1fn y[4];
  for (isa_tier t : {isa_tier::scalar, isa_tier::avx2, isa_tier::avx512, isa_tier::neon}) {
    if (std::find(tiers.begin(), tiers.end(), t) != tiers.end()) continue;
    REQUIRE_THROWS_AS(detail::convert_n_tier(t, x, y, 4, saturation::finite), lowbit::error);
    REQUIRE_THROWS_AS(detail::to_float_n_tier(t, y, x, 4), lowbit::error);
  }
}
}  // namespace test_formats_bulk_cpp
