#pragma once
// Fixtures for the Hugging Face model tests (test_model_hf.cpp, test_model_rope.cpp): tiny
// random Llama/Mistral/Qwen2/Qwen3 models written as config.json + safetensors (F32, F16
// or BF16, one file or shards with an index), and an independent reference forward pass in
// double precision written the way transformers' modeling code reads: rotate_half RoPE with
// cos/sin of [freqs, freqs], rope_scaling formulas per type, repeat_kv for GQA, an explicit
// causal (and sliding-window) mask. Nothing here calls the library's model code.
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <map>
#include <nlohmann/json.hpp>
#include <random>
#include <stdexcept>
#include <string>
#include <vector>

#include <unistd.h>

#include "lowbit/io/dtype.hpp"

namespace lowbit_test_hf {

namespace fs = std::filesystem;
using json = nlohmann::json;

struct TempDir {
  fs::path path;
  TempDir() {
    static int counter = 0;
    path = fs::temp_directory_path() / ("lowbit_test_hf_" + std::to_string(::getpid()) + "_" + std::to_string(counter++));
    fs::create_directories(path);
  }
  ~TempDir() {
    std::error_code ec;
    fs::remove_all(path, ec);
  }
  std::string str() const { return path.string(); }
  std::string file(const std::string& name) const { return (path / name).string(); }
};

struct Tensor {
  std::vector<std::int64_t> shape;
  std::vector<double> v;  // values exactly representable in F16 and BF16 (checked when written)
};

// A model: its config.json and tensors by Hugging Face name.
struct Fixture {
  json config;
  std::map<std::string, Tensor> t;
};

struct Spec {
  std::string arch = "LlamaForCausalLM";
  int dim = 16, hidden = 24, layers = 2, heads = 4, kv_heads = 2, vocab = 40, max_pos = 16;
  int head_dim = 0;  // 0: dim / heads, not written to config.json
  bool tied = false, attention_bias = false, mlp_bias = false;
  double theta = 10000.0, eps = 1e-5;
  int sliding_window = 0;
  json rope_scaling = nullptr;
  double embed_scale = 1.0 / 256;  // embedding values k * embed_scale
  unsigned seed = 1;
};

inline Fixture make_fixture(const Spec& s) {
  Fixture f;
  json& c = f.config;
  c["architectures"] = {s.arch};
  c["hidden_size"] = s.dim;
  c["intermediate_size"] = s.hidden;
  c["num_hidden_layers"] = s.layers;
  c["num_attention_heads"] = s.heads;
  c["num_key_value_heads"] = s.kv_heads;
  c["vocab_size"] = s.vocab;
  c["max_position_embeddings"] = s.max_pos;
  c["rms_norm_eps"] = s.eps;
  c["rope_theta"] = s.theta;
  c["tie_word_embeddings"] = s.tied;
  c["hidden_act"] = "silu";
  c["bos_token_id"] = 1;
  c["eos_token_id"] = json::array({2, 3});
  if (s.head_dim) c["head_dim"] = s.head_dim;
  if (s.arch == "LlamaForCausalLM" || s.arch == "Qwen3ForCausalLM") c["attention_bias"] = s.attention_bias;
  if (s.arch == "LlamaForCausalLM") c["mlp_bias"] = s.mlp_bias;
  if (s.arch == "MistralForCausalLM") c["sliding_window"] = s.sliding_window ? json(s.sliding_window) : json(nullptr);
  c["rope_scaling"] = s.rope_scaling;

  std::mt19937 rng(s.seed);
  std::uniform_int_distribution<int> k(-120, 120);
  auto add = [&](const std::string& name, std::vector<std::int64_t> shape, double scale, double offset) {
    Tensor t;
    t.shape = shape;
    std::int64_t n = 1;
    for (auto d : shape) n *= d;
    for (std::int64_t i = 0; i < n; ++i) t.v.push_back(offset + k(rng) * scale);
    f.t[name] = t;
  };
  const int hd = s.head_dim ? s.head_dim : s.dim / s.heads, q = hd * s.heads, kv = hd * s.kv_heads;
  const double w = 1.0 / 256;
  const bool qwen2 = s.arch == "Qwen2ForCausalLM", qwen3 = s.arch == "Qwen3ForCausalLM";
  add("model.embed_tokens.weight", {s.vocab, s.dim}, s.embed_scale, 0);
  const double nw = 1.0 / 128;  // norm weights 1 + k/128: at most 8 significant bits (BF16)
  add("model.norm.weight", {s.dim}, nw, 1.0);
  if (!s.tied) add("lm_head.weight", {s.vocab, s.dim}, w, 0);
  for (int l = 0; l < s.layers; ++l) {
    const std::string p = "model.layers." + std::to_string(l) + ".";
    add(p + "input_layernorm.weight", {s.dim}, nw, 1.0);
    add(p + "post_attention_layernorm.weight", {s.dim}, nw, 1.0);
    const std::vector<std::pair<std::string, std::vector<std::int64_t>>> lin = {
        {"self_attn.q_proj", {q, s.dim}},       {"self_attn.k_proj", {kv, s.dim}}, {"self_attn.v_proj", {kv, s.dim}},
        {"self_attn.o_proj", {s.dim, q}},       {"mlp.gate_proj", {s.hidden, s.dim}},
        {"mlp.up_proj", {s.hidden, s.dim}},     {"mlp.down_proj", {s.dim, s.hidden}}};
    for (const auto& [name, shape] : lin) {
      add(p + name + ".weight", shape, 2 * w, 0);
      const bool attn = name.rfind("self_attn", 0) == 0, o = name == "self_attn.o_proj";
      const bool bias = (attn && (s.attention_bias || (qwen2 && !o))) || (!attn && s.mlp_bias);
      if (bias) add(p + name + ".bias", {shape[0]}, w * 8, 0);
    }
    if (qwen3) {
      add(p + "self_attn.q_norm.weight", {hd}, nw, 1.0);
      add(p + "self_attn.k_norm.weight", {hd}, nw, 1.0);
    }
  }
  return f;
}

// ---- writing ---------------------------------------------------------------------------

inline void put_le(std::string& out, std::uint64_t v, int bytes) {
  for (int i = 0; i < bytes; ++i) out.push_back(static_cast<char>((v >> (8 * i)) & 0xFF));
}

// One safetensors file of `names` in `dtype` ("F32", "F16", "BF16").
inline void write_safetensors(const std::string& path, const Fixture& f, const std::vector<std::string>& names,
                              const std::string& dtype) {
  json header = json::object();
  std::string data;
  for (const auto& n : names) {
    const Tensor& t = f.t.at(n);
    const std::size_t begin = data.size();
    for (double x : t.v) {
      const float v = static_cast<float>(x);
      if (dtype == "F32") {
        std::uint32_t u;
        std::memcpy(&u, &v, 4);
        put_le(data, u, 4);
      } else if (dtype == "BF16") {
        std::uint32_t u;
        std::memcpy(&u, &v, 4);
        if ((u & 0xFFFF) != 0 && std::isfinite(v)) throw std::runtime_error("fixture value not exact in BF16: " + n);
        put_le(data, u >> 16, 2);  // exact: the values have at most 8 significant bits
      } else {
        const std::uint16_t h = lowbit::detail::float_to_half(v);
        if (std::isfinite(v) && static_cast<float>(lowbit::detail::half_to_float(h)) != v)
          throw std::runtime_error("fixture value not exact in F16: " + n);
        put_le(data, h, 2);
      }
    }
    header[n] = {{"dtype", dtype}, {"shape", t.shape}, {"data_offsets", {begin, data.size()}}};
  }
  const std::string h = header.dump();
  std::string out;
  put_le(out, h.size(), 8);
  out += h + data;
  std::ofstream(path, std::ios::binary).write(out.data(), static_cast<std::streamsize>(out.size()));
}

// config.json plus the tensors in `shards` files (an index when more than one).
inline void write_hf_dir(const std::string& dir, const Fixture& f, const std::string& dtype = "F32", int shards = 1) {
  std::ofstream(dir + "/config.json") << f.config.dump(2);
  std::vector<std::vector<std::string>> parts(static_cast<std::size_t>(shards));
  std::size_t i = 0;
  for (const auto& [name, t] : f.t) parts[(i++ * static_cast<std::size_t>(shards)) / f.t.size()].push_back(name);
  if (shards == 1) {
    write_safetensors(dir + "/model.safetensors", f, parts[0], dtype);
    return;
  }
  json index = {{"metadata", {{"total_size", 0}}}, {"weight_map", json::object()}};
  for (int s = 0; s < shards; ++s) {
    const std::string file = "model-0000" + std::to_string(s + 1) + "-of-0000" + std::to_string(shards) + ".safetensors";
    write_safetensors(dir + "/" + file, f, parts[static_cast<std::size_t>(s)], dtype);
    for (const auto& n : parts[static_cast<std::size_t>(s)]) index["weight_map"][n] = file;
  }
  std::ofstream(dir + "/model.safetensors.index.json") << index.dump(2);
}

// ---- the reference forward pass -----------------------------------------------------------

inline double num(const json& j, const char* k, double def) { return j.contains(k) && !j[k].is_null() ? j[k].get<double>() : def; }

// inv_freq and the cos/sin multiplier, as transformers' rope init functions define them.
inline std::vector<double> ref_inv_freq(const json& c, int d, int seq_len, double& attention_scaling) {
  const double pi = std::acos(-1.0);
  double base = c["rope_theta"].get<double>();
  const double max_pos = c["max_position_embeddings"].get<double>();
  const json& rs = c["rope_scaling"];
  const std::string type = rs.is_null() ? "default" : rs.value("rope_type", rs.value("type", std::string("default")));
  attention_scaling = 1.0;
  if (type == "dynamic") {
    const double L = std::max<double>(seq_len, max_pos), f = rs["factor"].get<double>();
    base = base * std::pow(f * L / max_pos - (f - 1), d / (d - 2.0));
  }
  std::vector<double> inv;
  for (int j = 0; j < d; j += 2) inv.push_back(1.0 / std::pow(base, static_cast<double>(j) / d));
  if (type == "linear") {
    for (auto& x : inv) x /= rs["factor"].get<double>();
  } else if (type == "llama3") {
    const double f = rs["factor"], lo = rs["low_freq_factor"], hi = rs["high_freq_factor"],
                 old = rs["original_max_position_embeddings"];
    const double low_wl = old / lo, high_wl = old / hi;
    for (auto& x : inv) {
      const double wl = 2 * pi / x;
      const double scaled = wl > low_wl ? x / f : x;
      const double smooth = (old / wl - lo) / (hi - lo);
      const bool medium = !(wl < high_wl) && !(wl > low_wl);
      x = medium ? (1 - smooth) * scaled / f + smooth * scaled : scaled;
    }
  } else if (type == "yarn") {
    const double f = rs["factor"], orig = num(rs, "original_max_position_embeddings", max_pos);
    const double bf = num(rs, "beta_fast", 32), bs = num(rs, "beta_slow", 1);
    const bool truncate = rs.value("truncate", true);
    auto corr = [&](double rot) { return d * std::log(orig / (rot * 2 * pi)) / (2 * std::log(base)); };
    double lo = corr(bf), hi = corr(bs);
    if (truncate) lo = std::floor(lo), hi = std::ceil(hi);
    lo = std::max(lo, 0.0);
    hi = std::min(hi, d - 1.0);
    if (lo == hi) hi += 0.001;
    for (std::size_t i = 0; i < inv.size(); ++i) {
      const double ramp = std::min(1.0, std::max(0.0, (static_cast<double>(i) - lo) / (hi - lo)));
      const double extra = 1 - ramp;  // inv_freq_extrapolation_factor
      inv[i] = inv[i] / f * (1 - extra) + inv[i] * extra;
    }
    auto ms = [](double s, double m) { return s <= 1 ? 1.0 : 0.1 * m * std::log(s) + 1.0; };
    const double m = num(rs, "mscale", 0), mad = num(rs, "mscale_all_dim", 0);
    attention_scaling = rs.contains("attention_factor") ? rs["attention_factor"].get<double>()
                        : (m != 0 && mad != 0)          ? ms(f, m) / ms(f, mad)
                                                        : ms(f, 1.0);
  }
  return inv;
}

using Mat = std::vector<std::vector<double>>;  // [rows][cols]

// logits [n][vocab] of tokens run from position 0. Overrides (for sensitivity checks):
// theta / eps replace config.json's values when > 0.
inline Mat reference_logits(const Fixture& f, const std::vector<int>& tokens, double theta = 0, double eps = 0) {
  json c = f.config;
  if (theta > 0) c["rope_theta"] = theta;
  const int D = c["hidden_size"], L = c["num_hidden_layers"], H = c["num_attention_heads"],
            KV = c["num_key_value_heads"], V = c["vocab_size"];
  const int hd = c.contains("head_dim") ? c["head_dim"].get<int>() : D / H;
  const double e = eps > 0 ? eps : c["rms_norm_eps"].get<double>();
  const std::string arch = c["architectures"][0];
  const int window = arch == "MistralForCausalLM" && c["sliding_window"].is_number() ? c["sliding_window"].get<int>() : 0;
  const int n = static_cast<int>(tokens.size());
  auto T = [&](const std::string& name) -> const Tensor* {
    auto it = f.t.find(name);
    return it == f.t.end() ? nullptr : &it->second;
  };
  auto rms = [&](const std::vector<double>& x, const std::vector<double>& w) {
    double ss = 0;
    for (double v : x) ss += v * v;
    const double inv = 1.0 / std::sqrt(ss / static_cast<double>(x.size()) + e);
    std::vector<double> y(x.size());
    for (std::size_t i = 0; i < x.size(); ++i) y[i] = x[i] * inv * w[i];
    return y;
  };
  auto linear = [&](const std::string& name, const std::vector<double>& x) {
    const Tensor& w = *T(name + ".weight");
    const std::int64_t rows = w.shape[0], cols = w.shape[1];
    std::vector<double> y(static_cast<std::size_t>(rows), 0.0);
    for (std::int64_t r = 0; r < rows; ++r) {
      for (std::int64_t k = 0; k < cols; ++k) y[r] += w.v[static_cast<std::size_t>(r * cols + k)] * x[k];
      if (const Tensor* b = T(name + ".bias")) y[r] += b->v[static_cast<std::size_t>(r)];
    }
    return y;
  };
  double att_scale = 1;
  const std::vector<double> inv = ref_inv_freq(c, hd, n, att_scale);
  auto rope = [&](std::vector<double>& head, int pos) {  // q * cos + rotate_half(q) * sin
    std::vector<double> rot(hd), out(hd);
    for (int j = 0; j < hd / 2; ++j) rot[j] = -head[j + hd / 2], rot[j + hd / 2] = head[j];
    for (int j = 0; j < hd; ++j) {
      const double a = pos * inv[j % (hd / 2)];
      out[j] = head[j] * std::cos(a) * att_scale + rot[j] * std::sin(a) * att_scale;
    }
    head = out;
  };
  Mat x(n);
  for (int t = 0; t < n; ++t) {
    const Tensor& E = *T("model.embed_tokens.weight");
    x[t].assign(E.v.begin() + tokens[t] * D, E.v.begin() + (tokens[t] + 1) * D);
  }
  for (int l = 0; l < L; ++l) {
    const std::string p = "model.layers." + std::to_string(l) + ".";
    Mat q(n), k(n), v(n);
    for (int t = 0; t < n; ++t) {
      const auto h = rms(x[t], T(p + "input_layernorm.weight")->v);
      q[t] = linear(p + "self_attn.q_proj", h);
      k[t] = linear(p + "self_attn.k_proj", h);
      v[t] = linear(p + "self_attn.v_proj", h);
      for (int hh = 0; hh < H; ++hh) {
        std::vector<double> head(q[t].begin() + hh * hd, q[t].begin() + (hh + 1) * hd);
        if (const Tensor* qn = T(p + "self_attn.q_norm.weight")) head = rms(head, qn->v);
        rope(head, t);
        std::copy(head.begin(), head.end(), q[t].begin() + hh * hd);
      }
      for (int g = 0; g < KV; ++g) {
        std::vector<double> head(k[t].begin() + g * hd, k[t].begin() + (g + 1) * hd);
        if (const Tensor* kn = T(p + "self_attn.k_norm.weight")) head = rms(head, kn->v);
        rope(head, t);
        std::copy(head.begin(), head.end(), k[t].begin() + g * hd);
      }
    }
    for (int t = 0; t < n; ++t) {
      std::vector<double> attn(static_cast<std::size_t>(H * hd), 0.0);
      for (int hh = 0; hh < H; ++hh) {
        const int g = hh / (H / KV);  // repeat_kv
        std::vector<double> s(static_cast<std::size_t>(n), -INFINITY);
        double mx = -INFINITY;
        for (int j = 0; j < n; ++j) {
          const bool masked = j > t || (window > 0 && t - j >= window);
          if (masked) continue;
          double dot = 0;
          for (int i = 0; i < hd; ++i) dot += q[t][hh * hd + i] * k[j][g * hd + i];
          s[j] = dot / std::sqrt(static_cast<double>(hd));
          mx = std::max(mx, s[j]);
        }
        double z = 0;
        for (int j = 0; j < n; ++j) z += std::isinf(s[j]) ? 0.0 : std::exp(s[j] - mx);
        for (int j = 0; j < n; ++j)
          if (!std::isinf(s[j]))
            for (int i = 0; i < hd; ++i) attn[hh * hd + i] += std::exp(s[j] - mx) / z * v[j][g * hd + i];
      }
      const auto o = linear(p + "self_attn.o_proj", attn);
      for (int i = 0; i < D; ++i) x[t][i] += o[i];
      const auto h2 = rms(x[t], T(p + "post_attention_layernorm.weight")->v);
      const auto gate = linear(p + "mlp.gate_proj", h2), up = linear(p + "mlp.up_proj", h2);
      std::vector<double> act(gate.size());
      for (std::size_t i = 0; i < gate.size(); ++i) act[i] = gate[i] / (1 + std::exp(-gate[i])) * up[i];
      const auto down = linear(p + "mlp.down_proj", act);
      for (int i = 0; i < D; ++i) x[t][i] += down[i];
    }
  }
  Mat logits(n, std::vector<double>(static_cast<std::size_t>(V)));
  const Tensor& C = c["tie_word_embeddings"].get<bool>() ? *T("model.embed_tokens.weight") : *T("lm_head.weight");
  for (int t = 0; t < n; ++t) {
    const auto h = rms(x[t], T("model.norm.weight")->v);
    for (int r = 0; r < V; ++r) {
      double s = 0;
      for (int i = 0; i < D; ++i) s += C.v[static_cast<std::size_t>(r * D + i)] * h[i];
      logits[t][r] = s;
    }
  }
  return logits;
}

}  // namespace lowbit_test_hf
