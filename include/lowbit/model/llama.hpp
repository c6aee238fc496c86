#pragma once
// A Llama-architecture decoder (llama2.c run.c semantics) evaluated over whole token
// sequences at once: every linear layer sees a [tokens, in] matrix, so a document costs a
// handful of matrix products per layer instead of one matrix-vector product per token.
//
//   x = tok_embeddings[tokens]
//   per layer:  n1 = rmsnorm(x) * attention_norm
//               h  = x + wo( attention( rope(wq n1), rope(wk n1), wv n1 ) )   causal, GQA
//               n2 = rmsnorm(h) * ffn_norm
//               x  = h + w2( silu(w1 n2) * (w3 n2) )
//   logits = classifier( rmsnorm(x) * norm )   classifier = tok_embeddings (tied) or output
//
// RoPE rotates interleaved pairs (q[2i], q[2i+1]) of each head with frequency
// theta^(-2i/head_dim), as llama2.c and Meta's reference code do. Key/value head
// g = h / (n_heads / n_kv_heads) serves query head h.
#include <cmath>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "lowbit/config.hpp"
#include "lowbit/model/kv_cache.hpp"
#include "lowbit/model/llama_config.hpp"
#include "lowbit/model/linear_layer.hpp"

namespace lowbit::model {

struct LlamaLayerWeights {
  Eigen::VectorXf attention_norm, ffn_norm;  // [dim]
  RowMatrixXf wq, wk, wv, wo;                // [dim, dim], [kv_dim, dim] x2, [dim, dim]
  RowMatrixXf w1, w2, w3;                    // [hidden, dim], [dim, hidden], [hidden, dim]
};

struct LlamaWeights {
  LlamaConfig config;
  RowMatrixXf tok_embeddings;  // [vocab, dim]
  std::vector<LlamaLayerWeights> layers;
  Eigen::VectorXf norm;        // [dim]
  RowMatrixXf output;          // [vocab, dim]; empty when config.tied_classifier

  const RowMatrixXf& classifier() const {
    return config.tied_classifier ? tok_embeddings : output;
  }

  // Checks every array against the config and rejects NaN/Inf; `source` names the file.
  // linear_matrices = false skips the linear weights (a model built from a quantized
  // checkpoint has none: model/quantized_model.hpp).
  void validate(const std::string& source, bool linear_matrices = true) const {
    config.validate(source);
    const LlamaConfig& c = config;
    auto check = [&](const std::string& name, std::int64_t rows, std::int64_t cols,
                     std::int64_t want_rows, std::int64_t want_cols, const float* data) {
      if (rows != want_rows || cols != want_cols)
        detail::fail(source + ": tensor " + name + " has shape [" + std::to_string(rows) + ", " +
                     std::to_string(cols) + "], expected [" + std::to_string(want_rows) + ", " +
                     std::to_string(want_cols) + "]");
      for (std::int64_t i = 0; i < rows * cols; ++i)
        if (!std::isfinite(data[i]))
          detail::fail(source + ": tensor " + name + " has a non-finite value at row " +
                       std::to_string(i / cols) + ", column " + std::to_string(i % cols));
    };
    auto vec = [&](const std::string& name, const Eigen::VectorXf& v) {
      check(name, 1, v.size(), 1, c.dim, v.data());
    };
    auto mat = [&](const std::string& name, const RowMatrixXf& m, std::int64_t r, std::int64_t k) {
      check(name, m.rows(), m.cols(), r, k, m.data());
    };
    mat("tok_embeddings.weight", tok_embeddings, c.vocab_size, c.dim);
    vec("norm.weight", norm);
    if (!c.tied_classifier && linear_matrices) mat("output.weight", output, c.vocab_size, c.dim);
    if (static_cast<int>(layers.size()) != c.n_layers)
      detail::fail(source + ": " + std::to_string(layers.size()) + " layers, config says " +
                   std::to_string(c.n_layers));
    for (int l = 0; l < c.n_layers; ++l) {
      const auto& L = layers[static_cast<std::size_t>(l)];
      const std::string p = "layers." + std::to_string(l) + ".";
      vec(p + "attention_norm.weight", L.attention_norm);
      vec(p + "ffn_norm.weight", L.ffn_norm);
      if (!linear_matrices) continue;
      mat(p + "attention.wq.weight", L.wq, c.dim, c.dim);
      mat(p + "attention.wk.weight", L.wk, c.kv_dim(), c.dim);
      mat(p + "attention.wv.weight", L.wv, c.kv_dim(), c.dim);
      mat(p + "attention.wo.weight", L.wo, c.dim, c.dim);
      mat(p + "feed_forward.w1.weight", L.w1, c.hidden_dim, c.dim);
      mat(p + "feed_forward.w2.weight", L.w2, c.dim, c.hidden_dim);
      mat(p + "feed_forward.w3.weight", L.w3, c.hidden_dim, c.dim);
    }
  }
};

// The seven linear layers of a block, in the order the forward pass runs them.
enum class linear_slot : int { wq, wk, wv, wo, w1, w2, w3 };
inline constexpr int kLinearSlots = 7;

// Meta name of a linear layer without ".weight", e.g. "layers.3.feed_forward.w2".
inline std::string linear_name(int layer, linear_slot s) {
  static const char* const names[kLinearSlots] = {
      "attention.wq", "attention.wk", "attention.wv", "attention.wo",
      "feed_forward.w1", "feed_forward.w2", "feed_forward.w3"};
  return "layers." + std::to_string(layer) + "." + names[static_cast<int>(s)];
}
inline const char* const kClassifierName = "output";

// Calibration hook: sees the input of every linear layer during a forward pass.
class LinearInputObserver {
 public:
  virtual ~LinearInputObserver() = default;
  virtual void observe(const std::string& layer_name, ConstRowMatrixRef input) = 0;
};

// Scratch matrices reused across calls so steady-state evaluation does not allocate.
struct ForwardWorkspace {
  RowMatrixXf x, xn, q, k, v, attn, proj, scores, gate, up;
};

class LlamaModel {
 public:
  explicit LlamaModel(LlamaWeights weights, const LinearFactory& factory = fp32_linear_factory())
      : w_(std::move(weights)) {
    w_.validate("LlamaModel");
    build_rope_table();
    set_linear_layers(factory);
  }

