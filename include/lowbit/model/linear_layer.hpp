#pragma once
// LinearLayer: one linear map y = x * W^T of the model ([tokens, in] -> [tokens, out]).
// The model only ever calls forward(), so a layer can be plain fp32, fake-quantized
// (dequantized weights, activations quantized and dequantized per token), or a packed
// quantized kernel, without the forward pass knowing which. Which one is built for each
// weight is decided in exactly one place: the LinearFactory handed to LlamaModel
// (model/quantized_layers.hpp has the factory for quantization schemes and recipes).
#include <algorithm>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <utility>

#include "lowbit/config.hpp"
#include "lowbit/threads.hpp"
#include "lowbit/kernels/wide16.hpp"

namespace lowbit::model {

class LinearLayer {
 public:
  virtual ~LinearLayer() = default;
  // y = x * W^T; x is [tokens, in_features()], y is [tokens, out_features()] (preallocated).
  virtual void forward(ConstRowMatrixRef x, RowMatrixRef y) const = 0;
  // forward() in two steps, for a caller that hands several layers' products to the pool at
  // once (forward_together below): the call prepared for x, whose tasks compute y when run,
  // the same values as forward(). nullptr (the default): the layer does not split; the caller
  // runs forward().
  virtual std::unique_ptr<SplitWork> begin(ConstRowMatrixRef /*x*/, RowMatrixRef /*y*/) const { return nullptr; }
  virtual std::int64_t in_features() const = 0;
  virtual std::int64_t out_features() const = 0;
  // Bits of weight storage (codes + scales + any side data), for bits/weight reports.
  virtual double storage_bits() const = 0;
  // A short description of what runs ("fp32", "fake-quant int4 g128 / int8 act", ...).
  virtual std::string describe() const = 0;
};

// Plain fp32 y = x * W^T through Eigen, over its own matrix or over fp32 weights that live
// elsewhere (a memory-mapped F32 tensor, kept alive by `owner`): no copy.
// Fp32Linear (the alias below) is a class template only so that its virtual forward() (an
// Eigen product) is compiled where one is built ("Compile time" in docs/design.md).
// Deferred is never named.
template <class Deferred>
class BasicFp32Linear final : public LinearLayer {
 public:
  explicit BasicFp32Linear(RowMatrixXf weight) : own_(std::move(weight)) {
    data_ = own_.data();
    rows_ = own_.rows();
    cols_ = own_.cols();
  }
  BasicFp32Linear(std::shared_ptr<const void> owner, const float* data, std::int64_t rows, std::int64_t cols)
      : owner_(std::move(owner)), data_(data), rows_(rows), cols_(cols) {}
  // Every product runs in fixed chunks of rows of W on the pool, so that neither an F32
  // classifier's decode read (a memory stream one core cannot saturate DRAM with) nor an fp32
  // model's prompt (one Eigen GEMM on one core before) is left to the calling thread. The
  // chunks depend on the token count only, never on the thread count, so neither do the
  // results: a decode step (<= fp32_few_tokens tokens) takes fp32_chunk_rows rows a chunk, a
  // prompt fp32_prompt_chunk_rows (wide enough that each chunk is an efficient Eigen GEMM).
  // A task gets at least lowbit::detail::min_task_macs weights times the number of decode-sized
  // token groups (detail/threads.hpp): smaller layers run inline.
  static constexpr std::int64_t fp32_few_tokens = 4, fp32_chunk_rows = 64, fp32_prompt_chunk_rows = 256;

  void forward(ConstRowMatrixRef x, RowMatrixRef y) const override { run_split_work(chunks(x, y)); }
  std::unique_ptr<SplitWork> begin(ConstRowMatrixRef x, RowMatrixRef y) const override {
    return std::make_unique<chunked>(chunks(x, y));
  }
  std::int64_t in_features() const override { return cols_; }
  std::int64_t out_features() const override { return rows_; }
  double storage_bits() const override { return 32.0 * static_cast<double>(rows_ * cols_); }
  std::string describe() const override { return "fp32"; }
  Eigen::Map<const RowMatrixXf> weight() const { return Eigen::Map<const RowMatrixXf>(data_, rows_, cols_); }

