#pragma once
// export_compressed_tensors(in, out_dir): a lowbit checkpoint (file or output directory; an
// unquantized model too) as a compressed-tensors Hugging Face directory, the form
// llm-compressor writes and vLLM reads: model.safetensors, config.json with a
// `quantization_config`, tokenizer.json copied. docs/interop.md has the mapping; the rules:
//
//  - Exact or refused. Each stored quantized layer becomes the format its scheme maps to
//    (model/ct_format.hpp: FP8 E4M3 -> float-quantized, int8 -> int-quantized, int4 ->
//    pack-quantized, NVFP4 -> nvfp4-pack-quantized, MXFP4 -> mxfp4-pack-quantized) so that the reader's
//    (x_q - zero_point) * scale equals lowbit's dequantize() bit for bit. Layers with no exact
//    form are refused naming the layer and the feature (LoRC factors, a smoothing vector that
//    cannot fold, MX scales other than MXFP4, FP6/E5M2 elements, groups that do not tile the row, biases on
//    quantized layers), and nothing is written. The rules are model/exportable.hpp's:
//    exportable() gives the same answer before anything is quantized (what only the data
//    decides, non-finite scales and whether q/k/v share one smoothing vector, is refused here).
//  - SmoothQuant(+) vectors fold into the preceding RMSNorm: q/k/v read input_layernorm,
//    gate/up read post_attention_layernorm, so gamma becomes gamma / s when every layer reading
//    that norm carries the same s (bit for bit). o_proj and down_proj read no norm (the
//    attention output, the SwiGLU product): a smoothing vector there is refused. The folded
//    model computes norm(x) * (gamma / s) where lowbit computes (norm(x) * gamma) / s: the
//    weights are exact, the activations agree to rounding.
//  - Names are Hugging Face module names (model.layers.N.self_attn.q_proj ...). A Meta-order
//    source (llama2.c, Meta safetensors: RoPE on interleaved pairs) has its q/k rows permuted
//    into Hugging Face's rotate-half order within each head; a row permutation of per-row or
//    per-group quantized data is exact.
//  - Float tensors (embeddings, norms, unquantized linears) are written F32 (exact for F32,
//    F16 and BF16 sources).
//  - Activations: dynamic per-token int8 / FP8 become `input_activations`; weight-only layers
//    have none.
//  - Written atomically: a new (or empty) output directory is built as a hidden temporary
//    beside it and renamed into place when complete (atomic_output_directory, io/paths.hpp),
//    so an error leaves no OUT and no temporary; into a directory that already holds files,
//    each file is written atomically, the config.json last. The output directory must not be
//    the input's.
#include <sys/stat.h>

#include <algorithm>
#include <cerrno>
#include <iterator>
#include <cstring>
#include <map>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "lowbit/algo/recipes.hpp"
#include "lowbit/algo/smoothquant.hpp"
#include "lowbit/io/detail/atomic_file.hpp"
#include "lowbit/io/linear_checkpoint.hpp"
#include "lowbit/io/paths.hpp"
#include "lowbit/io/safetensors_writer.hpp"
#include "lowbit/model/ct_format.hpp"
#include "lowbit/model/export_lossy.hpp"
#include "lowbit/model/exportable.hpp"
#include "lowbit/model/norm_smoothing.hpp"
#include "lowbit/model/gguf_export.hpp"
#include "lowbit/model/load.hpp"

