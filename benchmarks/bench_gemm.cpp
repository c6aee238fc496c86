// GEMM benchmarks: gemm/<scheme>/<tokens>/<N>/<K> (weights hot in cache), gemm_cold/<scheme>/1/
// 4096/4096 (weights rotated over >= 512 MiB of packed copies, so they stream from DRAM as in
// decoding), and .../threads:{1,2}/real_time variants of the 128-token and the cold rows (timed
// by the wall clock; LOWBIT_BENCH_THREADS=1,2,4,8,16 registers other counts, for scaling runs
// on larger hosts; a cold row on N threads is read against roofline/dram_read_threads).
// Single-threaded unless the name says; those are timed by CPU time, robust on a shared machine.
// Counters: GOPS = 2 * tokens * N * K per second / 1e9; weight_GBps = packed bytes (scales
// included) per second / 1e9. f32_eigen is Eigen's fp32 product on the same shapes.
// w4a16_{int4,fp4}_{f16,bf16} are the W4A16 weights given fp16 / bf16 activations.
// LOWBIT_BENCH_MANY_TOKEN_PATH=fp32|bf16_tiles forces the AVX-512 float records' many-token
// path (detail::many_token_path_override), so the fp32 tile and the VDPBF16PS tiles can be
// compared in one session on a CPU with AVX512-BF16; the row's label names the kernel.
#include <benchmark/benchmark.h>

#include <cstdint>
#include <cstdlib>
#include <memory>
#include <random>
#include <string>
#include <vector>

#include "lowbit/formats/nibbles.hpp"
#include "lowbit/gemm.hpp"
#include "bench_threads.hpp"

