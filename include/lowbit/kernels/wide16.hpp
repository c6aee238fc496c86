#pragma once
// y = x * W^T for a weight matrix kept in its stored 16-bit form (BF16 or F16), widened to
// fp32 in registers and accumulated with fp32 FMAs. This is the classifier kernel: a tied
// BF16 embedding table (128256 x 2048 for Llama-3.2-1B) is 0.52 GB as stored and 1.05 GB as
// fp32, and decoding reads it whole for every token, so keeping it 16-bit halves the bytes
// of the largest single read of a decode step, with no rounding: BF16 -> fp32 is a 16-bit
// shift and F16 -> fp32 is exact too, so the products are those of the fp32 copy and only
// the summation order differs (fp32 accumulation in 16 lanes, then a lane reduction).
//
//   wide16_gemm(x, w, y, threads)   x [tokens, cols] fp32, w a Wide16View [rows, cols],
//                                   y [tokens, rows]; threaded over rows of W on the pool
//   wide16_gemm_reference(...)      the oracle: one row at a time, sums in double
//
// Tiers: an AVX-512 path (VPMOVZXWD + VPSLLD for BF16, VCVTPH2PS for F16) and a generic C++
// path that the compiler vectorizes for any other ISA (its 16 independent lane sums need no
// reassociation). Both use the same accumulation order for every output element, whatever
// the thread count or which rows/tokens share a register block, so the result does not
// depend on --threads; the tiers differ from each other and from the reference in rounding
// only (tolerance: wide16_tolerance()).
//
// The weights are read, never copied; non-finite weights are the caller's to refuse (the
// model's loader checks them once, wide16_all_finite()).
// The AVX-512 tier's loops over a register block carry `#pragma GCC unroll 16` (docs/design.md,
// "Register blocks are unrolled by pragma"); the generic tier's, which the compiler vectorizes
// over the lanes, are left to it (not measured on a CPU that runs that tier).
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <functional>
#include <string>
#include <type_traits>

#include "lowbit/config.hpp"
#include "lowbit/detail/target.hpp"
#include "lowbit/threads.hpp"
#include "lowbit/dispatch/cpu_features.hpp"
#include "lowbit/error.hpp"

#if LOWBIT_HAVE_X86_SIMD
#include <immintrin.h>
#endif

