// `lowbit bench MODEL`: model-level speed as llama.cpp's llama-bench reports it.
//   ppN  prompt processing: one forward pass over N tokens from an empty cache (the
//        many-token kernels), tokens/s = N / time;
//   tgN  token generation: N one-token forward passes from an empty cache, each reading the
//        KV cache so far (the 1-token kernels), tokens/s = N / time.
// Token ids are pseudo-random (fixed seed) like llama-bench's; every test runs once untimed
// (warm-up: page faults, the thread pool, caches) and then --reps times; the table shows
// mean ± standard deviation of the per-repetition tokens/s.
// Sizes: model_bytes counts the weights as the model holds them (linear layers as stored,
// classifier, norms; the embedding table once, as the classifier when tied);
// weight_bytes_per_token counts what decoding one token reads: every linear layer and the
// classifier, not the embedding table (one row of it is read per token).
//
//   lowbit bench stories260K.bin -p 128 -n 64 --threads 1,2 --reps 5
//   lowbit bench out_dir/ --json
#include <fmt/format.h>

#include <chrono>
#include <functional>
#include <cmath>
#include <nlohmann/json.hpp>
#include <random>
#include <sstream>
#include <string>
#include <vector>

#include "lowbit/threads.hpp"
#include "lowbit/error.hpp"
#include "lowbit/model/kv_cache.hpp"
#include "lowbit/model/quantized_model.hpp"
#include "registry.hpp"

namespace {

struct bench_options {
  std::string model, prompt = "128", gen = "64", threads = "1", kv_cache = "f32", activations = "f32";
  int reps = 5;
  bool json = false;
};

std::vector<int> bench_int_list(const std::string& text, const char* flag, int lowest) {
  std::vector<int> out;
  std::stringstream ss(text);
  std::string item;
  while (std::getline(ss, item, ',')) {
    std::size_t used = 0;
    int v = 0;
    try {
      v = std::stoi(item, &used);
    } catch (const std::exception&) {
      used = 0;
    }
    if (used == 0 || used != item.size() || v < lowest)
      lowbit_cli::fail(std::string(flag) + ": expected a comma-separated list of integers >= " +
                           std::to_string(lowest) + ", got '" + text + "'");
    out.push_back(v);
  }
  return out;
}

struct bench_sizes {
  double model_bytes = 0, params = 0, weight_bytes_per_token = 0;
};

bench_sizes bench_measure_sizes(const lowbit::model::LlamaModel& m) {
  const lowbit::model::LlamaConfig& c = m.config();
  bench_sizes s;
  for (const auto& [name, layer] : m.linear_layers()) {
    s.weight_bytes_per_token += layer->storage_bits() / 8.0;
    s.params += static_cast<double>(layer->in_features() * layer->out_features());
  }
  const double norms = static_cast<double>(c.dim) * (2.0 * c.n_layers + 1);
  const double embedding = c.tied_classifier ? 0.0 : static_cast<double>(c.vocab_size) * c.dim;
  s.params += norms + embedding;
  s.model_bytes = s.weight_bytes_per_token + 4.0 * (norms + embedding);
  return s;
}

struct bench_row {
  std::string test;
  int threads;
  double mean, sd;
};

int run_bench(const bench_options& o) {
  using namespace lowbit::model;
  const std::vector<int> pp = o.prompt.empty() ? std::vector<int>{} : bench_int_list(o.prompt, "-p", 1);
  const std::vector<int> tg = o.gen.empty() ? std::vector<int>{} : bench_int_list(o.gen, "-n", 1);
  const std::vector<int> threads = bench_int_list(o.threads, "--threads", 1);
  if (o.reps < 1) lowbit_cli::fail("--reps must be >= 1, got " + std::to_string(o.reps));
  if (pp.empty() && tg.empty()) lowbit_cli::fail("nothing to measure: give -p and/or -n");
  const kv_cache_type kv = parse_kv_cache_type(o.kv_cache);
  // Loading (mmap, validate, build and pack the layers) on the calling thread.
  lowbit::set_num_threads(1);
  const auto t_load = std::chrono::steady_clock::now();
  QuantizedLoadOptions load;
  load.input = lowbit_cli::parse_flag("--activations", o.activations, lowbit::parse_activation_dtype);
  const LlamaModel model = load_llama_model(o.model, load);
  const double load_s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t_load).count();
  fmt::print(stderr, "loaded {} in {:.3f} s\n", o.model, load_s);
  const LlamaConfig& c = model.config();
  for (int n : pp)
    if (n > c.max_seq_len) lowbit_cli::fail("-p " + std::to_string(n) + ": longer than the context (" + std::to_string(c.max_seq_len) + ")");
  for (int n : tg)
    if (n > c.max_seq_len) lowbit_cli::fail("-n " + std::to_string(n) + ": longer than the context (" + std::to_string(c.max_seq_len) + ")");

