#pragma once
// llama2.c's legacy checkpoint format (the "version 0" export of run.c), e.g.
// karpathy/tinyllamas stories260K.bin, as a memory-mapped ModelSource:
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
// from a config.json beside the file (model/load.hpp) or the defaults 1e-5 and 10000.
// Names are Meta's (layers.N.attention.wq ...); RoPE rotates interleaved pairs.
#include <cstdint>
#include <cstring>
#include <memory>
#include <string>

#include "lowbit/io/detail/mapped_file.hpp"
#include "lowbit/model/source.hpp"

namespace lowbit::model {

template <class Deferred>  // see "Compile time" in docs/design.md; Llama2cSource below
class BasicLlama2cSource final : public ModelSource {
 public:
  // Maps `path` and checks the header against the file size.
  explicit BasicLlama2cSource(const std::string& path) : map_(std::make_shared<lowbit::detail::mapped_file>(path)) {
    init(map_->data(), map_->size(), path);
  }
  // Over bytes the caller keeps alive (tests, fuzzing).
  BasicLlama2cSource(const void* bytes, std::size_t size, const std::string& source) {
    init(static_cast<const std::byte*>(bytes), size, source);
  }
  // The header's config with the eps / theta of a config.json applied (model/load.hpp).
  void set_config(const LlamaConfig& c) { config_ = c; }

  LlamaLayerWeights layer(int l) const override {
    const LlamaConfig& c = config_;
    if (l < 0 || l >= c.n_layers) lowbit::detail::fail(path_ + ": no layer " + std::to_string(l));
    const std::int64_t D = c.dim, H = c.hidden_dim, KV = c.kv_dim();
    LlamaLayerWeights w;
    w.attention_norm = vec(off_.rms_att + l * D, D);
    w.wq = mat(off_.wq + l * D * D, D, D);
    w.wk = mat(off_.wk + l * KV * D, KV, D);
    w.wv = mat(off_.wv + l * KV * D, KV, D);
    w.wo = mat(off_.wo + l * D * D, D, D);
    w.ffn_norm = vec(off_.rms_ffn + l * D, D);
    w.w1 = mat(off_.w1 + l * H * D, H, D);
    w.w2 = mat(off_.w2 + l * D * H, D, H);
    w.w3 = mat(off_.w3 + l * H * D, H, D);
    validate_layer(c, w, l, naming_, path_);
    return w;
  }
  void embed(const int* tokens, int n, RowMatrixXf& out) const override {
    out.resize(n, config_.dim);
    for (int t = 0; t < n; ++t) {
      copy(out.row(t).data(), off_.emb + static_cast<std::int64_t>(tokens[t]) * config_.dim, config_.dim);
      check_row(out.row(t).data(), TensorNames::embeddings(naming_), tokens[t]);
    }
  }
  RowMatrixXf embeddings() const override { return checked(mat(off_.emb, config_.vocab_size, config_.dim), "tok_embeddings.weight"); }
  Eigen::VectorXf final_norm() const override {
    Eigen::VectorXf v = vec(off_.rms_final, config_.dim);
    detail::check_array(path_, "norm.weight", 1, v.size(), 1, config_.dim, v.data());
    return v;
  }
  RowMatrixXf classifier() const override {
    if (config_.tied_classifier) return embeddings();
    return checked(mat(off_.wcls, config_.vocab_size, config_.dim), "output.weight");
  }

 private:
  struct Offsets {  // in floats from the end of the header
    std::int64_t emb, rms_att, wq, wk, wv, wo, rms_ffn, w1, w2, w3, rms_final, wcls;
  };
  static constexpr std::size_t kHeaderBytes = 7 * 4;

