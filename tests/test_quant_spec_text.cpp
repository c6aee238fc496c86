// The spec text is the one canonical spelling of a QuantSpec (issue 15, "one rule, one home"):
// checkpoint records store it and derive their structured fields from it, records written
// before it still load, a record whose two spellings disagree is refused, and the CLI's
// --weights/--group/--scale/--asymmetric flags compose spec text for the one parser.
#include <catch2/catch.hpp>
#include <cstring>
#include <nlohmann/json.hpp>
#include <optional>
#include <random>
#include <string>
#include <vector>

#include "../examples/cli/spec_flags.hpp"
#include "lowbit/io/checkpoint.hpp"
#include "lowbit/io/detail/scheme_json.hpp"
#include "lowbit/io/safetensors.hpp"
#include "lowbit/quant/quantizer.hpp"
#include "lowbit/quant/spec_text.hpp"
#include "test_io_support.hpp"

namespace test_quant_spec_text_cpp {

using lowbit::parse_quant_spec;
using lowbit::to_string;
using lowbit::detail::spec_from_json;
using lowbit::detail::spec_to_json;

namespace {

// text -> QuantSpec -> JSON record -> QuantSpec -> text, and the record's own spellings.
void spec_text_json_round_trip(const std::string& input) {
  INFO("spec text " << input);
  const lowbit::QuantSpec s = parse_quant_spec(input);
  const std::string text = to_string(s);
  const nlohmann::json j = spec_to_json(s);
  REQUIRE(j.contains("text"));
  CHECK(j["text"] == text);
  CHECK(to_string(spec_from_json(j, "l")) == text);
  // The structured fields say the same thing as the text (what older readers read).
  CHECK(to_string(lowbit::normalized_spec(lowbit::detail::spec_from_structured_json(j, "l"))) == text);
  // And the canonical text reads back as itself.
  CHECK(to_string(parse_quant_spec(text)) == text);
}

lowbit::RowMatrixXf spec_text_weights(std::int64_t rows, std::int64_t cols, unsigned seed) {
  std::mt19937 rng(seed);
  std::normal_distribution<float> n(0.0f, 0.02f);
  lowbit::RowMatrixXf w(rows, cols);
  for (Eigen::Index i = 0; i < w.size(); ++i) w.data()[i] = n(rng);
  return w;
}

// Copies the checkpoint at `from` to `to` with layer `base`'s "spec" record replaced.
void spec_text_rewrite_record(const std::string& from, const std::string& to, const std::string& base,
                              const nlohmann::json& record) {
  const auto in = lowbit::open_safetensors(from);
  lowbit::SafetensorsWriter out(to);
  for (const auto& t : in.tensors()) out.add(t);
  const std::string key = std::string(lowbit::checkpoint_layer_prefix) + base;
  for (const auto& [k, v] : in.metadata()) {
    if (k != key) {
      out.set_metadata(k, v);
      continue;
    }
    nlohmann::json layer = nlohmann::json::parse(v);
    layer["spec"] = record;
    out.set_metadata(k, layer.dump());
  }
  out.finish();
}

}  // namespace

TEST_CASE("spec text: every preset of the parser's menu round-trips text -> JSON -> text", "[quant]") {
  REQUIRE(lowbit::quant_spec_presets().size() >= 8);
  for (const auto& p : lowbit::quant_spec_presets()) {
    spec_text_json_round_trip(p.name);
    CHECK(to_string(parse_quant_spec(p.name)) == to_string(p.spec));
  }
}

TEST_CASE("spec text: every valid combination of fields round-trips text -> JSON -> text", "[quant]") {
  const char* formats[] = {"int8", "int4", "float8_e4m3fn", "float8_e5m2", "float6_e3m2fn", "float6_e2m3fn", "float4_e2m1fn"};
  const char* grans[] = {"", ":tensor", ":channel", ":g32", ":g16"};
  const char* constraints[] = {"", ":m1", ":m2", ":mx", ":nvfp4"};
  const char* asyms[] = {"", ":asym"};
  const char* storages[] = {"", ":f16", ":bf16"};
  const char* rules[] = {"", ":qmax_half", ":q4_0"};
  const char* roundings[] = {"", ":up175"};
  const char* clips[] = {"", ":clip0.6x5"};
  int valid = 0;
  for (const char* f : formats)
    for (const char* g : grans)
      for (const char* c : constraints)
        for (const char* a : asyms)
          for (const char* st : storages)
            for (const char* r : rules)
              for (const char* mr : roundings)
                for (const char* cl : clips) {
                  const std::string text = std::string(f) + g + c + a + st + r + mr + cl;
                  try {
                    (void)parse_quant_spec(text);
                  } catch (const lowbit::error&) {
                    continue;  // a combination without meaning: the parser's business, tested elsewhere
                  }
                  ++valid;
                  spec_text_json_round_trip(text);
                }
  CHECK(valid > 1000);
}

TEST_CASE("spec text: a clip ratio keeps every bit through the text and the record", "[quant]") {
  lowbit::QuantSpec s = parse_quant_spec("int4:g64");
  s.clip.enabled = true;
  s.clip.steps = 7;
  for (float r : {0.6f, 0.123456789f, 1.0f / 3.0f, 0.99999994f, 1e-5f}) {
    s.clip.min_ratio = r;
    INFO(to_string(s));
    CHECK(parse_quant_spec(to_string(s)).clip.min_ratio == r);
    CHECK(spec_from_json(spec_to_json(s), "l").clip.min_ratio == r);  // its own record is never refused
  }
  s.clip.min_ratio = 0.6f;
  CHECK(to_string(s) == "int4:g64:clip0.6x7");  // the shortest digits, not 0.600000024
  spec_text_json_round_trip("int4:g32:clip");    // the search's defaults, written out
  CHECK(to_string(parse_quant_spec("int4:g32:clip")) == "int4:g32:clip0.5x20");
}

TEST_CASE("spec text: records without the text (written before it) still read", "[quant]") {
  // A record exactly as checkpoints wrote it before the "text" field.
  const nlohmann::json old = nlohmann::json::parse(
      R"({"format": "int4", "granularity": "per_group", "group_size": 64, "symmetric": false,
          "constraint": "none", "scale_storage": "f16", "int_rule": "amax_over_qmax",
          "mx_rounding": "floor", "clip": {"enabled": true, "min_ratio": 0.6, "steps": 5}})");
  CHECK(to_string(spec_from_json(old, "l")) == "int4:g64:asym:f16:clip0.6x5");
  const nlohmann::json old_mx = nlohmann::json::parse(
      R"({"format": "float4_e2m1fn", "granularity": "per_group", "group_size": 32, "symmetric": true,
          "constraint": "mx", "scale_storage": "f32", "int_rule": "amax_over_qmax",
          "mx_rounding": "round_up_175", "clip": {"enabled": false, "min_ratio": 0.5, "steps": 20}})");
  CHECK(to_string(spec_from_json(old_mx, "l")) == "float4_e2m1fn:g32:mx:up175");
  // A record with the text alone reads too (the structured fields are for older readers).
  CHECK(to_string(spec_from_json({{"text", "nvfp4"}}, "l")) == "float4_e2m1fn:g16:nvfp4");
}

