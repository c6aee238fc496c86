#pragma once
// ActivationStats: streaming calibration statistics of the inputs of one linear layer.
//
// Per input channel j it keeps absmax, min, max and mean |x|, and the GPTQ Hessian
// H = 2 X^T X / n. Batches stream through add(); no batch is held after the call (except an
// optional bounded sample of rows, which activation-aware objectives such as SmoothQuant's
// W8A8 alpha search need, because quantizing activations is not a function of X^T X).
//
// What is stored is chosen so that merge() is exact:
//  - X^T X is accumulated unnormalized, in fp32, as a sum of per-batch products. Merging
//    adds the sums, so add(A); add(B) and merge(stats(A), stats(B)) perform the same fp32
//    additions and agree bit for bit. (One add() of the concatenation [A; B] differs only
//    by the order of fp32 sums inside the product.)
//  - sums of |x| are kept in double; min/max/absmax are order-independent.
#include <Eigen/Core>
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <limits>
#include <string>

#include "lowbit/algo/detail/gram.hpp"
#include "lowbit/config.hpp"
#include "lowbit/error.hpp"

namespace lowbit {

struct CalibrationOptions {
  bool track_hessian = true;          // X^T X costs channels^2 floats; off for stats only
  std::int64_t max_sample_rows = 0;   // keep up to this many rows of X (first come) for
                                      // objectives that quantize activations
};

// A class template only so that its members compile where they are used ("Compile time" in
// docs/design.md): ActivationStats below is the one instantiation.
template <class Deferred = void>
class BasicActivationStats {
 public:
  BasicActivationStats() = default;
  explicit BasicActivationStats(std::int64_t channels, CalibrationOptions options = {},
                           std::string name = "activations")
      : name_(std::move(name)), options_(options), channels_(channels) {
    if (channels <= 0) detail::fail(name_ + ": calibration needs at least one channel");
    absmax_ = Eigen::VectorXf::Zero(channels);
    min_ = Eigen::VectorXf::Constant(channels, std::numeric_limits<float>::infinity());
    max_ = Eigen::VectorXf::Constant(channels, -std::numeric_limits<float>::infinity());
    sum_abs_ = Eigen::VectorXd::Zero(channels);
    if (options_.track_hessian) xtx_ = Eigen::MatrixXf::Zero(channels, channels);
  }

  // Streams one batch x [tokens, channels].
  void add(deferred_t<Deferred, ConstRowMatrixRef> x) {
    if (channels_ == 0) detail::fail(name_ + ": ActivationStats used before construction");
    if (x.cols() != channels_)
      detail::fail(name_ + ": calibration batch has " + std::to_string(x.cols()) +
                   " channels, expected " + std::to_string(channels_));
    check_not_taken("more calibration data");
    if (x.rows() == 0) return;
    if (!x.allFinite()) detail::fail(name_ + ": calibration batch contains NaN or Inf");
    for (Eigen::Index r = 0; r < x.rows(); ++r) {
      const auto row = x.row(r);
      absmax_ = absmax_.cwiseMax(row.cwiseAbs().transpose());
      min_ = min_.cwiseMin(row.transpose());
      max_ = max_.cwiseMax(row.transpose());
      sum_abs_ += row.cwiseAbs().transpose().template cast<double>();
    }
    // Each batch's product is summed on its own (in registers) and then added, so the running
    // sum is exactly a sum of per-batch products (merge relies on it), with no n x n temporary.
    // Only the lower triangle is accumulated; the upper one is mirrored when read.
    if (options_.track_hessian) {
      detail::gram_lower_accumulate(x.data(), x.outerStride(), x.rows(), channels_, xtx_.data(),
                                    selected_isa_tier());
      upper_stale_ = true;
    }
    if (sample_.rows() < options_.max_sample_rows) {
      const Eigen::Index take =
          std::min<Eigen::Index>(x.rows(), options_.max_sample_rows - sample_.rows());
      const Eigen::Index old = sample_.rows();
      sample_.conservativeResize(old + take, channels_);
      sample_.bottomRows(take) = x.topRows(take);
    }
    count_ += x.rows();
  }

