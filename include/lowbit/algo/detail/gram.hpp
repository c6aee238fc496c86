#pragma once
// The calibration Gram product: C += X^T X on the lower triangle, for GPTQ's Hessian.
//
// Why not Eigen's product: the library is compiled without -m flags (one binary, every tier
// chosen at run time), so Eigen runs its SSE2 path single-threaded, about 5 GFLOPS on the
// tall-skinny X^T X of a calibration sample (56–512 tokens × 2048–8192 channels). That product
// was most of a 1B-shape layer's calibration time (53 of 89 s). Here it runs on the lowbit pool
// with per-function AVX-512 or AVX2 code.
//
// The order of operations is defined, so every tier and every thread count give the same bits:
// for each element i >= j, s = fma(x[r][i], x[r][j], s) over r = 0..t-1 from s = 0, then
// C(i, j) += s. Each call adds one whole per-batch product, which is what keeps
// ActivationStats::merge() exact. The strict upper triangle is not written (some elements
// near the diagonal may be, with the same value as their mirror); the caller mirrors it.
#include <algorithm>
#include <cmath>
#include <cstdint>

#include "lowbit/detail/target.hpp"
#include "lowbit/threads.hpp"
#include "lowbit/dispatch/cpu_features.hpp"

#if LOWBIT_HAVE_X86_SIMD
#include <immintrin.h>
#endif

