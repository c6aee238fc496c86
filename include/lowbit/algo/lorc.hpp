#pragma once
// LoRC (ZeroQuant-V2, arXiv 2303.08302): a low-rank compensation of the quantization error.
//     E = W - W_hat = U S V^T,   U_hat = U_r S_r^1/2 [out, r],   V_hat = S_r^1/2 V_r^T [r, in]
// so W ~ W_hat + U_hat V_hat and at run time  Y = X W_hat^T + (X V_hat^T) U_hat^T.
//
// The SVD is Eigen's exact BDCSVD for small matrices and a randomized range finder with
// power iterations (Halko, Martinsson, Tropp 2011) for large ones: for rank r it costs a few
// passes of E times a thin matrix instead of a full decomposition.
//
// The factors are stored in fp32, fp16 or int8 (per-row symmetric, one fp32 scale per row
// of U_hat and of V_hat). `u` and `v` always hold the effective fp32 values (what the forward
// pass uses, exactly representable in the storage format); for int8 the codes and scales
// that reproduce them are kept too, as the compact form a checkpoint stores.
#include <Eigen/Core>
#include <Eigen/QR>
#include <Eigen/SVD>
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <random>
#include <string>
#include <vector>

#include "lowbit/algo/low_rank.hpp"
#include "lowbit/config.hpp"
#include "lowbit/quant/quantizer.hpp"

