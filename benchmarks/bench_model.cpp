// Model-level benchmarks on a synthetic Llama checkpoint written once per process to
// $TMPDIR (default /tmp): random weights quantized round-to-nearest in the stored format of
// the named recipe (w4a8-int: int4 g128 + int8 activations, w4a16-int4: int4 g128; GPTQ
// would change the codes, not the format or the loading work), laid out as `lowbit quantize`
// writes it (QuantizedLinear layers, the tied embedding in BF16, F32 norms, config.json).
//   model_load/<scheme>     load_quantized_llama() on one thread: mmap, validate, build the
//                           layers and pack them for this CPU; bytes_per_second = checkpoint
//                           bytes / time (page cache warm). Counters: read_GBps = a plain
//                           read() of the same file from the page cache into a 4 MiB buffer
//                           (median of 5, same process), x_read = load rate / read rate,
//                           peak_MB = peak resident-memory growth while loading once (VmHWM
//                           after /proc/self/clear_refs; mapped file pages included),
//                           kept_MB = resident growth that the loaded model keeps.
//   model_decode/<scheme>   one-token forward passes at positions 0..63 (tg64, as `lowbit
//                           bench` runs it); weight_GBps = linear + classifier bytes per token
//                           / time per token, comparable with roofline/dram_read.
//   model_prefill/<scheme>  one 128-token forward pass (pp128); tokens/s as items_per_second.
//   classifier/bf16|fp32/1/128256/2048  one decode step's classifier alone (see below).
// Shape: LOWBIT_BENCH_MODEL=dim,hidden,layers,heads,kv_heads,vocab (default
// 1024,2816,4,16,4,8192: about 60 M parameters in the blocks; Llama-3.2-1B is
// 2048,8192,16,32,8,128256 and needs a few GB of disk and memory while writing).
#include <benchmark/benchmark.h>

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <map>
#include <random>
#include <string>
#include <vector>

#include "lowbit/algo/linear.hpp"
#include "lowbit/algo/recipes.hpp"
#include "lowbit/io/linear_checkpoint.hpp"
#include "lowbit/kernels/wide16.hpp"
#include "lowbit/model/quantized_model.hpp"

