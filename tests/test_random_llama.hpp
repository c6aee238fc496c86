#pragma once
// A random Llama model for tests that need one of a given shape but no file (forward-pass
// threading, sequential calibration, file round trips, the KV cache, RoPE): one definition of
// the config's shape and of the weights' draw, shared by the test files of every topic.
// Included as "test_random_llama.hpp" beside the other tests/test_*_support.hpp headers.
#include <random>

#include "lowbit/model/weights.hpp"

namespace lowbit_test {

// A config with every shape given and the rest LlamaConfig's defaults (norm_eps, rope_theta,
// interleaved RoPE, no scaling).
inline lowbit::model::LlamaConfig random_llama_config(int dim, int hidden_dim, int n_layers, int n_heads,
                                                      int n_kv_heads, int vocab_size, int max_seq_len,
                                                      bool tied_classifier = true) {
  lowbit::model::LlamaConfig c;
  c.dim = dim;
  c.hidden_dim = hidden_dim;
  c.n_layers = n_layers;
  c.n_heads = n_heads;
  c.n_kv_heads = n_kv_heads;
  c.vocab_size = vocab_size;
  c.max_seq_len = max_seq_len;
  c.tied_classifier = tied_classifier;
  return c;
}

// Weights for `c` drawn from N(0, scale) with seed `seed`: every matrix (the embeddings, each
// layer's seven linears, the classifier when the config has an untied one) and the RMSNorm
// weights as 1 + norm_spread * N(0, scale), so norms stay near one. One generator and one
// distribution in a fixed order (embeddings, layer by layer, final norm, classifier), so a
// seed names a model.
inline lowbit::model::LlamaWeights random_llama_weights(const lowbit::model::LlamaConfig& c, unsigned seed,
                                                        float scale, float norm_spread = 1.0f) {
  using lowbit::RowMatrixXf;
  std::mt19937 rng(seed);
  std::normal_distribution<float> nd(0.0f, scale);
  const auto mat = [&](int r, int k) {
    RowMatrixXf m(r, k);
    for (Eigen::Index i = 0; i < m.size(); ++i) m.data()[i] = nd(rng);
    return m;
  };
  const auto vec = [&](int n) {
    Eigen::VectorXf v(n);
    for (int i = 0; i < n; ++i) v[i] = 1.0f + norm_spread * nd(rng);
    return v;
  };
  lowbit::model::LlamaWeights w;
  w.config = c;
  w.tok_embeddings = mat(c.vocab_size, c.dim);
  for (int l = 0; l < c.n_layers; ++l) {
    lowbit::model::LlamaLayerWeights L;
    L.attention_norm = vec(c.dim);
    L.ffn_norm = vec(c.dim);
    L.wq = mat(c.dim, c.dim);
    L.wk = mat(c.kv_dim(), c.dim);
    L.wv = mat(c.kv_dim(), c.dim);
    L.wo = mat(c.dim, c.dim);
    L.w1 = mat(c.hidden_dim, c.dim);
    L.w2 = mat(c.dim, c.hidden_dim);
    L.w3 = mat(c.hidden_dim, c.dim);
    w.layers.push_back(L);
  }
  w.norm = vec(c.dim);
  if (!c.tied_classifier) w.output = mat(c.vocab_size, c.dim);
  return w;
}

}  // namespace lowbit_test
