// The 16-bit classifier (kernels/wide16.hpp, Wide16Linear): y = x * W^T over BF16/F16
// weights widened in registers. The kernel tiers against the double-sum reference, a result
// independent of the thread count, the exact F16 widening, the finiteness check; and a model
// whose tied embedding is stored BF16/F16 runs its classifier as stored (no fp32 copy), with
// logits and perplexity within float rounding of the fp32 classifier over the same values.
#include <catch2/catch.hpp>

#include <cmath>
#include <cstdint>
#include <cstring>
#include <fstream>
#include <limits>
#include <random>
#include <string>
#include <vector>

#include "lowbit/io/dtype.hpp"
#include "lowbit/io/safetensors_writer.hpp"
#include "lowbit/io/sharded.hpp"
#include "lowbit/kernels/wide16.hpp"
#include "lowbit/model/load.hpp"
#include "lowbit/model/perplexity.hpp"
#include "lowbit/model/quantized_layers.hpp"
#include "test_io_support.hpp"
#include "test_model_support.hpp"

namespace test_model_wide16_cpp {

using lowbit::RowMatrixXf;
using lowbit::Wide16View;
using lowbit::wide16_type;

namespace {

const std::string kWide16HfDir = std::string(LOWBIT_SHARED_DATA_DIR) + "/stories260k-hf";

std::uint16_t wide16_test_round(float v, wide16_type t) {
  return t == wide16_type::bf16 ? lowbit::detail::float_to_bf16(v) : lowbit::detail::float_to_half(v);
}

// Random weights in [-2, 2) with some tiny ones (F16 subnormals), stored 16-bit.
std::vector<std::uint16_t> wide16_test_weights(std::int64_t rows, std::int64_t cols, wide16_type t, std::mt19937& rng) {
  std::uniform_real_distribution<float> u(-2.0f, 2.0f);
  std::vector<std::uint16_t> w(static_cast<std::size_t>(rows * cols));
  for (std::size_t i = 0; i < w.size(); ++i) w[i] = wide16_test_round(i % 7 == 3 ? u(rng) * 1e-6f : u(rng), t);
  return w;
}

// Per element: |y - reference| <= wide16_tolerance(cols, sum |x * w|).
void wide16_test_check_close(const RowMatrixXf& x, const Wide16View& w, const RowMatrixXf& y, const RowMatrixXf& ref) {
  for (Eigen::Index t = 0; t < x.rows(); ++t)
    for (std::int64_t r = 0; r < w.rows; ++r) {
      double abs_sum = 0.0;
      for (std::int64_t k = 0; k < w.cols; ++k)
        abs_sum += std::fabs(static_cast<double>(x(t, k)) * lowbit::detail::wide16_to_float(w.data[r * w.cols + k], w.type));
      const double tol = lowbit::wide16_tolerance(w.cols, abs_sum);
      INFO("token " << t << " row " << r << " y " << y(t, r) << " reference " << ref(t, r) << " tolerance " << tol);
      REQUIRE(std::fabs(static_cast<double>(y(t, r)) - ref(t, r)) <= tol);
    }
}

std::vector<lowbit::isa_tier> wide16_test_tiers() {
  std::vector<lowbit::isa_tier> tiers{lowbit::isa_tier::scalar};
  for (lowbit::isa_tier t : lowbit::supported_isa_tiers())
    if (t == lowbit::isa_tier::avx512) tiers.push_back(t);
  return tiers;
}

// A copy of the stories260K Hugging Face directory whose tied embedding is stored as `t`
// (optionally with one value made infinite), everything else F32 as in the original.
void wide16_test_write_hf(const std::string& dir, wide16_type t, bool plant_inf = false) {
  const lowbit::SafetensorsModel src = lowbit::open_safetensors_model(kWide16HfDir);
  lowbit::SafetensorsWriter out(dir + "/model.safetensors");
  for (const lowbit::TensorView* tv : src.tensors()) {
    const std::vector<float> v = tv->to_float_vector();
    if (tv->name == "model.embed_tokens.weight") {
      std::vector<std::uint16_t> h(v.size());
      for (std::size_t i = 0; i < v.size(); ++i) h[i] = wide16_test_round(v[i], t);
      if (plant_inf) h[5 * 64 + 7] = t == wide16_type::bf16 ? 0x7F80 : 0x7C00;
      out.add(tv->name, t == wide16_type::bf16 ? lowbit::tensor_dtype::bf16 : lowbit::tensor_dtype::f16, tv->shape,
              h.data(), h.size() * 2);
    } else {
      out.add(tv->name, lowbit::tensor_dtype::f32, tv->shape, v.data(), v.size() * 4);
    }
  }
  out.finish();
  std::ifstream in(kWide16HfDir + "/config.json", std::ios::binary);
  std::ofstream(dir + "/config.json", std::ios::binary) << in.rdbuf();
}

}  // namespace

TEST_CASE("wide16_gemm matches the double-sum reference on every tier, BF16 and F16", "[wide16]") {
  std::mt19937 rng(7);
  std::uniform_real_distribution<float> u(-1.0f, 1.0f);
  struct shape {
    std::int64_t rows, cols, tokens;
  };
  // Rows around the 4-row block and the 16-row chunk, columns around the 16 lanes (tails),
  // tokens around the 4-token block.
  for (const shape s : {shape{1, 1, 1}, shape{3, 15, 2}, shape{37, 16, 5}, shape{70, 100, 4}, shape{33, 64, 9},
                        shape{130, 2051, 1}, shape{16, 17, 3}})
    for (const wide16_type type : {wide16_type::bf16, wide16_type::f16}) {
      const std::vector<std::uint16_t> wd = wide16_test_weights(s.rows, s.cols, type, rng);
      const Wide16View w{wd.data(), s.rows, s.cols, type};
      RowMatrixXf x(s.tokens, s.cols);
      for (Eigen::Index i = 0; i < x.size(); ++i) x.data()[i] = u(rng);
      RowMatrixXf ref(s.tokens, s.rows);
      lowbit::wide16_gemm_reference(x, w, ref);
      for (const lowbit::isa_tier tier : wide16_test_tiers()) {
        INFO("rows " << s.rows << " cols " << s.cols << " tokens " << s.tokens << " " << lowbit::to_string(type)
                     << " tier " << lowbit::to_string(tier));
        RowMatrixXf y1(s.tokens, s.rows), y3(s.tokens, s.rows);
        lowbit::wide16_gemm(x, w, y1, 1, tier);
        wide16_test_check_close(x, w, y1, ref);
        // The same code runs for every element whatever the split over threads.
        lowbit::wide16_gemm(x, w, y3, 3, tier);
        CHECK(y3 == y1);
      }
    }
}

TEST_CASE("wide16_gemm: an element's sum does not depend on its register block", "[wide16]") {
  // Rows 1.. of W as their own matrix put every row in another 4-row block (and tokens 1..
  // in another token block); the accumulation order per element is the same. Exactly equal
  // where that code is compiled alike (x86); within rounding elsewhere.
  std::mt19937 rng(11);
  std::uniform_real_distribution<float> u(-1.0f, 1.0f);
  const std::int64_t rows = 23, cols = 99, tokens = 7;
  const std::vector<std::uint16_t> wd = wide16_test_weights(rows, cols, wide16_type::bf16, rng);
  RowMatrixXf x(tokens, cols);
  for (Eigen::Index i = 0; i < x.size(); ++i) x.data()[i] = u(rng);
  for (const lowbit::isa_tier tier : wide16_test_tiers()) {
    RowMatrixXf full(tokens, rows), part(tokens - 1, rows - 1);
    lowbit::wide16_gemm(x, Wide16View{wd.data(), rows, cols, wide16_type::bf16}, full, 1, tier);
    const RowMatrixXf x1 = x.bottomRows(tokens - 1);
    lowbit::wide16_gemm(x1, Wide16View{wd.data() + cols, rows - 1, cols, wide16_type::bf16}, part, 1, tier);
    const RowMatrixXf same = full.bottomRightCorner(tokens - 1, rows - 1);
#if LOWBIT_X86
    CHECK(part == same);
#else
    CHECK(part.isApprox(same, 1e-5f));
#endif
    // One token at a time runs 2-row blocks (wide16_stream_block_rows) where the first 4
    // tokens ran 4-row blocks, and the last 3 tokens 2-row blocks of 3 tokens.
    for (std::int64_t t = 0; t < tokens; ++t) {
      INFO("token " << t << " tier " << lowbit::to_string(tier));
      RowMatrixXf one(1, rows);
      const RowMatrixXf xt = x.row(t);
      lowbit::wide16_gemm(xt, Wide16View{wd.data(), rows, cols, wide16_type::bf16}, one, 1, tier);
#if LOWBIT_X86
      CHECK(one == full.row(t));
#else
      CHECK(one.isApprox(full.row(t), 1e-5f));
#endif
    }
  }
}

TEST_CASE("wide16: F16 widening is exact for every bit pattern, BF16 is a shift", "[wide16]") {
  for (std::uint32_t h = 0; h < 65536; ++h) {
    const auto v = static_cast<std::uint16_t>(h);
    const float got = lowbit::detail::wide16_to_float(v, wide16_type::f16), want = lowbit::detail::half_to_float(v);
    INFO("f16 bits " << h);
    if (std::isnan(want)) {
      REQUIRE(std::isnan(got));
    } else {
      std::uint32_t gb, wb;
      std::memcpy(&gb, &got, 4);
      std::memcpy(&wb, &want, 4);
      REQUIRE(gb == wb);
    }
    if (!std::isnan(lowbit::detail::bf16_to_float(v)))
      REQUIRE(lowbit::detail::wide16_to_float(v, wide16_type::bf16) == lowbit::detail::bf16_to_float(v));
  }
}

TEST_CASE("wide16: non-finite weights are found, shapes are checked", "[wide16]") {
  for (const wide16_type type : {wide16_type::bf16, wide16_type::f16}) {
    std::vector<std::uint16_t> wd(3 * 5000, wide16_test_round(0.5f, type));
    const Wide16View w{wd.data(), 3, 5000, type};
    std::int64_t bad = -1;
    CHECK(lowbit::wide16_all_finite(w, &bad));
    // The largest finite value is finite; Inf and NaN (any payload) are not.
    wd[4321] = type == wide16_type::bf16 ? 0x7F7F : 0x7BFF;
    CHECK(lowbit::wide16_all_finite(w, &bad));
    wd[9001] = type == wide16_type::bf16 ? 0xFF80 : 0xFC00;  // -Inf
    CHECK_FALSE(lowbit::wide16_all_finite(w, &bad));
    CHECK(bad == 9001);
    wd[9001] = wide16_test_round(1.0f, type);
    wd[14999] = type == wide16_type::bf16 ? 0x7FC1 : 0x7E01;  // NaN, the last value
    CHECK_FALSE(lowbit::wide16_all_finite(w, &bad));
    CHECK(bad == 14999);
  }
  std::vector<std::uint16_t> wd(4 * 8, 0);
  RowMatrixXf x(2, 8), y(2, 5);
  x.setZero();
  CHECK_THROWS_WITH(lowbit::wide16_gemm(x, Wide16View{wd.data(), 4, 8, wide16_type::bf16}, y),
                    Catch::Contains("shape mismatch"));
}

TEST_CASE("a model whose tied embedding is BF16/F16 runs its classifier as stored", "[wide16]") {
  if (!lowbit_test::file_exists(kWide16HfDir + "/config.json") || !lowbit_test::have_stories()) {
    WARN("skipped: the shared stories260k data are missing");
    SUCCEED();
    return;
  }
  using namespace lowbit::model;
  const std::vector<int> tokens = read_u16_tokens(lowbit_test::kStoriesDir + "/eval_tinystories_val_tok512.u16");
  PerplexityOptions po;
  po.max_docs = 12;
  for (const wide16_type type : {wide16_type::bf16, wide16_type::f16}) {
    INFO(lowbit::to_string(type));
    lowbit_test::scratch_dir dir;
    wide16_test_write_hf(dir.path, type);
    const auto src = open_model(dir.path);
    const LlamaModel m(src);
    // As stored: 16 bits per weight (what `lowbit bench` counts as read per token).
    CHECK(m.classifier().describe().find(lowbit::to_string(type)) == 0);
    CHECK(m.classifier().storage_bits() == 16.0 * 512 * 64);
    // The reference: the same (rounded) values as an fp32 classifier, in memory.
    const LlamaModel ref(read_all_weights(*src));
    REQUIRE(ref.classifier().describe() == "fp32");
    const std::vector<int> ids(tokens.begin(), tokens.begin() + 40);
    const RowMatrixXf a = m.forward(ids), b = ref.forward(ids);
    CHECK(a.rows() == 40);
    CHECK((a - b).cwiseAbs().maxCoeff() <= 1e-5f * (1.0f + b.cwiseAbs().maxCoeff()));
    const double pa = evaluate_perplexity(m, tokens, po).perplexity(), pb = evaluate_perplexity(ref, tokens, po).perplexity();
    CHECK(std::fabs(pa - pb) <= 1e-6 * pb);
    // Decoding one token at a time (the 1-token path) agrees with the whole-sequence pass.
    KvCache cache(m.config());
    ForwardWorkspace ws;
    RowMatrixXf step;
    for (int t = 0; t < 5; ++t) m.forward(&ids[static_cast<std::size_t>(t)], 1, cache, step, ws);
    CHECK((step.row(0) - a.row(4)).cwiseAbs().maxCoeff() <= 1e-4f * (1.0f + a.row(4).cwiseAbs().maxCoeff()));

    // Rebuilt through a factory: a plain fp32 classifier still runs as stored, one the
    // factory quantizes (or otherwise changes) is kept as the factory made it.
    LlamaModel rebuilt(src);
    rebuilt.set_linear_layers(fp32_linear_factory());
    CHECK(rebuilt.classifier().describe().find(lowbit::to_string(type)) == 0);
    EvalScheme keep;
    keep.name = "custom";
    keep.weights = lowbit::group_spec(lowbit::element_format::int4, 32);
    keep.quantize_classifier = true;
    keep.backend = linear_backend::fake_quant;
    rebuilt.set_linear_layers(scheme_linear_factory(keep));
    CHECK(rebuilt.classifier().describe().find("fake-quant") == 0);
  }
}

TEST_CASE("a BF16 embedding with an Inf is refused at load, naming the tensor", "[wide16]") {
  if (!lowbit_test::file_exists(kWide16HfDir + "/config.json")) {
    WARN("skipped: " << kWide16HfDir << " is missing");
    SUCCEED();
    return;
  }
  lowbit_test::scratch_dir dir;
  wide16_test_write_hf(dir.path, wide16_type::bf16, /*plant_inf=*/true);
  CHECK_THROWS_WITH(lowbit::model::LlamaModel(lowbit::model::open_model(dir.path)),
                    Catch::Contains("model.embed_tokens.weight has a non-finite value at row 5, column 7"));
}

TEST_CASE("the forward pass gives the same logits on 1 and 3 threads (classifier, attention)", "[wide16]") {
  if (!lowbit_test::file_exists(kWide16HfDir + "/config.json") || !lowbit_test::have_stories()) {
    WARN("skipped: the shared stories260k data are missing");
    SUCCEED();
    return;
  }
  using namespace lowbit::model;
  lowbit_test::scratch_dir dir;
  wide16_test_write_hf(dir.path, wide16_type::bf16);
  const LlamaModel m(open_model(dir.path));
  const std::vector<int> tokens = read_u16_tokens(lowbit_test::kStoriesDir + "/eval_tinystories_val_tok512.u16");
  const std::vector<int> ids(tokens.begin(), tokens.begin() + 70);
  struct restore_threads {
    ~restore_threads() { lowbit::set_num_threads(0); }
  } restore;
  const auto run = [&](int threads) {
    lowbit::set_num_threads(threads);
    // A prompt, then two single-token steps over the cache.
    KvCache cache(m.config());
    ForwardWorkspace ws;
    RowMatrixXf prompt, step1, step2;
    m.forward(ids.data(), 60, cache, prompt, ws);
    m.forward(&ids[60], 1, cache, step1, ws);
    m.forward(&ids[61], 9, cache, step2, ws);
    RowMatrixXf all(prompt.rows() + step1.rows() + step2.rows(), prompt.cols());
    all << prompt, step1, step2;
    return all;
  };
  const RowMatrixXf one = run(1), three = run(3);
  CHECK(one == three);
}

}  // namespace test_model_wide16_cpp
