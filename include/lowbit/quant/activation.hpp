#pragma once
// Dynamic (per-token) activation quantization: INT8 symmetric, FP8 E4M3 or FP8 E5M2, one scale
// per row (token), or per group of `group_size` consecutive inputs of a row.
//
// Exact semantics (the SIMD kernels reproduce them bit for bit; do not change one without
// the other). For each row t and group j (columns [j*G, min((j+1)*G, cols))):
//   amax  = max |x| over the group
//   qmax  = 127 (int8), 448 (E4M3), 57344 (E5M2)
//   scale = amax / qmax                       (fp32 division)
//   inv   = qmax / amax                       (fp32 division; when amax == 0: inv = 0, scale = 0)
//   int8: code = clamp(nearbyint(x * inv), -127, 127)      (fp32 multiply, round half to even;
//         stored as two's complement)
//   fp8:  code = convert<T>(x * inv, saturation::finite)    (fp32 multiply)
//   dequantized value = decode(code) * scale
// Note inv is qmax / amax, not 1 / scale: one rounding instead of two.
// Range edges (activation_scale below, the one definition every path uses): a group whose
// qmax * scale overflows (|x| within an ulp or so of FLT_MAX) is refused, naming the row
// (its dequantized values would be Inf); a group whose inv overflows (amax below about
// qmax * 2^-128) is flushed to zero (scale 0, codes 0) rather than saturating every element
// at +-qmax.
// NaN/Inf in x raise lowbit::error naming the row and column.
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <string>
#include <vector>

#include "lowbit/config.hpp"
#include "lowbit/formats/convert.hpp"
#include "lowbit/formats/intn.hpp"
#include "lowbit/quant/scheme.hpp"