  void init(const std::byte* bytes, std::size_t size, const std::string& source) {
    path_ = source;
    architecture_ = "llama2.c checkpoint";
    naming_ = weight_naming::meta;
    if (size < kHeaderBytes)
      lowbit::detail::fail(source + ": file is " + std::to_string(size) +
                           " bytes, too short for the 28-byte llama2.c header");
    std::int32_t h[7];
    std::memcpy(h, bytes, sizeof h);
    LlamaConfig& c = config_;
    c.dim = h[0];
    c.hidden_dim = h[1];
    c.n_layers = h[2];
    c.n_heads = h[3];
    c.n_kv_heads = h[4];
    c.tied_classifier = h[5] > 0;
    c.vocab_size = h[5] == INT32_MIN ? 0 : (h[5] < 0 ? -h[5] : h[5]);
    c.max_seq_len = h[6];
    c.rope = rope_style::interleaved;
    c.validate(source + " (llama2.c header)");

    // Sizes in floats; validate() bounds every factor, so int64 cannot overflow here.
    const std::int64_t D = c.dim, H = c.hidden_dim, L = c.n_layers, V = c.vocab_size, KV = c.kv_dim(),
                       S = c.max_seq_len, HD = c.head_dim();
    std::int64_t at = 0;
    auto next = [&](std::int64_t n) {
      const std::int64_t here = at;
      at += n;
      return here;
    };
    off_.emb = next(V * D);
    off_.rms_att = next(L * D);
    off_.wq = next(L * D * D);
    off_.wk = next(L * KV * D);
    off_.wv = next(L * KV * D);
    off_.wo = next(L * D * D);
    off_.rms_ffn = next(L * D);
    off_.w1 = next(L * H * D);
    off_.w2 = next(L * D * H);
    off_.w3 = next(L * H * D);
    off_.rms_final = next(D);
    next(S * HD);  // freq_cis_real + freq_cis_imag: S * HD/2 floats each
    off_.wcls = next(c.tied_classifier ? 0 : V * D);
    const std::int64_t want = static_cast<std::int64_t>(kHeaderBytes) + 4 * at;
    if (static_cast<std::int64_t>(size) != want)
      lowbit::detail::fail(source + ": file is " + std::to_string(size) + " bytes but its llama2.c header (dim " +
                           std::to_string(c.dim) + ", hidden " + std::to_string(c.hidden_dim) + ", layers " +
                           std::to_string(c.n_layers) + ", heads " + std::to_string(c.n_heads) + "/" +
                           std::to_string(c.n_kv_heads) + ", vocab " + std::to_string(h[5]) + ", seq_len " +
                           std::to_string(c.max_seq_len) + ") implies " + std::to_string(want) + " bytes");
    data_ = bytes + kHeaderBytes;
  }

  void copy(float* dst, std::int64_t offset, std::int64_t n) const {
    std::memcpy(dst, data_ + 4 * offset, static_cast<std::size_t>(4 * n));  // little-endian host
  }
  RowMatrixXf mat(std::int64_t offset, std::int64_t rows, std::int64_t cols) const {
    RowMatrixXf m(rows, cols);
    copy(m.data(), offset, rows * cols);
    return m;
  }
  Eigen::VectorXf vec(std::int64_t offset, std::int64_t n) const {
    Eigen::VectorXf v(n);
    copy(v.data(), offset, n);
    return v;
  }
  RowMatrixXf checked(RowMatrixXf m, const std::string& name) const {
    detail::check_array(path_, name, m.rows(), m.cols(), m.rows(), m.cols(), m.data());
    return m;
  }
  void check_row(const float* row, const std::string& name, int id) const {
    for (int i = 0; i < config_.dim; ++i)
      if (!std::isfinite(row[i]))
        lowbit::detail::fail(path_ + ": tensor " + name + " has a non-finite value at row " + std::to_string(id) +
                             ", column " + std::to_string(i));
  }

  std::shared_ptr<lowbit::detail::mapped_file> map_;
  const std::byte* data_ = nullptr;
  Offsets off_{};
};
using Llama2cSource = BasicLlama2cSource<void>;

}  // namespace lowbit::model
