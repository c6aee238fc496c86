// MX and NVFP4 blocks against a straightforward scalar re-implementation of the formulas of
// DESIGN.md section 3 (written here independently of scale_rules.hpp, in double where it
// helps), and the int RTN SIMD row kernels against the scalar reference, byte for byte.
#include <catch2/catch.hpp>
#include <cmath>
#include <limits>

#include "lowbit/quant.hpp"
#include "test_quant_support.hpp"

// One namespace per test file, so that any set of test files can be compiled as one
// unity translation unit (tests/CMakeLists.txt) without their file-local names clashing.
namespace test_quant_blocks_cpp {

using namespace lowbit;

namespace {

template <class T>
void check_mx_against_reference(element_format f, int emax_elem, mx_scale_rounding rounding) {
  RowMatrixXf w = lowbit_test::random_matrix(5, 100, 31);
  w.block(1, 32, 1, 32).setZero();
  w(2, 5) = 7.0f;                           // significand 1.75
  w(3, 40) = -1.9f * std::ldexp(1.0f, 9);   // significand 1.9
  w.block(4, 64, 1, 32) *= 1e-30f;          // tiny block
  const QuantizedMatrix q = quantize(w, mx_spec(f, rounding));
  REQUIRE(q.group_size == 32);
  REQUIRE(q.groups_per_row == 4);
  const RowMatrixXf d = dequantize(q);
  for (std::int64_t r = 0; r < w.rows(); ++r)
    for (std::int64_t b = 0; b < 4; ++b) {
      const std::int64_t c0 = b * 32, c1 = std::min<std::int64_t>(100, c0 + 32);
      double amax = 0.0;
      for (std::int64_t c = c0; c < c1; ++c) amax = std::max(amax, std::fabs(double(w(r, c))));
      int e = 0;
      if (amax > 0.0) {
        const int fl = int(std::floor(std::log2(amax)));
        e = fl - emax_elem;
        if (rounding == mx_scale_rounding::round_up_175 && amax / std::ldexp(1.0, fl) >= 1.75) ++e;
      }
      const std::size_t gi = std::size_t(r * 4 + b);
      REQUIRE(int(q.scale_codes[gi]) == e + 127);
      const double scale = std::ldexp(1.0, e);
      REQUIRE(double(q.scales[gi]) == scale);
      for (std::int64_t c = c0; c < c1; ++c) {
        const T code = convert<T>(float(double(w(r, c)) / scale), saturation::finite);
        const std::uint8_t* row = q.codes.data() + r * q.row_stride;
        const std::uint8_t got = is_nibble_format(f) ? get_nibble(row, std::size_t(c)) : row[c];
        REQUIRE(got == code.bits());
        REQUIRE(double(d(r, c)) == double(code.to_float()) * scale);
      }
    }
}

}  // namespace

TEST_CASE("MX blocks match the OCP formula", "[quant]") {
  for (mx_scale_rounding rd : {mx_scale_rounding::floor, mx_scale_rounding::round_up_175}) {
    check_mx_against_reference<float4_e2m1fn>(element_format::float4_e2m1fn, 2, rd);
    check_mx_against_reference<float6_e2m3fn>(element_format::float6_e2m3fn, 2, rd);
    check_mx_against_reference<float6_e3m2fn>(element_format::float6_e3m2fn, 4, rd);
    check_mx_against_reference<float8_e4m3fn>(element_format::float8_e4m3fn, 8, rd);
    check_mx_against_reference<float8_e5m2>(element_format::float8_e5m2, 15, rd);
  }
}

TEST_CASE("MX round_up_175 avoids clipping the block maximum", "[quant]") {
  RowMatrixXf w = RowMatrixXf::Constant(1, 32, 0.1f);
  w(0, 0) = 7.5f;  // floor rule: scale 1, 7.5 saturates to 6 (error 1.5); up175: scale 2, 7.5 -> 8
  const RowMatrixXf floor_d = dequantize(quantize(w, mx_spec(element_format::float4_e2m1fn)));
  const RowMatrixXf up_d =
      dequantize(quantize(w, mx_spec(element_format::float4_e2m1fn, mx_scale_rounding::round_up_175)));
  CHECK(floor_d(0, 0) == 6.0f);
  CHECK(up_d(0, 0) == 8.0f);
}

TEST_CASE("NVFP4 blocks match the two-level scale formula", "[quant]") {
  RowMatrixXf w = lowbit_test::random_matrix(6, 72, 32, 0.05f);
  w.block(2, 16, 1, 16).setZero();
  w(4, 3) = 2.5f;  // the tensor maximum
  const QuantizedMatrix q = quantize(w, nvfp4_spec());
  REQUIRE(q.group_size == 16);
  const float amax_t = w.cwiseAbs().maxCoeff();
  const float g = 2688.0f / amax_t;
  REQUIRE(q.tensor_scale == g);
  const RowMatrixXf d = dequantize(q);
  for (std::int64_t r = 0; r < w.rows(); ++r)
    for (std::int64_t b = 0; b < q.groups_per_row; ++b) {
      const std::int64_t c0 = b * 16, c1 = std::min<std::int64_t>(72, c0 + 16);
      float amax_b = 0.0f;
      for (std::int64_t c = c0; c < c1; ++c) amax_b = std::max(amax_b, std::fabs(w(r, c)));
      const float8_e4m3fn s_b = convert<float8_e4m3fn>(g * amax_b / 6.0f);
      const std::size_t gi = std::size_t(r * q.groups_per_row + b);
      REQUIRE(q.scale_codes[gi] == s_b.bits());
      for (std::int64_t c = c0; c < c1; ++c) {
        const float xs = s_b.to_float() == 0.0f ? 0.0f : w(r, c) * (g / s_b.to_float());
        const float4_e2m1fn code = convert<float4_e2m1fn>(xs);
        REQUIRE(get_nibble(q.codes.data() + r * q.row_stride, std::size_t(c)) == code.bits());
        const float ref = code.to_float() * s_b.to_float() / g;  // x_hat = q * s_b / g
        REQUIRE(std::fabs(d(r, c) - ref) <= 1e-6f * std::fabs(ref));
      }
    }
  // The block holding the tensor maximum gets the largest block scale, 448.
  CHECK(q.scale_codes[std::size_t(4 * q.groups_per_row)] == float8_e4m3fn(448.0f).bits());
}

TEST_CASE("int RTN row kernels: every tier equals the scalar reference byte for byte", "[quant]") {
  for (std::int64_t cols : {1, 15, 16, 17, 63, 128, 200, 4096 + 3}) {
    for (int group : {0, 16, 32, 64, 128, 6}) {
      for (element_format f : {element_format::int4, element_format::int8}) {
        RowMatrixXf w = lowbit_test::random_matrix(4, cols, unsigned(cols + group));
        w.row(1).setZero();
        if (cols > 20) w(2, 19) = 1e-41f;
        const QuantSpec spec = group == 0 ? channel_spec(f) : group_spec(f, group);
        QuantizedMatrix ref = make_quantized_matrix(4, cols, spec);
        detail::dispatch_element_format(f, [&](auto fmt) {
          detail::quantize_rows_generic<decltype(fmt)::value>(ref, w, 0, 4);
        });
        for (isa_tier tier : supported_isa_tiers()) {
          INFO("cols " << cols << " group " << group << " format " << int(f) << " tier " << to_string(tier));
          QuantizedMatrix q = make_quantized_matrix(4, cols, spec);
          detail::dispatch_element_format(f, [&](auto fmt) {
            if constexpr (decltype(fmt)::value == element_format::int4 || decltype(fmt)::value == element_format::int8)
              detail::int_rtn_rows_tier<decltype(fmt)::value>(tier, q, w, 0, 4);
          });
          CHECK(q.codes == ref.codes);
          CHECK(q.scales == ref.scales);
        }
      }
    }
  }
  RowMatrixXf w = lowbit_test::random_matrix(3, 300, 3);
  w(2, 257) = std::numeric_limits<float>::quiet_NaN();
  for (isa_tier tier : supported_isa_tiers()) {
    QuantizedMatrix q = make_quantized_matrix(3, 300, group_spec(element_format::int4, 128), "blk");
    CHECK_THROWS_WITH(detail::int_rtn_rows_tier<element_format::int4>(tier, q, w, 0, 3),
                      Catch::Contains("NaN at row 2, column 257"));
  }
}
}  // namespace test_quant_blocks_cpp
