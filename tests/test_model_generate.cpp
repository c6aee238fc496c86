// Generation: greedy fp32 decoding against an independent reference (a naive llama2.c run.c
// forward written here, one token at a time with plain loops), the sampler's rules and
// errors, the KV cache storage types.
#include <catch2/catch.hpp>

#include <cmath>
#include <map>
#include <string>
#include <vector>

#include "lowbit/model/generate.hpp"
#include "lowbit/model/kv_cache.hpp"
#include "lowbit/model/sampler.hpp"
#include "lowbit/model/tokenizer.hpp"
#include "test_model_support.hpp"
#include "test_random_llama.hpp"

// One namespace per test file, so that any set of test files can be compiled as one
// unity translation unit (tests/CMakeLists.txt) without their file-local names clashing.
namespace test_model_generate_cpp {

using namespace lowbit::model;
using lowbit::RowMatrixXf;
using lowbit_test::kStoriesDir;

namespace {

// llama2.c run.c's transformer(), transcribed with loops: no Eigen products, no batching, its
// own RoPE (frequencies computed per call in float, as run.c does), its own KV cache.
struct NaiveLlama {
  const LlamaWeights& w;
  std::vector<std::vector<float>> kc, vc;  // per layer [max_seq_len * kv_dim]

  explicit NaiveLlama(const LlamaWeights& weights) : w(weights) {
    const LlamaConfig& c = w.config;
    kc.assign(static_cast<std::size_t>(c.n_layers), std::vector<float>(static_cast<std::size_t>(c.max_seq_len * c.kv_dim())));
    vc = kc;
  }

  static void matvec(const RowMatrixXf& m, const std::vector<float>& x, std::vector<float>& y) {
    y.assign(static_cast<std::size_t>(m.rows()), 0.0f);
    for (Eigen::Index i = 0; i < m.rows(); ++i) {
      float s = 0.0f;
      for (Eigen::Index j = 0; j < m.cols(); ++j) s += m(i, j) * x[static_cast<std::size_t>(j)];
      y[static_cast<std::size_t>(i)] = s;
    }
  }
  void rmsnorm(const std::vector<float>& x, const Eigen::VectorXf& g, std::vector<float>& o) const {
    float ss = 0.0f;
    for (float v : x) ss += v * v;
    ss = 1.0f / std::sqrt(ss / static_cast<float>(x.size()) + w.config.norm_eps);
    o.resize(x.size());
    for (std::size_t i = 0; i < x.size(); ++i) o[i] = g(static_cast<Eigen::Index>(i)) * (ss * x[i]);
  }

