// RoPE: every rope_scaling type on generated Hugging Face models against the reference's own
// transformers-style frequencies (test_model_hf_support.hpp), with a check per type that
// ignoring the scaling is caught; and the two pair conventions through the one rotation
// function (a permuted interleaved model equals the half-split one).
#include <catch2/catch.hpp>

#include <cmath>
#include <string>
#include <vector>

#include "lowbit/model/llama.hpp"
#include "lowbit/model/load.hpp"
#include "lowbit/model/rope.hpp"
#include "test_model_hf_support.hpp"
#include "test_random_llama.hpp"

// One namespace per test file, so that any set of test files can be compiled as one
// unity translation unit (tests/CMakeLists.txt) without their file-local names clashing.
namespace test_model_rope_cpp {

using namespace lowbit::model;
using namespace lowbit_test_hf;

namespace {

const std::vector<int> kRopeTokens = {1, 7, 3, 22, 9, 31, 4, 4, 18, 2, 11, 30};

double max_error(const std::string& dir, const Fixture& f) {
  const LlamaModel m(open_model(dir));
  const lowbit::RowMatrixXf got = m.forward(kRopeTokens);
  const Mat want = reference_logits(f, kRopeTokens);
  double err = 0;
  for (std::size_t t = 0; t < want.size(); ++t)
    for (std::size_t v = 0; v < want[t].size(); ++v)
      err = std::max(err, std::abs(static_cast<double>(got(static_cast<Eigen::Index>(t), static_cast<Eigen::Index>(v))) - want[t][v]));
  return err;
}

constexpr double kTol = 2e-5;

}  // namespace

TEST_CASE("rope scaling: each type matches the reference, and ignoring it is caught", "[model]") {
  struct Case {
    const char* what;
    json scaling;
    int max_pos;
  };
  const Case cases[] = {
      {"linear", {{"rope_type", "linear"}, {"factor", 4.0}}, 16},
      {"dynamic, 12 tokens past max_position_embeddings 8", {{"type", "dynamic"}, {"factor", 2.0}}, 8},
      {"llama3", {{"rope_type", "llama3"}, {"factor", 8.0}, {"low_freq_factor", 1.0}, {"high_freq_factor", 4.0},
                  {"original_max_position_embeddings", 64}}, 16},
      {"yarn defaults", {{"rope_type", "yarn"}, {"factor", 4.0}, {"original_max_position_embeddings", 64}}, 16},
      {"yarn, truncate false, beta 16/2", {{"rope_type", "yarn"}, {"factor", 4.0}, {"beta_fast", 16.0}, {"beta_slow", 2.0},
                                           {"truncate", false}, {"original_max_position_embeddings", 64}}, 16},
      {"yarn, mscale ratio", {{"rope_type", "yarn"}, {"factor", 4.0}, {"mscale", 1.0}, {"mscale_all_dim", 0.5}}, 16},
      {"yarn, attention_factor", {{"rope_type", "yarn"}, {"factor", 2.0}, {"attention_factor", 1.3}}, 16},
  };
  for (const Case& c : cases) {
    INFO(c.what);
    Spec s;
    s.theta = 100.0;  // low frequencies still turn within 12 positions: the scaling shows
    s.heads = 2;      // head_dim 8: four frequencies, so the ramps and bands have inner points
    s.kv_heads = 1;
    s.rope_scaling = c.scaling;
    s.max_pos = c.max_pos;
    const Fixture f = make_fixture(s);
    TempDir dir;
    write_hf_dir(dir.str(), f, "F32", 1);
    CHECK(max_error(dir.str(), f) < kTol);
    Fixture unscaled = f;
    unscaled.config["rope_scaling"] = nullptr;
    CHECK(max_error(dir.str(), unscaled) > 20 * kTol);
  }
}

TEST_CASE("rope scaling: dynamic keeps the base frequencies up to max_position_embeddings", "[model]") {
  // A whole small model's config (2 heads of 8); RoPE reads the head width and the rope fields.
  LlamaConfig c = lowbit_test::random_llama_config(16, 32, 1, 2, 2, 8, 32);
  c.rope_theta = 10000.0f;
  c.max_position_embeddings = 16;
  c.rope_scaling.type = rope_scaling_type::dynamic;
  c.rope_scaling.factor = 2.0;
  const auto at16 = rope_frequencies(c, 16), at17 = rope_frequencies(c, 17);
  for (std::size_t i = 0; i < at16.inv_freq.size(); ++i)
    CHECK(at16.inv_freq[i] == Approx(std::pow(10000.0, -2.0 * static_cast<double>(i) / 8.0)).epsilon(1e-12));
  CHECK(at17.inv_freq[1] < at16.inv_freq[1]);  // a larger base past the trained context
  CHECK(at17.inv_freq[0] == at16.inv_freq[0]);
}

TEST_CASE("rope: interleaved and half-split pairs are one rotation under a permutation", "[model]") {
  // A head rotated with interleaved pairs equals the half-split rotation of the same head
  // with its elements permuted as the transformers conversion script permutes q/k rows.
  const int hd = 8, heads = 3, n = 5;
  LlamaConfig c = lowbit_test::random_llama_config(hd * heads, 32, 1, heads, heads, 8, 16);
  c.rope_theta = 500000.0f;
  lowbit::RowMatrixXf cs, sn;
  rope_table(c, 4, n, cs, sn);
  lowbit::RowMatrixXf a = lowbit::RowMatrixXf::Random(n, hd * heads), b(n, hd * heads);
  for (int t = 0; t < n; ++t)
    for (int h = 0; h < heads; ++h)
      for (int i = 0; i < hd / 2; ++i) {  // interleaved (2i, 2i+1) -> half (i, i + hd/2)
        b(t, h * hd + i) = a(t, h * hd + 2 * i);
        b(t, h * hd + i + hd / 2) = a(t, h * hd + 2 * i + 1);
      }
  lowbit::RowMatrixXf a0 = a;
  apply_rope(a, hd, rope_style::interleaved, cs, sn);
  apply_rope(b, hd, rope_style::half, cs, sn);
  for (int t = 0; t < n; ++t)
    for (int h = 0; h < heads; ++h)
      for (int i = 0; i < hd / 2; ++i) {
        // Not bit-equal: where the target fuses multiply-adds (aarch64) the two index
        // patterns may be contracted differently, so they agree to a few ulps.
        CHECK(b(t, h * hd + i) == Approx(a(t, h * hd + 2 * i)).margin(1e-6));
        CHECK(b(t, h * hd + i + hd / 2) == Approx(a(t, h * hd + 2 * i + 1)).margin(1e-6));
      }
  // And it is a rotation by position * theta^(-2i/hd): check pair 1 of head 0 at position 4 + 2.
  const double ang = 6.0 * std::pow(500000.0, -2.0 / hd);
  const double x = a0(2, 2), y = a0(2, 3);
  CHECK(a(2, 2) == Approx(x * std::cos(ang) - y * std::sin(ang)).margin(1e-6));
  CHECK(a(2, 3) == Approx(x * std::sin(ang) + y * std::cos(ang)).margin(1e-6));
}
}  // namespace test_model_rope_cpp