namespace lowbit {

enum class wide16_type { bf16, f16 };

inline const char* to_string(wide16_type t) noexcept { return t == wide16_type::bf16 ? "bf16" : "f16"; }

// A row-major [rows, cols] matrix of 16-bit floats somewhere in memory (a memory map).
struct Wide16View {
  const std::uint16_t* data = nullptr;
  std::int64_t rows = 0, cols = 0;
  wide16_type type = wide16_type::bf16;
};

namespace detail {

inline float wide16_bits_to_float(std::uint32_t bits) noexcept {
  float f;
  std::memcpy(&f, &bits, sizeof f);
  return f;
}

// IEEE binary16 -> binary32, exact, without branches on the value class (so loops over it
// vectorize): normals and specials by moving exponent and mantissa, subnormals by one exact
// float subtraction (mantissa * 2^-24 as (2^-14 + m * 2^-24) - 2^-14).
inline float wide16_f16_to_float(std::uint16_t h) noexcept {
  const std::uint32_t sign = static_cast<std::uint32_t>(h & 0x8000u) << 16;
  const std::uint32_t em = static_cast<std::uint32_t>(h & 0x7FFFu);
  const std::uint32_t exp = em & 0x7C00u;
  const std::uint32_t normal = (em << 13) + ((127u - 15u) << 23);
  const std::uint32_t special = (em << 13) | 0x7F800000u;  // Inf / NaN keep their payload
  const float sub = wide16_bits_to_float((em << 13) + (113u << 23)) - wide16_bits_to_float(113u << 23);
  std::uint32_t sub_bits;
  std::memcpy(&sub_bits, &sub, sizeof sub_bits);
  const std::uint32_t mag = exp == 0x7C00u ? special : exp == 0 ? sub_bits : normal;
  return wide16_bits_to_float(mag | sign);
}

inline float wide16_to_float(std::uint16_t v, wide16_type t) noexcept {
  return t == wide16_type::bf16 ? wide16_bits_to_float(static_cast<std::uint32_t>(v) << 16) : wide16_f16_to_float(v);
}

// Lanes of the accumulation: element k of a row is summed into lane k % 16 (both tiers).
constexpr int wide16_lanes = 16;
// Register block: rows of W x tokens of x sharing one pass over k. A block of fewer than 4
// tokens (decoding: one) is memory-bound, and there the rows a block reads at once are 4 KiB
// pages whose hardware streams start cold (see wide16_block_avx512): 2 rows read the 1B
// classifier at 0.88-0.97 x a plain sequential read on a Zen 5 core where 4 rows read at
// 0.78-0.87, and 62.7 against 55.0 GB/s on 2 threads (1 row, 8 rows and other prefetch
// distances were slower; docs/performance.md, session 37). Every element's sum is the same
// in any block, so the choice never changes a result.
constexpr int wide16_block_rows = 4, wide16_block_tokens = 4, wide16_stream_block_rows = 2;
// Rows of W per cache block: their 16-bit values stay in L1/L2 while every token block
// passes over them.
constexpr std::int64_t wide16_chunk_rows = 16;

// One register block of the generic tier: R rows (w + r * cols) x T tokens (x + t * x_stride).
template <wide16_type Type, int R, int T>
inline void wide16_block_generic(const std::uint16_t* w, std::int64_t cols, const float* x, std::int64_t x_stride,
                                 float* y, std::int64_t y_stride) {
  float acc[R][T][wide16_lanes] = {};
  std::int64_t k = 0;
  for (; k + wide16_lanes <= cols; k += wide16_lanes) {
    float wv[R][wide16_lanes];
    for (int r = 0; r < R; ++r)
      for (int j = 0; j < wide16_lanes; ++j) wv[r][j] = wide16_to_float(w[r * cols + k + j], Type);
    for (int t = 0; t < T; ++t)
      for (int r = 0; r < R; ++r)
        for (int j = 0; j < wide16_lanes; ++j) acc[r][t][j] += wv[r][j] * x[t * x_stride + k + j];
  }
  const int rest = static_cast<int>(cols - k);  // the tail sums into lanes 0 .. rest-1
  for (int r = 0; r < R; ++r)
    for (int t = 0; t < T; ++t)
      for (int j = 0; j < rest; ++j) acc[r][t][j] += wide16_to_float(w[r * cols + k + j], Type) * x[t * x_stride + k + j];
  // Lane reduction in a fixed tree: pairs 8 apart, then 4, 2, 1.
  for (int r = 0; r < R; ++r)
    for (int t = 0; t < T; ++t) {
      float* a = acc[r][t];
      for (int half = wide16_lanes / 2; half >= 1; half /= 2)
        for (int j = 0; j < half; ++j) a[j] += a[j + half];
      y[t * y_stride + r] = a[0];
    }
}

#if LOWBIT_HAVE_X86_SIMD
#pragma GCC diagnostic push
LOWBIT_IGNORE_GCC_MAYBE_UNINITIALIZED  // GCC bug 105593 inside the intrinsics

template <wide16_type Type>
LOWBIT_TARGET_AVX512 inline __m512 wide16_widen_avx512(__m256i v) {
  if constexpr (Type == wide16_type::bf16)
    return _mm512_castsi512_ps(_mm512_slli_epi32(_mm512_cvtepu16_epi32(v), 16));
  else
    return _mm512_cvtph_ps(v);
}

// `next`: the R rows the caller reads after these (the next register block; nullptr at the end
// of W). Their lines are prefetched into L2 one 64-byte line per row every other step, about
// R * cols * 2 bytes (8 KiB for the 1B classifier at one token) ahead: each row is about a
// 4 KiB page, so the hardware's streams, which stop at page boundaries, restart cold on every
// row; at one token
// this kernel is a pure DRAM read (the whole table per decoded token), and the prefetch keeps
// the next rows' misses in flight. `touch`: the R rows after those (nullptr near the end), one
// demand load each before the block starts (detail::touch_load): on AMD Zen 4 the prefetches
// alone left the 1-thread classifier at 0.71-0.87 x dram_read (prefetches into pages without a
// TLB entry are dropped there); with the loads 0.87-0.96 (docs/performance.md, session 25).
template <wide16_type Type, int R, int T>
LOWBIT_TARGET_AVX512 inline void wide16_block_avx512(const std::uint16_t* w, std::int64_t cols, const float* x,
                                                     std::int64_t x_stride, float* y, std::int64_t y_stride,
                                                     const std::uint16_t* next, const std::uint16_t* touch) {
  __m512 acc[R][T];
#pragma GCC unroll 16
  for (int r = 0; r < R; ++r)
#pragma GCC unroll 16
    for (int t = 0; t < T; ++t) acc[r][t] = _mm512_setzero_ps();
  if (touch != nullptr)
#pragma GCC unroll 16
    for (int r = 0; r < R; ++r) touch_load(touch + r * cols);
  std::int64_t k = 0;
  for (; k + wide16_lanes <= cols; k += wide16_lanes) {
    if (next != nullptr && (k & 31) == 0)
#pragma GCC unroll 16
      for (int r = 0; r < R; ++r) _mm_prefetch(reinterpret_cast<const char*>(next + r * cols + k), _MM_HINT_T1);
    __m512 wv[R];
#pragma GCC unroll 16
    for (int r = 0; r < R; ++r)
      wv[r] = wide16_widen_avx512<Type>(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(w + r * cols + k)));
#pragma GCC unroll 16
    for (int t = 0; t < T; ++t) {
      const __m512 xv = _mm512_loadu_ps(x + t * x_stride + k);
#pragma GCC unroll 16
      for (int r = 0; r < R; ++r) acc[r][t] = _mm512_fmadd_ps(wv[r], xv, acc[r][t]);
    }
  }
  if (k < cols) {  // masked tail: lanes 0 .. cols-k-1, the others add 0 * 0
    const __mmask16 m = static_cast<__mmask16>((1u << (cols - k)) - 1u);
    __m512 wv[R];
#pragma GCC unroll 16
    for (int r = 0; r < R; ++r) wv[r] = wide16_widen_avx512<Type>(_mm256_maskz_loadu_epi16(m, w + r * cols + k));
#pragma GCC unroll 16
    for (int t = 0; t < T; ++t) {
      const __m512 xv = _mm512_maskz_loadu_ps(m, x + t * x_stride + k);
#pragma GCC unroll 16
      for (int r = 0; r < R; ++r) acc[r][t] = _mm512_fmadd_ps(wv[r], xv, acc[r][t]);
    }
  }
#pragma GCC unroll 16
  for (int r = 0; r < R; ++r)
#pragma GCC unroll 16
    for (int t = 0; t < T; ++t) {
      // The generic tier's tree (lanes j + 8, then j + 4, 2, 1), in memory: GCC 12's
      // 512 -> 256-bit extracts warn (-Wuninitialized) inside its own headers.
      alignas(64) float a[wide16_lanes];
      _mm512_store_ps(a, acc[r][t]);
      for (int half = wide16_lanes / 2; half >= 1; half /= 2)
        for (int j = 0; j < half; ++j) a[j] += a[j + half];
      y[t * y_stride + r] = a[0];
    }
}
#pragma GCC diagnostic pop
#endif

// Rows [r0, r1) of W against every token, on one thread.
template <wide16_type Type, bool Avx512>
inline void wide16_rows(const Wide16View& w, ConstRowMatrixRef x, RowMatrixRef y, std::int64_t r0, std::int64_t r1) {
  const std::int64_t cols = w.cols, tokens = x.rows(), xs = x.outerStride(), ys = y.outerStride();
  const auto block = [&](auto rows_c, auto tokens_c, std::int64_t r, std::int64_t t) {
    constexpr int R = decltype(rows_c)::value, T = decltype(tokens_c)::value;
    const std::uint16_t* wp = w.data + r * cols;
    const float* xp = x.data() + t * xs;
    float* yp = y.data() + t * ys + r;
#if LOWBIT_HAVE_X86_SIMD
    if constexpr (Avx512) {
      const std::uint16_t* next = r + 2 * R <= w.rows ? wp + R * cols : nullptr;
      const std::uint16_t* touch = r + 3 * R <= w.rows ? wp + 2 * R * cols : nullptr;
      wide16_block_avx512<Type, R, T>(wp, cols, xp, xs, yp, ys, next, touch);
      return;
    }
#endif
    wide16_block_generic<Type, R, T>(wp, cols, xp, xs, yp, ys);
  };
  using R1 = std::integral_constant<int, 1>;
  for (std::int64_t c0 = r0; c0 < r1; c0 += wide16_chunk_rows) {
    const std::int64_t c1 = std::min(r1, c0 + wide16_chunk_rows);
    // Token blocks outside, row blocks inside: a token block's x rows stay in L1 while it
    // passes over the chunk's rows (a few KiB each, in L1/L2 after the first token block).
    std::int64_t t = 0;
    const auto rows_of = [&](auto tokens_c) {
      constexpr int R = decltype(tokens_c)::value == wide16_block_tokens ? wide16_block_rows : wide16_stream_block_rows;
      std::int64_t r = c0;
      for (; r + R <= c1; r += R) block(std::integral_constant<int, R>{}, tokens_c, r, t);
      for (; r < c1; ++r) block(R1{}, tokens_c, r, t);
    };
    for (; t + wide16_block_tokens <= tokens; t += wide16_block_tokens)
      rows_of(std::integral_constant<int, wide16_block_tokens>{});
    switch (tokens - t) {
      case 3: rows_of(std::integral_constant<int, 3>{}); break;
      case 2: rows_of(std::integral_constant<int, 2>{}); break;
      case 1: rows_of(std::integral_constant<int, 1>{}); break;
      default: break;
    }
  }
}

inline void wide16_check(const Wide16View& w, ConstRowMatrixRef x, RowMatrixRef y, const char* who) {
  if (w.data == nullptr && w.rows * w.cols != 0) fail(std::string(who) + ": no weights");
  if (x.cols() != w.cols || y.cols() != w.rows || y.rows() != x.rows())
    fail(std::string(who) + ": shape mismatch: x [" + std::to_string(x.rows()) + ", " + std::to_string(x.cols()) +
         "], W [" + std::to_string(w.rows) + ", " + std::to_string(w.cols) + "], y [" + std::to_string(y.rows()) +
         ", " + std::to_string(y.cols()) + "]");
}

}  // namespace detail

