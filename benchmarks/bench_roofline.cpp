// The machine's limits, so the GEMM benchmarks can be read as ratios from one run (one core
// each, operands in registers, independent accumulators enough to cover latency x ports):
//   roofline/vnni_peak      VPDPBUSD zmm, 24 chains; GOPS = 2 * 64 MACs each
//   roofline/fma_peak       VFMADD231PS zmm, 24 chains; GFLOPS = 2 * 16 each
//   roofline/amx_int8_peak  TDPBSUD (the kernel's instruction), 4 independent C tiles (2 A x 2 B); GOPS = 2 * 16 * 16 * 64
//   roofline/amx_bf16_peak  TDPBF16PS, the same tiles; GFLOPS = 2 * 16 * 16 * 32
// The vector loops use inline asm: with the intrinsics GCC 12 copies the accumulators between
// two register sets every iteration (and spills past 16 chains), and the loop then measured
// ~655 GOPS where the port limit is ~850 on a Zen 4/5 core; no compiler choice sits in the loop.
//   roofline/dram_read  one core streaming a 1 GiB buffer (far beyond the last-level cache)
//                       with 512-bit loads; GBps
//   roofline/cache_read/MiB:N  one core reading the same N MiB buffer again and again: the
//                       bound of the "hot" gemm rows (gemm/<scheme>/1/4096/4096 reads one
//                       8.4 MiB packed int4 copy each call), i.e. L2 (1 MiB) or the
//                       last-level cache (8, 32 MiB) on most servers; GBps
//   roofline/cache_read_prefetched/MiB:N  the same with a PREFETCHT0 4 KiB ahead, as the
//                       one-token integer kernel reads (faster from L3 on some CPUs); GBps
//   roofline/<peak>_threads/threads:N  the same loop on N threads of lowbit's pool at once
//                       (vnni, fma, amx_int8, amx_bf16; N from LOWBIT_BENCH_THREADS, else 1,
//                       2); GOPS/GFLOPS of all threads, wall time. Its N-thread / (N x 1-thread)
//                       ratio is the machine's own scaling ceiling for compute-bound kernels
//                       (all-core clocks are below one-core turbo): a kernel's N-thread
//                       efficiency is read against it, not against 1.0
//   roofline/dram_read_threads/threads:N  the same 1 GiB read by N threads of lowbit's pool,
//                       one contiguous slice each (what a decode split over N threads can
//                       reach; issue 12 reads its 2-thread tg against threads:2); GBps, wall time
#include <benchmark/benchmark.h>

#include <cstdint>
#include <cstring>

#include "lowbit/detail/aligned_buffer.hpp"
#include "lowbit/threads.hpp"
#include "lowbit/detail/target.hpp"
#include "lowbit/dispatch/cpu_features.hpp"
#include "lowbit/kernels/x86/amx_int.hpp"
#include "bench_threads.hpp"

#if LOWBIT_HAVE_X86_SIMD
#include <immintrin.h>
// GCC 12 false positive inside its own AVX-512 reduction intrinsics (GCC bug 105593).
#pragma GCC diagnostic ignored "-Wuninitialized"
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#endif

