// Raw benchmarks of the float-decoding kernel family (prepare_float + run_float on one
// thread, no gemm() around it), with the baselines they are judged against in the same
// binary:
//   float_family/f32_eigen/<tokens>/<N>/<K>     Eigen's fp32 y = x * W^T (as compiled here)
//   float_family/<scheme>/<tokens>/<N>/<K>      hot weights (they stay in cache when they fit)
//   float_family_cold/<scheme>/1/4096/4096      weights rotated over >= 512 MiB of copies
//   float_family/dram_read                      one core streaming 1 GiB (counter GBps)
//   float_family/prepare/<scheme>/1/<K>         prepare_float alone for one token (the part
//                                               of a one-token call that is not the weights;
//                                               the path is the CPU rule's, or
//                                               LOWBIT_BENCH_ONE_TOKEN_PATH's in lowbit_bench)
// Counters: GOPS = 2 * tokens * N * K / s / 1e9; weight_GBps = packed bytes (scales
// included) / s. The kernel tier is selected_isa_tier() (LOWBIT_ISA forces one).
#include <benchmark/benchmark.h>

#include <cstdint>
#include <random>
#include <string>
#include <vector>

#include "lowbit/kernels/float_family.hpp"
#include "lowbit/kernels/registry.hpp"

#if LOWBIT_HAVE_X86_SIMD
#include <immintrin.h>
#endif

