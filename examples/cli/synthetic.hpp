#pragma once
// A deterministic synthetic LLM-like transformer block: the weights and the matching input
// activations of its seven linear layers, for demos, tests and benchmarks that need data that
// looks like a real model without shipping one.
//
//   - weights: Student-t (nu = 4) entries, heavy-tailed like trained LLM weights, scaled by
//     1/sqrt(in) with a per-output-row gain spread (some rows louder than others);
//   - activations: per-token Gaussian with a per-token gain, plus a few fixed outlier input
//     channels tens of times larger than the rest (as measured in LLMs by LLM.int8() and
//     SmoothQuant); the FFN down projection sees a heavier-tailed input (SwiGLU output);
//   - shapes: a scaled-down Llama block, hidden h, FFN f ~ 8/3 h: q, k, v, o [h, h],
//     gate, up [f, h], down [h, f].
// Everything comes from a small counter-based generator (splitmix64) and Box-Muller, so the
// numbers are identical on every platform and standard library.
#include <cmath>
#include <cstdint>
#include <string>
#include <vector>

#include "lowbit/config.hpp"

namespace lowbit_synthetic {

struct SyntheticOptions {
  int hidden = 512;
  int ffn = 1376;
  int tokens = 64;
  int outlier_channels = 6;     // per input dimension
  float outlier_scale = 40.0f;  // outlier channel magnitude relative to the rest
  int student_nu = 4;           // weight tails (degrees of freedom)
  std::uint64_t seed = 20240229;
};

struct SyntheticLayer {
  std::string name;               // e.g. "layers.0.mlp.down_proj"
  lowbit::RowMatrixXf weight;     // [out, in]
  lowbit::RowMatrixXf activations;  // [tokens, in]: this layer's inputs
  std::vector<int> outlier_channels;
};

// Deterministic generator: splitmix64 and Box-Muller normals.
class SyntheticRng {
 public:
  explicit SyntheticRng(std::uint64_t seed) : state_(seed) {}
  std::uint64_t next_u64() {
    std::uint64_t z = (state_ += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
  }
  double uniform() { return (static_cast<double>(next_u64() >> 11) + 0.5) * (1.0 / 9007199254740992.0); }
  double normal() {
    if (has_spare_) {
      has_spare_ = false;
      return spare_;
    }
    const double u = uniform(), v = uniform();
    const double r = std::sqrt(-2.0 * std::log(u));
    spare_ = r * std::sin(6.283185307179586 * v);
    has_spare_ = true;
    return r * std::cos(6.283185307179586 * v);
  }
  double student_t(int nu) {
    double chi2 = 0.0;
    for (int i = 0; i < nu; ++i) {
      const double z = normal();
      chi2 += z * z;
    }
    return normal() / std::sqrt(chi2 / nu);
  }

 private:
  std::uint64_t state_;
  double spare_ = 0.0;
  bool has_spare_ = false;
};

inline lowbit::RowMatrixXf synthetic_weight(SyntheticRng& rng, int out, int in, int nu) {
  lowbit::RowMatrixXf w(out, in);
  const double base = 1.0 / std::sqrt(static_cast<double>(in)) / std::sqrt(nu / (nu - 2.0));
  for (int r = 0; r < out; ++r) {
    const double gain = base * std::exp(0.3 * rng.normal());  // louder and quieter rows
    for (int c = 0; c < in; ++c) w(r, c) = static_cast<float>(gain * rng.student_t(nu));
  }
  return w;
}

inline lowbit::RowMatrixXf synthetic_activations(SyntheticRng& rng, int tokens, int in, const std::vector<int>& outliers,
                                                 float outlier_scale, bool heavy_tailed) {
  lowbit::RowMatrixXf x(tokens, in);
  for (int t = 0; t < tokens; ++t) {
    const double gain = std::exp(0.5 * rng.normal());  // per-token magnitude varies
    for (int c = 0; c < in; ++c) x(t, c) = static_cast<float>(gain * (heavy_tailed ? rng.student_t(3) : rng.normal()));
    for (int c : outliers) x(t, c) = static_cast<float>(gain * outlier_scale * (1.0 + 0.2 * rng.normal()));
  }
  return x;
}

// The seven linear layers of one block.
inline std::vector<SyntheticLayer> make_synthetic_block(const SyntheticOptions& o = {}) {
  SyntheticRng rng(o.seed);
  const auto pick = [&](int dim) {
    std::vector<int> ch;
    while (static_cast<int>(ch.size()) < o.outlier_channels && static_cast<int>(ch.size()) < dim) {
      const int c = static_cast<int>(rng.next_u64() % static_cast<std::uint64_t>(dim));
      bool seen = false;
      for (int d : ch) seen = seen || d == c;
      if (!seen) ch.push_back(c);
    }
    return ch;
  };
  const std::vector<int> hidden_outliers = pick(o.hidden), ffn_outliers = pick(o.ffn);
  const lowbit::RowMatrixXf attn_in =
      synthetic_activations(rng, o.tokens, o.hidden, hidden_outliers, o.outlier_scale, false);
  const lowbit::RowMatrixXf attn_out = synthetic_activations(rng, o.tokens, o.hidden, {}, 1.0f, false);
  const lowbit::RowMatrixXf mlp_in = synthetic_activations(rng, o.tokens, o.hidden, hidden_outliers, o.outlier_scale, false);
  const lowbit::RowMatrixXf down_in = synthetic_activations(rng, o.tokens, o.ffn, ffn_outliers, o.outlier_scale, true);
  std::vector<SyntheticLayer> layers;
  const auto add = [&](const char* name, int out, int in, const lowbit::RowMatrixXf& x, const std::vector<int>& ch) {
    layers.push_back({std::string("layers.0.") + name, synthetic_weight(rng, out, in, o.student_nu), x, ch});
  };
  add("self_attn.q_proj", o.hidden, o.hidden, attn_in, hidden_outliers);
  add("self_attn.k_proj", o.hidden, o.hidden, attn_in, hidden_outliers);
  add("self_attn.v_proj", o.hidden, o.hidden, attn_in, hidden_outliers);
  add("self_attn.o_proj", o.hidden, o.hidden, attn_out, {});
  add("mlp.gate_proj", o.ffn, o.hidden, mlp_in, hidden_outliers);
  add("mlp.up_proj", o.ffn, o.hidden, mlp_in, hidden_outliers);
  add("mlp.down_proj", o.hidden, o.ffn, down_in, ffn_outliers);
  return layers;
}

}  // namespace lowbit_synthetic
