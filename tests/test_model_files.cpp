// Model loading on small generated files (no shared data needed): llama2.c .bin and
// Meta-name safetensors round trips, config.json hints, and malformed files that must give
// a lowbit::error naming the file and the problem. Plus the forward pass against a
// token-by-token reference written the way llama2.c's run.c computes it.
#include <catch2/catch.hpp>

#include <cmath>
#include <cstdint>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include <unistd.h>

#include "lowbit/error.hpp"
#include "lowbit/model/llama.hpp"
#include "lowbit/model/load.hpp"
#include "lowbit/model/tokenizer.hpp"
#include "test_io_support.hpp"
#include "test_random_llama.hpp"

// One namespace per test file, so that any set of test files can be compiled as one
// unity translation unit (tests/CMakeLists.txt) without their file-local names clashing.
namespace test_model_files_cpp {

using namespace lowbit::model;
using lowbit::RowMatrixXf;
namespace fs = std::filesystem;

namespace {

// A fresh directory per test case, removed at the end.
struct TempDir {
  fs::path path;
  TempDir() {
    static int counter = 0;
    path = fs::temp_directory_path() /
           ("lowbit_test_model_" + std::to_string(::getpid()) + "_" + std::to_string(counter++));
    fs::create_directories(path);
  }
  ~TempDir() {
    std::error_code ec;
    fs::remove_all(path, ec);
  }
  std::string file(const std::string& name) const { return (path / name).string(); }
};

void write_bytes(const std::string& path, const std::vector<std::uint8_t>& bytes) {
  std::ofstream out(path, std::ios::binary);
  out.write(reinterpret_cast<const char*>(bytes.data()), static_cast<std::streamsize>(bytes.size()));
}
void put_i32(std::vector<std::uint8_t>& b, std::int32_t v) {
  std::uint8_t t[4];
  std::memcpy(t, &v, 4);
  b.insert(b.end(), t, t + 4);
}
void put_f32(std::vector<std::uint8_t>& b, float v) {
  std::uint8_t t[4];
  std::memcpy(t, &v, 4);
  b.insert(b.end(), t, t + 4);
}
void put_mat(std::vector<std::uint8_t>& b, const RowMatrixXf& m) {
  for (Eigen::Index i = 0; i < m.size(); ++i) put_f32(b, m.data()[i]);
}

// A random small model: dim 16, 2 layers, 4 query heads sharing 2 kv heads (GQA).
LlamaWeights random_weights(bool tied, unsigned seed = 7) {
  return lowbit_test::random_llama_weights(lowbit_test::random_llama_config(16, 24, 2, 4, 2, 40, 12, tied), seed, 0.3f,
                                           0.2f);
}

// The llama2.c legacy layout of `w` (see model/llama2c.hpp).
std::vector<std::uint8_t> to_llama2c(const LlamaWeights& w) {
  const LlamaConfig& c = w.config;
  std::vector<std::uint8_t> b;
  for (int v : {c.dim, c.hidden_dim, c.n_layers, c.n_heads, c.n_kv_heads,
                c.tied_classifier ? c.vocab_size : -c.vocab_size, c.max_seq_len})
    put_i32(b, v);
  put_mat(b, w.tok_embeddings);
  for (const auto& L : w.layers) put_mat(b, L.attention_norm.transpose());
  for (const auto& L : w.layers) put_mat(b, L.wq);
  for (const auto& L : w.layers) put_mat(b, L.wk);
  for (const auto& L : w.layers) put_mat(b, L.wv);
  for (const auto& L : w.layers) put_mat(b, L.wo);
  for (const auto& L : w.layers) put_mat(b, L.ffn_norm.transpose());
  for (const auto& L : w.layers) put_mat(b, L.w1);
  for (const auto& L : w.layers) put_mat(b, L.w2);
  for (const auto& L : w.layers) put_mat(b, L.w3);
  put_mat(b, w.norm.transpose());
  for (int i = 0; i < c.max_seq_len * c.head_dim(); ++i) put_f32(b, 0.0f);  // freq_cis
  if (!c.tied_classifier) put_mat(b, w.output);
  return b;
}

// F32 safetensors with Meta names, tensors in name order.
std::vector<std::uint8_t> to_safetensors(const LlamaWeights& w) {
  std::vector<std::pair<std::string, RowMatrixXf>> t;
  auto vec = [](const Eigen::VectorXf& v) { return RowMatrixXf(v.transpose()); };
  t.emplace_back("tok_embeddings.weight", w.tok_embeddings);
  t.emplace_back("norm.weight", vec(w.norm));
  if (!w.config.tied_classifier) t.emplace_back("output.weight", w.output);
  for (std::size_t l = 0; l < w.layers.size(); ++l) {
    const auto& L = w.layers[l];
    const std::string p = "layers." + std::to_string(l) + ".";
    t.emplace_back(p + "attention_norm.weight", vec(L.attention_norm));
    t.emplace_back(p + "ffn_norm.weight", vec(L.ffn_norm));
    t.emplace_back(p + "attention.wq.weight", L.wq);
    t.emplace_back(p + "attention.wk.weight", L.wk);
    t.emplace_back(p + "attention.wv.weight", L.wv);
    t.emplace_back(p + "attention.wo.weight", L.wo);
    t.emplace_back(p + "feed_forward.w1.weight", L.w1);
    t.emplace_back(p + "feed_forward.w2.weight", L.w2);
    t.emplace_back(p + "feed_forward.w3.weight", L.w3);
  }
  std::string header = "{";
  std::size_t offset = 0;
  std::vector<std::uint8_t> data;
  for (std::size_t i = 0; i < t.size(); ++i) {
    const auto& [name, m] = t[i];
    const bool is_vec = name.find("norm") != std::string::npos;
    const std::string shape = is_vec ? "[" + std::to_string(m.cols()) + "]"
                                     : "[" + std::to_string(m.rows()) + "," + std::to_string(m.cols()) + "]";
    const std::size_t bytes = static_cast<std::size_t>(m.size()) * 4;
    header += (i ? "," : "") + std::string("\"") + name + "\":{\"dtype\":\"F32\",\"shape\":" + shape +
              ",\"data_offsets\":[" + std::to_string(offset) + "," + std::to_string(offset + bytes) + "]}";
    offset += bytes;
    put_mat(data, m);
  }
  header += "}";
  std::vector<std::uint8_t> b;
  const std::uint64_t n = header.size();
  for (int i = 0; i < 8; ++i) b.push_back(static_cast<std::uint8_t>(n >> (8 * i)));
  b.insert(b.end(), header.begin(), header.end());
  b.insert(b.end(), data.begin(), data.end());
  return b;
}

void require_same(const LlamaWeights& a, const LlamaWeights& b) {
  REQUIRE(a.layers.size() == b.layers.size());
  CHECK(a.tok_embeddings == b.tok_embeddings);
  CHECK(a.norm == b.norm);
  CHECK(a.output == b.output);
  for (std::size_t l = 0; l < a.layers.size(); ++l) {
    CHECK(a.layers[l].attention_norm == b.layers[l].attention_norm);
    CHECK(a.layers[l].ffn_norm == b.layers[l].ffn_norm);
    CHECK(a.layers[l].wq == b.layers[l].wq);
    CHECK(a.layers[l].wk == b.layers[l].wk);
    CHECK(a.layers[l].wv == b.layers[l].wv);
    CHECK(a.layers[l].wo == b.layers[l].wo);
    CHECK(a.layers[l].w1 == b.layers[l].w1);
    CHECK(a.layers[l].w2 == b.layers[l].w2);
    CHECK(a.layers[l].w3 == b.layers[l].w3);
  }
}

// Token-by-token forward written like llama2.c run.c (matvecs, a KV cache of vectors,
// RoPE frequencies from powf over the head dimension), as an independent reference.
std::vector<std::vector<float>> run_c_reference(const LlamaWeights& w, const std::vector<int>& tokens) {
  const LlamaConfig& c = w.config;
  const int D = c.dim, HD = c.head_dim(), KV = c.kv_dim(), kv_mul = c.n_heads / c.n_kv_heads;
  auto matvec = [](const RowMatrixXf& m, const std::vector<float>& x) {
    std::vector<float> y(static_cast<std::size_t>(m.rows()), 0.0f);
    for (Eigen::Index i = 0; i < m.rows(); ++i)
      for (Eigen::Index j = 0; j < m.cols(); ++j) y[i] += m(i, j) * x[j];
    return y;
  };
  auto rmsnorm = [&](const std::vector<float>& x, const Eigen::VectorXf& g) {
    float ss = 0;
    for (float v : x) ss += v * v;
    ss = 1.0f / std::sqrt(ss / static_cast<float>(x.size()) + c.norm_eps);
    std::vector<float> o(x.size());
    for (std::size_t i = 0; i < x.size(); ++i) o[i] = g[static_cast<Eigen::Index>(i)] * (ss * x[i]);
    return o;
  };
  std::vector<std::vector<std::vector<float>>> kc(c.n_layers), vc(c.n_layers);
  std::vector<std::vector<float>> out;
  for (std::size_t pos = 0; pos < tokens.size(); ++pos) {
    std::vector<float> x(w.tok_embeddings.row(tokens[pos]).data(), w.tok_embeddings.row(tokens[pos]).data() + D);
    for (int l = 0; l < c.n_layers; ++l) {
      const auto& L = w.layers[static_cast<std::size_t>(l)];
      auto xb = rmsnorm(x, L.attention_norm);
      auto q = matvec(L.wq, xb), k = matvec(L.wk, xb), v = matvec(L.wv, xb);
      for (int i = 0; i < D; i += 2) {
        const float freq = 1.0f / std::pow(c.rope_theta, static_cast<float>(i % HD) / static_cast<float>(HD));
        const float val = static_cast<float>(pos) * freq, fcr = std::cos(val), fci = std::sin(val);
        for (int r = 0; r < (i < KV ? 2 : 1); ++r) {
          auto& vec = r == 0 ? q : k;
          const float v0 = vec[i], v1 = vec[i + 1];
          vec[i] = v0 * fcr - v1 * fci;
          vec[i + 1] = v0 * fci + v1 * fcr;
        }
      }
      kc[l].push_back(k);
      vc[l].push_back(v);
      std::vector<float> att_out(D, 0.0f);
      for (int h = 0; h < c.n_heads; ++h) {
        std::vector<float> att(pos + 1);
        float mx = -1e30f;
        for (std::size_t t = 0; t <= pos; ++t) {
          float s = 0;
          for (int i = 0; i < HD; ++i) s += q[h * HD + i] * kc[l][t][(h / kv_mul) * HD + i];
          att[t] = s / std::sqrt(static_cast<float>(HD));
          mx = std::max(mx, att[t]);
        }
        float sum = 0;
        for (auto& a : att) sum += (a = std::exp(a - mx));
        for (std::size_t t = 0; t <= pos; ++t)
          for (int i = 0; i < HD; ++i) att_out[h * HD + i] += att[t] / sum * vc[l][t][(h / kv_mul) * HD + i];
      }
      auto o = matvec(L.wo, att_out);
      for (int i = 0; i < D; ++i) x[i] += o[i];
      xb = rmsnorm(x, L.ffn_norm);
      auto h1 = matvec(L.w1, xb), h3 = matvec(L.w3, xb);
      for (std::size_t i = 0; i < h1.size(); ++i) h1[i] = h1[i] / (1.0f + std::exp(-h1[i])) * h3[i];
      auto f = matvec(L.w2, h1);
      for (int i = 0; i < D; ++i) x[i] += f[i];
    }
    out.push_back(matvec(w.classifier(), rmsnorm(x, w.norm)));
  }
  return out;
}

using lowbit_test::error_of;

}  // namespace

TEST_CASE("model files: llama2.c .bin round trip, tied and untied", "[model]") {
  TempDir dir;
  for (bool tied : {true, false}) {
    const LlamaWeights w = random_weights(tied);
    write_bytes(dir.file("m.bin"), to_llama2c(w));
    const LlamaWeights r = load_llama_weights(dir.file("m.bin"));
    CHECK(r.config.tied_classifier == tied);
    CHECK(r.config.n_kv_heads == 2);
    CHECK(r.config.max_seq_len == 12);
    require_same(w, r);
  }
}

TEST_CASE("model files: Meta-name safetensors with config.json", "[model]") {
  TempDir dir;
  const LlamaWeights w = random_weights(false);
  write_bytes(dir.file("m.safetensors"), to_safetensors(w));
  SECTION("head count from config.json; rope theta and eps applied") {
    std::ofstream(dir.file("config.json"))
        << R"({"n_heads": 4, "max_seq_len": 12, "rope_theta": 500000.0, "norm_eps": 1e-6})";
    const LlamaWeights r = load_llama_weights(dir.file("m.safetensors"));
    CHECK(r.config.n_heads == 4);
    CHECK(r.config.n_kv_heads == 2);
    CHECK(r.config.rope_theta == 500000.0f);
    CHECK(r.config.norm_eps == 1e-6f);
    CHECK_FALSE(r.config.tied_classifier);
    require_same(w, r);
  }
  SECTION("Hugging Face config key spellings") {
    std::ofstream(dir.file("config.json")) << R"({"num_attention_heads": 4, "max_position_embeddings": 12})";
    CHECK(load_llama_weights(dir.file("m.safetensors")).config.n_heads == 4);
  }
  SECTION("no head count anywhere") {
    CHECK_THAT(error_of([&] { load_llama_weights(dir.file("m.safetensors")); }),
               Catch::Contains("n_heads") && Catch::Contains("m.safetensors"));
  }
  SECTION("config.json that is not JSON") {
    std::ofstream(dir.file("config.json")) << "{n_heads: 4";
    CHECK_THAT(error_of([&] { load_llama_weights(dir.file("m.safetensors")); }),
               Catch::Contains("config.json") && Catch::Contains("JSON"));
  }
  SECTION("config.json contradicting the .bin header") {
    write_bytes(dir.file("m.bin"), to_llama2c(w));
    std::ofstream(dir.file("config.json")) << R"({"dim": 32})";
    CHECK_THAT(error_of([&] { load_llama_weights(dir.file("m.bin")); }),
               Catch::Contains("dim 32") && Catch::Contains("dim") );
  }
}

TEST_CASE("model files: malformed llama2.c files", "[model]") {
  TempDir dir;
  const auto good = to_llama2c(random_weights(true));
  const std::string path = dir.file("bad.bin");
  auto load_error = [&](std::vector<std::uint8_t> bytes) {
    write_bytes(path, bytes);
    return error_of([&] { load_llama_weights(path); });
  };
  auto with_header = [&](int field, std::int32_t value) {
    auto b = good;
    std::memcpy(b.data() + 4 * field, &value, 4);
    return b;
  };
  CHECK_THAT(load_error({good.begin(), good.end() - 4}), Catch::Contains("bad.bin") && Catch::Contains("implies"));
  CHECK_THAT(load_error({good.begin(), good.begin() + 10}), Catch::Contains("too short"));
  CHECK_THAT(load_error({}), Catch::Contains("too short"));
  auto longer = good;
  longer.push_back(0);
  CHECK_THAT(load_error(longer), Catch::Contains("implies"));
  CHECK_THAT(load_error(with_header(0, -16)), Catch::Contains("dim -16"));
  CHECK_THAT(load_error(with_header(3, 3)), Catch::Contains("not a multiple of n_heads"));
  CHECK_THAT(load_error(with_header(4, 3)), Catch::Contains("n_kv_heads"));
  CHECK_THAT(load_error(with_header(2, 1000000)), Catch::Contains("n_layers"));
  CHECK_THAT(load_error(with_header(5, INT32_MIN)), Catch::Contains("vocab_size"));
  CHECK_THAT(load_error(with_header(5, -40)), Catch::Contains("implies"));  // untied needs wcls
  // A NaN inside layers.1.attention.wk.weight (row 0, column 3).
  auto nan = good;
  const std::size_t at = 28 + 4 * (40 * 16 + 2 * 16 + 2 * 16 * 16 + 8 * 16 + 3);
  const float qnan = std::nanf("");
  std::memcpy(nan.data() + at, &qnan, 4);
  CHECK_THAT(load_error(nan), Catch::Contains("layers.1.attention.wk.weight") && Catch::Contains("column 3"));
  CHECK_THAT(error_of([&] { load_llama_weights(dir.file("missing.bin")); }), Catch::Contains("cannot open"));
  CHECK_THAT(error_of([&] { load_llama_weights(dir.file("model.onnx")); }), Catch::Contains("unknown model file type"));
  // .gguf is a model type now (model/gguf_source.hpp): a missing one is named.
  CHECK_THAT(error_of([&] { load_llama_weights(dir.file("model.gguf")); }), Catch::Contains("model.gguf"));
}

TEST_CASE("model files: malformed safetensors models", "[model]") {
  TempDir dir;
  std::ofstream(dir.file("config.json")) << R"({"n_heads": 4, "max_seq_len": 12})";
  const LlamaWeights w = random_weights(true);
  const auto good = to_safetensors(w);
  const std::string path = dir.file("bad.safetensors");
  auto load_error = [&](const std::vector<std::uint8_t>& bytes) {
    write_bytes(path, bytes);
    return error_of([&] { load_llama_weights(path); });
  };
  CHECK_THAT(load_error({good.begin(), good.end() - 4}), Catch::Contains("bad.safetensors"));
  CHECK_THAT(load_error({good.begin(), good.begin() + 4}), Catch::Contains("bad.safetensors"));
  // A missing tensor: rename one in the header (same length keeps the offsets valid).
  auto renamed = good;
  const std::string from = "layers.1.feed_forward.w2", to = "layers.1.feed_forward.x2";
  auto it = std::search(renamed.begin(), renamed.end(), from.begin(), from.end());
  REQUIRE(it != renamed.end());
  std::copy(to.begin(), to.end(), it);
  CHECK_THAT(load_error(renamed), Catch::Contains("layers.1.feed_forward.w2.weight"));
  // Wrong shape: wq declared [8, 32] (same byte size) instead of [16, 16].
  auto reshaped = good;
  const std::string shape = "\"layers.0.attention.wq.weight\":{\"dtype\":\"F32\",\"shape\":[16,16]";
  auto s = std::search(reshaped.begin(), reshaped.end(), shape.begin(), shape.end());
  REQUIRE(s != reshaped.end());
  const std::string bad_shape = "\"layers.0.attention.wq.weight\":{\"dtype\":\"F32\",\"shape\":[ 8,32]";
  std::copy(bad_shape.begin(), bad_shape.end(), s);
  CHECK_THAT(load_error(reshaped), Catch::Contains("layers.0.attention.wq.weight") && Catch::Contains("[8, 32]"));
}

TEST_CASE("model: batched forward equals a run.c-style token-by-token reference", "[model]") {
  for (bool tied : {true, false}) {
    const LlamaWeights w = random_weights(tied, 11);
    const LlamaModel m(w);
    const std::vector<int> tokens = {1, 5, 39, 0, 17, 17, 2, 30, 8, 21, 3, 9};  // the full max_seq_len
    const RowMatrixXf logits = m.forward(tokens);
    const auto ref = run_c_reference(w, tokens);
    for (std::size_t t = 0; t < tokens.size(); ++t)
      for (int v = 0; v < w.config.vocab_size; ++v) {
        INFO("tied " << tied << " position " << t << " token " << v);
        REQUIRE(logits(static_cast<Eigen::Index>(t), v) == Approx(ref[t][v]).margin(2e-5).epsilon(2e-5));
      }
  }
}

TEST_CASE("model: forward rejects bad tokens and overlong sequences", "[model]") {
  const LlamaModel m(random_weights(true));
  CHECK_THAT(error_of([&] { m.forward(std::vector<int>{1, 40}); }), Catch::Contains("token id 40"));
  CHECK_THAT(error_of([&] { m.forward(std::vector<int>{1, -1}); }), Catch::Contains("token id -1"));
  CHECK_THAT(error_of([&] { m.forward(std::vector<int>(13, 1)); }), Catch::Contains("max_seq_len 12"));
  CHECK_THAT(error_of([&] { m.forward(std::vector<int>{}); }), Catch::Contains("empty"));
}

TEST_CASE("tokenizer: malformed files and a hand-made vocabulary", "[model]") {
  TempDir dir;
  // 3 specials, 256 byte tokens, then " a", "ab", " ab" with scores that decide the merges.
  std::vector<std::uint8_t> b;
  put_i32(b, 8);
  auto add = [&](const std::string& s, float score) {
    put_f32(b, score);
    put_i32(b, static_cast<std::int32_t>(s.size()));
    b.insert(b.end(), s.begin(), s.end());
  };
  add("<unk>", 0);
  add("<s>", 0);
  add("</s>", 0);
  for (int i = 0; i < 256; ++i) add(std::string(1, static_cast<char>(i)), 0);
  add("ab", -1.0f);
  add(" a", -2.0f);
  add(" ab", -3.0f);
  write_bytes(dir.file("tok.bin"), b);
  const Tokenizer tok = Tokenizer::load(dir.file("tok.bin"));
  CHECK(tok.vocab_size() == 262);
  // " ab": "ab" (score -1) merges before " a" (-2); then " " + "ab" -> " ab".
  CHECK(tok.encode("ab") == std::vector<int>{1, 261});
  CHECK(tok.encode("ab", false, true) == std::vector<int>{261, 2});
  CHECK(tok.encode("") == std::vector<int>{1});
  CHECK(tok.decode(tok.encode("ba ab")) == " ba ab");
  CHECK_THAT(error_of([&] { Tokenizer::load(dir.file("tok.bin"), 512); }), Catch::Contains("512"));
  write_bytes(dir.file("short.bin"), {b.begin(), b.end() - 2});
  CHECK_THAT(error_of([&] { Tokenizer::load(dir.file("short.bin")); }), Catch::Contains("token 261"));
  write_bytes(dir.file("tiny.bin"), {b.begin(), b.begin() + 100});
  CHECK_THAT(error_of([&] { Tokenizer::load(dir.file("tiny.bin")); }), Catch::Contains("tiny.bin"));
}
}  // namespace test_model_files_cpp