namespace lowbit {

namespace detail {

struct truncated_svd {
  Eigen::MatrixXf u;          // [m, r]
  Eigen::VectorXf sigma;      // [r]
  Eigen::MatrixXf v;          // [n, r]
};

template <class Deferred = void>  // see "Compile time" in docs/design.md
truncated_svd exact_svd(const deferred_t<Deferred, Eigen::MatrixXf>& e, int rank) {
  Eigen::BDCSVD<deferred_t<Deferred, Eigen::MatrixXf>> svd(e, Eigen::ComputeThinU | Eigen::ComputeThinV);
  return {svd.matrixU().leftCols(rank), svd.singularValues().head(rank),
          svd.matrixV().leftCols(rank)};
}

// Randomized SVD: Y = (E E^T)^q E Omega, Q = orth(Y), B = Q^T E, SVD(B).
template <class Deferred = void>  // see "Compile time" in docs/design.md
truncated_svd randomized_svd(const deferred_t<Deferred, Eigen::MatrixXf>& e, int rank, int oversampling,
                             int power_iterations, std::uint64_t seed) {
  using Matrix = deferred_t<Deferred, Eigen::MatrixXf>;
  const Eigen::Index m = e.rows(), n = e.cols();
  const Eigen::Index k = std::min<Eigen::Index>(rank + oversampling, std::min(m, n));
  std::mt19937_64 rng(seed);
  std::normal_distribution<float> gauss(0.0f, 1.0f);
  Matrix omega(n, k);
  for (Eigen::Index i = 0; i < omega.size(); ++i) omega.data()[i] = gauss(rng);
  auto orthonormal = [](const Matrix& y) {
    Eigen::HouseholderQR<Matrix> qr(y);
    return Matrix(qr.householderQ() * Matrix::Identity(y.rows(), y.cols()));
  };
  Matrix q = orthonormal(e * omega);
  for (int it = 0; it < power_iterations; ++it) {
    // Re-orthonormalizing between the two products keeps the small singular directions
    // from drowning in rounding (fp32).
    Matrix z = orthonormal(e.transpose() * q);
    q = orthonormal(e * z);
  }
  const Matrix b = q.transpose() * e;  // [k, n]
  Eigen::JacobiSVD<Matrix> svd(b, Eigen::ComputeThinU | Eigen::ComputeThinV);
  return {q * svd.matrixU().leftCols(rank), svd.singularValues().head(rank),
          svd.matrixV().leftCols(rank)};
}

// Per-row symmetric int8 of a factor: code = round(x / s), s = amax / 127.
template <class Deferred = void>  // see "Compile time" in docs/design.md
void quantize_rows_int8(deferred_t<Deferred, RowMatrixXf>& f, RowMatrixXi8& codes, std::vector<float>& scales) {
  codes.resize(f.rows(), f.cols());
  scales.assign(static_cast<std::size_t>(f.rows()), 0.0f);
  for (Eigen::Index r = 0; r < f.rows(); ++r) {
    const float amax = f.row(r).cwiseAbs().maxCoeff();
    const float s = amax > 0.0f ? amax / 127.0f : 1.0f;
    scales[static_cast<std::size_t>(r)] = s;
    for (Eigen::Index c = 0; c < f.cols(); ++c) {
      const float q = std::clamp(std::nearbyint(f(r, c) / s), -127.0f, 127.0f);
      codes(r, c) = static_cast<std::int8_t>(q);
      f(r, c) = q * s;
    }
  }
}

template <class Deferred = void>  // see "Compile time" in docs/design.md
void round_to_half(deferred_t<Deferred, RowMatrixXf>& f) {
  f = f.template cast<Eigen::half>().template cast<float>();
}

}  // namespace detail

// LoRC of the error between w and its quantized approximation w_hat ([out, in] both).
template <class Deferred = void>  // see "Compile time" in docs/design.md
LowRank lorc_from_error(const deferred_t<Deferred, Eigen::MatrixXf>& error, int rank, const LorcOptions& options = {}) {
  const Eigen::Index m = error.rows(), n = error.cols();
  if (m == 0 || n == 0) detail::fail("lorc: empty error matrix");
  if (rank <= 0) detail::fail("lorc: rank must be positive, got " + std::to_string(rank));
  if (!error.allFinite()) detail::fail("lorc: the quantization error contains NaN or Inf");
  const int r = static_cast<int>(std::min<Eigen::Index>(rank, std::min(m, n)));
  bool exact = options.method == svd_method::exact;
  if (options.method == svd_method::automatic)
    exact = std::min(m, n) <= options.exact_max_dim ||
            r + options.oversampling >= std::min(m, n) / 2;
  const detail::truncated_svd svd =
      exact ? detail::exact_svd<Deferred>(error, r)
            : detail::randomized_svd<Deferred>(error, r, options.oversampling, options.power_iterations,
                                     options.seed);
  const deferred_t<Deferred, Eigen::VectorXf> root = svd.sigma.cwiseSqrt();
  LowRank lr;
  lr.storage = options.storage;
  lr.u = svd.u * root.asDiagonal();
  lr.v = root.asDiagonal() * svd.v.transpose();
  switch (options.storage) {
    case lorc_storage::f32: break;
    case lorc_storage::f16:
      detail::round_to_half<Deferred>(lr.u);
      detail::round_to_half<Deferred>(lr.v);
      break;
    case lorc_storage::int8:
      detail::quantize_rows_int8<Deferred>(lr.u, lr.u_codes, lr.u_scales);
      detail::quantize_rows_int8<Deferred>(lr.v, lr.v_codes, lr.v_scales);
      break;
  }
  return lr;
}

template <class Deferred = void>  // see "Compile time" in docs/design.md
LowRank lorc(deferred_t<Deferred, ConstRowMatrixRef> w, deferred_t<Deferred, ConstRowMatrixRef> w_hat, int rank,
             const LorcOptions& options = {}) {
  if (w.rows() != w_hat.rows() || w.cols() != w_hat.cols())
    detail::fail("lorc: weight is " + std::to_string(w.rows()) + "x" + std::to_string(w.cols()) +
                 " but its quantized form is " + std::to_string(w_hat.rows()) + "x" +
                 std::to_string(w_hat.cols()));
  return lorc_from_error<Deferred>(deferred_t<Deferred, Eigen::MatrixXf>(w - w_hat), rank, options);
}

// LoRC of a weight and its QuantizedMatrix.
template <class Deferred = void>  // see "Compile time" in docs/design.md
LowRank lorc(deferred_t<Deferred, ConstRowMatrixRef> w, const QuantizedMatrix& q, int rank,
             const LorcOptions& options = {}) {
  if (w.rows() != q.rows || w.cols() != q.cols)
    detail::fail("lorc: weight is " + std::to_string(w.rows()) + "x" + std::to_string(w.cols()) +
                 " but quantized matrix '" + q.name + "' is " + std::to_string(q.rows) + "x" +
                 std::to_string(q.cols));
  return lorc_from_error<Deferred>(deferred_t<Deferred, Eigen::MatrixXf>(w - dequantize<Deferred>(q)), rank, options);
}

}  // namespace lowbit
