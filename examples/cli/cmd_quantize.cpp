// `lowbit quantize IN -o OUT`: quantizes a safetensors checkpoint (one file, a sharded index
// or a directory) into a lowbit checkpoint of QuantizedLinear layers
// (docs/checkpoint-format.md), streaming: tensors are read one at a time from the
// memory-mapped input and appended to the output, so peak memory is about `--threads`
// tensors' working sets, not the model. Ends with a per-tensor table of bits/weight and error.
//
// With --calib TOKENS (Llama-architecture inputs), the fp32 model first runs over the
// calibration documents and records every linear layer's input statistics (incl. the GPTQ
// Hessian); each layer is then quantized by quantize_linear() with its own statistics, which
// is what GPTQ, smoothing and the recipes built on them need. That step loads the whole
// model (it is not streamed) and frees it before the streaming quantization starts; only
// the per-layer statistics (a dim x dim Hessian per layer) stay.
//
//   lowbit quantize model.safetensors -o model.int4.safetensors --weights int4 --group 128
//   lowbit quantize model/ -o out.safetensors --weights fp4 --group 32 --scale mx --lorc 8
//   lowbit quantize model.safetensors -o out.safetensors --recipe w4a8-fp --calib val.u16
#include <fmt/format.h>
#include <sys/stat.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <memory>
#include <map>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include "cli_common.hpp"
#include "lowbit/detail/threads.hpp"
#include "lowbit/io/checkpoint.hpp"
#include "lowbit/io/linear_checkpoint.hpp"
#include "lowbit/io/lorc_checkpoint.hpp"
#include "lowbit/io/sharded.hpp"
#include "lowbit/quant/metrics.hpp"
#include "lowbit/quant/quantizer.hpp"
#include "lowbit/version.hpp"
#include "registry.hpp"