  // A model whose linear layers were built elsewhere (a quantized checkpoint,
  // model/quantized_model.hpp): `linears` holds n_layers * 7 layers in linear_slot order, then
  // the classifier; the weights' linear matrices are not used (and may be empty).
  LlamaModel(LlamaWeights weights, std::vector<std::unique_ptr<LinearLayer>> linears)
      : w_(std::move(weights)), prebuilt_(true) {
    w_.validate("LlamaModel", false);
    build_rope_table();
    const LlamaConfig& c = w_.config;
    if (linears.size() != static_cast<std::size_t>(c.n_layers * kLinearSlots + 1))
      detail::fail("LlamaModel: " + std::to_string(linears.size()) + " linear layers given, the config needs " +
                   std::to_string(c.n_layers * kLinearSlots + 1));
    const std::int64_t D = c.dim, H = c.hidden_dim, KV = c.kv_dim();
    const std::int64_t shapes[kLinearSlots][2] = {{D, D}, {KV, D}, {KV, D}, {D, D}, {H, D}, {D, H}, {H, D}};
    for (std::size_t i = 0; i < linears.size(); ++i) {
      const bool cls = i + 1 == linears.size();
      const int s = static_cast<int>(i % kLinearSlots);
      const std::string name = cls ? kClassifierName : linear_name(static_cast<int>(i / kLinearSlots), static_cast<linear_slot>(s));
      const std::int64_t out = cls ? c.vocab_size : shapes[s][0], in = cls ? D : shapes[s][1];
      if (!linears[i] || linears[i]->out_features() != out || linears[i]->in_features() != in)
        detail::fail("LlamaModel: layer " + name + " is " +
                     (linears[i] ? "[" + std::to_string(linears[i]->out_features()) + ", " +
                                       std::to_string(linears[i]->in_features()) + "]"
                                 : std::string("missing")) +
                     ", the config needs [" + std::to_string(out) + ", " + std::to_string(in) + "]");
    }
    linears_ = std::move(linears);
  }

  // Rebuilds every linear layer (and the classifier, named "output") through `factory`.
  void set_linear_layers(const LinearFactory& factory) {
    if (prebuilt_)
      detail::fail("LlamaModel: this model's linear layers were loaded already quantized; they cannot be rebuilt");
    const LlamaConfig& c = w_.config;
    std::vector<std::unique_ptr<LinearLayer>> built;
    for (int l = 0; l < c.n_layers; ++l) {
      const auto& L = w_.layers[static_cast<std::size_t>(l)];
      const RowMatrixXf* mats[kLinearSlots] = {&L.wq, &L.wk, &L.wv, &L.wo, &L.w1, &L.w2, &L.w3};
      for (int s = 0; s < kLinearSlots; ++s)
        built.push_back(make(factory, linear_name(l, static_cast<linear_slot>(s)), *mats[s]));
    }
    built.push_back(make(factory, kClassifierName, w_.classifier()));
    linears_ = std::move(built);
  }