// One namespace per benchmark file, so that the files can be compiled as one unity
// translation unit (benchmarks/CMakeLists.txt) without their file-local names clashing.
namespace bench_gemm_cpp {

namespace {

using namespace lowbit;

// LOWBIT_BENCH_MANY_TOKEN_PATH, applied before any benchmark runs.
[[maybe_unused]] const bool many_token_path_set = [] {
  if (const char* e = std::getenv("LOWBIT_BENCH_MANY_TOKEN_PATH")) {
    const std::string v(e);
    if (v == "fp32") detail::many_token_path_override() = detail::many_token_path::fp32;
    if (v == "bf16_tiles") detail::many_token_path_override() = detail::many_token_path::bf16_tiles;
    return true;
  }
  return false;
}();

// LOWBIT_BENCH_ONE_TOKEN_PATH=quad|bf16_pairs|int_planes: which one-token path 4-bit codes take
// on a CPU with AVX512-BF16 or VNNI (float_layout.hpp's CPU rules otherwise; int_planes takes
// w4a8_fp4 and the W4A16 schemes), applied before any benchmark runs.
[[maybe_unused]] const bool one_token_path_set = [] {
  if (const char* e = std::getenv("LOWBIT_BENCH_ONE_TOKEN_PATH")) {
    const std::string v(e);
    if (v == "quad") detail::one_token_path_override() = detail::one_token_path::quad;
    if (v == "bf16_pairs") detail::one_token_path_override() = detail::one_token_path::bf16_pairs;
    if (v == "int_planes") detail::one_token_path_override() = detail::one_token_path::int_planes;
    return true;
  }
  return false;
}();

struct scheme_info {
  const char* name;
  element_format format;
  bool symmetric;
  scale_constraint constraint;
  int group;  // 0: per channel
  activation_quant act;
  activation_dtype input = activation_dtype::f32;  // the activations gemm() is given
};

const scheme_info kSchemes[] = {
    {"w8a8_int8", element_format::int8, true, scale_constraint::none, 0, activation_quant::int8},
    {"w4a8_int4", element_format::int4, true, scale_constraint::none, 128, activation_quant::int8},
    {"w4a8_int4_m2", element_format::int4, true, scale_constraint::pow2_m2, 128, activation_quant::int8},
    {"w8a8_fp8", element_format::float8_e4m3fn, true, scale_constraint::none, 0, activation_quant::float8_e4m3fn},
    {"w4a8_fp4", element_format::float4_e2m1fn, true, scale_constraint::pow2_m2, 128, activation_quant::float8_e4m3fn},
    {"w4a16_int4", element_format::int4, true, scale_constraint::none, 128, activation_quant::none},
    {"w4a16_fp4", element_format::float4_e2m1fn, true, scale_constraint::none, 128, activation_quant::none},
    // The same weights given fp16 / bf16 activations (AVX512-FP16 kernel where the CPU has it).
    {"w4a16_int4_f16", element_format::int4, true, scale_constraint::none, 128, activation_quant::none,
     activation_dtype::f16},
    {"w4a16_fp4_f16", element_format::float4_e2m1fn, true, scale_constraint::none, 128, activation_quant::none,
     activation_dtype::f16},
    {"w4a16_int4_bf16", element_format::int4, true, scale_constraint::none, 128, activation_quant::none,
     activation_dtype::bf16},
    {"w4a16_fp4_bf16", element_format::float4_e2m1fn, true, scale_constraint::none, 128, activation_quant::none,
     activation_dtype::bf16},
};

// A random quantized matrix with LLM-like statistics (codes uniform over the normal range,
// M2 shifts mostly 0 or -1); the kernels' speed does not depend on the values.
QuantizedMatrix random_weights(const scheme_info& s, std::int64_t n, std::int64_t k) {
  QuantizedMatrix q;
  q.spec.format = s.format;
  q.spec.symmetric = s.symmetric;
  q.spec.gran = s.group ? granularity::per_group : granularity::per_channel;
  q.spec.group_size = s.group ? s.group : 128;
  q.spec.constraint = s.constraint;
  q.rows = n;
  q.cols = k;
  q.group_size = s.group ? s.group : k;
  q.groups_per_row = (k + q.group_size - 1) / q.group_size;
  const bool four = s.format == element_format::int4 || s.format == element_format::float4_e2m1fn;
  q.row_stride = four ? (k + 1) / 2 : k;
  q.codes.resize(static_cast<std::size_t>(n * q.row_stride));
  std::mt19937 rng(7);
  auto nibble = [&] { return static_cast<unsigned>(static_cast<int>(rng() % 15) - 7) & 0xFu; };
  for (auto& b : q.codes) {
    if (s.format == element_format::int4) {
      b = static_cast<std::uint8_t>(nibble() | nibble() << 4);  // -7..7 in each nibble
      continue;
    }
    b = static_cast<std::uint8_t>(rng());
    if (s.format == element_format::int8 && b == 0x80) b = 0;
    if (s.format == element_format::float8_e4m3fn && (b & 0x7F) == 0x7F) b = 0x7E;  // no NaN
  }
  q.scales.assign(static_cast<std::size_t>(n * q.groups_per_row), 0.01f);
  if (s.constraint == scale_constraint::pow2_m2) {
    q.row_scales.assign(static_cast<std::size_t>(n), 0.01f);
    q.shifts.resize(q.scales.size());
    for (std::size_t i = 0; i < q.shifts.size(); ++i) {
      q.shifts[i] = static_cast<std::int8_t>(-static_cast<int>(rng() % 2));
      q.scales[i] = std::ldexp(0.01f, q.shifts[i]);
    }
  }
  if (!s.symmetric) q.zeros.assign(q.scales.size(), 8);
  return q;
}

RowMatrixXf random_x(std::int64_t m, std::int64_t k) {
  std::mt19937 rng(3);
  std::normal_distribution<float> nd;
  RowMatrixXf x(m, k);
  for (std::int64_t i = 0; i < x.size(); ++i) x.data()[i] = nd(rng);
  return x;
}

void set_counters(benchmark::State& st, std::int64_t m, std::int64_t n, std::int64_t k, double bytes) {
  st.counters["GOPS"] = benchmark::Counter(2.0 * m * n * k / 1e9, benchmark::Counter::kIsIterationInvariantRate);
  st.counters["weight_GBps"] = benchmark::Counter(bytes / 1e9, benchmark::Counter::kIsIterationInvariantRate);
}

// x as the scheme's input type; one gemm call.
struct activations {
  RowMatrixXf f32;
  RowMatrixXh f16;
  RowMatrixXbf16 bf16;
  activations(activation_dtype dt, std::int64_t m, std::int64_t k) : f32(random_x(m, k)) {
    if (dt == activation_dtype::f16) f16 = f32.cast<Eigen::half>();
    if (dt == activation_dtype::bf16) bf16 = f32.cast<Eigen::bfloat16>();
  }
  void gemm(activation_dtype dt, const PackedWeights& w, RowMatrixXf& y, const GemmOptions& o) const {
    if (dt == activation_dtype::f16) lowbit::gemm(f16, w, y, o);
    else if (dt == activation_dtype::bf16) lowbit::gemm(bf16, w, y, o);
    else lowbit::gemm(f32, w, y, o);
  }
};

void bench_lowbit(benchmark::State& st, scheme_info s, std::int64_t m, std::int64_t n, std::int64_t k, int threads) {
  PackOptions po;
  po.activations = s.act;
  const PackedWeights w = pack(random_weights(s, n, k), po);
  st.SetLabel(m > 4 ? selected_kernel(w, s.input) : std::string(selected_kernel(w)));
  const activations x(s.input, m, k);
  RowMatrixXf y(m, n);
  GemmOptions o;
  o.num_threads = threads;
  for (auto _ : st) {
    x.gemm(s.input, w, y, o);
    benchmark::DoNotOptimize(y.data());
    benchmark::ClobberMemory();
  }
  set_counters(st, m, n, k, static_cast<double>(w.bytes()));
}

void bench_eigen(benchmark::State& st, std::int64_t m, std::int64_t n, std::int64_t k) {
  const RowMatrixXf w = random_x(n, k);
  const RowMatrixXf x = random_x(m, k);
  RowMatrixXf y(m, n);
  for (auto _ : st) {
    y.noalias() = x * w.transpose();
    benchmark::DoNotOptimize(y.data());
    benchmark::ClobberMemory();
  }
  set_counters(st, m, n, k, static_cast<double>(w.size()) * sizeof(float));
}

constexpr std::size_t kColdBytes = std::size_t{1} << 30;  // >= 512 MiB, and well past the 260 MiB L3

void bench_lowbit_cold(benchmark::State& st, scheme_info s, int threads) {
  const std::int64_t n = 4096, k = 4096;
  PackOptions po;
  po.activations = s.act;
  std::vector<PackedWeights> copies;
  copies.push_back(pack(random_weights(s, n, k), po));
  const std::size_t count = (kColdBytes + copies[0].bytes() - 1) / copies[0].bytes();
  while (copies.size() < count) copies.push_back(copies[0]);
  st.SetLabel(std::string(selected_kernel(copies[0])) + " x" + std::to_string(count));
  const activations x(s.input, 1, k);
  RowMatrixXf y(1, n);
  GemmOptions o;
  o.num_threads = threads;
  std::size_t i = 0;
  for (auto _ : st) {
    x.gemm(s.input, copies[i], y, o);
    i = (i + 1) % count;
    benchmark::DoNotOptimize(y.data());
    benchmark::ClobberMemory();
  }
  set_counters(st, 1, n, k, static_cast<double>(copies[0].bytes()));
}

void bench_eigen_cold(benchmark::State& st) {
  const std::int64_t n = 4096, k = 4096;
  const std::size_t count = kColdBytes / (n * k * sizeof(float));
  std::vector<RowMatrixXf> copies(count, random_x(n, k));
  const RowMatrixXf x = random_x(1, k);
  RowMatrixXf y(1, n);
  std::size_t i = 0;
  for (auto _ : st) {
    y.noalias() = x * copies[i].transpose();
    i = (i + 1) % count;
    benchmark::DoNotOptimize(y.data());
    benchmark::ClobberMemory();
  }
  set_counters(st, 1, n, k, static_cast<double>(n * k * sizeof(float)));
}

bool scheme_available(const scheme_info& s) {
  try {
    PackOptions po;
    po.activations = s.act;
    (void)pack(random_weights(s, 32, 64), po);
    return true;
  } catch (const lowbit::error&) {
    return false;
  }
}

const int kRegistered = [] {
  const std::int64_t tokens[] = {1, 8, 32, 128, 512};
  const std::int64_t ns[] = {4096, 11008};
  const std::int64_t k = 4096;
  const std::vector<int> threads_list = lowbit_bench::thread_counts();
  for (std::int64_t n : ns)
    for (std::int64_t m : tokens) {
      const std::string shape = "/" + std::to_string(m) + "/" + std::to_string(n) + "/" + std::to_string(k);
      benchmark::RegisterBenchmark(("gemm/f32_eigen" + shape).c_str(), bench_eigen, m, n, k)
          ->Unit(benchmark::kMicrosecond);
      for (const scheme_info& s : kSchemes) {
        if (!scheme_available(s)) continue;
        benchmark::RegisterBenchmark((std::string("gemm/") + s.name + shape).c_str(), bench_lowbit, s, m, n, k, 1)
            ->Unit(benchmark::kMicrosecond);
        if (m == 128)  // thread scaling, every count timed by the wall clock
          for (int threads : threads_list)
            benchmark::RegisterBenchmark((std::string("gemm/") + s.name + shape + "/threads:" + std::to_string(threads)).c_str(),
                                         bench_lowbit, s, m, n, k, threads)
                ->Unit(benchmark::kMicrosecond)
                ->UseRealTime();  // wall time: CPU time would count only the calling thread
      }
    }
  benchmark::RegisterBenchmark("gemm_cold/f32_eigen/1/4096/4096", bench_eigen_cold)
      ->Unit(benchmark::kMicrosecond);
  for (const scheme_info& s : kSchemes)
    if (scheme_available(s)) {
      const std::string name = std::string("gemm_cold/") + s.name + "/1/4096/4096";
      benchmark::RegisterBenchmark(name.c_str(), bench_lowbit_cold, s, 1)->Unit(benchmark::kMicrosecond);
      // Decode split over N threads: read against roofline/dram_read_threads/threads:N.
      for (int threads : threads_list)
        benchmark::RegisterBenchmark((name + "/threads:" + std::to_string(threads)).c_str(), bench_lowbit_cold, s,
                                     threads)
            ->Unit(benchmark::kMicrosecond)
            ->UseRealTime();
    }
  return 0;
}();

}  // namespace

}  // namespace bench_gemm_cpp
