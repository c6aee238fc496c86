// RecipeLinear's reference path is QuantizedLinear's formula (algo/linear.hpp, its one home):
// the model layer, with W_hat dequantized once, gives the same floats as
// QuantizedLinear::reference_forward for every recipe (smoothing, activation quantization,
// LoRC and bias included), so the two cannot drift apart again.
#include <catch2/catch.hpp>
#include <string>

#include "lowbit/algo.hpp"
#include "lowbit/error.hpp"
#include "lowbit/model/recipe_linear.hpp"

#include "test_algo_support.hpp"

namespace test_model_recipe_linear_cpp {

using namespace lowbit;

TEST_CASE("RecipeLinear reference path: QuantizedLinear's formula, float for float", "[model][linear]") {
  const RowMatrixXf w = lowbit_test::gaussian(24, 128, 31, 0.05f);
  const Eigen::VectorXf bias = Eigen::VectorXf::LinSpaced(24, -0.25f, 0.25f);
  RowMatrixXf x = lowbit_test::gaussian(12, 128, 32);
  for (Eigen::Index j = 3; j < x.cols(); j += 17) x.col(j) *= 20.0f;  // outliers: smoothing matters
  CalibrationOptions copt;
  copt.max_sample_rows = 12;
  const ActivationStats stats = collect_stats(x, copt);
  for (const std::string& name : recipe_names()) {
    INFO(name);
    const QuantizedLinear q = quantize_linear(w, &bias, recipe_from_name(name), &stats, "recipe_linear.w");
    const RowMatrixXf ref = q.reference_forward(x);
    const model::RecipeLinear layer(q, /*use_kernels=*/false);
    REQUIRE_FALSE(layer.uses_kernels());
    RowMatrixXf y(x.rows(), w.rows());
    layer.forward(x, y);
    // The same operations in the same order: exact equality is the claim.
    CHECK((y.array() == ref.array()).all());
  }
}

TEST_CASE("QuantizedLinear::reference_forward with a given W_hat checks the shapes", "[model][linear]") {
  const RowMatrixXf w = lowbit_test::gaussian(8, 32, 33, 0.05f);
  const QuantizedLinear q = quantize_linear(w, recipe_from_name("w8a8-fp8"), nullptr, "recipe_linear.shapes");
  const RowMatrixXf x = lowbit_test::gaussian(3, 32, 34);
  RowMatrixXf y(3, 8);
  const RowMatrixXf wrong_w_hat = RowMatrixXf::Zero(8, 31);
  CHECK_THROWS_WITH(q.reference_forward(x, wrong_w_hat, y), Catch::Contains("recipe_linear.shapes"));
  RowMatrixXf wrong_y(2, 8);
  CHECK_THROWS_AS(q.reference_forward(x, dequantize(q.weight), wrong_y), lowbit::error);
  q.reference_forward(x, dequantize(q.weight), y);
  CHECK((y.array() == q.reference_forward(x).array()).all());
}

}  // namespace test_model_recipe_linear_cpp
