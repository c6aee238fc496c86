#pragma once
// LlamaConfig: the shape of a Llama-architecture model (llama2.c / Meta naming) and the two
// numbers that are not shapes (RMSNorm epsilon, RoPE theta). Loaders fill it from the file
// (the llama2.c header, or the safetensors tensor shapes) and, where present, a config.json
// beside the model; validate() checks it before any array is sized from it.
#include <cstdint>
#include <string>

#include "lowbit/error.hpp"

namespace lowbit::model {

struct LlamaConfig {
  int dim = 0;          // model width
  int hidden_dim = 0;   // SwiGLU inner width (w1, w3 rows; w2 columns)
  int n_layers = 0;
  int n_heads = 0;      // query heads
  int n_kv_heads = 0;   // key/value heads (grouped-query attention when < n_heads)
  int vocab_size = 0;
  int max_seq_len = 0;  // longest sequence the RoPE table and KV cache are built for
  float norm_eps = 1e-5f;
  float rope_theta = 10000.0f;
  bool tied_classifier = true;  // logits use tok_embeddings (true) or a separate `output` matrix

  int head_dim() const { return n_heads > 0 ? dim / n_heads : 0; }
  int kv_dim() const { return head_dim() * n_kv_heads; }

  // Throws lowbit::error naming `source` (a file name) and the first bad field.
  void validate(const std::string& source) const {
    auto bad = [&](const std::string& what) {
      detail::fail(source + ": invalid model config: " + what);
    };
    // Upper bounds keep size arithmetic far from overflow and reject garbage headers.
    constexpr int kMaxDim = 1 << 16, kMaxLayers = 1024, kMaxVocab = 1 << 22, kMaxSeq = 1 << 20;
    if (dim <= 0 || dim > kMaxDim) bad("dim " + std::to_string(dim) + " out of range");
    if (hidden_dim <= 0 || hidden_dim > 8 * kMaxDim)
      bad("hidden_dim " + std::to_string(hidden_dim) + " out of range");
    if (n_layers <= 0 || n_layers > kMaxLayers)
      bad("n_layers " + std::to_string(n_layers) + " out of range");
    if (n_heads <= 0 || n_heads > dim) bad("n_heads " + std::to_string(n_heads) + " out of range");
    if (dim % n_heads != 0)
      bad("dim " + std::to_string(dim) + " is not a multiple of n_heads " + std::to_string(n_heads));
    if (head_dim() % 2 != 0)
      bad("head_dim " + std::to_string(head_dim()) + " is odd (RoPE rotates pairs)");
    if (n_kv_heads <= 0 || n_kv_heads > n_heads || n_heads % n_kv_heads != 0)
      bad("n_kv_heads " + std::to_string(n_kv_heads) + " must divide n_heads " +
          std::to_string(n_heads));
    if (vocab_size <= 0 || vocab_size > kMaxVocab)
      bad("vocab_size " + std::to_string(vocab_size) + " out of range");
    if (max_seq_len <= 0 || max_seq_len > kMaxSeq)
      bad("max_seq_len " + std::to_string(max_seq_len) + " out of range");
    if (!(norm_eps > 0.0f) || !(norm_eps < 1.0f)) bad("norm_eps must be in (0, 1)");
    if (!(rope_theta > 1.0f) || !(rope_theta < 1e12f)) bad("rope_theta must be in (1, 1e12)");
  }
};

}  // namespace lowbit::model