namespace {

struct quantize_options {
  std::string input, output, json;
  lowbit_cli::scheme_flags scheme;
  lowbit_cli::calibration_flags calib;
  lowbit_cli::tensor_filter filter;
  int threads = 0;
  bool quiet = false;
};

struct tensor_result {
  std::string name;
  std::vector<std::int64_t> shape;
  bool quantized = false;
  double bits_per_weight = 0;  // codes + scales (+ LoRC factors)
  lowbit::ErrorStats err;      // of the layer's effective weight (W_hat + U V) diag(1/s)
  double output_sqnr_db = NAN;  // on recorded calibration rows, activations quantized (NaN: none)
  std::string warning;
  double seconds = 0;
  std::int64_t storage_bits = 0;
};

// Quantizes one tensor; the result and the layer to write stay in `job` until written.
struct job {
  const lowbit::TensorView* view = nullptr;
  bool quantize = false;
  const lowbit::TensorView* bias = nullptr;          // <base>.bias of the input, if any
  const lowbit::ActivationStats* stats = nullptr;  // calibration of this layer, if recorded
  lowbit::QuantizedLinear layer;
  tensor_result result;
};

double sqnr_db(const lowbit::RowMatrixXf& ref, const lowbit::RowMatrixXf& approx) {
  const double err = double((ref - approx).squaredNorm());
  return err == 0 ? INFINITY : 10.0 * std::log10(double(ref.squaredNorm()) / err);
}

void quantize_one(job& j, const lowbit::LinearRecipe& recipe) {
  const auto t0 = std::chrono::steady_clock::now();
  const lowbit::TensorView& v = *j.view;
  const lowbit::RowMatrixXf w = v.to_matrix();  // the one f32 copy of this tensor
  std::optional<Eigen::VectorXf> bias;
  if (j.bias) {
    const std::vector<float> b = j.bias->to_float_vector();
    bias = Eigen::Map<const Eigen::VectorXf>(b.data(), static_cast<Eigen::Index>(b.size()));
  }
  j.layer = lowbit::quantize_linear(w, bias ? &*bias : nullptr, recipe, j.stats, lowbit::checkpoint_base_name(v.name));
  j.result.err = lowbit::error_stats(w, lowbit_cli::effective_weight(j.layer));
  if (j.stats && j.stats->sample().rows() > 0) {
    const lowbit::RowMatrixXf& x = j.stats->sample();
    lowbit::RowMatrixXf y = x * w.transpose();
    if (bias) y.rowwise() += bias->transpose();
    j.result.output_sqnr_db = sqnr_db(y, j.layer(x));
  }
  j.result.warning = j.layer.warning;
  j.result.storage_bits = j.layer.weight.storage_bits() + (j.layer.lorc ? j.layer.lorc->storage_bits() : 0);
  j.result.bits_per_weight = static_cast<double>(j.result.storage_bits) / static_cast<double>(w.size());
  j.result.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
}

bool same_file(const std::string& a, const std::string& b) {
  struct stat sa {}, sb {};
  return ::stat(a.c_str(), &sa) == 0 && ::stat(b.c_str(), &sb) == 0 && sa.st_dev == sb.st_dev && sa.st_ino == sb.st_ino;
}

int run_quantize(const quantize_options& o) {
  const auto t_start = std::chrono::steady_clock::now();
  const lowbit_cli::resolved_scheme s = lowbit_cli::resolve(o.scheme, o.calib.enabled());
  if (o.threads < 0) lowbit::detail::fail("--threads must be >= 0");
  const int threads = o.threads > 0 ? o.threads : lowbit::default_num_threads();
  const auto model = lowbit::open_safetensors_model(o.input);
  for (const auto& shard : model.shards())
    if (same_file(shard->source(), o.output)) lowbit::detail::fail("the output '" + o.output + "' is an input file");
  // Calibration first (loads the model, runs it, keeps only the statistics).
  std::optional<lowbit_cli::calibration_data> calib;
  if (o.calib.enabled()) calib = lowbit_cli::record_calibration(o.input, o.calib, 512);
  // Biases of quantized layers become part of the layer (and are not copied on their own).
  std::map<std::string, const lowbit::TensorView*> bias_of;  // weight name -> bias tensor
  for (const auto* t : model.tensors()) {
    if (!o.filter.selects(*t)) continue;
    const lowbit::TensorView* b = model.find(lowbit::checkpoint_base_name(t->name) + ".bias");
    if (b && b->rank() == 1 && b->shape[0] == t->shape[0] &&
        (b->dtype == lowbit::tensor_dtype::f32 || b->dtype == lowbit::tensor_dtype::f16 ||
         b->dtype == lowbit::tensor_dtype::bf16 || b->dtype == lowbit::tensor_dtype::f64))
      bias_of[t->name] = b;
  }
  std::set<std::string> bias_names;
  for (const auto& [w, b] : bias_of) bias_names.insert(b->name);

  lowbit::SafetensorsWriterOptions wo;
  std::size_t input_header = 0;
  for (const auto& shard : model.shards()) input_header += shard->header_size();
  wo.header_reserve = 64 * 1024 + 4 * input_header + 512 * model.tensors().size();
  lowbit::SafetensorsWriter out(o.output, wo);
  for (const auto& [k, v] : model.metadata())
    if (k.rfind("lowbit.", 0) != 0 && k != "format") out.set_metadata(k, v);
  lowbit::begin_checkpoint(out);
  out.set_metadata("lowbit.producer", "lowbit " LOWBIT_VERSION_STRING " quantize");
  out.set_metadata("lowbit.scheme", s.label);
  if (s.recipe.activations)
    out.set_metadata("lowbit.activations", std::string(lowbit::to_string(s.recipe.activations->format)));
  if (calib) out.set_metadata("lowbit.calibration", calib->note);

  std::uint64_t total_bytes = 0, done_bytes = 0;
  for (const auto* t : model.tensors()) total_bytes += t->nbytes;
  lowbit_cli::progress_bar bar(total_bytes, o.quiet);
  std::vector<tensor_result> results;

  // Batches of up to `threads` tensors to quantize at once, written in input order.
  const auto& all = model.tensors();
  for (std::size_t next = 0; next < all.size();) {
    std::vector<job> batch;
    int quantizing = 0;
    while (next < all.size() && (quantizing < threads || !o.filter.selects(*all[next]))) {
      job j;
      j.view = all[next++];
      j.quantize = o.filter.selects(*j.view);
      if (j.quantize) {
        const auto b = bias_of.find(j.view->name);
        if (b != bias_of.end()) j.bias = b->second;
        if (calib) j.stats = calib->recorder.find(lowbit::checkpoint_base_name(j.view->name));
        if (!j.stats && s.recipe.needs_calibration())
          lowbit::detail::fail("tensor '" + j.view->name + "': no calibration statistics (the model's forward pass does not "
                               "use it as a linear layer); exclude it with --exclude or use a round-to-nearest scheme");
      }
      j.result.name = j.view->name;
      j.result.shape = j.view->shape;
      j.result.quantized = j.quantize;
      quantizing += j.quantize ? 1 : 0;
      batch.push_back(std::move(j));
      if (!batch.back().quantize && quantizing > 0) break;  // keep passthrough copies in order, batches small
    }
    std::vector<job*> work;
    for (auto& j : batch)
      if (j.quantize) work.push_back(&j);
    lowbit::parallel_for(static_cast<std::int64_t>(work.size()), threads, {},
                         [&](std::int64_t i) { quantize_one(*work[std::size_t(i)], s.recipe); });
    for (auto& j : batch) {
      if (j.quantize) {
        nlohmann::json extra = {{"sqnr_db", lowbit_cli::db_json(j.result.err.sqnr_db)}};
        if (j.stats) extra["calibration_tokens"] = j.stats->count();
        if (!std::isnan(j.result.output_sqnr_db))
          extra["output_sqnr_db"] = lowbit_cli::db_json(j.result.output_sqnr_db);
        lowbit::write_quantized_linear(out, j.view->name, j.layer, extra);
        j.layer = {};  // free the layer once written
      } else if (bias_names.count(j.view->name)) {
        // written with its layer
      } else {
        out.add(*j.view);
      }
      model.release(*j.view);
      done_bytes += j.view->nbytes;
      bar.update(done_bytes, j.view->name);
      if (!bias_names.count(j.view->name)) results.push_back(std::move(j.result));
    }
  }
  out.finish();
  bar.finish();

  // Report.
  std::int64_t q_bits = 0, q_weights = 0;
  double err2 = 0, ref2 = 0;
  for (const auto& r : results) {
    if (!r.quantized) continue;
    const std::int64_t n = r.shape[0] * r.shape[1];
    q_bits += r.storage_bits;
    q_weights += n;
    ref2 += r.err.mse * double(n) * std::pow(10.0, std::isfinite(r.err.sqnr_db) ? r.err.sqnr_db / 10.0 : 0.0);
    err2 += r.err.mse * double(n);
  }
  const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t_start).count();
  const auto out_file = lowbit::open_safetensors(o.output);
  if (o.json != "-") {
    // "out dB": output SQNR of the layer (activations quantized as the scheme says) on the
    // recorded calibration rows; only with --calib.
    fmt::print("{:<48} {:>14} {:>8} {:>10} {:>9} {:>8}\n", "tensor", "shape", "bits/w", "SQNR dB", "rel.err", "out dB");
    for (const auto& r : results) {
      if (r.quantized)
        fmt::print("{:<48} {:>14} {:>8.3f} {:>10} {:>9.5f} {:>8}{}\n", r.name, lowbit_cli::shape_text(r.shape),
                   r.bits_per_weight, lowbit_cli::db_text(r.err.sqnr_db), r.err.rel_fro,
                   std::isnan(r.output_sqnr_db) ? std::string("-") : lowbit_cli::db_text(r.output_sqnr_db),
                   r.warning.empty() ? std::string() : "  warning: " + r.warning);
      else
        fmt::print("{:<48} {:>14} {:>8} {:>10} {:>9} {:>8}\n", r.name, lowbit_cli::shape_text(r.shape), "kept", "-", "-", "-");
    }
    const std::size_t nq = static_cast<std::size_t>(std::count_if(results.begin(), results.end(), [](auto& r) { return r.quantized; }));
    fmt::print("\nscheme {}: {} of {} tensors quantized, {:.3f} bits/weight, weight SQNR {} dB\n", s.label, nq,
               results.size(), q_weights ? double(q_bits) / double(q_weights) : 0.0,
               lowbit_cli::db_text(err2 > 0 ? 10 * std::log10(ref2 / err2) : INFINITY));
    if (calib) fmt::print("calibration: {}\n", calib->note);
    fmt::print("{} ({}) -> {} ({}) in {:.2f} s\n", o.input, lowbit_cli::human_bytes(double(model.total_file_bytes())),
               o.output, lowbit_cli::human_bytes(double(out_file.file_size())), seconds);
  }
  if (!o.json.empty()) {
    nlohmann::json j;
    j["input"] = o.input;
    j["output"] = o.output;
    j["scheme"] = s.label;
    j["recipe"] = s.recipe.name;
    if (calib) j["calibration"] = calib->note;
    j["input_bytes"] = model.total_file_bytes();
    j["output_bytes"] = out_file.file_size();
    j["seconds"] = seconds;
    j["bits_per_weight"] = q_weights ? double(q_bits) / double(q_weights) : 0.0;
    j["weight_sqnr_db"] = lowbit_cli::db_json(err2 > 0 ? 10 * std::log10(ref2 / err2) : INFINITY);
    auto& arr = j["tensors"] = nlohmann::json::array();
    for (const auto& r : results) {
      nlohmann::json t = {{"name", r.name}, {"shape", r.shape}, {"quantized", r.quantized}};
      if (r.quantized) {
        t["bits_per_weight"] = r.bits_per_weight;
        t["sqnr_db"] = lowbit_cli::db_json(r.err.sqnr_db);
        t["rel_fro"] = r.err.rel_fro;
        t["max_abs"] = r.err.max_abs;
        if (!std::isnan(r.output_sqnr_db)) t["output_sqnr_db"] = lowbit_cli::db_json(r.output_sqnr_db);
        if (!r.warning.empty()) t["warning"] = r.warning;
        t["seconds"] = r.seconds;
      }
      arr.push_back(std::move(t));
    }
    lowbit_cli::write_json(o.json, j);
  }
  return 0;
}

