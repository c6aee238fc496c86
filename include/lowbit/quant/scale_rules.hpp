#pragma once
// How one group's scale parameters follow from its range, for every scale rule and constraint.
// Everything here is scalar, exact and shared by every quantizer path (fused, column-wise,
// clipping search, SIMD), so they cannot drift apart.
//
// The real scale S of a symmetric group (before any constraint):
//   integer, amax_over_qmax       S = amax / qmax            (amax maps exactly to +-qmax)
//   integer, amax_over_qmax_half  S = amax / (qmax + 0.5)    (the extreme element lands on
//                                  qmax + 0.5 and is clamped to qmax: it loses at most half
//                                  a step, exactly the bound every other element has, and in
//                                  exchange all elements get a grid finer by qmax/(qmax+0.5);
//                                  it lowers the MSE slightly for 4-bit groups)
//   integer, q4_0                 S = m / -(qmax + 1), m the element with the largest |x|
//                                  (sign kept): that element maps to -(qmax+1) = -8, the code
//                                  symmetric schemes leave idle, so 16 levels are used; the
//                                  scale is negative when m > 0 (as in ggml's Q4_0)
//   float formats                 S = amax / max_finite      (E2M1: amax / 6)
// Asymmetric integers (min-max): lo = min(x_min, 0), hi = max(x_max, 0),
//   S = hi/qmax - lo/qmax, zero = clamp(round(-lo / S), 0, qmax): an integer, so zero is
//   exactly representable and 0.0 quantizes to exactly 0.0.
// Constraints (exponents found exactly with frexp/ldexp, not with float log2):
//   none     S rounded to the storage precision (f32 as is, f16/bf16 nearest-even, saturating)
//   pow2_m1  S' = 2^e, e = ceil(log2 S), e in [-126, 127]; an all-zero group gets e = 0
//   pow2_m2  S' = S_row * 2^k, k = the smallest integer with S_row * 2^k >= S, k in [-128, 0];
//            S_row = max_g S_g rounded to the storage precision; a zero group gets k = 0
//   mx       S' = 2^e, e = floor(log2 amax) - emax_elem (+1 with round_up_175 when the
//            significand of amax is >= 1.75), e in [-127, 127]; an all-zero block gets e = 0
//   nvfp4    g = (448 * 6) / amax_tensor (1 for an all-zero tensor, FLT_MAX if that
//            overflows), s_b = e4m3((g * amax_b) / 6), S' = s_b / g
// Codes are then computed as encode(x * inv) with inv = 1 / S' (g / s_b for NVFP4), 0 when
// S' == 0 (an all-zero group: every code is 0 and every value exactly 0).
//
// Range edges (none, pow2_m1, pow2_m2 and asymmetric scales):
//   - huge groups: S' is capped at the largest scale with (code magnitude) * S' finite, so
//     weights near +-FLT_MAX dequantize to finite values (the extreme element clamps to
//     qmax * S', just below FLT_MAX) instead of Inf;
//   - tiny groups (amax below about qmax * 2^-128): 1 / S' would overflow and every element
//     would encode as +-qmax. Such a group is flushed to zero (S' = 0, every code 0): an
//     absolute error below qmax * 2^-128 (~3e-39 qmax), which is exact enough, where the
//     reciprocal would give a relative error near 1. (pow2_m1 / mx exponents are clamped
//     to >= 2^-127 and need no flush; pow2_m2 keeps its group shifts above that bound.)
//   - f16 scale storage saturates: a nonzero scale below the smallest f16 subnormal (2^-24,
//     ~6e-8) is stored as 2^-24 rather than 0, so a group of tiny weights is quantized on a
//     coarse grid instead of being zeroed.
#include <cfloat>
#include <cmath>
#include <cstdint>
#include <cstring>

#include "lowbit/formats/convert.hpp"
#include "lowbit/formats/float8.hpp"
#include "lowbit/quant/scheme.hpp"

