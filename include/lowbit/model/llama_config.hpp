#pragma once
// LlamaConfig: the shape of a Llama-family decoder (Llama, Mistral, Qwen2, Qwen3) and the
// numbers that are not shapes (RMSNorm epsilon, RoPE theta and scaling). Loaders fill it
// from the file (the llama2.c header, a Hugging Face config.json, or safetensors shapes plus
// hints); validate() checks it before any array is sized from it.
//
// The differences between the supported architectures are all flags here, read by one
// forward pass (model/decoder_layer.hpp):
//   llama / mistral   optional biases (attention_bias: q,k,v,o; mlp_bias: gate,up,down),
//                     mistral's optional sliding_window
//   qwen2             biases on q, k and v (always)
//   qwen3             per-head RMSNorm of q and k (q_norm / k_norm, [head_dim]) before RoPE,
//                     and a head_dim that may differ from dim / n_heads
#include <cstdint>
#include <string>
#include <vector>

#include "lowbit/error.hpp"

namespace lowbit::model {

enum class model_arch { llama, mistral, qwen2, qwen3 };
inline const char* to_string(model_arch a) {
  switch (a) {
    case model_arch::llama: return "llama";
    case model_arch::mistral: return "mistral";
    case model_arch::qwen2: return "qwen2";
    case model_arch::qwen3: return "qwen3";
  }
  return "?";
}

// Which pairs of a head RoPE rotates: (x[2i], x[2i+1]) as Meta's reference code and
// llama2.c do, or (x[i], x[i + head_dim/2]) as Hugging Face's rotate_half does. The
// transformers conversion script permutes q/k rows between the two, so a checkpoint's naming
// says which one its weights expect.
enum class rope_style { interleaved, half };

// rope_scaling of config.json, with the parameters transformers reads for each type.
enum class rope_scaling_type { none, linear, dynamic, llama3, yarn };
inline const char* to_string(rope_scaling_type t) {
  switch (t) {
    case rope_scaling_type::none: return "none";
    case rope_scaling_type::linear: return "linear";
    case rope_scaling_type::dynamic: return "dynamic";
    case rope_scaling_type::llama3: return "llama3";
    case rope_scaling_type::yarn: return "yarn";
  }
  return "?";
}

struct RopeScaling {
  rope_scaling_type type = rope_scaling_type::none;
  double factor = 1.0;
  // llama3 and yarn: the pre-extension context; 0 = max_position_embeddings (yarn only).
  double original_max_position_embeddings = 0.0;
  double low_freq_factor = 1.0, high_freq_factor = 4.0;  // llama3
  double beta_fast = 32.0, beta_slow = 1.0;              // yarn
  double mscale = 0.0, mscale_all_dim = 0.0;             // yarn (0 = absent)
  double attention_factor = 0.0;                         // yarn (0 = derived from factor)
  bool truncate = true;                                  // yarn
  // llama.cpp's per-pair frequency divisors (a GGUF file's rope_freqs tensor, how llama.cpp
  // stores llama3 scaling): inv_freq[i] /= freq_factors[i], after `type`'s scaling.
  // Empty: none. Set by GGUF import only (model/gguf_source.hpp checks size and values).
  std::vector<float> freq_factors;
};

struct LlamaConfig {
  int dim = 0;          // model width (hidden_size)
  int hidden_dim = 0;   // SwiGLU inner width (w1, w3 rows; w2 columns)
  int n_layers = 0;
  int n_heads = 0;      // query heads
  int n_kv_heads = 0;   // key/value heads (grouped-query attention when < n_heads)
  int vocab_size = 0;
  int max_seq_len = 0;  // longest sequence evaluated (the KV cache's bound)
  // config.json max_position_embeddings, which dynamic and yarn scaling read (0: max_seq_len).
  // Equal to max_seq_len except for dynamic scaling, which exists to run past it.
  int max_position_embeddings = 0;
  float norm_eps = 1e-5f;
  float rope_theta = 10000.0f;
  bool tied_classifier = true;  // logits use tok_embeddings (true) or a separate matrix

  model_arch arch = model_arch::llama;
  rope_style rope = rope_style::interleaved;
  RopeScaling rope_scaling;
  int explicit_head_dim = 0;    // config.json head_dim when set (0: dim / n_heads)
  bool qkv_bias = false;        // biases on q, k, v (qwen2; llama attention_bias)
  bool o_bias = false;          // bias on o (llama attention_bias)
  bool mlp_bias = false;        // biases on gate, up, down (llama mlp_bias)
  bool qk_norm = false;         // qwen3's per-head q_norm / k_norm
  int sliding_window = 0;       // mistral: a query sees the last N keys only (0: all)
  std::vector<int> bos_ids, eos_ids;  // bos_token_id / eos_token_id (int or list)

