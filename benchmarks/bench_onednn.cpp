// oneDNN baselines beside lowbit's gemm rows, same names and shapes, so ratios come from one
// run (built only when Debian's libdnnl-dev is found; benchmarks/CMakeLists.txt):
//   gemm/onednn_s8s8/<tokens>/<N>/<K>   int8 matmul: s8 activations (already quantized, which
//                                       favours oneDNN) x s8 weights -> f32 with one output
//                                       scale per column (lowbit's w8a8_int8 computes the same)
//   gemm/onednn_bf16/<tokens>/<N>/<K>   bf16 x bf16 -> f32 (the W4A16-bf16 comparison)
// Weights are reordered once into the layout oneDNN picks (format tag any), as lowbit packs
// once. The label is oneDNN's implementation (e.g. brg:avx512_core_amx); DNNL_MAX_CPU_ISA
// limits it (AVX512_CORE_VNNI: no AMX). The /threads:N rows (LOWBIT_BENCH_THREADS, default 1
// and 2) set oneDNN's OpenMP thread count; the plain rows run one thread.
#include <benchmark/benchmark.h>
#include <dlfcn.h>

#include <cstdint>
#include <cstdlib>
#include <oneapi/dnnl/dnnl.hpp>
#include <random>
#include <string>
#include <vector>

#include "bench_threads.hpp"

namespace {

// libdnnl's OpenMP runtime, found at run time (lowbit_bench does not link OpenMP itself).
void set_onednn_threads(int n) {
  using fn = void (*)(int);
  if (auto f = reinterpret_cast<fn>(dlsym(RTLD_DEFAULT, "omp_set_num_threads"))) f(n);
}

void bench_onednn(benchmark::State& st, bool bf16, std::int64_t m, std::int64_t n, std::int64_t k, int threads) {
  using namespace dnnl;
  using dt = memory::data_type;
  using tag = memory::format_tag;
  set_onednn_threads(threads);
  engine eng(engine::kind::cpu, 0);
  stream strm(eng);
  const dt in = bf16 ? dt::bf16 : dt::s8;
  const memory::desc src_md({m, k}, in, tag::ab), dst_md({m, n}, dt::f32, tag::ab);
  const memory::desc wei_any({k, n}, in, tag::any), wei_plain({k, n}, in, tag::ab);
  primitive_attr attr;
  if (!bf16) attr.set_output_scales(2, std::vector<float>(static_cast<std::size_t>(n), 0.01f));
  const matmul::primitive_desc pd(matmul::desc(src_md, wei_any, dst_md), attr, eng);
  memory src(src_md, eng), dst(dst_md, eng), wplain(wei_plain, eng), wei(pd.weights_desc(), eng);
  std::mt19937 rng(5);
  auto fill = [&](memory& mem, std::int64_t count) {
    if (bf16) {
      auto* p = static_cast<std::uint16_t*>(mem.get_data_handle());
      for (std::int64_t i = 0; i < count; ++i) p[i] = static_cast<std::uint16_t>(0x3F00 | (rng() & 0x7F));  // ~[0.5, 1)
    } else {
      auto* p = static_cast<std::int8_t*>(mem.get_data_handle());
      for (std::int64_t i = 0; i < count; ++i) p[i] = static_cast<std::int8_t>(static_cast<int>(rng() % 255) - 127);
    }
  };
  fill(src, m * k);
  fill(wplain, k * n);
  reorder(wplain, wei).execute(strm, wplain, wei);
  const matmul prim(pd);
  st.SetLabel(std::string(pd.impl_info_str()));
  for (auto _ : st) {
    prim.execute(strm, {{DNNL_ARG_SRC, src}, {DNNL_ARG_WEIGHTS, wei}, {DNNL_ARG_DST, dst}});
    strm.wait();
    benchmark::DoNotOptimize(dst.get_data_handle());
  }
  st.counters["GOPS"] = benchmark::Counter(2.0 * m * n * k / 1e9, benchmark::Counter::kIsIterationInvariantRate);
  set_onednn_threads(1);
}

const int kRegistered = [] {
  const std::int64_t tokens[] = {1, 8, 32, 128, 512};
  const std::int64_t n = 4096, k = 4096;
  for (bool bf16 : {false, true})
    for (std::int64_t m : tokens) {
      const std::string name = std::string("gemm/") + (bf16 ? "onednn_bf16/" : "onednn_s8s8/") + std::to_string(m) +
                               "/" + std::to_string(n) + "/" + std::to_string(k);
      benchmark::RegisterBenchmark(name.c_str(), bench_onednn, bf16, m, n, k, 1)->Unit(benchmark::kMicrosecond);
      if (m == 128)
        for (int threads : lowbit_bench::thread_counts())
          benchmark::RegisterBenchmark((name + "/threads:" + std::to_string(threads)).c_str(), bench_onednn, bf16, m, n,
                                       k, threads)
              ->Unit(benchmark::kMicrosecond)
              ->UseRealTime();
    }
  return 0;
}();

}  // namespace