// The oracle: y[t][r] = sum_k x[t][k] * float(W[r][k]), summed in double, rounded once.
inline void wide16_gemm_reference(ConstRowMatrixRef x, const Wide16View& w, RowMatrixRef y) {
  detail::wide16_check(w, x, y, "wide16_gemm_reference");
  for (std::int64_t t = 0; t < x.rows(); ++t)
    for (std::int64_t r = 0; r < w.rows; ++r) {
      double s = 0.0;
      for (std::int64_t k = 0; k < w.cols; ++k)
        s += static_cast<double>(x(t, k)) * detail::wide16_to_float(w.data[r * w.cols + k], w.type);
      y(t, r) = static_cast<float>(s);
    }
}

// How far wide16_gemm may be from the reference for one output: fp32 summation of `cols`
// products in 16 lanes (each lane about cols/16 sequential adds, then 4 tree levels), with or
// without FMA contraction, bounded by a few units of rounding times the sum of |products|.
inline double wide16_tolerance(std::int64_t cols, double abs_sum) {
  const double adds = static_cast<double>(cols) / detail::wide16_lanes + 4.0 + 1.0;
  return 2.0 * adds * 0x1p-24 * abs_sum + 1e-30;
}

// Which tier wide16_gemm runs on this CPU (LOWBIT_ISA applies): avx512 or scalar (generic).
inline isa_tier wide16_tier() {
  return selected_isa_tier() == isa_tier::avx512 ? isa_tier::avx512 : isa_tier::scalar;
}

