// Rounding of convert<T>: every midpoint between adjacent representable values goes to the
// even code and one float ulp either side goes to the nearer code; the boundaries of
// DESIGN.md §3 (overflow, Inf, NaN, zeros, smallest subnormals) in both saturation modes;
// the E8M0 rules (nearest power of two, ties up, no zero).
#include <catch2/catch.hpp>

#include <cmath>
#include <limits>
#include <vector>

#include "test_formats_support.hpp"

// One namespace per test file, so that any set of test files can be compiled as one
// unity translation unit (tests/CMakeLists.txt) without their file-local names clashing.
namespace test_formats_rounding_cpp {

using namespace lowbit;
using lowbit_test::spec_of;

namespace {

constexpr float inf = std::numeric_limits<float>::infinity();
const float qnan = std::numeric_limits<float>::quiet_NaN();
constexpr saturation both_modes[] = {saturation::finite, saturation::none};

float next_up(float x) { return std::nextafter(x, inf); }
float next_down(float x) { return std::nextafter(x, -inf); }

template <class T>
unsigned code_of(float x, saturation s) {
  return convert<T>(x, s).bits();
}

struct boundary {
  float x;
  unsigned finite_code, none_code;
};

template <class T>
void check_boundaries(const std::vector<boundary>& cases) {
  for (const auto& b : cases) {
    INFO(format_traits<T>::name << " x = " << b.x);
    CHECK(code_of<T>(b.x, saturation::finite) == b.finite_code);
    CHECK(code_of<T>(b.x, saturation::none) == b.none_code);
  }
}

}  // namespace

TEMPLATE_TEST_CASE("every midpoint rounds to the even code, +-1 ulp to the nearer",
                   "[formats]", float8_e4m3fn, float8_e5m2, float6_e3m2fn,
                   float6_e2m3fn, float4_e2m1fn) {
  const auto spec = spec_of<TestType>();
  const unsigned sign = lowbit_test::sign_bit(spec);
  int midpoints = 0;
  for (unsigned c = 0; c + 1 < sign; ++c) {
    const float lo = lowbit_test::reference_decode(spec, c);
    const float hi = lowbit_test::reference_decode(spec, c + 1);
    if (!std::isfinite(hi)) break;  // past max finite
    REQUIRE(lo < hi);
    const float mid = (lo + hi) / 2;  // exact: both have a few significant bits
    REQUIRE(mid - lo == hi - mid);
    const unsigned even = lowbit_test::is_even(c) ? c : c + 1;
    for (saturation s : both_modes) {
      INFO(spec.name << " between codes " << c << " and " << c + 1 << ", mid " << mid);
      CHECK(code_of<TestType>(mid, s) == even);
      CHECK(code_of<TestType>(next_down(mid), s) == c);
      CHECK(code_of<TestType>(next_up(mid), s) == c + 1);
      CHECK(code_of<TestType>(-mid, s) == (sign | even));
      CHECK(code_of<TestType>(-next_down(mid), s) == (sign | c));
      CHECK(code_of<TestType>(-next_up(mid), s) == (sign | (c + 1)));
    }
    ++midpoints;
  }
  // All magnitude codes but the top (and the Inf/NaN ones) start a midpoint interval.
  const int expected = spec.kind == lowbit_test::specials::ieee       ? int(sign) - 5
                       : spec.kind == lowbit_test::specials::nan_only ? int(sign) - 2
                                                                      : int(sign) - 1;
  REQUIRE(midpoints == expected);
}

TEMPLATE_TEST_CASE("zeros, smallest subnormals and half of them, Inf and NaN",
                   "[formats]", float8_e4m3fn, float8_e5m2, float6_e3m2fn,
                   float6_e2m3fn, float4_e2m1fn) {
  const auto spec = spec_of<TestType>();
  const unsigned sign = lowbit_test::sign_bit(spec);
  const unsigned max_code = TestType::max().bits();
  const float tiny = spec.min_subnormal;
  for (saturation s : both_modes) {
    INFO(spec.name << " saturation " << int(s));
    CHECK(code_of<TestType>(0.0f, s) == 0);
    CHECK(code_of<TestType>(-0.0f, s) == sign);
    CHECK(code_of<TestType>(tiny, s) == 1);
    CHECK(code_of<TestType>(-tiny, s) == (sign | 1));
    CHECK(code_of<TestType>(tiny / 2, s) == 0);  // tie: 0 is even
    CHECK(code_of<TestType>(-tiny / 2, s) == sign);
    CHECK(code_of<TestType>(next_up(tiny / 2), s) == 1);
    CHECK(code_of<TestType>(next_down(tiny / 2), s) == 0);
    CHECK(code_of<TestType>(1.5f * tiny, s) == 2);  // tie: 2 is even
    CHECK(code_of<TestType>(std::numeric_limits<float>::denorm_min(), s) == 0);
    CHECK(code_of<TestType>(-std::numeric_limits<float>::denorm_min(), s) == sign);
    CHECK(code_of<TestType>(std::numeric_limits<float>::max(), s) ==
          (s == saturation::finite || spec.kind == lowbit_test::specials::none ? max_code
                                                                                : code_of<TestType>(inf, s)));
    // The largest subnormal and the smallest normal.
    const unsigned top_sub = (1u << spec.mantissa_bits) - 1;
    CHECK(code_of<TestType>(lowbit_test::reference_decode(spec, top_sub), s) == top_sub);
    CHECK(code_of<TestType>(std::ldexp(1.0f, 1 - spec.bias), s) == top_sub + 1);
  }
  // Inf and NaN.
  switch (spec.kind) {
    case lowbit_test::specials::ieee: {
      const unsigned inf_code = (((1u << spec.exponent_bits) - 1) << spec.mantissa_bits);
      CHECK(code_of<TestType>(inf, saturation::none) == inf_code);
      CHECK(code_of<TestType>(-inf, saturation::none) == (sign | inf_code));
      break;
    }
    case lowbit_test::specials::nan_only:
      CHECK(convert<TestType>(inf, saturation::none).is_nan());
      CHECK(code_of<TestType>(-inf, saturation::none) == (sign | max_code | 1));
      break;
    case lowbit_test::specials::none:
      CHECK(code_of<TestType>(inf, saturation::none) == max_code);
      CHECK(code_of<TestType>(-inf, saturation::none) == (sign | max_code));
      break;
  }
  CHECK(code_of<TestType>(inf, saturation::finite) == max_code);
  CHECK(code_of<TestType>(-inf, saturation::finite) == (sign | max_code));
  for (saturation s : both_modes) {
    const auto pos = convert<TestType>(qnan, s), neg = convert<TestType>(-qnan, s);
    // A NaN with a payload and the signalling bit pattern behave the same.
    const auto payload = convert<TestType>(lowbit_test::float_of(0x7f800001u), s);
    if (spec.kind == lowbit_test::specials::none) {
      // No NaN code: documented to give +0 (quantizers reject NaN before this point).
      CHECK(pos.bits() == 0);
      CHECK(neg.bits() == 0);
      CHECK(payload.bits() == 0);
    } else {
      CHECK(pos.is_nan());
      CHECK(neg.is_nan());
      CHECK(payload.is_nan());
      CHECK((pos.bits() & sign) == 0);
      CHECK((neg.bits() & sign) == sign);
    }
  }
}

TEST_CASE("float8_e4m3fn boundaries: 448, 464, 465, 480, 1e6", "[formats]") {
  check_boundaries<float8_e4m3fn>({
      {448.0f, 0x7E, 0x7E},
      {464.0f, 0x7E, 0x7E},  // the midpoint to the NaN slot: ties to even 448
      {next_up(464.0f), 0x7E, 0x7F},
      {465.0f, 0x7E, 0x7F},
      {480.0f, 0x7E, 0x7F},
      {1e6f, 0x7E, 0x7F},
      {-464.0f, 0xFE, 0xFE},
      {-465.0f, 0xFE, 0xFF},
      {-1e6f, 0xFE, 0xFF},
      {inf, 0x7E, 0x7F},
      {-inf, 0xFE, 0xFF},
      {qnan, 0x7F, 0x7F},
      {-qnan, 0xFF, 0xFF},
      {0x1p-9f, 0x01, 0x01},
      {0x1p-10f, 0x00, 0x00},
      {0x1p-6f, 0x08, 0x08},
  });
}

TEST_CASE("float8_e5m2 boundaries: 57344, 61440", "[formats]") {
  check_boundaries<float8_e5m2>({
      {57344.0f, 0x7B, 0x7B},
      {next_down(61440.0f), 0x7B, 0x7B},
      {61440.0f, 0x7B, 0x7C},  // the midpoint to Inf: ties to even, which is Inf
      {65536.0f, 0x7B, 0x7C},
      {-61440.0f, 0xFB, 0xFC},
      {inf, 0x7B, 0x7C},
      {-inf, 0xFB, 0xFC},
      {qnan, 0x7E, 0x7E},
      {-qnan, 0xFE, 0xFE},
      {0x1p-16f, 0x01, 0x01},
      {0x1p-17f, 0x00, 0x00},
  });
}

TEST_CASE("float4_e2m1fn boundaries: 6, 7, 8", "[formats]") {
  check_boundaries<float4_e2m1fn>({
      {6.0f, 0x7, 0x7},
      {7.0f, 0x7, 0x7},  // no Inf or NaN: saturates in both modes
      {8.0f, 0x7, 0x7},
      {-7.0f, 0xF, 0xF},
      {-8.0f, 0xF, 0xF},
      {5.0f, 0x6, 0x6},  // midpoint of 4 (code 6) and 6 (code 7)
      {inf, 0x7, 0x7},
      {-inf, 0xF, 0xF},
      {qnan, 0x0, 0x0},
      {0.25f, 0x0, 0x0},
      {0.75f, 0x2, 0x2},
  });
}

TEST_CASE("float6 boundaries", "[formats]") {
  check_boundaries<float6_e3m2fn>({
      {28.0f, 0x1F, 0x1F}, {30.0f, 0x1F, 0x1F}, {1e9f, 0x1F, 0x1F}, {-inf, 0x3F, 0x3F}, {0x1p-4f, 1, 1}});
  check_boundaries<float6_e2m3fn>({
      {7.5f, 0x1F, 0x1F}, {7.75f, 0x1F, 0x1F}, {1e9f, 0x1F, 0x1F}, {-inf, 0x3F, 0x3F}, {0x1p-3f, 1, 1}});
}

TEST_CASE("float8_e8m0fnu: nearest power of two, ties up, no zero, saturation",
          "[formats]") {
  using T = float8_e8m0fnu;
  check_boundaries<T>({
      {1.0f, 127, 127},
      {1.5f, 128, 128},  // tie goes up
      {next_down(1.5f), 127, 127},
      {0.75f, 127, 127},
      {3.0f, 129, 129},
      {0x1p127f, 254, 254},
      {0x1.8p127f, 254, 255},  // rounds past the top code
      {next_down(0x1.8p127f), 254, 254},
      {std::numeric_limits<float>::max(), 254, 255},
      {inf, 254, 255},
      {-inf, 255, 255},
      {0.0f, 255, 255},
      {-0.0f, 255, 255},
      {-1.0f, 255, 255},
      {-std::numeric_limits<float>::denorm_min(), 255, 255},
      {qnan, 255, 255},
      {-qnan, 255, 255},
      {0x1p-127f, 0, 0},  // a float subnormal
      {0x1p-128f, 0, 0},  // below the smallest code: clamps to 2^-127
      {std::numeric_limits<float>::denorm_min(), 0, 0},
      {0x1.8p-127f, 1, 1},  // tie in the float-subnormal range, up
      {next_down(0x1.8p-127f), 0, 0},
      {0x1p-126f, 1, 1},
  });
  // Every midpoint 1.5 * 2^k goes up; one ulp below stays.
  for (int k = -127; k <= 126; ++k) {
    const float mid = std::ldexp(1.5f, k);
    INFO("k = " << k);
    for (saturation s : both_modes) {
      CHECK(code_of<T>(mid, s) == unsigned(k + 128));
      CHECK(code_of<T>(next_down(mid), s) == unsigned(k + 127));
      CHECK(code_of<T>(next_up(std::ldexp(1.0f, k)), s) == unsigned(k + 127));
    }
  }
}
}  // namespace test_formats_rounding_cpp