 private:
  // The product's row chunks of W (the rule above), run as tasks; x and y outlive them.
  struct chunked final : SplitWork {
    chunked(const BasicFp32Linear& l, ConstRowMatrixRef in, RowMatrixRef out) : layer(&l), x(in), y(out) {}
    const BasicFp32Linear* layer;
    ConstRowMatrixRef x;
    RowMatrixRef y;
    std::int64_t chunk_rows = 0, chunks = 0, per = 1, count = 0;
    std::int64_t tasks() const override { return count; }
    void run(std::int64_t i) const override {
      // Spelled dependent (deferred_t): the product is checked where a layer is built.
      const deferred_t<Deferred, ConstRowMatrixRef>& in = x;
      RowMatrixRef dst = y;
      deferred_t<Deferred, RowMatrixRef>& out = dst;
      for (std::int64_t c = i * per; c < std::min(chunks, (i + 1) * per); ++c) {
        const std::int64_t r0 = c * chunk_rows, len = std::min(chunk_rows, layer->rows_ - r0);
        out.middleCols(r0, len).noalias() = in * layer->weight().middleRows(r0, len).transpose();
      }
    }
  };
  chunked chunks(ConstRowMatrixRef x, RowMatrixRef y) const {
    check_shapes(x, y);
    chunked c(*this, x, y);
    const std::int64_t tokens = x.rows();
    c.chunk_rows = tokens > fp32_few_tokens ? fp32_prompt_chunk_rows : fp32_chunk_rows;
    c.chunks = (rows_ + c.chunk_rows - 1) / c.chunk_rows;
    const std::int64_t work = rows_ * cols_ * ((tokens + fp32_few_tokens - 1) / fp32_few_tokens);
    const int threads = default_num_threads();
    const std::int64_t tasks =
        threads <= 1 ? 1
                     : lowbit::detail::tasks_for_work(work, lowbit::detail::min_task_macs,
                                                      std::min<std::int64_t>(threads, c.chunks), threads);
    c.per = (c.chunks + tasks - 1) / tasks;
    c.count = tokens == 0 ? 0 : (c.chunks + c.per - 1) / c.per;
    return c;
  }
  void check_shapes(ConstRowMatrixRef x, RowMatrixRef y) const {
    if (x.cols() != cols_ || y.cols() != rows_ || y.rows() != x.rows())
      lowbit::detail::fail("Fp32Linear: shape mismatch: x [" + std::to_string(x.rows()) + ", " +
                   std::to_string(x.cols()) + "], W [" + std::to_string(rows_) +
                   ", " + std::to_string(cols_) + "], y [" + std::to_string(y.rows()) +
                   ", " + std::to_string(y.cols()) + "]");
  }
  RowMatrixXf own_;
  std::shared_ptr<const void> owner_;
  const float* data_ = nullptr;
  std::int64_t rows_ = 0, cols_ = 0;
};

using Fp32Linear = BasicFp32Linear<void>;

// y = x * W^T over a BF16 or F16 matrix that lives elsewhere (a memory-mapped tensor, kept
// alive by `owner`), as stored: widened to fp32 in registers (kernels/wide16.hpp), threaded
// over output rows on the pool with default_num_threads(). The products are those of the
// fp32 copy (widening is exact); only the summation order differs from Fp32Linear.
// A class template (the alias below) for the same reason as Fp32Linear.
template <class Deferred>
class BasicWide16Linear final : public LinearLayer {
 public:
  BasicWide16Linear(std::shared_ptr<const void> owner, const Wide16View& w) : owner_(std::move(owner)), w_(w) {
    if (w_.data == nullptr || w_.rows <= 0 || w_.cols <= 0) lowbit::detail::fail("Wide16Linear: no weights");
  }
  void forward(ConstRowMatrixRef x, RowMatrixRef y) const override { wide16_gemm(x, w_, y); }
  std::unique_ptr<SplitWork> begin(ConstRowMatrixRef x, RowMatrixRef y) const override {
    return std::make_unique<deferred_t<Deferred, Wide16Call>>(x, w_, y, 0, wide16_tier());
  }
  std::int64_t in_features() const override { return w_.cols; }
  std::int64_t out_features() const override { return w_.rows; }
  double storage_bits() const override { return 16.0 * static_cast<double>(w_.rows * w_.cols); }
  std::string describe() const override { return std::string(to_string(w_.type)) + " (widened to fp32 in registers)"; }
  const Wide16View& view() const { return w_; }

 private:
  std::shared_ptr<const void> owner_;
  Wide16View w_;
};

using Wide16Linear = BasicWide16Linear<void>;

// y[i] = x * W_i^T for layers[i], i < count, on one input x (each y[i] preallocated): the
// layers that split (LinearLayer::begin) hand their tasks to the pool together, one
// hand-off and one wait for all (a decode step's q, k and v are three small products,
// 0.5-2 MiB each on the 1B shape, each shorter than a few waits); the others run forward()
// first, each on the pool as usual. The results are those of calling forward() on each.
inline void forward_together(const LinearLayer* const* layers, RowMatrixRef const* ys, std::size_t count,
                             ConstRowMatrixRef x) {
  constexpr std::size_t most = 8;
  if (count > most) lowbit::detail::fail("forward_together: at most 8 layers, got " + std::to_string(count));
  std::unique_ptr<SplitWork> calls[most];
  const SplitWork* works[most] = {};
  for (std::size_t i = 0; i < count; ++i) {
    calls[i] = layers[i]->begin(x, ys[i]);
    if (calls[i])
      works[i] = calls[i].get();
    else
      layers[i]->forward(x, ys[i]);
  }
  run_split_work(works, count);
}

// Builds the layer for the weight called `name` (Meta naming without ".weight", for
// example "layers.0.attention.wq" or "output" for the classifier).
using LinearFactory =
    std::function<std::unique_ptr<LinearLayer>(const std::string& name, const RowMatrixXf& weight)>;

template <class Deferred = void>  // see "Compile time" in docs/design.md
LinearFactory fp32_linear_factory() {
  return [](const std::string&, const RowMatrixXf& w) -> std::unique_ptr<LinearLayer> {
    return std::make_unique<Fp32Linear>(w);
  };
}

}  // namespace lowbit::model
