// Calibration statistics and SmoothQuant(+) smoothing invariants.
#include <catch2/catch.hpp>
#include <cmath>
#include <random>

#include "lowbit/algo/calibration.hpp"
#include "lowbit/algo/smoothquant.hpp"
#include "lowbit/quant/quantizer.hpp"

#include "test_algo_support.hpp"

// One namespace per test file, so that any set of test files can be compiled as one
// unity translation unit (tests/CMakeLists.txt) without their file-local names clashing.
namespace test_algo_smoothing_cpp {

using namespace lowbit;

namespace {

using lowbit_test::gaussian;

// Activations with a few outlier channels, as in LLMs.
RowMatrixXf outlier_activations(Eigen::Index tokens, Eigen::Index channels, std::uint64_t seed) {
  RowMatrixXf x = gaussian(tokens, channels, seed);
  for (Eigen::Index j = 0; j < channels; j += 13) x.col(j) *= 40.0f;
  return x;
}

}  // namespace

TEST_CASE("calibration: stats match direct computation", "[algo][smoothing]") {
  const RowMatrixXf x = gaussian(37, 9, 1);
  const ActivationStats s = collect_stats(x);
  CHECK(s.count() == 37);
  for (Eigen::Index j = 0; j < 9; ++j) {
    CHECK(s.absmax()[j] == x.col(j).cwiseAbs().maxCoeff());
    CHECK(s.min()[j] == x.col(j).minCoeff());
    CHECK(s.max()[j] == x.col(j).maxCoeff());
    CHECK(s.mean_abs()[j] == Approx(x.col(j).cwiseAbs().mean()).epsilon(1e-5));
  }
  const Eigen::MatrixXf h = s.hessian();
  const Eigen::MatrixXf expected = 2.0f * x.transpose() * x / 37.0f;
  CHECK((h - expected).cwiseAbs().maxCoeff() <= 1e-4f * expected.cwiseAbs().maxCoeff());
}

TEST_CASE("calibration: merging batches equals one pass", "[algo][smoothing]") {
  const RowMatrixXf a = gaussian(20, 6, 2), b = gaussian(13, 6, 3), c = gaussian(7, 6, 4);
  CalibrationOptions opt;
  opt.max_sample_rows = 30;
  ActivationStats stream(6, opt);
  stream.add(a);
  stream.add(b);
  stream.add(c);
  ActivationStats w1(6, opt), w2(6, opt), w3(6, opt);
  w1.add(a);
  w2.add(b);
  w3.add(c);
  w1.merge(w2);
  w1.merge(w3);
  CHECK(w1.count() == stream.count());
  CHECK(w1.absmax() == stream.absmax());
  CHECK(w1.min() == stream.min());
  CHECK(w1.max() == stream.max());
  CHECK(w1.mean_abs() == stream.mean_abs());
  CHECK(w1.hessian() == stream.hessian());  // bit for bit: the same fp32 sums
  CHECK(w1.sample() == stream.sample());
  CHECK(w1.sample().rows() == 30);
  // One add() of the concatenation agrees to fp32 rounding.
  RowMatrixXf all(40, 6);
  all << a, b, c;
  const ActivationStats once = collect_stats(all);
  CHECK(once.absmax() == stream.absmax());
  CHECK((once.hessian() - stream.hessian()).cwiseAbs().maxCoeff() <= 1e-5f * once.hessian().cwiseAbs().maxCoeff());
}

TEST_CASE("calibration: bad input", "[algo][smoothing]") {
  ActivationStats s(4);
  CHECK_THROWS_AS(s.add(RowMatrixXf::Zero(2, 5)), error);
  RowMatrixXf bad = RowMatrixXf::Zero(2, 4);
  bad(1, 2) = std::nanf("");
  CHECK_THROWS_AS(s.add(bad), error);
  CHECK_THROWS_AS(s.hessian(), error);  // no data
  ActivationStats other(3);
  CHECK_THROWS_AS(s.merge(other), error);
}

TEST_CASE("smoothing: X W^T == (X/s)(W s)^T without quantization", "[algo][smoothing]") {
  const RowMatrixXf x = outlier_activations(64, 40, 5);
  const RowMatrixXf w = gaussian(24, 40, 6, 0.05f);
  const ActivationStats stats = collect_stats(x);
  for (float alpha : {0.0f, 0.3f, 0.5f, 0.8f, 1.0f}) {
    const Eigen::VectorXf s = smoothing_factors(stats.absmax(), weight_column_absmax(w), alpha);
    const RowMatrixXf y = x * w.transpose();
    const RowMatrixXf y2 = smoothed_activations(x, s) * smoothed_weight(w, s).transpose();
    CHECK((y - y2).norm() <= 1e-5f * y.norm());
  }
}

TEST_CASE("smoothing: zero channels are guarded", "[algo][smoothing]") {
  Eigen::VectorXf a(3), wm(3);
  a << 0.0f, 2.0f, 4.0f;
  wm << 1.0f, 0.0f, 1.0f;
  const Eigen::VectorXf s = smoothing_factors(a, wm, 0.5f);
  CHECK(s[0] == 1.0f);
  CHECK(s[1] == 1.0f);
  CHECK(s[2] == Approx(2.0f));
  CHECK_THROWS_AS(smoothing_factors(a, wm, 1.5f), error);
  CHECK_THROWS_AS(smoothing_factors(a, Eigen::VectorXf::Ones(2), 0.5f), error);
}

TEST_CASE("smoothing: folding 1/s into an RMSNorm/LayerNorm gives the same layer output",
          "[algo][smoothing]") {
  const RowMatrixXf h = gaussian(16, 12, 7);
  Eigen::VectorXf gamma = Eigen::VectorXf::LinSpaced(12, 0.5f, 3.0f);
  Eigen::VectorXf beta = Eigen::VectorXf::LinSpaced(12, -1.0f, 1.0f);
  const RowMatrixXf w = gaussian(8, 12, 8);
  // LayerNorm-like: normalize each row, then * gamma + beta.
  auto norm = [&](const Eigen::VectorXf& g, const Eigen::VectorXf& b) {
    RowMatrixXf out(h.rows(), h.cols());
    for (Eigen::Index r = 0; r < h.rows(); ++r) {
      const float rms = std::sqrt(h.row(r).squaredNorm() / float(h.cols()) + 1e-5f);
      out.row(r) = (h.row(r).array() / rms * g.transpose().array() + b.transpose().array()).matrix();
    }
    return out;
  };
  const RowMatrixXf x = norm(gamma, beta);
  const ActivationStats stats = collect_stats(x);
  const Eigen::VectorXf s = smoothing_factors(stats.absmax(), weight_column_absmax(w), 0.5f);
  const RowMatrixXf y = x * w.transpose();
  Eigen::VectorXf g2 = gamma, b2 = beta;
  fold_smoothing_into_norm(g2, s, &b2);
  const RowMatrixXf y2 = norm(g2, b2) * smoothed_weight(w, s).transpose();
  CHECK((y - y2).norm() <= 1e-5f * y.norm());
  // RMSNorm (no bias).
  Eigen::VectorXf g3 = gamma;
  fold_smoothing_into_norm(g3, s);
  const RowMatrixXf x0 = norm(gamma, Eigen::VectorXf::Zero(12));
  const RowMatrixXf y3 = norm(g3, Eigen::VectorXf::Zero(12)) * smoothed_weight(w, s).transpose();
  CHECK((x0 * w.transpose() - y3).norm() <= 1e-5f * y3.norm());
}

TEST_CASE("smoothing: the alpha search finds the known optimum of a constructed case",
          "[algo][smoothing]") {
  // Quantizer: round to a fixed grid of step 0.3. For one input channel with activation
  // max a and weight w, the smoothed weight is w s = (a w)^alpha, and with a w = 0.81 it is
  // exactly on the grid (0.9) only at alpha = 0.5; every other alpha leaves an error.
  const float a = 3.0f, wv = 0.27f;
  RowMatrixXf x(2, 1);
  x << a, -a / 2;
  RowMatrixXf w(1, 1);
  w << wv;
  CalibrationOptions copt;
  copt.max_sample_rows = 2;
  const ActivationStats stats = collect_stats(x, copt);
  SmoothOptions opt;
  opt.weight_quantizer = [](ConstRowMatrixRef m) {
    return RowMatrixXf((m.array() / 0.3f).round() * 0.3f);
  };
  const SmoothingResult r = smooth(stats, w, opt);
  CHECK(r.alpha == Approx(0.5f));
  CHECK(r.error < 1e-6);
  CHECK(r.curve.size() == 21);
  for (const AlphaPoint& p : r.curve)
    if (std::abs(p.alpha - 0.5f) > 1e-3f) CHECK(p.error > 1e-3);
  // The model-level chooser minimizes any objective on the same grid.
  const AlphaChoice c = choose_alpha([](float al) { return double((al - 0.35f) * (al - 0.35f)); });
  CHECK(c.alpha == Approx(0.35f));
}

TEST_CASE("smoothing: the search picks the grid argmin and helps W4A16 with outlier channels",
          "[algo][smoothing]") {
  const RowMatrixXf x = outlier_activations(96, 64, 9);
  const RowMatrixXf w = gaussian(32, 64, 10, 0.05f);
  QuantSpec spec;
  spec.format = element_format::int4;
  spec.gran = granularity::per_group;
  spec.group_size = 32;
  spec.symmetric = false;
  CalibrationOptions copt;
  const ActivationStats stats = collect_stats(x, copt);  // Hessian objective (no sample)
  SmoothOptions opt;
  opt.weight_quantizer = weight_fake_quantizer(spec);
  const SmoothingResult r = smooth(stats, w, opt);
  // Brute force, independently: relative ||X W^T - (X/s) Q(W s)^T||.
  const RowMatrixXf y = x * w.transpose();
  double best = 1e300;
  float best_alpha = -1;
  for (int i = 0; i <= 20; ++i) {
    const float al = float(i) / 20.0f;
    const Eigen::VectorXf s = smoothing_factors(stats.absmax(), weight_column_absmax(w), al);
    const RowMatrixXf wq = dequantize(quantize(smoothed_weight(w, s), spec));
    const double e = (y - smoothed_activations(x, s) * wq.transpose()).norm() / y.norm();
    CHECK(r.curve[std::size_t(i)].error == Approx(e).epsilon(1e-3));
    if (e < best) best = e, best_alpha = al;
  }
  CHECK(r.alpha == Approx(best_alpha));
  CHECK(r.error < r.error_unsmoothed);
}

TEST_CASE("smoothing: shared factors for layers reading the same input", "[algo][smoothing]") {
  const RowMatrixXf x = outlier_activations(64, 32, 11);
  const RowMatrixXf wq = gaussian(32, 32, 12, 0.05f), wk = gaussian(16, 32, 13, 0.2f);
  CalibrationOptions copt;
  copt.max_sample_rows = 64;
  const ActivationStats stats = collect_stats(x, copt);
  QuantSpec spec;
  spec.format = element_format::int8;
  spec.gran = granularity::per_channel;
  SmoothOptions opt;
  opt.weight_quantizer = weight_fake_quantizer(spec);
  // W8A8: the objective quantizes activations too (a local per-token int8 here).
  opt.activation_quantizer = [](ConstRowMatrixRef m) {
    RowMatrixXf out(m.rows(), m.cols());
    for (Eigen::Index r = 0; r < m.rows(); ++r) {
      const float s = std::max(m.row(r).cwiseAbs().maxCoeff() / 127.0f, 1e-30f);
      out.row(r) = ((m.row(r).array() / s).round() * s).matrix();
    }
    return out;
  };
  const SmoothingResult shared = smooth_shared(stats, {wq, wk}, opt);
  // The shared factors use the pooled column maxima.
  const Eigen::VectorXf pooled = weight_column_absmax(wq).cwiseMax(weight_column_absmax(wk));
  CHECK(shared.scales.isApprox(smoothing_factors(stats.absmax(), pooled, shared.alpha)));
  CHECK(shared.error < shared.error_unsmoothed);  // outliers make smoothing pay off for A8
  CHECK(shared.alpha > 0.0f);
  // Without kept rows the W8A8 objective cannot run.
  const ActivationStats no_rows = collect_stats(x);
  CHECK_THROWS_AS(smooth(no_rows, wq, opt), error);
}
}  // namespace test_algo_smoothing_cpp