namespace lowbit::detail {

// x: t rows of n floats, row r at x + r * ld. c: column-major n x n (c(i, j) at c[j * n + i]).
// Columns [j0, j1) of the lower triangle.
inline void gram_lower_scalar(const float* x, std::int64_t ld, std::int64_t t, std::int64_t n, float* c,
                              std::int64_t j0, std::int64_t j1) {
  for (std::int64_t j = j0; j < j1; ++j)
    for (std::int64_t i = j; i < n; ++i) {
      float s = 0.0f;
      for (std::int64_t r = 0; r < t; ++r) s = std::fma(x[r * ld + i], x[r * ld + j], s);
      c[j * n + i] += s;
    }
}

#if LOWBIT_HAVE_X86_SIMD
// Tile: 32 consecutive i (two zmm) by up to 6 columns j, 12 accumulators.
LOWBIT_TARGET_AVX512 inline void gram_lower_avx512(const float* x, std::int64_t ld, std::int64_t t,
                                                   std::int64_t n, float* c, std::int64_t j0, std::int64_t j1) {
  constexpr int J = 6;
  for (std::int64_t jb = j0; jb < j1; jb += J) {
    const int nj = static_cast<int>(std::min<std::int64_t>(J, j1 - jb));
    for (std::int64_t i = jb; i < n; i += 32) {
      const std::int64_t left = n - i;
      const __mmask16 m0 = left >= 16 ? __mmask16(0xFFFF) : __mmask16((1u << left) - 1u);
      const __mmask16 m1 =
          left >= 32 ? __mmask16(0xFFFF) : (left <= 16 ? __mmask16(0) : __mmask16((1u << (left - 16)) - 1u));
      __m512 a0[J], a1[J];
      for (int q = 0; q < J; ++q) a0[q] = a1[q] = _mm512_setzero_ps();
      for (std::int64_t r = 0; r < t; ++r) {
        const float* row = x + r * ld;
        const __m512 v0 = _mm512_maskz_loadu_ps(m0, row + i);
        const __m512 v1 = _mm512_maskz_loadu_ps(m1, row + i + 16);
        for (int q = 0; q < J; ++q) {
          if (q < nj) {
            const __m512 b = _mm512_set1_ps(row[jb + q]);
            a0[q] = _mm512_fmadd_ps(v0, b, a0[q]);
            a1[q] = _mm512_fmadd_ps(v1, b, a1[q]);
          }
        }
      }
      for (int q = 0; q < nj; ++q) {
        float* col = c + (jb + q) * n + i;
        _mm512_mask_storeu_ps(col, m0, _mm512_add_ps(_mm512_maskz_loadu_ps(m0, col), a0[q]));
        _mm512_mask_storeu_ps(col + 16, m1, _mm512_add_ps(_mm512_maskz_loadu_ps(m1, col + 16), a1[q]));
      }
    }
  }
}

// Tile: 16 consecutive i (two ymm) by up to 6 columns j. The tail of i runs scalar with the
// same order of operations.
LOWBIT_TARGET_AVX2 inline void gram_lower_avx2(const float* x, std::int64_t ld, std::int64_t t,
                                               std::int64_t n, float* c, std::int64_t j0, std::int64_t j1) {
  constexpr int J = 6;
  for (std::int64_t jb = j0; jb < j1; jb += J) {
    const int nj = static_cast<int>(std::min<std::int64_t>(J, j1 - jb));
    std::int64_t i = jb;
    for (; i + 16 <= n; i += 16) {
      __m256 a0[J], a1[J];
      for (int q = 0; q < J; ++q) a0[q] = a1[q] = _mm256_setzero_ps();
      for (std::int64_t r = 0; r < t; ++r) {
        const float* row = x + r * ld;
        const __m256 v0 = _mm256_loadu_ps(row + i);
        const __m256 v1 = _mm256_loadu_ps(row + i + 8);
        for (int q = 0; q < J; ++q) {
          if (q < nj) {
            const __m256 b = _mm256_broadcast_ss(row + jb + q);
            a0[q] = _mm256_fmadd_ps(v0, b, a0[q]);
            a1[q] = _mm256_fmadd_ps(v1, b, a1[q]);
          }
        }
      }
      for (int q = 0; q < nj; ++q) {
        float* col = c + (jb + q) * n + i;
        _mm256_storeu_ps(col, _mm256_add_ps(_mm256_loadu_ps(col), a0[q]));
        _mm256_storeu_ps(col + 8, _mm256_add_ps(_mm256_loadu_ps(col + 8), a1[q]));
      }
    }
    for (int q = 0; q < nj; ++q) {
      const std::int64_t j = jb + q;
      for (std::int64_t ii = std::max(i, j); ii < n; ++ii) {
        float s = 0.0f;
        for (std::int64_t r = 0; r < t; ++r) s = std::fma(x[r * ld + ii], x[r * ld + j], s);
        c[j * n + ii] += s;
      }
    }
  }
}
#endif

// C(i, j) += sum_r x[r][i] x[r][j] for i >= j, in the order defined above. `tier` picks the
// code (the tests force each one); threads 0 = default_num_threads().
inline void gram_lower_accumulate(const float* x, std::int64_t ld, std::int64_t t, std::int64_t n, float* c,
                                  isa_tier tier, int threads = 0) {
  if (t <= 0 || n <= 0) return;
  // Column chunks of 48 (a multiple of every tile width); their cost falls with j (a
  // triangle), so there are many more chunks than threads and the pool hands them out in order.
  constexpr std::int64_t chunk = 48;
  const std::int64_t tasks = (n + chunk - 1) / chunk;
  // Small products are not worth waking the pool for.
  const int nthreads = t * n * n < (std::int64_t(1) << 22) ? 1 : threads;
  parallel_for(tasks, nthreads, executor{}, [&](std::int64_t task) {
    const std::int64_t j0 = task * chunk, j1 = std::min(n, j0 + chunk);
#if LOWBIT_HAVE_X86_SIMD
    if (tier == isa_tier::avx512) return gram_lower_avx512(x, ld, t, n, c, j0, j1);
    if (tier == isa_tier::avx2) return gram_lower_avx2(x, ld, t, n, c, j0, j1);
#else
    (void)tier;  // only the scalar code exists on this architecture
#endif
    gram_lower_scalar(x, ld, t, n, c, j0, j1);
  });
}

// Copies the lower triangle of the column-major n x n matrix c onto its upper triangle, in
// cache-sized square blocks.
inline void mirror_lower_to_upper(float* c, std::int64_t n) {
  constexpr std::int64_t b = 64;
  for (std::int64_t jb = 0; jb < n; jb += b)
    for (std::int64_t ib = 0; ib <= jb; ib += b)  // upper blocks: rows ib, columns jb (ib <= jb)
      for (std::int64_t j = jb; j < std::min(n, jb + b); ++j)
        for (std::int64_t i = ib; i < std::min({n, ib + b, j}); ++i) c[j * n + i] = c[i * n + j];
}

}  // namespace lowbit::detail
