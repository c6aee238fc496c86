#pragma once
// DecoderLayer: one block of a Llama-family decoder, with its linear layers built through a
// LinearFactory (fp32, fake-quant, packed kernels, recipes) and everything else (norms,
// biases, q/k norms) kept in fp32. LlamaModel (model/llama.hpp) is a stack of these; the same
// class is the per-layer API for sequential (layer-by-layer) calibration.
//
//   n1 = rmsnorm(x) * attention_norm
//   q, k, v = wq n1 + bq, wk n1 + bk, wv n1 + bv          (biases: qwen2, attention_bias)
//   q, k = rmsnorm_per_head(q) * q_norm, ... * k_norm      (qwen3 only)
//   q, k = rope(q), rope(k)                                 (interleaved or half pairs)
//   h  = x + wo attention(q, k, v) + bo                     causal, GQA, optional window
//   n2 = rmsnorm(h) * ffn_norm
//   x' = h + w2 (silu(w1 n2 + b1) * (w3 n2 + b3)) + b2      (biases: mlp_bias)
//
// Per-layer use (sequential calibration), e.g. GPTQ layer by layer:
//
//   auto src = open_model(dir);                                   // model/load.hpp
//   std::vector<RowMatrixXf> h = embed_sequences(*src, samples);  // layer 0's inputs
//   for (int l = 0; l < src->config().n_layers; ++l) {
//     const LlamaLayerWeights w = src->layer(l);                  // this layer in fp32
//     DecoderLayer layer(src->config(), l, src->naming(), w);     // fp32 linears
//     MyRecorder rec;                                             // a LinearInputObserver
//     std::vector<RowMatrixXf> fp32_out;
//     layer.forward_sequences(h, fp32_out, &rec);                 // inputs of every linear
//     layer.set_linears(w, my_quantizing_factory(rec));           // swap in quantized linears
//     std::vector<RowMatrixXf> q_out;
//     layer.forward_sequences(h, q_out);                          // the quantized layer's outputs
//     h = std::move(q_out);                                       // (or fp32_out) feeds layer l+1
//   }                                                             // w and layer freed here
//
// Every sequence of forward_sequences() runs independently and causally from position 0.
// The observer is called once per linear layer per sequence, with that linear's input
// ([sequence length, in_features]) and its checkpoint name (layer.name(slot)); wq/wk/wv see
// the same input, as do w1/w3.
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "lowbit/threads.hpp"
#include "lowbit/model/detail/forward_ops.hpp"
#include "lowbit/model/kv_cache.hpp"
#include "lowbit/model/linear_layer.hpp"
#include "lowbit/model/rope.hpp"
#include "lowbit/model/source.hpp"

