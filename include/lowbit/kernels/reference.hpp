#pragma once
// The oracle of the integer-activation kernels: y = x * W_hat^T computed straight from the
// QuantizedMatrix (no packing, no padding, no storage bias), in the exact arithmetic order
// documented in kernels/int_family.hpp. Every tier, the scalar packed kernel included, must
// reproduce it bit for bit; tests also expose its int64 group sums to check int32 overflow.
#include <cmath>
#include <cstdint>
#include <vector>

#include "lowbit/config.hpp"
#include "lowbit/kernels/kernel.hpp"
#include "lowbit/pack/int_packing.hpp"
#include "lowbit/quant/activation.hpp"

namespace lowbit::detail {

// Per-token int8 quantization (the semantics of quantize_activations(int8), with its scale
// rule, activation_scale).
struct reference_int8_activations {
  std::int64_t m = 0, k = 0;
  std::vector<std::int8_t> codes;  // m x k
  std::vector<float> scales;       // m
};

inline reference_int8_activations reference_quantize_int8(ConstRowMatrixRef x) {
  reference_int8_activations out;
  out.m = x.rows();
  out.k = x.cols();
  out.codes.resize(static_cast<std::size_t>(out.m * out.k));
  out.scales.resize(static_cast<std::size_t>(out.m));
  for (std::int64_t t = 0; t < out.m; ++t) {
    float amax = 0.0f;
    for (std::int64_t c = 0; c < out.k; ++c) amax = std::max(amax, std::fabs(x(t, c)));
    const ActivationScale rule = activation_scale(act_format::int8, amax);
    out.scales[static_cast<std::size_t>(t)] = rule.scale;
    const float inv = rule.inv;
    for (std::int64_t c = 0; c < out.k; ++c) {
      const float v = x(t, c) * inv;
      const float r = std::nearbyint(v);
      out.codes[static_cast<std::size_t>(t * out.k + c)] =
          static_cast<std::int8_t>(r > 127.0f ? 127.0f : r < -127.0f ? -127.0f : r);
    }
  }
  return out;
}

// Exact sum over group g of w[n, k] * a[t, k], in int64.
inline std::int64_t reference_group_sum(const QuantizedMatrix& q, const reference_int8_activations& a,
                                        std::int64_t t, std::int64_t n, std::int64_t g) {
  std::int64_t s = 0;
  const std::int64_t k0 = g * q.group_size, k1 = std::min(q.cols, k0 + q.group_size);
  for (std::int64_t c = k0; c < k1; ++c)
    s += static_cast<std::int64_t>(int_weight_code(q, n, c)) * a.codes[static_cast<std::size_t>(t * a.k + c)];
  return s;
}

// The M2 whole-row sum sum_g acc_g * 2^(shift_g - min shift), in int64.
inline std::int64_t reference_m2_row_sum(const QuantizedMatrix& q, const reference_int8_activations& a,
                                         std::int64_t t, std::int64_t n) {
  const int lo = m2_row_min_shift(q, n);
  std::int64_t s = 0;
  for (std::int64_t g = 0; g < q.groups_per_row; ++g)
    s += reference_group_sum(q, a, t, n, g) * (std::int64_t{1} << (q.shifts[static_cast<std::size_t>(n * q.groups_per_row + g)] - lo));
  return s;
}

// y (m x rows) for one of the integer-activation schemes. Requires the int32 bounds of
// pack/int_packing.hpp (checked: a sum outside int32 raises lowbit::error).
inline RowMatrixXf reference_gemm_int(const QuantizedMatrix& q, const reference_int8_activations& a, gemm_scheme scheme) {
  RowMatrixXf y(a.m, q.rows);
  auto to_i32 = [](std::int64_t v) {
    if (v > INT32_MAX || v < INT32_MIN) fail("reference_gemm_int: an accumulator leaves int32");
    return static_cast<std::int32_t>(v);
  };
  for (std::int64_t t = 0; t < a.m; ++t) {
    for (std::int64_t n = 0; n < q.rows; ++n) {
      float out;
      if (scheme == gemm_scheme::w4a8_int4_m2) {
        const float rowf = std::ldexp(q.row_scales[static_cast<std::size_t>(n)], m2_row_min_shift(q, n));
        out = static_cast<float>(to_i32(reference_m2_row_sum(q, a, t, n))) * rowf;
      } else {
        out = 0.0f;
        for (std::int64_t g = 0; g < q.groups_per_row; ++g)
          out = std::fma(static_cast<float>(to_i32(reference_group_sum(q, a, t, n, g))),
                         q.scales[static_cast<std::size_t>(n * q.groups_per_row + g)], out);
      }
      y(t, n) = out * a.scales[static_cast<std::size_t>(t)];
    }
  }
  return y;
}

}  // namespace lowbit::detail
