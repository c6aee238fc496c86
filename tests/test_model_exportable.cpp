// exportable() (model/exportable.hpp): the export rules of GGUF and compressed-tensors asked of
// a layer as a recipe will quantize it, before anything is quantized, with the reason in the
// exporter's words. That the exporters refuse with these same words is checked against real
// exports in test_model_gguf.cpp and test_model_ct.cpp ("export refuses ..." cases).
#include <catch2/catch.hpp>

#include <optional>
#include <string>

#include "lowbit/algo/recipes.hpp"
#include "lowbit/model/exportable.hpp"
#include "lowbit/quant/spec_text.hpp"

namespace test_model_exportable_cpp {

using namespace lowbit::model;

namespace {

const std::string kExportableLayer = "layers.0.attention.wq";

std::string exportable_reason(export_format f, const lowbit::LinearRecipe& r, std::int64_t rows, std::int64_t cols,
                              std::optional<linear_slot> slot = {}, bool bias = false) {
  return exportable(f, export_layer(kExportableLayer, r, rows, cols, bias, slot)).reason;
}

// "layer <name> (<spec>): " as both exporters begin a refusal of the scheme.
std::string exportable_with_spec(const lowbit::LinearRecipe& r) {
  return "layer " + kExportableLayer + " (" + lowbit::to_string(r.weight) + "): ";
}

}  // namespace

TEST_CASE("exportable: GGUF holds Q8_0 / Q4_0 / Q4_1 / MXFP4 in whole 32-element blocks", "[model][export]") {
  const auto gguf = export_format::gguf;
  for (const char* ok : {"gguf-q8_0", "gguf-q4_0", "mxfp4"}) {
    INFO(ok);
    const Exportable e = exportable(gguf, export_layer(kExportableLayer, lowbit::recipe_from_name(ok), 64, 256));
    CHECK(static_cast<bool>(e));
    CHECK(e.reason.empty());
  }
  lowbit::LinearRecipe q4_1 = lowbit::recipe_from_name("gguf-q4_0");
  q4_1.weight.symmetric = false;
  CHECK(exportable_reason(gguf, q4_1, 64, 256).empty());

  const lowbit::LinearRecipe nvfp4 = lowbit::recipe_from_name("nvfp4");
  CHECK(exportable_reason(gguf, nvfp4, 64, 256) ==
        exportable_with_spec(nvfp4) + "GGUF export of '" + kExportableLayer +
            "': NVFP4 (E4M3 scales per 16 with a tensor scale) has no GGUF type lowbit writes");
  const lowbit::LinearRecipe q8 = lowbit::recipe_from_name("gguf-q8_0");
  CHECK(exportable_reason(gguf, q8, 64, 172) ==
        exportable_with_spec(q8) + "GGUF export of '" + kExportableLayer +
            "': rows of 172 elements are not a whole number of 32-element GGUF blocks");
  lowbit::LinearRecipe g48 = q8;
  g48.weight.group_size = 48;
  CHECK_THAT(exportable_reason(gguf, g48, 64, 96), Catch::EndsWith("group size 48 is not a multiple of GGUF's 32-element blocks (one scale per block)"));
  lowbit::LinearRecipe asym8 = q8;
  asym8.weight.symmetric = false;
  CHECK_THAT(exportable_reason(gguf, asym8, 64, 256), Catch::EndsWith("asymmetric int8 (a zero point) has no GGUF type"));
  CHECK_THAT(exportable_reason(gguf, lowbit::recipe_from_name("w8a8-fp8"), 64, 256), Catch::EndsWith("have no GGUF type"));
  // Parts of the layer GGUF has no place for; activation quantization is not refused (dropped
  // with a warning by the exporter).
  CHECK(exportable_reason(gguf, lowbit::recipe_from_name("w4a8-fp"), 64, 256) ==
        "layer " + kExportableLayer + ": LoRC factors (GGUF has no low-rank correction term)");
  CHECK_THAT(exportable_reason(gguf, lowbit::recipe_from_name("w8a8-int8"), 64, 256),
             Catch::StartsWith("layer " + kExportableLayer + ": a SmoothQuant smoothing vector (GGUF has none"));
  lowbit::LinearRecipe q8_a8 = q8;
  q8_a8.activations = lowbit::ActivationQuant{lowbit::act_format::int8, 0};
  CHECK(exportable_reason(gguf, q8_a8, 64, 256).empty());

  // The model: llama and qwen2 (with its q/k/v biases) are written; qwen3's q/k norms are not.
  LlamaConfig c;
  CHECK(static_cast<bool>(exportable(gguf, c)));
  c.arch = model_arch::qwen3;
  c.qk_norm = true;
  CHECK(exportable(gguf, c).reason == "architecture qwen3 (q/k norms) is not exported (llama and qwen2 only)");
}

TEST_CASE("exportable: compressed-tensors' formats, and smoothing only where a norm can take it", "[model][export]") {
  const auto ct = export_format::compressed_tensors;
  for (const char* ok : {"w8a8-fp8", "w4a16-int4", "w4a8-int", "nvfp4", "mxfp4", "gguf-q8_0"}) {
    INFO(ok);
    CHECK(exportable_reason(ct, lowbit::recipe_from_name(ok), 64, 256).empty());
  }
  const lowbit::LinearRecipe int4 = lowbit::recipe_from_name("w4a16-int4");  // group 128
  CHECK(exportable_reason(ct, int4, 64, 172) ==
        exportable_with_spec(int4) + "group size 128 does not divide the 172 columns (compressed-tensors groups must tile the row)");
  lowbit::LinearRecipe mx8 = lowbit::recipe_from_name("mxfp4");
  mx8.weight.format = lowbit::element_format::float8_e4m3fn;
  CHECK(exportable_reason(ct, mx8, 64, 256) ==
        exportable_with_spec(mx8) +
            "MX scales on float8_e4m3fn are not exported (compressed-tensors' MX format here: mxfp4-pack-quantized, E2M1 only)");
  lowbit::LinearRecipe e5m2 = lowbit::recipe_from_name("w8a8-fp8");
  e5m2.weight.format = lowbit::element_format::float8_e5m2;
  CHECK_THAT(exportable_reason(ct, e5m2, 64, 256), Catch::EndsWith("has no compressed-tensors format (FP8 E4M3, int8, int4, NVFP4, MXFP4 are exported)"));
  lowbit::LinearRecipe tensor4 = int4;
  tensor4.weight.gran = lowbit::granularity::per_tensor;
  CHECK_THAT(exportable_reason(ct, tensor4, 64, 256), Catch::EndsWith("per-tensor int4 is not exported (pack-quantized: group or channel)"));
  lowbit::LinearRecipe grouped_acts = lowbit::recipe_from_name("w8a8-fp8");
  grouped_acts.activations->group = 32;
  CHECK_THAT(exportable_reason(ct, grouped_acts, 64, 256), Catch::Contains("per-group activation quantization (group 32)"));
  CHECK_THAT(exportable_reason(ct, lowbit::recipe_from_name("w8a8-fp8"), 64, 256, {}, true),
             Catch::EndsWith("a bias on a quantized layer is not exported (not implemented)"));
  CHECK_THAT(exportable_reason(ct, lowbit::recipe_from_name("w4a8-fp"), 64, 256),
             Catch::EndsWith("LoRC factors (compressed-tensors has no low-rank correction term)"));

  // Smoothing: q/k/v and gate/up fold it into the norm they read (whether they share one vector
  // is the quantized data's, checked by the exporter); o_proj and down_proj have no norm.
  lowbit::LinearRecipe smooth = lowbit::recipe_from_name("w8a8-int8");
  // The recipe's default scope shares one vector per norm and leaves o_proj / down_proj
  // unsmoothed (model/norm_smoothing.hpp): every place exports.
  REQUIRE(smooth.scope == lowbit::smoothing_scope::per_norm);
  for (int k = 0; k < lowbit::model::kLinearSlots; ++k)
    CHECK(exportable_reason(ct, smooth, 64, 256, static_cast<linear_slot>(k)).empty());
  smooth.scope = lowbit::smoothing_scope::per_layer;  // a vector on every layer
  for (linear_slot s : {linear_slot::wq, linear_slot::wk, linear_slot::wv, linear_slot::w1, linear_slot::w3}) {
    INFO(static_cast<int>(s));
    CHECK(exportable_reason(ct, smooth, 64, 256, s).empty());
  }
  CHECK(exportable_reason(ct, smooth, 64, 256, linear_slot::wo) ==
        "layer " + kExportableLayer +
            ": a SmoothQuant smoothing vector on o_proj (its input, the attention output, has no norm to fold it into; "
            "compressed-tensors has no smoothing tensor)");
  CHECK_THAT(exportable_reason(ct, smooth, 64, 256, linear_slot::w2), Catch::Contains("on down_proj (its input, the SwiGLU product,"));
  CHECK_THAT(exportable_reason(ct, smooth, 64, 256), Catch::EndsWith("a SmoothQuant smoothing vector (compressed-tensors has none; it must be folded into the preceding norm)"));

  LlamaConfig c;
  CHECK(static_cast<bool>(exportable(ct, c)));
  c.qk_norm = true;
  CHECK(exportable(ct, c).reason == "q/k norms (qwen3) are not exported");
}

}  // namespace test_model_exportable_cpp