  const LlamaConfig& config() const { return w_.config; }
  const LlamaWeights& weights() const { return w_; }
  const LinearLayer& linear(int layer, linear_slot s) const {
    return *linears_[static_cast<std::size_t>(layer * kLinearSlots + static_cast<int>(s))];
  }
  const LinearLayer& classifier() const { return *linears_.back(); }
  // All linear layers with their names, blocks first, classifier last.
  std::vector<std::pair<std::string, const LinearLayer*>> linear_layers() const {
    std::vector<std::pair<std::string, const LinearLayer*>> out;
    for (int l = 0; l < w_.config.n_layers; ++l)
      for (int s = 0; s < kLinearSlots; ++s)
        out.emplace_back(linear_name(l, static_cast<linear_slot>(s)),
                         &linear(l, static_cast<linear_slot>(s)));
    out.emplace_back(kClassifierName, linears_.back().get());
    return out;
  }

  // Runs tokens[0..n) at positions cache.length .. cache.length+n-1 (appending their keys
  // and values to `cache`) and writes logits [n, vocab]. A fresh cache gives the causal
  // forward of a sequence from position 0; one token at a time gives incremental decoding.
  // last_only: logits of the last token only ([1, vocab]), as generation needs after a prompt.
  void forward(const int* tokens, int n, KvCache& cache, RowMatrixXf& logits, ForwardWorkspace& ws,
               LinearInputObserver* observer = nullptr, bool last_only = false) const {
    const LlamaConfig& c = w_.config;
    const int p0 = cache.length;
    if (n <= 0) detail::fail("LlamaModel::forward: empty token sequence");
    if (p0 + n > c.max_seq_len)
      detail::fail("LlamaModel::forward: positions " + std::to_string(p0) + ".." +
                   std::to_string(p0 + n - 1) + " exceed max_seq_len " +
                   std::to_string(c.max_seq_len));
    ws.x.resize(n, c.dim);
    for (int t = 0; t < n; ++t) {
      if (tokens[t] < 0 || tokens[t] >= c.vocab_size)
        detail::fail("LlamaModel::forward: token id " + std::to_string(tokens[t]) +
                     " at position " + std::to_string(p0 + t) + " is outside the vocabulary [0, " +
                     std::to_string(c.vocab_size) + ")");
      ws.x.row(t) = w_.tok_embeddings.row(tokens[t]);
    }
    for (int l = 0; l < c.n_layers; ++l) {
      const auto& L = w_.layers[static_cast<std::size_t>(l)];
      rmsnorm(ws.x, L.attention_norm, ws.xn);
      run(l, linear_slot::wq, ws.xn, ws.q, observer);
      run(l, linear_slot::wk, ws.xn, ws.k, observer);
      run(l, linear_slot::wv, ws.xn, ws.v, observer);
      apply_rope(ws.q, p0);
      apply_rope(ws.k, p0);
      cache.store(l, p0, ws.k, ws.v);
      attention(cache, l, p0, n, ws);
      run(l, linear_slot::wo, ws.attn, ws.proj, observer);
      ws.x += ws.proj;

      rmsnorm(ws.x, L.ffn_norm, ws.xn);
      run(l, linear_slot::w1, ws.xn, ws.gate, observer);
      run(l, linear_slot::w3, ws.xn, ws.up, observer);
      // silu(g) * u, computed in place in `gate`.
      ws.gate.array() = ws.gate.array() / (1.0f + (-ws.gate.array()).exp()) * ws.up.array();
      run(l, linear_slot::w2, ws.gate, ws.proj, observer);
      ws.x += ws.proj;
    }
    cache.length = p0 + n;
    rmsnorm(ws.x, w_.norm, ws.xn);
    if (observer) observer->observe(kClassifierName, ws.xn);
    const int rows = last_only ? 1 : n;
    logits.resize(rows, c.vocab_size);
    linears_.back()->forward(ws.xn.bottomRows(rows), logits);
  }

  // Convenience: causal forward of a whole sequence from position 0.
  RowMatrixXf forward(const std::vector<int>& tokens, LinearInputObserver* observer = nullptr) const {
    KvCache cache(w_.config);
    ForwardWorkspace ws;
    RowMatrixXf logits;
    forward(tokens.data(), static_cast<int>(tokens.size()), cache, logits, ws, observer);
    return logits;
  }

