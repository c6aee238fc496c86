#pragma once
// The hot entry point: pack quantized weights once, then y = x * W_hat^T (+ terms) per call.
//
//   lowbit::PackedWeights w = lowbit::pack(q);            // layout of the kernel for this CPU
//   lowbit::gemm(x, w, y);                                 // x [tokens, K] fp32 -> y [tokens, N]
//   lowbit::selected_kernel(w);                            // "w4a8_int4_g128_avx512vnni"
//
// gemm() runs: the optional smoothing prologue (x / s per input channel), the family's
// prepare (per-token activation quantization, once), the kernel over ranges of output
// columns on the thread pool, then, for the same columns, bias and the LoRC term
// (x * V_hat^T) * U_hat^T (computed from the same, smoothed, fp32 x).
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <variant>

#include "lowbit/config.hpp"
#include "lowbit/detail/aligned_buffer.hpp"
#include "lowbit/threads.hpp"
#include "lowbit/dispatch/cpu_features.hpp"
#include "lowbit/dispatch/select.hpp"
#include "lowbit/kernels/float_family.hpp"
#include "lowbit/kernels/int_family.hpp"
#include "lowbit/kernels/kernel.hpp"
#include "lowbit/kernels/registry.hpp"
#include "lowbit/pack/int_packing.hpp"
#include "lowbit/quant/activation.hpp"
#include "lowbit/quant/quantized_matrix.hpp"

namespace lowbit {

struct PackOptions {
  activation_quant activations = activation_quant::automatic;
  std::optional<gemm_scheme> scheme;  // force a scheme (an error if it cannot run the weights)
  std::optional<isa_tier> tier;       // force a tier this CPU runs (default: selected_isa_tier())
  std::optional<isa_subtier> subtier; // force a sub-tier (e.g. avx512bw: VPMADDUBSW on a VNNI CPU;
                                      // amx); see detail::resolve_subtier
  // Kernels that multiply in bf16 (the float schemes' bf16 tiles: AMX-BF16, and VDPBF16PS on
  // AVX512-BF16 CPUs where it pays, e.g. AMD Zen 4/5) round fp32 and fp16 activations to bf16,
  // one pass, instead of splitting them into two bf16 parts (on AVX512-BF16, instead of the
  // fp32 kernel): faster, but each product then errs by up to 2^-8 relative,
  // |y - y_ref| <= (2^-8 + 2e-5) * sum|x||w_hat| instead of the float family's 2e-5
  // (kernels/float_layout.hpp). Other kernels ignore it.
  bool bf16_activations = false;
};

struct GemmOptions {
  const Eigen::VectorXf* bias = nullptr;       // [N], added to y
  const RowMatrixXf* lorc_u = nullptr;         // U_hat [N x r]
  const RowMatrixXf* lorc_v = nullptr;         // V_hat [r x K]; both or neither
  const Eigen::VectorXf* smoothing = nullptr;  // s [K]: x is used as x / s (per input channel)
  int num_threads = 0;                         // 0: default_num_threads()
  executor exec;                               // the caller's threads, instead of the pool
};

class PackedWeights;
namespace detail {
template <class Deferred = void>  // see "Compile time" in docs/design.md
PackedWeights pack_codes(const QuantizedMatrix& q, const std::uint8_t* codes, const PackOptions& options);
}

// Packed weights: the layout of one kernel record (kernels/registry.hpp) and a pointer to
// that record, whose functions gemm() runs. Copies are deep.
class PackedWeights {
 public:
  PackedWeights() = default;
  gemm_scheme scheme() const noexcept { return header().scheme; }
  isa_tier tier() const noexcept { return header().tier; }
  // The sub-tier it was packed for (the float family runs its tier's code on every sub-tier).
  isa_subtier subtier() const noexcept { return header().subtier; }
  std::int64_t rows() const noexcept { return header().rows; }  // N (outputs)
  std::int64_t cols() const noexcept { return header().cols; }  // K (inputs)
  bool empty() const noexcept { return kernel_ == nullptr || rows() == 0; }
  // Bytes of the packed weights, scales included (what one gemm call streams).
  std::size_t bytes() const noexcept { return kernel_ ? kernel_->ops->bytes(header()) : 0; }
  std::string_view kernel_name() const noexcept { return name_; }