namespace lowbit {

struct QuantizedActivations {
  act_format format = act_format::int8;
  std::int64_t rows = 0, cols = 0;
  std::int64_t group_size = 0;          // effective group length (cols for whole-row scales)
  std::int64_t groups_per_row = 0;      // ceil(cols / group_size)
  std::vector<std::uint8_t> codes;      // rows * cols, row-major: int8 two's complement or fp8 code
  std::vector<float> scales;            // rows * groups_per_row
};

constexpr float act_qmax(act_format f) noexcept {
  return f == act_format::int8 ? 127.0f : f == act_format::float8_e4m3fn ? 448.0f : 57344.0f;
}

// The scale rule of one group (row) from its amax = max |x| (finite, >= 0): the one
// definition that quantize_activations, the kernels' prepare steps (kernels/int_family.hpp,
// kernels/float_layout.hpp) and their references (kernels/reference.hpp,
// kernels/float_reference.hpp) all call, so the paths cannot drift apart.
//   scale = amax / qmax, inv = qmax / amax (code = x * inv, value = decode(code) * scale);
//   both 0 when amax == 0 or when inv overflows (amax below about qmax * 2^-128): such a
//   group is flushed to zero rather than every element saturating at +-qmax;
//   overflows: qmax * scale rounds past FLT_MAX (amax within an ulp or so of it), so the
//   dequantized values would be Inf; callers refuse the group, naming it.
struct ActivationScale {
  float scale = 0.0f;
  float inv = 0.0f;
  bool overflows = false;
};

inline ActivationScale activation_scale(act_format f, float amax) noexcept {
  const float qmax = act_qmax(f);
  ActivationScale s;
  if (amax == 0.0f || !std::isfinite(qmax / amax)) return s;  // all zero, or too tiny to invert
  s.scale = amax / qmax;
  s.inv = qmax / amax;
  s.overflows = !std::isfinite(qmax * s.scale);
  return s;
}

namespace detail {

// One group: codes for x[0..n). amax must be max |x| of the group.
inline float quantize_activation_group(act_format f, const float* x, std::int64_t n, float amax, std::uint8_t* codes,
                                       float* tmp) {
  const ActivationScale s = activation_scale(f, amax);
  const float scale = s.scale, inv = s.inv;
  for (std::int64_t i = 0; i < n; ++i) tmp[i] = x[i] * inv;
  switch (f) {
    case act_format::int8:
      for (std::int64_t i = 0; i < n; ++i) codes[i] = static_cast<std::uint8_t>(round_clamp(tmp[i], -127, 127));
      break;
    case act_format::float8_e4m3fn:
      convert_n(tmp, reinterpret_cast<float8_e4m3fn*>(codes), static_cast<std::size_t>(n), saturation::finite);
      break;
    case act_format::float8_e5m2:
      convert_n(tmp, reinterpret_cast<float8_e5m2*>(codes), static_cast<std::size_t>(n), saturation::finite);
      break;
  }
  return scale;
}

}  // namespace detail

// Quantizes x ([tokens, in]) per row, or per group of group_size columns (0 = whole row).
template <class Deferred = void>  // see "Compile time" in docs/design.md
QuantizedActivations quantize_activations(ConstRowMatrixRef x, act_format f, std::int64_t group_size = 0,
                                                 std::string_view name = "activations") {
  const std::string who = "quantize_activations '" + std::string(name) + "': ";
  if (x.rows() == 0 || x.cols() == 0)
    detail::fail(who + "empty matrix (" + std::to_string(x.rows()) + "x" + std::to_string(x.cols()) + ")");
  if (group_size < 0) detail::fail(who + "group size must be >= 0 (0 = whole row), got " + std::to_string(group_size));
  static_assert(sizeof(float8_e4m3fn) == 1 && sizeof(float8_e5m2) == 1);
  QuantizedActivations a;
  a.format = f;
  a.rows = x.rows();
  a.cols = x.cols();
  a.group_size = group_size == 0 ? a.cols : group_size;
  a.groups_per_row = (a.cols + a.group_size - 1) / a.group_size;
  a.codes.resize(static_cast<std::size_t>(a.rows * a.cols));
  a.scales.resize(static_cast<std::size_t>(a.rows * a.groups_per_row));
  std::vector<float> tmp(static_cast<std::size_t>(std::min(a.group_size, a.cols)));
  for (std::int64_t r = 0; r < a.rows; ++r) {
    const float* row = x.data() + r * x.outerStride();
    for (std::int64_t g = 0; g < a.groups_per_row; ++g) {
      const std::int64_t c0 = g * a.group_size, n = std::min(a.group_size, a.cols - c0);
      float amax = 0.0f;
      for (std::int64_t i = 0; i < n; ++i) {
        const float v = row[c0 + i];
        if (!std::isfinite(v))
          detail::fail(who + (std::isnan(v) ? "NaN" : "Inf") + " at row " + std::to_string(r) + ", column " +
                       std::to_string(c0 + i));
        amax = std::max(amax, std::fabs(v));
      }
      if (activation_scale(f, amax).overflows)
        detail::fail(who + "row " + std::to_string(r) + ", columns " + std::to_string(c0) + ".." + std::to_string(c0 + n - 1) +
                     ": |x| up to " + std::to_string(amax) + " is too close to FLT_MAX: its dequantized values would overflow");
      a.scales[static_cast<std::size_t>(r * a.groups_per_row + g)] = detail::quantize_activation_group(
          f, row + c0, n, amax, a.codes.data() + r * a.cols + c0, tmp.data());
    }
  }
  return a;
}

// decode(code) * scale for every element.
template <class Deferred = void>  // see "Compile time" in docs/design.md
RowMatrixXf dequantize(const QuantizedActivations& a) {
  if (a.rows <= 0 || a.cols <= 0 || a.group_size < 1 || a.groups_per_row != (a.cols + a.group_size - 1) / a.group_size ||
      a.codes.size() != static_cast<std::size_t>(a.rows * a.cols) ||
      a.scales.size() != static_cast<std::size_t>(a.rows * a.groups_per_row))
    detail::fail("dequantize: quantized activations have an inconsistent shape");
  RowMatrixXf out(a.rows, a.cols);
  for (std::int64_t r = 0; r < a.rows; ++r)
    for (std::int64_t c = 0; c < a.cols; ++c) {
      const std::uint8_t code = a.codes[static_cast<std::size_t>(r * a.cols + c)];
      float v = 0.0f;
      switch (a.format) {
        case act_format::int8: v = static_cast<float>(static_cast<std::int8_t>(code)); break;
        case act_format::float8_e4m3fn: v = float8_e4m3fn::from_bits(code).to_float(); break;
        case act_format::float8_e5m2: v = float8_e5m2::from_bits(code).to_float(); break;
      }
      out(r, c) = v * a.scales[static_cast<std::size_t>(r * a.groups_per_row + c / a.group_size)];
    }
  return out;
}

}  // namespace lowbit
