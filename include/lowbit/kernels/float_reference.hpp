#pragma once
// The oracle of the float-decoding kernel family (w8a8_fp8, w4a8_fp4, w4a16_int4,
// w4a16_fp4, w8a16_int8): straightforward code that every SIMD tier is tested against.
//
//  - Weights are decoded one element at a time straight from the QuantizedMatrix, exactly as
//    dequantize() defines them: w_hat(n, k) = (value(code) - zero(n, g)) * scale(n, g),
//    computed in fp32 (value - zero is an exact small number, so this is one rounding).
//  - A8 schemes quantize each activation row with the rule below (quantize_token_e4m3);
//    A16 schemes use x as given.
//  - Products and sums are accumulated in double; the per-token activation scale is applied
//    once at the end: y(t, n) = float(s_a(t) * sum_k value(xq(t, k)) * w_hat(n, k)).
//
// The per-token E4M3 activation rule (quant/activation.hpp's activation_scale, called here):
//   amax = max_k |x(t, k)|; scale = amax / 448, inv = 448 / amax (both 0 when amax == 0 or
//   the row is too small to invert; refused when the scale would overflow);
//   code(t, k) = convert<float8_e4m3fn>(x(t, k) * inv, saturation::finite), fp32 multiply.
// A non-finite activation has no meaningful scale, so it is an error, not a silent NaN row.
#include <cmath>
#include <cstdint>
#include <string>

#include "lowbit/config.hpp"
#include "lowbit/error.hpp"
#include "lowbit/formats/convert.hpp"
#include "lowbit/formats/float4.hpp"
#include "lowbit/formats/float8.hpp"
#include "lowbit/formats/nibbles.hpp"
#include "lowbit/kernels/kernel.hpp"
#include "lowbit/quant/activation.hpp"
#include "lowbit/quant/quantized_matrix.hpp"

namespace lowbit::detail {

// Per-token E4M3 quantization of one activation row of `n` values, the reference rule.
// `token` only names the row in error messages.
inline void quantize_token_e4m3_reference(const float* x, std::int64_t n, std::int64_t token,
                                          std::uint8_t* codes, float* scale) {
  float amax = 0.0f;
  for (std::int64_t i = 0; i < n; ++i) {
    if (!std::isfinite(x[i]))
      fail("activations: non-finite value at token " + std::to_string(token) + ", column " +
           std::to_string(i));
    amax = std::fmax(amax, std::fabs(x[i]));
  }
  const ActivationScale rule = activation_scale(act_format::float8_e4m3fn, amax);  // the one rule
  if (rule.overflows)
    fail("activations: token " + std::to_string(token) + ": |x| up to " + std::to_string(amax) +
         " is too close to FLT_MAX: its dequantized values would overflow");
  const float inv = rule.inv;
  *scale = rule.scale;
  for (std::int64_t i = 0; i < n; ++i)
    codes[i] = convert<float8_e4m3fn>(x[i] * inv, saturation::finite).bits();
}

// The exact value of the stored code of weight (r, c), before zero point and scale.
inline float weight_code_value_reference(const QuantizedMatrix& q, std::int64_t r, std::int64_t c) {
  const std::uint8_t* row = q.codes.data() + r * q.row_stride;
  switch (q.spec.format) {
    case element_format::float8_e4m3fn: return float8_e4m3fn::from_bits(row[c]).to_float();
    case element_format::float4_e2m1fn:
      return float4_e2m1fn::from_bits(get_nibble(row, static_cast<std::size_t>(c))).to_float();
    case element_format::int4: {
      const int nib = get_nibble(row, static_cast<std::size_t>(c));
      if (!q.spec.symmetric) return static_cast<float>(nib);   // 0..15, zero point apart
      return static_cast<float>(nib >= 8 ? nib - 16 : nib);    // two's complement
    }
    case element_format::int8: return static_cast<float>(static_cast<std::int8_t>(row[c]));  // w8a16_int8
    default: fail("float kernel reference: weight format not in the float family");
  }
}

// w_hat(r, c) exactly as dequantize() computes it (fp32).
inline float weight_value_reference(const QuantizedMatrix& q, std::int64_t r, std::int64_t c) {
  const std::int64_t g = c / q.group_size;
  const std::size_t i = static_cast<std::size_t>(r * q.groups_per_row + g);
  if (!q.offsets.empty()) return std::fma(weight_code_value_reference(q, r, c), q.scales[i], q.offsets[i]);
  const float zero = q.zeros.empty() ? 0.0f : static_cast<float>(q.zeros[i]);
  return (weight_code_value_reference(q, r, c) - zero) * q.scales[i];
}

inline bool scheme_quantizes_activations(gemm_scheme s) noexcept {
  return s == gemm_scheme::w8a8_fp8 || s == gemm_scheme::w4a8_fp4;
}

// y = x * W_hat^T for one float-family scheme, the slow and obvious way.
inline RowMatrixXf float_reference_gemm(const QuantizedMatrix& q, gemm_scheme scheme,
                                        ConstRowMatrixRef x) {
  if (x.cols() != q.cols)
    fail("float kernel reference: x has " + std::to_string(x.cols()) + " columns, weights have " +
         std::to_string(q.cols));
  const std::int64_t tokens = x.rows(), n_out = q.rows, k_in = q.cols;
  RowMatrixXf w_hat(n_out, k_in);
  for (std::int64_t r = 0; r < n_out; ++r)
    for (std::int64_t c = 0; c < k_in; ++c) w_hat(r, c) = weight_value_reference(q, r, c);

  const bool a8 = scheme_quantizes_activations(scheme);
  RowMatrixXf y(tokens, n_out);
  std::vector<std::uint8_t> codes(static_cast<std::size_t>(k_in));
  std::vector<double> xv(static_cast<std::size_t>(k_in));
  for (std::int64_t t = 0; t < tokens; ++t) {
    double token_scale = 1.0;
    if (a8) {
      const RowMatrixXf row = x.row(t);
      float s = 0.0f;
      quantize_token_e4m3_reference(row.data(), k_in, t, codes.data(), &s);
      token_scale = s;
      for (std::int64_t c = 0; c < k_in; ++c)
        xv[static_cast<std::size_t>(c)] = float8_e4m3fn::from_bits(codes[static_cast<std::size_t>(c)]).to_float();
    } else {
      for (std::int64_t c = 0; c < k_in; ++c) xv[static_cast<std::size_t>(c)] = x(t, c);
    }
    // Raw pointers in the inner loop (same sums, same order): the tests also run this
    // unoptimised under the sanitizers, where each element accessor is a call.
    const double* xp = xv.data();
    for (std::int64_t r = 0; r < n_out; ++r) {
      const float* wr = w_hat.data() + r * k_in;  // row-major, contiguous
      double acc = 0.0;
      for (std::int64_t c = 0; c < k_in; ++c) acc += xp[c] * wr[c];
      y(t, r) = static_cast<float>(token_scale * acc);
    }
  }
  return y;
}

}  // namespace lowbit::detail