  // Internals for gemm(), the kernels and tests: the record that runs these weights (nullptr
  // when empty), its packed layout, and the layout as the family's struct.
  const detail::kernel_record* kernel() const noexcept { return kernel_; }
  const detail::packed_header& header() const noexcept {
    if (const auto* p = std::get_if<detail::int_packed>(&packed_)) return *p;
    if (const auto* f = std::get_if<detail::float_packed>(&packed_)) return *f;
    static const detail::packed_header none{};
    return none;
  }
  bool is_float_family() const noexcept { return std::holds_alternative<detail::float_packed>(packed_); }
  const detail::int_packed& int_weights() const { return family_weights<detail::int_packed>(); }
  detail::int_packed& int_weights_mutable() {  // tests: forge a layout field
    if (auto* p = std::get_if<detail::int_packed>(&packed_)) return *p;
    detail::fail("PackedWeights: the weights were not packed for the integer kernels");
  }
  const detail::float_packed& float_weights() const { return family_weights<detail::float_packed>(); }
  detail::float_packed& float_weights_mutable() {  // tests: forge a layout field
    if (auto* p = std::get_if<detail::float_packed>(&packed_)) return *p;
    detail::fail("PackedWeights: the weights were not packed for the float kernels");
  }
  // Output columns that one task's range must be a multiple of.
  std::int64_t column_granule() const noexcept { return kernel_ ? kernel_->col_block : 1; }

