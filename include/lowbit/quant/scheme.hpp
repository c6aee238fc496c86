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
};

// Activation formats for dynamic (per-token) quantization.
enum class act_format : std::uint8_t { int8, float8_e4m3fn, float8_e5m2 };

}  // namespace lowbit
