// The forward pass's float steps (model/detail/forward_ops.hpp) on each ISA tier this CPU
// runs, against the Eigen expressions they replaced, compiled into this binary with its
// flags (-march=native by default, so Eigen here is AVX-512 Eigen where the CPU has it; a
// portable build's Eigen is SSE2 and slower than these rows).
//   forward_ops/silu/<tier|eigen>/16384       gate = silu(gate) * up over 16384 floats (one
//                                             decode token's 1B-shape hidden width x 2),
//                                             each iteration from a fresh copy of gate;
//                                             forward_ops/copy/16384 is that copy alone
//   forward_ops/softmax/<tier|eigen>/128x128  128 rows of 128 scores, in place
//   forward_ops/gemm_f32/<tier|eigen>/M/N/K   c[M,N] = a[M,K] b[K,N], row-major: 16/128/64 is
//                                             one 16-query block's QK^T over 128 keys (head_dim
//                                             64), 16/64/128 its PV; GFLOPS counter, comparable
//                                             with float_family/fma_f32_peak
#include <benchmark/benchmark.h>

#include <cmath>
#include <cstring>
#include <random>
#include <string>
#include <vector>

#include <Eigen/Dense>

#include "lowbit/model/detail/forward_ops.hpp"

// One namespace per benchmark file (benchmarks/CMakeLists.txt's unity build).
namespace bench_forward_ops_cpp {

namespace {

using namespace lowbit;
using RowMatrix = Eigen::Matrix<float, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>;

std::vector<float> random_floats(std::size_t n, unsigned seed, float sd) {
  std::mt19937 rng(seed);
  std::normal_distribution<float> nd(0.0f, sd);
  std::vector<float> v(n);
  for (float& x : v) x = nd(rng);
  return v;
}

constexpr std::size_t silu_n = 16384;

// tier < 0: Eigen; -2: the copy alone.
void bench_silu(benchmark::State& st, int tier) {
  const std::vector<float> g0 = random_floats(silu_n, 1, 3.0f), u = random_floats(silu_n, 2, 1.0f);
  std::vector<float> g(silu_n);
  for (auto _ : st) {
    std::memcpy(g.data(), g0.data(), silu_n * sizeof(float));
    if (tier >= 0) {
      model::detail::silu_mul_n(static_cast<isa_tier>(tier), g.data(), u.data(), silu_n);
    } else if (tier == -1) {
      Eigen::Map<Eigen::ArrayXf> gv(g.data(), silu_n);
      const Eigen::Map<const Eigen::ArrayXf> uv(u.data(), silu_n);
      gv = gv / (1.0f + (-gv).exp()) * uv;
    }
    benchmark::DoNotOptimize(g.data());
    benchmark::ClobberMemory();
  }
  st.SetItemsProcessed(static_cast<std::int64_t>(st.iterations() * silu_n));
}

void bench_softmax(benchmark::State& st, int tier) {
  constexpr int rows = 128, cols = 128;
  std::vector<float> x = random_floats(rows * cols, 3, 4.0f);
  const float scale = 0.125f;
  for (auto _ : st) {
    for (int r = 0; r < rows; ++r) {
      float* row = x.data() + r * cols;
      if (tier >= 0) {
        model::detail::softmax_n(static_cast<isa_tier>(tier), row, cols, scale);
      } else {
        Eigen::Map<Eigen::ArrayXf> seen(row, cols);
        const float mx = seen.maxCoeff();
        seen = ((seen - mx) * scale).exp();
        seen /= seen.sum();
      }
    }
    benchmark::DoNotOptimize(x.data());
    benchmark::ClobberMemory();
  }
  st.SetItemsProcessed(static_cast<std::int64_t>(st.iterations()) * rows * cols);
}

void bench_gemm(benchmark::State& st, int tier, int m, int n, int k) {
  const std::vector<float> a = random_floats(static_cast<std::size_t>(m) * k, 4, 1.0f),
                           b = random_floats(static_cast<std::size_t>(k) * n, 5, 1.0f);
  std::vector<float> c(static_cast<std::size_t>(m) * n);
  const Eigen::Map<const RowMatrix> am(a.data(), m, k), bm(b.data(), k, n);
  Eigen::Map<RowMatrix> cm(c.data(), m, n);
  for (auto _ : st) {
    if (tier >= 0)
      model::detail::gemm_f32(static_cast<isa_tier>(tier), m, n, k, a.data(), k, b.data(), n, c.data(), n);
    else
      cm.noalias() = am * bm;
    benchmark::DoNotOptimize(c.data());
    benchmark::ClobberMemory();
  }
  st.counters["GFLOPS"] = benchmark::Counter(2.0 * m * n * k / 1e9 * static_cast<double>(st.iterations()),
                                             benchmark::Counter::kIsRate);
}

int register_all() {
  std::vector<std::pair<std::string, int>> variants = {{"eigen", -1}};
  for (isa_tier t : supported_isa_tiers()) variants.emplace_back(std::string(to_string(t)), static_cast<int>(t));
  benchmark::RegisterBenchmark("forward_ops/copy/16384", bench_silu, -2);
  for (const auto& [name, tier] : variants) {
    benchmark::RegisterBenchmark(("forward_ops/silu/" + name + "/16384").c_str(), bench_silu, tier);
    benchmark::RegisterBenchmark(("forward_ops/softmax/" + name + "/128x128").c_str(), bench_softmax, tier);
    for (const auto& [m, n, k] : {std::tuple<int, int, int>{16, 128, 64}, {16, 64, 128}, {128, 128, 64}})
      benchmark::RegisterBenchmark(("forward_ops/gemm_f32/" + name + "/" + std::to_string(m) + "/" + std::to_string(n) +
                                    "/" + std::to_string(k))
                                       .c_str(),
                                   bench_gemm, tier, m, n, k);
  }
  return 0;
}

const int kRegistered = register_all();

}  // namespace

}  // namespace bench_forward_ops_cpp