TEST_CASE("spec text: a record whose text and structured fields disagree is refused, naming the layer", "[quant]") {
  const nlohmann::json good = spec_to_json(parse_quant_spec("int4:g128:asym:f16"));
  const auto refused = [](const nlohmann::json& j) {
    CHECK_THROWS_WITH(spec_from_json(j, "blk.3.attn_q"), Catch::Contains("layer 'blk.3.attn_q'") && Catch::Contains("disagree"));
  };
  nlohmann::json j = good;
  j["symmetric"] = true;
  refused(j);
  j = good;
  j["group_size"] = 64;
  refused(j);
  j = good;
  j["scale_storage"] = "f32";
  refused(j);
  j = good;
  j["text"] = "int4:g128:f16";
  refused(j);
  // A text the parser refuses, and a partial set of structured fields, name the layer too.
  j = good;
  j["text"] = "int4:g128:wat";
  CHECK_THROWS_WITH(spec_from_json(j, "blk.3.attn_q"), Catch::Contains("layer 'blk.3.attn_q'") && Catch::Contains("wat"));
  CHECK_THROWS_WITH(spec_from_json({{"text", "int4"}, {"format", "int4"}}, "blk.3.attn_q"),
                    Catch::Contains("layer 'blk.3.attn_q'") && Catch::Contains("granularity"));
  // Keys that are neither text nor structured fields are ignored (a reader ignores what it does not know).
  j = good;
  j["note"] = "from a newer writer";
  CHECK(to_string(spec_from_json(j, "l")) == "int4:g128:asym:f16");
}

