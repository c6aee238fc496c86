// Loading a lowbit checkpoint without copies (model/quantized_model.hpp): the packers' fast
// paths (a k step as one word of codes, the 4-bit k-row transpose) write exactly the
// documented layouts, packing from codes outside the QuantizedMatrix (a memory map) equals
// packing the matrix, and a loaded model keeps neither the stored codes nor an fp32 copy of
// an F32 classifier, while a NaN in that classifier is still refused at load.
#include <catch2/catch.hpp>

#include <cmath>
#include <cstdint>
#include <cstring>
#include <fstream>
#include <string>
#include <vector>

#include "lowbit/algo/recipes.hpp"
#include "lowbit/gemm.hpp"
#include "lowbit/io/linear_checkpoint.hpp"
#include "lowbit/model/quantized_model.hpp"
#include "test_gemm_support.hpp"
#include "test_io_support.hpp"
#include "test_model_support.hpp"

// One namespace per test file, so that any set of test files can be compiled as one
// unity translation unit (tests/CMakeLists.txt) without their file-local names clashing.
namespace test_model_qload_inplace_cpp {

using namespace lowbit;

namespace {

// The signed code of element (r, c) of an int4 or int8 matrix, straight from the contract.
int inplace_code(const QuantizedMatrix& q, std::int64_t r, std::int64_t c) {
  const std::uint8_t* row = q.codes.data() + r * q.row_stride;
  if (q.spec.format == element_format::int8) return static_cast<std::int8_t>(row[c]);
  const int nib = (c % 2 == 0) ? (row[c / 2] & 0xF) : (row[c / 2] >> 4);
  return nib >= 8 ? nib - 16 : nib;
}

// Every weight byte of an int_packed, recomputed from the layout in pack/int_packing.hpp.
void inplace_check_int_layout(const QuantizedMatrix& q, const detail::int_packed& p) {
  const bool int4 = p.is_int4();
  const std::int64_t lane_bytes = std::int64_t(p.nt) * 4;
  std::int64_t mismatches = 0;
  for (std::int64_t t = 0; t < p.n_tiles; ++t) {
    const std::uint8_t* out = p.tile(t);
    for (std::int64_t g = 0; g < p.groups; ++g) {
      const std::int64_t k0 = g * p.group_size, len = p.group_len(g);
      for (std::int64_t s = 0; s < p.padded_len(g) / p.kstep; ++s, out += lane_bytes) {
        for (int c = 0; c < p.nt; ++c) {
          const std::int64_t n = t * p.nt + c;
          const auto biased = [&](std::int64_t kk) {
            return (n < p.rows && kk < len) ? inplace_code(q, n, k0 + kk) + p.weight_bias : p.weight_bias;
          };
          if (p.layout == detail::int_layout::mmla) {
            // I8MM: k steps in pairs, column c's 8 bytes of a pair at (c / 16) * 128 + (c % 16) * 8;
            // this step's half: int8 bytes 4 (s % 2) .. + 3; int4 the low (even s) or high nibbles.
            const std::uint8_t* pair = out - (s % 2) * lane_bytes + (c / 16) * 128 + (c % 16) * 8;
            for (int j = 0; j < (int4 ? 8 : 4); ++j) {
              const int got = int4 ? (s % 2 ? pair[j] >> 4 : pair[j] & 0xF) : pair[(s % 2) * 4 + j];
              mismatches += got != biased(s * p.kstep + j);
            }
            continue;
          }
          for (int j = 0; j < 4; ++j) {
            const int want = int4 ? (biased(s * 8 + j) | biased(s * 8 + 4 + j) << 4) : biased(s * 4 + j);
            mismatches += out[(c / 16) * 64 + (c % 16) * 4 + j] != want;
          }
        }
      }
      out += lane_bytes;  // the group's scales (or M2 shifts)
    }
  }
  CHECK(mismatches == 0);
}

}  // namespace

TEST_CASE("in-place loading: the integer packer's word steps give the documented tile bytes", "[pack][model]") {
  // Group and K multiples of the k step (the word path), and not (the element path).
  for (const bool int4 : {true, false}) {
    for (const std::int64_t group : {std::int64_t{32}, std::int64_t{0}, std::int64_t{12}}) {
      lowbit::test::int_matrix_recipe r;
      r.format = int4 ? element_format::int4 : element_format::int8;
      r.rows = 45;
      r.cols = group == 12 ? 60 : 96;
      r.group = group;
      r.code_lo = int4 ? -7 : -127;
      r.code_hi = int4 ? 7 : 127;
      const QuantizedMatrix q = lowbit::test::make_int_matrix(r);
      for (isa_subtier tier : supported_isa_subtiers()) {
        INFO((int4 ? "int4" : "int8") << " group " << group << " sub-tier " << to_string(tier));
        PackOptions po;
        po.subtier = tier;
        po.activations = activation_quant::int8;
        const PackedWeights w = pack(q, po);
        inplace_check_int_layout(q, w.int_weights());
        // The same bytes from codes outside the matrix (as from a memory map).
        QuantizedMatrix bare = q;
        const std::vector<std::uint8_t> codes = bare.codes;
        bare.codes.clear();
        const PackedWeights w2 = detail::pack_codes(bare, codes.data(), po);
        const detail::int_packed& a = w.int_weights();
        const detail::int_packed& b = w2.int_weights();
        REQUIRE(a.data.size() == b.data.size());
        CHECK(std::memcmp(a.data.data(), b.data.data(), a.data.size()) == 0);
      }
    }
  }
}

TEST_CASE("in-place loading: the 4-bit float packer's k-rows pair rows j and j + 16", "[pack][model]") {
  // 45 rows: a padded second block; 61 columns: an odd K whose last byte has no high nibble.
  lowbit::test::int_matrix_recipe r;
  r.rows = 45;
  r.cols = 61;
  r.group = 32;
  QuantizedMatrix q = lowbit::test::make_int_matrix(r);
  for (std::int64_t row = 0; row < q.rows; ++row) q.codes[std::size_t(row * q.row_stride + q.row_stride - 1)] &= 0x0F;
  PackOptions po;
  po.activations = activation_quant::none;  // w4a16_int4: the float family
  const PackedWeights w = pack(q, po);
  REQUIRE(w.is_float_family());
  const detail::float_packed& f = w.float_weights();
  std::int64_t mismatches = 0;
  for (std::int64_t b = 0; b < f.blocks; ++b)
    for (std::int64_t k = 0; k < f.cols; ++k)
      for (std::int64_t j = 0; j < 16; ++j) {
        const auto nib = [&](std::int64_t row) { return row < q.rows ? inplace_code(q, row, k) & 0xF : 0; };
        const int want = nib(b * 32 + j) | nib(b * 32 + 16 + j) << 4;
        mismatches += f.block_codes(b)[k * f.krow_bytes + j] != want;
      }
  CHECK(mismatches == 0);
  QuantizedMatrix bare = q;
  const std::vector<std::uint8_t> codes = bare.codes;
  bare.codes.clear();
  const PackedWeights w2 = detail::pack_codes(bare, codes.data(), po);
  CHECK(w2.float_weights().codes == f.codes);
  CHECK(w2.float_weights().scales == f.scales);
}

TEST_CASE("in-place loading: no stored codes or fp32 classifier copy kept; NaN still refused", "[model]") {
  LOWBIT_REQUIRE_STORIES();
  using namespace lowbit::model;
  const LlamaModel& fp32 = lowbit_test::stories_model();
  const LlamaWeights w = read_all_weights(fp32.source());
  LinearRecipe recipe = recipe_from_name("w4a8-int");
  recipe.method = weight_method::round_to_nearest;
  const auto write = [&](const std::string& dir, bool nan_embedding) {
    SafetensorsWriter out(dir + "/model.safetensors");
    begin_checkpoint(out);
    RowMatrixXf emb = w.tok_embeddings;
    if (nan_embedding) emb(200, 7) = NAN;
    out.add("tok_embeddings.weight", tensor_dtype::f32, {emb.rows(), emb.cols()}, emb.data(), std::size_t(emb.size()) * 4);
    out.add("norm.weight", tensor_dtype::f32, {w.norm.size()}, w.norm.data(), std::size_t(w.norm.size()) * 4);
    for (int l = 0; l < w.config.n_layers; ++l) {
      const LlamaLayerWeights& L = w.layers[std::size_t(l)];
      out.add("layers." + std::to_string(l) + ".attention_norm.weight", tensor_dtype::f32, {L.attention_norm.size()},
              L.attention_norm.data(), std::size_t(L.attention_norm.size()) * 4);
      out.add("layers." + std::to_string(l) + ".ffn_norm.weight", tensor_dtype::f32, {L.ffn_norm.size()},
              L.ffn_norm.data(), std::size_t(L.ffn_norm.size()) * 4);
      for (int s = 0; s < kLinearSlots; ++s) {
        const std::string name = linear_name(l, static_cast<linear_slot>(s));
        write_quantized_linear(out, name, quantize_linear(L.matrix(static_cast<linear_slot>(s)), recipe, nullptr, name));
      }
    }
    out.finish();
    std::ifstream in(lowbit_test::kStoriesDir + "/config.json");
    std::ofstream(dir + "/config.json") << in.rdbuf();
  };
  lowbit_test::scratch_dir dir;
  write(dir.path, false);
  const LlamaModel m = load_quantized_llama(dir.path);
  for (const auto& [name, layer] : m.linear_layers()) {
    INFO(name);
    if (const auto* r = dynamic_cast<const RecipeLinear*>(layer)) {
      CHECK(r->uses_kernels());
      CHECK(r->quantized().weight.codes.empty());  // packed; the codes are not kept
      CHECK(r->quantized().weight.scales.empty());
    }
  }
  // A layer quantized in memory drops its codes and scales once packed, and on the
  // reference path (no kernel takes E5M2 activations) keeps only W_hat.
  for (const char* name : {"w4a16-int4", "mxfp4"}) {
    LinearRecipe r = recipe_from_name(name);
    r.method = weight_method::round_to_nearest;
    if (std::string(name) == "mxfp4") r.activations = ActivationQuant{act_format::float8_e5m2, 0};
    const RecipeLinear in_memory(quantize_linear(w.layers[0].wq, r, nullptr, "wq"), true);
    INFO(name);
    CHECK(in_memory.uses_kernels() == (std::string(name) == "w4a16-int4"));
    CHECK(in_memory.quantized().weight.codes.empty());
    CHECK(in_memory.quantized().weight.scales.empty());
    CHECK(in_memory.storage_bits() > 0.0);  // still reported from the shape and scheme
  }
  // The tied classifier multiplies the mapped F32 table itself.
  const auto* cls = dynamic_cast<const Fp32Linear*>(&m.classifier());
  REQUIRE(cls != nullptr);
  const auto* st = dynamic_cast<const SafetensorsSource*>(&m.source());
  REQUIRE(st != nullptr);
  CHECK(cls->weight().data() == st->tensors().at("tok_embeddings.weight").f32_data());
  // Same logits as the classifier copied out of the file.
  LlamaModel copied(m.shared_source(), [&](const std::string& name, const RowMatrixXf& wt) -> std::unique_ptr<LinearLayer> {
    if (is_classifier_name(name)) return std::make_unique<Fp32Linear>(wt);
    const std::uint8_t* codes = nullptr;
    const SafetensorsFile& f = *st->tensors().shards()[0];
    QuantizedLinear q = load_quantized_linear_mapped(f, name, codes);
    return std::make_unique<RecipeLinear>(std::move(q), codes, true);
  });
  CHECK(copied.classifier().describe() == "fp32");
  const std::vector<int> ids = {1, 301, 427, 309, 426, 301};
  CHECK(m.forward(ids).cwiseEqual(copied.forward(ids)).all());
  // A non-finite value in the in-place classifier is an error at load, naming the tensor.
  lowbit_test::scratch_dir bad;
  write(bad.path, true);
  CHECK_THROWS_WITH(load_quantized_llama(bad.path),
                    Catch::Contains("tok_embeddings.weight has a non-finite value at row 200, column 7"));
}
}  // namespace test_model_qload_inplace_cpp
