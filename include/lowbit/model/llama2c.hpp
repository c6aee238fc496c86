#pragma once
// Loader for llama2.c's legacy checkpoint format (the "version 0" export of run.c), e.g.
// karpathy/tinyllamas stories260K.bin:
//
//   int32 dim, hidden_dim, n_layers, n_heads, n_kv_heads, vocab_size, seq_len
//   (vocab_size < 0 means the classifier is NOT tied and a separate matrix follows)
//   float32 arrays, each linear weight [out, in] row-major, every per-layer array stacked
//   over layers:
//     token_embedding [vocab, dim]        rms_att [L, dim]
//     wq [L, dim, dim]   wk [L, kv_dim, dim]   wv [L, kv_dim, dim]   wo [L, dim, dim]
//     rms_ffn [L, dim]
//     w1 [L, hidden, dim]   w2 [L, dim, hidden]   w3 [L, hidden, dim]
//     rms_final [dim]
//     freq_cis_real, freq_cis_imag [seq_len, head_dim / 2] each (unused: RoPE is recomputed)
//     wcls [vocab, dim]                   only when vocab_size < 0
//
// The file size must be exactly what the header implies; anything else is an error naming
// the file and both sizes. RMSNorm epsilon and RoPE theta are not in the header: they come
// from `overrides` (config.json, see model/load.hpp) or the defaults 1e-5 and 10000.
#include <cstdint>
#include <string>
#include <vector>

#include "lowbit/model/detail/read_file.hpp"
#include "lowbit/model/llama.hpp"

namespace lowbit::model {

inline LlamaWeights load_llama2c_bytes(const std::vector<std::uint8_t>& bytes,
                                       const std::string& source) {
  constexpr std::size_t kHeaderBytes = 7 * 4;
  if (bytes.size() < kHeaderBytes)
    lowbit::detail::fail(source + ": file is " + std::to_string(bytes.size()) +
                         " bytes, too short for the 28-byte llama2.c header");
  std::int32_t h[7];
  for (int i = 0; i < 7; ++i) h[i] = detail::load_i32(bytes.data() + 4 * i);

  LlamaConfig c;
  c.dim = h[0];
  c.hidden_dim = h[1];
  c.n_layers = h[2];
  c.n_heads = h[3];
  c.n_kv_heads = h[4];
  c.tied_classifier = h[5] > 0;
  c.vocab_size = h[5] == INT32_MIN ? 0 : (h[5] < 0 ? -h[5] : h[5]);
  c.max_seq_len = h[6];
  c.validate(source + " (llama2.c header)");

  // Sizes in floats; validate() bounds every factor, so int64 cannot overflow here.
  const std::int64_t D = c.dim, H = c.hidden_dim, L = c.n_layers, V = c.vocab_size,
                     KV = c.kv_dim(), S = c.max_seq_len, HD = c.head_dim();
  const std::int64_t floats = V * D + L * D + L * D * D + 2 * L * KV * D + L * D * D + L * D +
                              3 * L * H * D + D + S * HD + (c.tied_classifier ? 0 : V * D);
  const std::int64_t want = static_cast<std::int64_t>(kHeaderBytes) + 4 * floats;
  if (static_cast<std::int64_t>(bytes.size()) != want)
    lowbit::detail::fail(source + ": file is " + std::to_string(bytes.size()) +
                         " bytes but its llama2.c header (dim " + std::to_string(c.dim) +
                         ", hidden " + std::to_string(c.hidden_dim) + ", layers " +
                         std::to_string(c.n_layers) + ", heads " + std::to_string(c.n_heads) +
                         "/" + std::to_string(c.n_kv_heads) + ", vocab " +
                         std::to_string(h[5]) + ", seq_len " + std::to_string(c.max_seq_len) +
                         ") implies " + std::to_string(want) + " bytes");

  const std::uint8_t* p = bytes.data() + kHeaderBytes;
  auto take = [&](float* dst, std::int64_t n) {
    for (std::int64_t i = 0; i < n; ++i) dst[i] = detail::load_f32(p + 4 * i);
    p += 4 * n;
  };
  LlamaWeights w;
  w.config = c;
  w.layers.resize(static_cast<std::size_t>(L));
  w.tok_embeddings.resize(V, D);
  take(w.tok_embeddings.data(), V * D);
  // Stacked per-layer arrays: read layer by layer within each array.
  auto per_layer_vec = [&](Eigen::VectorXf LlamaLayerWeights::*member) {
    for (auto& layer : w.layers) {
      (layer.*member).resize(D);
      take((layer.*member).data(), D);
    }
  };
  auto per_layer_mat = [&](RowMatrixXf LlamaLayerWeights::*member, std::int64_t rows,
                           std::int64_t cols) {
    for (auto& layer : w.layers) {
      (layer.*member).resize(rows, cols);
      take((layer.*member).data(), rows * cols);
    }
  };
  per_layer_vec(&LlamaLayerWeights::attention_norm);
  per_layer_mat(&LlamaLayerWeights::wq, D, D);
  per_layer_mat(&LlamaLayerWeights::wk, KV, D);
  per_layer_mat(&LlamaLayerWeights::wv, KV, D);
  per_layer_mat(&LlamaLayerWeights::wo, D, D);
  per_layer_vec(&LlamaLayerWeights::ffn_norm);
  per_layer_mat(&LlamaLayerWeights::w1, H, D);
  per_layer_mat(&LlamaLayerWeights::w2, D, H);
  per_layer_mat(&LlamaLayerWeights::w3, H, D);
  w.norm.resize(D);
  take(w.norm.data(), D);
  p += 4 * S * HD;  // freq_cis_real + freq_cis_imag: S * HD/2 floats each
  if (!c.tied_classifier) {
    w.output.resize(V, D);
    take(w.output.data(), V * D);
  }
  return w;
}

inline LlamaWeights load_llama2c(const std::string& path) {
  return load_llama2c_bytes(detail::read_file_bytes(path), path);
}

}  // namespace lowbit::model
