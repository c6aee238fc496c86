// `--allow-lossy` export (model/export_lossy.hpp): a layer GGUF or compressed-tensors cannot
// hold exactly (here: LoRC factors, a smoothing vector on a layer with no norm) is refused
// without the option, naming the layer and the option; with it, the layer's effective weight
// (W_hat + U V) diag(1/s) is requantized to the target's grid, the file re-imports to exactly
// those requantized weights, and the reported error is the true one (recomputed here).
#include <catch2/catch.hpp>

#include <cmath>
#include <cstring>
#include <fstream>
#include <functional>
#include <string>
#include <vector>

#include "lowbit/algo/recipes.hpp"
#include "lowbit/io/linear_checkpoint.hpp"
#include "lowbit/model/ct_export.hpp"
#include "lowbit/model/gguf_export.hpp"
#include "lowbit/model/quantized_model.hpp"
#include "test_io_support.hpp"
#include "test_model_checkpoint_support.hpp"
#include "test_model_support.hpp"

// One namespace per test file, so that any set of test files can be compiled as one
// unity translation unit without their file-local names clashing.
namespace test_model_export_lossy_cpp {

using namespace lowbit::model;
using lowbit::RowMatrixXf;
using lowbit_test::kStoriesDir;

namespace {

// `dir`/model.safetensors: stories260K with every linear but w2 (172 columns, no 32-blocks)
// quantized by gguf-q8_0 plus LoRC rank 4, and a smoothing vector on layers.1.attention.wo;
// config.json copied.
void lossy_write_checkpoint(const std::string& dir) {
  lowbit::LinearRecipe recipe = lowbit::recipe_from_name("gguf-q8_0");
  recipe.lorc_rank = 4;
  lowbit_test::write_stories_checkpoint(dir, false, [&](const std::string& name, const RowMatrixXf& m) {
    if (name.find("feed_forward.w2") != std::string::npos) return lowbit::QuantizedLinear{};
    lowbit::QuantizedLinear q = lowbit::quantize_linear(m, recipe, nullptr, name);
    if (name == "layers.1.attention.wo") {
      Eigen::VectorXf s2(m.cols());
      for (Eigen::Index j = 0; j < s2.size(); ++j) s2[j] = 0.5f + 0.125f * float(j % 7);
      q.smoothing = s2;
    }
    return q;
  });
}

// The effective weight computed here, not by the library: dequantized codes, plus U V, with
// column j times 1/s_j (the layer's own rounding: it multiplies x by 1/s).
RowMatrixXf lossy_effective(const lowbit::QuantizedLinear& q) {
  RowMatrixXf w = lowbit::dequantize(q.weight);
  if (q.lorc) w += q.lorc->u * q.lorc->v;
  if (q.smoothing)
    for (Eigen::Index j = 0; j < w.cols(); ++j) w.col(j) *= 1.0f / (*q.smoothing)[j];
  return w;
}

bool lossy_same_bits(const RowMatrixXf& a, const RowMatrixXf& b) {
  return a.rows() == b.rows() && a.cols() == b.cols() &&
         std::memcmp(a.data(), b.data(), std::size_t(a.size()) * sizeof(float)) == 0;
}

// SQNR (dB) and relative Frobenius error of `got` against `ref`, in double.
void lossy_error(const RowMatrixXf& ref, const RowMatrixXf& got, double& sqnr_db, double& rel) {
  double r2 = 0, e2 = 0;
  for (Eigen::Index i = 0; i < ref.size(); ++i) {
    const double d = double(ref.data()[i]) - double(got.data()[i]);
    r2 += double(ref.data()[i]) * double(ref.data()[i]);
    e2 += d * d;
  }
  sqnr_db = 10.0 * std::log10(r2 / e2);
  rel = std::sqrt(e2 / r2);
}

const LossyLayer* lossy_find(const std::vector<LossyLayer>& v, const std::string& name) {
  for (const auto& l : v)
    if (l.layer == name) return &l;
  return nullptr;
}

// One requantized layer: the file holds exactly the effective weight of checkpoint layer `ck`
// requantized by `spec`, and the report names the layer's refusal, a target starting with
// `target`, and the true error against the effective weight.
void lossy_check_layer(const std::vector<LossyLayer>& report, const std::string& base,
                       const lowbit::QuantizedLinear& ck, const RowMatrixXf& imported,
                       const lowbit::QuantSpec& spec, const std::string& target) {
  const RowMatrixXf w_eff = lossy_effective(ck);
  CHECK(lossy_same_bits(imported, lowbit::dequantize(lowbit::quantize(w_eff, spec, base))));
  const LossyLayer* e = lossy_find(report, base);
  REQUIRE(e != nullptr);
  CHECK(e->target.rfind(target, 0) == 0);
  CHECK(e->refusal.find(base) != std::string::npos);
  double sqnr = 0, rel = 0;
  lossy_error(w_eff, imported, sqnr, rel);
  CHECK(e->sqnr_db == Approx(sqnr).epsilon(1e-9));
  CHECK(e->rel_error == Approx(rel).epsilon(1e-9));
  CHECK(sqnr > 20.0);  // requantizing an int8 weight to int8 adds little
}

// Without --allow-lossy the export is refused, naming the layer's LoRC factors and the
// option, and nothing is written at `out`.
template <class Export>
void lossy_check_refused(const Export& run, const std::string& out) {
  CHECK_THROWS_WITH(run(), Catch::Contains("layers.0.attention.wq") && Catch::Contains("LoRC factors") &&
                               Catch::Contains("--allow-lossy"));
  CHECK_FALSE(std::ifstream(out).good());
}

}  // namespace

TEST_CASE("export --allow-lossy: GGUF requantizes LoRC and smoothed layers and reports the true error", "[model][export]") {
  LOWBIT_REQUIRE_STORIES();
  lowbit_test::scratch_dir dir;
  lossy_write_checkpoint(dir.path);

  lossy_check_refused([&] { export_gguf(dir.path, dir.file("exact.gguf")); }, dir.file("exact.gguf"));

  GgufExportOptions opt;
  opt.allow_lossy = true;
  const GgufExportReport rep = export_gguf(dir.path, dir.file("lossy.gguf"), opt);
  CHECK(rep.lossy.size() == 5 * 6);
  CHECK(rep.tensors_by_type.at("Q8_0") == 5 * 6);

  const auto ck_src = open_model(dir.path);
  const auto* st = dynamic_cast<const SafetensorsSource*>(ck_src.get());
  REQUIRE(st != nullptr);
  const lowbit::SafetensorsFile& shard = *st->tensors().shards()[0];
  const auto gg_src = open_model(dir.file("lossy.gguf"));
  const auto* gg = dynamic_cast<const GgufSource*>(gg_src.get());
  REQUIRE(gg != nullptr);
  const lowbit::QuantSpec q8 = lowbit::recipe_from_name("gguf-q8_0").weight;
  for (const std::string& base : gg->quantized_linears()) {
    INFO(base);
    const lowbit::QuantizedLinear ck = lowbit::load_quantized_linear(shard, base);
    REQUIRE(ck.lorc);
    lossy_check_layer(rep.lossy, base, ck, lowbit::dequantize(gg->quantized_linear(base).weight), q8, "Q8_0");
  }
  const LossyLayer* wo = lossy_find(rep.lossy, "layers.1.attention.wo");
  REQUIRE(wo != nullptr);
  CHECK(wo->refusal.find("LoRC") != std::string::npos);
  // The model runs: perplexity close to the checkpoint's.
  const std::vector<int> t = [] {
    std::vector<int> v = read_u16_tokens(kStoriesDir + "/eval_tinystories_val_tok512.u16");
    v.resize(200);
    return v;
  }();
  const double pa = evaluate_perplexity(load_llama_model(dir.path), t).perplexity();
  const double pb = evaluate_perplexity(load_llama_model(dir.file("lossy.gguf")), t).perplexity();
  CHECK(std::abs(pb - pa) < 0.05 * pa);
}

TEST_CASE("export --allow-lossy: compressed-tensors requantizes what it cannot write", "[model][export]") {
  LOWBIT_REQUIRE_STORIES();
  lowbit_test::scratch_dir dir;
  lossy_write_checkpoint(dir.path);
  lossy_check_refused([&] { export_compressed_tensors(dir.path, dir.file("exact")); }, dir.file("exact"));
  CtExportOptions opt;
  opt.allow_lossy = true;
  const CtExportReport rep = export_compressed_tensors(dir.path, dir.file("ct"), opt);
  CHECK(rep.lossy.size() == 5 * 6);
  CHECK(rep.layers_by_format.at("int-quantized") == 5 * 6);
  CHECK(rep.folded_norms == 0);
  const auto ck_src = open_model(dir.path);
  const lowbit::SafetensorsFile& shard = *dynamic_cast<const SafetensorsSource&>(*ck_src).tensors().shards()[0];
  const auto ct_src = open_model(dir.file("ct"));
  const auto* ct = dynamic_cast<const CompressedTensorsSource*>(ct_src.get());
  REQUIRE(ct != nullptr);
  const lowbit::QuantSpec i8 = lowbit::recipe_from_name("w8a8-int8").weight;
  // v/o/gate/up keep their row order (q/k rows are permuted into Hugging Face order).
  for (linear_slot s : {linear_slot::wv, linear_slot::wo, linear_slot::w1, linear_slot::w3}) {
    const std::string base = linear_name(1, s), module = linear_name(1, s, weight_naming::hf);
    INFO(base);
    lossy_check_layer(rep.lossy, base, lowbit::load_quantized_linear(shard, base),
                      lowbit::dequantize(ct->quantized_linear(module).weight), i8, "int-quantized");
  }
}

}  // namespace test_model_export_lossy_cpp