namespace lowbit::model {

struct CtExportReport {
  std::map<std::string, int> layers_by_format;  // "pack-quantized" -> count
  int float_linears = 0;                        // linear layers written unquantized
  int folded_norms = 0;                         // norms that took a smoothing vector
  bool permuted_qk = false;                     // q/k rows reordered (Meta -> HF order)
  bool tokenizer = false;
  std::vector<std::string> warnings;
  std::vector<LossyLayer> lossy;                // layers written requantized (allow_lossy)
};

struct CtExportOptions {
  // A layer with no exact compressed-tensors form (LoRC, smoothing that cannot fold, MX
  // scales on FP8, FP6, groups that do not tile the row, ...) is written requantized from its
  // effective weight (detail::ct_lossy_spec) and reported in CtExportReport::lossy, instead of
  // refusing (model/export_lossy.hpp). What requantizing cannot fix (a bias on a quantized
  // layer, per-group activations, the architecture) is still refused.
  bool allow_lossy = false;
};

namespace detail {

// Rows of a quantized matrix reordered: row r of the result is row perm[r].
inline void ct_permute_rows(QuantizedMatrix& q, const std::vector<std::int64_t>& perm) {
  auto permute = [&](auto& v, std::size_t per_row) {
    if (v.empty()) return;
    auto src = v;
    for (std::size_t r = 0; r < perm.size(); ++r)
      std::copy_n(src.begin() + static_cast<std::ptrdiff_t>(static_cast<std::size_t>(perm[r]) * per_row), per_row,
                  v.begin() + static_cast<std::ptrdiff_t>(r * per_row));
  };
  const auto G = static_cast<std::size_t>(q.groups_per_row);
  permute(q.codes, static_cast<std::size_t>(q.row_stride));
  if (q.scales.size() == static_cast<std::size_t>(q.rows) * G) permute(q.scales, G);
  if (q.zeros.size() == static_cast<std::size_t>(q.rows) * G) permute(q.zeros, G);
  if (q.scale_codes.size() == static_cast<std::size_t>(q.rows) * G) permute(q.scale_codes, G);
  if (q.shifts.size() == static_cast<std::size_t>(q.rows) * G) permute(q.shifts, G);
  if (q.row_scales.size() == static_cast<std::size_t>(q.rows)) permute(q.row_scales, 1);
}

inline void ct_write_text(const std::string& path, const std::string& text) {
  lowbit::detail::atomic_output_file f(path);
  f.write_at(text.data(), text.size(), 0);
  f.commit();
}

// config.json for a Meta-named source (llama2.c, Meta safetensors): a Hugging Face llama.
inline nlohmann::json ct_hf_config(const LlamaConfig& c, const std::string& who) {
  if (c.rope_scaling.type != rope_scaling_type::none) lowbit::detail::fail(who + "rope scaling of a Meta-named model is not exported");
  nlohmann::json j = {{"architectures", {"LlamaForCausalLM"}},
                      {"model_type", "llama"},
                      {"hidden_size", c.dim},
                      {"intermediate_size", c.hidden_dim},
                      {"num_hidden_layers", c.n_layers},
                      {"num_attention_heads", c.n_heads},
                      {"num_key_value_heads", c.n_kv_heads},
                      {"head_dim", c.head_dim()},
                      {"vocab_size", c.vocab_size},
                      {"max_position_embeddings", c.rope_context()},
                      {"rms_norm_eps", c.norm_eps},
                      {"rope_theta", c.rope_theta},
                      {"tie_word_embeddings", c.tied_classifier},
                      {"hidden_act", "silu"},
                      {"torch_dtype", "float32"}};
  if (!c.bos_ids.empty()) j["bos_token_id"] = c.bos_ids.front();
  if (!c.eos_ids.empty()) j["eos_token_id"] = c.eos_ids.front();
  return j;
}

}  // namespace detail

namespace detail {
template <class Deferred = void>
CtExportReport ct_export_into(const ModelSource& src, const std::string& in,
                                     const std::string& out_dir, const std::string& tok, const std::optional<ConfigText>& src_config,
                                     const std::vector<std::string>& inputs, const CtExportOptions& opt);

// --allow-lossy's target for a layer of scheme `src` with rows of `cols`: the format of the
// same kind and width that writes any weight exactly: FP8 E4M3 per channel (float-quantized)
// for 8-bit floats, NVFP4 for 4-bit floats (rows of whole 16s), symmetric int4 group 128
// (per channel when 128 does not divide the row; pack-quantized) for other widths up to 5
// bits, symmetric int8 per channel (int-quantized) otherwise.
inline QuantSpec ct_lossy_spec(const QuantSpec& src, std::int64_t cols) {
  const int bits = element_bits(src.format);
  if (src.format == element_format::float8_e4m3fn || src.format == element_format::float8_e5m2)
    return recipe_from_name("w8a8-fp8").weight;
  if (src.format == element_format::float4_e2m1fn && cols % 16 == 0) return recipe_from_name("nvfp4").weight;
  if (bits <= 5) {
    QuantSpec q = recipe_from_name("w4a16-int4").weight;  // int4 symmetric, group 128
    if (cols % 128 != 0) q.gran = granularity::per_channel;
    return q;
  }
  QuantSpec q = recipe_from_name("w8a8-int8").weight;  // int8 symmetric per channel
  return q;
}
}  // namespace detail

template <class Deferred = void>  // see "Compile time" in docs/design.md
CtExportReport export_compressed_tensors(const std::string& in, const std::string& out_dir,
                                         const CtExportOptions& opt = {}) {
  const auto src = open_model(in);
  const std::string who = in + ": compressed-tensors export: ";
  auto refuse = [&](const std::string& what) -> void { lowbit::detail::fail(who + what); };
  if (dynamic_cast<const GgufSource*>(src.get()) != nullptr) refuse("the input is a GGUF file (export reads lowbit checkpoints)");
  if (dynamic_cast<const CompressedTensorsSource*>(src.get()) != nullptr) refuse("the input is compressed-tensors already");
  const LlamaConfig& c = src->config();
  // The rules (model and layer) live in model/exportable.hpp: exportable() answers with them.
  if (const Exportable e = exportable(export_format::compressed_tensors, c); !e) refuse(e.reason);

  // Inputs, outputs: the directory is created when missing, never the input's.
  std::vector<std::string> inputs{in};
  const auto* st = dynamic_cast<const SafetensorsSource*>(src.get());
  if (st != nullptr)
    for (const auto& sh : st->tensors().shards()) inputs.push_back(sh->source());
  const std::string in_dir = detail::is_directory(in) ? in : detail::directory_of(in);
  std::string tok = src->tokenizer_path();
  if (tok.empty() && detail::file_exists(in_dir + "/tokenizer.json")) tok = in_dir + "/tokenizer.json";
  // The source's config.json: beside it, or the copy a single-file lowbit checkpoint stores.
  const std::optional<detail::ConfigText> src_config =
      st != nullptr ? detail::model_config_text(st->tensors(), in_dir, in) : std::nullopt;
  inputs.push_back(in_dir + "/config.json");
  if (!tok.empty()) inputs.push_back(tok);
  struct stat out_st {};
  if (::stat(out_dir.c_str(), &out_st) == 0 && !S_ISDIR(out_st.st_mode)) refuse("the output '" + out_dir + "' is not a directory");
  // A new (or empty) output directory is built under a hidden name beside it and renamed into
  // place at the end: a refusal, an error or a kill never leaves a partial OUT (io/paths.hpp).
  // One that holds files already is written into, file by file (each file atomic).
  atomic_output_directory dir(out_dir);
  CtExportReport rep = detail::ct_export_into(*src, in, dir.path(), tok, src_config, inputs, opt);
  dir.commit();
  return rep;
}

namespace detail {

template <class Deferred>
CtExportReport ct_export_into(const ModelSource& srcref, const std::string& in,
                                     const std::string& out_dir, const std::string& tok, const std::optional<ConfigText>& src_config,
                                     const std::vector<std::string>& inputs, const CtExportOptions& opt) {
  const ModelSource* src = &srcref;
  const std::string who = in + ": compressed-tensors export: ";
  auto refuse = [&](const std::string& what) -> void { lowbit::detail::fail(who + what); };
  const LlamaConfig& c = src->config();
  CtExportReport rep;
  rep.permuted_qk = c.rope == rope_style::interleaved;
  const auto* st = dynamic_cast<const SafetensorsSource*>(src);
  const std::string out_model = out_dir + "/model.safetensors", out_config = out_dir + "/config.json",
                    out_tok = out_dir + "/tokenizer.json";
  check_outputs({out_model, out_config, tok.empty() ? std::string() : out_tok}, inputs);

  std::map<std::string, const SafetensorsFile*> layer_shard;
  if (st != nullptr)
    for (const auto& shard : st->tensors().shards()) {
      if (!lowbit::is_lowbit_checkpoint(*shard)) continue;
      for (const std::string& base : checkpoint_layers(*shard)) layer_shard.emplace(base, shard.get());
    }
  auto load = [&](const std::string& name) -> std::optional<QuantizedLinear> {
    const auto it = layer_shard.find(name);
    if (it == layer_shard.end()) return std::nullopt;
    try {
      return load_quantized_linear(*it->second, name);
    } catch (const lowbit::error& e) {
      refuse("layer " + name + ": " + e.what());
    }
    return std::nullopt;
  };

  std::vector<detail::ct_tensor> tensors;
  auto add_f32 = [&](const std::string& name, const float* x, std::vector<std::int64_t> shape) {
    std::int64_t n = 1;
    for (auto d : shape) n *= d;
    detail::ct_tensor t{name, tensor_dtype::f32, std::move(shape), std::vector<std::uint8_t>(static_cast<std::size_t>(n) * 4)};
    std::memcpy(t.bytes.data(), x, t.bytes.size());
    tensors.push_back(std::move(t));
  };
  // Config groups: one per distinct (format, weights, input_activations).
  struct group { std::string format; nlohmann::json weights, acts; std::vector<std::string> modules; };
  std::vector<group> groups;
  std::vector<std::string> ignore;
  auto add_quantized = [&](const std::string& src_name, const std::string& module, QuantizedLinear q,
                           const std::vector<std::int64_t>* perm) -> std::string {
    q.smoothing.reset();  // folded by the caller (or refused there)
    if (perm) detail::ct_permute_rows(q.weight, *perm);
    detail::ct_layer L = detail::ct_encode_layer(q, module, who + "layer " + src_name + " (" + lowbit::to_string(q.weight.spec) + "): ");
    for (auto& t : L.tensors) tensors.push_back(std::move(t));
    ++rep.layers_by_format[L.format];
    for (group& g : groups)
      if (g.format == L.format && g.weights == L.weights && g.acts == L.input_activations) {
        g.modules.push_back(module);
        return L.format;
      }
    groups.push_back({L.format, L.weights, L.input_activations, {module}});
    return L.format;
  };

  {
    const RowMatrixXf emb = src->embeddings();
    add_f32(TensorNames::embeddings(weight_naming::hf), emb.data(), {emb.rows(), emb.cols()});
  }
  const auto q_perm = detail::gguf_rope_row_order(c.q_dim(), c.head_dim(), c.rope, rope_style::half);
  const auto k_perm = detail::gguf_rope_row_order(c.kv_dim(), c.head_dim(), c.rope, rope_style::half);
  for (int l = 0; l < c.n_layers; ++l) {
    const LlamaLayerWeights w = src->layer(l);
    Eigen::VectorXf norms[2] = {w.attention_norm, w.ffn_norm};
    std::optional<QuantizedLinear> ql[kLinearSlots];
    for (int i = 0; i < kLinearSlots; ++i) ql[i] = load(src->linear_name(l, static_cast<linear_slot>(i)));
    // Smoothing: fold into the norm its readers share, or refuse.
    std::string lossy_why[kLinearSlots];  // --allow-lossy: why slot i is requantized (empty: exact)
    std::size_t lossy_entry[kLinearSlots];  // its entry in rep.lossy
    std::fill(std::begin(lossy_entry), std::end(lossy_entry), std::size_t(-1));
    for (int n = 0; n < 2; ++n) {
      const std::vector<linear_slot>& readers = norm_readers(n);
      const Eigen::VectorXf* s = nullptr;
      std::string first;
      for (linear_slot r : readers) {
        const auto& q = ql[static_cast<int>(r)];
        if (q && q->smoothing) {
          s = &*q->smoothing;
          first = src->linear_name(l, r);
          break;
        }
      }
      if (s == nullptr) continue;
      std::string why;
      for (linear_slot r : readers) {
        const auto& q = ql[static_cast<int>(r)];
        const std::string name = src->linear_name(l, r);
        if (!q || !q->smoothing)
          why = "layer " + name + " reads the same norm as " + first + " but has no smoothing vector (" +
                norm_hf_name(n) + " cannot fold it for one reader only)";
        else if (q->smoothing->size() != s->size() ||
                 std::memcmp(q->smoothing->data(), s->data(), static_cast<std::size_t>(s->size()) * 4) != 0)
          why = "layer " + name + " and " + first + " read the same norm with different smoothing vectors (" +
                norm_hf_name(n) + " can fold only one; the recipe must share s across q/k/v and gate/up, as "
                "--smooth-scope norm does)";
        if (why.empty()) continue;
        if (!opt.allow_lossy) refuse(why + " (--allow-lossy writes the readers requantized without smoothing)");
        break;
      }
      if (!why.empty()) {  // --allow-lossy: no fold; every smoothed reader is requantized
        for (linear_slot r : readers)
          if (ql[static_cast<int>(r)] && ql[static_cast<int>(r)]->smoothing) lossy_why[static_cast<int>(r)] = why;
        continue;
      }
      fold_smoothing_into_norm(norms[n], *s);
      ++rep.folded_norms;
    }
    // The rules (exportable(), model/exportable.hpp) for each layer of the decoder layer, after
    // the folding above (whose refusals, q/k/v with different vectors, come first).
    for (int i = 0; i < kLinearSlots; ++i) {
      const auto slot = static_cast<linear_slot>(i);
      if (!ql[i]) continue;
      const std::string name = src->linear_name(l, slot);
      if (lossy_why[i].empty()) {
        if (const Exportable e = exportable(export_format::compressed_tensors, export_layer(name, *ql[i], slot)); !e)
          lossy_why[i] = e.reason;
      }
      if (lossy_why[i].empty()) continue;
      if (!opt.allow_lossy) refuse(lossy_why[i] + " (--allow-lossy writes it requantized and reports the added error)");
      // The effective weight (smoothing, LoRC and all) requantized to the closest format.
      const QuantSpec target = detail::ct_lossy_spec(ql[i]->weight.spec, ql[i]->weight.cols);
      ErrorStats err;
      QuantizedLinear rq = requantize_for_export(*ql[i], target, name, err);
      if (const Exportable e = exportable(export_format::compressed_tensors, export_layer(name, rq, slot)); !e)
        refuse(e.reason + " (also after requantizing for --allow-lossy)");
      // The format name is added when the layer is written (add_quantized).
      rep.lossy.push_back(lossy_layer(name, lossy_why[i], " (" + lowbit::to_string(target) + ")", err));
      lossy_entry[i] = rep.lossy.size() - 1;
      ql[i] = std::move(rq);
    }
    add_f32(TensorNames::attention_norm(l, weight_naming::hf), norms[0].data(), {norms[0].size()});
    add_f32(TensorNames::ffn_norm(l, weight_naming::hf), norms[1].data(), {norms[1].size()});
    for (int i = 0; i < kLinearSlots; ++i) {
      const auto s = static_cast<linear_slot>(i);
      const std::string module = linear_name(l, s, weight_naming::hf);
      const std::vector<std::int64_t>* perm =
          !rep.permuted_qk ? nullptr : s == linear_slot::wq ? &q_perm : s == linear_slot::wk ? &k_perm : nullptr;
      if (ql[i]) {
        const std::string format = add_quantized(src->linear_name(l, s), module, std::move(*ql[i]), perm);
        if (lossy_entry[i] != std::size_t(-1)) rep.lossy[lossy_entry[i]].target.insert(0, format);
        continue;
      }
      RowMatrixXf m = w.matrix(s);
      Eigen::VectorXf b = w.bias(s);
      if (perm) {
        RowMatrixXf p(m.rows(), m.cols());
        Eigen::VectorXf pb(b.size());
        for (std::size_t r = 0; r < perm->size(); ++r) {
          p.row(static_cast<Eigen::Index>(r)) = m.row((*perm)[r]);
          if (b.size()) pb[static_cast<Eigen::Index>(r)] = b[(*perm)[r]];
        }
        m = std::move(p);
        b = std::move(pb);
      }
      add_f32(module + ".weight", m.data(), {m.rows(), m.cols()});
      if (b.size()) add_f32(module + ".bias", b.data(), {b.size()});
      ignore.push_back(module);
      ++rep.float_linears;
    }
  }
  {
    const Eigen::VectorXf fn = src->final_norm();
    add_f32(TensorNames::final_norm(weight_naming::hf), fn.data(), {fn.size()});
  }
  if (!c.tied_classifier) {
    if (auto q = load(src->classifier_name())) {
      if (q->smoothing && !(q->smoothing->array() == 1.0f).all())
        refuse("layer " + src->classifier_name() + ": a smoothing vector on the classifier (model.norm is shared with nothing else, but folding it is not implemented)");
      add_quantized(src->classifier_name(), "lm_head", std::move(*q), nullptr);
    } else {
      const RowMatrixXf cl = src->classifier();
      add_f32("lm_head.weight", cl.data(), {cl.rows(), cl.cols()});
      ignore.push_back("lm_head");
      ++rep.float_linears;
    }
  } else {
    ignore.push_back("lm_head");
  }
  if (groups.empty()) refuse("no quantized layer (the input is not a lowbit checkpoint)");

  // config.json: the source's (Hugging Face) or one made from the config (Meta names).
  nlohmann::json cfg;
  if (src->naming() == weight_naming::hf && src_config) {
    try {
      cfg = nlohmann::json::parse(src_config->text);
    } catch (const nlohmann::json::exception& e) {
      refuse(src_config->source + " is not JSON: " + e.what());
    }
  } else {
    cfg = detail::ct_hf_config(c, who);
  }
  nlohmann::json qc;
  qc["quant_method"] = "compressed-tensors";
  std::string top = groups[0].format;
  for (const group& g : groups)
    if (g.format != top) top = "mixed-precision";
  qc["format"] = top;
  qc["quantization_status"] = "compressed";
  qc["kv_cache_scheme"] = nullptr;
  qc["ignore"] = ignore;
  nlohmann::json cg = nlohmann::json::object();
  for (std::size_t i = 0; i < groups.size(); ++i) {
    const group& g = groups[i];
    nlohmann::json targets = groups.size() == 1 ? nlohmann::json::array({"Linear"}) : nlohmann::json(g.modules);
    cg["group_" + std::to_string(i)] = {{"targets", targets},
                                        {"weights", g.weights},
                                        {"input_activations", g.acts},
                                        {"output_activations", nullptr},
                                        {"format", g.format}};
  }
  qc["config_groups"] = cg;
  cfg["quantization_config"] = qc;

  SafetensorsWriter wr(out_model);
  for (const detail::ct_tensor& t : tensors) wr.add(t.name, t.dtype, t.shape, t.bytes.data(), t.bytes.size());
  wr.finish();
  if (!tok.empty()) {
    detail::ct_write_text(out_tok, detail::read_text(tok));
    rep.tokenizer = true;
  } else {
    rep.warnings.push_back("no tokenizer.json beside " + in + ": the directory has none (vLLM needs one)");
  }
  detail::ct_write_text(out_config, cfg.dump(2) + "\n");
  return rep;
}

}  // namespace detail

}  // namespace lowbit::model
