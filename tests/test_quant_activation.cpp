// Dynamic per-token activation quantization against a literal re-implementation of the
// documented semantics; error metrics; QuantSpec text round trips.
#include <catch2/catch.hpp>
#include <cmath>
#include <limits>

#include "lowbit/quant.hpp"
#include "test_quant_support.hpp"

// One namespace per test file, so that any set of test files can be compiled as one
// unity translation unit (tests/CMakeLists.txt) without their file-local names clashing.
namespace test_quant_activation_cpp {

using namespace lowbit;

namespace {
// The semantics in activation.hpp, written out element by element.
std::uint8_t reference_code(act_format f, float x, float amax) {
  const float qmax = f == act_format::int8 ? 127.0f : f == act_format::float8_e4m3fn ? 448.0f : 57344.0f;
  const float inv = amax == 0.0f ? 0.0f : qmax / amax;
  const float y = x * inv;
  if (f == act_format::int8) {
    float r = std::nearbyint(y);
    r = std::min(127.0f, std::max(-127.0f, r));
    return static_cast<std::uint8_t>(static_cast<std::int8_t>(r));
  }
  if (f == act_format::float8_e4m3fn) return convert<float8_e4m3fn>(y, saturation::finite).bits();
  return convert<float8_e5m2>(y, saturation::finite).bits();
}
}  // namespace

TEST_CASE("quantize_activations matches the documented semantics exactly", "[quant]") {
  RowMatrixXf x = lowbit_test::random_matrix(7, 75, 11);
  x.col(3) *= 40.0f;  // an outlier channel
  x.row(2).setZero();
  for (act_format f : {act_format::int8, act_format::float8_e4m3fn, act_format::float8_e5m2}) {
    for (std::int64_t g : {0, 16, 32, 75, 100}) {
      INFO("format " << int(f) << " group " << g);
      const QuantizedActivations a = quantize_activations(x, f, g);
      const std::int64_t G = g == 0 ? 75 : g;
      CHECK(a.group_size == G);
      CHECK(a.groups_per_row == (75 + G - 1) / G);
      const RowMatrixXf d = dequantize(a);
      for (std::int64_t r = 0; r < 7; ++r)
        for (std::int64_t j = 0; j < a.groups_per_row; ++j) {
          const std::int64_t c0 = j * G, c1 = std::min<std::int64_t>(75, c0 + G);
          float amax = 0.0f;
          for (std::int64_t c = c0; c < c1; ++c) amax = std::max(amax, std::fabs(x(r, c)));
          const float qmax = act_qmax(f);
          const float scale = amax == 0.0f ? 0.0f : amax / qmax;
          REQUIRE(a.scales[std::size_t(r * a.groups_per_row + j)] == scale);
          for (std::int64_t c = c0; c < c1; ++c) {
            REQUIRE(a.codes[std::size_t(r * 75 + c)] == reference_code(f, x(r, c), amax));
            if (f == act_format::int8) REQUIRE(std::fabs(d(r, c) - x(r, c)) <= 0.5f * scale * 1.0001f);
          }
        }
      for (std::int64_t c = 0; c < 75; ++c) CHECK(d(2, c) == 0.0f);
    }
  }
}

TEST_CASE("quantize_activations rejects bad input", "[quant]") {
  RowMatrixXf x = lowbit_test::random_matrix(3, 10, 1);
  x(1, 7) = std::numeric_limits<float>::infinity();
  CHECK_THROWS_WITH(quantize_activations(x, act_format::int8), Catch::Contains("Inf at row 1, column 7"));
  x(1, 7) = std::numeric_limits<float>::quiet_NaN();
  CHECK_THROWS_WITH(quantize_activations(x, act_format::float8_e4m3fn, 4), Catch::Contains("NaN at row 1, column 7"));
  CHECK_THROWS_WITH(quantize_activations(RowMatrixXf(0, 3), act_format::int8), Catch::Contains("empty"));
  CHECK_THROWS_WITH(quantize_activations(lowbit_test::random_matrix(2, 3, 1), act_format::int8, -1),
                    Catch::Contains("group size"));
}

TEST_CASE("error_stats and output_error", "[quant]") {
  const RowMatrixXf a = lowbit_test::random_matrix(4, 9, 3);
  const ErrorStats same = error_stats(a, a);
  CHECK(same.mse == 0.0);
  CHECK(same.rel_fro == 0.0);
  CHECK(std::isinf(same.sqnr_db));
  CHECK(same.cosine == Approx(1.0));
  const RowMatrixXf b = a * 1.1f;
  const ErrorStats s = error_stats(a, b);
  CHECK(s.rel_fro == Approx(0.1).epsilon(1e-4));
  CHECK(s.sqnr_db == Approx(20.0).epsilon(1e-3));
  CHECK(s.cosine == Approx(1.0));
  CHECK(s.max_abs == Approx(0.1 * a.cwiseAbs().maxCoeff()).epsilon(1e-4));
  CHECK(s.mse == Approx(0.01 * a.squaredNorm() / 36.0).epsilon(1e-4));
  CHECK(error_stats(a, -a).cosine == Approx(-1.0));
  CHECK_THROWS_WITH(error_stats(a, RowMatrixXf(4, 8)), Catch::Contains("4x8"));

  const RowMatrixXf w = lowbit_test::random_matrix(16, 64, 4);
  const RowMatrixXf x = lowbit_test::random_matrix(5, 64, 5);
  const QuantizedMatrix q4 = quantize(w, group_spec(element_format::int4, 32));
  const QuantizedMatrix q8 = quantize(w, group_spec(element_format::int8, 32));
  const ErrorStats e4 = output_error(x, w, q4), e8 = output_error(x, w, q8);
  CHECK(e8.sqnr_db > e4.sqnr_db + 20.0);
  const RowMatrixXf y = x * w.transpose(), y4 = x * dequantize(q4).transpose();
  CHECK(e4.mse == Approx(error_stats(y, y4).mse));
  CHECK_THROWS_WITH(output_error(lowbit_test::random_matrix(5, 63, 5), w, q4), Catch::Contains("63"));
}

TEST_CASE("QuantSpec text form round-trips and parses presets", "[quant]") {
  for (QuantSpec s : lowbit_test::all_specs(128)) {
    for (bool clip : {false, true}) {
      s.clip.enabled = clip;
      const QuantSpec n = normalized_spec(s);
      const std::string t = to_string(n);
      INFO(t);
      const QuantSpec p = parse_quant_spec(t);
      CHECK(to_string(p) == t);
      CHECK(p.format == n.format);
      CHECK(p.gran == n.gran);
      CHECK(p.group_size == n.group_size);
      CHECK(p.constraint == n.constraint);
      CHECK(p.symmetric == n.symmetric);
      CHECK(p.scale_storage == n.scale_storage);
      CHECK(p.int_rule == n.int_rule);
      CHECK(p.mx_rounding == n.mx_rounding);
      CHECK(p.clip.enabled == n.clip.enabled);
    }
  }
  CHECK(to_string(parse_quant_spec("mxfp4")) == "float4_e2m1fn:g32:mx");
  CHECK(to_string(parse_quant_spec("nvfp4")) == "float4_e2m1fn:g16:nvfp4");
  CHECK(to_string(parse_quant_spec("fp4:g128:m2")) == "float4_e2m1fn:g128:m2");
  CHECK(to_string(parse_quant_spec("int4:g64:asym:clip0.6x5")) == "int4:g64:asym:clip0.6x5");
  CHECK(parse_element_format("e5m2") == element_format::float8_e5m2);
  CHECK(parse_act_format("fp8") == act_format::float8_e4m3fn);
  CHECK_THROWS_WITH(parse_element_format("int3"), Catch::Contains("int3"));
  CHECK_THROWS_WITH(parse_quant_spec("int4:g128:wat"), Catch::Contains("wat"));
  CHECK_THROWS_WITH(parse_quant_spec("fp4:g128:asym"), Catch::Contains("asymmetric"));
}
}  // namespace test_quant_activation_cpp