// One namespace per benchmark file, so that the files can be compiled as one unity
// translation unit (benchmarks/CMakeLists.txt) without their file-local names clashing.
namespace bench_float_kernels_cpp {

namespace {

using namespace lowbit;
using namespace lowbit::detail;

struct bench_scheme {
  const char* name;
  gemm_scheme scheme;
  element_format format;
  bool symmetric;
};

const bench_scheme bench_schemes[] = {
    {"w8a8_fp8", gemm_scheme::w8a8_fp8, element_format::float8_e4m3fn, true},
    {"w4a8_fp4", gemm_scheme::w4a8_fp4, element_format::float4_e2m1fn, true},
    {"w4a16_int4", gemm_scheme::w4a16_int4, element_format::int4, true},
    {"w4a16_int4_asym", gemm_scheme::w4a16_int4, element_format::int4, false},
    {"w4a16_fp4", gemm_scheme::w4a16_fp4, element_format::float4_e2m1fn, true},
    {"w8a16_int8", gemm_scheme::w8a16_int8, element_format::int8, true},  // GGUF Q8_0 imports
};

QuantizedMatrix random_weights(const bench_scheme& s, std::int64_t n, std::int64_t k) {
  std::mt19937 rng(42);
  QuantizedMatrix q;
  q.spec.format = s.format;
  q.spec.symmetric = s.symmetric;
  q.rows = n;
  q.cols = k;
  // fp8: per channel; int8: Q8_0's group of 32.
  q.group_size = s.format == element_format::float8_e4m3fn ? k : s.format == element_format::int8 ? 32 : 128;
  q.groups_per_row = (k + q.group_size - 1) / q.group_size;
  const bool e4m3 = s.format == element_format::float8_e4m3fn;
  const bool eight = e4m3 || s.format == element_format::int8;
  q.row_stride = eight ? k : (k + 1) / 2;
  q.codes.resize(static_cast<std::size_t>(n * q.row_stride));
  std::uniform_int_distribution<int> byte(0, 255);
  for (auto& c : q.codes) {
    c = static_cast<std::uint8_t>(byte(rng));
    if (e4m3 && (c & 0x7F) == 0x7F) c ^= 1;
  }
  q.scales.assign(static_cast<std::size_t>(n * q.groups_per_row), 0.01f);
  if (!s.symmetric) q.zeros.assign(q.scales.size(), 8);
  return q;
}

RowMatrixXf random_x(std::int64_t tokens, std::int64_t k) {
  std::mt19937 rng(1);
  std::normal_distribution<float> d;
  RowMatrixXf x(tokens, k);
  for (Eigen::Index i = 0; i < x.size(); ++i) x.data()[i] = d(rng);
  return x;
}

void set_counters(benchmark::State& st, double ops, double bytes) {
  st.counters["GOPS"] = benchmark::Counter(ops / 1e9, benchmark::Counter::kIsIterationInvariantRate);
  st.counters["weight_GBps"] =
      benchmark::Counter(bytes / 1e9, benchmark::Counter::kIsIterationInvariantRate);
}

void bench_eigen(benchmark::State& st, std::int64_t tokens, std::int64_t n, std::int64_t k) {
  const RowMatrixXf w = RowMatrixXf::Random(n, k);
  const RowMatrixXf x = random_x(tokens, k);
  RowMatrixXf y(tokens, n);
  for (auto _ : st) {
    y.noalias() = x * w.transpose();
    benchmark::DoNotOptimize(y.data());
  }
  set_counters(st, 2.0 * tokens * n * k, 4.0 * n * k);
}

void bench_float(benchmark::State& st, const bench_scheme& s, std::int64_t tokens, std::int64_t n,
                 std::int64_t k, int copies) {
  const float_packed one = pack_float(random_weights(s, n, k), s.scheme, selected_isa_tier());
  std::vector<float_packed> w(static_cast<std::size_t>(copies), one);
  const RowMatrixXf x = random_x(tokens, k);
  RowMatrixXf y(tokens, n);
  std::size_t i = 0;
  for (auto _ : st) {
    const float_packed& p = w[i];
    i = i + 1 == w.size() ? 0 : i + 1;
    const float_workspace ws = prepare_float(p, x);
    run_float(p, ws, y, 0, n);
    benchmark::DoNotOptimize(y.data());
  }
  set_counters(st, 2.0 * tokens * n * k, static_cast<double>(float_packed_bytes(one)));
  st.SetLabel(float_kernel_name(one));
}

void bench_prepare(benchmark::State& st, const bench_scheme& s, std::int64_t k) {
  const float_packed p = pack_float(random_weights(s, 64, k), s.scheme, selected_isa_tier());
  const RowMatrixXf x = random_x(1, k);
  for (auto _ : st) {
    const float_workspace ws = prepare_float(p, x);
    benchmark::DoNotOptimize(&ws);
  }
  st.counters["activations_per_s"] =
      benchmark::Counter(static_cast<double>(k), benchmark::Counter::kIsIterationInvariantRate);
  st.SetLabel(float_kernel_name(p));
}

void bench_dram_read(benchmark::State& st) {
  std::vector<std::uint64_t> buf(std::size_t{1} << 27, 1);  // 1 GiB
  for (auto _ : st) {
    std::uint64_t s0 = 0, s1 = 0, s2 = 0, s3 = 0;
    for (std::size_t i = 0; i < buf.size(); i += 4) {
      s0 += buf[i];
      s1 += buf[i + 1];
      s2 += buf[i + 2];
      s3 += buf[i + 3];
    }
    benchmark::DoNotOptimize(s0 + s1 + s2 + s3);
  }
  st.counters["GBps"] = benchmark::Counter(static_cast<double>(buf.size() * 8) / 1e9,
                                           benchmark::Counter::kIsIterationInvariantRate);
}

#if LOWBIT_HAVE_X86_SIMD
// GCC 12 warns inside its own AVX-512 intrinsics (GCC bug 105593).
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wuninitialized"
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
// Register-only FMA loops (16 independent accumulators): the fp32 and fp16 arithmetic peaks
// of one core, so kernel GOPS can be read as a fraction of what the core can do right now
// (the machine is shared). 2 flops per lane per FMA.
LOWBIT_TARGET_AVX512 double fma_f32_loop(std::int64_t iters) {
  __m512 a[16];
  for (int i = 0; i < 16; ++i) a[i] = _mm512_set1_ps(1.0f + i * 1e-3f);
  const __m512 m = _mm512_set1_ps(0.999999f), c = _mm512_set1_ps(1e-7f);
  for (std::int64_t n = 0; n < iters; ++n)
#pragma GCC unroll 16
    for (int i = 0; i < 16; ++i) a[i] = _mm512_fmadd_ps(a[i], m, c);
  __m512 s = a[0];
  for (int i = 1; i < 16; ++i) s = _mm512_add_ps(s, a[i]);
  return _mm512_reduce_add_ps(s);
}
LOWBIT_TARGET_AVX512_FP16 double fma_f16_loop(std::int64_t iters) {
  __m512h a[16];
  for (int i = 0; i < 16; ++i) a[i] = _mm512_set1_ph(static_cast<_Float16>(1.0f + i * 1e-3f));
  const __m512h m = _mm512_set1_ph(static_cast<_Float16>(0.999f)), c = _mm512_set1_ph(static_cast<_Float16>(1e-3f));
  for (std::int64_t n = 0; n < iters; ++n)
#pragma GCC unroll 16
    for (int i = 0; i < 16; ++i) a[i] = _mm512_fmadd_ph(a[i], m, c);
  __m512h s = a[0];
  for (int i = 1; i < 16; ++i) s = _mm512_add_ph(s, a[i]);
  return static_cast<double>(_mm512_reduce_add_ph(s));
}
void bench_fma_peak(benchmark::State& st, bool half) {
  if (half ? !host_cpu_features().avx512fp16 : !host_cpu_features().avx512f) {
    st.SkipWithError("CPU lacks the instruction");
    return;
  }
  volatile std::int64_t iters_v = 1 << 20;  // read every time: the call cannot be hoisted
  const std::int64_t iters = iters_v;
  for (auto _ : st) benchmark::DoNotOptimize(half ? fma_f16_loop(iters_v) : fma_f32_loop(iters_v));
  const double flops = 2.0 * 16 * (half ? 32 : 16) * static_cast<double>(iters);
  st.counters["GOPS"] = benchmark::Counter(flops / 1e9, benchmark::Counter::kIsIterationInvariantRate);
}
#pragma GCC diagnostic pop
#endif

int register_all() {
#if LOWBIT_HAVE_X86_SIMD
  benchmark::RegisterBenchmark("float_family/fma_f32_peak", bench_fma_peak, false);
  benchmark::RegisterBenchmark("float_family/fma_f16_peak", bench_fma_peak, true);
#endif
  const std::int64_t n = 4096, k = 4096;
  for (std::int64_t tokens : {1, 8, 128}) {
    const std::string shape = "/" + std::to_string(tokens) + "/" + std::to_string(n) + "/" + std::to_string(k);
    benchmark::RegisterBenchmark(("float_family/f32_eigen" + shape).c_str(), bench_eigen, tokens, n, k)
        ->Unit(benchmark::kMillisecond);
    for (const bench_scheme& s : bench_schemes)
      benchmark::RegisterBenchmark(("float_family/" + std::string(s.name) + shape).c_str(),
                                   [&s, tokens, n, k](benchmark::State& st) { bench_float(st, s, tokens, n, k, 1); })
          ->Unit(benchmark::kMillisecond);
  }
  // Cold: >= 512 MiB of packed copies, so every call streams its weights from DRAM.
  for (const bench_scheme& s : bench_schemes) {
    const int bytes_per_copy = s.format == element_format::float8_e4m3fn ? 16 << 20 : 8 << 20;
    const int copies = (512 << 20) / bytes_per_copy + 1;
    benchmark::RegisterBenchmark(("float_family_cold/" + std::string(s.name) + "/1/4096/4096").c_str(),
                                 [&s, copies](benchmark::State& st) { bench_float(st, s, 1, 4096, 4096, copies); })
        ->Unit(benchmark::kMillisecond);
  }
  for (const bench_scheme& s : bench_schemes)
    for (std::int64_t kp : {2048, 4096, 8192})
      benchmark::RegisterBenchmark(
          ("float_family/prepare/" + std::string(s.name) + "/1/" + std::to_string(kp)).c_str(),
          [&s, kp](benchmark::State& st) { bench_prepare(st, s, kp); })
          ->Unit(benchmark::kMicrosecond);
  benchmark::RegisterBenchmark("float_family/dram_read", bench_dram_read)->Unit(benchmark::kMillisecond);
  return 0;
}

const int registered = register_all();

}  // namespace

}  // namespace bench_float_kernels_cpp
