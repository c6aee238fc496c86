// GGUF at the model level (model/gguf_source.hpp, model/gguf_export.hpp): stories260K
// quantized by a lowbit recipe, written as a lowbit checkpoint, exported to GGUF and read back
// gives weights bit-identical to dequantize() of the checkpoint and logits / perplexity
// bit-identical to lowbit's own model of the checkpoint; float exports (F32, F16); a Hugging
// Face llama (rotate-half q/k rows) exports with llama.cpp's interleaved row order and its
// tokenizer; refusals name the layer and the feature; malformed model-level files give errors.
#include <catch2/catch.hpp>

#include <fstream>
#include <functional>
#include <string>
#include <vector>

#include "lowbit/algo/recipes.hpp"
#include "lowbit/io/linear_checkpoint.hpp"
#include "lowbit/model/exportable.hpp"
#include "lowbit/model/gguf_export.hpp"
#include "lowbit/model/quantized_model.hpp"
#include "test_io_support.hpp"
#include "test_model_checkpoint_support.hpp"
#include "test_model_support.hpp"

// One namespace per test file, so that any set of test files can be compiled as one
// unity translation unit (tests/CMakeLists.txt) without their file-local names clashing.
namespace test_model_gguf_cpp {

using namespace lowbit::model;
using lowbit::RowMatrixXf;
using lowbit_test::kStoriesDir;

namespace {

const std::string kGgufHfDir = std::string(LOWBIT_SHARED_DATA_DIR) + "/stories260k-hf";

// `dir`/model.safetensors as `lowbit quantize` writes it from stories260K.bin: every linear
// layer quantized by `recipe` except those `plain` keeps in fp32, embeddings and norms as f32
// tensors, config.json copied. `edit` may change a layer before it is written.
void gguf_write_checkpoint(const std::string& dir, const lowbit::LinearRecipe& recipe,
                           const std::function<bool(const std::string&)>& plain,
                           const std::function<void(const std::string&, lowbit::QuantizedLinear&)>& edit = {}) {
  lowbit_test::write_stories_checkpoint(dir, false, [&](const std::string& name, const RowMatrixXf& m) {
    if (plain(name)) return lowbit::QuantizedLinear{};
    lowbit::QuantizedLinear q = lowbit::quantize_linear(m, recipe, nullptr, name);
    if (edit) edit(name, q);
    return q;
  });
}

// stories260K's down projections have 172 columns: not a whole number of 32-element blocks.
bool gguf_plain_w2(const std::string& name) { return name.find("feed_forward.w2") != std::string::npos; }

std::vector<int> gguf_eval_tokens() {
  std::vector<int> t = read_u16_tokens(kStoriesDir + "/eval_tinystories_val_tok512.u16");
  t.resize(200);
  return t;
}

// Perplexity as `lowbit eval` computes it (documents split at BOS), and the raw logits.
double gguf_ppl(const LlamaModel& m) { return evaluate_perplexity(m, gguf_eval_tokens()).perplexity(); }

bool gguf_same_bits(const RowMatrixXf& a, const RowMatrixXf& b) {
  return a.rows() == b.rows() && a.cols() == b.cols() &&
         std::memcmp(a.data(), b.data(), std::size_t(a.size()) * sizeof(float)) == 0;
}

}  // namespace

TEST_CASE("gguf model: quantized checkpoints export and import exactly", "[model][gguf]") {
  LOWBIT_REQUIRE_STORIES();
  const std::vector<int> probe = {1, 301, 427, 309, 426, 301, 427, 309, 394, 265, 40, 7, 403, 11};
  for (const char* recipe : {"gguf-q8_0", "gguf-q4_0", "mxfp4"}) {
    INFO(recipe);
    lowbit_test::scratch_dir dir;
    gguf_write_checkpoint(dir.path, lowbit::recipe_from_name(recipe), gguf_plain_w2);
    const GgufExportReport rep = export_gguf(dir.path, dir.file("model.gguf"));
    CHECK(rep.architecture == "llama");
    CHECK_FALSE(rep.permuted_qk);
    CHECK_FALSE(rep.tokenizer);
    REQUIRE(rep.warnings.size() == 1);
    CHECK(rep.warnings[0].find("no tokenizer.json") != std::string::npos);
    const std::string qtype = std::string(recipe) == "gguf-q8_0" ? "Q8_0" : std::string(recipe) == "gguf-q4_0" ? "Q4_0" : "MXFP4";
    CHECK(rep.tensors_by_type.at(qtype) == 5 * 6);

    const auto ck_src = open_model(dir.path);
    const auto gg_src = open_model(dir.file("model.gguf"));
    const auto* gg = dynamic_cast<const GgufSource*>(gg_src.get());
    REQUIRE(gg != nullptr);
    CHECK(gg->config().n_heads == 8);
    CHECK(gg->config().n_kv_heads == 4);
    CHECK(gg->config().rope == rope_style::interleaved);
    CHECK(gg->quantized_linears().size() == 5 * 6);
    // Weights: the imported blocks dequantize to the checkpoint's dequantize() bit for bit.
    const auto* st = dynamic_cast<const SafetensorsSource*>(ck_src.get());
    REQUIRE(st != nullptr);
    const lowbit::SafetensorsFile& shard = *st->tensors().shards()[0];
    for (const std::string& base : gg->quantized_linears()) {
      INFO(base);
      const lowbit::QuantizedLinear a = lowbit::load_quantized_linear(shard, base);
      const lowbit::QuantizedLinear b = gg->quantized_linear(base);
      CHECK(gguf_same_bits(lowbit::dequantize(a.weight), lowbit::dequantize(b.weight)));
    }
    for (int l = 0; l < 5; ++l) CHECK(gguf_same_bits(gg->layer(l).w2, ck_src->layer(l).w2));
    CHECK(gguf_same_bits(gg->embeddings(), ck_src->embeddings()));
    // The models: logits and perplexity bit-identical.
    const LlamaModel a = load_llama_model(dir.path), b = load_llama_model(dir.file("model.gguf"));
    CHECK(b.linear(0, linear_slot::wq).describe().find("gguf " + qtype) != std::string::npos);
    // Q8_0 runs the weight-only int8 kernel (w8a16_int8), Q4_0 and MXFP4 W4A16.
    for (const LlamaModel* m : {&a, &b}) CHECK(m->linear(0, linear_slot::wq).describe().find("(packed kernels)") != std::string::npos);
    CHECK(gguf_same_bits(a.forward(probe), b.forward(probe)));
    const double pa = gguf_ppl(a), pb = gguf_ppl(b);
    CHECK(pa == pb);
    CHECK(pa > 1.0);
    CHECK(pa < 20.0);
  }
}

TEST_CASE("gguf model: float exports (F32 as stored, F16 on request)", "[model][gguf]") {
  LOWBIT_REQUIRE_STORIES();
  const LlamaModel& fp32 = lowbit_test::stories_model();
  const std::vector<int> probe = {1, 403, 11, 301, 427, 309, 426, 301};
  lowbit_test::scratch_dir dir;
  const GgufExportReport rep = export_gguf(kStoriesDir + "/stories260K.bin", dir.file("f32.gguf"));
  CHECK(rep.tensors_by_type.at("F32") == 1 + 5 * 9 + 1);
  CHECK(rep.tensors_by_type.size() == 1);
  const LlamaModel f = load_llama_model(dir.file("f32.gguf"));
  CHECK(gguf_same_bits(f.forward(probe), fp32.forward(probe)));
  CHECK(gguf_ppl(f) == gguf_ppl(fp32));

  GgufExportOptions o;
  o.float_type = "f16";
  const GgufExportReport r16 = export_gguf(kStoriesDir + "/stories260K.bin", dir.file("f16.gguf"), o);
  CHECK(r16.tensors_by_type.at("F16") == 1 + 5 * 7);
  CHECK(r16.tensors_by_type.at("F32") == 5 * 2 + 1);  // norms stay F32
  LlamaWeights w = read_all_weights(fp32.source());
  auto round16 = [](RowMatrixXf& m) { m = m.cast<Eigen::half>().cast<float>(); };
  round16(w.tok_embeddings);
  for (LlamaLayerWeights& L : w.layers)
    for (int s = 0; s < kLinearSlots; ++s) round16(L.matrix(static_cast<linear_slot>(s)));
  const LlamaModel want(std::move(w));
  const LlamaModel h = load_llama_model(dir.file("f16.gguf"));
  CHECK(gguf_same_bits(h.forward(probe), want.forward(probe)));
  CHECK_FALSE(gguf_same_bits(h.forward(probe), fp32.forward(probe)));
}

TEST_CASE("gguf model: a Hugging Face llama exports in llama.cpp's row order with its tokenizer", "[model][gguf]") {
  LOWBIT_REQUIRE_STORIES();
  if (!std::ifstream(kGgufHfDir + "/tokenizer.json")) {
    WARN("skipped: " << kGgufHfDir << " is missing");
    return;
  }
  lowbit_test::scratch_dir dir;
  const GgufExportReport rep = export_gguf(kGgufHfDir, dir.file("hf.gguf"));
  CHECK(rep.permuted_qk);
  CHECK(rep.tokenizer);
  CHECK(rep.tokenizer_model == "llama");
  const LlamaModel hf(open_model(kGgufHfDir));
  const LlamaModel g = load_llama_model(dir.file("hf.gguf"));
  CHECK(g.config().rope == rope_style::interleaved);
  CHECK(hf.config().rope == rope_style::half);
  // The same model; attention sums its q.k products in another order, so not bit for bit.
  const std::vector<int> probe = {1, 301, 427, 309, 426, 301, 427, 309, 394, 265, 40, 7, 403, 11};
  const RowMatrixXf a = hf.forward(probe), b = g.forward(probe);
  CHECK((a - b).cwiseAbs().maxCoeff() < 1e-4f);
  // llama's own (Meta-order) weights: the permuted q rows are exactly stories260K.bin's.
  const auto* gs = dynamic_cast<const GgufSource*>(&g.source());
  REQUIRE(gs != nullptr);
  CHECK(gguf_same_bits(gs->layer(2).wq, lowbit_test::stories_model().source().layer(2).wq));
  CHECK(gguf_same_bits(gs->layer(2).wk, lowbit_test::stories_model().source().layer(2).wk));
  // Tokenizer metadata.
  const lowbit::GgufFile& f = gs->file();
  CHECK(f.get_string("tokenizer.ggml.model") == "llama");
  const auto& toks = f.get_string_array("tokenizer.ggml.tokens");
  REQUIRE(toks.size() == 512);
  CHECK(toks[1] == "<s>");
  CHECK(toks[3] == "<0x00>");
  const auto types = f.get_array<std::int32_t>("tokenizer.ggml.token_type");
  CHECK(types[0] == 2);
  CHECK(types[1] == 3);
  CHECK(types[3] == 6);
  CHECK(types[300] == 1);
  const auto scores = f.get_array<float>("tokenizer.ggml.scores");
  REQUIRE(scores.size() == 512);
  CHECK(f.get<std::uint32_t>("tokenizer.ggml.bos_token_id") == 1);
  CHECK(f.get<std::uint32_t>("tokenizer.ggml.eos_token_id") == 2);
  CHECK(f.get<std::uint32_t>("tokenizer.ggml.unknown_token_id") == 0);
  CHECK(f.get<bool>("tokenizer.ggml.add_bos_token"));
  CHECK(f.get<std::uint32_t>("llama.context_length") == 512);
  CHECK(f.get<std::uint32_t>("llama.rope.dimension_count") == 8);
  CHECK(f.get<float>("llama.rope.freq_base") == 10000.0f);
}

TEST_CASE("gguf model: export refuses what GGUF cannot hold exactly, naming the layer", "[model][gguf]") {
  LOWBIT_REQUIRE_STORIES();
  auto rtn = [](const char* name) {
    lowbit::LinearRecipe r = lowbit::recipe_from_name(name);
    r.method = lowbit::weight_method::round_to_nearest;  // no calibration here
    return r;
  };
  lowbit::LinearRecipe int4_f32 = rtn("gguf-q4_0");
  int4_f32.weight.scale_storage = lowbit::scale_dtype::f32;
  lowbit::LinearRecipe int8_asym = rtn("gguf-q8_0");
  int8_asym.weight.symmetric = false;
  // data_only: only the quantized values decide (f32 scales that are not fp16 values), so
  // exportable() accepts the recipe and the exporter refuses after quantizing.
  struct refusal { lowbit::LinearRecipe recipe; bool plain_w2; const char* why; bool data_only; };
  const refusal cases[] = {
      {rtn("w4a8-fp"), true, "layers.0.attention.wq: LoRC factors", false},
      {rtn("gguf-q8_0"), false, "layers.0.feed_forward.w2", false},  // 172 columns
      {int4_f32, true, "is not an fp16 value", true},
      {int8_asym, true, "asymmetric int8 (a zero point) has no GGUF type", false},
      {rtn("w8a8-fp8"), true, "no GGUF type", false},
      {rtn("nvfp4"), true, "NVFP4", false},
  };
  // The first refusal exportable() gives for the recipe, before quantizing, in the exporter's
  // order of layers (w2 left unquantized when plain_w2); empty: none.
  const auto first_refusal = [](const lowbit::LinearRecipe& recipe, bool plain_w2) {
    const ModelSource& src = lowbit_test::stories_model().source();
    for (int l = 0; l < src.config().n_layers; ++l) {
      const LlamaLayerWeights w = src.layer(l);
      for (linear_slot s : {linear_slot::wq, linear_slot::wk, linear_slot::wv, linear_slot::wo, linear_slot::w1,
                            linear_slot::w3, linear_slot::w2}) {
        if (plain_w2 && s == linear_slot::w2) continue;
        const Exportable e = exportable(export_format::gguf, export_layer(src.linear_name(l, s), recipe, w.matrix(s).rows(),
                                                                          w.matrix(s).cols()));
        if (!e) return e.reason;
      }
    }
    return std::string();
  };
  for (const refusal& r : cases) {
    INFO(r.recipe.name << " " << r.why);
    lowbit_test::scratch_dir dir;
    gguf_write_checkpoint(dir.path, r.recipe,
                          r.plain_w2 ? gguf_plain_w2 : [](const std::string&) { return false; });
    std::string message;
    try {
      export_gguf(dir.path, dir.file("out.gguf"));
    } catch (const lowbit::error& e) {
      message = e.what();
    }
    CHECK_THAT(message, Catch::Contains(r.why));
    CHECK_FALSE(std::ifstream(dir.file("out.gguf")).good());  // nothing written
    // exportable() said so before quantizing, in the exporter's words (one rule, one home).
    const std::string before = first_refusal(r.recipe, r.plain_w2);
    if (r.data_only)
      CHECK(before.empty());
    else
      CHECK(message == dir.path + ": GGUF export: " + before +
                           " (--allow-lossy writes it requantized and reports the added error)");
  }
  {  // A smoothing vector that is not all ones.
    lowbit_test::scratch_dir dir;
    gguf_write_checkpoint(dir.path, lowbit::recipe_from_name("gguf-q8_0"), gguf_plain_w2,
                          [](const std::string& name, lowbit::QuantizedLinear& q) {
                            if (name == "layers.1.attention.wo") q.smoothing = Eigen::VectorXf::Constant(q.weight.cols, 2.0f);
                          });
    CHECK_THROWS_WITH(export_gguf(dir.path, dir.file("out.gguf")),
                      Catch::Contains("layers.1.attention.wo: a SmoothQuant smoothing vector"));
  }
  {  // Activation quantization is dropped with a warning; the weights export.
    lowbit_test::scratch_dir dir;
    lowbit::LinearRecipe r = lowbit::recipe_from_name("gguf-q8_0");
    r.activations = lowbit::ActivationQuant{lowbit::act_format::int8, 0};
    gguf_write_checkpoint(dir.path, r, gguf_plain_w2);
    const GgufExportReport rep = export_gguf(dir.path, dir.file("out.gguf"));
    CHECK(rep.warnings.size() == 1 + 30);
    CHECK(rep.warnings[0].find("dynamic activation quantization") != std::string::npos);
  }
  // The output is never the input.
  lowbit_test::scratch_dir dir;
  gguf_write_checkpoint(dir.path, lowbit::recipe_from_name("gguf-q4_0"), gguf_plain_w2);
  CHECK_THROWS_WITH(export_gguf(dir.file("model.safetensors"), dir.file("model.safetensors")),
                    Catch::Contains("refusing to overwrite an input"));
}

namespace {

// Copies a GGUF file with edits: metadata `kv_edit` (a value, or nullopt to drop the key),
// tensors `drop`ped or given other dimensions.
void gguf_rewrite(const std::string& in, const std::string& out,
                  const std::function<std::optional<lowbit::GgufValue>(const std::string&, const lowbit::GgufValue&)>& kv_edit,
                  const std::string& drop = "", const std::string& reshape = "", std::vector<std::uint64_t> ne = {}) {
  const lowbit::GgufFile f = lowbit::open_gguf(in);
  lowbit::GgufWriter w(out);
  for (const auto& [k, v] : f.metadata())
    if (const auto nv = kv_edit(k, v)) w.set(k, *nv);
  for (const lowbit::GgufTensor& t : f.tensors())
    if (t.name != drop) w.add_tensor_info(t.name, t.ggml_type(), t.name == reshape ? ne : t.ne);
  for (const lowbit::GgufTensor& t : f.tensors())
    if (t.name != drop) w.write_tensor_data(t.name, t.data, t.nbytes);
  w.finish();
}

}  // namespace

TEST_CASE("gguf model: malformed model-level files give errors naming the problem", "[model][gguf]") {
  LOWBIT_REQUIRE_STORIES();
  lowbit_test::scratch_dir dir;
  gguf_write_checkpoint(dir.path, lowbit::recipe_from_name("gguf-q8_0"), gguf_plain_w2);
  export_gguf(dir.path, dir.file("good.gguf"));
  const auto same = [](const std::string&, const lowbit::GgufValue& v) { return std::optional<lowbit::GgufValue>(v); };
  auto set = [](const std::string& key, std::optional<lowbit::GgufValue> nv) {
    return [key, nv](const std::string& k, const lowbit::GgufValue& v) { return k == key ? nv : std::optional<lowbit::GgufValue>(v); };
  };
  struct bad { std::string what; std::function<void(const std::string&)> make; };
  const std::string good = dir.file("good.gguf");
  const std::vector<bad> cases = {
      {"missing tensor blk.1.ffn_up.weight", [&](const std::string& p) { gguf_rewrite(good, p, same, "blk.1.ffn_up.weight"); }},
      {"tensor blk.0.attn_k.weight has shape (ne) {32, 64}, the metadata implies {64, 32}",
       [&](const std::string& p) { gguf_rewrite(good, p, same, "", "blk.0.attn_k.weight", {32, 64}); }},
      {"architecture 'gpt2' is not supported",
       [&](const std::string& p) { gguf_rewrite(good, p, set("general.architecture", lowbit::GgufValue::string("gpt2"))); }},
      {"missing key 'llama.embedding_length'",
       [&](const std::string& p) { gguf_rewrite(good, p, set("llama.embedding_length", std::nullopt)); }},
      {"key 'llama.block_count' must be an integer",
       [&](const std::string& p) { gguf_rewrite(good, p, set("llama.block_count", lowbit::GgufValue::string("5"))); }},
      {"tensor blk.4.attn_norm.weight is not part of a llama model",
       [&](const std::string& p) { gguf_rewrite(good, p, set("llama.block_count", lowbit::GgufValue::scalar(std::uint32_t(4)))); }},
      {"missing tensor blk.5.attn_norm.weight",
       [&](const std::string& p) { gguf_rewrite(good, p, set("llama.block_count", lowbit::GgufValue::scalar(std::int64_t(6)))); }},
      {"tensor blk.0.ffn_gate.weight has shape (ne) {64, 172}, the metadata implies {64, 160}",
       [&](const std::string& p) { gguf_rewrite(good, p, set("llama.feed_forward_length", lowbit::GgufValue::scalar(std::uint32_t(160)))); }},
      {"rope.dimension_count 4 differs from the head size 8",
       [&](const std::string& p) { gguf_rewrite(good, p, set("llama.rope.dimension_count", lowbit::GgufValue::scalar(std::uint32_t(4)))); }},
  };
  for (std::size_t i = 0; i < cases.size(); ++i) {
    INFO(cases[i].what);
    const std::string p = dir.file("bad" + std::to_string(i) + ".gguf");
    try {
      cases[i].make(p);
    } catch (const lowbit::error& e) {
      FAIL(std::string("could not write the malformed file: ") + e.what());
    }
    CHECK_THROWS_WITH(load_llama_model(p), Catch::Contains(cases[i].what));
  }
  CHECK_NOTHROW(load_llama_model(good));
}

TEST_CASE("gguf model: the gguf-* recipes are ggml's Q8_0 / Q4_0 grids", "[model][gguf]") {
  // Q4_0's scale is -max / 8 of the signed extreme, so that value gets code -8 (amax / 7 would
  // never use -8); Q8_0's is amax / 127. Both fp16.
  RowMatrixXf w(2, 32);
  for (int j = 0; j < 32; ++j) {
    w(0, j) = 0.01f * float(j - 10);  // extreme +0.21
    w(1, j) = -0.02f * float(j);      // extreme -0.62
  }
  for (const char* name : {"gguf-q4_0", "gguf-q4_0-gptq", "gguf-q8_0", "gguf-q8_0-gptq"}) {
    INFO(name);
    const lowbit::LinearRecipe r = lowbit::recipe_from_name(name);
    CHECK(r.weight.scale_storage == lowbit::scale_dtype::f16);
    CHECK(r.weight.group_size == 32);
    CHECK(r.weight.symmetric);
    CHECK((r.method == lowbit::weight_method::gptq) == (std::string(name).find("gptq") != std::string::npos));
  }
  lowbit::LinearRecipe r = lowbit::recipe_from_name("gguf-q4_0");
  const lowbit::QuantizedLinear q = lowbit::quantize_linear(w, r, nullptr, "probe");
  CHECK(lowbit::gguf_type_for(q.weight) == lowbit::gguf_type::q4_0);
  const auto half = [](float x) { return lowbit::detail::half_to_float(lowbit::detail::float_to_half(x)); };
  CHECK(q.weight.scales[0] == half(w(0, 31) / -8.0f));
  CHECK(q.weight.scales[1] == half(w(1, 31) / -8.0f));
  const lowbit::QuantizedLinear q8 = lowbit::quantize_linear(w, lowbit::recipe_from_name("gguf-q8_0"), nullptr, "probe");
  CHECK(lowbit::gguf_type_for(q8.weight) == lowbit::gguf_type::q8_0);
  CHECK(q8.weight.scales[1] == half(-w(1, 31) / 127.0f));
}

TEST_CASE("gguf model: qwen2 exports with its biases and Hugging Face row order, and imports exactly", "[model][gguf]") {
  if (!std::ifstream(kGgufHfDir + "/tokenizer.json")) {
    WARN("skipped: " << kGgufHfDir << " is missing");
    return;
  }
  // stories260K's Hugging Face weights as a qwen2 model with random q/k/v biases.
  lowbit_test::scratch_dir dir;
  const LlamaWeights w = read_all_weights(*open_model(kGgufHfDir));
  {
    lowbit::SafetensorsWriter out(dir.file("model.safetensors"));
    auto mat = [&](const std::string& n, const RowMatrixXf& m) {
      out.add(n, lowbit::tensor_dtype::f32, {m.rows(), m.cols()}, m.data(), std::size_t(m.size()) * 4);
    };
    std::vector<Eigen::VectorXf> keep;
    auto vec = [&](const std::string& n, const Eigen::VectorXf& v) {
      keep.push_back(v);
      out.add(n, lowbit::tensor_dtype::f32, {v.size()}, keep.back().data(), std::size_t(v.size()) * 4);
    };
    keep.reserve(64);
    mat("model.embed_tokens.weight", w.tok_embeddings);
    vec("model.norm.weight", w.norm);
    for (int l = 0; l < w.config.n_layers; ++l) {
      const LlamaLayerWeights& L = w.layers[std::size_t(l)];
      vec(TensorNames::attention_norm(l, weight_naming::hf), L.attention_norm);
      vec(TensorNames::ffn_norm(l, weight_naming::hf), L.ffn_norm);
      for (int s = 0; s < kLinearSlots; ++s) {
        const auto slot = static_cast<linear_slot>(s);
        mat(linear_name(l, slot, weight_naming::hf) + ".weight", L.matrix(slot));
        if (s < 3) vec(linear_name(l, slot, weight_naming::hf) + ".bias", Eigen::VectorXf::Random(L.matrix(slot).rows()) * 0.5f);
      }
    }
    out.finish();
    std::ifstream in(kGgufHfDir + "/config.json");
    std::string cfg((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
    cfg.replace(cfg.find("LlamaForCausalLM"), 16, "Qwen2ForCausalLM");
    cfg.replace(cfg.find("\"llama\""), 7, "\"qwen2\"");
    std::ofstream(dir.file("config.json")) << cfg;
    std::ifstream tin(kGgufHfDir + "/tokenizer.json");
    std::ofstream(dir.file("tokenizer.json")) << tin.rdbuf();
  }
  const GgufExportReport rep = export_gguf(dir.path, dir.file("q.gguf"));
  CHECK(rep.architecture == "qwen2");
  CHECK_FALSE(rep.permuted_qk);
  const LlamaModel a(open_model(dir.path));
  REQUIRE(a.config().arch == model_arch::qwen2);
  const LlamaModel b = load_llama_model(dir.file("q.gguf"));
  CHECK(b.config().arch == model_arch::qwen2);
  CHECK(b.config().qkv_bias);
  CHECK(b.config().rope == rope_style::half);
  const std::vector<int> probe = {1, 301, 427, 309, 426, 301, 427, 309};
  const RowMatrixXf la = a.forward(probe), lb = b.forward(probe);
  CHECK(gguf_same_bits(la, lb));
  CHECK(dynamic_cast<const GgufSource&>(b.source()).file().get_string("general.architecture") == "qwen2");
}
}  // namespace test_model_gguf_cpp