 private:
  template <class Deferred>
  friend PackedWeights detail::pack_codes(const QuantizedMatrix& q, const std::uint8_t* codes, const PackOptions& options);
  template <class Layout>
  const Layout& family_weights() const {
    if (const Layout* p = std::get_if<Layout>(&packed_)) return *p;
    detail::fail(kernel_ ? "PackedWeights: the weights were packed for the other kernel family"
                         : "PackedWeights: the packed weights are empty");
  }
  const detail::kernel_record* kernel_ = nullptr;
  detail::packed_layout packed_;
  std::string name_;
};

namespace detail {

// The scheme pack() builds for `q` under `options` (see activation_quant).
inline gemm_scheme choose_scheme(const QuantizedMatrix& q, const PackOptions& options) {
  if (options.scheme) return *options.scheme;
  const element_format f = q.spec.format;
  switch (options.activations) {
    case activation_quant::int8: {
      const std::optional<gemm_scheme> s = choose_int_scheme(q);
      if (!s) fail("pack: int8 activations need symmetric int8 or int4 weights, got " + describe_weights(q));
      return *s;
    }
    case activation_quant::float8_e4m3fn: return choose_float_scheme(q.spec, act_format::float8_e4m3fn);
    case activation_quant::none: return choose_float_scheme(q.spec, std::nullopt);
    case activation_quant::automatic: break;
  }
  if (const std::optional<gemm_scheme> s = choose_int_scheme(q)) return *s;
  if (f == element_format::float8_e4m3fn || f == element_format::float4_e2m1fn)
    return choose_float_scheme(q.spec, act_format::float8_e4m3fn);
  if (f == element_format::int4) return choose_float_scheme(q.spec, std::nullopt);  // asymmetric int4
  fail("pack: no kernel runs " + describe_weights(q) +
       " weights (kernels exist for int8, int4, float8_e4m3fn and float4_e2m1fn)");
}

}  // namespace detail

namespace detail {
// pack() of `q` with its codes at `codes` (rows * row_stride bytes, checked by the caller)
// instead of q.codes: a checkpoint's loader packs straight from the memory-mapped file.
template <class Deferred>
PackedWeights pack_codes(const QuantizedMatrix& q, const std::uint8_t* codes, const PackOptions& options) {
  const isa_subtier subtier = detail::resolve_subtier(options.tier, options.subtier);
  const gemm_scheme scheme = detail::choose_scheme(q, options);
  const kernel_record& kernel = select_kernel<Deferred>(scheme, subtier, host_cpu_features());
  PackedWeights w;
  w.packed_ = kernel.ops->pack(q, kernel, subtier, codes);
  // The option reaches the weights whose calls can run the bf16 tiles (AMX-BF16, or VDPBF16PS).
  if (auto* f = std::get_if<float_packed>(&w.packed_))
    f->bf16_round_activations = options.bf16_activations && (f->amx_bf16 || (f->tier == isa_tier::avx512 &&
                                                                              host_cpu_features().avx512bf16));
  w.kernel_ = &kernel;
  w.name_ = kernel.ops->name(w.header(), activation_dtype::f32);
  return w;
}
}  // namespace detail

template <class Deferred = void>  // see "Compile time" in docs/design.md
PackedWeights pack(const QuantizedMatrix& q, const PackOptions& options = {}) {
  return detail::pack_codes(q, nullptr, options);
}

inline std::string_view selected_kernel(const PackedWeights& w) noexcept { return w.kernel_name(); }

// The kernel that runs more than 4 tokens of `input` activations (fp16/bf16 activations
// switch W4A16 weights to the AVX512-FP16 kernel where the CPU has it).
inline std::string selected_kernel(const PackedWeights& w, activation_dtype input) {
  if (w.kernel() == nullptr) return std::string(w.kernel_name());
  return w.kernel()->ops->name(w.header(), input);
}

namespace detail {

inline void check_gemm_shapes(std::int64_t m, std::int64_t k, const PackedWeights& w, const RowMatrixRef& y,
                              const GemmOptions& o) {
  if (w.empty()) fail("gemm: the packed weights are empty (default-constructed)");
  if (k != w.cols())
    fail("gemm: x has " + std::to_string(k) + " columns but the weights have K = " + std::to_string(w.cols()));
  if (y.rows() != m || y.cols() != w.rows())
    fail("gemm: y is " + std::to_string(y.rows()) + " x " + std::to_string(y.cols()) + ", expected " +
         std::to_string(m) + " x " + std::to_string(w.rows()));
  if (o.bias && o.bias->size() != w.rows())
    fail("gemm: bias has " + std::to_string(o.bias->size()) + " values, expected N = " + std::to_string(w.rows()));
  if (o.smoothing && o.smoothing->size() != k)
    fail("gemm: smoothing vector has " + std::to_string(o.smoothing->size()) + " values, expected K = " +
         std::to_string(k));
  if ((o.lorc_u == nullptr) != (o.lorc_v == nullptr)) fail("gemm: LoRC needs both lorc_u and lorc_v");
  if (o.lorc_u) {
    if (o.lorc_u->rows() != w.rows() || o.lorc_v->cols() != k || o.lorc_u->cols() != o.lorc_v->rows())
      fail("gemm: LoRC factors are U " + std::to_string(o.lorc_u->rows()) + " x " + std::to_string(o.lorc_u->cols()) +
           " and V " + std::to_string(o.lorc_v->rows()) + " x " + std::to_string(o.lorc_v->cols()) +
           ", expected U N x r and V r x K");
  }
}

// Runs prepare(t0, t1) over token ranges on the pool: the per-token activation work is
// O(tokens * K), small next to the product but serial otherwise (with 2 threads, 5% of a
// call's time is 10% of its wall time). Few tokens, or few elements (detail/threads.hpp),
// run inline.
template <class PrepareTokens>
void prepare_tokens_parallel(std::int64_t m, std::int64_t k, const GemmOptions& o, PrepareTokens&& prepare) {
  const int threads = o.num_threads > 0 ? o.num_threads : default_num_threads();
  constexpr std::int64_t min_tokens_per_task = 8;
  const std::int64_t tasks =
      (threads <= 1 && !o.exec)
          ? 1
          : tasks_for_work(m * k, min_task_elements, std::min<std::int64_t>(threads, m / min_tokens_per_task), threads);
  if (tasks == 1) {
    prepare(std::int64_t{0}, m);
    return;
  }
  const std::int64_t per = (m + tasks - 1) / tasks;
  parallel_for(tasks, threads, o.exec, [&](std::int64_t i) {
    const std::int64_t t0 = i * per, t1 = std::min(m, t0 + per);
    if (t0 < t1) prepare(t0, t1);
  });
}

}  // namespace detail

template <class Deferred>
class BasicGemmCall;
// A gemm call prepared and split into its tasks (see BasicGemmCall below).
using GemmCall = BasicGemmCall<void>;

namespace detail {
// Builds GemmCalls for the prepare_gemm() overloads (the constructor is theirs only).
struct gemm_call_builder;
}  // namespace detail

// gemm() in two steps, for callers that hand several products to the pool at once
// (run_split_work, threads.hpp; a decode step's q, k and v share one hand-off:
// model/decoder_layer.hpp). prepare_gemm() checks the shapes and prepares what the tasks read,
// as gemm() does: the smoothing prologue, the activations as the kernel takes them
// (per-token quantization, once) and the LoRC term's x V_hat^T. Each task then computes one
// chunk of output columns (the kernel, then bias and LoRC for those columns), so the tasks
// give gemm()'s bits whichever threads run them. The call holds what it read of x; w, y and
// the options' bias and LoRC factors must outlive it. gemm() is prepare_gemm() followed by
// run_split_work() on the options' threads.
// A class template (the alias above) so that run()'s Eigen code is compiled where a call is
// made ("Compile time" in docs/design.md). Deferred is never named.
template <class Deferred>
class BasicGemmCall final : public SplitWork {
 public:
  BasicGemmCall() = default;  // no tasks
  std::int64_t tasks() const override { return tasks_; }
  void run(std::int64_t task) const override {
    const std::int64_t n0 = task * per_ * granule_, n1 = std::min(w_->rows(), (task + 1) * per_ * granule_);
    Eigen::Map<RowMatrixXf, 0, Eigen::OuterStride<>> ymap(y_, m_, w_->rows(), Eigen::OuterStride<>(y_stride_));
    RowMatrixRef y(ymap);
    w_->kernel()->run(w_->header(), detail::workspace_of(ws_), y, n0, n1);
    auto block = y.block(0, n0, m_, n1 - n0);
    if (bias_) block.rowwise() += bias_->segment(n0, n1 - n0).transpose();
    if (lorc_u_) block.noalias() += lorc_t_ * lorc_u_->middleRows(n0, n1 - n0).transpose();
  }

