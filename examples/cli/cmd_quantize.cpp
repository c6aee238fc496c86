// `lowbit quantize IN -o OUT`: quantizes a safetensors model (one file, a sharded index, or a
// Hugging Face model directory) into a lowbit checkpoint of QuantizedLinear layers
// (docs/checkpoint-format.md), streaming: tensors are read one at a time from the
// memory-mapped input and appended to the output, so peak memory is about `--threads`
// tensors' working sets, not the model. Ends with a per-tensor table of bits/weight and error.
//
// Output: a single .safetensors file, or (OUT ending in '/', an existing directory, or a
// directory input with OUT not ending in .safetensors) a directory of shards of at most
// --max-shard-size with model.safetensors.index.json, the input's config.json (with a
// "quantization_config" record) and tokenizer files. A single file keeps the input's
// config.json text in its metadata ("lowbit.config"), so it loads alone. Everything appears
// atomically at the end.
//
// With --calib FILE (.txt, .jsonl or .u16; see model/calibration_set.hpp) each linear layer
// is quantized with statistics of its own inputs (GPTQ Hessian, smoothing), recorded by running
// the fp32 model over --calib-samples documents of at most --calib-seq-len tokens
// (quantize_calibration.hpp).
//
//   lowbit quantize model.safetensors -o model.int4.safetensors --weights int4 --group 128
//   lowbit quantize Llama-3.2-1B/ -o out/ --recipe w4a16-int4 --calib wiki.txt --override 'down_proj=int8:channel'
//   lowbit quantize model.safetensors -o out.safetensors --recipe w4a8-fp --calib val.u16
//
// With --format gguf|compressed-tensors the checkpoint is exported in the same run (the code
// of `lowbit export`, export_formats.hpp): the export rules the recipe decides are checked first
// (lowbit::model::exportable), then quantized into a hidden temporary directory beside OUT,
// exported to OUT, the temporary removed (also on error or SIGINT/SIGTERM/SIGHUP).
//   lowbit quantize model/ -o model.q4_0.gguf --recipe gguf-q4_0 --format gguf
#include <fmt/format.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <csignal>
#include <fstream>
#include <map>
#include <memory>
#include <optional>
#include <set>
#include <sstream>
#include <string>
#include <vector>

#include "cli_common.hpp"
#include "export_formats.hpp"
#include "lowbit/threads.hpp"
#include "lowbit/io/checkpoint.hpp"
#include "lowbit/io/linear_checkpoint.hpp"
#include "lowbit/io/sharded.hpp"
#include "lowbit/io/sharded_writer.hpp"
#include "lowbit/model/norm_smoothing.hpp"
#include "lowbit/model/recipe_linear.hpp"
#include "lowbit/quant/metrics.hpp"
#include "lowbit/version.hpp"
#include "quantize_calibration.hpp"
#include "quantize_plan.hpp"
#include "registry.hpp"