  int head_dim() const {
    if (explicit_head_dim > 0) return explicit_head_dim;
    return n_heads > 0 ? dim / n_heads : 0;
  }
  int rope_context() const { return max_position_embeddings > 0 ? max_position_embeddings : max_seq_len; }
  int q_dim() const { return head_dim() * n_heads; }  // rows of wq, columns of wo
  int kv_dim() const { return head_dim() * n_kv_heads; }
  // The token documents start with (perplexity's document split): the first bos id, else 1.
  int bos() const { return bos_ids.empty() ? 1 : bos_ids.front(); }

  // Throws lowbit::error naming `source` (a file name) and the first bad field.
  void validate(const std::string& source) const {
    auto bad = [&](const std::string& what) {
      lowbit::detail::fail(source + ": invalid model config: " + what);
    };
    // Upper bounds keep size arithmetic far from overflow and reject garbage headers.
    constexpr int kMaxDim = 1 << 16, kMaxLayers = 1024, kMaxVocab = 1 << 22, kMaxSeq = 1 << 24;
    if (dim <= 0 || dim > kMaxDim) bad("dim " + std::to_string(dim) + " out of range");
    if (hidden_dim <= 0 || hidden_dim > 8 * kMaxDim)
      bad("hidden_dim " + std::to_string(hidden_dim) + " out of range");
    if (n_layers <= 0 || n_layers > kMaxLayers)
      bad("n_layers " + std::to_string(n_layers) + " out of range");
    if (n_heads <= 0 || n_heads > kMaxDim) bad("n_heads " + std::to_string(n_heads) + " out of range");
    if (explicit_head_dim < 0 || explicit_head_dim > 4096)
      bad("head_dim " + std::to_string(explicit_head_dim) + " out of range");
    if (explicit_head_dim == 0 && dim % n_heads != 0)
      bad("dim " + std::to_string(dim) + " is not a multiple of n_heads " + std::to_string(n_heads));
    if (static_cast<std::int64_t>(head_dim()) * n_heads > 4 * static_cast<std::int64_t>(kMaxDim))
      bad("n_heads * head_dim out of range");
    if (head_dim() <= 0 || head_dim() % 2 != 0)
      bad("head_dim " + std::to_string(head_dim()) + " is not a positive even number (RoPE rotates pairs)");
    if (n_kv_heads <= 0 || n_kv_heads > n_heads || n_heads % n_kv_heads != 0)
      bad("n_kv_heads " + std::to_string(n_kv_heads) + " must divide n_heads " +
          std::to_string(n_heads));
    if (vocab_size <= 0 || vocab_size > kMaxVocab)
      bad("vocab_size " + std::to_string(vocab_size) + " out of range");
    if (max_seq_len <= 0 || max_seq_len > kMaxSeq)
      bad("max_seq_len " + std::to_string(max_seq_len) + " out of range");
    if (!(norm_eps > 0.0f) || !(norm_eps < 1.0f)) bad("norm_eps must be in (0, 1)");
    if (!(rope_theta > 1.0f) || !(rope_theta < 1e12f)) bad("rope_theta must be in (1, 1e12)");
    if (sliding_window < 0) bad("sliding_window must be >= 0");
    const RopeScaling& r = rope_scaling;
    if (r.type != rope_scaling_type::none) {
      const std::string t = std::string("rope_scaling (") + to_string(r.type) + "): ";
      if (!(r.factor >= 1.0) || !(r.factor < 1e6)) bad(t + "factor must be in [1, 1e6)");
      if (r.type == rope_scaling_type::llama3) {
        if (!(r.original_max_position_embeddings >= 1.0))
          bad(t + "original_max_position_embeddings must be >= 1");
        if (!(r.low_freq_factor > 0.0) || !(r.high_freq_factor > r.low_freq_factor))
          bad(t + "needs 0 < low_freq_factor < high_freq_factor");
      }
      if (r.type == rope_scaling_type::yarn) {
        if (!(r.original_max_position_embeddings >= 0.0)) bad(t + "original_max_position_embeddings must be >= 0");
        if (!(r.beta_fast > 0.0) || !(r.beta_slow > 0.0)) bad(t + "beta_fast and beta_slow must be > 0");
        if (!(r.attention_factor >= 0.0) || !(r.mscale >= 0.0) || !(r.mscale_all_dim >= 0.0))
          bad(t + "attention_factor, mscale and mscale_all_dim must be >= 0");
      }
    }
    for (int id : bos_ids)
      if (id < 0 || id >= vocab_size) bad("bos_token_id " + std::to_string(id) + " is outside the vocabulary");
    for (int id : eos_ids)
      if (id < 0 || id >= vocab_size) bad("eos_token_id " + std::to_string(id) + " is outside the vocabulary");
  }
};

}  // namespace lowbit::model