namespace lowbit::model {

// Calibration hook: sees the input of every linear layer during a forward pass.
class LinearInputObserver {
 public:
  virtual ~LinearInputObserver() = default;
  virtual void observe(const std::string& layer_name, ConstRowMatrixRef input) = 0;
};

// Scratch matrices reused across calls so steady-state evaluation does not allocate.
struct ForwardWorkspace {
  RowMatrixXf x, xn, q, k, v, attn, proj, gate, up;
  std::vector<RowMatrixXf> scores_per_task;  // attention: one [block, len] buffer per kv-head task
  std::vector<RowMatrixXf> kv_per_task;      // attention: decoded keys and values, keys transposed (3 per task)
  RowMatrixXf rope_cos, rope_sin;  // [n, head_dim / 2] for the call's positions
};

namespace detail {
// The element-wise steps between the linear layers (norms, SiLU, residual adds) run on the
// pool too: at 2 threads a step left on the calling thread costs twice its share of the
// wall time. Each task gets at least min_task_elements elements (detail/threads.hpp), so a
// decode token's vectors stay on the calling thread, where waking the pool would cost more
// than the step.

// Runs body(r0, r1) over contiguous row ranges covering [0, rows) of a [rows, cols] step, on
// up to default_num_threads() threads (inline inside an outer parallel_for). The ranges
// depend on the thread count, so body must compute every row the same way whichever range
// holds it (true of row-wise norms and of element-wise arithmetic without exp/SIMD paths
// that depend on the position).
template <class Body>
void for_row_ranges(Eigen::Index rows, Eigen::Index cols, const Body& body) {
  const int threads = lowbit::default_num_threads();
  const std::int64_t elements = static_cast<std::int64_t>(rows) * cols;
  const std::int64_t tasks =
      threads <= 1 ? 1
                   : lowbit::detail::tasks_for_work(elements, lowbit::detail::min_task_elements,
                                                    std::min<std::int64_t>(threads, rows), threads);
  if (tasks <= 1) {
    if (rows > 0) body(Eigen::Index{0}, rows);
    return;
  }
  const std::int64_t per = (rows + tasks - 1) / tasks;
  lowbit::parallel_for((rows + per - 1) / per, threads, lowbit::executor(), [&](std::int64_t i) {
    const Eigen::Index r0 = static_cast<Eigen::Index>(i * per);
    body(r0, std::min<Eigen::Index>(rows, r0 + static_cast<Eigen::Index>(per)));
  });
}

// rmsnorm(x) * weight per row, rows split over the pool (each row is computed by the same
// code whichever thread takes it, so the result does not depend on the thread count).
template <class Deferred = void>  // see "Compile time" in docs/design.md
void rmsnorm(const deferred_t<Deferred, RowMatrixXf>& x, const deferred_t<Deferred, Eigen::VectorXf>& weight, float eps,
             deferred_t<Deferred, RowMatrixXf>& out) {
  out.resize(x.rows(), x.cols());
  for_row_ranges(x.rows(), x.cols(), [&](Eigen::Index r0, Eigen::Index r1) {
    for (Eigen::Index t = r0; t < r1; ++t) {
      const float ms = x.row(t).squaredNorm() / static_cast<float>(x.cols());
      const float inv = 1.0f / std::sqrt(ms + eps);
      out.row(t) = (x.row(t).array() * inv) * weight.transpose().array();
    }
  });
}

// x += y (same shape), rows split over the pool (an add is exact on any path).
template <class Deferred = void>  // see "Compile time" in docs/design.md
void add_in_place(deferred_t<Deferred, RowMatrixXf>& x, const deferred_t<Deferred, RowMatrixXf>& y) {
  for_row_ranges(x.rows(), x.cols(), [&](Eigen::Index r0, Eigen::Index r1) {
    x.middleRows(r0, r1 - r0) += y.middleRows(r0, r1 - r0);
  });
}

// gate = silu(gate) * up, in place, rows split over the pool. silu_mul_n gives the same
// bits on every tier and for any split (model/detail/forward_ops.hpp).
template <class Deferred = void>  // see "Compile time" in docs/design.md
void silu_mul(deferred_t<Deferred, RowMatrixXf>& gate, const deferred_t<Deferred, RowMatrixXf>& up) {
  const Eigen::Index cols = gate.cols();
  for_row_ranges(gate.rows(), cols, [&](Eigen::Index r0, Eigen::Index r1) {
    silu_mul_n(gate.data() + r0 * cols, up.data() + r0 * cols, static_cast<std::size_t>((r1 - r0) * cols));
  });
}
// RMSNorm of every head_dim-wide slice of m's rows, in place (qwen3's q_norm / k_norm).
template <class Deferred = void>  // see "Compile time" in docs/design.md
void rmsnorm_heads(deferred_t<Deferred, RowMatrixXf>& m, const deferred_t<Deferred, Eigen::VectorXf>& weight, float eps) {
  const Eigen::Index hd = weight.size();
  for (Eigen::Index t = 0; t < m.rows(); ++t)
    for (Eigen::Index h = 0; h + hd <= m.cols(); h += hd) {
      auto seg = m.row(t).segment(h, hd);
      const float inv = 1.0f / std::sqrt(seg.squaredNorm() / static_cast<float>(hd) + eps);
      seg = (seg.array() * inv) * weight.transpose().array();
    }
}
}  // namespace detail

// DecoderLayer (the alias below) is a class template only so that the forward pass (Eigen
// products, attention, norms) is compiled where a layer is run ("Compile time" in
// docs/design.md). Deferred is never named.
template <class Deferred>
class BasicDecoderLayer {
 public:
  // Builds layer `index` from its fp32 weights (validated here), linears through `factory`.
  BasicDecoderLayer(const LlamaConfig& config, int index, weight_naming naming, const LlamaLayerWeights& w,
               const LinearFactory& factory = fp32_linear_factory())
      : c_(config), index_(index), naming_(naming) {
    validate_layer(c_, w, index_, naming_, "DecoderLayer", /*external_linears=*/true);
    attention_norm_ = w.attention_norm;
    ffn_norm_ = w.ffn_norm;
    q_norm_ = w.q_norm;
    k_norm_ = w.k_norm;
    for (int s = 0; s < kLinearSlots; ++s) {
      names_[s] = model::linear_name(index_, static_cast<linear_slot>(s), naming_);
      bias_[s] = w.bias(static_cast<linear_slot>(s));
    }
    set_linears(w, factory);
  }
  // Layer l of a source, read and converted now (the fp32 copy is dropped on return).
  static BasicDecoderLayer build(const ModelSource& src, int l, const LinearFactory& factory = fp32_linear_factory()) {
    return BasicDecoderLayer(src.config(), l, src.naming(), src.layer(l), factory);
  }

