// Sequential (layer-by-layer) calibration (model/sequential_calibration.hpp) against the whole
// model's forward pass (model/calibration.hpp), which is the independent reference here:
//  - fp32 inputs: every linear's statistics equal the whole fp32 model's, bit for bit, and so do
//    the GPTQ layers quantized from them;
//  - quantized inputs: every linear's statistics equal those the whole model records when its
//    earlier layers are the quantized ones (built independently through a LinearFactory);
//    layer 0 is unchanged, later layers differ from fp32, and the quantized model still tracks
//    the fp32 one.
#include <catch2/catch.hpp>
#include <cmath>
#include <fstream>
#include <map>
#include <random>
#include <string>
#include <vector>

#include "lowbit/algo/recipes.hpp"
#include "lowbit/model/calibration.hpp"
#include "lowbit/model/llama.hpp"
#include "lowbit/model/load.hpp"
#include "lowbit/model/recipe_linear.hpp"
#include "lowbit/model/sequential_calibration.hpp"
#include "test_random_llama.hpp"

// One namespace per test file, so that any set of test files can be compiled as one
// unity translation unit (tests/CMakeLists.txt) without their file-local names clashing.
namespace test_calib_sequential_cpp {

using namespace lowbit;
using namespace lowbit::model;

namespace {

LlamaWeights seq_random_model(unsigned seed) {
  return lowbit_test::random_llama_weights(lowbit_test::random_llama_config(64, 96, 3, 4, 2, 50, 32), seed, 0.2f);
}

std::vector<std::vector<int>> seq_samples(int vocab, unsigned seed) {
  std::mt19937 rng(seed);
  std::vector<std::vector<int>> s;
  for (int len : {7, 20, 32, 3}) {
    std::vector<int> ids{1};
    for (int i = 1; i < len; ++i) ids.push_back(static_cast<int>(rng() % static_cast<unsigned>(vocab)));
    s.push_back(ids);
  }
  return s;
}

// What a layer's statistics are (copied, since the recorder is per layer).
struct stats_copy {
  Eigen::MatrixXf xtx;
  Eigen::VectorXf absmax, min, max, mean_abs;
  RowMatrixXf sample;
  std::int64_t count = 0;
};
stats_copy copy_of(const ActivationStats& s) {
  return {s.xtx(), s.absmax(), s.min(), s.max(), s.mean_abs(), s.sample(), s.count()};
}
bool same_bits(const stats_copy& a, const ActivationStats& b) {
  return a.count == b.count() && a.xtx == b.xtx() && a.absmax == b.absmax() && a.min == b.min() && a.max == b.max() &&
         a.mean_abs == b.mean_abs() && a.sample == b.sample();
}
bool same_layer(const QuantizedLinear& a, const QuantizedLinear& b) {
  return a.weight.codes == b.weight.codes && a.weight.scales == b.weight.scales && a.weight.zeros == b.weight.zeros;
}

CalibrationOptions seq_stats_options() {
  CalibrationOptions o;
  o.max_sample_rows = 16;
  return o;
}

// Runs sequential calibration quantizing every linear with `recipe`; returns the layers and
// the statistics each was quantized with.
struct seq_result {
  std::map<std::string, QuantizedLinear> layers;
  std::map<std::string, stats_copy> stats;
};
seq_result run_sequential(const ModelSource& src, const std::vector<std::vector<int>>& samples, bool quantized_inputs,
                          const LinearRecipe& recipe) {
  seq_result r;
  SequentialCalibrationOptions o;
  o.stats = seq_stats_options();
  o.quantized_inputs = quantized_inputs;
  std::vector<int> order;
  calibrate_sequentially(
      src, samples, o,
      [&](CalibratedLayer& cl) {
        std::map<std::string, std::unique_ptr<LinearLayer>> out;
        for (int s = 0; s < kLinearSlots; ++s) {
          const auto slot = static_cast<linear_slot>(s);
          const std::string name = src.linear_name(cl.index, slot);
          const ActivationStats& st = cl.stats.at(name);
          r.stats[name] = copy_of(st);
          r.layers[name] = quantize_linear(cl.weights.matrix(slot), recipe, &st, name);
          out[name] = std::make_unique<RecipeLinear>(r.layers[name], /*use_kernels=*/false);
          cl.weights.matrix(slot) = RowMatrixXf();  // allowed: it has a replacement
        }
        return out;
      },
      [&](int layer, const char*) { order.push_back(layer); });
  CHECK(order.front() == 0);
  CHECK(order.back() == src.config().n_layers - 1);
  return r;
}

// The factory of a model whose decoder linears are the given quantized layers.
LinearFactory factory_of(const std::map<std::string, QuantizedLinear>& layers) {
  return [&layers](const std::string& name, const RowMatrixXf& w) -> std::unique_ptr<LinearLayer> {
    const auto it = layers.find(name);
    if (it == layers.end()) return std::make_unique<Fp32Linear>(w);
    return std::make_unique<RecipeLinear>(it->second, false);
  };
}

CalibrationRecorder whole_model_stats(const LlamaModel& m, const std::vector<std::vector<int>>& samples) {
  CalibrationRecorder rec(seq_stats_options());
  for (const auto& s : samples) m.forward(s, &rec);
  return rec;
}

}  // namespace

TEST_CASE("sequential calibration with fp32 inputs equals whole-model calibration", "[calib]") {
  const auto src = model_source_from_weights(seq_random_model(3));
  const auto samples = seq_samples(src->config().vocab_size, 11);
  LinearRecipe recipe = recipe_from_name("w4a16-int4");
  recipe.weight.group_size = 32;
  const seq_result seq = run_sequential(*src, samples, /*quantized_inputs=*/false, recipe);

  const LlamaModel fp32(src);
  const CalibrationRecorder whole = whole_model_stats(fp32, samples);
  REQUIRE(seq.stats.size() == static_cast<std::size_t>(7 * src->config().n_layers));
  for (const auto& [name, st] : seq.stats) {
    INFO(name);
    REQUIRE(same_bits(st, whole.at(name)));
  }
  // The quantized layers are bit-identical to quantizing from the whole-model statistics.
  for (int l = 0; l < src->config().n_layers; ++l) {
    const LlamaLayerWeights w = src->layer(l);
    for (int s = 0; s < kLinearSlots; ++s) {
      const auto slot = static_cast<linear_slot>(s);
      const std::string name = src->linear_name(l, slot);
      INFO(name);
      CHECK(same_layer(seq.layers.at(name), quantize_linear(w.matrix(slot), recipe, &whole.at(name), name)));
    }
  }
}

TEST_CASE("sequential calibration with quantized inputs: each layer sees the quantized layers before it", "[calib]") {
  const auto src = model_source_from_weights(seq_random_model(5));
  const auto samples = seq_samples(src->config().vocab_size, 13);
  LinearRecipe recipe = recipe_from_name("w4a16-int4");
  recipe.weight.group_size = 32;
  const seq_result q = run_sequential(*src, samples, /*quantized_inputs=*/true, recipe);
  const seq_result f = run_sequential(*src, samples, /*quantized_inputs=*/false, recipe);

  // Reference, per layer l: the whole model with the sequentially quantized linears of layers
  // < l (and fp32 from l on), recorded in one pass; layer l's statistics must be the same.
  for (int l = 0; l < src->config().n_layers; ++l) {
    std::map<std::string, QuantizedLinear> before;
    for (const auto& [name, layer] : q.layers)
      if (std::stoi(name.substr(7)) < l) before.emplace(name, layer);
    const LlamaModel partly(src, factory_of(before));
    const CalibrationRecorder whole_q = whole_model_stats(partly, samples);
    for (int s = 0; s < kLinearSlots; ++s) {
      const std::string name = src->linear_name(l, static_cast<linear_slot>(s));
      INFO(name);
      CHECK(same_bits(q.stats.at(name), whole_q.at(name)));
    }
  }
  // Layer 0 reads the embeddings either way; layers after it see different inputs.
  CHECK(q.stats.at(src->linear_name(0, linear_slot::wq)).xtx == f.stats.at(src->linear_name(0, linear_slot::wq)).xtx);
  CHECK(q.stats.at(src->linear_name(1, linear_slot::wq)).xtx != f.stats.at(src->linear_name(1, linear_slot::wq)).xtx);
  CHECK_FALSE(same_layer(q.layers.at(src->linear_name(2, linear_slot::w2)), f.layers.at(src->linear_name(2, linear_slot::w2))));

  // Still a working model: the quantized logits track the fp32 ones about as well as with
  // fp32-input calibration (a random model amplifies errors, so the bound is loose).
  const LlamaModel fp32(src), quantized(src, factory_of(q.layers)), quantized_f(src, factory_of(f.layers));
  double err_q = 0, err_f = 0, ref = 0;
  for (const auto& s : samples) {
    const RowMatrixXf a = fp32.forward(s);
    err_q += (a - quantized.forward(s)).squaredNorm();
    err_f += (a - quantized_f.forward(s)).squaredNorm();
    ref += a.squaredNorm();
  }
  INFO("relative error, quantized inputs " << std::sqrt(err_q / ref) << ", fp32 inputs " << std::sqrt(err_f / ref));
  CHECK(std::isfinite(err_q));
  CHECK(err_q > 0);
  CHECK(std::sqrt(err_q / ref) < 0.6);
  CHECK(err_q < 1.5 * err_f);
}

TEST_CASE("sequential calibration: bad samples and the classifier's statistics", "[calib]") {
  const auto src = model_source_from_weights(seq_random_model(7));
  SequentialCalibrationOptions o;
  o.classifier_stats = true;
  const auto none = [](CalibratedLayer&) { return std::map<std::string, std::unique_ptr<LinearLayer>>{}; };
  CHECK_THROWS_WITH(calibrate_sequentially(*src, {}, o, none), Catch::Contains("no calibration samples"));
  CHECK_THROWS_WITH(calibrate_sequentially(*src, {std::vector<int>(33, 1)}, o, none), Catch::Contains("more than the model's 32"));
  CHECK_THROWS_WITH(calibrate_sequentially(*src, {{1, 99}}, o, none), Catch::Contains("outside the vocabulary"));
  // A freed weight needs a replacement (quantized inputs rerun the layer).
  const auto frees = [](CalibratedLayer& cl) {
    cl.weights.wo = RowMatrixXf();
    return std::map<std::string, std::unique_ptr<LinearLayer>>{};
  };
  CHECK_THROWS_WITH(calibrate_sequentially(*src, {{1, 2, 3}}, o, frees),
                    Catch::Contains("layers.0.attention.wo") && Catch::Contains("no replacement"));
  // With nothing replaced, the classifier input equals the fp32 model's.
  const auto samples = seq_samples(src->config().vocab_size, 17);
  const CalibrationRecorder cls = calibrate_sequentially(*src, samples, o, none);
  CalibrationRecorder whole;
  const LlamaModel fp32(src);
  for (const auto& s : samples) fp32.forward(s, &whole);
  CHECK(cls.at(src->classifier_name()).xtx() == whole.at(src->classifier_name()).xtx());
}

TEST_CASE("sequential calibration of a Hugging Face directory equals the whole model's", "[calib]") {
  const std::string dir = std::string(LOWBIT_SHARED_DATA_DIR) + "/stories260k-hf";
  std::ifstream probe(dir + "/config.json");
  if (!probe) {
    WARN("no " << dir << ": skipped");
    return;
  }
  const auto src = open_model(dir);
  const std::vector<std::vector<int>> samples = {{1, 403, 407, 261, 378, 429, 271, 270, 13}, {1, 20, 30, 40, 50}};
  const seq_result seq = run_sequential(*src, samples, false, recipe_from_name("w4a16-int4"));
  const CalibrationRecorder whole = whole_model_stats(LlamaModel(src), samples);
  CHECK(seq.stats.count("model.layers.4.mlp.down_proj") == 1);
  for (const auto& [name, st] : seq.stats) {
    INFO(name);
    CHECK(same_bits(st, whole.at(name)));
  }
}
}  // namespace test_calib_sequential_cpp