namespace {

struct quantize_options {
  std::string input, output, json_out;
  bool json = false;
  lowbit_cli::scheme_flags scheme;
  lowbit_cli::quantize_calib_flags calib;
  std::string include, exclude, max_shard_size = "4GiB";
  std::vector<std::string> ignore, overrides;
  bool no_default_ignore = false, requantize = false;
  int threads = 0;
  bool quiet = false;
  std::string format;  // --format: export the checkpoint as this (empty: the lowbit checkpoint is the output)
  bool allow_lossy = false;  // --format: requantize what the format has no exact form for
  // Set by --format for the quantization step: the output is the temporary checkpoint
  // directory (receiving, like every output directory, the input's config.json and
  // tokenizer, which the exporters read from there); the summary names it so.
  bool staged = false;
  std::string export_output;  // staged: the final output (OUT), for the JSON report
};

struct tensor_result {
  std::string name;
  std::vector<std::int64_t> shape;
  bool quantized = false;
  std::string scheme;          // effective scheme label of a quantized layer
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
  lowbit::ActivationStats* consumable = nullptr;   // == stats when this job is its last reader
  const lowbit::LinearRecipe* recipe = nullptr;
  const lowbit::SmoothingResult* shared = nullptr;  // the smoothing its norm's readers share
  const lowbit_cli::scheme_override* override = nullptr;
  lowbit::QuantizedLinear layer;
  tensor_result result;
};

void quantize_one(job& j) {
  const auto t0 = std::chrono::steady_clock::now();
  const lowbit::TensorView& v = *j.view;
  const lowbit::RowMatrixXf w = v.to_matrix();  // the one f32 copy of this tensor
  std::optional<Eigen::VectorXf> bias;
  if (j.bias) {
    const std::vector<float> b = j.bias->to_float_vector();
    bias = Eigen::Map<const Eigen::VectorXf>(b.data(), static_cast<Eigen::Index>(b.size()));
  }
  j.layer = j.shared ? lowbit::quantize_linear_smoothed(w, bias ? &*bias : nullptr, *j.recipe, *j.shared, j.stats,
                                                       j.consumable, lowbit::checkpoint_base_name(v.name))
          : j.consumable ? lowbit::quantize_linear_consuming(w, bias ? &*bias : nullptr, *j.recipe, *j.consumable,
                                                             lowbit::checkpoint_base_name(v.name))
                         : lowbit::quantize_linear(w, bias ? &*bias : nullptr, *j.recipe, j.stats,
                                                   lowbit::checkpoint_base_name(v.name));
  j.result.err = lowbit::error_stats(w, lowbit_cli::effective_weight(j.layer));
  if (j.stats && j.stats->sample().rows() > 0) {
    const lowbit::RowMatrixXf& x = j.stats->sample();
    lowbit::RowMatrixXf y = x * w.transpose();
    if (bias) y.rowwise() += bias->transpose();
    j.result.output_sqnr_db = lowbit::error_stats(y, j.layer(x)).sqnr_db;
  }
  j.result.warning = j.layer.warning;
  j.result.storage_bits = j.layer.quantized_bits();
  j.result.bits_per_weight = j.layer.bits_per_weight();
  j.result.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
}

bool same_file(const std::string& a, const std::string& b) {
  struct stat sa {}, sb {};
  return ::stat(a.c_str(), &sa) == 0 && ::stat(b.c_str(), &sb) == 0 && sa.st_dev == sb.st_dev && sa.st_ino == sb.st_ino;
}
bool is_directory(const std::string& p) {
  struct stat st {};
  return ::stat(p.c_str(), &st) == 0 && S_ISDIR(st.st_mode);
}
std::optional<std::string> read_text_file(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return std::nullopt;
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

// The scheme of the flags and the tensor rules (--ignore/--include/--exclude/--override):
// what run_quantize quantizes, and what check_exportable checks before it does.
struct quantize_rules {
  lowbit_cli::resolved_scheme scheme;
  lowbit_cli::tensor_rules rules;
};
quantize_rules make_rules(const quantize_options& o) {
  quantize_rules r{lowbit_cli::resolve(o.scheme, o.calib.enabled()),
                   lowbit_cli::tensor_rules(o.ignore, !o.no_default_ignore, o.include, o.exclude)};
  for (const auto& arg : o.overrides) {
    r.rules.overrides.push_back(lowbit_cli::parse_override(arg, r.scheme));
    if (r.rules.overrides.back().recipe.needs_calibration() && !o.calib.enabled())
      lowbit_cli::fail("--override " + arg + " needs calibration (GPTQ or smoothing): give --calib FILE");
  }
  return r;
}

int run_quantize(const quantize_options& o) {
  const auto t_start = std::chrono::steady_clock::now();
  const quantize_rules qr = make_rules(o);
  const lowbit_cli::resolved_scheme& s = qr.scheme;
  const lowbit_cli::tensor_rules& rules = qr.rules;
  if (o.threads < 0) lowbit_cli::fail("--threads must be >= 0");
  const int threads = o.threads > 0 ? o.threads : lowbit::default_num_threads();
  const auto model = lowbit_cli::open_safetensors_input(o.input, "quantize");
  const bool input_dir = is_directory(o.input);
  const bool out_dir = lowbit_cli::ends_with(o.output, "/") || is_directory(o.output) ||
                       (input_dir && !lowbit_cli::ends_with(o.output, ".safetensors"));
  for (const auto& shard : model.shards())
    if (same_file(shard->source(), o.output)) lowbit_cli::fail("the output '" + o.output + "' is an input file");
  if (out_dir && same_file(o.output, lowbit_cli::parent_directory(model.shards()[0]->source())))
    lowbit_cli::fail("the output directory '" + o.output + "' is the input's directory");
  // Every output against every file read (index, shards, config.json, --calib), by inode, and
  // an unwritable --json-out found before anything is committed. A directory output is written
  // by the sharded writer, which refuses to replace anything but its own files.
  lowbit::check_outputs({out_dir ? std::string() : o.output, o.json_out},
                        lowbit_cli::model_input_files(model, {o.calib.file}));

  // A lowbit checkpoint is refused (quantizing quantized weights compounds the error and used
  // to write an empty checkpoint); --requantize dequantizes its layers first.
  lowbit_cli::dequantized_input deq;
  bool lowbit_input = false;
  for (const auto& shard : model.shards()) lowbit_input = lowbit_input || lowbit::is_lowbit_checkpoint(*shard);
  if (lowbit_input && !o.requantize)
    lowbit_cli::fail("'" + o.input + "' is a lowbit checkpoint (already quantized" +
                         (model.metadata().count("lowbit.scheme") ? ": " + model.metadata().at("lowbit.scheme") : std::string()) +
                         "); quantize the original model, or give --requantize to dequantize it first");
  if (lowbit_input) {
    deq = lowbit_cli::dequantize_checkpoint(model);
    fmt::print(stderr, "--requantize: '{}' is a lowbit checkpoint; dequantized its {} quantized layers to F32 first "
                       "(their quantization error carries over)\n", o.input, deq.layers);
  }
  const std::vector<const lowbit::TensorView*>& all = lowbit_input ? deq.order : model.tensors();
  const auto find = [&](const std::string& name) -> const lowbit::TensorView* {
    return lowbit_input ? deq.find(name) : model.find(name);
  };
  const auto quantizes = [&](const lowbit::TensorView& t) { return rules.quantizes(t.name, t.dtype, t.shape); };

  // Calibration: the model source and the calibration set; statistics come layer by layer.
  std::optional<lowbit_cli::quantize_calibration> calib;
  if (o.calib.enabled()) {
    if (lowbit_input) lowbit_cli::fail("--requantize with --calib is not supported: calibrate from the original model");
    calib = lowbit_cli::prepare_quantize_calibration(o.input, o.calib);
  }

  // Biases of quantized layers become part of the layer (and are not copied on their own).
  std::map<std::string, const lowbit::TensorView*> bias_of;  // weight name -> bias tensor
  for (const auto* t : all) {
    if (!quantizes(*t)) continue;
    const lowbit::TensorView* b = find(lowbit::checkpoint_base_name(t->name) + ".bias");
    if (b && b->rank() == 1 && b->shape[0] == t->shape[0] &&
        (b->dtype == lowbit::tensor_dtype::f32 || b->dtype == lowbit::tensor_dtype::f16 ||
         b->dtype == lowbit::tensor_dtype::bf16 || b->dtype == lowbit::tensor_dtype::f64))
      bias_of[t->name] = b;
  }
  std::set<std::string> bias_names;
  for (const auto& [w, b] : bias_of) bias_names.insert(b->name);

  // The quantization record: config.json's quantization_config and every shard's metadata.
  nlohmann::json record = {{"quant_method", "lowbit"},
                           {"format_version", std::to_string(lowbit::checkpoint_format_version)},
                           {"producer", "lowbit " LOWBIT_VERSION_STRING " quantize"},
                           {"scheme", s.label},
                           {"recipe", s.recipe.name},
                           {"ignore", rules.ignore}};
  record["overrides"] = nlohmann::json::array();
  for (const auto& ov : rules.overrides)
    record["overrides"].push_back({{"pattern", ov.pattern}, {"scheme", ov.scheme}, {"effective", ov.label}});
  if (!o.include.empty()) record["include"] = o.include;
  if (!o.exclude.empty()) record["exclude"] = o.exclude;
  record["calibration"] = calib ? calib->record : nlohmann::json(nullptr);
  if (lowbit_input) record["requantized_from"] = o.input;

  lowbit::ShardedWriterOptions wo;
  wo.directory = out_dir;
  wo.max_shard_bytes = lowbit_cli::parse_byte_size(o.max_shard_size, "--max-shard-size");
  wo.header_reserve = 64 * 1024 + 1024 * all.size();  // ~100 bytes per tensor, ~800 per layer entry
  lowbit::ShardedSafetensorsWriter out(o.output, wo);
  for (const auto& [k, v] : model.metadata())
    if (k.rfind("lowbit.", 0) != 0 && k != "format" && k != "total_size") out.set_metadata(k, v);
  out.set_metadata(lowbit::checkpoint_format_key, std::to_string(lowbit::checkpoint_format_version));
  out.set_metadata("format", "lowbit");
  out.set_metadata("lowbit.producer", "lowbit " LOWBIT_VERSION_STRING " quantize");
  out.set_metadata("lowbit.scheme", s.label);
  out.set_metadata("lowbit.quantization", record.dump());
  if (s.recipe.activations)
    out.set_metadata("lowbit.activations", std::string(lowbit::to_string(s.recipe.activations->format)));
  if (calib) out.set_metadata("lowbit.calibration", calib->note);
  // The files that make the output loadable on its own: the input's config.json (beside a
  // single-file input, or in an input directory) and tokenizer. A directory gets them as
  // files; a single file stores the config.json text in its metadata (checkpoint_config_key;
  // open_model reads it when no config.json is beside the file), and passes it on when
  // requantized.
  const std::string side = input_dir ? o.input : lowbit_cli::parent_directory(o.input);
  std::string cfg_source = side + "/config.json";
  std::optional<std::string> cfg = read_text_file(cfg_source);
  if (const auto it = model.metadata().find(lowbit::checkpoint_config_key); !cfg && it != model.metadata().end()) {
    cfg = it->second;  // --requantize of a single-file checkpoint
    cfg_source = o.input + " (metadata " + lowbit::checkpoint_config_key + ")";
  }
  if (cfg) {
    nlohmann::ordered_json c = nlohmann::ordered_json::parse(*cfg, nullptr, false);
    if (c.is_discarded() || !c.is_object()) lowbit_cli::fail(cfg_source + ": not a JSON object");
    if (out_dir) {
      c["quantization_config"] = nlohmann::ordered_json::parse(record.dump());
      out.add_file("config.json", c.dump(2) + "\n");
    } else {
      c.erase("quantization_config");  // the source's: this file's record is lowbit.quantization
      out.set_metadata(lowbit::checkpoint_config_key, c.dump());
    }
  }
  if (out_dir)
    for (const char* f : {"tokenizer.json", "tokenizer_config.json", "special_tokens_map.json", "generation_config.json",
                          "tok512.bin", "tokenizer.bin"})
      if (auto text = read_text_file(side + "/" + f)) out.add_file(f, *text);

  std::uint64_t total_bytes = 0, done_bytes = 0;
  for (const auto* t : all) total_bytes += t->nbytes;
  int n_layers = 0;
  for (const auto* t : all) n_layers = std::max(n_layers, lowbit_cli::layer_progress::layer_index(t->name) + 1);
  lowbit_cli::layer_progress progress(total_bytes, o.quiet, n_layers);
  std::vector<tensor_result> results;
  // Sequential calibration: each linear's place in its decoder layer decides its smoothing
  // (lowbit::model::recipe_at / share_norm_smoothing, model/norm_smoothing.hpp): the recipe it
  // runs and the vector it shares with the other readers of its norm, by layer name.
  struct slot_plan {
    lowbit::LinearRecipe recipe;
    std::optional<lowbit::SmoothingResult> shared;
  };
  std::map<std::string, slot_plan> plan;

  // Quantizes and writes `tensors`: batches of up to `threads` tensors at once, written in
  // order. `keep` (sequential calibration with quantized inputs) receives each quantized layer
  // without its bias (the decoder layer adds that) to run the layer again.
  const auto process = [&](const std::vector<const lowbit::TensorView*>& tensors,
                           std::map<std::string, lowbit::QuantizedLinear>* keep) {
    for (std::size_t next = 0; next < tensors.size();) {
      std::vector<job> batch;
      int quantizing = 0;
      while (next < tensors.size() && (quantizing < threads || !quantizes(*tensors[next]))) {
        job j;
        j.view = tensors[next++];
        j.quantize = quantizes(*j.view);
        j.result.name = j.view->name;
        j.result.shape = j.view->shape;
        j.result.quantized = j.quantize;
        if (j.quantize) {
          const auto b = bias_of.find(j.view->name);
          if (b != bias_of.end()) j.bias = b->second;
          j.override = rules.override_for(j.view->name);
          j.recipe = j.override ? &j.override->recipe : &s.recipe;
          if (const auto p = plan.find(lowbit::checkpoint_base_name(j.view->name)); p != plan.end()) {
            j.recipe = &p->second.recipe;
            if (p->second.shared) j.shared = &*p->second.shared;
          }
          j.result.scheme = j.override ? j.override->label : s.label;
          if (calib) {
            j.stats = calib->find(lowbit::checkpoint_base_name(j.view->name));
            // The last linear reading a layer input takes its Hessian instead of copying it
            // (peak memory: the n x n Hessian of down_proj). Linears sharing an input that are
            // quantized in the same batch both still hold it, so neither consumes it.
            lowbit::ActivationStats* c = calib->find_consumable(lowbit::checkpoint_base_name(j.view->name));
            if (c == j.stats) j.consumable = c;
          }
          if (!j.stats && j.recipe->needs_calibration())
            lowbit_cli::fail("tensor '" + j.view->name + "': no calibration statistics (the model's forward pass does not "
                                 "use it as a linear layer); keep it with --ignore or use a round-to-nearest scheme");
        }
        // A calibrated GPTQ job runs alone: it holds an n x n Hessian (268 MB for down_proj) and
        // already spreads over every thread inside gptq(), so batching it with others would
        // only multiply the memory peak by the thread count.
        const bool gptq_job = j.quantize && j.stats && j.recipe->method == lowbit::weight_method::gptq;
        if (gptq_job && quantizing > 0) {
          --next;  // starts the next batch instead
          break;
        }
        quantizing += j.quantize ? 1 : 0;
        batch.push_back(std::move(j));
        if (gptq_job) break;
        if (!batch.back().quantize && quantizing > 0) break;  // keep passthrough copies in order, batches small
      }
      std::vector<job*> work;
      for (auto& j : batch)
        if (j.quantize) work.push_back(&j);
      if (!work.empty()) progress.stage(work.front()->view->name, "quantizing", done_bytes);
      lowbit::parallel_for(static_cast<std::int64_t>(work.size()), threads, {},
                           [&](std::int64_t i) { quantize_one(*work[std::size_t(i)]); });
      for (auto& j : batch) {
        if (j.quantize) {
          nlohmann::json extra = {{"sqnr_db", lowbit_cli::db_json(j.result.err.sqnr_db)}, {"scheme", j.result.scheme}};
          if (j.override) extra["override"] = j.override->pattern;
          if (j.stats) extra["calibration_tokens"] = j.stats->count();
          if (!std::isnan(j.result.output_sqnr_db))
            extra["output_sqnr_db"] = lowbit_cli::db_json(j.result.output_sqnr_db);
          const std::uint64_t bytes = static_cast<std::uint64_t>(j.layer.storage_bits() / 8);
          lowbit::write_quantized_linear(out.writer(bytes), j.view->name, j.layer, extra);
          const std::string base = lowbit::checkpoint_base_name(j.view->name);
          if (calib && calib->layer) calib->layer->release(base);  // its statistics are done with
          if (keep) {
            j.layer.bias.reset();
            (*keep)[base] = std::move(j.layer);
          }
          j.layer = {};  // free the layer once written
        } else if (bias_names.count(j.view->name)) {
          // written with its layer
        } else {
          out.writer(j.view->nbytes).add(*j.view);
        }
        if (!lowbit_input) model.release(*j.view);
        done_bytes += j.view->nbytes;
        progress.update(done_bytes, j.view->name);
        if (!bias_names.count(j.view->name)) results.push_back(std::move(j.result));
      }
    }
  };

  if (!calib) {
    process(all, nullptr);
  } else {
    // Sequential calibration: each decoder layer's tensors are quantized (and written) right
    // after its inputs were recorded; everything else (embeddings, norms, the classifier) last.
    const lowbit::model::ModelSource& src = *calib->source;
    const int nl = src.config().n_layers;
    std::vector<std::vector<const lowbit::TensorView*>> by_layer(static_cast<std::size_t>(nl));
    std::vector<const lowbit::TensorView*> rest;
    for (const auto* t : all) {
      const int l = lowbit_cli::layer_progress::layer_index(t->name);
      (l >= 0 && l < nl ? by_layer[static_cast<std::size_t>(l)] : rest).push_back(t);
    }
    lowbit::model::SequentialCalibrationOptions so;
    so.stats.max_sample_rows = 512;  // recorded rows: output SQNR, activation-aware smoothing
    so.quantized_inputs = calib->quantized_inputs;
    const lowbit::TensorView* cls = find(src.classifier_name() + ".weight");
    so.classifier_stats = cls && quantizes(*cls);
    progress.set_layers(nl);
    calib->classifier = lowbit::model::calibrate_sequentially(
        src, calib->set.samples, so,
        [&](lowbit::model::CalibratedLayer& cl) {
          calib->layer = &cl.stats;
          // Smoothing by the layer's place: shared per norm, none on o_proj / down_proj.
          namespace lm = lowbit::model;
          const auto recipe_of = [&](lm::linear_slot slot) -> const lowbit::LinearRecipe* {
            const lowbit::TensorView* t = find(src.linear_name(cl.index, slot) + ".weight");
            if (!t || !quantizes(*t)) return nullptr;
            const lowbit_cli::scheme_override* ov = rules.override_for(t->name);
            return ov ? &ov->recipe : &s.recipe;
          };
          const lm::LayerSmoothing shared = lm::share_norm_smoothing(
              recipe_of, [&](lm::linear_slot slot) { return &cl.weights.matrix(slot); },
              [&](lm::linear_slot slot) { return cl.stats.find(src.linear_name(cl.index, slot)); },
              [&](lm::linear_slot slot) { return src.linear_name(cl.index, slot); });
          plan.clear();
          for (int k = 0; k < lm::kLinearSlots; ++k) {
            const auto slot = static_cast<lm::linear_slot>(k);
            if (const lowbit::LinearRecipe* r = recipe_of(slot))
              plan[src.linear_name(cl.index, slot)] = {lm::recipe_at(*r, slot), shared.shared[static_cast<std::size_t>(k)]};
          }
          // The jobs read each weight again from the memory map: the fp32 copies of the linears
          // quantized here are not needed any more (peak memory is during GPTQ).
          for (int k = 0; k < lowbit::model::kLinearSlots; ++k) {
            const auto slot = static_cast<lowbit::model::linear_slot>(k);
            const lowbit::TensorView* t = find(src.linear_name(cl.index, slot) + ".weight");
            if (t && quantizes(*t)) cl.weights.matrix(slot) = lowbit::RowMatrixXf();
          }
          std::map<std::string, lowbit::QuantizedLinear> keep;
          process(by_layer[static_cast<std::size_t>(cl.index)], so.quantized_inputs ? &keep : nullptr);
          calib->layer = nullptr;
          std::map<std::string, std::unique_ptr<lowbit::model::LinearLayer>> run;
          for (auto& [name, layer] : keep)
            run[name] = std::make_unique<lowbit::model::RecipeLinear>(std::move(layer), /*use_kernels=*/true);
          return run;
        },
        [&](int l, const char* stage) { progress.layer_stage(l, stage, double(l) / double(nl)); });
    process(rest, nullptr);
  }
  progress.stage("", "writing", done_bytes);
  out.finish();
  progress.finish();

  // Report.
  std::int64_t q_bits = 0, q_weights = 0;
  lowbit::SquaredErrorSums weight_sums;  // one SQNR over all quantized weights, from each layer's sums
  for (const auto& r : results) {
    if (!r.quantized) continue;
    const std::int64_t n = r.shape[0] * r.shape[1];
    q_bits += r.storage_bits;
    q_weights += n;
    weight_sums.add(r.err);
  }
  const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t_start).count();
  std::uint64_t out_bytes = 0;
  for (const auto& f : out.shard_files()) {
    struct stat st {};
    if (::stat((out_dir ? o.output + "/" + f : f).c_str(), &st) == 0) out_bytes += static_cast<std::uint64_t>(st.st_size);
  }
  if (!o.json) {
    // "out dB": output SQNR of the layer (activations quantized as the scheme says) on the
    // recorded calibration rows; only with --calib.
    fmt::print("{:<48} {:>14} {:>8} {:>10} {:>9} {:>8}\n", "tensor", "shape", "bits/w", "SQNR dB", "rel.err", "out dB");
    for (const auto& r : results) {
      if (r.quantized)
        fmt::print("{:<48} {:>14} {:>8.3f} {:>10} {:>9.5f} {:>8}{}{}\n", r.name, lowbit_cli::shape_text(r.shape),
                   r.bits_per_weight, lowbit_cli::db_text(r.err.sqnr_db), r.err.rel_fro,
                   std::isnan(r.output_sqnr_db) ? std::string("-") : lowbit_cli::db_text(r.output_sqnr_db),
                   r.scheme != s.label ? "  " + r.scheme : std::string(),
                   r.warning.empty() ? std::string() : "  warning: " + r.warning);
      else
        fmt::print("{:<48} {:>14} {:>8} {:>10} {:>9} {:>8}\n", r.name, lowbit_cli::shape_text(r.shape), "kept", "-", "-", "-");
    }
    const std::size_t nq = static_cast<std::size_t>(std::count_if(results.begin(), results.end(), [](auto& r) { return r.quantized; }));
    fmt::print("\nscheme {}: {} of {} tensors quantized, {:.3f} bits/weight, weight SQNR {} dB\n", s.label, nq,
               results.size(), q_weights ? double(q_bits) / double(q_weights) : 0.0,
               lowbit_cli::db_text(weight_sums.sqnr_db()));
    for (const auto& ov : rules.overrides) fmt::print("override {} = {}\n", ov.pattern, ov.label);
    if (calib) fmt::print("calibration: {}\n", calib->note);
    fmt::print("{} ({}) -> {} ({}{}) in {:.2f} s\n", o.input, lowbit_cli::human_bytes(double(model.total_file_bytes())),
               o.staged ? std::string("lowbit checkpoint") : o.output, lowbit_cli::human_bytes(double(out_bytes)),
               out_dir ? fmt::format(", {} shard{}", out.shard_files().size(), out.shard_files().size() == 1 ? "" : "s") : "",
               seconds);
  }
  if (o.json || !o.json_out.empty()) {
    nlohmann::json j;
    j["input"] = o.input;
    j["output"] = o.staged ? o.export_output : o.output;
    if (o.staged) j["format"] = o.format;
    j["scheme"] = s.label;
    j["recipe"] = s.recipe.name;
    j["quantization"] = record;
    if (calib) j["calibration"] = calib->note;
    j["input_bytes"] = model.total_file_bytes();
    j["output_bytes"] = out_bytes;
    j["output_files"] = out.shard_files();
    j["seconds"] = seconds;
    j["bits_per_weight"] = q_weights ? double(q_bits) / double(q_weights) : 0.0;
    j["weight_sqnr_db"] = lowbit_cli::db_json(weight_sums.sqnr_db());
    auto& arr = j["tensors"] = nlohmann::json::array();
    for (const auto& r : results) {
      nlohmann::json t = {{"name", r.name}, {"shape", r.shape}, {"quantized", r.quantized}};
      if (r.quantized) {
        t["scheme"] = r.scheme;
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
    if (o.json) lowbit_cli::write_json("-", j);
    if (!o.json_out.empty()) lowbit_cli::write_json(o.json_out, j);
  }
  return 0;
}

// SIGINT/SIGTERM/SIGHUP during `quantize --format`: every temporary this process has beside
// OUT (the checkpoint's scratch directory, the exporter's staging directory or file) is
// removed by the library's async-signal-safe lowbit::process_temporaries, then the signal
// kills the process as before. The library names, creates and removes the temporaries and
// clears those of killed processes on the next run; installing a handler is the program's call.
class remove_temporaries_on_signal {
 public:
  explicit remove_temporaries_on_signal(const lowbit::process_temporaries& t) {
    active_ = &t;
    for (int k = 0; k < 3; ++k) previous_[k] = std::signal(signals_[k], on_signal);
  }
  ~remove_temporaries_on_signal() {
    for (int k = 0; k < 3; ++k) std::signal(signals_[k], previous_[k]);
    active_ = nullptr;
  }
  remove_temporaries_on_signal(const remove_temporaries_on_signal&) = delete;
  remove_temporaries_on_signal& operator=(const remove_temporaries_on_signal&) = delete;

 private:
  static void on_signal(int sig) {
    if (const lowbit::process_temporaries* t = active_) t->remove();
    std::signal(sig, SIG_DFL);
    std::raise(sig);
  }
  static constexpr int signals_[3] = {SIGINT, SIGTERM, SIGHUP};
  void (*previous_[3])(int) = {};
  static inline const lowbit::process_temporaries* volatile active_ = nullptr;
};

// The refusals of the export step that the recipe decides, made before any work: the export
// rules (lowbit::model::exportable, model/exportable.hpp: the exporter's own rules and words)
// for the model's architecture and for every tensor quantize will quantize, as the recipe and
// --override will quantize it. What only the quantized data decides (GGUF: scales that are
// not fp16 values, with f32 scale storage; compressed-tensors: non-finite scales, and whether
// q/k/v or gate/up carry one smoothing vector to fold) is refused by the export step after
// quantizing, as before.
void check_exportable(const quantize_options& o, const lowbit::SafetensorsModel& model) {
  namespace lm = lowbit::model;
  const lm::export_format f = o.format == "gguf" ? lm::export_format::gguf : lm::export_format::compressed_tensors;
  const std::string who = o.input + ": " + (f == lm::export_format::gguf ? "GGUF" : "compressed-tensors") + " export: ";
  const quantize_rules r = make_rules(o);
  std::map<std::string, lm::linear_slot> slots;  // layer name -> place in its decoder layer
  std::vector<const lowbit::TensorView*> order;  // the exporter's order first: the same first refusal
  std::shared_ptr<const lm::ModelSource> src;
  try {
    src = lm::open_model(o.input);
  } catch (const lowbit::error&) {
    // Not a model the exporters read: quantize or the export step says so in its own words.
  }
  if (src) {
    if (const lm::Exportable e = lm::exportable(f, src->config()); !e) lowbit_cli::fail(who + e.reason);
    using S = lm::linear_slot;
    const std::vector<S> slot_order = f == lm::export_format::gguf
                                          ? std::vector<S>{S::wq, S::wk, S::wv, S::wo, S::w1, S::w3, S::w2}
                                          : std::vector<S>{S::wq, S::wk, S::wv, S::wo, S::w1, S::w2, S::w3};
    for (int l = 0; l < src->config().n_layers; ++l)
      for (S s : slot_order) {
        slots[src->linear_name(l, s)] = s;
        if (const lowbit::TensorView* t = model.find(src->linear_name(l, s) + ".weight")) order.push_back(t);
      }
  }
  for (const lowbit::TensorView* t : model.tensors())
    if (std::find(order.begin(), order.end(), t) == order.end()) order.push_back(t);
  if (o.allow_lossy) return;  // every layer exports (requantized where it must); the export step reports which
  for (const lowbit::TensorView* t : order) {
    if (!r.rules.quantizes(t->name, t->dtype, t->shape)) continue;
    const std::string base = t->name.substr(0, t->name.size() - 7);  // without ".weight"
    const lowbit_cli::scheme_override* ov = r.rules.override_for(t->name);
    const auto slot = slots.find(base);
    const lm::ExportLayer layer = lm::export_layer(base, ov ? ov->recipe : r.scheme.recipe, t->shape[0], t->shape[1],
                                                   model.find(base + ".bias") != nullptr,
                                                   slot == slots.end() ? std::nullopt : std::optional<lm::linear_slot>(slot->second));
    if (const lm::Exportable e = lm::exportable(f, layer); !e) lowbit_cli::fail(who + e.reason + " (refused before quantizing)");
  }
}

// `quantize --format X`: the checks of both steps first (format, output, input, and the
// export rules the recipe decides: a scheme with no exact form in X, e.g. NVFP4 in GGUF, is
// refused before quantizing), then the quantization into the scratch directory, then
// `lowbit export`'s code from it to OUT. A refusal only the data decides comes from the
// exporter after quantizing; nothing is written then (the exporter's output is atomic, the
// scratch directory removed).
int run_quantize_format(const quantize_options& given) {
  lowbit_cli::check_export_format(given.format, "quantize");
  // compressed-tensors folds smoothing into the norms: a smoothing scheme without an explicit
  // --smooth-scope shares one vector per norm there (w4a16-sqplus smooths per layer otherwise).
  quantize_options o = given;
  if (o.format == "compressed-tensors" && o.scheme.smooth_scope.empty() &&
      make_rules(o).scheme.recipe.smoothing != lowbit::smoothing_mode::none) {
    o.scheme.smooth_scope = "norm";
    if (!o.quiet) fmt::print(stderr, "--format compressed-tensors: smoothing vectors shared per norm (--smooth-scope norm)\n");
  }
  {
    const auto model = lowbit_cli::open_safetensors_input(o.input, "quantize");
    const auto inputs = lowbit_cli::model_input_files(model, {o.calib.file, o.input});
    for (const std::string& in : inputs)
      if (!in.empty() && same_file(in, o.output)) lowbit_cli::fail("the output '" + o.output + "' is an input ('" + in + "')");
    if (o.format == "gguf") {
      if (lowbit_cli::ends_with(o.output, "/") || is_directory(o.output))
        lowbit_cli::fail("--format gguf writes a file: '" + o.output + "' is a directory");
      lowbit::check_outputs({o.output, o.json_out}, inputs);  // writable, not an input, not the --json-out
    } else {
      struct stat st {};
      if (::stat(o.output.c_str(), &st) == 0 && !S_ISDIR(st.st_mode))
        lowbit_cli::fail("--format compressed-tensors writes a directory: '" + o.output + "' is a file");
      if (same_file(o.output, lowbit_cli::parent_directory(model.shards()[0]->source())))
        lowbit_cli::fail("the output directory '" + o.output + "' is the input's directory");
      lowbit::check_outputs({o.json_out}, inputs);
    }
    check_exportable(o, model);
  }
  // The checkpoint goes to a scratch directory beside OUT; the exporter writes OUT atomically
  // (compressed-tensors: a staging directory renamed into place, io/paths.hpp).
  const lowbit::process_temporaries temporaries(o.output);
  const remove_temporaries_on_signal on_signal(temporaries);
  const lowbit::temporary_directory scratch(o.output);
  quantize_options q = o;
  q.output = scratch.path() + "/checkpoint/";
  q.staged = true;
  q.export_output = o.output;
  run_quantize(q);
  lowbit_cli::export_request e;
  e.input = scratch.path() + "/checkpoint";
  e.output = o.output;
  e.shown_output = o.output;
  e.format = o.format;
  e.allow_lossy = o.allow_lossy;
  e.shown_input = "quantized " + o.input;
  if (o.format == "gguf") {  // general.name: the model's, not the temporary's
    std::string in = o.input;
    while (in.size() > 1 && in.back() == '/') in.pop_back();
    e.name = lowbit_cli::base_name(in);
  }
  e.summary = o.json ? stderr : stdout;  // --json: stdout holds the JSON report only
  // The summary line is printed after the rename: OUT exists when it says so.
  std::string line;
  e.summary_line = &line;
  lowbit_cli::run_export(e);
  fmt::print(e.summary, "{}", line);
  return 0;
}

lowbit_cli::registration quantize_registration{
    "quantize", "Quantize a safetensors model into a lowbit checkpoint (streaming, atomic)", 20,
    [](CLI::App& sub) -> lowbit_cli::run_fn {
      auto o = std::make_shared<quantize_options>();
      sub.add_option("IN", o->input, "Input: .safetensors file, model.safetensors.index.json, or a model directory")->required();
      sub.add_option("-o,--output", o->output,
                     "Output: a .safetensors file, or a directory (ends in '/', exists, or the input is a directory)")
          ->required();
      o->scheme.add_to(sub);
      o->calib.add_to(sub);
      sub.add_option("--include", o->include, "Quantize only eligible tensors whose name matches this regex");
      sub.add_option("--exclude", o->exclude, "Do not quantize tensors whose name matches this regex");
      sub.add_option("--ignore", o->ignore, "Keep tensors matching REGEX in their input dtype (repeatable; added to the defaults)")
          ->expected(1)
          ->multi_option_policy(CLI::MultiOptionPolicy::TakeAll);
      sub.add_flag("--no-default-ignore", o->no_default_ignore,
                   "Do not ignore embeddings, norms and the classifier (lm_head / output.weight) by default");
      sub.add_option("--override", o->overrides,
                     "REGEX=SCHEME: linear layers matching REGEX use SCHEME, a recipe name (whole recipe) or spec text "
                     "such as int8:channel (weights only); repeatable, first match wins")
          ->expected(1)
          ->multi_option_policy(CLI::MultiOptionPolicy::TakeAll);
      sub.add_option("--max-shard-size", o->max_shard_size, "Directory output: largest shard (e.g. 4GiB, 500MB)")->capture_default_str();
      sub.add_flag("--requantize", o->requantize, "Accept a lowbit checkpoint: dequantize its layers first, then quantize");
      sub.add_option("--threads", o->threads, "Tensors quantized at once (default: hardware threads)");
      sub.add_flag("--json", o->json, "Print a JSON report to stdout instead of the table");
      sub.add_option("--json-out", o->json_out, "Also write the JSON report to FILE");
      sub.add_flag("-q,--quiet", o->quiet, "No progress on stderr");
      sub.footer(
          "Quantized: rank-2 float tensors named *.weight not matched by an --ignore regex (defaults: embed, norm, "
          "lm_head, ^output\\.weight$); other tensors are copied unchanged. See docs/checkpoint-format.md. "
          "--format: a layer the format has no exact form for is refused before quantizing where the recipe decides it, "
          "by the export step after quantizing where only the data does; nothing is written (docs/interop.md).");
      sub.add_option("--format", o->format,
                     "Export in the same run: gguf (OUT a .gguf file) or compressed-tensors (OUT a directory), as "
                     "`lowbit export` writes it; the lowbit checkpoint is a temporary removed afterwards");
      sub.add_flag("--allow-lossy", o->allow_lossy,
                   "With --format: a layer the format has no exact form for is requantized (as `lowbit export "
                   "--allow-lossy` does, reporting the added error) instead of refused");
      return [o] {
        if (o->allow_lossy && o->format.empty()) lowbit_cli::fail("--allow-lossy applies to --format only");
        return o->format.empty() ? run_quantize(*o) : run_quantize_format(*o);
      };
    }};

}  // namespace
