#pragma once
// The fused row quantizer behind quantize(): per row, scan each group, fit its scale, encode
// its codes and pack them, in one pass over the row while it is in cache. The common integer
// round-to-nearest cases go to SIMD row kernels (int_rtn_rows.hpp); everything else runs the
// generic loop below (vectorized through group_kernels.hpp and convert_n). Both produce the
// bytes of the scalar column path (quantize_column), which the tests check for every spec.
#include <cmath>
#include <cstdint>
#include <vector>

#include "lowbit/config.hpp"
#include "lowbit/formats/nibbles.hpp"
#include "lowbit/quant/clipping.hpp"
#include "lowbit/quant/element_codec.hpp"
#include "lowbit/quant/group_io.hpp"
#include "lowbit/quant/group_kernels.hpp"
#include "lowbit/quant/int_rtn_rows.hpp"

namespace lowbit::detail {

template <element_format F>
struct float_element_type {};
template <> struct float_element_type<element_format::float8_e4m3fn> { using type = float8_e4m3fn; };
template <> struct float_element_type<element_format::float8_e5m2> { using type = float8_e5m2; };
template <> struct float_element_type<element_format::float6_e3m2fn> { using type = float6_e3m2fn; };
template <> struct float_element_type<element_format::float6_e2m3fn> { using type = float6_e2m3fn; };
template <> struct float_element_type<element_format::float4_e2m1fn> { using type = float4_e2m1fn; };

// Generic path: rows [r0, r1) of w into q (matrix-level scales already fitted). Per group:
// amax (and NaN/Inf check) from abs_max_bits, the full range only where the rule needs it,
// then codes through scale_round_clamp (integers) or convert_n (floats).
template <element_format F>
void quantize_rows_generic(QuantizedMatrix& q, const ConstRowMatrixRef& w, std::int64_t r0, std::int64_t r1) {
  const scale_context c = context_of(q);
  const bool per_tensor = q.spec.gran == granularity::per_tensor;
  const bool nibbles = is_nibble_format(q.spec.format);
  const bool full_range = !q.spec.symmetric || q.spec.int_rule == int_scale_rule::q4_0;
  std::vector<std::uint8_t> unpacked(nibbles ? static_cast<std::size_t>(q.cols) : 0);
  std::vector<float> scaled(is_integer_format(F) ? 0 : static_cast<std::size_t>(std::min(q.group_size, q.cols)));
  for (std::int64_t r = r0; r < r1; ++r) {
    std::uint8_t* out = nibbles ? unpacked.data() : q.codes.data() + r * q.row_stride;
    const float row_scale = row_scale_of(q, r);
    for (std::int64_t g = 0; g < q.groups_per_row; ++g) {
      const std::int64_t c_begin = g * q.group_size, n = std::min(q.group_size, q.cols - c_begin);
      const float* x = element_ptr(w, r, c_begin);
      group_params p;
      if (per_tensor) {
        p = load_params(q, c, r, 0);  // fit_matrix_scales checked every value
      } else {
        const std::uint32_t mb = abs_max_bits(x, n);
        group_range gr;
        if (mb >= 0x7f800000u || full_range) {
          gr = scan_range(x, n, q.name, r, c_begin);  // throws on NaN/Inf, naming the element
        } else {
          gr.amax = scale_from_bits(mb);
        }
        if (q.spec.clip.enabled) {
          value_span span{x, n};
          p = search_clip<F>(c, gr, row_scale, &span, 1);
        } else {
          p = fit_group(c, gr, row_scale);
        }
        store_params(q, r, g, p);
      }
      if constexpr (is_integer_format(F)) {
        const code_bounds b = make_code_bounds(q.spec, p.zero);
        scale_round_clamp(x, n, p.inv, b.lo, b.hi, b.zero, out + c_begin);
      } else {
        using T = typename float_element_type<F>::type;
        static_assert(sizeof(T) == 1);
        for (std::int64_t i = 0; i < n; ++i) scaled[std::size_t(i)] = x[i] * p.inv;
        convert_n(scaled.data(), reinterpret_cast<T*>(out + c_begin), static_cast<std::size_t>(n), saturation::finite);
      }
    }
    if (nibbles) pack_nibbles(unpacked.data(), static_cast<std::size_t>(q.cols), q.codes.data() + r * q.row_stride);
  }
}

template <element_format F>
void quantize_rows(QuantizedMatrix& q, const ConstRowMatrixRef& w, std::int64_t r0, std::int64_t r1) {
  if constexpr (F == element_format::int4 || F == element_format::int8) {
    if (int_rtn_rows_apply(q)) {
      int_rtn_rows<F>(q, w, r0, r1);
      return;
    }
  }
  quantize_rows_generic<F>(q, w, r0, r1);
}

// Dequantizes rows [r0, r1) into out (row r at out + (r - r0) * ld).
inline void dequantize_rows(const QuantizedMatrix& q, std::int64_t r0, std::int64_t r1, float* out, std::int64_t ld) {
  const code_value_table& table = code_values(q.spec.format, q.spec.symmetric);
  const bool nibbles = is_nibble_format(q.spec.format);
  for (std::int64_t r = r0; r < r1; ++r) {
    const std::uint8_t* codes = q.codes.data() + r * q.row_stride;
    float* y = out + (r - r0) * ld;
    for (std::int64_t g = 0; g < q.groups_per_row; ++g) {
      const std::size_t gi = static_cast<std::size_t>(r * q.groups_per_row + g);
      const float s = q.scales[gi];
      const std::int64_t c_end = std::min(q.cols, (g + 1) * q.group_size);
      if (!q.offsets.empty()) {  // float-offset groups (GGUF Q4_K): one rounding, pinned
        const float o = q.offsets[gi];
        for (std::int64_t col = g * q.group_size; col < c_end; ++col)
          y[col] = std::fma(table[get_nibble(codes, static_cast<std::size_t>(col))], s, o);
        continue;
      }
      const float z = q.zeros.empty() ? 0.0f : static_cast<float>(q.zeros[gi]);
      for (std::int64_t col = g * q.group_size; col < c_end; ++col) {
        const std::uint8_t code = nibbles ? get_nibble(codes, static_cast<std::size_t>(col)) : codes[col];
        y[col] = (table[code] - z) * s;
      }
    }
  }
}

}  // namespace lowbit::detail
