#pragma once
// export_gguf(in, out): a model lowbit reads (a lowbit checkpoint file or output directory,
// or an unquantized model) as a llama.cpp GGUF v3 file, architecture `llama` (`qwen2` when
// the config says so). docs/interop.md has the mapping; the rules:
//
//  - Exact or refused. A stored quantized layer becomes the GGUF type its scheme maps to
//    (io/gguf_blocks.hpp: Q8_0, Q4_0, Q4_1, MXFP4) with llama.cpp's dequantized values equal
//    to lowbit's dequantize() bit for bit; a layer with no exact form (LoRC factors, a
//    smoothing vector, asymmetric int8, non-fp16 scales, a group or row length that is not a
//    multiple of 32, FP8/FP6/NVFP4) is refused with the layer and the missing feature named,
//    and nothing is written. The rules are model/exportable.hpp's: exportable() gives the same
//    answer before anything is quantized (what only the data decides, fp16 scales, is
//    refused here). Dynamic activation quantization is dropped with a warning
//    (GGUF describes weights; llama.cpp quantizes activations its own way).
//  - Float tensors keep their stored dtype (F32, F16, BF16), or the one asked for
//    (ExportOptions::float_type; rounding to F16/BF16 is the user's choice then). Norms and
//    biases are F32, as llama.cpp's converter writes them.
//  - Names token_embd / blk.N.attn_q ... / output_norm / output (absent when tied); q/k rows
//    (and biases) in llama.cpp's order for the architecture's rope type: `llama` rotates
//    interleaved pairs, `qwen2` halves. A source in the other order (a Hugging Face llama
//    checkpoint) is permuted within each head; a row permutation of GGUF blocks is exact.
//  - The tokenizer from tokenizer.json (the source's, or one beside the input): BPE with
//    byte fallback / a "▁" normalizer as `tokenizer.ggml.model` llama (tokens, scores,
//    token types), byte-level BPE as gpt2 (tokens, token types, merges, a `pre` name).
//    No tokenizer.json: no tokenizer is written, with a warning.
//  - Written atomically (GgufWriter); the output is never the input.
#include <algorithm>
#include <cstdint>
#include <cstring>
#include <map>
#include <memory>
#include <nlohmann/json.hpp>
#include <string>
#include <utility>
#include <vector>

#include "lowbit/algo/recipes.hpp"
#include "lowbit/io/checkpoint.hpp"
#include "lowbit/io/gguf_blocks.hpp"
#include "lowbit/io/gguf_writer.hpp"
#include "lowbit/io/linear_checkpoint.hpp"
#include "lowbit/io/paths.hpp"
#include "lowbit/model/export_lossy.hpp"
#include "lowbit/model/exportable.hpp"
#include "lowbit/model/load.hpp"
#include "lowbit/model/rope.hpp"

