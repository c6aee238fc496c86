#pragma once
// Common vocabulary: the row-major Eigen matrix types every public function takes.
// Weights are [out, in] row-major (nn.Linear), activations [tokens, in], y = x * W^T.
#include <Eigen/Core>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

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

// The element type of the activations a gemm() call passes in. W4A16 schemes run fp16 and
// bf16 activations on the AVX512-FP16 kernel where the CPU has it, weight-only schemes on
// AMX-BF16 tiles read them as they are; everything else widens them to fp32 first (exactly:
// every fp16 and bf16 value is an fp32 value).
enum class activation_dtype : std::uint8_t { f32, f16, bf16 };

constexpr std::string_view to_string(activation_dtype d) noexcept {
  switch (d) {
    case activation_dtype::f32: return "f32";
    case activation_dtype::f16: return "f16";
    case activation_dtype::bf16: return "bf16";
  }
  return "unknown";
}

// "f32" (or "fp32"), "f16" ("fp16"), "bf16": the names to_string gives, as flags spell them;
// nullopt for anything else (a flag that also takes other values asks this first).
inline std::optional<activation_dtype> try_parse_activation_dtype(std::string_view s) {
  if (s == "f32" || s == "fp32") return activation_dtype::f32;
  if (s == "f16" || s == "fp16") return activation_dtype::f16;
  if (s == "bf16") return activation_dtype::bf16;
  return std::nullopt;
}
// The same, with an error naming the accepted names.
inline activation_dtype parse_activation_dtype(std::string_view s) {
  if (const auto t = try_parse_activation_dtype(s)) return *t;
  throw error("unknown activation type '" + std::string(s) + "' (f32, f16, bf16)");
}


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
