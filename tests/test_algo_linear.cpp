// QuantizedLinear and the named recipes: composition, forward pass, kernels vs reference.
#include <catch2/catch.hpp>
#include <random>
#include <string>

#include "lowbit/algo.hpp"

#include "test_algo_support.hpp"

// One namespace per test file, so that any set of test files can be compiled as one
// unity translation unit (tests/CMakeLists.txt) without their file-local names clashing.
namespace test_algo_linear_cpp {

using namespace lowbit;

namespace {

using lowbit_test::gaussian;

RowMatrixXf outlier_inputs(Eigen::Index tokens, Eigen::Index channels, std::uint64_t seed) {
  RowMatrixXf x = gaussian(tokens, channels, seed);
  // Correlated channels through a fixed mixing (the same for calibration and test data).
  x += gaussian(tokens, 4, seed + 1) * gaussian(4, channels, 777) * 0.5f;
  for (Eigen::Index j = 5; j < channels; j += 37) x.col(j) *= 30.0f;
  return x;
}

double sqnr_db(const RowMatrixXf& ref, const RowMatrixXf& approx) {
  return 10.0 * std::log10(ref.squaredNorm() / (ref - approx).squaredNorm());
}

}  // namespace

TEST_CASE("recipes: names resolve, unknown names fail clearly", "[algo][linear]") {
  CHECK(recipe_names().size() == 12);
  for (const std::string& n : recipe_names()) CHECK(recipe_from_name(n).name == n);
  const LinearRecipe fp = recipe_from_name("w4a8-fp");
  CHECK(fp.weight.format == element_format::float4_e2m1fn);
  CHECK(fp.weight.constraint == scale_constraint::pow2_m2);
  CHECK(fp.weight.group_size == 128);
  CHECK(fp.activations->format == act_format::float8_e4m3fn);
  CHECK(fp.method == weight_method::gptq);
  CHECK(fp.lorc_rank == 8);
  const LinearRecipe sq = recipe_from_name("w8a8-int8");
  CHECK(sq.smoothing == smoothing_mode::fixed);
  CHECK(sq.alpha == 0.8f);
  CHECK_FALSE(recipe_from_name("w4a16-sqplus").weight.symmetric);
  try {
    (void)recipe_from_name("w3a3");
    FAIL("no error");
  } catch (const error& e) {
    const std::string msg = e.what();
    CHECK(msg.find("w3a3") != std::string::npos);
    CHECK(msg.find("w4a8-fp") != std::string::npos);  // lists the known names
  }
}

TEST_CASE("quantize_linear: every recipe runs, and its output is close to fp32",
          "[algo][linear]") {
  const Eigen::Index in = 160, out = 48;  // 160 = 128 + 32: a ragged last group of 128
  const RowMatrixXf w = gaussian(out, in, 3, 0.05f);
  const Eigen::VectorXf bias = Eigen::VectorXf::LinSpaced(out, -1.0f, 1.0f);
  const RowMatrixXf xcal = outlier_inputs(256, in, 4), xtest = outlier_inputs(64, in, 5);
  CalibrationOptions copt;
  copt.max_sample_rows = 128;
  const ActivationStats stats = collect_stats(xcal, copt, "layer.in");
  const RowMatrixXf y = (xtest * w.transpose()).rowwise() + bias.transpose();
  for (const std::string& name : recipe_names()) {
    INFO(name);
    const LinearRecipe r = recipe_from_name(name);
    const QuantizedLinear layer = quantize_linear(w, &bias, r, &stats, "layer");
    CHECK(layer.recipe == name);
    CHECK(layer.in_features() == in);
    CHECK(layer.out_features() == out);
    CHECK(layer.smoothing.has_value() == (r.smoothing != smoothing_mode::none));
    CHECK(layer.lorc.has_value() == (r.lorc_rank > 0));
    CHECK(layer.warning.empty());
    const RowMatrixXf yq = layer(xtest);
    CHECK(sqnr_db(y, yq) > 10.0);  // every recipe is a usable approximation
    CHECK(layer.storage_bits() < 32 * in * out);
  }
  // Recipes needing calibration say so.
  CHECK_THROWS_AS(quantize_linear(w, &bias, recipe_from_name("w4a16-int4"), nullptr), error);
  // RTN recipes do not.
  CHECK_NOTHROW(quantize_linear(w, &bias, recipe_from_name("nvfp4"), nullptr));
}

TEST_CASE("quantize_linear: the forward pass is the composition it documents", "[algo][linear]") {
  const RowMatrixXf w = gaussian(20, 64, 6, 0.05f);
  const RowMatrixXf x = outlier_inputs(32, 64, 7);
  CalibrationOptions copt;
  copt.max_sample_rows = 32;
  const ActivationStats stats = collect_stats(x, copt);
  LinearRecipe r = recipe_from_name("w4a8-fp");
  r.weight.group_size = 32;
  r.smoothing = smoothing_mode::fixed;
  r.alpha = 0.5f;
  r.lorc.storage = lorc_storage::f32;
  const QuantizedLinear layer = quantize_linear(w, r, &stats);
  REQUIRE(layer.smoothing);
  REQUIRE(layer.lorc);
  const RowMatrixXf xs = smoothed_activations(x, *layer.smoothing);
  const RowMatrixXf xq = dequantize(quantize_activations(xs, act_format::float8_e4m3fn));
  const RowMatrixXf expected =
      xq * dequantize(layer.weight).transpose() + xs * layer.lorc->v.transpose() * layer.lorc->u.transpose();
  CHECK((layer(x) - expected).norm() <= 1e-5f * expected.norm());
  // LoRC was computed on the smoothed weight.
  const RowMatrixXf ws = smoothed_weight(w, *layer.smoothing);
  CHECK((ws - dequantize(layer.weight) - layer.lorc->product()).norm() <
        (ws - dequantize(layer.weight)).norm());
}

TEST_CASE("quantize_linear: GPTQ and LoRC improve the layer output", "[algo][linear]") {
  const RowMatrixXf w = gaussian(64, 256, 8, 0.05f);
  const RowMatrixXf xcal = outlier_inputs(512, 256, 9), xtest = outlier_inputs(128, 256, 10);
  const ActivationStats stats = collect_stats(xcal);
  const RowMatrixXf y = xtest * w.transpose();
  LinearRecipe g = recipe_from_name("w4a16-int4");
  LinearRecipe rtn = g;
  rtn.method = weight_method::round_to_nearest;
  CHECK(sqnr_db(y, quantize_linear(w, g, &stats)(xtest)) >
        sqnr_db(y, quantize_linear(w, rtn, &stats)(xtest)));
  LinearRecipe fp = recipe_from_name("w4a8-fp");
  LinearRecipe no_lorc = fp;
  no_lorc.lorc_rank = 0;
  CHECK(sqnr_db(y, quantize_linear(w, fp, &stats)(xtest)) >
        sqnr_db(y, quantize_linear(w, no_lorc, &stats)(xtest)));
}

TEST_CASE("quantize_linear: kernels agree with the reference path", "[algo][linear]") {
  const RowMatrixXf w = gaussian(40, 128, 11, 0.05f);
  const Eigen::VectorXf bias = Eigen::VectorXf::LinSpaced(40, -0.5f, 0.5f);
  const RowMatrixXf x = outlier_inputs(16, 128, 12);
  CalibrationOptions copt;
  copt.max_sample_rows = 16;
  const ActivationStats stats = collect_stats(x, copt);
  int attached = 0;
  for (const std::string& name : recipe_names()) {
    INFO(name);
    QuantizedLinear layer = quantize_linear(w, &bias, recipe_from_name(name), &stats);
    const RowMatrixXf ref = layer.reference_forward(x);
    if (!attach_kernels(layer)) continue;
    ++attached;
    const RowMatrixXf fast = layer(x);
    // Integer activations: the same codes and scales, only the summation order differs.
    // E4M3 activations: the float kernels were seen to differ from quantize_activations by
    // up to ~0.7% relative (reported to the GEMM owner), hence the looser bound there.
    const bool int_acts = layer.activations && layer.activations->format == act_format::int8;
    CHECK((fast - ref).norm() <= (int_acts ? 1e-4f : 2e-2f) * ref.norm());
  }
  CHECK(attached >= 1);
}
}  // namespace test_algo_linear_cpp