namespace {

constexpr int kChains = 24;  // of 32 zmm: 2 ports x 5-cycle latency needs >= 10; margin for 4-cycle FMA x 2
constexpr std::int64_t kSteps = 1 << 16;
constexpr std::int64_t kTileSteps = 1 << 14;

#if LOWBIT_HAVE_X86_SIMD
// One asm statement per step: 24 instructions on fixed registers zmm0..zmm23, operands in
// zmm30/zmm31; only the loop counter is the compiler's.
#define LOWBIT_REP24(OP) \
  OP(0) OP(1) OP(2) OP(3) OP(4) OP(5) OP(6) OP(7) OP(8) OP(9) OP(10) OP(11) \
  OP(12) OP(13) OP(14) OP(15) OP(16) OP(17) OP(18) OP(19) OP(20) OP(21) OP(22) OP(23)
#define LOWBIT_VPDPBUSD(i) "vpdpbusd %%zmm31, %%zmm30, %%zmm" #i "\n\t"
#define LOWBIT_VFMADD(i) "vfmadd231ps %%zmm31, %%zmm30, %%zmm" #i "\n\t"
#define LOWBIT_ZERO(i) "vpxord %%zmm" #i ", %%zmm" #i ", %%zmm" #i "\n\t"
#define LOWBIT_CLOBBER24                                                                                  \
  "xmm0", "xmm1", "xmm2", "xmm3", "xmm4", "xmm5", "xmm6", "xmm7", "xmm8", "xmm9", "xmm10", "xmm11", "xmm12", \
      "xmm13", "xmm14", "xmm15", "xmm16", "xmm17", "xmm18", "xmm19", "xmm20", "xmm21", "xmm22", "xmm23",      \
      "xmm30", "xmm31"

LOWBIT_TARGET_AVX512 void vnni_loop(std::int64_t steps) {
  __asm__ volatile(LOWBIT_REP24(LOWBIT_ZERO) "vpternlogd $0xff, %%zmm30, %%zmm30, %%zmm30\n\t"
                   "vpabsb %%zmm30, %%zmm31\n\t"
                   :
                   :
                   : LOWBIT_CLOBBER24);
  for (std::int64_t i = 0; i < steps; ++i) __asm__ volatile(LOWBIT_REP24(LOWBIT_VPDPBUSD)::: LOWBIT_CLOBBER24);
}

LOWBIT_TARGET_AVX512 void fma_loop(std::int64_t steps) {
  __asm__ volatile(LOWBIT_REP24(LOWBIT_ZERO) "vpxord %%zmm30, %%zmm30, %%zmm30\n\t"
                   "vpxord %%zmm31, %%zmm31, %%zmm31\n\t"
                   :
                   :
                   : LOWBIT_CLOBBER24);
  for (std::int64_t i = 0; i < steps; ++i) __asm__ volatile(LOWBIT_REP24(LOWBIT_VFMADD)::: LOWBIT_CLOBBER24);
}

// Tiles: C in tmm0-3 (four independent accumulators), A in tmm4-5, B in tmm6-7, all 16 x 64
// bytes, loaded once from a zero buffer (AMX speed does not depend on the values).
LOWBIT_TARGET_AMX void amx_setup(const void* zeros) {
  lowbit::detail::amx_configure_16x64();
  _tile_loadd(4, zeros, 64);
  _tile_loadd(5, zeros, 64);
  _tile_loadd(6, zeros, 64);
  _tile_loadd(7, zeros, 64);
  _tile_zero(0);
  _tile_zero(1);
  _tile_zero(2);
  _tile_zero(3);
}

LOWBIT_TARGET_AMX void amx_int8_loop(std::int64_t steps, const void* zeros) {
  amx_setup(zeros);
  for (std::int64_t i = 0; i < steps; ++i) {
    _tile_dpbsud(0, 4, 6);
    _tile_dpbsud(1, 4, 7);
    _tile_dpbsud(2, 5, 6);
    _tile_dpbsud(3, 5, 7);
  }
  _tile_release();
}

LOWBIT_TARGET_AMX void amx_bf16_loop(std::int64_t steps, const void* zeros) {
  amx_setup(zeros);
  for (std::int64_t i = 0; i < steps; ++i) {
    _tile_dpbf16ps(0, 4, 6);
    _tile_dpbf16ps(1, 4, 7);
    _tile_dpbf16ps(2, 5, 6);
    _tile_dpbf16ps(3, 5, 7);
  }
  _tile_release();
}

// Reads `bytes` (a multiple of 256) with 512-bit loads into four independent XOR chains.
// Prefetch = true adds a PREFETCHT0 4 KiB ahead of each line, the pattern of the one-token
// integer kernel (avx512_int_step), so the hot one-token rows can be read against a loop that
// reads as they do. On the device Xeon no way of reading an 8 MiB buffer from L3 was faster
// than the spread between runs (24 variants: T0/T1/T2 at 1-64 KiB ahead, 1-8 interleaved
// streams; performance.md, "Session 46"). Prefetches past the end do not fault.
template <bool Prefetch>
LOWBIT_TARGET_AVX512 std::uint64_t stream_read_loop(const std::uint8_t* p, std::size_t bytes) {
  __m512i x0 = _mm512_setzero_si512(), x1 = x0, x2 = x0, x3 = x0;
  for (std::size_t i = 0; i < bytes; i += 256) {
    if constexpr (Prefetch)
      for (int l = 0; l < 4; ++l) _mm_prefetch(reinterpret_cast<const char*>(p + i + 4096 + 64 * l), _MM_HINT_T0);
    x0 = _mm512_xor_si512(x0, _mm512_load_si512(reinterpret_cast<const void*>(p + i)));
    x1 = _mm512_xor_si512(x1, _mm512_load_si512(reinterpret_cast<const void*>(p + i + 64)));
    x2 = _mm512_xor_si512(x2, _mm512_load_si512(reinterpret_cast<const void*>(p + i + 128)));
    x3 = _mm512_xor_si512(x3, _mm512_load_si512(reinterpret_cast<const void*>(p + i + 192)));
  }
  const __m512i x = _mm512_xor_si512(_mm512_xor_si512(x0, x1), _mm512_xor_si512(x2, x3));
  return static_cast<std::uint64_t>(_mm512_reduce_add_epi64(x));
}

LOWBIT_TARGET_AVX512 std::uint64_t stream_read(const std::uint8_t* p, std::size_t bytes) {
  return stream_read_loop<false>(p, bytes);
}
LOWBIT_TARGET_AVX512 std::uint64_t stream_read_prefetched(const std::uint8_t* p, std::size_t bytes) {
  return stream_read_loop<true>(p, bytes);
}
#endif

void bench_vnni_peak(benchmark::State& st) {
#if LOWBIT_HAVE_X86_SIMD
  if (!lowbit::host_cpu_features().avx512vnni) {
    st.SkipWithError("no AVX512-VNNI on this CPU");
    return;
  }
  for (auto _ : st) vnni_loop(kSteps);
  st.counters["GOPS"] = benchmark::Counter(static_cast<double>(kSteps) * kChains * 128 / 1e9,
                                           benchmark::Counter::kIsIterationInvariantRate);
#else
  st.SkipWithError("x86 only");
#endif
}

void bench_fma_peak(benchmark::State& st) {
#if LOWBIT_HAVE_X86_SIMD
  if (!lowbit::detail::tier_supported(lowbit::isa_tier::avx512, lowbit::host_cpu_features())) {
    st.SkipWithError("no AVX-512 on this CPU");
    return;
  }
  for (auto _ : st) fma_loop(kSteps);
  st.counters["GFLOPS"] = benchmark::Counter(static_cast<double>(kSteps) * kChains * 32 / 1e9,
                                             benchmark::Counter::kIsIterationInvariantRate);
#else
  st.SkipWithError("x86 only");
#endif
}

void bench_amx_peak(benchmark::State& st, bool bf16) {
#if LOWBIT_HAVE_X86_SIMD
  const lowbit::cpu_features& f = lowbit::host_cpu_features();
  if (!f.amx_permitted || !(bf16 ? f.amx_bf16 : f.amx_int8)) {
    st.SkipWithError(bf16 ? "no usable AMX-BF16 on this CPU/OS" : "no usable AMX-INT8 on this CPU/OS");
    return;
  }
  lowbit::detail::aligned_buffer<std::uint8_t> zeros(1024);
  for (auto _ : st) {
    if (bf16) amx_bf16_loop(kTileSteps, zeros.data());
    else amx_int8_loop(kTileSteps, zeros.data());
  }
  const double per_tile = bf16 ? 2.0 * 16 * 16 * 32 : 2.0 * 16 * 16 * 64;
  st.counters[bf16 ? "GFLOPS" : "GOPS"] = benchmark::Counter(static_cast<double>(kTileSteps) * 4 * per_tile / 1e9,
                                                            benchmark::Counter::kIsIterationInvariantRate);
#else
  (void)bf16;
  st.SkipWithError("x86 only");
#endif
}

// The peak loops above on `threads` pool threads at once (one loop each, the same length):
// kind 0 vnni, 1 fma, 2 amx_int8, 3 amx_bf16. Each thread configures its own tiles (AMX
// state is per thread; the permission is per process and was asked for at startup).
void bench_peak_threads(benchmark::State& st, int kind) {
#if LOWBIT_HAVE_X86_SIMD
  const lowbit::cpu_features& f = lowbit::host_cpu_features();
  const bool ok = kind == 0   ? f.avx512vnni
                  : kind == 1 ? lowbit::detail::tier_supported(lowbit::isa_tier::avx512, f)
                  : kind == 2 ? f.amx_permitted && f.amx_int8
                              : f.amx_permitted && f.amx_bf16;
  if (!ok) {
    st.SkipWithError("this CPU/OS lacks the instructions of this loop");
    return;
  }
  const int threads = static_cast<int>(st.range(0));
  lowbit::detail::aligned_buffer<std::uint8_t> zeros(1024);
  for (auto _ : st) {
    lowbit::parallel_for(threads, threads, lowbit::executor(), [&](std::int64_t) {
      if (kind == 0) vnni_loop(kSteps);
      else if (kind == 1) fma_loop(kSteps);
      else if (kind == 2) amx_int8_loop(kTileSteps, zeros.data());
      else amx_bf16_loop(kTileSteps, zeros.data());
    });
  }
  const double per_thread = kind == 0   ? static_cast<double>(kSteps) * kChains * 128
                            : kind == 1 ? static_cast<double>(kSteps) * kChains * 32
                            : kind == 2 ? static_cast<double>(kTileSteps) * 4 * 2.0 * 16 * 16 * 64
                                        : static_cast<double>(kTileSteps) * 4 * 2.0 * 16 * 16 * 32;
  st.counters[kind == 1 || kind == 3 ? "GFLOPS" : "GOPS"] =
      benchmark::Counter(per_thread * threads / 1e9, benchmark::Counter::kIsIterationInvariantRate);
#else
  (void)kind;
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

void bench_cache_read(benchmark::State& st, bool prefetched) {
#if LOWBIT_HAVE_X86_SIMD
  const std::size_t bytes = static_cast<std::size_t>(st.range(0)) << 20;
  lowbit::detail::aligned_buffer<std::uint8_t> buf(bytes);
  std::memset(buf.data(), 1, bytes);
  const auto read = prefetched ? stream_read_prefetched : stream_read;
  benchmark::DoNotOptimize(read(buf.data(), bytes));  // warm: the first pass fills the caches
  for (auto _ : st) benchmark::DoNotOptimize(read(buf.data(), bytes));
  st.counters["GBps"] = benchmark::Counter(static_cast<double>(bytes) / 1e9, benchmark::Counter::kIsIterationInvariantRate);
#else
  (void)prefetched;
  st.SkipWithError("x86 only");
#endif
}

void bench_dram_read_threads(benchmark::State& st) {
#if LOWBIT_HAVE_X86_SIMD
  const std::size_t bytes = std::size_t{1} << 30;
  const int threads = static_cast<int>(st.range(0));
  lowbit::detail::aligned_buffer<std::uint8_t> buf(bytes);
  const std::size_t slice = bytes / static_cast<std::size_t>(threads) / 64 * 64;
  // Each thread faults in (first touch) the slice it then reads, as a packed weight range is.
  lowbit::parallel_for(threads, threads, lowbit::executor(), [&](std::int64_t i) {
    std::memset(buf.data() + static_cast<std::size_t>(i) * slice, 1, slice);
  });
  for (auto _ : st) {
    lowbit::parallel_for(threads, threads, lowbit::executor(), [&](std::int64_t i) {
      benchmark::DoNotOptimize(stream_read(buf.data() + static_cast<std::size_t>(i) * slice, slice));
    });
  }
  st.counters["GBps"] = benchmark::Counter(static_cast<double>(slice * static_cast<std::size_t>(threads)) / 1e9,
                                           benchmark::Counter::kIsIterationInvariantRate);
#else
  st.SkipWithError("x86 only");
#endif
}

BENCHMARK(bench_vnni_peak)->Name("roofline/vnni_peak");
BENCHMARK(bench_fma_peak)->Name("roofline/fma_peak");
BENCHMARK_CAPTURE(bench_amx_peak, int8, false)->Name("roofline/amx_int8_peak");
BENCHMARK_CAPTURE(bench_amx_peak, bf16, true)->Name("roofline/amx_bf16_peak");
const int kPeakThreadsRegistered = [] {
  const char* names[] = {"roofline/vnni_peak_threads", "roofline/fma_peak_threads", "roofline/amx_int8_peak_threads",
                         "roofline/amx_bf16_peak_threads"};
  for (int kind = 0; kind < 4; ++kind) {
    auto* b = benchmark::RegisterBenchmark(names[kind], bench_peak_threads, kind);
    b->ArgName("threads")->UseRealTime();
    for (int t : lowbit_bench::thread_counts()) b->Arg(t);
  }
  return 0;
}();
BENCHMARK(bench_dram_read)->Name("roofline/dram_read")->Unit(benchmark::kMillisecond);
BENCHMARK_CAPTURE(bench_cache_read, plain, false)->Name("roofline/cache_read")->ArgName("MiB")->Arg(1)->Arg(8)->Arg(32);
BENCHMARK_CAPTURE(bench_cache_read, prefetched, true)
    ->Name("roofline/cache_read_prefetched")
    ->ArgName("MiB")
    ->Arg(1)->Arg(8)->Arg(32);
BENCHMARK(bench_dram_read_threads)
    ->Name("roofline/dram_read_threads")
    ->ArgName("threads")
    ->Arg(1)->Arg(2)->Arg(4)->Arg(8)->Arg(16)
    ->UseRealTime()
    ->Unit(benchmark::kMillisecond);

}  // namespace
