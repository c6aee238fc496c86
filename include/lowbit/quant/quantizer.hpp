#pragma once
// quantize() / dequantize() over Eigen, and the building blocks they are made of (which GPTQ
// uses one column at a time).
//
//   QuantizedMatrix q = quantize(w, spec);             // w: [out, in] row-major view
//   RowMatrixXf w_hat = dequantize(q);
//
// quantize(w, spec) is, by definition (and tested to be, bit for bit):
//   q = make_quantized_matrix(rows, cols, spec, name);
//   fit_matrix_scales(q, w);                          // per-tensor scale, M2 row scales, NVFP4 g
//   fit_group_scales(q, w, 0, q.groups_per_row);      // every group's scale (+ clip search)
//   for each col: quantize_column(q, col, w.col(col), tmp);
// but runs as one fused pass per row (SIMD for the common integer cases). The scale rules are
// in scale_rules.hpp, the code rules in element_codec.hpp, the layout in quantized_matrix.hpp.
//
// The templated core (DESIGN.md section 5) takes any Eigen expression and a scale policy:
//   quantize<float4_e2m1fn>(w, group_scales{128, scale_constraint::pow2_m2});
//   quantize<std::int8_t>(w, channel_scales{});  quantize<uint4>(w, group_scales{128}) (asymmetric)
// (element type -> format: int8_t / uint8_t = int8 symmetric / asymmetric, int4 / uint4 = int4
// symmetric / asymmetric, the float types as themselves); a rank-2 Eigen::TensorMap binds
// through Eigen::Map<const RowMatrixXf>(t.data(), rows, cols).
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <string>
#include <string_view>
#include <type_traits>
#include <vector>

#include "lowbit/config.hpp"
#include "lowbit/formats/nibbles.hpp"
#include "lowbit/quant/clipping.hpp"
#include "lowbit/quant/element_codec.hpp"
#include "lowbit/quant/group_io.hpp"
#include "lowbit/quant/quantized_matrix.hpp"
#include "lowbit/quant/quantize_rows.hpp"
#include "lowbit/quant/scale_rules.hpp"
#include "lowbit/quant/scheme.hpp"

