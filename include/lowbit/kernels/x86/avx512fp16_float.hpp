#pragma once
// AVX512-FP16 path of the AVX-512 tier for w4a8_fp4 with more than a few tokens (include
// through kernels/float_family.hpp; used only where host_cpu_features().avx512fp16).
//
// Why: E2M1 and E4M3 values are exact in fp16 and so is their product (at most 6
// significant bits), and VFMADD231PH does 32 lanes per instruction, twice the fp32 rate
// (measured here: fma_f16_peak vs fma_f32_peak in bench_float_kernels). Summing in fp16 loses
// precision, so the fp16 accumulators only ever hold a run of at most 32 products of one
// group; each run is then widened to fp32 and added, times the group scale, into fp32
// accumulators. Activations are stored as value/2 so that a run cannot overflow fp16:
// |run| <= 32 * 224 * 6 = 43008 < 65504, and the smallest product 2^-11 stays normal.
//
// Tolerance of this path (tested): the fp16 rounding of each run is at most 31 * 2^-11 of
// the run's sum of |terms|, so |y - y_ref| <= 2^-6 * s_a * sum_k |xq * w_hat| (a bound);
// typically it is far smaller (the tests also check the relative RMS error <= 2e-3).
#include "lowbit/detail/target.hpp"
#include "lowbit/kernels/float_layout.hpp"

#if LOWBIT_HAVE_X86_SIMD
#include <immintrin.h>

#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"

namespace lowbit::detail {

constexpr std::int64_t fp16_run_k = 32;  // products summed in fp16 before widening

// k-rows [k0, k0 + kc) of block b as raw fp16 E2M1 values, 32 per row.
LOWBIT_TARGET_AVX512_FP16 inline void fp16_decode_rows(const float_packed& w, std::int64_t b,
                                                       std::int64_t k0, std::int64_t kc,
                                                       std::uint16_t* dst) {
  const std::uint8_t* codes = w.block_codes(b);
  const __m512i lut = _mm512_loadu_si512(fp16_decode_tables().e2m1);
  for (std::int64_t kk = 0; kk < kc; ++kk) {
    const __m256i v = _mm256_cvtepu8_epi16(
        _mm_loadu_si128(reinterpret_cast<const __m128i*>(codes + (k0 + kk) * w.krow_bytes)));
    const __m512i idx = _mm512_inserti64x4(_mm512_castsi256_si512(v), _mm256_srli_epi16(v, 4), 1);
    _mm512_storeu_si512(dst + kk * float_block_cols, _mm512_permutexvar_epi16(idx, lut));
  }
}

// TB tokens x 32 columns: runs of <= 32 k-rows (inside one group) in fp16, widened and
// scaled into acc (fp32, [TB][32], overwritten when `first`).
template <int TB>
LOWBIT_TARGET_AVX512_FP16 void fp16_accumulate_tile(const std::uint16_t* x, std::int64_t xs,
                                                    const std::uint16_t* tile, std::int64_t k0,
                                                    std::int64_t kc, const float_packed& w,
                                                    const float* scales, float* acc, bool first) {
  if (first)
    for (int t = 0; t < TB; ++t) std::fill(acc + t * float_block_cols, acc + (t + 1) * float_block_cols, 0.0f);
  std::int64_t k = k0;
  const std::int64_t k_end = k0 + kc;
  while (k < k_end) {
    const std::int64_t g = k / w.group_size;
    const std::int64_t run_end = std::min({k_end, (g + 1) * w.group_size, k + fp16_run_k});
    __m512h c[TB];
#pragma GCC unroll 16
    for (int t = 0; t < TB; ++t) c[t] = _mm512_setzero_ph();
    for (; k < run_end; ++k) {
      const __m512h wv = _mm512_castsi512_ph(_mm512_loadu_si512(tile + (k - k0) * float_block_cols));
#pragma GCC unroll 16
      for (int t = 0; t < TB; ++t) {
        _Float16 xv;
        std::memcpy(&xv, x + t * xs + k, 2);
        c[t] = _mm512_fmadd_ph(_mm512_set1_ph(xv), wv, c[t]);
      }
    }
    // x was halved: the group scale is doubled (exact).
    const __m512 s0 = _mm512_mul_ps(_mm512_loadu_ps(scales + g * float_block_cols), _mm512_set1_ps(2.0f));
    const __m512 s1 = _mm512_mul_ps(_mm512_loadu_ps(scales + g * float_block_cols + 16), _mm512_set1_ps(2.0f));
#pragma GCC unroll 16
    for (int t = 0; t < TB; ++t) {
      const __m512i bits = _mm512_castph_si512(c[t]);
      const __m512 lo = _mm512_cvtph_ps(_mm512_castsi512_si256(bits));
      const __m512 hi = _mm512_cvtph_ps(_mm512_extracti64x4_epi64(bits, 1));
      float* a = acc + t * float_block_cols;
      _mm512_storeu_ps(a, _mm512_fmadd_ps(lo, s0, _mm512_loadu_ps(a)));
      _mm512_storeu_ps(a + 16, _mm512_fmadd_ps(hi, s1, _mm512_loadu_ps(a + 16)));
    }
  }
}

inline void fp16_accumulate(const std::uint16_t* x, std::int64_t xs, std::int64_t tokens,
                            const std::uint16_t* tile, std::int64_t k0, std::int64_t kc,
                            const float_packed& w, const float* scales, float* acc, bool first) {
  std::int64_t t = 0;
  auto step = [&](auto tb_tag) {
    constexpr int tb = decltype(tb_tag)::value;
    for (; t + tb <= tokens; t += tb)
      fp16_accumulate_tile<tb>(x + t * xs, xs, tile, k0, kc, w, scales, acc + t * float_block_cols, first);
  };
  step(std::integral_constant<int, 16>{});
  step(std::integral_constant<int, 8>{});
  step(std::integral_constant<int, 4>{});
  step(std::integral_constant<int, 2>{});
  step(std::integral_constant<int, 1>{});
}

inline void run_float_avx512fp16(const float_packed& w, const float_workspace& ws, RowMatrixRef y,
                                 std::int64_t n_begin, std::int64_t n_end) {
  if (ws.x_half.size() != ws.x.size())
    fail("gemm: workspace lacks the fp16 activations of the AVX512-FP16 path");
  thread_local std::vector<float> acc_buf;
  thread_local std::vector<std::uint16_t> tile_buf;
  const std::int64_t tokens = ws.tokens, k_in = w.cols;
  float* acc = float_scratch(acc_buf, static_cast<std::size_t>(tokens * float_block_cols));
  if (tile_buf.size() < static_cast<std::size_t>(float_chunk_k * float_block_cols))
    tile_buf.resize(static_cast<std::size_t>(float_chunk_k * float_block_cols));
  const std::int64_t b_end = (n_end + float_block_cols - 1) / float_block_cols;
  for (std::int64_t b = n_begin / float_block_cols; b < b_end; ++b) {
    for (std::int64_t k0 = 0; k0 < k_in; k0 += float_chunk_k) {
      const std::int64_t kc = std::min(float_chunk_k, k_in - k0);
      fp16_decode_rows(w, b, k0, kc, tile_buf.data());
      fp16_accumulate(ws.x_half.data(), ws.x_stride, tokens, tile_buf.data(), k0, kc, w, w.block_scales(b),
                      acc, k0 == 0);
    }
    store_float_block(ws, acc, b * float_block_cols, n_begin, n_end, y);
  }
}

}  // namespace lowbit::detail

#pragma GCC diagnostic pop

#endif  // LOWBIT_HAVE_X86_SIMD
