// GGUF layer throughput (scalar code; importing a model decodes or converts every weight once):
//   gguf_decode/<type>        blocks -> float, items/s = elements/s (64 Ki elements, in cache)
//   gguf_encode/<type>        lowbit QuantizedMatrix -> blocks (export), items/s = elements/s
//   gguf_import/<type>        blocks -> lowbit QuantizedMatrix (gguf_to_quantized)
//   gguf_parse_header         GgufFile::parse of a llama-like header: 32 Ki-token vocabulary
//                             (tokens, scores, types), 291 tensor infos; items/s = files/s
#include <benchmark/benchmark.h>

#include <cstdint>
#include <cstring>
#include <random>
#include <string>
#include <vector>

#include "lowbit/io/gguf.hpp"
#include "lowbit/io/gguf_blocks.hpp"
#include "lowbit/quant/quantizer.hpp"

// One namespace per benchmark file, so that the files can be compiled as one unity
// translation unit (benchmarks/CMakeLists.txt) without their file-local names clashing.
namespace bench_gguf_cpp {

namespace {

using lowbit::gguf_type;
constexpr std::int64_t rows = 64, cols = 1024;

std::vector<std::uint8_t> random_blocks(gguf_type t) {
  const auto g = lowbit::gguf_geometry(static_cast<std::uint32_t>(t));
  std::vector<std::uint8_t> b(static_cast<std::size_t>(rows * cols / g.block_elems * g.block_bytes));
  std::mt19937 rng(1);
  for (auto& v : b) v = static_cast<std::uint8_t>(rng());
  // Keep fp16 scales finite and small (Q6_K's d sits at the end of its block).
  const std::size_t d_at = t == gguf_type::q6_k ? 208 : 0;
  if (t != gguf_type::mxfp4)
    for (std::size_t i = d_at; i < b.size(); i += g.block_bytes) b[i + 1] = 0x2c;
  if (t == gguf_type::mxfp4)
    for (std::size_t i = 0; i < b.size(); i += g.block_bytes) b[i] = 120;
  return b;
}

void bm_decode(benchmark::State& state, gguf_type t) {
  const auto b = random_blocks(t);
  std::vector<float> out(static_cast<std::size_t>(rows * cols));
  for (auto _ : state) {
    lowbit::gguf_decode(t, reinterpret_cast<const std::byte*>(b.data()), rows * cols, out.data());
    benchmark::DoNotOptimize(out.data());
  }
  state.SetItemsProcessed(state.iterations() * rows * cols);
}

lowbit::QuantizedMatrix quantized_for(gguf_type t) {
  lowbit::RowMatrixXf w(rows, cols);
  std::mt19937 rng(2);
  std::normal_distribution<float> nd(0.0f, 0.02f);
  for (std::int64_t i = 0; i < w.size(); ++i) w.data()[i] = nd(rng);
  lowbit::QuantSpec s;
  if (t == gguf_type::mxfp4) {
    s = lowbit::mx_spec(lowbit::element_format::float4_e2m1fn);
  } else {
    s = lowbit::group_spec(t == gguf_type::q8_0 ? lowbit::element_format::int8 : lowbit::element_format::int4, 32);
    if (t == gguf_type::q4_0) s.int_rule = lowbit::int_scale_rule::q4_0;
    s.scale_storage = lowbit::scale_dtype::f16;
  }
  return lowbit::quantize(w, s);
}

void bm_encode(benchmark::State& state, gguf_type t) {
  const lowbit::QuantizedMatrix q = quantized_for(t);
  for (auto _ : state) benchmark::DoNotOptimize(lowbit::gguf_encode(q, t));
  state.SetItemsProcessed(state.iterations() * rows * cols);
}

void bm_import(benchmark::State& state, gguf_type t) {
  const auto b = lowbit::gguf_encode(quantized_for(t), t);
  lowbit::GgufTensor view;
  view.name = "w";
  view.type = static_cast<std::uint32_t>(t);
  view.ne = {static_cast<std::uint64_t>(cols), static_cast<std::uint64_t>(rows)};
  view.data = reinterpret_cast<const std::byte*>(b.data());
  view.nbytes = b.size();
  for (auto _ : state) benchmark::DoNotOptimize(lowbit::gguf_to_quantized(view));
  state.SetItemsProcessed(state.iterations() * rows * cols);
}

// A header shaped like a 7B llama file's: 32000 tokens, their scores and types, 291 tensors.
std::vector<std::uint8_t> llama_like_header() {
  std::vector<std::uint8_t> b;
  auto put = [&](const void* p, std::size_t n) {
    const auto* u = static_cast<const std::uint8_t*>(p);
    b.insert(b.end(), u, u + n);
  };
  auto u32 = [&](std::uint32_t v) { put(&v, 4); };
  auto u64 = [&](std::uint64_t v) { put(&v, 8); };
  auto str = [&](const std::string& s) { u64(s.size()); put(s.data(), s.size()); };
  const std::uint64_t vocab = 32000, tensors = 291;
  put("GGUF", 4);
  u32(3);
  u64(tensors);
  u64(3);
  str("tokenizer.ggml.tokens");
  u32(9); u32(8); u64(vocab);
  for (std::uint64_t i = 0; i < vocab; ++i) str("tok" + std::to_string(i));
  str("tokenizer.ggml.scores");
  u32(9); u32(6); u64(vocab);
  for (std::uint64_t i = 0; i < vocab; ++i) { const float f = -float(i); put(&f, 4); }
  str("tokenizer.ggml.token_type");
  u32(9); u32(5); u64(vocab);
  for (std::uint64_t i = 0; i < vocab; ++i) u32(1);
  for (std::uint64_t i = 0; i < tensors; ++i) {
    str("blk." + std::to_string(i / 9) + ".t" + std::to_string(i % 9) + ".weight");
    u32(2); u64(32); u64(1);
    u32(0);
    u64(i * 128);
  }
  while (b.size() % 32) b.push_back(0);
  b.resize(b.size() + tensors * 128, 0);
  return b;
}

void bm_parse(benchmark::State& state) {
  const auto b = llama_like_header();
  for (auto _ : state) benchmark::DoNotOptimize(lowbit::GgufFile::parse(b.data(), b.size()));
  state.SetItemsProcessed(state.iterations());
}

}  // namespace

BENCHMARK_CAPTURE(bm_decode, q8_0, gguf_type::q8_0);
BENCHMARK_CAPTURE(bm_decode, q4_0, gguf_type::q4_0);
BENCHMARK_CAPTURE(bm_decode, q4_1, gguf_type::q4_1);
BENCHMARK_CAPTURE(bm_decode, mxfp4, gguf_type::mxfp4);
BENCHMARK_CAPTURE(bm_decode, q4_k, gguf_type::q4_k);
BENCHMARK_CAPTURE(bm_decode, q6_k, gguf_type::q6_k);
BENCHMARK_CAPTURE(bm_decode, f16, gguf_type::f16);
BENCHMARK_CAPTURE(bm_decode, bf16, gguf_type::bf16);
BENCHMARK_CAPTURE(bm_encode, q8_0, gguf_type::q8_0);
BENCHMARK_CAPTURE(bm_encode, q4_0, gguf_type::q4_0);
BENCHMARK_CAPTURE(bm_encode, mxfp4, gguf_type::mxfp4);
BENCHMARK_CAPTURE(bm_import, q8_0, gguf_type::q8_0);
BENCHMARK_CAPTURE(bm_import, q4_0, gguf_type::q4_0);
BENCHMARK_CAPTURE(bm_import, mxfp4, gguf_type::mxfp4);
BENCHMARK(bm_parse)->Name("gguf_parse_header");

}  // namespace bench_gguf_cpp
