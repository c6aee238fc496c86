// QuantizedLinear and the named recipes: composition, forward pass, kernels vs reference.
#include <catch2/catch.hpp>
#include <cstring>
#include <iterator>
#include <limits>
#include <random>
#include <string>
#include <vector>

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

namespace test_algo_linear_input_cpp {

using namespace lowbit;
using lowbit_test::gaussian;

// QuantizedLinear::input: a weight-only layer rounds its operand x / s to bf16 or fp16 before
// the products, in the reference formula and on the kernels alike; A8 layers ignore it.
TEST_CASE("quantize_linear: 16-bit inputs round x / s, on the reference path and the kernels", "[algo][linear]") {
  const RowMatrixXf w = gaussian(48, 256, 41, 0.05f);
  const Eigen::VectorXf bias = Eigen::VectorXf::LinSpaced(48, -0.5f, 0.5f);
  RowMatrixXf x = gaussian(24, 256, 42);  // 24 tokens: the many-token kernels
  for (Eigen::Index j = 3; j < x.cols(); j += 29) x.col(j) *= 25.0f;
  CalibrationOptions copt;
  copt.max_sample_rows = 24;
  const ActivationStats stats = collect_stats(x, copt);
  // Weight-only without and with smoothing (and LoRC: its term reads the rounded operand too).
  LinearRecipe smoothed = recipe_from_name("w4a16-sqplus");
  smoothed.lorc_rank = 4;
  for (const LinearRecipe& r : {recipe_from_name("w4a16-int4"), smoothed}) {
    INFO(r.name << (r.lorc_rank ? " + LoRC" : ""));
    const QuantizedLinear f32 = quantize_linear(w, &bias, r, &stats, "input.w");
    REQUIRE_FALSE(f32.activations);
    for (const activation_dtype in : {activation_dtype::bf16, activation_dtype::f16}) {
      INFO(to_string(in));
      QuantizedLinear q = f32;
      q.input = in;
      // The formula, spelled out here: xs = round(x / s), y = xs W_hat^T + (xs V^T) U^T + b.
      RowMatrixXf xs = q.smoothing ? RowMatrixXf(x * q.smoothing->cwiseInverse().asDiagonal()) : x;
      xs = in == activation_dtype::bf16 ? RowMatrixXf(xs.cast<Eigen::bfloat16>().cast<float>())
                                        : RowMatrixXf(xs.cast<Eigen::half>().cast<float>());
      RowMatrixXf expect = xs * dequantize(q.weight).transpose();
      if (q.lorc) expect += (xs * q.lorc->v.transpose()) * q.lorc->u.transpose();
      expect.rowwise() += bias.transpose();
      const RowMatrixXf ref = q.reference_forward(x);
      CHECK((ref - expect).norm() <= 1e-6f * expect.norm());
      CHECK((ref - f32.reference_forward(x)).norm() > 1e-5f * expect.norm());  // really rounded
      REQUIRE(attach_kernels(q));
      const RowMatrixXf fast = q(x);
      CHECK((fast - ref).norm() <= 1e-5f * ref.norm());  // the same operand, another sum order
      QuantizedLinear k32 = f32;
      REQUIRE(attach_kernels(k32));
      CHECK((fast - k32(x)).norm() > 1e-5f * ref.norm());  // the kernel path rounds too
      if (!q.smoothing && in == activation_dtype::bf16) {
        // Unsmoothed: exactly gemm() on Eigen's bf16 cast of x (the layer's own rounding gives
        // the same bits), with the bias.
        PackOptions po;
        po.activations = activation_quant::none;
        const PackedWeights packed = pack(q.weight, po);
        GemmOptions o;
        o.bias = &bias;
        if (q.lorc) {
          o.lorc_u = &q.lorc->u;
          o.lorc_v = &q.lorc->v;
        }
        RowMatrixXf y(x.rows(), w.rows());
        gemm(RowMatrixXbf16(x.cast<Eigen::bfloat16>()), packed, y, o);
        CHECK((y.array() == fast.array()).all());
      }
    }
  }
  // A8 layers quantize their fp32 input as stored: the same output with or without it.
  QuantizedLinear a8 = quantize_linear(w, &bias, recipe_from_name("w4a8-int"), &stats, "input.a8");
  QuantizedLinear a8_bf16 = a8;
  a8_bf16.input = activation_dtype::bf16;
  CHECK((a8.reference_forward(x).array() == a8_bf16.reference_forward(x).array()).all());
  REQUIRE(attach_kernels(a8));
  REQUIRE(attach_kernels(a8_bf16));
  CHECK((a8(x).array() == a8_bf16(x).array()).all());
}

TEST_CASE("round_rows_to_bf16: Eigen's bf16 cast, bit for bit; NaN stays NaN", "[algo][linear]") {
  RowMatrixXf x = gaussian(7, 301, 43);
  x.row(1) *= 1e-39f;  // fp32 subnormals
  x.row(2) *= 1e30f;
  const float edge[] = {0.0f, -0.0f, 3.3895314e38f, std::numeric_limits<float>::max(), -std::numeric_limits<float>::max(),
                        std::numeric_limits<float>::infinity(), -std::numeric_limits<float>::infinity(),
                        1.00390625f, 1.01171875f, 1.0f + 0x1p-8f + 0x1p-20f, std::numeric_limits<float>::denorm_min()};
  for (int i = 0; i < static_cast<int>(std::size(edge)); ++i) x(3, i) = edge[i];
  // Ties to even and the half-way neighbours, around several exponents.
  for (Eigen::Index k = 0; k < x.cols(); ++k) x(4, k) = std::ldexp(1.0f + static_cast<float>(k % 512) * 0x1p-16f, static_cast<int>(k % 40) - 20);
  std::vector<std::uint16_t> bits(static_cast<std::size_t>(x.size()));
  detail::round_rows_to_bf16(x.topRows(5), bits.data());
  const RowMatrixXbf16 eig = x.topRows(5).cast<Eigen::bfloat16>();
  for (Eigen::Index i = 0; i < eig.size(); ++i) {
    INFO("element " << i << " = " << x.data()[i]);
    std::uint16_t e;
    std::memcpy(&e, &eig.data()[i], 2);
    CHECK(bits[static_cast<std::size_t>(i)] == e);
  }
  // A strided view (the rows of a wider matrix) and NaNs whose rounding would carry into the sign.
  RowMatrixXf wide(2, 40);
  wide.setConstant(1.5f);
  std::uint32_t nan_bits[] = {0x7FFFFFFFu, 0xFFFFFFFFu, 0x7F800001u, 0x7FC00000u};
  for (int i = 0; i < 4; ++i) std::memcpy(&wide(1, i), &nan_bits[i], 4);
  std::vector<std::uint16_t> out(2 * 30);
  detail::round_rows_to_bf16(wide.leftCols(30), out.data());
  for (int i = 0; i < 4; ++i) {
    INFO("NaN " << i);
    CHECK((out[static_cast<std::size_t>(30 + i)] & 0x7F80u) == 0x7F80u);
    CHECK((out[static_cast<std::size_t>(30 + i)] & 0x007Fu) != 0);  // a NaN, not Inf or zero
  }
  CHECK(out[0] == 0x3FC0u);
  CHECK(out[59] == 0x3FC0u);
}

TEST_CASE("activation_dtype names: what to_string gives parses back; other values are refused", "[algo][linear]") {
  for (const activation_dtype t : {activation_dtype::f32, activation_dtype::f16, activation_dtype::bf16}) {
    CHECK(try_parse_activation_dtype(to_string(t)) == t);
    CHECK(parse_activation_dtype(to_string(t)) == t);
  }
  CHECK(try_parse_activation_dtype("fp32") == activation_dtype::f32);
  CHECK(try_parse_activation_dtype("fp16") == activation_dtype::f16);
  // The other values eval's --activations takes (per-token formats) and near misses.
  for (const char* other : {"", "int8", "fp8", "e5m2", "BF16", "bf16 ", "f64"}) {
    INFO("'" << other << "'");
    CHECK_FALSE(try_parse_activation_dtype(other));
    try {
      (void)parse_activation_dtype(other);
      FAIL("no error");
    } catch (const error& e) {
      CHECK(std::string(e.what()).find("(f32, f16, bf16)") != std::string::npos);
    }
  }
}

}  // namespace test_algo_linear_input_cpp
