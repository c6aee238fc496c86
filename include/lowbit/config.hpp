#pragma once
// Common vocabulary: the row-major Eigen matrix types every public function takes.
// Weights are [out, in] row-major (nn.Linear), activations [tokens, in], y = x * W^T.
#include <Eigen/Core>
#include <cstdint>

#include "lowbit/error.hpp"
#include "lowbit/version.hpp"

namespace lowbit {

using RowMatrixXf = Eigen::Matrix<float, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>;
using RowMatrixXi8 = Eigen::Matrix<std::int8_t, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>;
using RowMatrixXu8 = Eigen::Matrix<std::uint8_t, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>;
// A row-major matrix view with a runtime outer stride (a strided output, a sub-block).
using RowMatrixRef = Eigen::Ref<RowMatrixXf, 0, Eigen::OuterStride<>>;
using ConstRowMatrixRef = Eigen::Ref<const RowMatrixXf, 0, Eigen::OuterStride<>>;
// 16-bit float activations (IEEE binary16 and bfloat16), as gemm() takes them.
using RowMatrixXh = Eigen::Matrix<Eigen::half, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>;
using RowMatrixXbf16 = Eigen::Matrix<Eigen::bfloat16, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>;
using ConstRowMatrixHRef = Eigen::Ref<const RowMatrixXh, 0, Eigen::OuterStride<>>;
using ConstRowMatrixBf16Ref = Eigen::Ref<const RowMatrixXbf16, 0, Eigen::OuterStride<>>;


namespace detail {
template <class Deferred, class T>
struct deferred_type {
  using type = T;
};
}  // namespace detail
// T, spelled so that it depends on a deferred template's parameter ("Compile time" in
// docs/design.md): a deferred body whose matrices have this type is only parsed where it is
// defined, and overload resolution, Eigen's expression types and the templates they use are
// left to the translation units that call it. A parameter of this type is not deduced, so
// call syntax and implicit conversions are unchanged.
template <class Deferred, class T>
using deferred_t = typename detail::deferred_type<Deferred, T>::type;
}  // namespace lowbit
