// The machine's limits, so the GEMM benchmarks can be read as ratios from one run:
//   roofline/vnni_peak  a register-only VPDPBUSD loop on one core (16 independent zmm chains,
//                       enough to hide the instruction's latency); GOPS = 2 * 64 MACs each
//   roofline/dram_read  one core streaming a 1 GiB buffer (far beyond the last-level cache)
//                       with 512-bit loads; GBps
#include <benchmark/benchmark.h>

#include <cstdint>
#include <cstring>

#include "lowbit/detail/aligned_buffer.hpp"
#include "lowbit/detail/target.hpp"
#include "lowbit/dispatch/cpu_features.hpp"

#if LOWBIT_HAVE_X86_SIMD
#include <immintrin.h>
// GCC 12 false positive inside its own AVX-512 reduction intrinsics (GCC bug 105593).
#pragma GCC diagnostic ignored "-Wuninitialized"
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#endif

namespace {

constexpr int kChains = 16;
constexpr std::int64_t kSteps = 1 << 16;

#if LOWBIT_HAVE_X86_SIMD
LOWBIT_TARGET_AVX512_VNNI std::int32_t vnni_loop(std::int64_t steps) {
  __m512i acc[kChains];
  for (int j = 0; j < kChains; ++j) acc[j] = _mm512_set1_epi32(j);
  __m512i a = _mm512_set1_epi8(3), b = _mm512_set1_epi8(-5);
  __asm__ volatile("" : "+v"(a), "+v"(b));  // opaque operands: nothing to fold
  for (std::int64_t i = 0; i < steps; ++i) {
    for (int j = 0; j < kChains; ++j) acc[j] = _mm512_dpbusd_epi32(acc[j], a, b);
  }
  __m512i s = acc[0];
  for (int j = 1; j < kChains; ++j) s = _mm512_add_epi32(s, acc[j]);
  return _mm512_reduce_add_epi32(s);
}

LOWBIT_TARGET_AVX512 std::uint64_t stream_read(const std::uint8_t* p, std::size_t bytes) {
  __m512i x0 = _mm512_setzero_si512(), x1 = x0, x2 = x0, x3 = x0;
  for (std::size_t i = 0; i < bytes; i += 256) {
    x0 = _mm512_xor_si512(x0, _mm512_load_si512(reinterpret_cast<const void*>(p + i)));
    x1 = _mm512_xor_si512(x1, _mm512_load_si512(reinterpret_cast<const void*>(p + i + 64)));
    x2 = _mm512_xor_si512(x2, _mm512_load_si512(reinterpret_cast<const void*>(p + i + 128)));
    x3 = _mm512_xor_si512(x3, _mm512_load_si512(reinterpret_cast<const void*>(p + i + 192)));
  }
  const __m512i x = _mm512_xor_si512(_mm512_xor_si512(x0, x1), _mm512_xor_si512(x2, x3));
  return static_cast<std::uint64_t>(_mm512_reduce_add_epi64(x));
}
#endif

void bench_vnni_peak(benchmark::State& st) {
#if LOWBIT_HAVE_X86_SIMD
  if (!lowbit::host_cpu_features().avx512vnni) {
    st.SkipWithError("no AVX512-VNNI on this CPU");
    return;
  }
  for (auto _ : st) benchmark::DoNotOptimize(vnni_loop(kSteps));
  st.counters["GOPS"] = benchmark::Counter(static_cast<double>(kSteps) * kChains * 128 / 1e9,
                                           benchmark::Counter::kIsIterationInvariantRate);
#else
  st.SkipWithError("x86 only");
#endif
}

void bench_dram_read(benchmark::State& st) {
#if LOWBIT_HAVE_X86_SIMD
  const std::size_t bytes = std::size_t{1} << 30;
  lowbit::detail::aligned_buffer<std::uint8_t> buf(bytes);
  std::memset(buf.data(), 1, bytes);  // fault every page in before timing
  for (auto _ : st) benchmark::DoNotOptimize(stream_read(buf.data(), bytes));
  st.counters["GBps"] = benchmark::Counter(static_cast<double>(bytes) / 1e9, benchmark::Counter::kIsIterationInvariantRate);
#else
  st.SkipWithError("x86 only");
#endif
}

BENCHMARK(bench_vnni_peak)->Name("roofline/vnni_peak");
BENCHMARK(bench_dram_read)->Name("roofline/dram_read")->Unit(benchmark::kMillisecond);

}  // namespace
