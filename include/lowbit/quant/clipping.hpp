#pragma once
// Clipping search (AWQ / HQQ style): quantizing with the full range wastes levels on a rare
// extreme element; shrinking the range clips it but refines every other element. Per group
// (or per tensor), try the ratios r_i = 1 - (1 - min_ratio) * i / (steps - 1), i = 0..steps-1
// (r = 1 when steps == 1), fit the scale from the range times r under the scheme's own
// constraint, and keep the ratio with the least squared reconstruction error. r = 1 is tried
// first and a later ratio must be strictly better, so a search never does worse than RTN.
#include <cstdint>
#include <utility>

#include "lowbit/quant/element_codec.hpp"
#include "lowbit/quant/scale_rules.hpp"

namespace lowbit::detail {

// A run of consecutive elements (one group of one row).
struct value_span {
  const float* data;
  std::int64_t size;
};

template <element_format F>
inline double squared_error(const scale_context& c, const group_params& p, const float* x, std::int64_t n) {
  const code_bounds b = make_code_bounds(c.spec, p.zero);
  const code_value_table& values = code_values(c.spec.format, c.spec.symmetric);
  const float zero = static_cast<float>(p.zero);
  double sse = 0.0;
  for (std::int64_t i = 0; i < n; ++i) {
    const std::uint8_t code = element_codec<F>::encode(x[i] * p.inv, b);
    const float d = x[i] - (values[code] - zero) * p.scale;
    sse += static_cast<double>(d) * d;
  }
  return sse;
}

inline float clip_ratio(const clip_search& cs, int i) noexcept {
  if (cs.steps <= 1) return 1.0f;
  return 1.0f - (1.0f - cs.min_ratio) * static_cast<float>(i) / static_cast<float>(cs.steps - 1);
}

// Best parameters for the values in spans[0..count) (all sharing one scale).
template <element_format F>
group_params search_clip(const scale_context& c, const group_range& range, float row_scale,
                         const value_span* spans, std::int64_t count) {
  group_params best = fit_group(c, range, row_scale);
  if (range.amax == 0.0f) return best;
  double best_err = 0.0;
  for (std::int64_t s = 0; s < count; ++s) best_err += squared_error<F>(c, best, spans[s].data, spans[s].size);
  for (int i = 1; i < c.spec.clip.steps; ++i) {
    const group_params p = fit_group(c, range.scaled(clip_ratio(c.spec.clip, i)), row_scale);
    if (p.scale == best.scale && p.zero == best.zero) continue;  // same grid, same error
    double err = 0.0;
    for (std::int64_t s = 0; s < count && err < best_err; ++s)
      err += squared_error<F>(c, p, spans[s].data, spans[s].size);
    if (err < best_err) {
      best_err = err;
      best = p;
    }
  }
  return best;
}

}  // namespace lowbit::detail