// One namespace per benchmark file, so that the files can be compiled as one unity
// translation unit (benchmarks/CMakeLists.txt) without their file-local names clashing.
namespace bench_model_cpp {

namespace {

using namespace lowbit;
using namespace lowbit::model;

LlamaConfig bench_model_config() {
  LlamaConfig c;
  int v[6] = {1024, 2816, 4, 16, 4, 8192};
  if (const char* e = std::getenv("LOWBIT_BENCH_MODEL"))
    std::sscanf(e, "%d,%d,%d,%d,%d,%d", &v[0], &v[1], &v[2], &v[3], &v[4], &v[5]);
  c.dim = v[0];
  c.hidden_dim = v[1];
  c.n_layers = v[2];
  c.n_heads = v[3];
  c.n_kv_heads = v[4];
  c.vocab_size = v[5];
  c.max_seq_len = 1024;
  c.tied_classifier = true;
  return c;
}

// The recipe's stored format, quantized round-to-nearest (no calibration data here).
LinearRecipe bench_scheme(const std::string& name) {
  LinearRecipe r = recipe_from_name(name);
  r.method = weight_method::round_to_nearest;
  return r;
}

// Path of the checkpoint directory for `scheme`, written on first use.
const std::string& bench_checkpoint(const std::string& scheme) {
  static std::map<std::string, std::string> dirs;
  auto it = dirs.find(scheme);
  if (it != dirs.end()) return it->second;
  const LlamaConfig c = bench_model_config();
  const char* tmp = std::getenv("TMPDIR");
  const std::string dir = std::string(tmp && *tmp ? tmp : "/tmp") + "/lowbit-bench-model-" + scheme + "-" +
                          std::to_string(c.dim) + "x" + std::to_string(c.n_layers);
  ::mkdir(dir.c_str(), 0755);
  std::mt19937 rng(11);
  std::normal_distribution<float> n01(0.0f, 0.02f);
  const auto random = [&](std::int64_t r, std::int64_t k) {
    RowMatrixXf m(r, k);
    for (Eigen::Index i = 0; i < m.size(); ++i) m.data()[i] = n01(rng);
    return m;
  };
  const LinearRecipe recipe = bench_scheme(scheme);
  SafetensorsWriter out(dir + "/model.safetensors");
  begin_checkpoint(out);
  // The tied embedding in BF16, as Llama-3.2-1B (and `lowbit synth`) store it: the classifier
  // then runs as stored (Wide16Linear), as it does for the real model.
  const RowMatrixXf emb = random(c.vocab_size, c.dim);
  std::vector<std::uint16_t> emb16(static_cast<std::size_t>(emb.size()));
  for (std::size_t i = 0; i < emb16.size(); ++i) emb16[i] = lowbit::detail::float_to_bf16(emb.data()[i]);
  out.add("tok_embeddings.weight", tensor_dtype::bf16, {c.vocab_size, c.dim}, emb16.data(), emb16.size() * 2);
  const std::vector<float> ones(static_cast<std::size_t>(c.dim), 1.0f);
  out.add("norm.weight", tensor_dtype::f32, {c.dim}, ones.data(), ones.size() * 4);
  const std::int64_t D = c.dim, H = c.hidden_dim, KV = c.kv_dim();
  const std::int64_t shapes[kLinearSlots][2] = {{D, D}, {KV, D}, {KV, D}, {D, D}, {H, D}, {D, H}, {H, D}};
  for (int l = 0; l < c.n_layers; ++l) {
    for (const char* n : {".attention_norm.weight", ".ffn_norm.weight"})
      out.add("layers." + std::to_string(l) + n, tensor_dtype::f32, {c.dim}, ones.data(), ones.size() * 4);
    for (int s = 0; s < kLinearSlots; ++s) {
      const std::string name = linear_name(l, static_cast<linear_slot>(s));
      write_quantized_linear(out, name, quantize_linear(random(shapes[s][0], shapes[s][1]), recipe, nullptr, name));
    }
  }
  out.finish();
  std::ofstream(dir + "/config.json") << "{\"n_heads\": " << c.n_heads << ", \"max_seq_len\": " << c.max_seq_len << "}";
  return dirs[scheme] = dir;
}

double bench_weight_bytes_per_token(const LlamaModel& m) {
  double bytes = 0;
  for (const auto& [name, layer] : m.linear_layers()) bytes += layer->storage_bits() / 8.0;
  return bytes;
}

// GB/s of a plain read() of `path` (page cache warm) into a 4 MiB buffer: median of 5.
double bench_plain_read_gbps(const std::string& path) {
  std::vector<char> buf(4 << 20);
  std::vector<double> rates;
  for (int rep = 0; rep < 5; ++rep) {
    const int fd = ::open(path.c_str(), O_RDONLY);
    if (fd < 0) return 0.0;
    const auto t0 = std::chrono::steady_clock::now();
    std::size_t total = 0;
    for (ssize_t n; (n = ::read(fd, buf.data(), buf.size())) > 0;) total += static_cast<std::size_t>(n);
    const double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    ::close(fd);
    rates.push_back(static_cast<double>(total) / s / 1e9);
  }
  std::sort(rates.begin(), rates.end());
  return rates[rates.size() / 2];
}

// A field of /proc/self/status in MB ("VmRSS", "VmHWM"); 0 where unavailable.
double bench_status_mb(const char* field) {
  std::ifstream in("/proc/self/status");
  std::string line;
  const std::string key = std::string(field) + ":";
  while (std::getline(in, line))
    if (line.compare(0, key.size(), key) == 0) return std::atof(line.c_str() + key.size()) / 1024.0;
  return 0.0;
}

void BM_model_load(benchmark::State& state, const std::string& scheme) {
  const std::string dir = bench_checkpoint(scheme);
  const std::string file = dir + "/model.safetensors";
  struct stat st {};
  ::stat(file.c_str(), &st);
  set_num_threads(1);
  const double read_gbps = bench_plain_read_gbps(file);
  // Peak memory of one load: reset the high-water mark, load, read it back.
  double peak_mb = 0.0, kept_mb = 0.0;
  {
    const double before = bench_status_mb("VmRSS");
    std::ofstream("/proc/self/clear_refs") << "5";
    {
      LlamaModel m = load_quantized_llama(dir);
      kept_mb = bench_status_mb("VmRSS") - before;
      peak_mb = bench_status_mb("VmHWM") - before;
      benchmark::DoNotOptimize(&m);
    }
  }
  for (auto _ : state) {
    LlamaModel m = load_quantized_llama(dir);
    benchmark::DoNotOptimize(&m);
  }
  state.SetBytesProcessed(static_cast<std::int64_t>(state.iterations()) * st.st_size);
  state.counters["read_GBps"] = read_gbps;
  // kIsRate divides by the elapsed time: (load bytes / s) / read rate.
  state.counters["x_read"] = benchmark::Counter(
      read_gbps > 0 ? static_cast<double>(state.iterations()) * static_cast<double>(st.st_size) / 1e9 / read_gbps : 0.0,
      benchmark::Counter::kIsRate);
  state.counters["checkpoint_MB"] = static_cast<double>(st.st_size) / 1e6;
  state.counters["peak_MB"] = peak_mb;
  state.counters["kept_MB"] = kept_mb;
}

void BM_model_decode(benchmark::State& state, const std::string& scheme) {
  const LlamaModel m = load_quantized_llama(bench_checkpoint(scheme));
  set_num_threads(static_cast<int>(state.range(0)));
  const int n = 64;
  for (auto _ : state) {
    KvCache cache(m.config());
    ForwardWorkspace ws;
    RowMatrixXf logits;
    for (int i = 0; i < n; ++i) {
      const int t = (i * 7919) % m.config().vocab_size;
      m.forward(&t, 1, cache, logits, ws);
    }
    benchmark::DoNotOptimize(logits.data());
  }
  const double tokens = static_cast<double>(state.iterations()) * n;
  state.counters["tokens_per_second"] = benchmark::Counter(tokens, benchmark::Counter::kIsRate);
  state.counters["weight_GBps"] =
      benchmark::Counter(tokens * bench_weight_bytes_per_token(m) / 1e9, benchmark::Counter::kIsRate);
  set_num_threads(0);
}

void BM_model_prefill(benchmark::State& state, const std::string& scheme) {
  const LlamaModel m = load_quantized_llama(bench_checkpoint(scheme));
  set_num_threads(static_cast<int>(state.range(0)));
  std::vector<int> ids(128);
  for (std::size_t i = 0; i < ids.size(); ++i) ids[i] = static_cast<int>(i * 7919 % std::size_t(m.config().vocab_size));
  for (auto _ : state) {
    KvCache cache(m.config());
    ForwardWorkspace ws;
    RowMatrixXf logits;
    m.forward(ids.data(), 128, cache, logits, ws, nullptr, true);
    benchmark::DoNotOptimize(logits.data());
  }
  state.SetItemsProcessed(static_cast<std::int64_t>(state.iterations()) * 128);
  set_num_threads(0);
}

// The classifier of a decode step alone: [1, 2048] x [128256, 2048]^T, Llama-3.2-1B's tied
// embedding, BF16 through wide16_gemm (kernels/wide16.hpp) against the fp32 copy through
// Fp32Linear (an fp32 table, as stored by F32 checkpoints); weight_GBps = weight bytes / time,
// comparable with roofline/dram_read. Arg: threads.
void BM_classifier_bf16(benchmark::State& state) {
  const std::int64_t rows = 128256, cols = 2048;
  std::vector<std::uint16_t> w(static_cast<std::size_t>(rows * cols));
  std::mt19937 rng(3);
  for (auto& v : w) v = static_cast<std::uint16_t>(0x3C00u + (rng() & 0x3FFu));  // values in [0.0078, 0.0156)
  const Wide16View view{w.data(), rows, cols, wide16_type::bf16};
  RowMatrixXf x = RowMatrixXf::Random(1, cols), y(1, rows);
  const int threads = static_cast<int>(state.range(0));
  for (auto _ : state) {
    wide16_gemm(x, view, y, threads);
    benchmark::DoNotOptimize(y.data());
  }
  state.counters["weight_GBps"] =
      benchmark::Counter(static_cast<double>(state.iterations()) * 2.0 * rows * cols / 1e9, benchmark::Counter::kIsRate);
}

// The same classifier stored fp32, as Fp32Linear runs it (64-row chunks of Eigen products on
// the pool for a decode step). Arg: threads.
void BM_classifier_fp32(benchmark::State& state) {
  const std::int64_t rows = 128256, cols = 2048;
  const Fp32Linear layer(RowMatrixXf::Random(rows, cols));
  RowMatrixXf x = RowMatrixXf::Random(1, cols), y(1, rows);
  set_num_threads(static_cast<int>(state.range(0)));
  for (auto _ : state) {
    layer.forward(x, y);
    benchmark::DoNotOptimize(y.data());
  }
  set_num_threads(0);
  state.counters["weight_GBps"] =
      benchmark::Counter(static_cast<double>(state.iterations()) * 4.0 * rows * cols / 1e9, benchmark::Counter::kIsRate);
}

const int bench_model_registered = [] {
  benchmark::RegisterBenchmark("classifier/bf16/1/128256/2048", BM_classifier_bf16)
      ->Arg(1)->Arg(2)->Unit(benchmark::kMillisecond)->UseRealTime();
  benchmark::RegisterBenchmark("classifier/fp32/1/128256/2048", BM_classifier_fp32)
      ->Arg(1)->Arg(2)->Unit(benchmark::kMillisecond)->UseRealTime();
  for (const std::string scheme : {"w4a8-int", "w4a16-int4"}) {
    benchmark::RegisterBenchmark(("model_load/" + scheme).c_str(), BM_model_load, scheme)->Unit(benchmark::kMillisecond)->UseRealTime();
    benchmark::RegisterBenchmark(("model_decode/" + scheme).c_str(), BM_model_decode, scheme)
        ->Arg(1)->Arg(2)->Unit(benchmark::kMillisecond)->UseRealTime();
    benchmark::RegisterBenchmark(("model_prefill/" + scheme).c_str(), BM_model_prefill, scheme)
        ->Arg(1)->Arg(2)->Unit(benchmark::kMillisecond)->UseRealTime();
  }
  return 0;
}();

}  // namespace

}  // namespace bench_model_cpp
