// Basic behaviour of quantize()/dequantize() over every format x granularity x constraint:
// shapes, layout sizes, round trips within half a step, the building-block decomposition
// (make + fit_matrix_scales + fit_group_scales + quantize_column == quantize), bad input.
#include <catch2/catch.hpp>
#include <cmath>
#include <limits>
#include <random>
#include <string>
#include <vector>

#include "lowbit/quant/quantizer.hpp"
#include "test_quant_support.hpp"

// One namespace per test file, so that any set of test files can be compiled as one
// unity translation unit (tests/CMakeLists.txt) without their file-local names clashing.
namespace test_quant_basic_cpp {

using namespace lowbit;
using lowbit_test::all_specs;
using lowbit_test::random_matrix;

TEST_CASE("quantize: layout sizes follow the spec", "[quant]") {
  const RowMatrixXf w = random_matrix(5, 37, 1);
  for (const QuantSpec& spec : all_specs(8)) {
    INFO(lowbit_test::describe(spec));
    const QuantizedMatrix q = quantize(w, spec);
    CHECK(q.rows == 5);
    CHECK(q.cols == 37);
    const std::int64_t gpr = (37 + q.group_size - 1) / q.group_size;
    CHECK(q.groups_per_row == gpr);
    CHECK(q.row_stride == (is_nibble_format(spec.format) ? 19 : 37));
    CHECK(q.codes.size() == std::size_t(5 * q.row_stride));
    CHECK(q.scales.size() == std::size_t(5 * gpr));
    CHECK(q.bits_per_weight() > element_bits(spec.format));
    const RowMatrixXf d = dequantize(q);
    CHECK(d.rows() == 5);
    CHECK(d.cols() == 37);
    CHECK(d.allFinite());
  }
}

TEST_CASE("quantize equals make + fit_matrix_scales + fit_group_scales + quantize_column",
          "[quant]") {
  for (std::int64_t cols : {1, 16, 37, 64, 130}) {
    const RowMatrixXf w = random_matrix(6, cols, 2 + int(cols));
    for (QuantSpec spec : all_specs(16)) {
      for (bool clip : {false, true}) {
        spec.clip.enabled = clip;
        INFO(lowbit_test::describe(spec) << " cols=" << cols << " clip=" << clip);
        const QuantizedMatrix fused = quantize(w, spec);
        QuantizedMatrix q = make_quantized_matrix(w.rows(), w.cols(), spec);
        fit_matrix_scales(q, w);
        fit_group_scales(q, w, 0, q.groups_per_row);
        std::vector<float> col(std::size_t(w.rows())), deq(std::size_t(w.rows()));
        RowMatrixXf by_col(w.rows(), w.cols());
        for (std::int64_t c = 0; c < cols; ++c) {
          for (std::int64_t r = 0; r < w.rows(); ++r) col[std::size_t(r)] = w(r, c);
          quantize_column(q, c, col.data(), deq.data());
          for (std::int64_t r = 0; r < w.rows(); ++r) by_col(r, c) = deq[std::size_t(r)];
        }
        CHECK(q.codes == fused.codes);
        CHECK(q.scales == fused.scales);
        CHECK(q.zeros == fused.zeros);
        CHECK(q.shifts == fused.shifts);
        CHECK(q.row_scales == fused.row_scales);
        CHECK(q.scale_codes == fused.scale_codes);
        CHECK(q.tensor_scale == fused.tensor_scale);
        const RowMatrixXf d = dequantize(fused);
        CHECK((by_col.array() == d.array()).all());
      }
    }
  }
}

TEST_CASE("quantize: error within half a step inside the range", "[quant]") {
  // Symmetric integer schemes with real scales: |x - x_hat| <= S / 2 for every element.
  const RowMatrixXf w = random_matrix(8, 100, 3);
  for (element_format f : {element_format::int4, element_format::int8}) {
    for (bool sym : {true, false}) {
      QuantSpec spec = group_spec(f, 32, scale_constraint::none, sym);
      const QuantizedMatrix q = quantize(w, spec);
      const RowMatrixXf d = dequantize(q);
      for (std::int64_t r = 0; r < w.rows(); ++r)
        for (std::int64_t c = 0; c < w.cols(); ++c) {
          const float s = q.scales[std::size_t(r * q.groups_per_row + c / 32)];
          REQUIRE(std::fabs(w(r, c) - d(r, c)) <= 0.5f * s * (1 + 1e-5f) + 1e-30f);
        }
    }
  }
}

TEST_CASE("quantize: bad input gives lowbit::error with a clear message", "[quant]") {
  RowMatrixXf w = random_matrix(4, 40, 4);
  w(2, 33) = std::numeric_limits<float>::quiet_NaN();
  for (const QuantSpec& spec : all_specs(8)) {
    INFO(lowbit_test::describe(spec));
    try {
      (void)quantize(w, spec, "layers.0.q_proj");
      FAIL("no error");
    } catch (const lowbit::error& e) {
      const std::string m = e.what();
      CHECK(m.find("layers.0.q_proj") != std::string::npos);
      CHECK(m.find("NaN") != std::string::npos);
      CHECK(m.find("row 2") != std::string::npos);
      CHECK(m.find("column 33") != std::string::npos);
    }
  }
  w(2, 33) = -std::numeric_limits<float>::infinity();
  CHECK_THROWS_WITH(quantize(w, group_spec(element_format::int4, 128)),
                    Catch::Contains("Inf at row 2, column 33"));
  const RowMatrixXf empty(0, 8);
  CHECK_THROWS_WITH(quantize(empty, group_spec(element_format::int4, 128), "e"), Catch::Contains("empty"));
  CHECK_THROWS_WITH(quantize(random_matrix(2, 8, 1), group_spec(element_format::int4, 0)),
                    Catch::Contains("group size"));
  QuantizedMatrix q = make_quantized_matrix(4, 40, group_spec(element_format::int4, 16));
  CHECK_THROWS_WITH(fit_matrix_scales(q, random_matrix(4, 41, 1)), Catch::Contains("4x41"));
  CHECK_THROWS_WITH(fit_group_scales(q, random_matrix(4, 40, 1), 2, 5), Catch::Contains("outside"));
  float vals[4] = {0, 0, 0, 0};
  CHECK_THROWS_WITH(quantize_column(q, 40, vals, vals), Catch::Contains("column 40"));
  vals[3] = std::numeric_limits<float>::infinity();
  CHECK_THROWS_WITH(quantize_column(q, 3, vals, vals), Catch::Contains("row 3, column 3"));
  CHECK_THROWS_WITH(quantize(random_matrix(2, 8, 1), group_spec(element_format::float4_e2m1fn, 8,
                                                                scale_constraint::none, false)),
                    Catch::Contains("asymmetric"));
  CHECK_THROWS_WITH(quantize(random_matrix(2, 8, 1), mx_spec(element_format::int8)), Catch::Contains("mx"));
  QuantSpec bad_nv = nvfp4_spec();
  bad_nv.format = element_format::float8_e4m3fn;
  CHECK_THROWS_WITH(quantize(random_matrix(2, 8, 1), bad_nv), Catch::Contains("nvfp4"));
  QuantizedMatrix broken = quantize(random_matrix(2, 8, 1), group_spec(element_format::int4, 4));
  broken.scales.pop_back();
  CHECK_THROWS_WITH(dequantize(broken), Catch::Contains("scales"));
}

TEST_CASE("quantize: all-zero and tiny groups give finite scales and exact zeros", "[quant]") {
  RowMatrixXf w = RowMatrixXf::Zero(3, 64);
  w.row(1).setConstant(1e-40f);  // subnormal
  w(2, 5) = 1.0f;
  for (const QuantSpec& spec : all_specs(16)) {
    INFO(lowbit_test::describe(spec));
    const QuantizedMatrix q = quantize(w, spec);
    for (float s : q.scales) CHECK(std::isfinite(s));
    for (float s : q.row_scales) CHECK(std::isfinite(s));
    CHECK(std::isfinite(q.tensor_scale));
    const RowMatrixXf d = dequantize(q);
    CHECK(d.allFinite());
    for (std::int64_t c = 0; c < 64; ++c) CHECK(d(0, c) == 0.0f);
    CHECK(std::fabs(d(2, 5) - 1.0f) < 0.26f);
  }
}

TEST_CASE("templated quantize over Eigen expressions equals the QuantSpec path", "[quant]") {
  const RowMatrixXf w = random_matrix(8, 256, 5);
  const Eigen::MatrixXf col_major = w;  // a different storage order binds too
  const QuantizedMatrix a = quantize<float4_e2m1fn>(col_major, group_scales{128, scale_constraint::pow2_m2});
  const QuantizedMatrix b = quantize(w, group_spec(element_format::float4_e2m1fn, 128, scale_constraint::pow2_m2));
  CHECK(a.codes == b.codes);
  CHECK(a.scales == b.scales);
  const QuantizedMatrix c = quantize<uint4>(w * 2.0f, group_scales{64});
  CHECK(!c.spec.symmetric);
  CHECK(c.zeros.size() == 8 * 4);
  const QuantizedMatrix d = quantize<float4_e2m1fn>(w.block(0, 0, 4, 128), nvfp4_scales{});
  CHECK(d.group_size == 16);
  CHECK(d.rows == 4);
  const QuantizedMatrix e = quantize<float8_e4m3fn>(w, mx_scales{});
  CHECK(e.scale_codes.size() == 8 * 8);
}
}  // namespace test_quant_basic_cpp
