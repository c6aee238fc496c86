// Loading quantized checkpoints (model/quantized_model.hpp): a checkpoint of stories260K's
// layers quantized by a recipe loads into a model whose logits equal, bit for bit, the model
// that quantized the same layers in memory (what `eval --recipe` runs); bad checkpoints give
// errors naming the layer.
#include <catch2/catch.hpp>

#include <algorithm>
#include <fstream>
#include <functional>
#include <string>
#include <vector>

#include "lowbit/algo/recipes.hpp"
#include "lowbit/io/linear_checkpoint.hpp"
#include "lowbit/model/calibration.hpp"
#include "lowbit/model/quantized_layers.hpp"
#include "lowbit/model/quantized_model.hpp"
#include "test_io_support.hpp"
#include "test_model_support.hpp"

// One namespace per test file, so that any set of test files can be compiled as one
// unity translation unit (tests/CMakeLists.txt) without their file-local names clashing.
namespace test_model_qload_cpp {

using namespace lowbit::model;
using lowbit::RowMatrixXf;
using lowbit_test::kStoriesDir;

namespace {

struct ckpt_tweaks {
  std::string config_json;                                   // replaces the copied config.json
  std::function<bool(const std::string&)> skip;              // layers / tensors left out
  std::function<void(const std::string&, lowbit::QuantizedLinear&)> edit;  // before writing
  bool bf16_embedding = false;
  bool nan_norm = false;
  std::vector<std::string> extra_layers;                     // written in addition
  std::vector<std::string> plain_layers;                     // written as fp32 tensors
  std::string metadata_config;                               // stored as checkpoint_config_key
  bool no_config_file = false;                               // no config.json beside the file
};

// Writes `dir`/model.safetensors as `lowbit quantize` lays it out: every linear layer of the
// blocks quantized by `recipe` (with the layer's calibration statistics), the embedding and
// norms as plain tensors, and config.json copied.
void write_checkpoint(const std::string& dir, const LlamaModel& fp32, const lowbit::LinearRecipe& recipe,
                      const CalibrationRecorder* calib, const ckpt_tweaks& tw = {}) {
  const LlamaWeights w = read_all_weights(fp32.source());
  const LlamaConfig& c = w.config;
  lowbit::SafetensorsWriter out(dir + "/model.safetensors");
  lowbit::begin_checkpoint(out);
  const auto skip = [&](const std::string& n) { return tw.skip && tw.skip(n); };
  const auto vec = [&](const std::string& n, const Eigen::VectorXf& v) {
    Eigen::VectorXf x = v;
    if (tw.nan_norm && n == "layers.2.ffn_norm.weight") x(3) = NAN;
    if (!skip(n)) out.add(n, lowbit::tensor_dtype::f32, {x.size()}, x.data(), std::size_t(x.size()) * 4);
  };
  if (tw.bf16_embedding) {
    const Eigen::Matrix<Eigen::bfloat16, -1, -1, Eigen::RowMajor> e = w.tok_embeddings.cast<Eigen::bfloat16>();
    out.add("tok_embeddings.weight", lowbit::tensor_dtype::bf16, {c.vocab_size, c.dim}, e.data(), std::size_t(e.size()) * 2);
  } else {
    out.add("tok_embeddings.weight", lowbit::tensor_dtype::f32, {c.vocab_size, c.dim}, w.tok_embeddings.data(),
            std::size_t(w.tok_embeddings.size()) * 4);
  }
  vec("norm.weight", w.norm);
  std::vector<std::string> names;
  for (int l = 0; l < c.n_layers; ++l) {
    vec("layers." + std::to_string(l) + ".attention_norm.weight", w.layers[std::size_t(l)].attention_norm);
    vec("layers." + std::to_string(l) + ".ffn_norm.weight", w.layers[std::size_t(l)].ffn_norm);
    const LlamaLayerWeights& L = w.layers[std::size_t(l)];
    const RowMatrixXf* mats[kLinearSlots] = {&L.wq, &L.wk, &L.wv, &L.wo, &L.w1, &L.w2, &L.w3};
    for (int s = 0; s < kLinearSlots; ++s) {
      const std::string name = linear_name(l, static_cast<linear_slot>(s));
      if (skip(name)) continue;
      if (std::find(tw.plain_layers.begin(), tw.plain_layers.end(), name) != tw.plain_layers.end()) {
        out.add(name + ".weight", lowbit::tensor_dtype::f32, {mats[s]->rows(), mats[s]->cols()}, mats[s]->data(),
                std::size_t(mats[s]->size()) * 4);
        continue;
      }
      lowbit::QuantizedLinear q =
          lowbit::quantize_linear(*mats[s], recipe, calib ? calib->find(name) : nullptr, name);
      if (tw.edit) tw.edit(name, q);
      lowbit::write_quantized_linear(out, name, q);
    }
  }
  for (const std::string& name : tw.extra_layers)
    lowbit::write_quantized_linear(out, name, lowbit::quantize_linear(w.layers[0].wq, recipe, nullptr, name));
  if (!tw.metadata_config.empty()) out.set_metadata(lowbit::checkpoint_config_key, tw.metadata_config);
  out.finish();
  if (tw.no_config_file) return;
  std::ifstream in(kStoriesDir + "/config.json");
  const std::string cfg((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  std::ofstream(dir + "/config.json") << (tw.config_json.empty() ? cfg : tw.config_json);
}

// stories260K's calibration statistics over its first 4 documents (computed once).
const CalibrationRecorder& stories_calibration() {
  static const CalibrationRecorder rec = [] {
    const std::vector<int> tokens = read_u16_tokens(kStoriesDir + "/eval_tinystories_val_tok512.u16");
    lowbit::CalibrationOptions co;
    co.max_sample_rows = 512;
    CalibrationRun run;
    run.max_docs = 4;
    return calibrate(lowbit_test::stories_model(), tokens, co, run);
  }();
  return rec;
}

const std::vector<int>& probe_ids() {
  static const std::vector<int> ids = {1, 301, 427, 309, 426, 301, 427, 309, 394, 265, 40, 7, 403, 11};
  return ids;
}

}  // namespace

TEST_CASE("quantized checkpoint: loads bit-identical to quantizing in memory", "[model]") {
  LOWBIT_REQUIRE_STORIES();
  const LlamaModel& fp32 = lowbit_test::stories_model();
  const CalibrationRecorder& rec = stories_calibration();
  // RTN int4 with packed kernels, GPTQ + int8 activations, smoothing search, FP4 + LoRC + FP8
  // activations, and MX scales (reference path: no kernel).
  for (const char* recipe : {"w4a16-int4", "w4a8-int", "w4a16-sqplus", "w4a8-fp", "mxfp4", "w8a8-int8"}) {
    lowbit_test::scratch_dir dir;
    lowbit::LinearRecipe r = lowbit::recipe_from_name(recipe);
    r.scope = lowbit::smoothing_scope::per_layer;  // write_checkpoint quantizes layer by layer
    write_checkpoint(dir.path, fp32, r, &rec);
    // In memory, as `lowbit eval --recipe` builds it.
    LlamaModel ref(load_llama_weights(kStoriesDir + "/stories260K.bin"));
    EvalScheme scheme;
    scheme.recipe = r;
    scheme.name = recipe;
    ref.set_linear_layers(scheme_linear_factory(scheme, &rec));
    for (const std::string& path : {dir.path, dir.file("model.safetensors")}) {
      INFO(recipe << " from " << path);
      REQUIRE(is_lowbit_checkpoint_path(path));
      const LlamaModel loaded = load_llama_model(path);
      CHECK(loaded.config().n_heads == 8);
      CHECK(loaded.config().n_kv_heads == 4);
      const RowMatrixXf a = ref.forward(probe_ids()), b = loaded.forward(probe_ids());
      CHECK(a.cwiseEqual(b).all());
      CHECK((a - fp32.forward(probe_ids())).cwiseAbs().maxCoeff() > 0.0f);  // really quantized
      for (std::size_t i = 0; i < ref.linear_layers().size(); ++i)
        CHECK(loaded.linear_layers()[i].second->describe() == ref.linear_layers()[i].second->describe());
    }
  }
  CHECK_FALSE(is_lowbit_checkpoint_path(kStoriesDir + "/stories260K.safetensors"));
  CHECK_FALSE(is_lowbit_checkpoint_path(kStoriesDir + "/stories260K.bin"));
}

// QuantizedLoadOptions::input: a checkpoint's weight-only layers run on bf16 activations
// exactly as the same recipe quantized in memory with EvalScheme::input (what `eval --recipe R
// --activations bf16` builds), smoothing included; its A8 layers are unchanged.
TEST_CASE("quantized checkpoint: 16-bit activations load bit-identical to quantizing in memory", "[model]") {
  LOWBIT_REQUIRE_STORIES();
  const LlamaModel& fp32 = lowbit_test::stories_model();
  const CalibrationRecorder& rec = stories_calibration();
  for (const char* recipe : {"w4a16-sqplus", "w4a16-int4", "w4a8-int"}) {
    lowbit_test::scratch_dir dir;
    lowbit::LinearRecipe r = lowbit::recipe_from_name(recipe);
    r.scope = lowbit::smoothing_scope::per_layer;
    write_checkpoint(dir.path, fp32, r, &rec);
    const bool weight_only = !r.activations;
    for (const lowbit::activation_dtype in : {lowbit::activation_dtype::bf16, lowbit::activation_dtype::f16}) {
      INFO(recipe << " on " << lowbit::to_string(in) << " activations");
      LlamaModel ref(load_llama_weights(kStoriesDir + "/stories260K.bin"));
      EvalScheme scheme;
      scheme.recipe = r;
      scheme.name = recipe;
      scheme.input = in;
      ref.set_linear_layers(scheme_linear_factory(scheme, &rec));
      QuantizedLoadOptions opt;
      opt.input = in;
      const LlamaModel loaded = load_llama_model(dir.path, opt);
      const LlamaModel as_stored = load_llama_model(dir.path);
      const RowMatrixXf a = ref.forward(probe_ids()), b = loaded.forward(probe_ids());
      CHECK(a.cwiseEqual(b).all());
      const float moved = (b - as_stored.forward(probe_ids())).cwiseAbs().maxCoeff();
      if (weight_only) CHECK(moved > 0.0f);  // the option is not ignored
      else CHECK(moved == 0.0f);             // A8 layers quantize their fp32 input as stored
      for (std::size_t i = 0; i < ref.linear_layers().size(); ++i)
        CHECK(loaded.linear_layers()[i].second->describe() == ref.linear_layers()[i].second->describe());
      const std::string d = loaded.linear_layers()[0].second->describe();
      CHECK((d.find(std::string(" + ") + std::string(lowbit::to_string(in)) + " activations") != std::string::npos) == weight_only);
    }
  }
  // An fp32 model has no weight-only layers to round the input of: an error, not a no-op.
  QuantizedLoadOptions bf16;
  bf16.input = lowbit::activation_dtype::bf16;
  CHECK_THROWS_WITH(load_llama_model(kStoriesDir + "/stories260K.bin", bf16),
                    Catch::Contains("bf16 activations are for a quantized model's weight-only layers"));
}

TEST_CASE("quantized checkpoint: a single file loads alone with the config.json in its metadata", "[model]") {
  // `lowbit quantize` stores the source's config.json text in a single-file output; a
  // Meta-name checkpoint needs it for its head count. One beside the file wins.
  LOWBIT_REQUIRE_STORIES();
  const LlamaModel& fp32 = lowbit_test::stories_model();
  const lowbit::LinearRecipe r = lowbit::recipe_from_name("mxfp4");
  std::ifstream in(kStoriesDir + "/config.json");
  const std::string cfg((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  lowbit_test::scratch_dir with_file, alone, both, neither, bad;
  write_checkpoint(with_file.path, fp32, r, nullptr);
  ckpt_tweaks tw;
  tw.metadata_config = cfg;
  tw.no_config_file = true;
  write_checkpoint(alone.path, fp32, r, nullptr, tw);
  const LlamaModel ref = load_llama_model(with_file.file("model.safetensors"));
  const LlamaModel m = load_llama_model(alone.file("model.safetensors"));
  CHECK(m.config().n_heads == 8);
  CHECK(m.config().n_kv_heads == 4);
  CHECK(ref.forward(probe_ids()).cwiseEqual(m.forward(probe_ids())).all());
  // Beside the file wins: the metadata's n_heads 16 would give another head_dim.
  tw.metadata_config = R"({"n_heads": 16})";
  tw.no_config_file = false;
  write_checkpoint(both.path, fp32, r, nullptr, tw);
  CHECK(load_llama_model(both.file("model.safetensors")).config().n_heads == 8);
  // The stored text is checked like a file, and errors say where it came from.
  tw.metadata_config = R"({"n_heads": 8, "hidden_dim": 176})";
  tw.no_config_file = true;
  write_checkpoint(bad.path, fp32, r, nullptr, tw);
  CHECK_THROWS_WITH(load_llama_model(bad.file("model.safetensors")), Catch::Contains("hidden_dim 176"));
  tw.metadata_config = "not json";
  write_checkpoint(bad.path, fp32, r, nullptr, tw);
  CHECK_THROWS_WITH(load_llama_model(bad.file("model.safetensors")), Catch::Contains("lowbit.config"));
  tw.metadata_config.clear();
  write_checkpoint(neither.path, fp32, r, nullptr, tw);
  CHECK_THROWS_WITH(load_llama_model(neither.file("model.safetensors")), Catch::Contains("the head count is not in the file"));
}

TEST_CASE("quantized checkpoint: plain layers, stored dtypes, required kernels", "[model]") {
  LOWBIT_REQUIRE_STORIES();
  const LlamaModel& fp32 = lowbit_test::stories_model();
  lowbit_test::scratch_dir dir;
  // E5M2 activations: no kernel quantizes activations so.
  lowbit::LinearRecipe r = lowbit::recipe_from_name("mxfp4");
  r.activations = lowbit::ActivationQuant{lowbit::act_format::float8_e5m2, 0};
  ckpt_tweaks tw;
  tw.bf16_embedding = true;
  tw.plain_layers = {"layers.1.feed_forward.w2"};
  write_checkpoint(dir.path, fp32, r, nullptr, tw);
  const LlamaModel m = load_quantized_llama(dir.path);
  // The embedding is read from BF16: exactly the rounded values.
  CHECK(m.source().embeddings() == fp32.source().embeddings().cast<Eigen::bfloat16>().cast<float>());
  // No kernel: the reference path, or an error naming the layer on request.
  QuantizedLoadOptions strict;
  strict.require_kernels = true;
  CHECK_THROWS_WITH(load_quantized_llama(dir.path, strict),
                    Catch::Contains("layer layers.0.attention.wq: no kernel of this CPU runs its scheme"));
  // A layer written as a plain fp32 tensor (excluded from quantization) runs in fp32. A
  // quantized model's layers cannot be rebuilt (that would quantize twice).
  CHECK(m.linear(1, linear_slot::w2).describe() == "fp32");
  CHECK(m.linear(1, linear_slot::w1).describe() == "recipe mxfp4 (reference path)");
  LlamaModel copy(load_quantized_llama(dir.path));
  CHECK_THROWS_WITH(copy.set_linear_layers(fp32_linear_factory()), Catch::Contains("loaded already quantized"));
}

TEST_CASE("quantized checkpoint: bad checkpoints name the layer", "[model]") {
  LOWBIT_REQUIRE_STORIES();
  const LlamaModel& fp32 = lowbit_test::stories_model();
  const lowbit::LinearRecipe r = lowbit::recipe_from_name("mxfp4");
  const auto expect = [&](const ckpt_tweaks& tw, const std::string& message) {
    lowbit_test::scratch_dir dir;
    write_checkpoint(dir.path, fp32, r, nullptr, tw);
    INFO(message);
    CHECK_THROWS_WITH(load_quantized_llama(dir.path), Catch::Contains(message));
  };
  ckpt_tweaks tw;
  tw.skip = [](const std::string& n) { return n == "layers.3.feed_forward.w2"; };
  expect(tw, "missing tensor layers.3.feed_forward.w2.weight");
  tw = {};
  tw.extra_layers = {"layers.9.attention.wk"};
  expect(tw, "quantized layer layers.9.attention.wk is not a linear layer of this model");
  tw = {};
  tw.config_json = R"({"n_heads": 8, "hidden_dim": 176})";
  expect(tw, "config.json says hidden_dim 176 but the tensors give 172");
  tw.config_json = R"({"n_heads": 8, "n_layers": 6})";
  expect(tw, "config.json says n_layers 6");
  tw.config_json = R"({"dim": 64})";
  expect(tw, "the head count is not in the file");
  tw = {};
  tw.nan_norm = true;
  expect(tw, "layers.2.ffn_norm.weight has a non-finite value");
  tw = {};
  tw.edit = [](const std::string& n, lowbit::QuantizedLinear& q) {
    if (n == "layers.4.feed_forward.w3") q.bias = Eigen::VectorXf::Constant(q.out_features(), NAN);
  };
  {  // the writer refuses it before the file exists (issue 15 item 3), naming the layer
    lowbit_test::scratch_dir dir;
    CHECK_THROWS_WITH(write_checkpoint(dir.path, fp32, r, nullptr, tw), Catch::Contains("layers.4.feed_forward.w3"));
  }
  tw = {};
  tw.skip = [](const std::string& n) { return n == "layers.0.attention.wk"; };
  expect(tw, "missing tensor layers.0.attention.wk.weight");
  {
    lowbit_test::scratch_dir dir;
    std::ofstream(dir.file("model.safetensors")) << "not safetensors";
    CHECK_THROWS_AS(load_llama_model(dir.path), lowbit::error);
  }
}
}  // namespace test_model_qload_cpp