 private:
  friend struct detail::gemm_call_builder;
  const PackedWeights* w_ = nullptr;
  float* y_ = nullptr;
  std::int64_t m_ = 0, y_stride_ = 0;
  const Eigen::VectorXf* bias_ = nullptr;
  const RowMatrixXf* lorc_u_ = nullptr;
  RowMatrixXf lorc_t_;  // x V_hat^T [tokens, r] (with lorc_u_)
  detail::gemm_workspace ws_;
  std::int64_t tasks_ = 0, per_ = 0, granule_ = 1;  // tasks of per_ column tiles of granule_
};

namespace detail {

struct gemm_call_builder {
  // The call's column chunks: few per thread, enough to balance, few enough that each streams
  // whole tiles; a product too small to pay for a hand-off (detail/threads.hpp) gets fewer,
  // or one. `lorc_t`: x V_hat^T when o has LoRC factors.
  static GemmCall make(const PackedWeights& w, std::int64_t m, RowMatrixRef y, const GemmOptions& o,
                       gemm_workspace ws, RowMatrixXf lorc_t) {
    GemmCall c;
    c.w_ = &w;
    c.y_ = y.data();
    c.m_ = m;
    c.y_stride_ = y.outerStride();
    c.bias_ = o.bias;
    c.lorc_u_ = o.lorc_u;
    c.lorc_t_ = std::move(lorc_t);
    c.ws_ = std::move(ws);
    c.granule_ = w.column_granule();
    const std::int64_t tiles = (w.rows() + c.granule_ - 1) / c.granule_;
    const int threads = o.num_threads > 0 ? o.num_threads : default_num_threads();
    const std::int64_t most = std::min<std::int64_t>(tiles, 4 * std::max(threads, 1));
    const std::int64_t chunks =
        (threads <= 1 && !o.exec) ? 1 : tasks_for_work(m * w.rows() * w.cols(), min_task_macs, most, threads);
    c.per_ = (tiles + chunks - 1) / chunks;
    c.tasks_ = m == 0 ? 0 : (tiles + c.per_ - 1) / c.per_;
    return c;
  }
};

}  // namespace detail

// gemm()'s first step (GemmCall above): x [tokens, K] fp32.
template <class Deferred = void>  // see "Compile time" in docs/design.md
GemmCall prepare_gemm(ConstRowMatrixRef x, const PackedWeights& w, RowMatrixRef y, const GemmOptions& o = {}) {
  detail::check_gemm_shapes(x.rows(), x.cols(), w, y, o);
  if (x.rows() == 0) return GemmCall();
  RowMatrixXf smoothed;
  if (o.smoothing) {
    for (std::int64_t j = 0; j < x.cols(); ++j)
      if (!((*o.smoothing)[j] > 0.0f) || !std::isfinite((*o.smoothing)[j]))
        detail::fail("gemm: smoothing factor " + std::to_string(j) + " must be finite and > 0");
    smoothed = x.array().rowwise() / o.smoothing->transpose().array();
  }
  const ConstRowMatrixRef xs = o.smoothing ? ConstRowMatrixRef(smoothed) : x;
  RowMatrixXf lorc_t;
  if (o.lorc_v) lorc_t.noalias() = xs * o.lorc_v->transpose();
  // The packed weights' record: its checks once per call, then its prepare.
  const detail::kernel_record& kernel = *w.kernel();
  kernel.ops->check(w.header(), kernel);
  detail::gemm_workspace ws = kernel.ops->make_workspace(w.header(), xs.rows(), xs.cols(), activation_dtype::f32);
  detail::workspace_header& wsh = detail::workspace_of(ws);
  detail::prepare_tokens_parallel(xs.rows(), xs.cols(), o, [&](std::int64_t t0, std::int64_t t1) {
    kernel.ops->prepare_tokens(w.header(), xs, wsh, t0, t1);
  });
  return detail::gemm_call_builder::make(w, x.rows(), y, o, std::move(ws), std::move(lorc_t));
}

// y = x * W_hat^T (+ bias, + LoRC); x [tokens, K] fp32, y [tokens, N] (any outer stride).
// fp16/bf16 activations: the overloads below.
template <class Deferred = void>  // see "Compile time" in docs/design.md
void gemm(ConstRowMatrixRef x, const PackedWeights& w, RowMatrixRef y, const GemmOptions& o = {}) {
  run_split_work(prepare_gemm(x, w, y, o), o.num_threads, o.exec);
}

namespace detail {

// fp16/bf16 activations widened to fp32 (exact), over token ranges on the pool; a
// non-finite value is an error, as on the AVX512-FP16 path, so that the answer does not
// depend on which path runs.
template <class Half>
RowMatrixXf widen_activations(const Eigen::Ref<const Eigen::Matrix<Half, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>,
                                                0, Eigen::OuterStride<>>& x,
                              const GemmOptions& o) {
  RowMatrixXf xf(x.rows(), x.cols());
  prepare_tokens_parallel(x.rows(), x.cols(), o, [&](std::int64_t t0, std::int64_t t1) {
    auto dst = xf.middleRows(t0, t1 - t0);
    dst = x.middleRows(t0, t1 - t0).template cast<float>();
    if (!dst.allFinite())
      for (std::int64_t t = t0; t < t1; ++t)
        for (Eigen::Index k = 0; k < xf.cols(); ++k)
          if (!std::isfinite(xf(t, k)))
            fail("activations: non-finite value at token " + std::to_string(t) + ", column " + std::to_string(k));
  });
  return xf;
}

template <class Half>
GemmCall prepare_gemm_16bit(const Eigen::Ref<const Eigen::Matrix<Half, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>,
                                             0, Eigen::OuterStride<>>& x,
                            activation_dtype input, const PackedWeights& w, RowMatrixRef y, const GemmOptions& o) {
  check_gemm_shapes(x.rows(), x.cols(), w, y, o);
  if (x.rows() == 0) return GemmCall();
  // The record's family says whether its kernel reads 16-bit rows as they are for this call;
  // otherwise, and always with smoothing (which divides x in fp32), x is widened to fp32.
  const kernel_record& kernel = *w.kernel();
  if (o.smoothing || !kernel.ops->reads_16bit(w.header(), x.rows(), input))
    return lowbit::prepare_gemm(widen_activations<Half>(x, o), w, y, o);
  kernel.ops->check(w.header(), kernel);
  gemm_workspace ws = kernel.ops->make_workspace(w.header(), x.rows(), x.cols(), input);
  workspace_header& wsh = workspace_of(ws);
  prepare_tokens_parallel(x.rows(), x.cols(), o, [&](std::int64_t t0, std::int64_t t1) {
    kernel.ops->prepare_16bit_tokens(w.header(), reinterpret_cast<const std::uint16_t*>(x.data()), x.outerStride(),
                                     input, wsh, t0, t1);
  });
  RowMatrixXf lorc_t;
  if (o.lorc_v) lorc_t.noalias() = x.template cast<float>() * o.lorc_v->transpose();
  return gemm_call_builder::make(w, x.rows(), y, o, std::move(ws), std::move(lorc_t));
}

// x rounded to bf16 bits, row after row into `out` ([rows][cols]): to nearest even, the bits
// Eigen's cast to Eigen::bfloat16 gives for every finite value (an overflow becomes Inf), a
// NaN stays a NaN (gemm refuses both), in a loop the compiler vectorizes. Eigen's cast is a
// scalar call per element: 6% of a 1B model's bf16 prefill on Zen 5.
inline void round_rows_to_bf16(ConstRowMatrixRef x, std::uint16_t* out) noexcept {
  const Eigen::Index cols = x.cols();
  for (Eigen::Index t = 0; t < x.rows(); ++t) {
    const float* row = x.data() + t * x.outerStride();
    std::uint16_t* o = out + t * cols;
    for (Eigen::Index k = 0; k < cols; ++k) {
      std::uint32_t u;
      std::memcpy(&u, row + k, 4);
      const std::uint32_t rounded = (u + 0x7FFFu + ((u >> 16) & 1u)) >> 16;
      const bool nan = (u & 0x7FFFFFFFu) > 0x7F800000u;  // rounding could carry it into the sign
      o[k] = static_cast<std::uint16_t>(nan ? (u >> 16) | 0x40u : rounded);
    }
  }
}

// x rounded to bf16 (round_rows_to_bf16 above) in a block recycled per thread (no page faults
// per call): the operand of gemm's bf16 overloads for a layer that rounds an fp32 x
// (QuantizedLinear::input, model::PackedLinear), one home for both.
class bf16_rows {
 public:
  explicit bf16_rows(ConstRowMatrixRef x) : rows_(x.rows()), cols_(x.cols()) {
    bits_.resize_uninitialized(static_cast<std::size_t>(rows_ * cols_));
    round_rows_to_bf16(x, bits_.data());
  }
  Eigen::Map<const RowMatrixXbf16> view() const {
    return Eigen::Map<const RowMatrixXbf16>(reinterpret_cast<const Eigen::bfloat16*>(bits_.data()), rows_, cols_);
  }