namespace lowbit::detail {

inline std::uint32_t scale_bits(float f) noexcept {
  std::uint32_t u;
  std::memcpy(&u, &f, 4);
  return u;
}
inline float scale_from_bits(std::uint32_t u) noexcept {
  float f;
  std::memcpy(&f, &u, 4);
  return f;
}

// f -> bf16 -> f, nearest even, saturating at the largest finite bf16.
inline float round_to_bf16(float f) noexcept {
  const std::uint32_t u = scale_bits(f);
  const std::uint32_t sign = u & 0x80000000u;
  std::uint32_t r = (u + 0x7fffu + ((u >> 16) & 1u)) & 0xffff0000u;
  if ((r & 0x7fffffffu) >= 0x7f800000u) r = sign | 0x7f7f0000u;
  return scale_from_bits(r);
}

// f -> IEEE fp16 -> f, nearest even (subnormals included), saturating at 65504.
inline float round_to_f16(float f) noexcept {
  const float a = std::fabs(f);
  if (a >= 65504.0f) return std::copysign(65504.0f, f);
  if (a == 0.0f) return f;
  int e = 0;
  std::frexp(a, &e);  // a = m * 2^e, m in [0.5, 1): floor(log2 a) = e - 1
  const int q = (e - 1 < -14 ? -14 : e - 1) - 10;  // exponent of one unit in the last place
  float r = std::ldexp(std::nearbyint(std::ldexp(a, -q)), q);
  if (r == 0.0f) r = 0x1p-24f;  // saturate at the smallest subnormal: never zero a nonzero scale
  return std::copysign(r > 65504.0f ? 65504.0f : r, f);
}

// Truncates toward zero to bf16 (used after capping, where rounding up could overflow).
inline float round_to_bf16_down(float f) noexcept { return scale_from_bits(scale_bits(f) & 0xffff0000u); }

inline float round_to_storage(float s, scale_dtype d) noexcept {
  switch (d) {
    case scale_dtype::f32: return s;
    case scale_dtype::f16: return round_to_f16(s);
    case scale_dtype::bf16: return round_to_bf16(s);
  }
  return s;
}

// ceil(log2 x) for finite x > 0, exact.
inline int ceil_log2(float x) noexcept {
  int e = 0;
  const float m = std::frexp(x, &e);  // x = m * 2^e, m in [0.5, 1)
  return m == 0.5f ? e - 1 : e;
}
// floor(log2 x) for finite x > 0, exact; *significand_ge_175 says whether x / 2^floor >= 1.75.
inline int floor_log2(float x, bool* significand_ge_175 = nullptr) noexcept {
  int e = 0;
  const float m = std::frexp(x, &e);
  if (significand_ge_175) *significand_ge_175 = m >= 0.875f;
  return e - 1;
}

// Largest code magnitude (integers) or largest finite value (floats) of the element format.
inline float element_qmax(element_format f, bool symmetric) noexcept {
  switch (f) {
    case element_format::int8: return symmetric ? 127.0f : 255.0f;
    case element_format::int4: return symmetric ? 7.0f : 15.0f;
    case element_format::float8_e4m3fn: return 448.0f;
    case element_format::float8_e5m2: return 57344.0f;
    case element_format::float6_e3m2fn: return 28.0f;
    case element_format::float6_e2m3fn: return 7.5f;
    case element_format::float4_e2m1fn: return 6.0f;
  }
  return 1.0f;
}

// What a group's values look like. amax = max |x|; lo/hi = min/max (asymmetric);
// extreme = the element with the largest |x|, first one on ties (q4_0).
struct group_range {
  float amax = 0.0f, lo = 0.0f, hi = 0.0f, extreme = 0.0f;
  group_range scaled(float r) const noexcept { return {amax * r, lo * r, hi * r, extreme * r}; }
};

// Everything fitting a group needs besides its range.
struct scale_context {
  QuantSpec spec;
  float qmax = 1.0f;        // element_qmax
  int emax_elem = 0;        // MX
  float tensor_g = 1.0f;    // NVFP4 g (QuantizedMatrix::tensor_scale)
};

inline scale_context make_scale_context(const QuantSpec& spec, float tensor_g) noexcept {
  scale_context c;
  c.spec = spec;
  c.qmax = element_qmax(spec.format, spec.symmetric);
  c.emax_elem = mx_emax_elem(spec.format);
  c.tensor_g = tensor_g;
  return c;
}

// The largest scale s with bound * s finite, bound = the largest code magnitude of the
// scheme (qmax, qmax + 1 for q4_0): no code times its scale can overflow.
inline float largest_scale_for(float bound) noexcept {
  float s = FLT_MAX / bound;
  while (!std::isfinite(bound * s)) s = std::nextafter(s, 0.0f);
  return s;
}
inline float largest_scale(const scale_context& c) noexcept {
  return largest_scale_for(c.qmax + (c.spec.int_rule == int_scale_rule::q4_0 && is_integer_format(c.spec.format) ? 1.0f : 0.0f));
}
// Whether encoding with 1 / s is impossible (s so small that the reciprocal overflows).
inline bool reciprocal_overflows(float s) noexcept { return s != 0.0f && !std::isfinite(1.0f / s); }
// The edges for an fp32 scale s >= 0 of a symmetric integer group (the int_rtn row kernels).
inline float bounded_f32_scale(float s, float qmax) noexcept {
  const float cap = largest_scale_for(qmax);
  if (s > cap) return cap;
  return reciprocal_overflows(s) ? 0.0f : s;
}

// A real scale in its storage precision, capped at largest_scale (keeping its sign) and
// flushed to 0 when its reciprocal overflows; see the header comment.
inline float bounded_scale(const scale_context& c, float raw) noexcept {
  const float cap = largest_scale(c);
  float s = round_to_storage(std::fabs(raw) > cap ? std::copysign(cap, raw) : raw, c.spec.scale_storage);
  while (std::fabs(s) > cap) s = std::nextafter(s, 0.0f);  // f32: exact already; bf16 may round up
  if (c.spec.scale_storage == scale_dtype::bf16) s = round_to_bf16_down(s);
  return reciprocal_overflows(s) ? 0.0f : s;
}

// The fitted parameters of one (row, group).
struct group_params {
  float scale = 0.0f;            // effective scale (QuantizedMatrix::scales)
  float inv = 0.0f;              // multiplier applied before encoding
  std::uint8_t zero = 0;         // asymmetric zero point
  std::int8_t shift = 0;         // pow2_m1 exponent / pow2_m2 shift
  std::uint8_t scale_code = 0;   // E8M0 (mx) or E4M3 (nvfp4) code
};

// The real scale S of a symmetric group (before constraints); see the header comment.
inline float raw_symmetric_scale(const scale_context& c, const group_range& g) noexcept {
  if (is_integer_format(c.spec.format)) {
    switch (c.spec.int_rule) {
      case int_scale_rule::amax_over_qmax: return g.amax / c.qmax;
      case int_scale_rule::amax_over_qmax_half: return g.amax / (c.qmax + 0.5f);
      case int_scale_rule::q4_0: return g.extreme / -(c.qmax + 1.0f);
    }
  }
  return g.amax / c.qmax;
}

// The multiplier applied to x before encoding, from the stored parameters.
inline float inverse_scale(const scale_context& c, float scale, std::uint8_t scale_code) noexcept {
  if (scale == 0.0f) return 0.0f;
  if (c.spec.constraint == scale_constraint::nvfp4)
    return c.tensor_g / float8_e4m3fn::from_bits(scale_code).to_float();
  return 1.0f / scale;
}

// M2 row scale from the raw scales of a row's groups.
inline float m2_row_scale(const scale_context& c, float max_group_scale) noexcept {
  return bounded_scale(c, max_group_scale);
}

// NVFP4 tensor scale g from the tensor's amax.
inline float nvfp4_tensor_scale(float amax_tensor) noexcept {
  if (amax_tensor == 0.0f) return 1.0f;
  const float g = (448.0f * 6.0f) / amax_tensor;
  return std::isfinite(g) ? g : FLT_MAX;
}

// Fits one group. row_scale is the M2 row scale (ignored otherwise).
inline group_params fit_group(const scale_context& c, const group_range& g, float row_scale) noexcept {
  group_params p;
  const QuantSpec& s = c.spec;
  if (!s.symmetric) {
    const float lo = g.lo < 0.0f ? g.lo : 0.0f, hi = g.hi > 0.0f ? g.hi : 0.0f;
    const float raw = hi / c.qmax - lo / c.qmax;
    p.scale = bounded_scale(c, raw);
    if (p.scale != 0.0f) {
      // A capped scale cannot cover [lo, hi]: centre its grid on the range (lo/2 + hi/2
      // cannot overflow) so that both ends lose the same, rather than one end mapping to 0.
      const float z = raw > largest_scale(c) ? std::nearbyint(c.qmax / 2.0f - (lo / 2.0f + hi / 2.0f) / p.scale)
                                             : std::nearbyint(-lo / p.scale);
      p.zero = static_cast<std::uint8_t>(z < 0.0f ? 0.0f : z > c.qmax ? c.qmax : z);
    }
    p.inv = inverse_scale(c, p.scale, 0);
    return p;
  }
  switch (s.constraint) {
    case scale_constraint::none:
      p.scale = bounded_scale(c, raw_symmetric_scale(c, g));
      break;
    case scale_constraint::pow2_m1: {
      const float S = raw_symmetric_scale(c, g);
      int e = S > 0.0f ? ceil_log2(S) : 0;
      const int e_max = floor_log2(largest_scale(c));  // qmax * 2^e stays finite
      e = e < -126 ? -126 : e > e_max ? e_max : e;
      p.shift = static_cast<std::int8_t>(e);
      p.scale = std::ldexp(1.0f, e);
      break;
    }
    case scale_constraint::pow2_m2: {
      const float S = raw_symmetric_scale(c, g);
      int k = 0;
      if (S > 0.0f && row_scale > 0.0f) {
        k = ceil_log2(S) - ceil_log2(row_scale);  // within one of the answer; fix exactly
        if (k > 0) k = 0;
        if (k < -128) k = -128;
        // (never below a scale whose reciprocal overflows)
        while (k > -128 && std::ldexp(row_scale, k - 1) >= S && !reciprocal_overflows(std::ldexp(row_scale, k - 1))) --k;
        while (k < 0 && (std::ldexp(row_scale, k) < S || reciprocal_overflows(std::ldexp(row_scale, k)))) ++k;
      }
      p.shift = static_cast<std::int8_t>(k);
      p.scale = std::ldexp(row_scale, k);
      break;
    }
    case scale_constraint::mx: {
      int e = 0;
      if (g.amax > 0.0f) {
        bool up = false;
        e = floor_log2(g.amax, &up) - c.emax_elem;
        if (up && s.mx_rounding == mx_scale_rounding::round_up_175) ++e;
      }
      e = e < -127 ? -127 : e > 127 ? 127 : e;
      p.scale_code = static_cast<std::uint8_t>(e + 127);
      p.scale = std::ldexp(1.0f, e);
      break;
    }
    case scale_constraint::nvfp4: {
      p.scale_code = convert<float8_e4m3fn>((c.tensor_g * g.amax) / 6.0f).bits();
      p.scale = float8_e4m3fn::from_bits(p.scale_code).to_float() / c.tensor_g;
      break;
    }
  }
  p.inv = inverse_scale(c, p.scale, p.scale_code);
  return p;
}

}  // namespace lowbit::detail