  // Rebuilds the seven linear layers from fp32 weights `w` (same shapes); norms and biases
  // stay as built.
  void set_linears(const LlamaLayerWeights& w, const LinearFactory& factory) {
    std::unique_ptr<LinearLayer> built[kLinearSlots];
    for (int s = 0; s < kLinearSlots; ++s)
      built[s] = make_linear(factory, names_[s], w.matrix(static_cast<linear_slot>(s)), linear_shape(c_, static_cast<linear_slot>(s)));
    for (int s = 0; s < kLinearSlots; ++s) linears_[s] = std::move(built[s]);
  }
  // Replaces one linear layer (its shape must match).
  void set_linear(linear_slot s, std::unique_ptr<LinearLayer> layer) {
    const auto [r, k] = linear_shape(c_, s);
    if (!layer || layer->out_features() != r || layer->in_features() != k)
      lowbit::detail::fail("DecoderLayer::set_linear: no layer or a wrong shape for " + name(s));
    linears_[static_cast<int>(s)] = std::move(layer);
  }

  int index() const { return index_; }
  const LlamaConfig& config() const { return c_; }
  const LinearLayer& linear(linear_slot s) const { return *linears_[static_cast<int>(s)]; }
  const std::string& name(linear_slot s) const { return names_[static_cast<int>(s)]; }
  const Eigen::VectorXf& bias(linear_slot s) const { return bias_[static_cast<int>(s)]; }