// wide16_gemm in two steps (SplitWork, lowbit/threads.hpp), for a caller that hands several
// products to the pool at once (model::forward_together): tasks of whole row chunks of W,
// which read x and write y when run (both must outlive the call). A class template (the alias
// below) so that the row functions are instantiated where a call is made ("Compile time" in
// docs/design.md). Deferred is never named.
template <class Deferred>
class BasicWide16Call final : public SplitWork {
 public:
  // `threads`: the count the tasks are sized for (0 = default_num_threads()); `tier` as below.
  BasicWide16Call(ConstRowMatrixRef x, const Wide16View& w, RowMatrixRef y, int threads, isa_tier tier)
      : x_(x), y_(y), w_(w) {
    detail::wide16_check(w, x, y, "wide16_gemm");
    if (x.rows() == 0 || w.rows == 0) return;
    bool avx512 = false;
#if LOWBIT_HAVE_X86_SIMD
    avx512 = tier == isa_tier::avx512 && detail::tier_supported(isa_tier::avx512, host_cpu_features());
#else
    (void)tier;
#endif
    if (w.type == wide16_type::bf16)
      rows_fn_ = avx512 ? &detail::wide16_rows<wide16_type::bf16, true> : &detail::wide16_rows<wide16_type::bf16, false>;
    else
      rows_fn_ = avx512 ? &detail::wide16_rows<wide16_type::f16, true> : &detail::wide16_rows<wide16_type::f16, false>;
    // Tasks of whole row chunks; a few per thread so uneven progress (another process on a
    // core) evens out. The split never changes a result (see the header comment).
    const int n = threads > 0 ? threads : default_num_threads();
    const std::int64_t chunks = (w.rows + detail::wide16_chunk_rows - 1) / detail::wide16_chunk_rows;
    // A small classifier (a few multiply-adds a task) runs in fewer tasks, or inline
    // (detail/threads.hpp).
    per_task_ = chunks;
    if (n > 1) {
      const std::int64_t max_tasks = detail::tasks_for_work(x.rows() * w.rows * w.cols, detail::min_task_macs, chunks, n);
      per_task_ = std::max({std::int64_t{1}, chunks / (8 * static_cast<std::int64_t>(n)), (chunks + max_tasks - 1) / max_tasks});
    }
    tasks_ = (chunks + per_task_ - 1) / per_task_;
  }
  std::int64_t tasks() const override { return tasks_; }
  void run(std::int64_t i) const override {
    const std::int64_t r0 = i * per_task_ * detail::wide16_chunk_rows;
    const std::int64_t r1 = std::min(w_.rows, r0 + per_task_ * detail::wide16_chunk_rows);
    RowMatrixRef y = y_;
    rows_fn_(w_, x_, y, r0, r1);
  }

