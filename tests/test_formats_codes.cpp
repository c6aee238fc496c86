// Every code of every small float format: its value matches the bit formula (computed here
// with std::ldexp, independently of the library), it round-trips through convert in both
// saturation modes, and the traits and type properties are what the specs say.
#include <catch2/catch.hpp>

#include <cmath>
#include <type_traits>

#include "test_formats_support.hpp"

// One namespace per test file, so that any set of test files can be compiled as one
// unity translation unit (tests/CMakeLists.txt) without their file-local names clashing.
namespace test_formats_codes_cpp {

using namespace lowbit;
using lowbit_test::bits_of;
using lowbit_test::spec_of;

#define LOWBIT_ELEMENT_FORMATS float8_e4m3fn, float8_e5m2, float6_e3m2fn, float6_e2m3fn, float4_e2m1fn

TEMPLATE_TEST_CASE("every code decodes to its bit formula", "[formats]",
                   LOWBIT_ELEMENT_FORMATS) {
  const auto spec = spec_of<TestType>();
  for (int c = 0; c < lowbit_test::code_count(spec); ++c) {
    const auto code = static_cast<std::uint8_t>(c);
    const float expected = lowbit_test::reference_decode(spec, code);
    const TestType t = TestType::from_bits(code);
    INFO(spec.name << " code " << c);
    REQUIRE(t.bits() == code);
    if (std::isnan(expected)) {
      REQUIRE(std::isnan(static_cast<float>(t)));
      REQUIRE(t.is_nan());
      REQUIRE(std::signbit(static_cast<float>(t)) == std::signbit(expected));
    } else {
      REQUIRE(bits_of(static_cast<float>(t)) == bits_of(expected));  // also checks -0
      REQUIRE(t.is_nan() == false);
      REQUIRE(t.is_inf() == std::isinf(expected));
    }
  }
}

TEMPLATE_TEST_CASE("from_bits ignores bits above the format's width", "[formats]",
                   LOWBIT_ELEMENT_FORMATS) {
  const auto spec = spec_of<TestType>();
  const int n = lowbit_test::code_count(spec);
  for (int b = 0; b < 256; ++b) {
    const TestType t = TestType::from_bits(static_cast<std::uint8_t>(b));
    REQUIRE(t.bits() == (b & (n - 1)));
  }
}

TEMPLATE_TEST_CASE("every code round-trips through convert", "[formats]",
                   LOWBIT_ELEMENT_FORMATS) {
  const auto spec = spec_of<TestType>();
  for (saturation s : {saturation::finite, saturation::none}) {
    for (int c = 0; c < lowbit_test::code_count(spec); ++c) {
      const TestType t = TestType::from_bits(static_cast<std::uint8_t>(c));
      const TestType back = convert<TestType>(static_cast<float>(t), s);
      INFO(spec.name << " code " << c << " saturation " << int(s));
      if (t.is_nan()) {
        // Every NaN code maps to the canonical NaN of its sign.
        REQUIRE(back.is_nan());
        REQUIRE((back.bits() & lowbit_test::sign_bit(spec)) == (c & lowbit_test::sign_bit(spec)));
      } else if (t.is_inf() && s == saturation::finite) {
        // Saturating conversion clamps Inf to the largest finite value of the same sign.
        REQUIRE(int(back.bits()) == ((c & int(lowbit_test::sign_bit(spec))) | TestType::max().bits()));
      } else {
        REQUIRE(int(back.bits()) == c);
      }
    }
  }
}

TEST_CASE("float8_e8m0fnu: every code is 2^(c-127), 0xFF is NaN, and round-trips",
          "[formats]") {
  for (int c = 0; c < 256; ++c) {
    const auto t = float8_e8m0fnu::from_bits(static_cast<std::uint8_t>(c));
    INFO("code " << c);
    if (c == 0xFF) {
      REQUIRE(std::isnan(static_cast<float>(t)));
      REQUIRE(t.is_nan());
      REQUIRE(convert<float8_e8m0fnu>(static_cast<float>(t)).bits() == 0xFF);
      continue;
    }
    REQUIRE(bits_of(static_cast<float>(t)) == bits_of(std::ldexp(1.0f, c - 127)));
    REQUIRE(t.exponent() == c - 127);
    REQUIRE(float8_e8m0fnu::from_exponent(c - 127).bits() == c);
    for (saturation s : {saturation::finite, saturation::none})
      REQUIRE(int(convert<float8_e8m0fnu>(static_cast<float>(t), s).bits()) == c);
  }
}

TEMPLATE_TEST_CASE("format types are one trivially copyable byte", "[formats]",
                   LOWBIT_ELEMENT_FORMATS, float8_e8m0fnu, int4, uint4) {
  STATIC_REQUIRE(sizeof(TestType) == 1);
  STATIC_REQUIRE(std::is_trivially_copyable_v<TestType>);
  STATIC_REQUIRE(std::is_trivially_default_constructible_v<TestType>);
  STATIC_REQUIRE(std::is_standard_layout_v<TestType>);
}

TEMPLATE_TEST_CASE("format_traits match the spec", "[formats]", LOWBIT_ELEMENT_FORMATS) {
  using tr = format_traits<TestType>;
  const auto spec = spec_of<TestType>();
  REQUIRE(tr::name == spec.name);
  REQUIRE(tr::bits == 1 + spec.exponent_bits + spec.mantissa_bits);
  REQUIRE(tr::exponent_bits == spec.exponent_bits);
  REQUIRE(tr::mantissa_bits == spec.mantissa_bits);
  REQUIRE(tr::bias == spec.bias);
  REQUIRE(tr::has_inf == (spec.kind == lowbit_test::specials::ieee));
  REQUIRE(tr::has_nan == (spec.kind != lowbit_test::specials::none));
  REQUIRE(tr::is_signed);
  REQUIRE(tr::code_count == unsigned(lowbit_test::code_count(spec)));
  REQUIRE(tr::max_finite() == spec.max_finite);
  REQUIRE(tr::min_subnormal() == spec.min_subnormal);
  REQUIRE(tr::min_normal() == std::ldexp(1.0f, 1 - spec.bias));
  REQUIRE(static_cast<float>(TestType::max()) == spec.max_finite);
  REQUIRE(static_cast<float>(TestType::lowest()) == -spec.max_finite);
  REQUIRE(static_cast<float>(TestType::min_subnormal()) == spec.min_subnormal);
  REQUIRE(static_cast<float>(TestType::zero()) == 0.0f);
  REQUIRE(tr::max_finite_code == TestType::max().bits());
  // No finite code exceeds max.
  for (int c = 0; c < lowbit_test::code_count(spec); ++c) {
    const float v = static_cast<float>(TestType::from_bits(static_cast<std::uint8_t>(c)));
    if (std::isfinite(v)) REQUIRE(std::fabs(v) <= spec.max_finite);
  }
}

TEST_CASE("format_traits of float8_e8m0fnu", "[formats]") {
  using tr = format_traits<float8_e8m0fnu>;
  REQUIRE(tr::name == "float8_e8m0fnu");
  REQUIRE(tr::bits == 8);
  REQUIRE_FALSE(tr::has_inf);
  REQUIRE(tr::has_nan);
  REQUIRE_FALSE(tr::is_signed);
  REQUIRE(tr::max_finite() == std::ldexp(1.0f, 127));
  REQUIRE(tr::min_subnormal() == std::ldexp(1.0f, -127));
  REQUIRE(tr::max_finite_code == 0xFE);
}

TEST_CASE("type lists name every format once, in order", "[formats]") {
  std::string names;
  for_each_format(all_float_formats{}, [&](auto t) {
    names += std::string(format_traits<decltype(t)>::name) + " ";
  });
  REQUIRE(names == "float8_e4m3fn float8_e5m2 float6_e3m2fn float6_e2m3fn float4_e2m1fn float8_e8m0fnu ");
  int count = 0;
  for_each_format(element_float_formats{}, [&](auto) { ++count; });
  REQUIRE(count == 5);
}

TEST_CASE("int4 and uint4 codes", "[formats]") {
  for (int c = 0; c < 16; ++c) {
    const auto i = int4::from_bits(static_cast<std::uint8_t>(c));
    REQUIRE(i.to_int() == (c < 8 ? c : c - 16));
    REQUIRE(static_cast<float>(i) == float(i.to_int()));
    REQUIRE(int4::from_int(i.to_int()).bits() == c);
    const auto u = uint4::from_bits(static_cast<std::uint8_t>(c));
    REQUIRE(u.to_int() == c);
    REQUIRE(uint4::from_int(c).bits() == c);
  }
  REQUIRE(int4::from_int(100).to_int() == 7);
  REQUIRE(int4::from_int(-100).to_int() == -8);
  REQUIRE(uint4::from_int(-3).to_int() == 0);
  REQUIRE(uint4::from_int(99).to_int() == 15);
  REQUIRE(int4::from_bits(0xF3).bits() == 0x3);
}
}  // namespace test_formats_codes_cpp
