// Timings of the accuracy methods at LLM shapes, one core (Eigen without threads here):
//   BM_gptq/4096      GPTQ of a 4096x4096 weight, int4 group 128       (target <= 10 s)
//   BM_lorc_rank8/N   rank-8 LoRC of an NxN weight (randomized SVD)    (target <= 1.5 s at 4096)
//   BM_full_svd/N     Eigen's BDCSVD of an NxN matrix (the exact alternative), for the ratio
// Run: lowbit_bench --benchmark_filter='gptq|lorc|svd'
#include <benchmark/benchmark.h>

#include <Eigen/SVD>
#include <random>

#include "lowbit/algo/gptq.hpp"
#include "lowbit/algo/lorc.hpp"

// One namespace per benchmark file, so that the files can be compiled as one unity
// translation unit (benchmarks/CMakeLists.txt) without their file-local names clashing.
namespace bench_algo_cpp {

namespace {

lowbit::RowMatrixXf bench_gaussian(Eigen::Index rows, Eigen::Index cols, std::uint64_t seed, float sd) {
  std::mt19937_64 rng(seed);
  std::normal_distribution<float> d(0.0f, sd);
  lowbit::RowMatrixXf m(rows, cols);
  for (Eigen::Index i = 0; i < m.size(); ++i) m.data()[i] = d(rng);
  return m;
}

lowbit::QuantSpec int4_g128() {
  lowbit::QuantSpec s;
  s.format = lowbit::element_format::int4;
  s.gran = lowbit::granularity::per_group;
  s.group_size = 128;
  return s;
}

void BM_gptq(benchmark::State& state) {
  const Eigen::Index n = state.range(0);
  const lowbit::RowMatrixXf w = bench_gaussian(n, n, 1, 0.02f);
  // A correlated, positive definite Hessian: 2 X^T X / t with t = n tokens of mixed inputs.
  const lowbit::RowMatrixXf x = bench_gaussian(n, n, 2, 1.0f);
  const Eigen::MatrixXf h = (2.0f / float(n)) * Eigen::MatrixXf(x.transpose() * x);
  for (auto _ : state) {
    lowbit::GptqResult r = lowbit::gptq(w, h, int4_g128());
    benchmark::DoNotOptimize(r.matrix.codes.data());
  }
}
BENCHMARK(BM_gptq)->Arg(1024)->Arg(4096)->Unit(benchmark::kMillisecond)->Iterations(1);

void BM_lorc_rank8(benchmark::State& state) {
  const Eigen::Index n = state.range(0);
  const lowbit::RowMatrixXf w = bench_gaussian(n, n, 3, 0.02f);
  const lowbit::QuantizedMatrix q = lowbit::quantize(w, int4_g128());
  lowbit::LorcOptions opt;
  opt.method = lowbit::svd_method::randomized;
  for (auto _ : state) {
    lowbit::LowRank lr = lowbit::lorc(w, q, 8, opt);
    benchmark::DoNotOptimize(lr.u.data());
  }
}
BENCHMARK(BM_lorc_rank8)->Arg(1024)->Arg(2048)->Arg(4096)->Unit(benchmark::kMillisecond)->Iterations(1);

void BM_full_svd(benchmark::State& state) {
  const Eigen::Index n = state.range(0);
  const Eigen::MatrixXf e = bench_gaussian(n, n, 4, 0.001f);
  for (auto _ : state) {
    Eigen::BDCSVD<Eigen::MatrixXf> svd(e, Eigen::ComputeThinU | Eigen::ComputeThinV);
    benchmark::DoNotOptimize(svd.singularValues().data());
  }
}
BENCHMARK(BM_full_svd)->Arg(512)->Arg(1024)->Arg(2048)->Unit(benchmark::kMillisecond)->Iterations(1);

}  // namespace

}  // namespace bench_algo_cpp
