// lowbit checkpoints: write -> read round trips of QuantizedMatrix for every scheme (codes,
// compact scale fields, rebuilt scales and dequantized values bit for bit), and the
// loader's checks on corrupt or foreign files.
#include <catch2/catch.hpp>
#include <cstring>
#include <random>

#include "lowbit/algo/lorc.hpp"  // lorc(): io/lorc_checkpoint.hpp has only the LowRank type
#include "lowbit/io/checkpoint.hpp"
#include "lowbit/io/lorc_checkpoint.hpp"
#include "lowbit/quant/quantizer.hpp"
#include "lowbit/quant/spec_text.hpp"
#include "test_io_support.hpp"

// One namespace per test file, so that any set of test files can be compiled as one
// unity translation unit (tests/CMakeLists.txt) without their file-local names clashing.
namespace test_io_checkpoint_cpp {

using lowbit_test::scratch_dir;

namespace {

lowbit::RowMatrixXf heavy_tailed(std::int64_t rows, std::int64_t cols, unsigned seed) {
  std::mt19937 rng(seed);
  std::student_t_distribution<float> t(3.0f);
  lowbit::RowMatrixXf w(rows, cols);
  for (Eigen::Index i = 0; i < w.size(); ++i) w.data()[i] = 0.02f * t(rng);
  w(0, 0) = 0.0f;
  w.row(1).setZero();  // an all-zero row: zero scales and their compact forms
  return w;
}

bool same_bits(const lowbit::RowMatrixXf& a, const lowbit::RowMatrixXf& b) {
  return a.rows() == b.rows() && a.cols() == b.cols() &&
         std::memcmp(a.data(), b.data(), sizeof(float) * static_cast<std::size_t>(a.size())) == 0;
}

}  // namespace

TEST_CASE("checkpoint: every scheme round-trips bit for bit", "[io]") {
  const char* schemes[] = {
      "int8:channel",           "int8:tensor",         "int8:g32:asym",         "int8:g16:asym:bf16",
      "int4:g32",               "int4:g32:asym",       "int4:g16:asym:f16",     "int4:channel:q4_0",
      "int4:g32:qmax_half:bf16", "int4:g32:clip0.5x8",  "int4:tensor:m1",        "float8_e4m3fn:channel",
      "float8_e5m2:tensor",     "float8_e4m3fn:g32:m2", "float6_e3m2fn:g32",     "float6_e2m3fn:g16:m1",
      "float4_e2m1fn:g32:m1",   "float4_e2m1fn:g32:m2", "float4_e2m1fn:g32:m2:f16", "float4_e2m1fn:g16:m2:bf16",
      "float4_e2m1fn:channel:m2", "mxfp4",             "mxfp6",                 "mxfp6_e2m3",
      "mxfp8",                  "mxfp8_e5m2",          "float4_e2m1fn:g32:mx:up175", "nvfp4",
  };
  scratch_dir dir;
  const std::string path = dir.file("q.safetensors");
  // 5 x 37: odd K (an odd last nibble) and a ragged last group for every group size.
  const lowbit::RowMatrixXf w = heavy_tailed(5, 37, 7);
  std::vector<lowbit::QuantizedMatrix> written;
  {
    lowbit::SafetensorsWriter out(path);
    lowbit::begin_checkpoint(out);
    int i = 0;
    for (const char* s : schemes) {
      const std::string name = "layers." + std::to_string(i++) + ".w.weight";
      written.push_back(lowbit::quantize(w, lowbit::parse_quant_spec(s), name));
      lowbit::write_quantized_matrix(out, name, written.back(), {{"recipe", s}});
    }
    out.add("norm.weight", lowbit::tensor_dtype::f32, {3}, std::vector<float>{1, 2, 3});
    out.finish();
  }
  const auto f = lowbit::open_safetensors(path);
  REQUIRE(lowbit::is_lowbit_checkpoint(f));
  const auto layers = lowbit::checkpoint_layers(f);
  REQUIRE(layers.size() == written.size());
  for (std::size_t i = 0; i < written.size(); ++i) {
    const auto& q = written[i];
    const std::string base = "layers." + std::to_string(i) + ".w";
    INFO(schemes[i]);
    const lowbit::QuantizedMatrix r = lowbit::load_quantized_matrix(f, base);
    CHECK(lowbit::to_string(r.spec) == lowbit::to_string(q.spec));
    CHECK(r.name == q.name);
    CHECK((r.rows == q.rows && r.cols == q.cols && r.group_size == q.group_size && r.groups_per_row == q.groups_per_row &&
           r.row_stride == q.row_stride));
    CHECK(r.codes == q.codes);
    CHECK(lowbit::detail::same_bits(r.scales, q.scales));
    CHECK(r.zeros == q.zeros);
    CHECK(lowbit::detail::same_bits(r.row_scales, q.row_scales));
    CHECK(r.shifts == q.shifts);
    CHECK(r.scale_codes == q.scale_codes);
    CHECK(std::memcmp(&r.tensor_scale, &q.tensor_scale, 4) == 0);
    CHECK(r.storage_bits() == q.storage_bits());
    CHECK(same_bits(lowbit::dequantize(r), lowbit::dequantize(q)));
    CHECK(lowbit::checkpoint_layer_info(f, base).at("recipe") == schemes[i]);
  }
  CHECK(f.at("norm.weight").to_float_vector() == std::vector<float>{1, 2, 3});
}

TEST_CASE("checkpoint: broken contracts and corrupt files are errors", "[io]") {
  scratch_dir dir;
  const lowbit::RowMatrixXf w = heavy_tailed(4, 40, 3);
  const auto q = lowbit::quantize(w, lowbit::parse_quant_spec("float4_e2m1fn:g32:m2"), "x.weight");

  SECTION("scales the compact fields do not reproduce: nothing is written") {
    auto broken = q;
    broken.scales[0] *= 1.5f;
    const std::string path = dir.file("broken.safetensors");
    {
      lowbit::SafetensorsWriter out(path);
      CHECK_THROWS_WITH(lowbit::write_quantized_matrix(out, "x.weight", broken), Catch::Contains("'x.weight'"));
    }
    CHECK(dir.entries().empty());
  }
  SECTION("a missing tensor, a wrong dtype, an unknown format version") {
    const auto write = [&](const std::string& path, bool drop_shifts, bool wrong_dtype, const char* version) {
      lowbit::SafetensorsWriter out(path);
      out.set_metadata(lowbit::checkpoint_format_key, version);
      out.add("x.qweight", lowbit::tensor_dtype::u8, {q.rows, q.row_stride}, q.codes);
      out.add("x.row_scales", wrong_dtype ? lowbit::tensor_dtype::i32 : lowbit::tensor_dtype::f32, {q.rows}, q.row_scales);
      if (!drop_shifts) out.add("x.shifts", lowbit::tensor_dtype::i8, {q.rows, q.groups_per_row}, q.shifts);
      nlohmann::json layer = {{"weight", "x.weight"},
                              {"spec", lowbit::detail::spec_to_json(q.spec)},
                              {"shape", {q.rows, q.cols}},
                              {"group_size", q.group_size},
                              {"groups_per_row", q.groups_per_row},
                              {"row_stride", q.row_stride}};
      out.set_metadata(std::string(lowbit::checkpoint_layer_prefix) + "x", layer.dump());
      out.finish();
    };
    write(dir.file("ok.safetensors"), false, false, "1");
    const auto ok = lowbit::open_safetensors(dir.file("ok.safetensors"));
    CHECK(same_bits(lowbit::dequantize(lowbit::load_quantized_matrix(ok, "x")), lowbit::dequantize(q)));
    write(dir.file("a.safetensors"), true, false, "1");
    CHECK_THROWS_WITH(lowbit::load_quantized_matrix(lowbit::open_safetensors(dir.file("a.safetensors")), "x"),
                      Catch::Contains("missing tensor x.shifts"));
    write(dir.file("b.safetensors"), false, true, "1");
    CHECK_THROWS_WITH(lowbit::load_quantized_matrix(lowbit::open_safetensors(dir.file("b.safetensors")), "x"),
                      Catch::Contains("x.row_scales") && Catch::Contains("I32"));
    write(dir.file("c.safetensors"), false, false, "99");
    CHECK_THROWS_WITH(lowbit::is_lowbit_checkpoint(lowbit::open_safetensors(dir.file("c.safetensors"))),
                      Catch::Contains("version '99'"));
    CHECK_THROWS_WITH(lowbit::load_quantized_matrix(ok, "nope"), Catch::Contains("no quantized layer 'nope'"));
  }
  SECTION("scheme metadata with an unknown format") {
    lowbit::SafetensorsWriter out(dir.file("d.safetensors"));
    auto spec = lowbit::detail::spec_to_json(q.spec);
    spec["format"] = "int3";
    out.set_metadata(std::string(lowbit::checkpoint_layer_prefix) + "x",
                     nlohmann::json{{"weight", "x.weight"}, {"spec", spec}, {"shape", {4, 40}}}.dump());
    out.finish();
    CHECK_THROWS_WITH(lowbit::load_quantized_matrix(lowbit::open_safetensors(dir.file("d.safetensors")), "x"),
                      Catch::Contains("'x'") && Catch::Contains("int3"));
  }
}

TEST_CASE("checkpoint: LoRC factors round-trip in f32, f16 and int8 storage", "[io]") {
  scratch_dir dir;
  const lowbit::RowMatrixXf w = heavy_tailed(12, 40, 5);
  const auto q = lowbit::quantize(w, lowbit::parse_quant_spec("int4:g16"), "m.weight");
  for (auto storage : {lowbit::lorc_storage::f32, lowbit::lorc_storage::f16, lowbit::lorc_storage::int8}) {
    lowbit::LorcOptions opt;
    opt.storage = storage;
    const lowbit::LowRank lr = lowbit::lorc(w, q, 3, opt);
    const std::string path = dir.file("l" + std::to_string(int(storage)) + ".safetensors");
    {
      lowbit::SafetensorsWriter out(path);
      lowbit::begin_checkpoint(out);
      lowbit::write_quantized_matrix(out, "m.weight", q, {{"lorc", lowbit::lorc_metadata(lr)}});
      lowbit::write_lorc(out, "m.weight", lr);
      out.finish();
    }
    const auto f = lowbit::open_safetensors(path);
    const lowbit::LowRank r = lowbit::load_lorc(f, "m");
    CHECK(r.storage == lr.storage);
    CHECK(same_bits(r.u, lr.u));
    CHECK(same_bits(r.v, lr.v));
    CHECK(r.storage_bits() == lr.storage_bits());
  }
}
}  // namespace test_io_checkpoint_cpp
