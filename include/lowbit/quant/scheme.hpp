#pragma once
// QuantSpec: the runtime description of one weight quantization scheme (what the CLI and
// checkpoints carry). quantize() dispatches on it once per matrix to the templated core.
#include <cstdint>
#include <string>
#include <string_view>

#include "lowbit/error.hpp"

namespace lowbit {

// Element formats of quantized weights.
enum class element_format : std::uint8_t {
  int8,           // symmetric: two's complement codes -127..127; asymmetric: 0..255 + zero point
  int4,           // symmetric: -7..7 (nibbles, two's complement); asymmetric: 0..15 + zero point
  float8_e4m3fn,
  float8_e5m2,
  float6_e3m2fn,
  float6_e2m3fn,
  float4_e2m1fn,
};

// Where one scale applies.
enum class granularity : std::uint8_t {
  per_tensor,   // one scale for the whole matrix
  per_channel,  // one scale per output row
  per_group,    // one scale per `group_size` consecutive inputs of a row; a ragged last group is fine
};

// Constraints on the scales (ZeroQuant-FP, OCP MX, NVFP4).
enum class scale_constraint : std::uint8_t {
  none,     // real scales, stored in `scale_storage` precision
  pow2_m1,  // each scale rounded UP to a power of two: S' = 2^ceil(log2 S)
  pow2_m2,  // a real per-row scale times a per-group power-of-two shift <= 0:
            //   S_row = max_g S_g,  S'_g = S_row * 2^ceil(log2(S_g / S_row))
  mx,       // OCP MX: an E8M0 scale per 32 elements, 2^(floor(log2 amax) - emax_elem)
  nvfp4,    // NVFP4: E4M3 scale per 16 elements plus one fp32 tensor scale
};

// Precision in which real scales (constraint none, and the M2 row scale) are stored.
enum class scale_dtype : std::uint8_t { f32, f16, bf16 };

// How a symmetric integer scale is derived from the group's absolute maximum.
enum class int_scale_rule : std::uint8_t {
  amax_over_qmax,       // S = amax / qmax (default): amax maps exactly to +-qmax
  amax_over_qmax_half,  // S = amax / (qmax + 0.5): a finer step, amax still rounds to qmax
  q4_0,                 // ggml Q4_0: S = -max_signed / 8, codes -8..7 (the sign of the extreme
                        //   element decides, so it uses the otherwise idle -8)
};

// MX scale rounding: the OCP spec's floor, or the "round up when the significand of amax
// is >= 1.75" variant (vLLM, compressed-tensors) that avoids clipping the largest element.
enum class mx_scale_rounding : std::uint8_t { floor, round_up_175 };

// Optional per-group clipping search: try clip ratios r on a grid over [min_ratio, 1],
// scale from r * amax, keep the ratio with the least squared error (AWQ / HQQ style).
struct clip_search {
  bool enabled = false;
  float min_ratio = 0.5f;
  int steps = 20;
};

// How an asymmetric group stores its zero: an integer zero point z (w = (code - z) * scale,
// what the quantizers make), or a float offset o (w = fma(code, scale, o), one rounding; GGUF
// Q4_K imports, whose mins are not whole scale steps). float_offset needs int4 asymmetric
// with scale constraint none; no quantizer makes it and no exporter writes it yet.
enum class zero_form : std::uint8_t { integer, float_offset };

struct QuantSpec {
  element_format format = element_format::int4;
  granularity gran = granularity::per_group;
  int group_size = 128;  // used when gran == per_group (mx forces 32, nvfp4 forces 16)
  bool symmetric = true; // false only for integer formats: unsigned codes with a zero point
  scale_constraint constraint = scale_constraint::none;
  scale_dtype scale_storage = scale_dtype::f32;
  int_scale_rule int_rule = int_scale_rule::amax_over_qmax;
  mx_scale_rounding mx_rounding = mx_scale_rounding::floor;
  clip_search clip{};
  zero_form zero = zero_form::integer;  // asymmetric only: see zero_form
};

// Activation formats for dynamic (per-token) quantization.
enum class act_format : std::uint8_t { int8, float8_e4m3fn, float8_e5m2 };

// ---- facts about element formats ------------------------------------------------------

constexpr bool is_integer_format(element_format f) noexcept {
  return f == element_format::int8 || f == element_format::int4;
}
// Bits one code occupies in storage (6-bit codes count as 6 even though a byte holds each).
constexpr int element_bits(element_format f) noexcept {
  switch (f) {
    case element_format::int8:
    case element_format::float8_e4m3fn:
    case element_format::float8_e5m2: return 8;
    case element_format::float6_e3m2fn:
    case element_format::float6_e2m3fn: return 6;
    case element_format::int4:
    case element_format::float4_e2m1fn: return 4;
  }
  return 8;
}
constexpr bool is_nibble_format(element_format f) noexcept { return element_bits(f) == 4; }

// OCP MX v1.0 emax_elem: the exponent of the element format's largest normal power of two.
constexpr int mx_emax_elem(element_format f) noexcept {
  switch (f) {
    case element_format::float8_e4m3fn: return 8;
    case element_format::float8_e5m2: return 15;
    case element_format::float6_e3m2fn: return 4;
    case element_format::float6_e2m3fn: return 2;
    case element_format::float4_e2m1fn: return 2;
    default: return 0;
  }
}

// ---- building specs --------------------------------------------------------------------

// Group-wise scheme with real (or constrained) scales, e.g. int4 g128 symmetric RTN.
inline QuantSpec group_spec(element_format f, int group_size,
                            scale_constraint c = scale_constraint::none, bool symmetric = true) {
  QuantSpec s;
  s.format = f;
  s.gran = granularity::per_group;
  s.group_size = group_size;
  s.constraint = c;
  s.symmetric = symmetric;
  return s;
}
inline QuantSpec channel_spec(element_format f, bool symmetric = true) {
  QuantSpec s;
  s.format = f;
  s.gran = granularity::per_channel;
  s.symmetric = symmetric;
  return s;
}
inline QuantSpec tensor_spec(element_format f, bool symmetric = true) {
  QuantSpec s;
  s.format = f;
  s.gran = granularity::per_tensor;
  s.symmetric = symmetric;
  return s;
}
// OCP MX (MXFP8 / MXFP6 / MXFP4): E8M0 scale per 32 elements.
inline QuantSpec mx_spec(element_format f, mx_scale_rounding r = mx_scale_rounding::floor) {
  QuantSpec s = group_spec(f, 32, scale_constraint::mx);
  s.mx_rounding = r;
  return s;
}
// NVFP4: E2M1 elements, E4M3 scale per 16, one fp32 tensor scale.
inline QuantSpec nvfp4_spec() { return group_spec(element_format::float4_e2m1fn, 16, scale_constraint::nvfp4); }

// The spec as quantize() uses it: MX forces per-group 32 and NVFP4 per-group 16 (whatever
// granularity/group_size say), and every combination that has no meaning is rejected with a
// message naming `name`. Called by every quantizer entry point.
template <class Deferred = void>  // see "Compile time" in docs/design.md
QuantSpec normalized_spec(QuantSpec s, std::string_view name = "weight") {
  const std::string who = "quantize '" + std::string(name) + "': ";
  const bool is_int = is_integer_format(s.format);
  if (s.constraint == scale_constraint::mx) {
    if (is_int) detail::fail(who + "the mx constraint needs a float element format (MXFP8/MXFP6/MXFP4)");
    s.gran = granularity::per_group;
    s.group_size = 32;
  } else if (s.constraint == scale_constraint::nvfp4) {
    if (s.format != element_format::float4_e2m1fn)
      detail::fail(who + "the nvfp4 constraint needs element format float4_e2m1fn");
    s.gran = granularity::per_group;
    s.group_size = 16;
  }
  if (s.gran == granularity::per_group && s.group_size < 1)
    detail::fail(who + "group size must be >= 1, got " + std::to_string(s.group_size));
  if (!s.symmetric) {
    if (!is_int) detail::fail(who + "asymmetric (zero point) quantization needs an integer format");
    if (s.constraint != scale_constraint::none)
      detail::fail(who + "asymmetric quantization supports only scale constraint none");
  }
  if (s.int_rule != int_scale_rule::amax_over_qmax) {
    if (!is_int || !s.symmetric)
      detail::fail(who + "the integer scale rule applies only to symmetric integer formats");
    if (s.int_rule == int_scale_rule::q4_0 && s.constraint != scale_constraint::none)
      detail::fail(who + "the q4_0 scale rule needs scale constraint none (its scales are signed)");
  }
  if (s.scale_storage != scale_dtype::f32 && s.constraint != scale_constraint::none &&
      s.constraint != scale_constraint::pow2_m2)
    detail::fail(who + "f16/bf16 scale storage applies only to real scales (constraint none or the pow2_m2 row scale)");
  if (s.clip.enabled && (!(s.clip.min_ratio > 0.0f) || !(s.clip.min_ratio <= 1.0f) || s.clip.steps < 1))
    detail::fail(who + "clip search needs 0 < min_ratio <= 1 and steps >= 1");
  return s;
}

}  // namespace lowbit
