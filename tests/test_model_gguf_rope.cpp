// llama3 rope scaling through GGUF (model/gguf_export.hpp, model/gguf_source.hpp, rope.hpp):
// a Hugging Face llama with a Llama-3.1-style rope_scaling exports a rope_freqs tensor of
// per-pair divisors (as llama.cpp's converter does, no scaling keys), and the re-imported
// model computes the Hugging Face frequencies and the same logits. Malformed rope_freqs
// tensors and rope scalings with no llama.cpp form are refused, naming the tensor / rule.
#include <catch2/catch.hpp>

#include <unistd.h>

#include <cmath>
#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>
#include <string>
#include <vector>

#include "lowbit/io/gguf_writer.hpp"
#include "lowbit/model/exportable.hpp"
#include "lowbit/model/gguf_export.hpp"
#include "lowbit/model/quantized_model.hpp"
#include "lowbit/model/rope.hpp"
#include "test_io_support.hpp"

namespace test_model_gguf_rope_cpp {

using namespace lowbit::model;
using lowbit::RowMatrixXf;

namespace {

const std::string kGropeHf = std::string(LOWBIT_SHARED_DATA_DIR) + "/stories260k-hf";

// stories260k-hf (its weights linked, not copied) with `rope_scaling` in its config.json.
void grope_make_hf_dir(const std::string& dir, const nlohmann::json& rope_scaling) {
  std::ifstream in(kGropeHf + "/config.json");
  nlohmann::json c = nlohmann::json::parse(in);
  c["rope_scaling"] = rope_scaling;
  std::ofstream(dir + "/config.json") << c.dump(2);
  for (const char* f : {"model-00001-of-00002.safetensors", "model-00002-of-00002.safetensors", "model.safetensors.index.json"})
    REQUIRE(::symlink((kGropeHf + "/" + f).c_str(), (dir + "/" + f).c_str()) == 0);
}

// Llama 3.1's scaling, with an original context short enough that stories260K's 4 rotary
// pairs (wavelengths 6.3, 63, 628, 6283 positions) fall in all three bands: pair 0 is kept,
// pair 1 blended, pairs 2 and 3 divided by the factor.
const nlohmann::json kGropeLlama3 = {{"rope_type", "llama3"}, {"factor", 8.0}, {"low_freq_factor", 1.0},
                                     {"high_freq_factor", 4.0}, {"original_max_position_embeddings", 64}};

// A copy of `in` with rope_freqs.weight replaced by `ff` (F32, shape {ff.size()}).
void grope_rewrite(const std::string& in, const std::string& out, const std::vector<float>& ff) {
  const lowbit::GgufFile f = lowbit::GgufFile::open(in);
  lowbit::GgufWriter w(out);
  for (const auto& [k, v] : f.metadata()) w.set(k, v);
  for (const auto& t : f.tensors())
    if (t.name == "rope_freqs.weight") w.add_tensor_info(t.name, lowbit::gguf_type::f32, {ff.size()});
    else w.add_tensor_info(t.name, t.ggml_type(), t.ne);
  for (const auto& t : f.tensors())
    if (t.name == "rope_freqs.weight") w.write_tensor_data(t.name, ff.data(), ff.size() * 4);
    else w.write_tensor_data(t.name, t.data, t.nbytes);
  w.finish();
}

}  // namespace

TEST_CASE("gguf rope: llama3 scaling exports rope_freqs and re-imports to the same logits", "[gguf][rope]") {
  if (!std::ifstream(kGropeHf + "/config.json")) {
    WARN("skipped: " << kGropeHf << " is missing");
    return;
  }
  lowbit_test::scratch_dir dir;
  const std::string hf_dir = dir.file("hf");
  REQUIRE(::mkdir(hf_dir.c_str(), 0755) == 0);
  grope_make_hf_dir(hf_dir, kGropeLlama3);
  const std::string out = dir.file("llama3.gguf");
  const GgufExportReport rep = export_gguf(hf_dir, out);
  CHECK(rep.permuted_qk);

  const LlamaModel hf(open_model(hf_dir));
  REQUIRE(hf.config().rope_scaling.type == rope_scaling_type::llama3);
  const LlamaModel g = load_llama_model(out);
  const auto* gs = dynamic_cast<const GgufSource*>(&g.source());
  REQUIRE(gs != nullptr);

  // The file: llama.cpp's form (a rope_freqs tensor, no scaling keys).
  const lowbit::GgufFile& f = gs->file();
  CHECK(f.find_value("llama.rope.scaling.type") == nullptr);
  const lowbit::GgufTensor& t = f.at("rope_freqs.weight");
  REQUIRE(t.ggml_type() == lowbit::gguf_type::f32);
  REQUIRE(t.ne == std::vector<std::uint64_t>{4});
  std::vector<float> ff(4);
  std::memcpy(ff.data(), t.data, 16);
  CHECK(ff[0] == 1.0f);                 // wavelength 6.3 < 64 / 4: kept
  CHECK(ff[1] > 1.0f);                  // 63 between 16 and 64: blended
  CHECK(ff[1] < 8.0f);
  CHECK(ff[2] == 8.0f);                 // above 64: divided by the factor
  CHECK(ff[3] == 8.0f);

  // The imported model's frequencies are the Hugging Face llama3 ones (up to the factors'
  // rounding to float).
  REQUIRE(g.config().rope_scaling.type == rope_scaling_type::none);
  REQUIRE(g.config().rope_scaling.freq_factors.size() == 4);
  const RopeFrequencies a = rope_frequencies(hf.config(), 100), b = rope_frequencies(g.config(), 100);
  for (int i = 0; i < 4; ++i) CHECK(std::abs(a.inv_freq[std::size_t(i)] / b.inv_freq[std::size_t(i)] - 1.0) < 1e-6);

  // Logits over 64 positions: the same model (q/k rows reordered, so not bit for bit), and
  // far from the unscaled model, so ignoring the factors cannot pass.
  std::vector<int> probe = {1};
  for (int i = 0; i < 63; ++i) probe.push_back(3 + (i * 37 + 11) % 500);
  const RowMatrixXf la = hf.forward(probe), lb = g.forward(probe);
  const float diff = (la - lb).cwiseAbs().maxCoeff();
  CHECK(diff < 1e-4f);
  const LlamaModel plain(open_model(kGropeHf));
  const float scaling_effect = (la - plain.forward(probe)).cwiseAbs().maxCoeff();
  CHECK(scaling_effect > 0.05f);
  WARN("llama3 GGUF vs HF max |logit diff| " << diff << "; llama3 vs unscaled " << scaling_effect);

  // Malformed rope_freqs: wrong length, non-positive factor.
  grope_rewrite(out, dir.file("short.gguf"), {1.0f, 2.0f, 3.0f});
  CHECK_THROWS_WITH(load_llama_model(dir.file("short.gguf")),
                    Catch::Contains("rope_freqs.weight") && Catch::Contains("{4}"));
  grope_rewrite(out, dir.file("neg.gguf"), {1.0f, -2.0f, 8.0f, 8.0f});
  CHECK_THROWS_WITH(load_llama_model(dir.file("neg.gguf")),
                    Catch::Contains("rope_freqs.weight: factor 1"));
}

TEST_CASE("gguf rope: exportable() refuses rope scalings llama.cpp cannot run", "[gguf][rope]") {
  LlamaConfig c;
  c.dim = 64, c.hidden_dim = 128, c.n_layers = 1, c.n_heads = 4, c.n_kv_heads = 4, c.vocab_size = 32;
  c.rope_scaling.type = rope_scaling_type::llama3;
  c.rope_scaling.factor = 8.0;
  c.rope_scaling.original_max_position_embeddings = 8192;
  CHECK(exportable(export_format::gguf, c));
  c.arch = model_arch::qwen2;
  c.qkv_bias = true;
  CHECK_FALSE(exportable(export_format::gguf, c));
  CHECK_THAT(exportable(export_format::gguf, c).reason, Catch::Contains("llama architecture only"));
  c.arch = model_arch::llama;
  c.qkv_bias = false;
  c.rope_scaling.type = rope_scaling_type::dynamic;
  CHECK_THAT(exportable(export_format::gguf, c).reason, Catch::Contains("'dynamic'"));
  c.rope_scaling.type = rope_scaling_type::yarn;
  CHECK(exportable(export_format::gguf, c));
  c.rope_scaling.beta_fast = 16.0;
  CHECK_THAT(exportable(export_format::gguf, c).reason, Catch::Contains("non-default beta_fast"));
}

}  // namespace test_model_gguf_rope_cpp