TEST_CASE("spec text: checkpoints store it; old and disagreeing records in a file", "[quant]") {
  lowbit_test::scratch_dir dir;
  const lowbit::RowMatrixXf w = spec_text_weights(6, 48, 11);
  const lowbit::QuantizedMatrix q = lowbit::quantize(w, parse_quant_spec("int4:g16:asym"), "x.weight");
  const std::string written = dir.file("new.safetensors");
  {
    lowbit::SafetensorsWriter out(written);
    lowbit::begin_checkpoint(out);
    lowbit::write_quantized_matrix(out, "x.weight", q);
    out.finish();
  }
  const auto f = lowbit::open_safetensors(written);
  // The metadata's label of the layer's scheme is to_string(spec).
  CHECK(lowbit::checkpoint_layer_info(f, "x")["spec"]["text"] == to_string(q.spec));
  CHECK(lowbit::checkpoint_layer_info(f, "x")["spec"]["text"] == "int4:g16:asym");
  const lowbit::RowMatrixXf expect = lowbit::dequantize(q);
  CHECK(lowbit::dequantize(lowbit::load_quantized_matrix(f, "x")).isApprox(expect, 0.0f));

  const nlohmann::json old = nlohmann::json::parse(
      R"({"format": "int4", "granularity": "per_group", "group_size": 16, "symmetric": false,
          "constraint": "none", "scale_storage": "f32", "int_rule": "amax_over_qmax",
          "mx_rounding": "floor", "clip": {"enabled": false, "min_ratio": 0.5, "steps": 20}})");
  spec_text_rewrite_record(written, dir.file("old.safetensors"), "x", old);
  const auto fo = lowbit::open_safetensors(dir.file("old.safetensors"));
  const lowbit::QuantizedMatrix qo = lowbit::load_quantized_matrix(fo, "x");
  CHECK(to_string(qo.spec) == "int4:g16:asym");
  CHECK(lowbit::dequantize(qo).isApprox(expect, 0.0f));

  nlohmann::json bad = spec_to_json(q.spec);
  bad["symmetric"] = true;
  spec_text_rewrite_record(written, dir.file("bad.safetensors"), "x", bad);
  CHECK_THROWS_WITH(lowbit::load_quantized_matrix(lowbit::open_safetensors(dir.file("bad.safetensors")), "x"),
                    Catch::Contains("layer 'x'") && Catch::Contains("disagree"));
}

TEST_CASE("spec text: the CLI's scheme flags compose the same spec text", "[quant]") {
  using lowbit_cli::spec_of;
  using lowbit_cli::spec_text_of;
  using lowbit_cli::weight_spec_flags;
  const auto flags = [](std::optional<std::string> weights, std::optional<int> group, std::optional<std::string> scale,
                        bool asym) {
    weight_spec_flags f;
    f.weights = std::move(weights);
    f.group = group;
    f.scale = std::move(scale);
    f.asymmetric = asym;
    return f;
  };
  const auto same = [](const weight_spec_flags& f, const std::string& text) {
    INFO(f.given() << " vs " << text);
    CHECK(to_string(spec_of(f)) == to_string(parse_quant_spec(text)));
  };
  CHECK(spec_text_of(flags("fp4", 32, "m2", false)) == "float4_e2m1fn:g32:m2");
  same(flags("fp4", 32, "m2", false), "float4_e2m1fn:g32:m2");
  CHECK(spec_text_of(flags("int4", 0, std::nullopt, true)) == "int4:channel:asym");
  same(flags("int4", 0, std::nullopt, true), "int4:channel:asym");
  same(flags("int8", -1, "fp32", false), "int8:tensor");
  same(flags(std::nullopt, std::nullopt, std::nullopt, false), "int4:g128");  // the flags' defaults
  same(flags("int4", 128, "none", false), "int4:g128");
  same(flags("e4m3", 64, "m1", false), "float8_e4m3fn:g64:m1");
  // mx / nvfp4 fix the group size: without --group it is theirs, as in the preset.
  same(flags("fp4", std::nullopt, "mx", false), "mxfp4");
  same(flags("fp4", 32, "mx", false), "mxfp4");
  same(flags("fp4", std::nullopt, "nvfp4", false), "nvfp4");
  same(flags("e3m2", std::nullopt, "mx", false), "mxfp6");

  // Errors are the parser's, led by the flags that composed the text.
  CHECK_THROWS_WITH(spec_of(flags("fp4", 7, "mx", false)),
                    Catch::Contains("--weights fp4 --group 7 --scale mx") && Catch::Contains("fixes the group size at 32"));
  CHECK_THROWS_WITH(spec_of(flags("int4", std::nullopt, "nvfp4", false)),
                    Catch::Contains("--weights int4 --scale nvfp4") && Catch::Contains("nvfp4 constraint needs element format"));
  CHECK_THROWS_WITH(spec_of(flags("fp4", std::nullopt, std::nullopt, true)),
                    Catch::Contains("--weights fp4 --asymmetric") && Catch::Contains("asymmetric"));
  // One field per flag, of the flag's kind.
  CHECK_THROWS_WITH(spec_of(flags("fp5", std::nullopt, std::nullopt, false)), Catch::StartsWith("--weights: unknown element format 'fp5'"));
  CHECK_THROWS_WITH(spec_of(flags("int4:g32", std::nullopt, std::nullopt, false)), Catch::StartsWith("--weights: "));
  CHECK_THROWS_WITH(spec_of(flags("int4", std::nullopt, "pow3", false)),
                    Catch::StartsWith("--scale: expected fp32, m1, m2, mx or nvfp4, got 'pow3'"));
  CHECK_THROWS_WITH(spec_of(flags("int4", std::nullopt, "asym", false)), Catch::StartsWith("--scale: "));
  CHECK_THROWS_WITH(spec_of(flags("int4", std::nullopt, "m2:f16", false)), Catch::StartsWith("--scale: "));
  CHECK_THROWS_WITH(spec_of(flags("int4", -2, std::nullopt, false)), Catch::StartsWith("--group: expected a group size > 0"));
}

}  // namespace test_quant_spec_text_cpp
