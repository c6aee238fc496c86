// Quantizer throughput: a 4096 x 4096 fp32 weight matrix (a Llama-7B projection), single
// thread, for each element format and scale constraint; items/s = weights/s. Anchor: ggml's
// Q4_0 quantizer takes about 49 ms for this matrix on one core here (340 M weights/s).
// The clipping search is measured separately (quantize_clip/...), and so are dequantize and
// per-token activation quantization.
#include <benchmark/benchmark.h>

#include <random>
#include <string>

#include "lowbit/quant.hpp"

// One namespace per benchmark file, so that the files can be compiled as one unity
// translation unit (benchmarks/CMakeLists.txt) without their file-local names clashing.
namespace bench_quant_cpp {

namespace {

const lowbit::RowMatrixXf& weights() {
  static const lowbit::RowMatrixXf w = [] {
    std::mt19937 rng(7);
    std::normal_distribution<float> n(0.0f, 0.02f);
    lowbit::RowMatrixXf m(4096, 4096);
    for (Eigen::Index i = 0; i < m.size(); ++i) m.data()[i] = n(rng);
    return m;
  }();
  return w;
}

void bench_quantize(benchmark::State& state, lowbit::QuantSpec spec) {
  const lowbit::RowMatrixXf& w = weights();
  for (auto _ : state) {
    lowbit::QuantizedMatrix q = lowbit::quantize(w, spec);
    benchmark::DoNotOptimize(q.codes.data());
  }
  state.SetItemsProcessed(state.iterations() * w.size());
  state.counters["bits/weight"] = lowbit::quantize(w.topRows(16), spec).bits_per_weight();
}

void bench_dequantize(benchmark::State& state, lowbit::QuantSpec spec) {
  const lowbit::QuantizedMatrix q = lowbit::quantize(weights(), spec);
  for (auto _ : state) {
    lowbit::RowMatrixXf d = lowbit::dequantize(q);
    benchmark::DoNotOptimize(d.data());
  }
  state.SetItemsProcessed(state.iterations() * weights().size());
}

void bench_activations(benchmark::State& state, lowbit::act_format f) {
  const lowbit::RowMatrixXf x = weights().topRows(512);  // 512 tokens x 4096
  for (auto _ : state) {
    lowbit::QuantizedActivations a = lowbit::quantize_activations(x, f);
    benchmark::DoNotOptimize(a.codes.data());
  }
  state.SetItemsProcessed(state.iterations() * x.size());
}

std::string bench_name(const char* prefix, const lowbit::QuantSpec& s) {
  // quantize/<format>/<granularity>/<constraint>[/asym][/clip]
  using namespace lowbit;
  std::string n = std::string(prefix) + "/" + std::string(to_string(s.format)) + "/";
  n += s.gran == granularity::per_tensor ? "tensor" : s.gran == granularity::per_channel ? "channel"
                                                                                       : "g" + std::to_string(s.group_size);
  n += "/" + std::string(to_string(s.constraint));
  if (!s.symmetric) n += "/asym";
  if (s.mx_rounding == mx_scale_rounding::round_up_175) n += "/up175";
  return n;
}

int register_all() {
  using namespace lowbit;
  using ef = element_format;
  using sc = scale_constraint;
  const QuantSpec specs[] = {
      group_spec(ef::int4, 128),
      group_spec(ef::int4, 128, sc::none, false),
      group_spec(ef::int4, 128, sc::pow2_m1),
      group_spec(ef::int4, 128, sc::pow2_m2),
      group_spec(ef::int8, 128),
      channel_spec(ef::int8),
      channel_spec(ef::float8_e4m3fn),
      channel_spec(ef::float8_e5m2),
      group_spec(ef::float6_e3m2fn, 128),
      group_spec(ef::float6_e2m3fn, 128),
      group_spec(ef::float4_e2m1fn, 128),
      group_spec(ef::float4_e2m1fn, 128, sc::pow2_m1),
      group_spec(ef::float4_e2m1fn, 128, sc::pow2_m2),
      mx_spec(ef::float4_e2m1fn),
      mx_spec(ef::float4_e2m1fn, mx_scale_rounding::round_up_175),
      mx_spec(ef::float6_e3m2fn),
      mx_spec(ef::float8_e4m3fn),
      nvfp4_spec(),
  };
  for (const QuantSpec& s : specs)
    benchmark::RegisterBenchmark(bench_name("quantize", s).c_str(), bench_quantize, s)->Unit(benchmark::kMillisecond);
  for (QuantSpec s : {group_spec(ef::int4, 128), group_spec(ef::float4_e2m1fn, 128)}) {
    s.clip.enabled = true;  // 20 ratios in [0.5, 1]
    benchmark::RegisterBenchmark(bench_name("quantize_clip", s).c_str(), bench_quantize, s)->Unit(benchmark::kMillisecond);
  }
  for (const QuantSpec& s : {group_spec(ef::int4, 128), group_spec(ef::float4_e2m1fn, 128)})
    benchmark::RegisterBenchmark(bench_name("dequantize", s).c_str(), bench_dequantize, s)->Unit(benchmark::kMillisecond);
  for (act_format f : {act_format::int8, act_format::float8_e4m3fn})
    benchmark::RegisterBenchmark(("quantize_activations/" + std::string(to_string(f))).c_str(), bench_activations, f)
        ->Unit(benchmark::kMillisecond);
  return 0;
}

const int registered = register_all();

}  // namespace

}  // namespace bench_quant_cpp
