#pragma once
// Error metrics between a reference and an approximation (accumulated in double):
//   mse      = mean (ref - approx)^2
//   rel_fro  = ||ref - approx||_F / ||ref||_F                (0 when both are zero)
//   sqnr_db  = 10 log10(sum ref^2 / sum (ref - approx)^2)    (+inf when exact, NaN when the
//              approximation holds NaN/Inf, -inf when only the reference is zero)
//   max_abs  = max |ref - approx|
//   cosine   = <ref, approx> / (||ref|| ||approx||)          (1 when both are zero)
// output_error(x, w, q) compares y = x W^T with y_hat = x W_hat^T: what a layer's output
// loses to weight quantization, which is what matters for accuracy.
#include <algorithm>
#include <cmath>
#include <limits>
#include <string>

#include "lowbit/config.hpp"
#include "lowbit/quant/quantized_matrix.hpp"
#include "lowbit/quant/quantizer.hpp"

namespace lowbit {

struct ErrorStats {
  double mse = 0.0;
  double rel_fro = 0.0;
  double sqnr_db = 0.0;
  double max_abs = 0.0;
  double cosine = 1.0;
  double ref2 = 0.0;  // sum ref^2 and sum (ref - approx)^2 (double): what SquaredErrorSums
  double err2 = 0.0;  // adds up to report one SQNR over several tensors
};

// SQNR in dB from the two sums of squares (the one formula every report uses): +inf when
// exact (err2 = 0), -inf when the reference is zero and the error is not, NaN when a sum is
// NaN (the approximation held NaN or Inf).
inline double sqnr_db(double ref2, double err2) noexcept {
  if (std::isnan(ref2) || std::isnan(err2) || std::isinf(err2)) return std::numeric_limits<double>::quiet_NaN();
  if (err2 == 0.0) return std::numeric_limits<double>::infinity();
  if (ref2 == 0.0) return -std::numeric_limits<double>::infinity();
  return 10.0 * std::log10(ref2 / err2);
}

// Sums of squares in double over several tensors, for one SQNR over all of them
// (sum ||ref||^2 / sum ||ref - approx||^2). Float sums lose digits on large tensors.
struct SquaredErrorSums {
  double ref2 = 0.0, err2 = 0.0;
  void add(ConstRowMatrixRef reference, ConstRowMatrixRef approximation) {
    if (reference.rows() != approximation.rows() || reference.cols() != approximation.cols())
      detail::fail("SquaredErrorSums: the reference and the approximation differ in shape");
    for (Eigen::Index r = 0; r < reference.rows(); ++r) {
      const float* a = reference.data() + r * reference.outerStride();
      const float* b = approximation.data() + r * approximation.outerStride();
      for (Eigen::Index c = 0; c < reference.cols(); ++c) {
        const double x = a[c], d = x - double(b[c]);
        ref2 += x * x;
        err2 += d * d;
      }
    }
  }
  // The sums of a tensor error_stats() has already measured.
  void add(const ErrorStats& s) noexcept {
    ref2 += s.ref2;
    err2 += s.err2;
  }
  double sqnr_db() const noexcept { return lowbit::sqnr_db(ref2, err2); }
};

template <class Deferred = void>  // see "Compile time" in docs/design.md
ErrorStats error_stats(ConstRowMatrixRef reference, ConstRowMatrixRef approximation) {
  if (reference.rows() != approximation.rows() || reference.cols() != approximation.cols())
    detail::fail("error_stats: reference is " + std::to_string(reference.rows()) + "x" +
                 std::to_string(reference.cols()) + " but approximation is " +
                 std::to_string(approximation.rows()) + "x" + std::to_string(approximation.cols()));
  if (reference.size() == 0) detail::fail("error_stats: empty matrices");
  double err2 = 0.0, ref2 = 0.0, app2 = 0.0, dot = 0.0, max_abs = 0.0;
  for (Eigen::Index r = 0; r < reference.rows(); ++r) {
    const float* a = reference.data() + r * reference.outerStride();
    const float* b = approximation.data() + r * approximation.outerStride();
    for (Eigen::Index c = 0; c < reference.cols(); ++c) {
      const double x = a[c], y = b[c], d = x - y;
      err2 += d * d;
      ref2 += x * x;
      app2 += y * y;
      dot += x * y;
      max_abs = std::max(max_abs, std::fabs(d));
    }
  }
  ErrorStats s;
  s.mse = err2 / static_cast<double>(reference.size());
  s.rel_fro = ref2 == 0.0 ? (err2 == 0.0 ? 0.0 : std::numeric_limits<double>::infinity()) : std::sqrt(err2 / ref2);
  s.sqnr_db = sqnr_db(ref2, err2);
  s.max_abs = max_abs;
  s.cosine = (ref2 == 0.0 && app2 == 0.0) ? 1.0 : (ref2 == 0.0 || app2 == 0.0) ? 0.0 : dot / std::sqrt(ref2 * app2);
  s.ref2 = ref2;
  s.err2 = err2;
  return s;
}

// Error of x W_hat^T against x W^T. x: [tokens, in], w: [out, in], q: w quantized.
template <class Deferred = void>  // see "Compile time" in docs/design.md
ErrorStats output_error(ConstRowMatrixRef x, ConstRowMatrixRef w, const QuantizedMatrix& q) {
  if (x.cols() != w.cols())
    detail::fail("output_error '" + q.name + "': activations have " + std::to_string(x.cols()) +
                 " columns but the weight has " + std::to_string(w.cols()) + " inputs");
  if (w.rows() != q.rows || w.cols() != q.cols)
    detail::fail("output_error '" + q.name + "': the weight is " + std::to_string(w.rows()) + "x" +
                 std::to_string(w.cols()) + " but the quantized matrix is " + std::to_string(q.rows) + "x" +
                 std::to_string(q.cols));
  const RowMatrixXf w_hat = dequantize(q);
  const RowMatrixXf y = x * w.transpose();
  const RowMatrixXf y_hat = x * w_hat.transpose();
  return error_stats(y, y_hat);
}

}  // namespace lowbit
