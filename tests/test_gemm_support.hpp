#pragma once
// Shared helpers for the GEMM tests: integer QuantizedMatrix values built by hand (every code
// reachable, ragged groups, M2 shifts), their exact dequantization, a random x, and the float
// family's tolerance.
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <random>
#include <vector>

#include "lowbit/config.hpp"
#include "lowbit/formats/float8.hpp"
#include "lowbit/formats/nibbles.hpp"
#include "lowbit/kernels/float_reference.hpp"
#include "lowbit/quant/quantized_matrix.hpp"

namespace lowbit::test {

struct int_matrix_recipe {
  std::int64_t rows = 37, cols = 172;
  element_format format = element_format::int4;
  std::int64_t group = 32;  // 0: per channel
  bool m2 = false;
  int max_spread = 3;       // M2 shifts drawn from [-max_spread, 0]
  int code_lo = -7, code_hi = 7;
  std::uint32_t seed = 1;
};

inline QuantizedMatrix make_int_matrix(const int_matrix_recipe& r) {
  QuantizedMatrix q;
  q.spec.format = r.format;
  q.spec.symmetric = true;
  q.spec.gran = r.group ? granularity::per_group : granularity::per_channel;
  q.spec.group_size = r.group ? static_cast<int>(r.group) : 128;
  q.spec.constraint = r.m2 ? scale_constraint::pow2_m2 : scale_constraint::none;
  q.rows = r.rows;
  q.cols = r.cols;
  q.group_size = r.group ? r.group : r.cols;
  q.groups_per_row = (r.cols + q.group_size - 1) / q.group_size;
  const bool int4 = r.format == element_format::int4;
  q.row_stride = int4 ? (r.cols + 1) / 2 : r.cols;
  q.codes.assign(static_cast<std::size_t>(q.rows * q.row_stride), 0);
  std::mt19937 rng(r.seed);
  std::uniform_int_distribution<int> code(r.code_lo, r.code_hi);
  for (std::int64_t i = 0; i < q.rows; ++i)
    for (std::int64_t c = 0; c < q.cols; ++c) {
      const int v = code(rng);
      if (int4)
        set_nibble(q.codes.data() + i * q.row_stride, static_cast<std::size_t>(c), static_cast<std::uint8_t>(v & 0xF));
      else
        q.codes[static_cast<std::size_t>(i * q.row_stride + c)] = static_cast<std::uint8_t>(static_cast<std::int8_t>(v));
    }
  std::uniform_real_distribution<float> scale(0.002f, 0.05f);
  std::uniform_int_distribution<int> shift(-r.max_spread, 0);
  q.scales.resize(static_cast<std::size_t>(q.rows * q.groups_per_row));
  if (r.m2) {
    q.row_scales.resize(static_cast<std::size_t>(q.rows));
    q.shifts.resize(q.scales.size());
    for (std::int64_t i = 0; i < q.rows; ++i) {
      q.row_scales[static_cast<std::size_t>(i)] = scale(rng);
      for (std::int64_t g = 0; g < q.groups_per_row; ++g) {
        const std::size_t at = static_cast<std::size_t>(i * q.groups_per_row + g);
        q.shifts[at] = static_cast<std::int8_t>(g == 0 ? 0 : shift(rng));
        q.scales[at] = std::ldexp(q.row_scales[static_cast<std::size_t>(i)], q.shifts[at]);
      }
    }
  } else {
    for (float& s : q.scales) s = scale(rng);
  }
  return q;
}

// A QuantizedMatrix of float-family weights (E4M3, E2M1, int4 symmetric or with zero points,
// symmetric int8 for w8a16_int8)
// built by hand with random codes and scales (the layout its header documents), so the
// kernel tests do not depend on the quantizers. 4-bit codes take every nibble (int4 -8..7,
// 0..15 with zero points, all 16 E2M1 codes); int4_minus8 = false maps the symmetric int4
// code -8 to 7. E4M3 codes take every byte but the NaNs. One random stream: codes row by row,
// then scales, then zero points.
// float_offset (asymmetric int4): float offsets in [-0.5, 0.5] instead of zero points.
inline QuantizedMatrix random_float_family_matrix(element_format format, bool symmetric, std::int64_t rows,
                                                  std::int64_t cols, std::int64_t group, std::uint32_t seed,
                                                  bool int4_minus8 = true, bool float_offset = false) {
  std::mt19937 rng(seed);
  QuantizedMatrix q;
  q.spec.format = format;
  q.spec.symmetric = symmetric;
  q.spec.gran = group >= cols ? granularity::per_channel : granularity::per_group;
  q.spec.group_size = static_cast<int>(group);
  q.rows = rows;
  q.cols = cols;
  q.group_size = std::min(group, cols);
  q.groups_per_row = (cols + q.group_size - 1) / q.group_size;
  const bool int8 = format == element_format::int8;  // w8a16_int8: every byte, -128 included
  const bool eight = format == element_format::float8_e4m3fn || int8;
  q.row_stride = eight ? cols : (cols + 1) / 2;
  q.codes.assign(static_cast<std::size_t>(rows * q.row_stride), 0);
  std::uniform_int_distribution<int> byte(0, 255), nib(0, 15);
  for (std::int64_t r = 0; r < rows; ++r)
    for (std::int64_t c = 0; c < cols; ++c) {
      std::uint8_t* row = q.codes.data() + r * q.row_stride;
      if (eight) {
        int v = byte(rng);
        if (!int8 && (v & 0x7F) == 0x7F) v ^= 1;  // no E4M3 NaN codes
        row[c] = static_cast<std::uint8_t>(v);
      } else {
        int v = nib(rng);
        if (!int4_minus8 && format == element_format::int4 && symmetric && v == 8) v = 7;
        set_nibble(row, static_cast<std::size_t>(c), static_cast<std::uint8_t>(v));
      }
    }
  std::uniform_real_distribution<float> scale(0.01f, 0.2f);
  q.scales.resize(static_cast<std::size_t>(rows * q.groups_per_row));
  for (float& s : q.scales) s = scale(rng);
  if (!symmetric && float_offset) {
    q.spec.zero = zero_form::float_offset;
    std::uniform_real_distribution<float> offset(-0.5f, 0.5f);
    q.offsets.resize(q.scales.size());
    for (float& o : q.offsets) o = offset(rng);
  } else if (!symmetric) {
    q.zeros.resize(q.scales.size());
    for (auto& z : q.zeros) z = static_cast<std::uint8_t>(nib(rng));
  }
  return q;
}

// w_hat = code * scale (symmetric integer formats).
inline RowMatrixXf dequantize_int(const QuantizedMatrix& q) {
  RowMatrixXf w(q.rows, q.cols);
  for (std::int64_t i = 0; i < q.rows; ++i)
    for (std::int64_t c = 0; c < q.cols; ++c) {
      const std::uint8_t* row = q.codes.data() + i * q.row_stride;
      int v;
      if (q.spec.format == element_format::int8) {
        v = static_cast<std::int8_t>(row[c]);
      } else {
        const int nib = get_nibble(row, static_cast<std::size_t>(c));
        v = (nib & 8) ? nib - 16 : nib;
      }
      w(i, c) = static_cast<float>(v) * q.scales[static_cast<std::size_t>(i * q.groups_per_row + c / q.group_size)];
    }
  return w;
}

inline RowMatrixXf random_activations(std::int64_t m, std::int64_t k, std::uint32_t seed) {
  std::mt19937 rng(seed);
  std::normal_distribution<float> nd(0.0f, 1.0f);
  RowMatrixXf x(m, k);
  for (std::int64_t i = 0; i < m; ++i)
    for (std::int64_t c = 0; c < k; ++c) x(i, c) = nd(rng) * (c % 17 == 3 ? 8.0f : 1.0f);  // outlier channels
  return x;
}

// The float family's stated tolerance per output (float_layout.hpp): 2e-5 * s_a * sum_k
// |xq| |w_hat|, with xq the E4M3 activations of A8 schemes (x itself otherwise) and |w_hat|
// read as the few-token path's rounding sees it: (|v| + z) * s for zero points, |v| * s + |o|
// for float offsets (that path computes s * (sum x v - z sum x) and s * sum x v + o sum x).
constexpr float float_family_tolerance = 2e-5f;
inline RowMatrixXf float_family_tolerances(const QuantizedMatrix& q, gemm_scheme scheme, const RowMatrixXf& x) {
  RowMatrixXf w_abs(q.rows, q.cols);
  for (std::int64_t r = 0; r < q.rows; ++r)
    for (std::int64_t c = 0; c < q.cols; ++c) {
      const std::size_t gi = static_cast<std::size_t>(r * q.groups_per_row + c / q.group_size);
      const float v = std::fabs(detail::weight_code_value_reference(q, r, c));
      w_abs(r, c) = !q.offsets.empty() ? v * q.scales[gi] + std::fabs(q.offsets[gi])
                    : q.zeros.empty()  ? std::fabs(detail::weight_value_reference(q, r, c))
                                       : (v + q.zeros[gi]) * q.scales[gi];
    }
  RowMatrixXf xa = x.cwiseAbs();
  if (detail::scheme_quantizes_activations(scheme)) {
    std::vector<std::uint8_t> codes(static_cast<std::size_t>(x.cols()));
    for (std::int64_t t = 0; t < x.rows(); ++t) {
      const RowMatrixXf row = x.row(t);
      float s = 0.0f;
      detail::quantize_token_e4m3_reference(row.data(), x.cols(), t, codes.data(), &s);
      for (std::int64_t c = 0; c < x.cols(); ++c)
        xa(t, c) = std::fabs(float8_e4m3fn::from_bits(codes[static_cast<std::size_t>(c)]).to_float()) * s;
    }
  }
  RowMatrixXf tol = (xa * w_abs.transpose()) * float_family_tolerance;
  tol.array() += 1e-37f;  // a zero tolerance (zero row) still demands an exact 0
  return tol;
}

// max over outputs of |a - b| / tol (<= 1 passes); NaN counts as a failure.
inline double worst_ratio(const RowMatrixXf& a, const RowMatrixXf& b, const RowMatrixXf& tol) {
  double worst = 0.0;
  for (Eigen::Index i = 0; i < a.rows(); ++i)
    for (Eigen::Index j = 0; j < a.cols(); ++j) {
      const double d = std::fabs(static_cast<double>(a(i, j)) - b(i, j));
      if (!(d <= tol(i, j))) worst = std::max(worst, std::isnan(d) ? 1e30 : d / tol(i, j));
    }
  return worst;
}

}  // namespace lowbit::test