 private:
  static std::unique_ptr<LinearLayer> make(const LinearFactory& f, const std::string& name,
                                           const RowMatrixXf& w) {
    auto layer = f(name, w);
    if (!layer || layer->in_features() != w.cols() || layer->out_features() != w.rows())
      detail::fail("LlamaModel: the linear factory returned no layer or a wrong shape for " + name);
    return layer;
  }

  void run(int l, linear_slot s, const RowMatrixXf& in, RowMatrixXf& out,
           LinearInputObserver* observer) const {
    const LinearLayer& layer = linear(l, s);
    if (observer) observer->observe(linear_name(l, s), in);
    out.resize(in.rows(), layer.out_features());
    layer.forward(in, out);
  }

  void rmsnorm(const RowMatrixXf& x, const Eigen::VectorXf& weight, RowMatrixXf& out) const {
    out.resize(x.rows(), x.cols());
    const float eps = w_.config.norm_eps;
    for (Eigen::Index t = 0; t < x.rows(); ++t) {
      const float ms = x.row(t).squaredNorm() / static_cast<float>(x.cols());
      const float inv = 1.0f / std::sqrt(ms + eps);
      out.row(t) = (x.row(t).array() * inv) * weight.transpose().array();
    }
  }

  void build_rope_table() {
    const LlamaConfig& c = w_.config;
    const int half = c.head_dim() / 2;
    rope_cos_.resize(c.max_seq_len, half);
    rope_sin_.resize(c.max_seq_len, half);
    for (int i = 0; i < half; ++i) {
      // Computed in double so the table does not depend on libm's float rounding.
      const double freq = std::pow(static_cast<double>(c.rope_theta),
                                   -2.0 * i / static_cast<double>(c.head_dim()));
      for (int p = 0; p < c.max_seq_len; ++p) {
        rope_cos_(p, i) = static_cast<float>(std::cos(p * freq));
        rope_sin_(p, i) = static_cast<float>(std::sin(p * freq));
      }
    }
  }

  // Rotates the interleaved pairs of every head of m ([n, heads * head_dim]) in place.
  void apply_rope(RowMatrixXf& m, int p0) const {
    const int hd = w_.config.head_dim();
    for (Eigen::Index t = 0; t < m.rows(); ++t) {
      float* row = m.row(t).data();
      const float* cs = rope_cos_.row(p0 + t).data();
      const float* sn = rope_sin_.row(p0 + t).data();
      for (Eigen::Index j = 0; j < m.cols(); j += 2) {
        const int i = static_cast<int>(j % hd) / 2;
        const float a = row[j], b = row[j + 1];
        row[j] = a * cs[i] - b * sn[i];
        row[j + 1] = a * sn[i] + b * cs[i];
      }
    }
  }

  // Causal grouped-query attention of the n new queries (ws.q) over cache rows [0, p0+n).
  // Keys and values are read per kv head (dequantized once for the heads sharing it).
  void attention(const KvCache& cache, int l, int p0, int n, ForwardWorkspace& ws) const {
    const LlamaConfig& c = w_.config;
    const int hd = c.head_dim(), len = p0 + n, group = c.n_heads / c.n_kv_heads;
    const float scale = 1.0f / std::sqrt(static_cast<float>(hd));
    ws.attn.resize(n, c.dim);
    ws.scores.resize(n, len);
    std::optional<KvHeadView> K, V;
    for (int h = 0; h < c.n_heads; ++h) {
      const int g = h / group;
      if (h % group == 0) {
        K.emplace(cache.keys(l, g, len));
        V.emplace(cache.values(l, g, len));
      }
      ws.scores.noalias() = ws.q.middleCols(h * hd, hd) * K->transpose();
      for (int t = 0; t < n; ++t) {
        const int visible = p0 + t + 1;  // query t sees keys 0 .. p0+t
        auto row = ws.scores.row(t);
        auto seen = row.head(visible);
        const float mx = seen.maxCoeff();
        seen = ((seen.array() - mx) * scale).exp();
        seen /= seen.sum();
        row.tail(len - visible).setZero();
      }
      ws.attn.middleCols(h * hd, hd).noalias() = ws.scores * *V;
    }
  }

  LlamaWeights w_;
  bool prebuilt_ = false;  // linear layers given to the constructor (no fp32 matrices)
  RowMatrixXf rope_cos_, rope_sin_;  // [max_seq_len, head_dim / 2]
  std::vector<std::unique_ptr<LinearLayer>> linears_;  // n_layers * 7, then the classifier
};

}  // namespace lowbit::model