  // Merges stats of other batches (another worker): the result equals one stream over both.
  void merge(const BasicActivationStats& other) {
    if (other.channels_ != channels_)
      detail::fail(name_ + ": cannot merge calibration stats with " +
                   std::to_string(other.channels_) + " channels into " +
                   std::to_string(channels_));
    if (other.options_.track_hessian != options_.track_hessian)
      detail::fail(name_ + ": cannot merge stats with and without a Hessian");
    check_not_taken("merged statistics");
    other.check_not_taken("merged statistics");
    absmax_ = absmax_.cwiseMax(other.absmax_);
    min_ = min_.cwiseMin(other.min_);
    max_ = max_.cwiseMax(other.max_);
    sum_abs_ += other.sum_abs_;
    if (options_.track_hessian) {
      xtx_ += other.xtx_;  // the lower triangles are exact sums; a stale upper is mirrored later
      upper_stale_ = upper_stale_ || other.upper_stale_;
    }
    if (sample_.rows() < options_.max_sample_rows && other.sample_.rows() > 0) {
      const Eigen::Index take = std::min<Eigen::Index>(
          other.sample_.rows(), options_.max_sample_rows - sample_.rows());
      const Eigen::Index old = sample_.rows();
      sample_.conservativeResize(old + take, channels_);
      sample_.bottomRows(take) = other.sample_.topRows(take);
    }
    count_ += other.count_;
  }

  const std::string& name() const noexcept { return name_; }
  std::int64_t channels() const noexcept { return channels_; }
  std::int64_t count() const noexcept { return count_; }  // tokens seen
  bool has_hessian() const noexcept { return options_.track_hessian; }

  const Eigen::VectorXf& absmax() const noexcept { return absmax_; }
  const Eigen::VectorXf& min() const noexcept { return min_; }
  const Eigen::VectorXf& max() const noexcept { return max_; }
  Eigen::VectorXf mean_abs() const {
    require_data("mean |x|");
    return (sum_abs_ / static_cast<double>(count_)).template cast<float>();
  }
  // The GPTQ Hessian H = 2 X^T X / n (fp32).
  Eigen::MatrixXf hessian() const {
    require_data("the Hessian");
    if (!options_.track_hessian) detail::fail(name_ + ": Hessian tracking was turned off");
    check_not_taken("the Hessian");
    mirror_upper();
    return xtx_ * (2.0f / static_cast<float>(count_));
  }
  // The Hessian, moved out: the statistics give up their X^T X (channels^2 floats), scaled
  // in place to 2 X^T X / n (the same products as hessian()), so that GPTQ can work in that
  // buffer. Afterwards hessian(), add() and merge() fail; the other statistics stay.
  Eigen::MatrixXf take_hessian() {
    require_data("the Hessian");
    if (!options_.track_hessian) detail::fail(name_ + ": Hessian tracking was turned off");
    mirror_upper();
    Eigen::MatrixXf h = std::move(xtx_);
    xtx_ = Eigen::MatrixXf();
    h *= 2.0f / static_cast<float>(count_);
    hessian_taken_ = true;
    return h;
  }
  bool hessian_taken() const noexcept { return hessian_taken_; }
  // The unnormalized sum X^T X (empty once take_hessian() took it).
  // Not thread-safe on first read after add(): it completes the upper triangle in place.
  const Eigen::MatrixXf& xtx() const {
    mirror_upper();
    return xtx_;
  }
  // The kept rows of X (at most max_sample_rows).
  const RowMatrixXf& sample() const noexcept { return sample_; }

 private:
  void check_not_taken(const char* what) const {
    if (hessian_taken_) detail::fail(name_ + ": the Hessian was taken (take_hessian), cannot use " + what);
  }
  void mirror_upper() const {
    if (!upper_stale_) return;
    detail::mirror_lower_to_upper(xtx_.data(), channels_);
    upper_stale_ = false;
  }
  void require_data(const char* what) const {
    if (count_ == 0) detail::fail(name_ + ": no calibration data seen, cannot compute " + what);
  }

  std::string name_ = "activations";
  CalibrationOptions options_{};
  std::int64_t channels_ = 0;
  std::int64_t count_ = 0;
  // Spelled dependent (deferred_t): the statistics' Eigen expressions are checked where
  // the class is used, not where it is defined ("Compile time" in docs/design.md).
  deferred_t<Deferred, Eigen::VectorXf> absmax_, min_, max_;
  deferred_t<Deferred, Eigen::VectorXd> sum_abs_;
  mutable deferred_t<Deferred, Eigen::MatrixXf> xtx_;      // lower triangle exact; upper valid unless upper_stale_
  mutable bool upper_stale_ = false;
  RowMatrixXf sample_;
  bool hessian_taken_ = false;
};

using ActivationStats = BasicActivationStats<void>;

// Convenience: stats of one matrix in one pass.
template <class Deferred = void>  // see "Compile time" in docs/design.md
ActivationStats collect_stats(ConstRowMatrixRef x, CalibrationOptions options = {},
                                     std::string name = "activations") {
  ActivationStats s(x.cols(), options, std::move(name));
  s.add(x);
  return s;
}

}  // namespace lowbit