lowbit_cli::registration quantize_registration{
    "quantize", "Quantize a safetensors checkpoint into a lowbit checkpoint (streaming, atomic)", 20,
    [](CLI::App& sub) -> lowbit_cli::run_fn {
      auto o = std::make_shared<quantize_options>();
      sub.add_option("IN", o->input, "Input: .safetensors file, model.safetensors.index.json, or a directory")->required();
      sub.add_option("-o,--output", o->output, "Output .safetensors file (written atomically)")->required();
      o->scheme.add_to(sub);
      o->calib.add_to(sub, "Calibration tokens (u16 ids): runs the fp32 model (Llama architecture) for --gptq, --smooth "
                           "and the recipes that need them");
      sub.add_option("--threads", o->threads, "Tensors quantized at once (default: hardware threads)");
      sub.add_option("--json", o->json, "Also write a JSON report to FILE ('-' = stdout instead of the table)");
      sub.add_flag("-q,--quiet", o->quiet, "No progress bar");
      sub.footer(
          "Quantized: rank-2 float tensors named *.weight, except names containing 'embed', 'norm' or "
          "'lm_head' and 'output.weight'; other tensors are copied unchanged. See docs/checkpoint-format.md.\n"
          "--calib loads the whole model once to record activation statistics (not streamed); the quantization "
          "and writing that follow stream tensor by tensor.");
      return [o] { return run_quantize(*o); };
    }};

}  // namespace