  std::mt19937 rng(1234);
  std::uniform_int_distribution<int> pick(0, c.vocab_size - 1);
  using clock = std::chrono::steady_clock;
  // One cache and one set of scratch matrices for every repetition, emptied (not freed)
  // between them, as llama-bench keeps its context: a repetition then measures the forward
  // passes, not the first-touch page faults of fresh buffers.
  KvCache cache(c, kv);
  ForwardWorkspace ws;
  RowMatrixXf logits;
  // Seconds of one repetition.
  const auto run_pp = [&](int n) {
    std::vector<int> ids(static_cast<std::size_t>(n));
    for (int& t : ids) t = pick(rng);
    cache.clear();
    const auto t0 = clock::now();
    model.forward(ids.data(), n, cache, logits, ws, nullptr, /*last_only=*/true);
    return std::chrono::duration<double>(clock::now() - t0).count();
  };
  const auto run_tg = [&](int n) {
    cache.clear();
    int t = pick(rng);
    const auto t0 = clock::now();
    for (int i = 0; i < n; ++i) {
      model.forward(&t, 1, cache, logits, ws);
      t = static_cast<int>(i * 7919 % c.vocab_size);  // next token: no sampling cost in the loop
    }
    return std::chrono::duration<double>(clock::now() - t0).count();
  };

  std::vector<bench_row> rows;
  for (int th : threads) {
    lowbit::set_num_threads(th);
    const auto measure = [&](const std::string& name, int n, const std::function<double(int)>& once) {
      once(n);  // warm-up
      std::vector<double> tps;
      for (int r = 0; r < o.reps; ++r) tps.push_back(n / once(n));
      double mean = 0, var = 0;
      for (double x : tps) mean += x;
      mean /= static_cast<double>(tps.size());
      for (double x : tps) var += (x - mean) * (x - mean);
      const double sd = tps.size() > 1 ? std::sqrt(var / static_cast<double>(tps.size() - 1)) : 0.0;
      rows.push_back({name, th, mean, sd});
      if (!o.json) fmt::print(stderr, "  {} threads {}: {:.2f} ± {:.2f} tokens/s\n", name, th, mean, sd);
    };
    for (int n : pp) measure("pp" + std::to_string(n), n, run_pp);
    for (int n : tg) measure("tg" + std::to_string(n), n, run_tg);
  }

  const bench_sizes s = bench_measure_sizes(model);
  if (o.json) {
    nlohmann::ordered_json j;
    j["model_bytes"] = static_cast<std::int64_t>(std::llround(s.model_bytes));
    j["params"] = static_cast<std::int64_t>(std::llround(s.params));
    j["weight_bytes_per_token"] = static_cast<std::int64_t>(std::llround(s.weight_bytes_per_token));
    auto& results = j["results"] = nlohmann::ordered_json::array();
    for (const auto& r : rows) {
      nlohmann::ordered_json e;
      e["test"] = r.test;
      e["threads"] = r.threads;
      e["tokens_per_second"] = r.mean;
      e["stddev"] = r.sd;
      results.push_back(std::move(e));
    }
    fmt::print("{}\n", j.dump());
    return 0;
  }
  fmt::print("model: {}\nsize: {:.2f} MiB, params: {:.3f} M, weight bytes per token: {:.2f} MiB, kv cache {}\n\n", o.model,
             s.model_bytes / 1048576.0, s.params / 1e6, s.weight_bytes_per_token / 1048576.0, to_string(kv));
  fmt::print("| {:>8} | {:>7} | {:>20} |\n|{:-<10}|{:-<9}|{:-<22}|\n", "test", "threads", "tokens/s", "", "", "");
  for (const auto& r : rows) fmt::print("| {:>8} | {:>7} | {:>20} |\n", r.test, r.threads, fmt::format("{:.2f} ± {:.2f}", r.mean, r.sd));
  return 0;
}

lowbit_cli::registration bench_registration{
    "bench", "Model speed like llama-bench: prompt processing (pp) and token generation (tg) tokens/s", 56,
    [](CLI::App& sub) -> lowbit_cli::run_fn {
      auto o = std::make_shared<bench_options>();
      sub.add_option("MODEL", o->model, "llama2.c .bin, Meta-name .safetensors, or a lowbit checkpoint (file or directory)")
          ->required();
      sub.add_option("-p,--prompt-tokens", o->prompt, "Prompt lengths to process, comma-separated ('' = none)")
          ->capture_default_str();
      sub.add_option("-n,--gen-tokens", o->gen, "Generation lengths, comma-separated ('' = none)")->capture_default_str();
      sub.add_option("--threads", o->threads, "Thread counts, comma-separated")->capture_default_str();
      sub.add_option("--reps", o->reps, "Timed repetitions per test")->capture_default_str();
      sub.add_option("--kv-cache", o->kv_cache, "KV cache storage: f32, f16, bf16, fp8")->capture_default_str();
      sub.add_option("--activations", o->activations, "Input of a quantized model's weight-only layers: f32, bf16 or f16 (rounded; see generate)")
          ->capture_default_str();
      sub.add_flag("--json", o->json, "Print one JSON object");
      return [o]() { return run_bench(*o); };
    }};

}  // namespace
