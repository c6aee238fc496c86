#pragma once
// Internals shared by the quantizer paths: scanning a group's range (and rejecting NaN/Inf
// with the row and column), moving a group's parameters in and out of a QuantizedMatrix,
// and checking shapes and layouts.
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <string>

#include "lowbit/config.hpp"
#include "lowbit/quant/quantized_matrix.hpp"
#include "lowbit/quant/group_kernels.hpp"
#include "lowbit/quant/scale_rules.hpp"

namespace lowbit {
namespace detail {

// Address of w(r, c) (ConstRowMatrixRef's operator() returns a copy).
inline const float* element_ptr(const ConstRowMatrixRef& w, std::int64_t r, std::int64_t c) noexcept {
  return w.data() + r * w.outerStride() + c;
}

[[noreturn]] inline void fail_nonfinite(const std::string& name, float v, std::int64_t row, std::int64_t col) {
  fail("quantize '" + name + "': " + (std::isnan(v) ? "NaN" : "Inf") + " at row " + std::to_string(row) +
       ", column " + std::to_string(col));
}

// Range of x[0..n) (element (row, col0 + i)); throws on NaN/Inf naming the element.
// amax comes from abs_max_bits (vectorized), lo/hi from plain loops the compiler vectorizes.
inline group_range scan_range(const float* x, std::int64_t n, const std::string& name, std::int64_t row,
                              std::int64_t col0) {
  group_range g;
  const std::uint32_t mb = abs_max_bits(x, n);
  if (mb >= 0x7f800000u)
    for (std::int64_t i = 0; i < n; ++i)
      if (!std::isfinite(x[i])) fail_nonfinite(name, x[i], row, col0 + i);
  g.amax = scale_from_bits(mb);
  float lo = 0.0f, hi = 0.0f;
  for (std::int64_t i = 0; i < n; ++i) {
    lo = x[i] < lo ? x[i] : lo;
    hi = x[i] > hi ? x[i] : hi;
  }
  g.lo = lo;
  g.hi = hi;
  for (std::int64_t i = 0; i < n; ++i)
    if (std::fabs(x[i]) == g.amax) {
      g.extreme = x[i];
      break;
    }
  return g;
}

// Only the amax of x[0..n) (throws on NaN/Inf like scan_range).
inline float scan_amax(const float* x, std::int64_t n, const std::string& name, std::int64_t row, std::int64_t col0) {
  const std::uint32_t mb = abs_max_bits(x, n);
  if (mb >= 0x7f800000u) scan_range(x, n, name, row, col0);
  return scale_from_bits(mb);
}

inline group_range merge_ranges(const group_range& a, const group_range& b) noexcept {
  group_range g;
  g.amax = std::max(a.amax, b.amax);
  g.extreme = b.amax > a.amax ? b.extreme : a.extreme;
  g.lo = std::min(a.lo, b.lo);
  g.hi = std::max(a.hi, b.hi);
  return g;
}

inline void check_shape(const QuantizedMatrix& q, const ConstRowMatrixRef& w, const char* what) {
  if (w.rows() != q.rows || w.cols() != q.cols)
    fail(std::string(what) + " '" + q.name + "': the matrix is " + std::to_string(w.rows()) + "x" +
         std::to_string(w.cols()) + " but the quantized matrix is " + std::to_string(q.rows) + "x" +
         std::to_string(q.cols));
}

inline scale_context context_of(const QuantizedMatrix& q) noexcept {
  return make_scale_context(q.spec, q.tensor_scale);
}

inline void store_params(QuantizedMatrix& q, std::int64_t row, std::int64_t group, const group_params& p) noexcept {
  const std::size_t i = static_cast<std::size_t>(row * q.groups_per_row + group);
  q.scales[i] = p.scale;
  if (!q.zeros.empty()) q.zeros[i] = p.zero;
  if (!q.shifts.empty()) q.shifts[i] = p.shift;
  if (!q.scale_codes.empty()) q.scale_codes[i] = p.scale_code;
}

inline group_params load_params(const QuantizedMatrix& q, const scale_context& c, std::int64_t row,
                                std::int64_t group) noexcept {
  const std::size_t i = static_cast<std::size_t>(row * q.groups_per_row + group);
  group_params p;
  p.scale = q.scales[i];
  if (!q.zeros.empty()) p.zero = q.zeros[i];
  if (!q.shifts.empty()) p.shift = q.shifts[i];
  if (!q.scale_codes.empty()) p.scale_code = q.scale_codes[i];
  p.inv = inverse_scale(c, p.scale, p.scale_code);
  return p;
}

inline float row_scale_of(const QuantizedMatrix& q, std::int64_t row) noexcept {
  return q.row_scales.empty() ? 0.0f : q.row_scales[static_cast<std::size_t>(row)];
}

// Checks that the arrays of q have the sizes its shape and spec say (a corrupt or
// hand-built matrix gives an error, not an out-of-bounds read).
inline void check_layout(const QuantizedMatrix& q) {
  const auto bad = [&](const char* what) { fail("quantized matrix '" + q.name + "': " + what); };
  if (q.rows <= 0 || q.cols <= 0) bad("empty shape");
  if (q.group_size < 1 || q.groups_per_row != (q.cols + q.group_size - 1) / q.group_size)
    bad("group_size and groups_per_row do not match cols");
  const std::int64_t stride = is_nibble_format(q.spec.format) ? (q.cols + 1) / 2 : q.cols;
  if (q.row_stride != stride || std::int64_t(q.codes.size()) != q.rows * stride) bad("codes have the wrong size");
  const std::size_t n = static_cast<std::size_t>(q.rows * q.groups_per_row);
  if (q.scales.size() != n) bad("scales have the wrong size");
  const bool offsets = q.spec.zero == zero_form::float_offset;
  if (offsets && (q.spec.symmetric || q.spec.format != element_format::int4 || q.spec.constraint != scale_constraint::none))
    bad("float-offset groups need asymmetric int4 with scale constraint none");
  if (!q.spec.symmetric && !offsets && q.zeros.size() != n) bad("zeros have the wrong size");
  if (offsets) {
    if (q.offsets.size() != n || !q.zeros.empty()) bad("offsets have the wrong size");
    for (const float o : q.offsets)
      if (!std::isfinite(o)) bad("an offset is not finite");
  } else if (!q.offsets.empty()) {
    bad("offsets given but the spec has integer zero points");
  }
  const scale_constraint c = q.spec.constraint;
  if ((c == scale_constraint::pow2_m1 || c == scale_constraint::pow2_m2) && q.shifts.size() != n)
    bad("shifts have the wrong size");
  if (c == scale_constraint::pow2_m2 && q.row_scales.size() != std::size_t(q.rows)) bad("row_scales have the wrong size");
  if ((c == scale_constraint::mx || c == scale_constraint::nvfp4) && q.scale_codes.size() != n)
    bad("scale_codes have the wrong size");
}

}  // namespace detail

}  // namespace lowbit
