#pragma once
// Rotary position embedding: the inverse frequencies of every rope_scaling type, computed as
// Hugging Face transformers' modeling_rope_utils computes them, and one rotation function
// for both pair conventions (model/llama_config.hpp's rope_style).
//
//   default   inv_freq[i] = theta^(-2i / head_dim)                      i = 0 .. head_dim/2-1
//   linear    inv_freq / factor
//   dynamic   (NTK) for a sequence of L > max_position_embeddings = M positions the base
//             becomes theta * (factor * L / M - (factor - 1))^(d / (d - 2)); L <= M keeps it
//   llama3    wavelength 2 pi / f: above original / low_freq_factor -> f / factor; below
//             original / high_freq_factor -> f; between, smoothly blended with
//             s = (original / wavelength - low) / (high - low): (1 - s) f / factor + s f
//   yarn      per pair, a ramp between interpolation (f / factor) and extrapolation (f) over
//             the pairs [low, high] found from beta_fast / beta_slow rotations within the
//             original context; cos and sin are multiplied by the attention factor
//             (attention_factor, else mscale ratio, else 0.1 ln(factor) + 1)
//   freq_factors (llama.cpp's rope_freqs tensor, after any of the above) inv_freq[i] / ff[i].
//             llama.cpp stores llama3 scaling this way: llama3_rope_freq_factors() gives
//             ff[i] = f / llama3(f) (1, factor, or 1 / ((1 - s) / factor + s)), so
//             f / ff[i] is the llama3 frequency up to ff's rounding to float.
//
// Dynamic NTK depends on the sequence: transformers recomputes it from the largest position
// of each forward call (and keeps the largest seen, resetting below M). Here every forward
// call uses L = its last position + 1, which equals transformers for whole sequences run from
// position 0 (what perplexity and calibration do); incremental decoding past M re-derives
// the frequencies per call instead of per cache.
//
// Frequencies and angles are computed in double (independent of libm's float rounding) and
// the cos/sin tables stored as float.
#include <algorithm>
#include <cmath>
#include <vector>

#include "lowbit/config.hpp"
#include "lowbit/model/llama_config.hpp"

