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

}  // namespace lowbit