  // Runs tokens at positions p0 .. p0+n-1 of one sequence: x [n, dim] in, the layer's output
  // out (in place). `cache` holds every layer's keys and values (model/kv_cache.hpp); this
  // layer's rows p0.. are written, rows [0, p0+n) read.
  // ws.rope_cos / rope_sin must hold the rotation table of those positions (rope_table()).
  void forward(RowMatrixXf& x, int p0, KvCache& cache, ForwardWorkspace& ws,
               LinearInputObserver* observer = nullptr) const {
    const int n = static_cast<int>(x.rows());
    detail::rmsnorm(x, attention_norm_, c_.norm_eps, ws.xn);
    run({linear_slot::wq, linear_slot::wk, linear_slot::wv}, ws.xn, {&ws.q, &ws.k, &ws.v}, observer);
    if (c_.qk_norm) {
      detail::rmsnorm_heads(ws.q, q_norm_, c_.norm_eps);
      detail::rmsnorm_heads(ws.k, k_norm_, c_.norm_eps);
    }
    apply_rope(ws.q, c_.head_dim(), c_.rope, ws.rope_cos, ws.rope_sin);
    apply_rope(ws.k, c_.head_dim(), c_.rope, ws.rope_cos, ws.rope_sin);
    cache.store(index_, p0, ws.k, ws.v);
    attention(cache, p0, n, ws);
    run({linear_slot::wo}, ws.attn, {&ws.proj}, observer);
    detail::add_in_place(x, ws.proj);

    detail::rmsnorm(x, ffn_norm_, c_.norm_eps, ws.xn);
    run({linear_slot::w1, linear_slot::w3}, ws.xn, {&ws.gate, &ws.up}, observer);
    detail::silu_mul(ws.gate, ws.up);  // silu(g) * u, computed in place in `gate`
    run({linear_slot::w2}, ws.gate, {&ws.proj}, observer);
    detail::add_in_place(x, ws.proj);
  }

  // Runs the layer on independent sequences (each [len_i, dim], causal from position 0):
  // outputs[i] = layer(inputs[i]). `outputs` may be `inputs` (computed in place).
  void forward_sequences(const std::vector<RowMatrixXf>& inputs, std::vector<RowMatrixXf>& outputs,
                         LinearInputObserver* observer = nullptr) const {
    std::vector<RowMatrixXf> result(inputs.size());
    ForwardWorkspace ws;
    for (std::size_t i = 0; i < inputs.size(); ++i) {
      const RowMatrixXf& in = inputs[i];
      if (in.rows() == 0 || in.cols() != c_.dim)
        lowbit::detail::fail("DecoderLayer::forward_sequences: sequence " + std::to_string(i) + " is [" +
                             std::to_string(in.rows()) + ", " + std::to_string(in.cols()) + "], expected [n > 0, " +
                             std::to_string(c_.dim) + "]");
      const int n = static_cast<int>(in.rows());
      if (n > c_.max_seq_len)
        lowbit::detail::fail("DecoderLayer::forward_sequences: sequence " + std::to_string(i) + " has " +
                             std::to_string(n) + " positions, more than max_seq_len " + std::to_string(c_.max_seq_len));
      KvCache cache(c_);  // fp32, grows only this layer's rows
      rope_table(c_, 0, n, ws.rope_cos, ws.rope_sin);
      result[i] = in;
      forward(result[i], 0, cache, ws, observer);
    }
    outputs = std::move(result);
  }

 private:
  // The layer must have the config's shape (w may be empty: a linear the factory loads itself).
  static std::unique_ptr<LinearLayer> make_linear(const LinearFactory& f, const std::string& name, const RowMatrixXf& w,
                                                  std::pair<std::int64_t, std::int64_t> shape) {
    auto layer = f(name, w);
    if (!layer || layer->out_features() != shape.first || layer->in_features() != shape.second)
      lowbit::detail::fail("LlamaModel: the linear factory returned no layer or a wrong shape for " + name);
    return layer;
  }

  // The linear layers of `slots`, which all read `in`, into `outs` (resized here), biases
  // added: the observer sees each input, then the products go to the pool together
  // (forward_together, model/linear_layer.hpp; q/k/v and gate/up in one hand-off each), with
  // the results of running them one by one. `outs` is spelled dependent (deferred_t) so that
  // the bias broadcast is checked where the layer runs, not where the class is defined.
  template <std::size_t N>
  void run(const linear_slot (&slots)[N], const RowMatrixXf& in, deferred_t<Deferred, RowMatrixXf>* const (&outs)[N],
           LinearInputObserver* observer) const {
    const LinearLayer* layers[N];
    for (std::size_t j = 0; j < N; ++j) {
      const int i = static_cast<int>(slots[j]);
      layers[j] = linears_[i].get();
      if (observer) observer->observe(names_[i], in);
      outs[j]->resize(in.rows(), layers[j]->out_features());
    }
    forward_into(layers, in, outs, std::make_index_sequence<N>{});
    for (std::size_t j = 0; j < N; ++j) {
      const int i = static_cast<int>(slots[j]);
      if (bias_[i].size() != 0) outs[j]->rowwise() += bias_[i].transpose();
    }
  }
  template <std::size_t N, std::size_t... J>
  static void forward_into(const LinearLayer* const (&layers)[N], const RowMatrixXf& in,
                           deferred_t<Deferred, RowMatrixXf>* const (&outs)[N], std::index_sequence<J...>) {
    const RowMatrixRef ys[N] = {RowMatrixRef(*outs[J])...};  // Eigen::Ref has no default constructor
    forward_together(layers, ys, N, in);
  }