namespace lowbit::model {

struct RopeFrequencies {
  std::vector<double> inv_freq;  // [head_dim / 2]
  double attention_factor = 1.0;  // multiplies cos and sin (yarn)
};

inline double yarn_mscale(double scale, double mscale = 1.0) {
  return scale <= 1.0 ? 1.0 : 0.1 * mscale * std::log(scale) + 1.0;
}

// The frequencies for a forward call whose last position is seq_len - 1.
template <class Deferred = void>  // see "Compile time" in docs/design.md
inline RopeFrequencies rope_frequencies(const LlamaConfig& c, int seq_len) {
  constexpr double kPi = 3.14159265358979323846;
  const int d = c.head_dim(), half = d / 2;
  const RopeScaling& s = c.rope_scaling;
  RopeFrequencies r;
  r.inv_freq.resize(static_cast<std::size_t>(half));
  double base = c.rope_theta;
  if (s.type == rope_scaling_type::dynamic && seq_len > c.rope_context()) {
    const double m = c.rope_context();
    base *= std::pow(s.factor * seq_len / m - (s.factor - 1.0), static_cast<double>(d) / (d - 2));
  }
  for (int i = 0; i < half; ++i) r.inv_freq[static_cast<std::size_t>(i)] = 1.0 / std::pow(base, 2.0 * i / d);

  if (s.type == rope_scaling_type::linear) {
    for (double& f : r.inv_freq) f /= s.factor;
  } else if (s.type == rope_scaling_type::llama3) {
    const double old_ctx = s.original_max_position_embeddings;
    const double low_wavelen = old_ctx / s.low_freq_factor, high_wavelen = old_ctx / s.high_freq_factor;
    for (double& f : r.inv_freq) {
      const double wavelen = 2.0 * kPi / f;
      if (wavelen > low_wavelen) {
        f /= s.factor;
      } else if (wavelen >= high_wavelen) {  // medium: neither above low nor below high
        const double smooth = (old_ctx / wavelen - s.low_freq_factor) / (s.high_freq_factor - s.low_freq_factor);
        f = (1.0 - smooth) * f / s.factor + smooth * f;
      }
    }
  } else if (s.type == rope_scaling_type::yarn) {
    const double orig = s.original_max_position_embeddings > 0 ? s.original_max_position_embeddings
                                                               : static_cast<double>(c.rope_context());
    auto correction_dim = [&](double rotations) {
      return d * std::log(orig / (rotations * 2.0 * kPi)) / (2.0 * std::log(base));
    };
    double low = correction_dim(s.beta_fast), high = correction_dim(s.beta_slow);
    if (s.truncate) {
      low = std::floor(low);
      high = std::ceil(high);
    }
    low = std::max(low, 0.0);
    high = std::min(high, static_cast<double>(d - 1));
    if (low == high) high += 0.001;  // as transformers: avoid a zero-width ramp
    for (int i = 0; i < half; ++i) {
      const double ramp = std::clamp((i - low) / (high - low), 0.0, 1.0);
      const double extrapolation_weight = 1.0 - ramp;
      double& f = r.inv_freq[static_cast<std::size_t>(i)];
      f = (f / s.factor) * (1.0 - extrapolation_weight) + f * extrapolation_weight;
    }
    if (s.attention_factor > 0) {
      r.attention_factor = s.attention_factor;
    } else if (s.mscale > 0 && s.mscale_all_dim > 0) {
      r.attention_factor = yarn_mscale(s.factor, s.mscale) / yarn_mscale(s.factor, s.mscale_all_dim);
    } else {
      r.attention_factor = yarn_mscale(s.factor);
    }
  }
  if (!s.freq_factors.empty() && s.freq_factors.size() == r.inv_freq.size())
    for (std::size_t i = 0; i < r.inv_freq.size(); ++i) r.inv_freq[i] /= static_cast<double>(s.freq_factors[i]);
  return r;
}

// llama.cpp's rope_freqs tensor for a llama3-scaled config (as llama.cpp's converter computes
// it): per pair, the divisor that turns the unscaled frequency into the llama3 one.
inline std::vector<float> llama3_rope_freq_factors(const LlamaConfig& c) {
  constexpr double kPi = 3.14159265358979323846;
  const int d = c.head_dim(), half = d / 2;
  const RopeScaling& s = c.rope_scaling;
  const double old_ctx = s.original_max_position_embeddings;
  const double low_wavelen = old_ctx / s.low_freq_factor, high_wavelen = old_ctx / s.high_freq_factor;
  std::vector<float> out(static_cast<std::size_t>(half));
  for (int i = 0; i < half; ++i) {
    const double f = 1.0 / std::pow(static_cast<double>(c.rope_theta), 2.0 * i / d);
    const double wavelen = 2.0 * kPi / f;
    double ff = 1.0;
    if (wavelen > low_wavelen) {
      ff = s.factor;
    } else if (wavelen >= high_wavelen) {
      const double smooth = (old_ctx / wavelen - s.low_freq_factor) / (s.high_freq_factor - s.low_freq_factor);
      ff = 1.0 / ((1.0 - smooth) / s.factor + smooth);
    }
    out[static_cast<std::size_t>(i)] = static_cast<float>(ff);
  }
  return out;
}

// cos/sin of positions [p0, p0 + n) for every pair: [n, head_dim / 2] each.
template <class Deferred = void>  // see "Compile time" in docs/design.md
inline void rope_table(const LlamaConfig& c, int p0, int n, RowMatrixXf& cos_out, RowMatrixXf& sin_out) {
  const RopeFrequencies f = rope_frequencies(c, p0 + n);
  const int half = c.head_dim() / 2;
  cos_out.resize(n, half);
  sin_out.resize(n, half);
  for (int t = 0; t < n; ++t)
    for (int i = 0; i < half; ++i) {
      const double angle = static_cast<double>(p0 + t) * f.inv_freq[static_cast<std::size_t>(i)];
      cos_out(t, i) = static_cast<float>(std::cos(angle) * f.attention_factor);
      sin_out(t, i) = static_cast<float>(std::sin(angle) * f.attention_factor);
    }
}

// Rotates every head of m ([n, heads * head_dim], row t at table row t) in place. Pair i of
// a head is (2i, 2i+1) for rope_style::interleaved and (i, i + head_dim/2) for half.
inline void apply_rope(RowMatrixXf& m, int head_dim, rope_style style, const RowMatrixXf& cos_t,
                       const RowMatrixXf& sin_t) {
  const int half = head_dim / 2;
  const Eigen::Index heads = m.cols() / head_dim;
  for (Eigen::Index t = 0; t < m.rows(); ++t) {
    const float* cs = cos_t.row(t).data();
    const float* sn = sin_t.row(t).data();
    for (Eigen::Index h = 0; h < heads; ++h) {
      float* x = m.row(t).data() + h * head_dim;
      for (int i = 0; i < half; ++i) {
        const int a = style == rope_style::interleaved ? 2 * i : i;
        const int b = style == rope_style::interleaved ? 2 * i + 1 : i + half;
        const float xa = x[a], xb = x[b];
        x[a] = xa * cs[i] - xb * sn[i];
        x[b] = xa * sn[i] + xb * cs[i];
      }
    }
  }
}

}  // namespace lowbit::model