namespace lowbit {


// An empty QuantizedMatrix of this shape and spec: shape fields set, code and scale arrays
// sized (zero-filled), the spec normalized and validated.
template <class Deferred = void>  // see "Compile time" in docs/design.md
QuantizedMatrix make_quantized_matrix(std::int64_t rows, std::int64_t cols, const QuantSpec& spec,
                                             std::string_view name = "weight") {
  QuantizedMatrix q;
  q.name = std::string(name);
  q.spec = normalized_spec(spec, name);
  if (q.spec.zero == zero_form::float_offset)
    detail::fail("quantize '" + q.name + "': float-offset groups come from GGUF imports (Q4_K); no quantizer rule makes them yet");
  if (rows <= 0 || cols <= 0)
    detail::fail("quantize '" + q.name + "': empty matrix (" + std::to_string(rows) + "x" +
                 std::to_string(cols) + ")");
  q.rows = rows;
  q.cols = cols;
  q.group_size = q.spec.gran == granularity::per_group ? q.spec.group_size : cols;
  q.groups_per_row = (cols + q.group_size - 1) / q.group_size;
  q.row_stride = is_nibble_format(q.spec.format) ? (cols + 1) / 2 : cols;
  const std::size_t n = static_cast<std::size_t>(rows * q.groups_per_row);
  q.codes.assign(static_cast<std::size_t>(rows * q.row_stride), 0);
  q.scales.assign(n, 0.0f);
  if (!q.spec.symmetric) q.zeros.assign(n, 0);
  const scale_constraint c = q.spec.constraint;
  if (c == scale_constraint::pow2_m1 || c == scale_constraint::pow2_m2) q.shifts.assign(n, 0);
  if (c == scale_constraint::pow2_m2) q.row_scales.assign(static_cast<std::size_t>(rows), 0.0f);
  if (c == scale_constraint::mx || c == scale_constraint::nvfp4) q.scale_codes.assign(n, 0);
  q.tensor_scale = 1.0f;
  return q;
}

// Matrix-level quantities that must be fixed before groups are fitted, from the full w:
//  - per_tensor: the one scale (and zero point), with clip search over the whole tensor,
//    written to every row (fit_group_scales then leaves it alone);
//  - pow2_m2: row_scales[r] = max_g S_g (raw group scales) in the storage precision;
//  - nvfp4: tensor_scale g = 448 * 6 / amax_tensor.
// Throws on NaN/Inf (naming row and column) and on a shape mismatch.
template <class Deferred = void>  // see "Compile time" in docs/design.md
void fit_matrix_scales(QuantizedMatrix& q, ConstRowMatrixRef w) {
  detail::check_shape(q, w, "fit_matrix_scales");
  const detail::scale_context c0 = detail::context_of(q);
  if (q.spec.gran == granularity::per_tensor) {
    detail::group_range all;
    for (std::int64_t r = 0; r < q.rows; ++r)
      all = detail::merge_ranges(all, detail::scan_range(detail::element_ptr(w, r, 0), q.cols, q.name, r, 0));
    if (q.spec.constraint == scale_constraint::nvfp4) q.tensor_scale = detail::nvfp4_tensor_scale(all.amax);
    const detail::scale_context c = detail::context_of(q);
    const float row_scale = detail::m2_row_scale(c, detail::raw_symmetric_scale(c, all));
    detail::group_params p;
    if (q.spec.clip.enabled) {
      std::vector<detail::value_span> spans;
      for (std::int64_t r = 0; r < q.rows; ++r) spans.push_back({detail::element_ptr(w, r, 0), q.cols});
      p = detail::dispatch_element_format(q.spec.format, [&](auto f) {
        return detail::search_clip<decltype(f)::value>(c, all, row_scale, spans.data(), q.rows);
      });
    } else {
      p = detail::fit_group(c, all, row_scale);
    }
    for (std::int64_t r = 0; r < q.rows; ++r) {
      if (!q.row_scales.empty()) q.row_scales[std::size_t(r)] = row_scale;
      detail::store_params(q, r, 0, p);
    }
    return;
  }
  if (q.spec.constraint == scale_constraint::pow2_m2) {
    for (std::int64_t r = 0; r < q.rows; ++r) {
      float max_s = 0.0f;
      for (std::int64_t g = 0; g < q.groups_per_row; ++g) {
        const std::int64_t c_begin = g * q.group_size, n = std::min(q.group_size, q.cols - c_begin);
        detail::group_range gr;  // M2 is symmetric with an amax rule: the amax is enough
        gr.amax = detail::scan_amax(detail::element_ptr(w, r, c_begin), n, q.name, r, c_begin);
        max_s = std::max(max_s, detail::raw_symmetric_scale(c0, gr));
      }
      q.row_scales[std::size_t(r)] = detail::m2_row_scale(c0, max_s);
    }
  } else if (q.spec.constraint == scale_constraint::nvfp4) {
    float amax = 0.0f;
    for (std::int64_t r = 0; r < q.rows; ++r)
      amax = std::max(amax, detail::scan_amax(detail::element_ptr(w, r, 0), q.cols, q.name, r, 0));
    q.tensor_scale = detail::nvfp4_tensor_scale(amax);
  }
}

// Fits the scale parameters of groups [first_group, first_group + count) of every row from
// the matching columns of w (the full rows x cols matrix), using the matrix-level quantities
// already in q; honors the clipping search. Per-tensor schemes are fitted entirely by
// fit_matrix_scales, so this only checks its arguments for them.
namespace detail {
// The row-range forms of fit_group_scales (one group) and quantize_column, for callers that
// split rows over threads (GPTQ): rows [r0, r1) only, arguments already checked. Rows touch
// disjoint parameters and code bytes, so ranges may run concurrently.
template <class Deferred = void>  // see "Compile time" in docs/design.md
void fit_group_scales_rows(QuantizedMatrix& q, ConstRowMatrixRef w, std::int64_t g, std::int64_t r0,
                                  std::int64_t r1) {
  if (q.spec.gran == granularity::per_tensor) return;
  const scale_context c = context_of(q);
  dispatch_element_format(q.spec.format, [&](auto f) {
    constexpr element_format F = decltype(f)::value;
    for (std::int64_t r = r0; r < r1; ++r) {
      const float row_scale = row_scale_of(q, r);
      const std::int64_t c_begin = g * q.group_size, n = std::min(q.group_size, q.cols - c_begin);
      const float* x = element_ptr(w, r, c_begin);
      const group_range gr = scan_range(x, n, q.name, r, c_begin);
      value_span span{x, n};
      const group_params p = q.spec.clip.enabled ? search_clip<F>(c, gr, row_scale, &span, 1) : fit_group(c, gr, row_scale);
      store_params(q, r, g, p);
    }
  });
}

// values and dequantized: indexed from row r0 (values[0] is row r0).
template <class Deferred = void>  // see "Compile time" in docs/design.md
void quantize_column_rows(QuantizedMatrix& q, std::int64_t col, const float* values, float* dequantized,
                                 std::int64_t r0, std::int64_t r1) {
  const scale_context c = context_of(q);
  const std::int64_t g = col / q.group_size;
  const code_value_table& table = code_values(q.spec.format, q.spec.symmetric);
  const bool nibbles = is_nibble_format(q.spec.format);
  dispatch_element_format(q.spec.format, [&](auto f) {
    constexpr element_format F = decltype(f)::value;
    for (std::int64_t r = r0; r < r1; ++r) {
      const float v = values[r - r0];
      if (!std::isfinite(v)) fail_nonfinite(q.name, v, r, col);
      const group_params p = load_params(q, c, r, g);
      const std::uint8_t code = element_codec<F>::encode(v * p.inv, make_code_bounds(q.spec, p.zero));
      std::uint8_t* row = q.codes.data() + r * q.row_stride;
      if (nibbles)
        set_nibble(row, static_cast<std::size_t>(col), code);
      else
        row[col] = code;
      dequantized[r - r0] = (table[code] - static_cast<float>(p.zero)) * p.scale;
    }
  });
}
}  // namespace detail

template <class Deferred = void>  // see "Compile time" in docs/design.md
void fit_group_scales(QuantizedMatrix& q, ConstRowMatrixRef w, std::int64_t first_group, std::int64_t count) {
  detail::check_shape(q, w, "fit_group_scales");
  if (first_group < 0 || count < 0 || first_group + count > q.groups_per_row)
    detail::fail("fit_group_scales '" + q.name + "': groups [" + std::to_string(first_group) + ", " +
                 std::to_string(first_group + count) + ") outside [0, " + std::to_string(q.groups_per_row) + ")");
  for (std::int64_t g = first_group; g < first_group + count; ++g) detail::fit_group_scales_rows(q, w, g, 0, q.rows);
}

// Quantizes column `col` of every row with q's current parameters: writes the codes into
// q.codes and the dequantized values to dequantized[0..rows). values: rows floats.
template <class Deferred = void>  // see "Compile time" in docs/design.md
void quantize_column(QuantizedMatrix& q, std::int64_t col, const float* values, float* dequantized) {
  if (col < 0 || col >= q.cols)
    detail::fail("quantize_column '" + q.name + "': column " + std::to_string(col) + " outside [0, " +
                 std::to_string(q.cols) + ")");
  detail::quantize_column_rows(q, col, values, dequantized, 0, q.rows);
}

// The float matrix q stands for: w_hat(r, c) = (value(code) - zero) * scale, or
// fma(value(code), scale, offset) for float-offset groups.
template <class Deferred = void>  // see "Compile time" in docs/design.md
RowMatrixXf dequantize(const QuantizedMatrix& q) {
  detail::check_layout(q);
  RowMatrixXf out(q.rows, q.cols);
  detail::dequantize_rows(q, 0, q.rows, out.data(), q.cols);
  return out;
}

namespace detail {

template <element_format F>
QuantizedMatrix quantize_as(ConstRowMatrixRef w, const QuantSpec& spec, std::string_view name) {
  QuantizedMatrix q = make_quantized_matrix(w.rows(), w.cols(), spec, name);
  const QuantSpec& s = q.spec;
  if (s.gran == granularity::per_tensor || s.constraint == scale_constraint::pow2_m2 ||
      s.constraint == scale_constraint::nvfp4)
    fit_matrix_scales(q, w);
  quantize_rows<F>(q, w, 0, q.rows);
  return q;
}

}  // namespace detail

// Quantizes w ([out, in] row-major) as spec says. `name` goes into error messages.
template <class Deferred = void>  // see "Compile time" in docs/design.md
QuantizedMatrix quantize(ConstRowMatrixRef w, const QuantSpec& spec, std::string_view name = "weight") {
  if (w.rows() == 0 || w.cols() == 0)
    detail::fail("quantize '" + std::string(name) + "': empty matrix (" + std::to_string(w.rows()) + "x" +
                 std::to_string(w.cols()) + ")");
  return detail::dispatch_element_format(
      spec.format, [&](auto f) { return detail::quantize_as<decltype(f)::value>(w, spec, name); });
}

}  // namespace lowbit

#include "lowbit/quant/typed_quantizer.hpp"