namespace lowbit::model {

struct GgufExportOptions {
  // Type of the float matrices (embedding table, unquantized linears): "keep" (the stored
  // dtype), "f32", "f16" or "bf16".
  std::string float_type = "keep";
  std::string name;  // general.name; empty: the input's file name
  // A layer with no exact GGUF form is written requantized (Q8_0 for a source of 6 or more
  // bits, else Q4_0; F32 when its rows are not whole 32-blocks) from its effective weight,
  // and reported in GgufExportReport::lossy, instead of refusing (model/export_lossy.hpp).
  bool allow_lossy = false;
};

struct GgufExportReport {
  std::string architecture;                  // "llama" or "qwen2"
  std::map<std::string, int> tensors_by_type;  // "Q8_0" -> count
  std::vector<std::string> warnings;
  bool tokenizer = false;                    // whether a tokenizer was written
  std::string tokenizer_model;               // "llama" / "gpt2"
  bool permuted_qk = false;                  // q/k rows reordered for the rope type
  std::vector<LossyLayer> lossy;             // layers written requantized (allow_lossy)
};

namespace detail {

// --allow-lossy's target grid for a layer of scheme `src`: Q8_0 (recipe gguf-q8_0) for a
// source of 6 or more bits per element, else Q4_0 (gguf-q4_0): the GGUF type of the same
// width, so the added error is the requantization's, not a width change's.
inline QuantSpec gguf_lossy_spec(const QuantSpec& src) {
  return recipe_from_name(element_bits(src.format) >= 6 ? "gguf-q8_0" : "gguf-q4_0").weight;
}

// llama.cpp token types.
enum gguf_token_type : std::int32_t { tok_normal = 1, tok_unknown = 2, tok_control = 3, tok_user = 4, tok_unused = 5, tok_byte = 6 };

struct gguf_tokenizer_kv {
  std::vector<std::pair<std::string, GgufValue>> kv;
  std::string model;
};

inline bool gguf_json_has_type(const nlohmann::json& j, const char* type) {
  if (j.is_object()) {
    if (j.contains("type") && j["type"] == type) return true;
    for (const auto& [k, v] : j.items()) if (gguf_json_has_type(v, type)) return true;
  } else if (j.is_array()) {
    for (const auto& v : j) if (gguf_json_has_type(v, type)) return true;
  }
  return false;
}

// tokenizer.json -> tokenizer.ggml.* (see the file comment); vocab_size pads the token list
// with unused "[PAD<i>]" entries (llama.cpp wants one token per embedding row).
inline gguf_tokenizer_kv gguf_tokenizer_from_json(const std::string& path, const LlamaConfig& c, const std::string& arch) {
  auto fail = [&](const std::string& what) -> void { lowbit::detail::fail(path + ": GGUF tokenizer: " + what); };
  const std::string text = read_text(path);
  nlohmann::json j;
  try {
    j = nlohmann::json::parse(text);
  } catch (const std::exception& e) {
    fail(std::string("not JSON: ") + e.what());
  }
  const nlohmann::json& m = j.value("model", nlohmann::json());
  if (!m.is_object() || m.value("type", std::string()) != "BPE" || !m.contains("vocab") || !m["vocab"].is_object())
    fail("only BPE tokenizers (model.type \"BPE\" with a vocab) are exported");
  const bool byte_level = gguf_json_has_type(j.value("pre_tokenizer", nlohmann::json()), "ByteLevel");
  const bool spm = !byte_level && (m.value("byte_fallback", false) ||
                                   gguf_json_has_type(j.value("normalizer", nlohmann::json()), "Prepend"));
  if (!byte_level && !spm)
    fail("neither SentencePiece-style (byte_fallback / a \"▁\" prepend normalizer) nor byte-level BPE");
  // Tokens by id: the vocab, then added tokens.
  std::vector<std::string> tokens;
  std::vector<std::int32_t> types;
  auto put = [&](std::int64_t id, const std::string& s, std::int32_t type) {
    if (id < 0 || id >= c.vocab_size)
      fail("token id " + std::to_string(id) + " ('" + s + "') is outside the model's vocabulary of " +
           std::to_string(c.vocab_size));
    if (tokens.size() <= static_cast<std::size_t>(id)) {
      tokens.resize(static_cast<std::size_t>(id) + 1);
      types.resize(static_cast<std::size_t>(id) + 1, 0);
    }
    tokens[static_cast<std::size_t>(id)] = s;
    types[static_cast<std::size_t>(id)] = type;
  };
  for (const auto& [tok, id] : m["vocab"].items()) {
    if (!id.is_number_integer()) fail("vocab entry '" + tok + "' has no integer id");
    const bool byte = spm && tok.size() == 6 && tok.compare(0, 3, "<0x") == 0 && tok[5] == '>';
    put(id.get<std::int64_t>(), tok, byte ? tok_byte : tok_normal);
  }
  std::string unk = m.value("unk_token", nlohmann::json()).is_string() ? m["unk_token"].get<std::string>() : std::string();
  std::optional<std::int64_t> unk_id;
  for (const auto& a : j.value("added_tokens", nlohmann::json::array())) {
    if (!a.contains("id") || !a["id"].is_number_integer() || !a.contains("content") || !a["content"].is_string())
      fail("an added token has no integer id or no content");
    const std::string content = a["content"].get<std::string>();
    put(a["id"].get<std::int64_t>(), content, a.value("special", false) ? tok_control : tok_user);
  }
  if (!unk.empty() && m["vocab"].contains(unk)) {
    unk_id = m["vocab"][unk].get<std::int64_t>();
    types[static_cast<std::size_t>(*unk_id)] = tok_unknown;
  }
  for (std::size_t i = 0; i < tokens.size(); ++i)
    if (types[i] == 0) {  // a hole in the ids
      tokens[i] = "[PAD" + std::to_string(i) + "]";
      types[i] = tok_unused;
    }
  for (std::size_t i = tokens.size(); i < static_cast<std::size_t>(c.vocab_size); ++i) {
    tokens.push_back("[PAD" + std::to_string(i) + "]");
    types.push_back(tok_unused);
  }
  // Merges: "a b" strings (tokenizers writes them as strings or as [a, b] pairs).
  std::vector<std::string> merges;
  for (const auto& mg : m.value("merges", nlohmann::json::array())) {
    if (mg.is_string()) merges.push_back(mg.get<std::string>());
    else if (mg.is_array() && mg.size() == 2 && mg[0].is_string() && mg[1].is_string())
      merges.push_back(mg[0].get<std::string>() + " " + mg[1].get<std::string>());
    else fail("a merge is neither \"a b\" nor [a, b]");
  }
  gguf_tokenizer_kv out;
  out.model = spm ? "llama" : "gpt2";
  out.kv.push_back({"tokenizer.ggml.model", GgufValue::string(out.model)});
  if (!spm) {
    // llama.cpp picks its pre-tokenizer regex by this name. Llama 3's split regex is
    // "llama-bpe"; qwen2's files are "qwen2"; other byte-level BPE gets "gpt-2".
    std::string pre = "gpt-2";
    const std::string pt = j.value("pre_tokenizer", nlohmann::json()).dump();
    if (arch == "qwen2") pre = "qwen2";
    else if (pt.find("\\\\p{N}{1,3}") != std::string::npos) pre = "llama-bpe";
    out.kv.push_back({"tokenizer.ggml.pre", GgufValue::string(pre)});
  }
  out.kv.push_back({"tokenizer.ggml.tokens", GgufValue::string_array(tokens)});
  if (spm) {
    // SentencePiece scores: llama.cpp's SPM tokenizer merges the adjacent pair whose joined
    // token scores highest, so a merge's result scores -(its rank): earlier merges first, as
    // BPE applies them. Tokens no merge makes score below every merge.
    std::map<std::string, std::size_t> rank;
    for (std::size_t r = 0; r < merges.size(); ++r) {
      const std::size_t sp = merges[r].find(' ');
      if (sp == std::string::npos) fail("merge '" + merges[r] + "' has no space");
      rank.emplace(merges[r].substr(0, sp) + merges[r].substr(sp + 1), r);
    }
    std::vector<float> scores(tokens.size(), 0.0f);
    for (std::size_t i = 0; i < tokens.size(); ++i) {
      if (types[i] != tok_normal) continue;
      const auto it = rank.find(tokens[i]);
      scores[i] = it != rank.end() ? -static_cast<float>(it->second + 1)
                                   : -static_cast<float>(merges.size() + 1 + i);
    }
    out.kv.push_back({"tokenizer.ggml.scores", GgufValue::array(scores)});
  }
  out.kv.push_back({"tokenizer.ggml.token_type", GgufValue::array(types)});
  if (!spm) out.kv.push_back({"tokenizer.ggml.merges", GgufValue::string_array(merges)});
  // BOS / EOS from the config (config.json), else the post-processor's first special token.
  std::optional<std::int64_t> bos, eos;
  if (!c.bos_ids.empty()) bos = c.bos_ids.front();
  if (!c.eos_ids.empty()) eos = c.eos_ids.front();
  bool add_bos = false;
  const nlohmann::json pp = j.value("post_processor", nlohmann::json());
  if (pp.is_object() && pp.contains("single") && pp["single"].is_array() && !pp["single"].empty() &&
      pp["single"][0].contains("SpecialToken")) {
    add_bos = true;
    const std::string first = pp["single"][0]["SpecialToken"].value("id", std::string());
    if (!bos && m["vocab"].contains(first)) bos = m["vocab"][first].get<std::int64_t>();
  }
  if (bos) out.kv.push_back({"tokenizer.ggml.bos_token_id", GgufValue::scalar(static_cast<std::uint32_t>(*bos))});
  if (eos) out.kv.push_back({"tokenizer.ggml.eos_token_id", GgufValue::scalar(static_cast<std::uint32_t>(*eos))});
  if (unk_id) out.kv.push_back({"tokenizer.ggml.unknown_token_id", GgufValue::scalar(static_cast<std::uint32_t>(*unk_id))});
  out.kv.push_back({"tokenizer.ggml.add_bos_token", GgufValue::scalar(add_bos)});
  out.kv.push_back({"tokenizer.ggml.add_eos_token", GgufValue::scalar(false)});
  return out;
}

// The GGUF rows of a q or k matrix (or bias) in `to` order from `from` order: row r of the
// result is row perm[r] of the source, within each head of size d.
inline std::vector<std::int64_t> gguf_rope_row_order(std::int64_t rows, int d, rope_style from, rope_style to) {
  std::vector<std::int64_t> perm(static_cast<std::size_t>(rows));
  const int half = d / 2;
  for (std::int64_t r = 0; r < rows; ++r) {
    const std::int64_t h = r / d, j = r % d;
    std::int64_t src = j;
    if (from != to) {
      if (to == rope_style::interleaved) src = (j % 2) * half + j / 2;  // row 2i+s <- s*half + i
      else src = 2 * (j % half) + j / half;                             // row s*half+i <- 2i+s
    }
    perm[static_cast<std::size_t>(r)] = h * d + src;
  }
  return perm;
}

inline std::vector<std::uint8_t> gguf_permute_rows(const std::vector<std::uint8_t>& bytes, std::int64_t rows,
                                                   const std::vector<std::int64_t>& perm) {
  const std::size_t rb = bytes.size() / static_cast<std::size_t>(rows);
  std::vector<std::uint8_t> out(bytes.size());
  for (std::int64_t r = 0; r < rows; ++r)
    std::memcpy(out.data() + static_cast<std::size_t>(r) * rb, bytes.data() + static_cast<std::size_t>(perm[static_cast<std::size_t>(r)]) * rb, rb);
  return out;
}

inline gguf_type gguf_float_type(const std::string& s, const std::string& what) {
  if (s == "f32") return gguf_type::f32;
  if (s == "f16") return gguf_type::f16;
  if (s == "bf16") return gguf_type::bf16;
  lowbit::detail::fail(what + ": float type '" + s + "' is not f32, f16 or bf16");
}

}  // namespace detail

template <class Deferred = void>  // see "Compile time" in docs/design.md
GgufExportReport export_gguf(const std::string& in, const std::string& out, const GgufExportOptions& opt = {}) {
  if (opt.float_type != "keep") (void)detail::gguf_float_type(opt.float_type, "export");
  const auto src = open_model(in);
  if (dynamic_cast<const GgufSource*>(src.get()) != nullptr)
    lowbit::detail::fail(in + ": is a GGUF file already (export reads lowbit checkpoints and unquantized models)");
  if (dynamic_cast<const CompressedTensorsSource*>(src.get()) != nullptr)
    lowbit::detail::fail(in + ": is a compressed-tensors directory (GGUF export reads lowbit checkpoints and unquantized "
                              "models; mapping compressed-tensors to GGUF directly is not implemented)");
  const LlamaConfig& c = src->config();
  GgufExportReport rep;
  auto refuse = [&](const std::string& what) -> void { lowbit::detail::fail(in + ": GGUF export: " + what); };
  // The rules (model and layer) live in model/exportable.hpp: exportable() answers with them.
  if (const Exportable e = exportable(export_format::gguf, c); !e) refuse(e.reason);
  const std::string arch = c.arch == model_arch::qwen2 ? "qwen2" : "llama";
  rep.architecture = arch;
  const rope_style want_rope = arch == "qwen2" ? rope_style::half : rope_style::interleaved;
  rep.permuted_qk = c.rope != want_rope;

  // Inputs and the output are checked before any work.
  std::vector<std::string> inputs{in};
  const auto* st = dynamic_cast<const SafetensorsSource*>(src.get());
  if (st != nullptr)
    for (const auto& sh : st->tensors().shards()) inputs.push_back(sh->source());
  check_outputs({out}, inputs);

  // Stored quantized layers: which shard holds each one.
  std::map<std::string, const SafetensorsFile*> layer_shard;
  if (st != nullptr)
    for (const auto& shard : st->tensors().shards()) {
      if (!lowbit::is_lowbit_checkpoint(*shard)) continue;
      for (const std::string& base : checkpoint_layers(*shard)) layer_shard.emplace(base, shard.get());
    }
  // The stored dtype of a float tensor.
  auto stored_float = [&](const std::string& name) {
    if (opt.float_type != "keep") return detail::gguf_float_type(opt.float_type, "export");
    if (st != nullptr)
      if (const TensorView* t = st->tensors().find(name)) {
        if (t->dtype == tensor_dtype::f16) return gguf_type::f16;
        if (t->dtype == tensor_dtype::bf16) return gguf_type::bf16;
      }
    return gguf_type::f32;
  };

  // Every tensor as (name, type, ne, bytes), produced in order; data kept until written
  // (GGUF's header precedes the data). Models exported here are small next to memory.
  struct item { std::string name; gguf_type type; std::vector<std::uint64_t> ne; std::vector<std::uint8_t> bytes; };
  std::vector<item> items;
  std::map<gguf_type, std::int64_t> weight_elems;  // general.file_type: the commonest linear type
  auto add_float = [&](const std::string& name, gguf_type t, const float* x, std::int64_t rows, std::int64_t cols,
                       const std::vector<std::int64_t>* perm = nullptr) {
    std::vector<std::uint8_t> b = gguf_encode_float(t, x, static_cast<std::size_t>(rows * cols));
    if (perm) b = detail::gguf_permute_rows(b, rows, *perm);
    items.push_back({name, t, {static_cast<std::uint64_t>(cols), static_cast<std::uint64_t>(rows)}, std::move(b)});
  };
  auto add_vec = [&](const std::string& name, const Eigen::VectorXf& v, const std::vector<std::int64_t>* perm = nullptr) {
    add_float(name, gguf_type::f32, v.data(), v.size(), 1, perm);
    items.back().ne = {static_cast<std::uint64_t>(v.size())};
  };
  // One linear: `meta_base` in the source, `gguf_base` in the file; `fp32` its float weight
  // (empty when stored quantized), `bias` the float bias (ditto).
  auto add_linear = [&](const std::string& meta_base, const std::string& gguf_base, const RowMatrixXf& fp32,
                        const Eigen::VectorXf& bias, const std::vector<std::int64_t>* perm) {
    const std::string& src_name = meta_base;
    const auto sh = layer_shard.find(src_name);
    if (sh == layer_shard.end()) {
      const gguf_type t = stored_float(src_name + ".weight");
      add_float(gguf_base + ".weight", t, fp32.data(), fp32.rows(), fp32.cols(), perm);
      weight_elems[t] += fp32.size();
      if (bias.size()) add_vec(gguf_base + ".bias", bias, perm);
      return;
    }
    QuantizedLinear ql;
    try {
      ql = load_quantized_linear(*sh->second, src_name);
    } catch (const lowbit::error& e) {
      refuse("layer " + src_name + ": " + e.what());
    }
    // The exact form, or why there is none.
    std::string why;
    if (const Exportable e = exportable(export_format::gguf, export_layer(src_name, ql)); !e) why = e.reason;
    gguf_type t{};
    std::vector<std::uint8_t> b;
    if (why.empty()) {
      try {
        t = gguf_type_for(ql.weight);
        b = gguf_encode(ql.weight, t);
      } catch (const lowbit::error& e) {
        why = "layer " + src_name + " (" + lowbit::to_string(ql.weight.spec) + "): " + e.what();
      }
    }
    if (!why.empty() && !opt.allow_lossy)
      refuse(why + " (--allow-lossy writes it requantized and reports the added error)");
    if (ql.activations)
      rep.warnings.push_back("layer " + src_name + ": its dynamic activation quantization (" +
                             std::string(lowbit::to_string(ql.activations->format)) +
                             ") is not part of GGUF; llama.cpp runs the weights with its own activations");
    if (!why.empty()) {
      // --allow-lossy: the effective weight requantized to the GGUF grid of the source's width.
      ErrorStats err;
      if (ql.weight.cols % 32 != 0) {  // no 32-element block type: the effective weight in F32
        const RowMatrixXf w_eff = ql.effective_weight();
        add_float(gguf_base + ".weight", gguf_type::f32, w_eff.data(), w_eff.rows(), w_eff.cols(), perm);
        weight_elems[gguf_type::f32] += w_eff.size();
        err = error_stats(w_eff, w_eff);
        rep.lossy.push_back(lossy_layer(src_name, why, "F32 (rows are not whole 32-element blocks)", err));
        if (ql.bias) add_vec(gguf_base + ".bias", *ql.bias, perm);
        return;
      }
      const QuantSpec target = detail::gguf_lossy_spec(ql.weight.spec);
      const QuantizedLinear rq = requantize_for_export(ql, target, src_name, err);
      t = gguf_type_for(rq.weight);
      b = gguf_encode(rq.weight, t);
      rep.lossy.push_back(lossy_layer(src_name, why, std::string(gguf_type_name(t)) + " (" + lowbit::to_string(target) + ")", err));
    }
    if (perm) b = detail::gguf_permute_rows(b, ql.weight.rows, *perm);
    items.push_back({gguf_base + ".weight", t, {static_cast<std::uint64_t>(ql.weight.cols), static_cast<std::uint64_t>(ql.weight.rows)}, std::move(b)});
    weight_elems[t] += ql.weight.rows * ql.weight.cols;
    if (ql.bias) add_vec(gguf_base + ".bias", *ql.bias, perm);
  };

  {
    const RowMatrixXf emb = src->embeddings();
    add_float("token_embd.weight", stored_float(TensorNames::embeddings(src->naming())), emb.data(), emb.rows(), emb.cols());
  }
  for (int l = 0; l < c.n_layers; ++l) {
    const LlamaLayerWeights w = src->layer(l);
    const std::string b = "blk." + std::to_string(l) + ".";
    add_vec(b + "attn_norm.weight", w.attention_norm);
    const auto q_perm = detail::gguf_rope_row_order(c.q_dim(), c.head_dim(), c.rope, want_rope);
    const auto k_perm = detail::gguf_rope_row_order(c.kv_dim(), c.head_dim(), c.rope, want_rope);
    for (linear_slot s : {linear_slot::wq, linear_slot::wk, linear_slot::wv, linear_slot::wo}) {
      const std::vector<std::int64_t>* perm = s == linear_slot::wq ? &q_perm : s == linear_slot::wk ? &k_perm : nullptr;
      add_linear(src->linear_name(l, s), detail::gguf_linear_name(l, s), w.matrix(s), w.bias(s),
                 rep.permuted_qk ? perm : nullptr);
    }
    add_vec(b + "ffn_norm.weight", w.ffn_norm);
    for (linear_slot s : {linear_slot::w1, linear_slot::w3, linear_slot::w2})
      add_linear(src->linear_name(l, s), detail::gguf_linear_name(l, s), w.matrix(s), w.bias(s), nullptr);
  }
  add_vec("output_norm.weight", src->final_norm());
  if (!c.tied_classifier) add_linear(src->classifier_name(), "output", src->classifier(), Eigen::VectorXf(), nullptr);

  // Metadata.
  GgufWriter wr(out);
  const std::string p = arch + ".";
  auto u32 = [](std::int64_t v) { return GgufValue::scalar(static_cast<std::uint32_t>(v)); };
  wr.set("general.architecture", GgufValue::string(arch));
  std::string name = opt.name;
  if (name.empty()) {
    std::string s = in;
    while (s.size() > 1 && s.back() == '/') s.pop_back();
    name = s.substr(s.find_last_of('/') == std::string::npos ? 0 : s.find_last_of('/') + 1);
  }
  wr.set("general.name", GgufValue::string(name));
  gguf_type common = gguf_type::f32;
  std::int64_t most = -1;
  for (const auto& [t, n] : weight_elems)
    if (n > most) most = n, common = t;
  // llama.cpp's llama_ftype numbers for "mostly <type>" files.
  const std::uint32_t ftype = common == gguf_type::f32 ? 0 : common == gguf_type::f16 ? 1 : common == gguf_type::q4_0 ? 2
                              : common == gguf_type::q4_1 ? 3 : common == gguf_type::q8_0 ? 7 : common == gguf_type::bf16 ? 32 : 38;
  wr.set("general.file_type", GgufValue::scalar(ftype));
  wr.set("general.quantization_version", u32(2));
  wr.set(p + "context_length", u32(c.rope_context()));
  wr.set(p + "embedding_length", u32(c.dim));
  wr.set(p + "block_count", u32(c.n_layers));
  wr.set(p + "feed_forward_length", u32(c.hidden_dim));
  wr.set(p + "attention.head_count", u32(c.n_heads));
  wr.set(p + "attention.head_count_kv", u32(c.n_kv_heads));
  if (c.head_dim() * c.n_heads != c.dim) {
    wr.set(p + "attention.key_length", u32(c.head_dim()));
    wr.set(p + "attention.value_length", u32(c.head_dim()));
  }
  wr.set(p + "attention.layer_norm_rms_epsilon", GgufValue::scalar(c.norm_eps));
  wr.set(p + "rope.freq_base", GgufValue::scalar(c.rope_theta));
  wr.set(p + "rope.dimension_count", u32(c.head_dim()));
  wr.set(p + "vocab_size", u32(c.vocab_size));
  const RopeScaling& rs = c.rope_scaling;
  switch (rs.type) {
    case rope_scaling_type::none: break;
    case rope_scaling_type::linear:
      wr.set(p + "rope.scaling.type", GgufValue::string("linear"));
      wr.set(p + "rope.scaling.factor", GgufValue::scalar(static_cast<float>(rs.factor)));
      break;
    case rope_scaling_type::yarn:  // default betas only (exportable())
      wr.set(p + "rope.scaling.type", GgufValue::string("yarn"));
      wr.set(p + "rope.scaling.factor", GgufValue::scalar(static_cast<float>(rs.factor)));
      wr.set(p + "rope.scaling.original_context_length",
             u32(rs.original_max_position_embeddings > 0 ? static_cast<std::int64_t>(rs.original_max_position_embeddings)
                                                         : c.rope_context()));
      break;
    case rope_scaling_type::llama3: {
      // As llama.cpp's converter: no scaling keys, a rope_freqs tensor of per-pair divisors
      // (rope.hpp, llama3_rope_freq_factors), which llama.cpp's llama graph applies.
      const std::vector<float> ff = llama3_rope_freq_factors(c);
      std::vector<std::uint8_t> b(ff.size() * 4);
      std::memcpy(b.data(), ff.data(), b.size());
      items.push_back({"rope_freqs.weight", gguf_type::f32, {static_cast<std::uint64_t>(ff.size())}, std::move(b)});
      break;
    }
    default:  // exportable() refuses these first (dynamic)
      refuse(std::string("rope scaling '") + to_string(rs.type) + "' is not exported (no llama.cpp form)");
  }
  // Tokenizer.
  std::string tok = src->tokenizer_path();
  if (tok.empty()) {
    const std::string d = detail::is_directory(in) ? in : detail::directory_of(in);
    if (detail::file_exists(d + "/tokenizer.json")) tok = d + "/tokenizer.json";
  }
  if (tok.empty()) {
    rep.warnings.push_back("no tokenizer.json beside " + in + ": the GGUF file has no tokenizer (llama.cpp needs one to run it)");
  } else {
    detail::gguf_tokenizer_kv tk = detail::gguf_tokenizer_from_json(tok, c, arch);
    for (auto& [k, v] : tk.kv) wr.set(k, std::move(v));
    rep.tokenizer = true;
    rep.tokenizer_model = tk.model;
  }
  for (const item& it : items) wr.add_tensor_info(it.name, it.type, it.ne);
  for (const item& it : items) {
    wr.write_tensor_data(it.name, it.bytes.data(), it.bytes.size());
    ++rep.tensors_by_type[gguf_type_name(it.type)];
  }
  wr.finish();
  return rep;
}

}  // namespace lowbit::model
