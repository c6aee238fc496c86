// Throughput of the bulk conversions, per format and per ISA tier this CPU runs (scalar
// included), in one run so SIMD/scalar ratios can be read directly:
//   convert_n/<format>/<tier>    float -> code (saturation::finite), items/s = elements/s
//   to_float_n/<format>/<tier>   code -> float
// The arrays (4096 elements) stay in L1/L2, so this measures the conversion, not memory.
#include <benchmark/benchmark.h>

#include <cmath>
#include <cstdint>
#include <limits>
#include <random>
#include <string>
#include <type_traits>
#include <vector>

#include "lowbit/formats.hpp"

// One namespace per benchmark file, so that the files can be compiled as one unity
// translation unit (benchmarks/CMakeLists.txt) without their file-local names clashing.
namespace bench_formats_cpp {

namespace {

constexpr std::size_t elements = 4096;

// Weight-like inputs: Gaussian values scaled to span the format's range, so every path
// (subnormal, normal, saturating) is exercised, with a few zeros and NaNs.
template <class T>
std::vector<float> make_inputs() {
  std::mt19937 rng(42);
  std::normal_distribution<float> normal(0.0f, 1.0f);
  const float scale = lowbit::format_traits<T>::max_finite() / 4;
  std::vector<float> x(elements);
  for (std::size_t i = 0; i < x.size(); ++i) {
    x[i] = normal(rng) * scale;
    if (i % 97 == 0) x[i] = 0.0f;
    if (i % 1021 == 0) x[i] = std::numeric_limits<float>::quiet_NaN();
  }
  if constexpr (std::is_same_v<T, lowbit::float8_e8m0fnu>)
    for (auto& v : x) v = std::fabs(v) * 0x1p-100f;  // scales: positive, wide range
  return x;
}

template <class T>
void bench_convert_n(benchmark::State& state, lowbit::isa_tier tier) {
  const std::vector<float> in = make_inputs<T>();
  std::vector<T> out(in.size());
  for (auto _ : state) {
    lowbit::detail::convert_n_tier(tier, in.data(), out.data(), in.size(), lowbit::saturation::finite);
    benchmark::DoNotOptimize(out.data());
    benchmark::ClobberMemory();
  }
  state.SetItemsProcessed(static_cast<std::int64_t>(state.iterations()) * static_cast<std::int64_t>(in.size()));
  state.SetBytesProcessed(static_cast<std::int64_t>(state.iterations()) *
                          static_cast<std::int64_t>(in.size() * (sizeof(float) + 1)));
}

template <class T>
void bench_to_float_n(benchmark::State& state, lowbit::isa_tier tier) {
  const std::vector<float> x = make_inputs<T>();
  std::vector<T> in(x.size());
  lowbit::detail::convert_n_scalar(x.data(), in.data(), x.size(), lowbit::saturation::finite);
  std::vector<float> out(in.size());
  for (auto _ : state) {
    lowbit::detail::to_float_n_tier(tier, in.data(), out.data(), in.size());
    benchmark::DoNotOptimize(out.data());
    benchmark::ClobberMemory();
  }
  state.SetItemsProcessed(static_cast<std::int64_t>(state.iterations()) * static_cast<std::int64_t>(in.size()));
  state.SetBytesProcessed(static_cast<std::int64_t>(state.iterations()) *
                          static_cast<std::int64_t>(in.size() * (sizeof(float) + 1)));
}

bool register_format_benchmarks() {
  lowbit::for_each_format(lowbit::all_float_formats{}, [](auto t) {
    using T = decltype(t);
    const std::string name(lowbit::format_traits<T>::name);
    for (lowbit::isa_tier tier : lowbit::supported_isa_tiers()) {
      const std::string suffix = name + "/" + std::string(lowbit::to_string(tier));
      benchmark::RegisterBenchmark(("convert_n/" + suffix).c_str(), bench_convert_n<T>, tier);
      benchmark::RegisterBenchmark(("to_float_n/" + suffix).c_str(), bench_to_float_n<T>, tier);
    }
  });
  return true;
}

const bool registered = register_format_benchmarks();

}  // namespace

}  // namespace bench_formats_cpp
