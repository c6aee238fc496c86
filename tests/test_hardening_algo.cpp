// Tests that catch realistic bugs in the algorithms (issue 15, items 27, 28) and the layer
// rules the CLI reports (items 18, 21): the clipping search picks the best ratio of its
// documented grid, GPTQ's loss does not depend on the lazy block size, a LoRC rank that
// cannot be stored is reported, and bits/weight has one definition.
#include <catch2/catch.hpp>

#include <cmath>
#include <random>

#include "lowbit/algo/gptq.hpp"
#include "lowbit/algo/linear.hpp"
#include "lowbit/quant/quantizer.hpp"
#include "lowbit/quant/spec_text.hpp"

// One namespace per test file, so that any set of test files can be compiled as one
// unity translation unit (tests/CMakeLists.txt) without their file-local names clashing.
namespace test_hardening_algo_cpp {

namespace {

lowbit::RowMatrixXf random_matrix(std::int64_t rows, std::int64_t cols, unsigned seed) {
  std::mt19937 rng(seed);
  std::student_t_distribution<float> t(4.0f);
  lowbit::RowMatrixXf w(rows, cols);
  for (Eigen::Index i = 0; i < w.size(); ++i) w.data()[i] = 0.05f * t(rng);
  return w;
}

// Squared error of one int4 symmetric group quantized with scale (amax * r) / 7, computed
// here from the documented rule (quant/scale_rules.hpp), independent of the library.
double int4_group_error(const float* x, int n, float amax, float r) {
  const float scale = (amax * r) / 7.0f;
  const float inv = 1.0f / scale;
  double e = 0.0;
  for (int i = 0; i < n; ++i) {
    float c = std::nearbyint(x[i] * inv);
    c = c > 7.0f ? 7.0f : c < -7.0f ? -7.0f : c;
    // The library stores c * scale as a float and the error is taken in double; doing the
    // same here keeps a fused multiply-subtract (aarch64 contracts) from changing the sum.
    const double d = double(x[i]) - double(c * scale);
    e += d * d;
  }
  return e;
}

}  // namespace

TEST_CASE("clipping search: the chosen ratio is the best of the documented grid", "[quant][hardening]") {
  // Grid: r_i = 1 - (1 - min_ratio) * i / (steps - 1), i = 0..steps-1 (quant/clipping.hpp).
  const float min_ratio = 0.6f;
  const int steps = 21, g = 32;
  lowbit::RowMatrixXf w = random_matrix(8, 4 * g, 11);
  for (int r = 0; r < 8; ++r) w(r, (r * 13) % (4 * g)) *= 12.0f;  // one outlier in some groups
  const auto q = lowbit::quantize(w, lowbit::parse_quant_spec("int4:g32:clip0.6x21"), "clip.weight");
  const auto plain = lowbit::quantize(w, lowbit::parse_quant_spec("int4:g32"), "clip.weight");
  const lowbit::RowMatrixXf d = lowbit::dequantize(q);
  double searched_total = 0.0, plain_total = 0.0;
  for (int r = 0; r < 8; ++r)
    for (int k = 0; k < 4; ++k) {
      const float* x = w.data() + r * w.cols() + k * g;
      float amax = 0.0f;
      for (int i = 0; i < g; ++i) amax = std::max(amax, std::fabs(x[i]));
      double best = int4_group_error(x, g, amax, 1.0f);
      for (int i = 1; i < steps; ++i)
        best = std::min(best, int4_group_error(x, g, amax, 1.0f - (1.0f - min_ratio) * float(i) / float(steps - 1)));
      double got = 0.0;
      for (int i = 0; i < g; ++i) {
        const double e = double(x[i]) - double(d(r, k * g + i));
        got += e * e;
      }
      INFO("row " << r << " group " << k);
      CHECK(got == Approx(best).epsilon(1e-9));
      searched_total += got;
      plain_total += int4_group_error(x, g, amax, 1.0f);
    }
  // And the search matters on these groups: a stated margin over plain RTN (0.29 dB here).
  CHECK(10.0 * std::log10(plain_total / searched_total) > 0.2);
  CHECK(lowbit::dequantize(plain).isApprox(lowbit::dequantize(lowbit::quantize(w, lowbit::parse_quant_spec("int4:g32:clip1x1")))));
}

TEST_CASE("GPTQ: the loss does not depend on the lazy block size", "[algo][hardening]") {
  // The lazy-batch update is an exact reordering of the column-by-column algorithm, so a
  // block of 40 columns and one block of all columns give the same result up to rounding.
  const std::int64_t rows = 24, cols = 160;
  const lowbit::RowMatrixXf w = random_matrix(rows, cols, 21);
  std::mt19937 rng(22);
  std::normal_distribution<float> n(0.0f, 1.0f);
  lowbit::RowMatrixXf x(512, cols);
  for (Eigen::Index i = 0; i < x.size(); ++i) x.data()[i] = n(rng);
  x.col(3) *= 8.0f;
  x.rightCols(cols / 2) += 0.7f * x.leftCols(cols / 2);  // correlated inputs: GPTQ's updates matter
  const Eigen::MatrixXf h = (2.0f / float(x.rows())) * (x.transpose() * x);
  const auto loss = [&](const lowbit::QuantizedMatrix& q) {
    const Eigen::MatrixXd e = (w - lowbit::dequantize(q)).cast<double>();
    return (e * h.cast<double>() * e.transpose()).trace();
  };
  for (const char* spec : {"int4:g32", "int4:channel", "float4_e2m1fn:g32:m1"}) {
    INFO(spec);
    lowbit::GptqOptions blocked, whole;
    blocked.block_size = 40;
    whole.block_size = cols;
    const double l40 = loss(lowbit::gptq(w, h, lowbit::parse_quant_spec(spec), blocked).matrix);
    const double l_all = loss(lowbit::gptq(w, h, lowbit::parse_quant_spec(spec), whole).matrix);
    CHECK(std::fabs(l40 - l_all) <= 1e-4 * l_all);
    CHECK(l40 < loss(lowbit::quantize(w, lowbit::parse_quant_spec(spec))));  // and it beats RTN
  }
}

TEST_CASE("quantize_linear: a LoRC rank above the weight's size is reported", "[algo][hardening]") {
  const lowbit::RowMatrixXf w = random_matrix(8, 32, 31);
  lowbit::LinearRecipe r;
  r.weight = lowbit::parse_quant_spec("int4:g32");
  r.lorc_rank = 100000;
  const lowbit::QuantizedLinear l = lowbit::quantize_linear(w, nullptr, r, nullptr, "small");
  REQUIRE(l.lorc);
  CHECK(l.lorc->rank() == 8);
  CHECK_THAT(l.warning, Catch::Contains("LoRC rank 100000 reduced to 8"));
  r.lorc_rank = 4;
  CHECK(lowbit::quantize_linear(w, nullptr, r, nullptr, "small").warning.empty());
}

TEST_CASE("QuantizedLinear: bits/weight counts codes, scales, zeros, LoRC and smoothing", "[algo][hardening]") {
  const lowbit::RowMatrixXf w = random_matrix(16, 64, 41);
  lowbit::QuantizedLinear l;
  l.weight = lowbit::quantize(w, lowbit::parse_quant_spec("int4:g32:asym"), "x");
  // 4-bit codes + (32-bit scale + 8-bit zero) per 32 weights.
  CHECK(l.bits_per_weight() == Approx(4.0 + 40.0 / 32.0));
  l.lorc = lowbit::lorc(w, l.weight, 2);
  l.smoothing = Eigen::VectorXf::Ones(64);
  l.bias = Eigen::VectorXf::Zero(16);  // not counted: the unquantized layer has it too
  const double expected = double(l.weight.storage_bits() + l.lorc->storage_bits() + 32 * 64) / (16.0 * 64.0);
  CHECK(l.bits_per_weight() == Approx(expected));
  CHECK(l.quantized_bits() == l.weight.storage_bits() + l.lorc->storage_bits() + 32 * 64);
}
}  // namespace test_hardening_algo_cpp