  std::vector<float> forward(int token, int pos) {
    const LlamaConfig& c = w.config;
    const int dim = c.dim, hd = c.head_dim(), kvd = c.kv_dim(), mul = c.n_heads / c.n_kv_heads;
    std::vector<float> x(static_cast<std::size_t>(dim)), xb, q, k, v, att, o, h1, h3;
    for (int i = 0; i < dim; ++i) x[static_cast<std::size_t>(i)] = w.tok_embeddings(token, i);
    for (int l = 0; l < c.n_layers; ++l) {
      const LlamaLayerWeights& L = w.layers[static_cast<std::size_t>(l)];
      rmsnorm(x, L.attention_norm, xb);
      matvec(L.wq, xb, q);
      matvec(L.wk, xb, k);
      matvec(L.wv, xb, v);
      for (int i = 0; i < dim; i += 2) {
        const int hi = i % hd;
        const float freq = 1.0f / std::pow(c.rope_theta, static_cast<float>(hi) / static_cast<float>(hd));
        const float fcr = std::cos(pos * freq), fci = std::sin(pos * freq);
        for (int which = 0; which < (i < kvd ? 2 : 1); ++which) {
          std::vector<float>& vec = which == 0 ? q : k;
          const float v0 = vec[static_cast<std::size_t>(i)], v1 = vec[static_cast<std::size_t>(i + 1)];
          vec[static_cast<std::size_t>(i)] = v0 * fcr - v1 * fci;
          vec[static_cast<std::size_t>(i + 1)] = v0 * fci + v1 * fcr;
        }
      }
      std::copy(k.begin(), k.end(), kc[static_cast<std::size_t>(l)].begin() + pos * kvd);
      std::copy(v.begin(), v.end(), vc[static_cast<std::size_t>(l)].begin() + pos * kvd);
      std::vector<float> out(static_cast<std::size_t>(dim), 0.0f);
      for (int h = 0; h < c.n_heads; ++h) {
        att.assign(static_cast<std::size_t>(pos + 1), 0.0f);
        const int kvh = (h / mul) * hd;
        for (int t = 0; t <= pos; ++t) {
          float s = 0.0f;
          for (int i = 0; i < hd; ++i)
            s += q[static_cast<std::size_t>(h * hd + i)] * kc[static_cast<std::size_t>(l)][static_cast<std::size_t>(t * kvd + kvh + i)];
          att[static_cast<std::size_t>(t)] = s / std::sqrt(static_cast<float>(hd));
        }
        float mx = att[0], sum = 0.0f;
        for (float a : att) mx = std::max(mx, a);
        for (float& a : att) sum += a = std::exp(a - mx);
        for (float& a : att) a /= sum;
        for (int t = 0; t <= pos; ++t)
          for (int i = 0; i < hd; ++i)
            out[static_cast<std::size_t>(h * hd + i)] +=
                att[static_cast<std::size_t>(t)] * vc[static_cast<std::size_t>(l)][static_cast<std::size_t>(t * kvd + kvh + i)];
      }
      matvec(L.wo, out, o);
      for (int i = 0; i < dim; ++i) x[static_cast<std::size_t>(i)] += o[static_cast<std::size_t>(i)];
      rmsnorm(x, L.ffn_norm, xb);
      matvec(L.w1, xb, h1);
      matvec(L.w3, xb, h3);
      for (std::size_t i = 0; i < h1.size(); ++i) h1[i] = h1[i] / (1.0f + std::exp(-h1[i])) * h3[i];
      matvec(L.w2, h1, o);
      for (int i = 0; i < dim; ++i) x[static_cast<std::size_t>(i)] += o[static_cast<std::size_t>(i)];
    }
    rmsnorm(x, w.norm, xb);
    std::vector<float> logits;
    matvec(w.config.tied_classifier ? w.tok_embeddings : w.output, xb, logits);
    return logits;
  }
};

// run.c's generate loop with greedy sampling: feed the prompt, then the argmax, until a
// stop token or `steps` new tokens.
std::vector<int> naive_greedy(const LlamaWeights& w, const std::vector<int>& prompt, int steps,
                              const std::vector<int>& stop) {
  NaiveLlama m(w);
  std::vector<int> out;
  std::vector<float> logits;
  int pos = 0;
  for (int t : prompt) logits = m.forward(t, pos++);
  while (static_cast<int>(out.size()) < steps) {
    int best = 0;
    for (int i = 1; i < static_cast<int>(logits.size()); ++i)
      if (logits[static_cast<std::size_t>(i)] > logits[static_cast<std::size_t>(best)]) best = i;
    if (std::find(stop.begin(), stop.end(), best) != stop.end()) break;
    out.push_back(best);
    if (static_cast<int>(out.size()) == steps) break;
    logits = m.forward(best, pos++);
  }
  return out;
}

GenerateOptions greedy(int n) {
  GenerateOptions o;
  o.max_new_tokens = n;
  o.sampling.temperature = 0.0f;
  o.stop_ids = {1, 2};  // llama2.c models end a story with BOS (run.c stops there) or EOS
  return o;
}

}  // namespace

TEST_CASE("generate: greedy fp32 equals the naive run.c reference token for token", "[model]") {
  LOWBIT_REQUIRE_STORIES();
  const LlamaModel& m = lowbit_test::stories_model();
  const Tokenizer tok = Tokenizer::load(kStoriesDir + "/tok512.bin", 512);
  for (const std::string prompt : {"Once upon a time", "One day, a clever fox"}) {
    const std::vector<int> ids = tok.encode(prompt);
    const GenerateResult r = generate(m, ids, greedy(200));
    const std::vector<int> ref = naive_greedy(read_all_weights(m.source()), ids, 200, {1, 2});
    INFO(prompt << " -> " << tok.decode(r.generated_ids));
    CHECK(r.generated_ids.size() > 20);
    CHECK(r.generated_ids == ref);
    CHECK(r.prompt_ids == ids);
  }
}

TEST_CASE("generate: the KV cache storage types", "[model]") {
  LOWBIT_REQUIRE_STORIES();
  const LlamaModel& m = lowbit_test::stories_model();
  const std::vector<int> ids = {1, 301, 427, 309, 426, 301, 427, 309, 394, 265, 40, 7};
  const RowMatrixXf exact = m.forward(ids);
  // Each type: incremental decoding, logits within the type's rounding of the fp32 cache.
  const std::map<kv_cache_type, float> tol = {
      {kv_cache_type::f32, 1e-4f}, {kv_cache_type::f16, 2e-2f}, {kv_cache_type::bf16, 0.15f}, {kv_cache_type::fp8, 1.0f}};
  for (const auto& [type, bound] : tol) {
    KvCache cache(m.config(), type);
    CHECK(cache.type() == type);
    ForwardWorkspace ws;
    RowMatrixXf step;
    float worst = 0.0f;
    m.forward(ids.data(), 4, cache, step, ws);
    for (int t = 4; t < static_cast<int>(ids.size()); ++t) {
      m.forward(ids.data() + t, 1, cache, step, ws);
      worst = std::max(worst, (step.row(0) - exact.row(t)).cwiseAbs().maxCoeff());
    }
    INFO(to_string(type) << " max |logit difference| " << worst);
    CHECK(worst <= bound);
    if (type != kv_cache_type::f32) CHECK(worst > 0.0f);  // the cache really is rounded
  }
}

TEST_CASE("kv cache: stored values round as the type says, fp8 per head", "[model]") {
  const LlamaConfig c = lowbit_test::random_llama_config(16, 32, 1, 4, 2, 8, 40);
  const int kvd = c.kv_dim(), hd = c.head_dim();
  RowMatrixXf k = RowMatrixXf::Random(33, kvd), v = RowMatrixXf::Random(33, kvd);
  k.row(3).segment(hd, hd).setZero();    // an all-zero head vector (scale 1)
  k.row(4).segment(0, hd) *= 1000.0f;    // a head far larger than the other one
  for (kv_cache_type type : {kv_cache_type::f32, kv_cache_type::f16, kv_cache_type::bf16, kv_cache_type::fp8}) {
    KvCache cache(c, type);
    cache.store(0, 0, k.topRows(20), v.topRows(20));  // grows twice: 16 rows, then 20+
    cache.store(0, 20, k.bottomRows(13), v.bottomRows(13));
    RowMatrixXf k_buf, v_buf;
    for (int g = 0; g < c.n_kv_heads; ++g) {
      const RowMatrixXf kr = cache.keys(0, g, 33, k_buf), vr = cache.values(0, g, 33, v_buf);
      for (int t = 0; t < 33; ++t) {
        const Eigen::VectorXf kx = k.row(t).segment(g * hd, hd).transpose();
        const Eigen::VectorXf diff = (kr.row(t).transpose() - kx).cwiseAbs();
        const float amax = kx.cwiseAbs().maxCoeff();
        // Relative half-ulp: 2^-24 f32, 2^-11 f16, 2^-8 bf16; fp8 E4M3: 2^-4 of the value and
        // subnormal steps of 2^-10 * scale (scale = amax / 448).
        for (int i = 0; i < hd; ++i) {
          const float x = std::abs(kx(i));
          const float bound = type == kv_cache_type::f32 ? 0.0f
                              : type == kv_cache_type::f16 ? x * 0x1p-11f
                              : type == kv_cache_type::bf16 ? x * 0x1p-8f
                                                             : x * 0x1p-4f + amax / 448.0f * 0x1p-10f;
          INFO(to_string(type) << " row " << t << " head " << g << " element " << i);
          REQUIRE(diff(i) <= bound);
        }
        REQUIRE((vr.row(t).transpose() - v.row(t).segment(g * hd, hd).transpose()).cwiseAbs().maxCoeff() <=
                (type == kv_cache_type::f32 ? 0.0f : 0.07f));
      }
    }
    CHECK_THROWS_WITH(cache.store(0, 38, k.topRows(3), v.topRows(3)), Catch::Contains("out of range"));
    CHECK_THROWS_WITH(cache.keys(0, 2, 1, k_buf), Catch::Contains("out of range"));
    // Two heads read into two buffers stay both valid: attention reads heads on several
    // threads at once, so a read must never reuse storage another read's view points to.
    RowMatrixXf k_buf0, k_buf1;
    const KvHeadView k0 = cache.keys(0, 0, 33, k_buf0);
    const KvHeadView k1 = cache.keys(0, 1, 33, k_buf1);
    INFO(to_string(type) << ": two views at once");
    CHECK(RowMatrixXf(k0) == RowMatrixXf(cache.keys(0, 0, 33, k_buf)));
    CHECK(RowMatrixXf(k1) == RowMatrixXf(cache.keys(0, 1, 33, k_buf)));
    CHECK(RowMatrixXf(k0) != RowMatrixXf(k1));
  }
  CHECK(parse_kv_cache_type("fp8") == kv_cache_type::fp8);
  CHECK_THROWS_WITH(parse_kv_cache_type("int3"), Catch::Contains("unknown type 'int3'"));
}

TEST_CASE("sampler: greedy, top-k, top-p, seeds and bad options", "[model]") {
  const std::vector<float> logits = {0.5f, 2.0f, 1.0f, 2.0f, -3.0f};
  SamplerOptions o;
  o.temperature = 0.0f;
  Sampler g(o);
  CHECK(g.sample(logits.data(), 5) == 1);  // the first of two equal maxima
  o.temperature = 5.0f;
  o.top_k = 1;
  o.top_p = 1.0f;
  Sampler k1(o);
  for (int i = 0; i < 20; ++i) CHECK(k1.sample(logits.data(), 5) == 1);
  o.top_k = 0;
  o.top_p = 1e-6f;  // the nucleus is the most likely token alone
  Sampler p0(o);
  for (int i = 0; i < 20; ++i) CHECK(p0.sample(logits.data(), 5) == 1);

  // Frequencies follow softmax(logits / T) within top_k = 3: ids 1, 3 (2.0) and 2 (1.0).
  o.temperature = 1.0f;
  o.top_k = 3;
  o.top_p = 1.0f;
  o.seed = 42;
  Sampler s(o), same(o);
  std::vector<int> counts(5, 0);
  const int n = 20000;
  for (int i = 0; i < n; ++i) {
    const int t = s.sample(logits.data(), 5);
    CHECK(t == same.sample(logits.data(), 5));  // a seed fixes the sequence
    ++counts[static_cast<std::size_t>(t)];
  }
  CHECK(counts[0] == 0);
  CHECK(counts[4] == 0);
  const double z = 2.0 * std::exp(2.0) + std::exp(1.0);
  CHECK(std::abs(counts[2] / double(n) - std::exp(1.0) / z) < 0.015);
  CHECK(std::abs(counts[1] / double(n) - std::exp(2.0) / z) < 0.015);

  for (auto bad : {std::make_tuple(-0.1f, 0, 1.0f), std::make_tuple(NAN, 0, 1.0f), std::make_tuple(1.0f, -1, 1.0f),
                   std::make_tuple(1.0f, 0, 0.0f), std::make_tuple(1.0f, 0, 1.5f), std::make_tuple(1.0f, 0, NAN)}) {
    SamplerOptions b;
    std::tie(b.temperature, b.top_k, b.top_p) = bad;
    CHECK_THROWS_AS(Sampler(b), lowbit::error);
  }
  std::vector<float> nan = logits;
  nan[2] = NAN;
  CHECK_THROWS_WITH(g.sample(nan.data(), 5), Catch::Contains("logit 2"));
}

TEST_CASE("generate: prompts that do not fit, stops and interruption", "[model]") {
  LOWBIT_REQUIRE_STORIES();
  const LlamaModel& m = lowbit_test::stories_model();
  const int ctx = m.config().max_seq_len;
  CHECK_THROWS_WITH(generate(m, std::vector<int>(static_cast<std::size_t>(ctx), 5), greedy(4)),
                    Catch::Contains("context holds 512"));
  CHECK_THROWS_WITH(generate(m, {}, greedy(4)), Catch::Contains("no tokens"));
  CHECK_THROWS_WITH(generate(m, {1, 512}, greedy(4)), Catch::Contains("outside the vocabulary"));
  // A prompt one short of the context: the token after it runs at the last position, its
  // successor is chosen, and then the context is full.
  GenerateOptions no_stop = greedy(10);
  no_stop.stop_ids.clear();
  const GenerateResult full = generate(m, std::vector<int>(static_cast<std::size_t>(ctx - 1), 5), no_stop);
  CHECK(full.generated_ids.size() == 2);
  CHECK(full.reason == stop_reason::context_full);
  // max_new_tokens, and the callbacks.
  GenerateOptions o = greedy(7);
  o.stop_ids.clear();
  std::vector<int> seen;
  o.on_token = [&](int t) { seen.push_back(t); };
  const GenerateResult r = generate(m, {1, 403}, o);
  CHECK(r.generated_ids.size() == 7);
  CHECK(r.reason == stop_reason::max_tokens);
  CHECK(seen == r.generated_ids);
  CHECK(r.decode_steps == 6);
  int polls = 0;
  o.should_stop = [&] { return ++polls > 3; };
  const GenerateResult cut = generate(m, {1, 403}, o);
  CHECK(cut.reason == stop_reason::interrupted);
  CHECK(cut.generated_ids.size() == 3);
}
}  // namespace test_model_generate_cpp