 private:
  Eigen::Index rows_, cols_;
  aligned_buffer<std::uint16_t> bits_;
};
}  // namespace detail

// gemm()'s first step with fp16 or bf16 activations [tokens, K] (the overloads below).
template <class Deferred = void>  // see "Compile time" in docs/design.md
GemmCall prepare_gemm(ConstRowMatrixHRef x, const PackedWeights& w, RowMatrixRef y, const GemmOptions& o = {}) {
  return detail::prepare_gemm_16bit<Eigen::half>(x, activation_dtype::f16, w, y, o);
}
template <class Deferred = void>  // see "Compile time" in docs/design.md
GemmCall prepare_gemm(ConstRowMatrixBf16Ref x, const PackedWeights& w, RowMatrixRef y, const GemmOptions& o = {}) {
  return detail::prepare_gemm_16bit<Eigen::bfloat16>(x, activation_dtype::bf16, w, y, o);
}

// The same with fp16 or bf16 activations [tokens, K]. W4A16 weights run them on the
// AVX512-FP16 kernel where the CPU has it and the call has more than 4 tokens (fp16
// arithmetic in short runs, fp32 across them: the tolerance is in
// kernels/x86/avx512fp16_float.hpp); weight-only schemes on AMX-BF16 tiles read them as they
// are (kernels/x86/amx_float.hpp); every other case widens x to fp32 (exactly) and runs the
// fp32 gemm above. Non-finite activations are an error.
template <class Deferred = void>  // see "Compile time" in docs/design.md
void gemm(ConstRowMatrixHRef x, const PackedWeights& w, RowMatrixRef y, const GemmOptions& o = {}) {
  run_split_work(prepare_gemm(x, w, y, o), o.num_threads, o.exec);
}
template <class Deferred = void>  // see "Compile time" in docs/design.md
void gemm(ConstRowMatrixBf16Ref x, const PackedWeights& w, RowMatrixRef y, const GemmOptions& o = {}) {
  run_split_work(prepare_gemm(x, w, y, o), o.num_threads, o.exec);
}

namespace detail {

// gemm on int8 activations quantized elsewhere: codes m x k row-major, one scale per token.
template <class Deferred = void>  // see "Compile time" in docs/design.md
void gemm_int8_codes(const std::int8_t* codes, std::int64_t m, std::int64_t k, const float* scales,
                            const PackedWeights& w, RowMatrixRef y, const GemmOptions& o) {
  check_gemm_shapes(m, k, w, y, o);
  if (!is_int_activation_scheme(w.scheme()))
    fail("gemm: int8 activations given, but the weights were packed for " + std::string(to_string(w.scheme())));
  if (o.smoothing) fail("gemm: apply smoothing before quantizing the activations");
  if (m == 0) return;
  const kernel_record& kernel = *w.kernel();
  kernel.ops->check(w.header(), kernel);
  gemm_workspace ws = prepare_int_quantized(w.int_weights(), codes, m, k, scales);
  RowMatrixXf lorc_t;
  if (o.lorc_v) {
    RowMatrixXf xd(m, k);
    for (std::int64_t t = 0; t < m; ++t)
      for (std::int64_t c = 0; c < k; ++c) xd(t, c) = static_cast<float>(codes[t * k + c]) * scales[t];
    lorc_t.noalias() = xd * o.lorc_v->transpose();
  }
  run_split_work(gemm_call_builder::make(w, m, y, o, std::move(ws), std::move(lorc_t)), o.num_threads, o.exec);
}

}  // namespace detail

// The same with activations quantized elsewhere (per-token int8: codes in [-127, 127] and one
// scale per token). LoRC uses the dequantized activations codes * scale; smoothing must
// already be applied.
template <class Deferred = void>  // see "Compile time" in docs/design.md
void gemm(const RowMatrixXi8& x_codes, const Eigen::VectorXf& x_scales, const PackedWeights& w,
                 RowMatrixRef y, const GemmOptions& o = {}) {
  if (x_scales.size() != x_codes.rows())
    detail::fail("gemm: " + std::to_string(x_scales.size()) + " activation scales for " +
                 std::to_string(x_codes.rows()) + " tokens");
  detail::gemm_int8_codes(x_codes.data(), x_codes.rows(), x_codes.cols(), x_scales.data(), w, y, o);
}

// The same with the result of quantize_activations(x, act_format::int8) (one scale per token).
template <class Deferred = void>  // see "Compile time" in docs/design.md
void gemm(const QuantizedActivations& xq, const PackedWeights& w, RowMatrixRef y, const GemmOptions& o = {}) {
  if (xq.format != act_format::int8)
    detail::fail("gemm: pre-quantized activations must be int8 (the float kernels quantize E4M3 themselves)");
  if (xq.groups_per_row != 1)
    detail::fail("gemm: pre-quantized activations need one scale per token, got " + std::to_string(xq.groups_per_row) +
                 " groups per row");
  if (static_cast<std::int64_t>(xq.codes.size()) != xq.rows * xq.cols ||
      static_cast<std::int64_t>(xq.scales.size()) != xq.rows)
    detail::fail("gemm: pre-quantized activations: codes/scales sizes do not match rows x cols");
  detail::gemm_int8_codes(reinterpret_cast<const std::int8_t*>(xq.codes.data()), xq.rows, xq.cols, xq.scales.data(), w,
                          y, o);
}

}  // namespace lowbit
