// Whole QuantizedLinear layers in a checkpoint: every named recipe, applied by
// quantize_linear() with calibration data to a small synthetic layer, survives save -> load
// with every part bit for bit (codes, compact scale fields, bias, smoothing vector, LoRC
// factors, activation format, recipe) and the same layer(x); plus the loader's refusals.
#include <catch2/catch.hpp>
#include <cstring>
#include <random>

#include "lowbit/algo/recipes.hpp"
#include "lowbit/io/detail/scheme_json.hpp"
#include "lowbit/io/linear_checkpoint.hpp"
#include "lowbit/quant/quantizer.hpp"
#include "test_io_support.hpp"

// One namespace per test file, so that any set of test files can be compiled as one
// unity translation unit (tests/CMakeLists.txt) without their file-local names clashing.
namespace test_io_linear_cpp {

using lowbit_test::scratch_dir;

namespace {

template <class A, class B>
bool same_bytes(const A& a, const B& b) {
  return a.size() == b.size() && (a.size() == 0 || std::memcmp(a.data(), b.data(), sizeof(a.data()[0]) * std::size_t(a.size())) == 0);
}
bool same_matrix(const lowbit::RowMatrixXf& a, const lowbit::RowMatrixXf& b) {
  return a.rows() == b.rows() && a.cols() == b.cols() && same_bytes(a, b);
}

// Correlated inputs with a few outlier channels (what smoothing and GPTQ are for), and a
// weight with a heavy tail.
struct synthetic_layer {
  lowbit::RowMatrixXf w, x;
  Eigen::VectorXf bias;
  synthetic_layer(std::int64_t out, std::int64_t in, std::int64_t tokens, unsigned seed) {
    std::mt19937 rng(seed);
    std::normal_distribution<float> n(0.0f, 1.0f);
    std::student_t_distribution<float> t(4.0f);
    w.resize(out, in);
    for (Eigen::Index i = 0; i < w.size(); ++i) w.data()[i] = 0.05f * t(rng);
    lowbit::RowMatrixXf z(tokens, 8), mix(8, in);
    for (Eigen::Index i = 0; i < z.size(); ++i) z.data()[i] = n(rng);
    for (Eigen::Index i = 0; i < mix.size(); ++i) mix.data()[i] = n(rng);
    x = z * mix;
    for (Eigen::Index i = 0; i < x.size(); ++i) x.data()[i] += 0.3f * n(rng);
    for (Eigen::Index c = 5; c < in; c += 37) x.col(c) *= 25.0f;
    bias.resize(out);
    for (Eigen::Index i = 0; i < out; ++i) bias[i] = 0.1f * n(rng);
  }
};

void check_same_matrix_parts(const lowbit::QuantizedMatrix& a, const lowbit::QuantizedMatrix& b) {
  CHECK(a.name == b.name);
  CHECK(lowbit::detail::spec_to_json(a.spec) == lowbit::detail::spec_to_json(b.spec));
  CHECK(a.rows == b.rows);
  CHECK(a.cols == b.cols);
  CHECK(a.group_size == b.group_size);
  CHECK(a.groups_per_row == b.groups_per_row);
  CHECK(a.row_stride == b.row_stride);
  CHECK(same_bytes(a.codes, b.codes));
  CHECK(same_bytes(a.scales, b.scales));
  CHECK(same_bytes(a.zeros, b.zeros));
  CHECK(same_bytes(a.shifts, b.shifts));
  CHECK(same_bytes(a.row_scales, b.row_scales));
  CHECK(same_bytes(a.scale_codes, b.scale_codes));
  CHECK(std::memcmp(&a.tensor_scale, &b.tensor_scale, sizeof(float)) == 0);
}

void check_same_layer(const lowbit::QuantizedLinear& a, const lowbit::QuantizedLinear& b) {
  check_same_matrix_parts(a.weight, b.weight);
  REQUIRE(a.bias.has_value() == b.bias.has_value());
  if (a.bias) CHECK(same_bytes(*a.bias, *b.bias));
  REQUIRE(a.smoothing.has_value() == b.smoothing.has_value());
  if (a.smoothing) {
    CHECK(same_bytes(*a.smoothing, *b.smoothing));
    CHECK(std::memcmp(&a.smoothing_alpha, &b.smoothing_alpha, sizeof(float)) == 0);
  }
  REQUIRE(a.lorc.has_value() == b.lorc.has_value());
  if (a.lorc) {
    CHECK(a.lorc->storage == b.lorc->storage);
    CHECK(same_matrix(a.lorc->u, b.lorc->u));
    CHECK(same_matrix(a.lorc->v, b.lorc->v));
    CHECK(same_bytes(a.lorc->u_codes, b.lorc->u_codes));
    CHECK(same_bytes(a.lorc->v_codes, b.lorc->v_codes));
    CHECK(same_bytes(a.lorc->u_scales, b.lorc->u_scales));
    CHECK(same_bytes(a.lorc->v_scales, b.lorc->v_scales));
  }
  REQUIRE(a.activations.has_value() == b.activations.has_value());
  if (a.activations) {
    CHECK(a.activations->format == b.activations->format);
    CHECK(a.activations->group == b.activations->group);
  }
  CHECK(a.recipe == b.recipe);
  CHECK(a.warning == b.warning);
  CHECK(a.storage_bits() == b.storage_bits());
}

}  // namespace

TEST_CASE("linear checkpoint: every named recipe round-trips with its parts and its output", "[io]") {
  scratch_dir dir;
  const synthetic_layer s(48, 256, 96, 11);
  lowbit::CalibrationOptions co;
  co.max_sample_rows = 64;  // activation-aware smoothing objectives read kept rows
  const lowbit::ActivationStats stats = lowbit::collect_stats(s.x, co, "probe");

  REQUIRE(lowbit::recipe_names().size() >= 8);
  std::vector<std::pair<std::string, lowbit::QuantizedLinear>> layers;
  bool saw_bias = false, saw_smooth = false, saw_lorc = false, saw_act = false;
  for (std::size_t i = 0; i < lowbit::recipe_names().size(); ++i) {
    const std::string& name = lowbit::recipe_names()[i];
    const lowbit::LinearRecipe recipe = lowbit::recipe_from_name(name);
    const Eigen::VectorXf* bias = i % 2 == 0 ? &s.bias : nullptr;  // with and without bias
    lowbit::QuantizedLinear q = lowbit::quantize_linear(s.w, bias, recipe, &stats, "blk." + name);
    saw_bias |= q.bias.has_value();
    saw_smooth |= q.smoothing.has_value();
    saw_lorc |= q.lorc.has_value();
    saw_act |= q.activations.has_value();
    layers.emplace_back("blk." + name + ".weight", std::move(q));
  }
  // The test covers every optional part at least once.
  CHECK(saw_bias);
  CHECK(saw_smooth);
  CHECK(saw_lorc);
  CHECK(saw_act);

  const std::string path = dir.file("layers.safetensors");
  lowbit::save_quantized_linears(path, layers, {{"lowbit.producer", "test"}});
  const auto f = lowbit::open_safetensors(path);
  CHECK(f.metadata().at(lowbit::checkpoint_format_key) == std::to_string(lowbit::checkpoint_format_version));
  CHECK(f.metadata().at("lowbit.producer") == "test");
  const auto loaded = lowbit::load_quantized_linears(f);
  REQUIRE(loaded.size() == layers.size());
  for (const auto& [name, original] : layers) {
    DYNAMIC_SECTION("recipe layer " << name) {
      const std::string base = lowbit::checkpoint_base_name(name);
      CHECK(lowbit::is_quantized_linear(f, base));
      const lowbit::QuantizedLinear back = lowbit::load_quantized_linear(f, name);
      check_same_layer(original, back);
      const lowbit::RowMatrixXf y0 = original(s.x), y1 = back(s.x);
      CHECK(same_matrix(y0, y1));
      CHECK(y0.allFinite());
    }
  }
}

TEST_CASE("linear checkpoint: bare matrices, streaming writes and refusals", "[io]") {
  scratch_dir dir;
  const synthetic_layer s(8, 64, 16, 3);
  const lowbit::QuantizedMatrix q = lowbit::quantize(s.w, lowbit::recipe_from_name("mxfp4").weight, "m.weight");

  SECTION("a bare QuantizedMatrix layer loads as a plain layer with its recorded activations") {
    const std::string path = dir.file("bare.safetensors");
    {
      lowbit::SafetensorsWriter out(path);
      lowbit::begin_checkpoint(out);
      lowbit::write_quantized_matrix(out, "m.weight", q, {{"activations", "int8"}});
      out.finish();
    }
    const auto f = lowbit::open_safetensors(path);
    CHECK_FALSE(lowbit::is_quantized_linear(f, "m"));
    const lowbit::QuantizedLinear l = lowbit::load_quantized_linear(f, "m");
    CHECK_FALSE(l.bias.has_value());
    CHECK_FALSE(l.smoothing.has_value());
    REQUIRE(l.activations.has_value());
    CHECK(l.activations->format == lowbit::act_format::int8);
    CHECK(same_matrix(lowbit::dequantize(l.weight), lowbit::dequantize(q)));
  }
  SECTION("wrong shapes are refused before anything is written") {
    lowbit::QuantizedLinear l;
    l.weight = q;
    l.bias = Eigen::VectorXf::Ones(7);
    const std::string path = dir.file("bad.safetensors");
    {
      lowbit::SafetensorsWriter out(path);
      lowbit::begin_checkpoint(out);
      CHECK_THROWS_WITH(lowbit::write_quantized_linear(out, "m", l), Catch::Contains("'m'") && Catch::Contains("bias"));
      l.bias.reset();
      l.smoothing = Eigen::VectorXf::Ones(3);
      CHECK_THROWS_WITH(lowbit::write_quantized_linear(out, "m", l), Catch::Contains("smoothing"));
    }
    CHECK_FALSE(lowbit_test::file_exists(path));
  }
  SECTION("undeclared or non-positive parts are errors naming the tensor") {
    const auto write = [&](const std::string& path, float smooth, bool extra_bias) {
      lowbit::QuantizedLinear l;
      l.weight = q;
      l.recipe = "mxfp4";
      l.smoothing = Eigen::VectorXf::Constant(64, smooth);
      l.smoothing_alpha = 0.5f;
      lowbit::SafetensorsWriter out(path);
      lowbit::begin_checkpoint(out);
      lowbit::write_quantized_linear(out, "m", l);
      if (extra_bias) out.add("m.bias", lowbit::tensor_dtype::f32, {8}, std::vector<float>(8, 1.0f));
      out.finish();
    };
    // The writer reads what it is about to commit with the reader's rules (issue 15 item 3),
    // so these files are refused before they exist.
    CHECK_THROWS_WITH(write(dir.file("a.safetensors"), 1.0f, true),
                      Catch::Contains("m.bias is not declared") && Catch::Contains("not committed"));
    CHECK_FALSE(lowbit_test::file_exists(dir.file("a.safetensors")));
    CHECK_THROWS_WITH(write(dir.file("b.safetensors"), -1.0f, false),
                      Catch::Contains("'m'") && Catch::Contains("positive"));
    CHECK_FALSE(lowbit_test::file_exists(dir.file("b.safetensors")));
  }
  SECTION("a declared bias of the wrong dtype") {
    lowbit::QuantizedLinear l;
    l.weight = q;
    const std::string path = dir.file("c.safetensors");
    const auto write = [&] {
      lowbit::SafetensorsWriter out(path);
      lowbit::begin_checkpoint(out);
      auto meta = lowbit::quantized_linear_metadata(l);
      meta["bias"] = true;
      lowbit::write_quantized_matrix(out, "m.weight", q, meta);
      out.add("m.bias", lowbit::tensor_dtype::f16, {8}, std::vector<std::uint16_t>(8));
      out.finish();
    };
    CHECK_THROWS_WITH(write(), Catch::Contains("m.bias must be F32 [8]"));
    CHECK_FALSE(lowbit_test::file_exists(path));
  }
  SECTION("a file without the lowbit format key is refused") {
    const std::string path = dir.file("d.safetensors");
    {
      lowbit::SafetensorsWriter out(path);
      lowbit::write_quantized_matrix(out, "m.weight", q);
      out.finish();
    }
    CHECK_THROWS_WITH(lowbit::load_quantized_linear(lowbit::open_safetensors(path), "m"),
                      Catch::Contains("not a lowbit checkpoint"));
  }
}
}  // namespace test_io_linear_cpp