 private:
  using rows_fn = void (*)(const Wide16View&, ConstRowMatrixRef, RowMatrixRef, std::int64_t, std::int64_t);
  ConstRowMatrixRef x_;
  RowMatrixRef y_;
  Wide16View w_;
  rows_fn rows_fn_ = nullptr;
  std::int64_t per_task_ = 1, tasks_ = 0;
};
using Wide16Call = BasicWide16Call<void>;

// y = x * W^T, rows of W split over `threads` threads of the pool (0 = default_num_threads()).
// `tier`: isa_tier::avx512 (where supported) or anything else for the generic path; tests
// pass each one.
template <class Deferred = void>  // see "Compile time" in docs/design.md
inline void wide16_gemm(ConstRowMatrixRef x, const Wide16View& w, RowMatrixRef y, int threads = 0,
                        isa_tier tier = wide16_tier()) {
  run_split_work(Wide16Call(x, w, y, threads, tier), threads);
}

// Whether every value of a 16-bit matrix is finite (exponent field not all ones).
inline bool wide16_all_finite(const Wide16View& w, std::int64_t* first_bad = nullptr) {
  const std::uint16_t mask = w.type == wide16_type::bf16 ? 0x7F80u : 0x7C00u;
  const std::int64_t n = w.rows * w.cols;
  // Blocks of 4096 reduced without a branch per value (vectorizes); the position is found
  // only once a block fails.
  for (std::int64_t b = 0; b < n; b += 4096) {
    const std::int64_t e = std::min(n, b + 4096);
    unsigned bad = 0;
    for (std::int64_t i = b; i < e; ++i) bad |= static_cast<unsigned>((w.data[i] & mask) == mask);
    if (bad) {
      for (std::int64_t i = b; i < e; ++i)
        if ((w.data[i] & mask) == mask) {
          if (first_bad) *first_bad = i;
          return false;
        }
    }
  }
  return true;
}

}  // namespace lowbit