  // Causal grouped-query attention of the n new queries (ws.q) over cache rows [0, p0+n).
  // Keys and values are read per kv head (dequantized once for the heads sharing it when the
  // cache is not fp32). The kv heads are split over the pool's threads (default_num_threads();
  // inline inside an outer parallel_for such as the perplexity's documents): each head writes
  // only its own columns of ws.attn and uses its own buffers, and runs exactly the same
  // arithmetic whichever thread takes it, so the result does not depend on the thread count.
  void attention(const KvCache& cache, int p0, int n, ForwardWorkspace& ws) const {
    const int len = p0 + n;
    ws.attn.resize(n, c_.q_dim());
    const int threads = std::max(1, std::min(lowbit::default_num_threads(), c_.n_kv_heads));
    // Tasks of contiguous kv heads; a short context's attention (QK^T and PV: 2 n len
    // head_dim multiply-adds a head) runs in fewer tasks, or inline (detail/threads.hpp).
    const std::int64_t macs = std::int64_t{2} * n * len * c_.head_dim() * c_.n_heads;
    const int max_tasks =
        static_cast<int>(lowbit::detail::tasks_for_work(macs, lowbit::detail::min_task_macs, threads, threads));
    const int per = (c_.n_kv_heads + max_tasks - 1) / max_tasks;
    const int tasks = (c_.n_kv_heads + per - 1) / per;
    if (static_cast<int>(ws.scores_per_task.size()) < tasks) ws.scores_per_task.resize(static_cast<std::size_t>(tasks));
    if (static_cast<int>(ws.kv_per_task.size()) < 3 * tasks) ws.kv_per_task.resize(static_cast<std::size_t>(3 * tasks));
    lowbit::parallel_for(tasks, threads, lowbit::executor(), [&](std::int64_t i) {
      const auto buf = [&](std::int64_t j) -> RowMatrixXf& { return ws.kv_per_task[static_cast<std::size_t>(j)]; };
      RowMatrixXf& scores = ws.scores_per_task[static_cast<std::size_t>(i)];
      const int g1 = std::min(c_.n_kv_heads, static_cast<int>(i + 1) * per);
      for (int g = static_cast<int>(i) * per; g < g1; ++g)
        attention_kv_head(cache, p0, n, g, scores, buf(3 * i), buf(3 * i + 1), buf(3 * i + 2), ws);
    });
  }

  // Queries per block of attention_kv_head: a block computes scores only for the keys its
  // last query sees (from its first query's window start), so a causal prefill computes
  // about half of QK^T and PV. A constant, not a tier's tile: which keys each query's row
  // spans, and so every sum, is the same on every tier.
  static constexpr int attention_block = 16;

  // The first key a query at position `visible - 1` sees (mistral's sliding window: keys j
  // with position - j < window).
  int first_key(int visible) const { return c_.sliding_window > 0 ? std::max(0, visible - c_.sliding_window) : 0; }

