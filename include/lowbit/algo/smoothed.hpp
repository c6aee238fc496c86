#pragma once
// Applying smoothing factors s (algo/smoothquant.hpp finds them): W diag(s) and X diag(s)^-1.
// A header of its own so that QuantizedLinear (algo/quantized_linear.hpp) has its forward
// formula without the smoothing search ("Compile time" in docs/design.md).
#include "lowbit/config.hpp"
#include "lowbit/error.hpp"

namespace lowbit {

// W diag(s): scales input column j of the weight by s_j.
template <class Deferred = void>  // see "Compile time" in docs/design.md
RowMatrixXf smoothed_weight(deferred_t<Deferred, ConstRowMatrixRef> w, const Eigen::VectorXf& s) {
  if (w.cols() != s.size()) detail::fail("smoothing: weight columns do not match the factors");
  return w * s.asDiagonal();
}

// X diag(s)^-1: divides activation channel j by s_j.
template <class Deferred = void>  // see "Compile time" in docs/design.md
RowMatrixXf smoothed_activations(deferred_t<Deferred, ConstRowMatrixRef> x, const Eigen::VectorXf& s) {
  if (x.cols() != s.size())
    detail::fail("smoothing: activation channels do not match the factors");
  return x * s.cwiseInverse().asDiagonal();
}

}  // namespace lowbit