  // One kv head's query heads: per block of queries, scores = Q K^T over the block's keys,
  // each row's softmax over its own keys (zeros elsewhere in the block's span), then P V.
  // k_buf / v_buf: this task's buffers for a non-fp32 cache's decoded keys and values; kt its
  // keys transposed ([head_dim, len], the B operand of gemm_f32). The float steps run on the
  // dispatched tiers, with the same bits on each (model/detail/forward_ops.hpp).
  void attention_kv_head(const KvCache& cache, int p0, int n, int g, RowMatrixXf& scores, RowMatrixXf& k_buf,
                         RowMatrixXf& v_buf, RowMatrixXf& kt, ForwardWorkspace& ws) const {
    const int hd = c_.head_dim(), len = p0 + n, group = c_.n_heads / c_.n_kv_heads;
    const float scale = 1.0f / std::sqrt(static_cast<float>(hd));
    const KvHeadView K = cache.keys(index_, g, len, k_buf);
    const KvHeadView V = cache.values(index_, g, len, v_buf);
    kt.resize(hd, len);
    for (int j = 0; j < len; ++j) {
      const float* kj = K.data() + static_cast<std::ptrdiff_t>(j) * K.outerStride();
      for (int d = 0; d < hd; ++d) kt.data()[static_cast<std::ptrdiff_t>(d) * len + j] = kj[d];
    }
    scores.resize(attention_block, len);
    const std::ptrdiff_t q_ld = ws.q.cols(), out_ld = ws.attn.cols(), v_ld = V.outerStride();
    for (int h = g * group; h < (g + 1) * group; ++h)
      for (int t0 = 0; t0 < n; t0 += attention_block) {
        const int rows = std::min(attention_block, n - t0);
        const int lo = first_key(p0 + t0 + 1), hi = p0 + t0 + rows;  // the block's keys [lo, hi)
        float* s = scores.data();  // s[r * len + c]: query t0 + r, key lo + c
        detail::gemm_f32(rows, hi - lo, hd, ws.q.data() + t0 * q_ld + h * hd, q_ld, kt.data() + lo, len, s, len);
        for (int r = 0; r < rows; ++r) {
          const int visible = p0 + t0 + r + 1, first = first_key(visible);
          float* row = s + static_cast<std::ptrdiff_t>(r) * len;
          std::fill(row, row + (first - lo), 0.0f);
          detail::softmax_n(row + (first - lo), static_cast<std::size_t>(visible - first), scale);
          std::fill(row + (visible - lo), row + (hi - lo), 0.0f);
        }
        detail::gemm_f32(rows, hd, hi - lo, s, len, V.data() + lo * v_ld, v_ld, ws.attn.data() + t0 * out_ld + h * hd,
                         out_ld);
      }
  }

  LlamaConfig c_;
  int index_ = 0;
  weight_naming naming_ = weight_naming::meta;
  Eigen::VectorXf attention_norm_, ffn_norm_, q_norm_, k_norm_;
  Eigen::VectorXf bias_[kLinearSlots];
  std::string names_[kLinearSlots];
  std::unique_ptr<LinearLayer> linears_[kLinearSlots];
};

using DecoderLayer = BasicDecoderLayer<void>;

// The inputs of layer 0 for token sequences: their embedding rows, one [len, dim] matrix per
// sequence. Ids outside the vocabulary and empty sequences are errors.
template <class Deferred = void>  // see "Compile time" in docs/design.md
inline std::vector<RowMatrixXf> embed_sequences(const ModelSource& src, const std::vector<std::vector<int>>& sequences) {
  std::vector<RowMatrixXf> out(sequences.size());
  for (std::size_t i = 0; i < sequences.size(); ++i) {
    const auto& s = sequences[i];
    if (s.empty()) lowbit::detail::fail("embed_sequences: sequence " + std::to_string(i) + " is empty");
    for (int id : s)
      if (id < 0 || id >= src.config().vocab_size)
        lowbit::detail::fail("embed_sequences: token id " + std::to_string(id) + " in sequence " + std::to_string(i) +
                             " is outside the vocabulary [0, " + std::to_string(src.config().vocab_size) + ")");
    src.embed(s.data(), static_cast<int>(s.size()), out[i]);
  }
  return out;
}

}  // namespace lowbit::model
