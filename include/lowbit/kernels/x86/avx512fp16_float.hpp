#pragma once
// AVX512-FP16 path of the AVX-512 tier (include through kernels/float_family.hpp; used only
// where host_cpu_features().avx512fp16, for more than 4 tokens):
//   - w4a8_fp4: activations are the E4M3 values / 2, exact in fp16;
//   - w4a16_int4 / w4a16_fp4 given fp16 or bf16 activations: x * 2^e(t) per token.
//
// Why fp16: every 4-bit weight value (E2M1, int4 -8..7, uint4 minus its zero point -15..15)
// is exact in fp16, and VFMADD231PH does 32 lanes per instruction, twice the fp32 rate of
// this core (fma_f16_peak vs fma_f32_peak in bench_float_kernels).
//
// Why k-row pairs: a decoded tile holds, per zmm, 16 columns j as the pairs
// (w(k, j), w(k + 1, j)) in lanes 2j and 2j + 1, so one 32-bit broadcast of
// (x(t, k), x(t, k + 1)) feeds it. VPBROADCASTD from memory runs on a load port alone; a
// 16-bit broadcast (VPBROADCASTW, or FMA's {1to32}) also takes a port-5 uop, the port the
// FMAs need: a 12-16 token register block ran at 160 vs 230 GFLOPS (one-off
// microbenchmark on this machine, recorded in docs/performance.md).
//
// Precision: each fp16 lane sums at most 32 products (a run of <= 64 k-rows inside one
// group); the run is then widened to fp32 and multiplied by the group scale into fp32
// accumulators that keep the two k parities apart until the block is stored. Bound (tested):
//   |y - y_ref| <= 2^-6 * s_a * sum_k |x(t, k) * w_hat(n, k)|       (31 roundings of <= 2^-11
//   of a lane's sum of |terms|, and the A16 inputs' own rounding, below), typically ~1e-3 RMS.
// Range: |x_half| < 128 (A16, by the choice of e(t)) and |w| <= 15 give |lane| <= 32 * 128 *
// 15 = 61440 < 65504; for w4a8_fp4, 32 * 224 * 6 = 43008. A16 inputs lose bits only where
// x * 2^e(t) is an fp16 subnormal, i.e. |x| < 2^-20 * max_k |x(t, k)|.
// Loops over a register block carry `#pragma GCC unroll 16` (docs/design.md, "Register blocks
// are unrolled by pragma").
#include "lowbit/detail/target.hpp"
#include "lowbit/kernels/float_layout.hpp"
#include "lowbit/kernels/x86/nibble_pairs.hpp"

#if LOWBIT_HAVE_X86_SIMD
#include <immintrin.h>

namespace lowbit::detail {

// 16 fp16 or bf16 values to fp32 (exact). AVX-512F alone: the AMX-BF16 tiles' activation
// split (x86/amx_float.hpp) reads 16-bit rows with it too.
LOWBIT_TARGET_AVX512 inline __m512 fp16_widen_16bit(__m256i h, bool bf16) {
  return bf16 ? _mm512_castsi512_ps(_mm512_slli_epi32(_mm512_cvtepu16_epi32(h), 16)) : _mm512_cvtph_ps(h);
}

}  // namespace lowbit::detail
#endif

#if LOWBIT_HAVE_X86_SIMD && LOWBIT_HAVE_AVX512FP16
#include <immintrin.h>

#include <cmath>
#include <limits>
#include <string>

#pragma GCC diagnostic push
LOWBIT_IGNORE_GCC_MAYBE_UNINITIALIZED

namespace lowbit::detail {

constexpr std::int64_t fp16_run_k = 64;  // k-rows per fp16 run: 32 products per lane
constexpr std::int64_t fp16_pair_halves = 2 * float_block_cols;  // fp16 values per k-row pair

// Lane indices that duplicate each of the first 16 (then the next 16) 16-bit values.
struct fp16_pair_indices {
  std::uint16_t dup_lo[32], dup_hi[32];
};
inline const fp16_pair_indices& fp16_pair_index_table() noexcept {
  static const fp16_pair_indices t = [] {
    fp16_pair_indices r{};
    for (int i = 0; i < 32; ++i) {
      r.dup_lo[i] = static_cast<std::uint16_t>(i >> 1);
      r.dup_hi[i] = static_cast<std::uint16_t>(16 + (i >> 1));
    }
    return r;
  }();
  return t;
}

// k-rows [k0, k0 + kc) of block b decoded to fp16 code values (minus the zero point) in pair
// layout: dst[p * 64 + 2j + h] = w(k0 + 2p + h, j) and dst[p * 64 + 32 + 2j + h] =
// w(k0 + 2p + h, 16 + j), j < 16, h in {0, 1}. k0 is even; an odd last row pairs with zeros.
template <float_code C>
LOWBIT_TARGET_AVX512_FP16 void fp16_pair_decode_rows(const float_packed& w, std::int64_t b,
                                                     std::int64_t k0, std::int64_t kc,
                                                     std::uint16_t* dst) {
  static_assert(float_code_is_4bit(C), "the fp16 path decodes 4-bit codes only");
  const std::uint8_t* codes = w.block_codes(b);
  const float* zeros = w.block_zeros(b);
  const __m512i lut = _mm512_loadu_si512(fp16_decode_tables().nibbles(C));
  __m512h z0 = _mm512_setzero_ph(), z1 = _mm512_setzero_ph();
  std::int64_t zero_group = -1;
  for (std::int64_t kk = 0; kk < kc; kk += 4) {  // two k-row pairs a step
    const std::int64_t rows = std::min<std::int64_t>(4, kc - kk);
    __m512i pairs[2];
    nibble_row_pairs(codes + (k0 + kk) * w.krow_bytes, rows, pairs[0], pairs[1]);
    for (std::int64_t h = 0; h < 2 && 2 * h < rows; ++h) {
      const std::int64_t k = k0 + kk + 2 * h;
      __m512i w0 = _mm512_permutexvar_epi16(pairs[h], lut);  // VPERMW reads 5 index bits: lut repeats
      __m512i w1 = _mm512_permutexvar_epi16(_mm512_srli_epi16(pairs[h], 4), lut);
      if constexpr (C == float_code::uint4_with_zero) {
        const std::int64_t g = k / w.group_size;  // both rows lie in group g (even group size)
        if (g != zero_group) {
          zero_group = g;
          const __m256i zl = _mm512_cvtps_ph(_mm512_loadu_ps(zeros + g * float_block_cols), _MM_FROUND_TO_NEAREST_INT);
          const __m256i zh = _mm512_cvtps_ph(_mm512_loadu_ps(zeros + g * float_block_cols + 16), _MM_FROUND_TO_NEAREST_INT);
          const __m512i z = _mm512_inserti64x4(_mm512_castsi256_si512(zl), zh, 1);
          const fp16_pair_indices& ix = fp16_pair_index_table();
          z0 = _mm512_castsi512_ph(_mm512_permutexvar_epi16(_mm512_loadu_si512(ix.dup_lo), z));
          z1 = _mm512_castsi512_ph(_mm512_permutexvar_epi16(_mm512_loadu_si512(ix.dup_hi), z));
        }
        w0 = _mm512_castph_si512(_mm512_sub_ph(_mm512_castsi512_ph(w0), z0));  // exact: -15..15
        w1 = _mm512_castph_si512(_mm512_sub_ph(_mm512_castsi512_ph(w1), z1));
      } else {
        (void)zeros;
      }
      if (2 * h + 1 == rows) {  // an odd last row pairs with zeros
        w0 = _mm512_maskz_mov_epi16(0x55555555u, w0);
        w1 = _mm512_maskz_mov_epi16(0x55555555u, w1);
      }
      std::uint16_t* out = dst + ((kk + 2 * h) / 2) * fp16_pair_halves;
      _mm512_storeu_si512(out, w0);
      _mm512_storeu_si512(out + float_block_cols, w1);
    }
  }
}

// TB tokens x 32 columns over k-rows [k0, k0 + kc) (k0 even): fp16 runs, each widened and
// scaled (group scale * factor) into acc, fp32 [TB][64] with acc[t * 64 + 2j + h] the sum
// over k-rows of parity h for column j (overwritten when `first`).
template <int TB>
LOWBIT_TARGET_AVX512_FP16 void fp16_pair_accumulate_tile(const std::uint16_t* x, std::int64_t xs,
                                                         const std::uint16_t* tile, std::int64_t k0,
                                                         std::int64_t kc, std::int64_t group_size,
                                                         const float* scales, float factor, float* acc,
                                                         bool first) {
  if (first)
#pragma GCC unroll 16
    for (int t = 0; t < TB; ++t) std::fill(acc + t * fp16_pair_halves, acc + (t + 1) * fp16_pair_halves, 0.0f);
  // fp32 lane i of a widened half covers column i / 2 (+ 8 for the upper half).
  const __m512i dup0 = _mm512_srli_epi32(_mm512_set_epi32(15, 14, 13, 12, 11, 10, 9, 8, 7, 6, 5, 4, 3, 2, 1, 0), 1);
  const __m512i dup1 = _mm512_add_epi32(dup0, _mm512_set1_epi32(8));
  std::int64_t k = k0;
  const std::int64_t k_end = k0 + kc;
  while (k < k_end) {
    const std::int64_t g = k / group_size;
    const std::int64_t run_end = std::min({k_end, (g + 1) * group_size, k + fp16_run_k});
    __m512h c0[TB], c1[TB];
#pragma GCC unroll 16
    for (int t = 0; t < TB; ++t) c0[t] = c1[t] = _mm512_setzero_ph();
    for (; k < run_end; k += 2) {
      const std::uint16_t* wp = tile + ((k - k0) / 2) * fp16_pair_halves;
      const __m512h w0 = _mm512_castsi512_ph(_mm512_loadu_si512(wp));
      const __m512h w1 = _mm512_castsi512_ph(_mm512_loadu_si512(wp + float_block_cols));
#pragma GCC unroll 16
      for (int t = 0; t < TB; ++t) {
        std::int32_t pair;  // x(t, k) and x(t, k + 1); the row's zero padding covers k + 1 = K
        std::memcpy(&pair, x + t * xs + k, 4);
        const __m512h xb = _mm512_castsi512_ph(_mm512_set1_epi32(pair));
        c0[t] = _mm512_fmadd_ph(xb, w0, c0[t]);
        c1[t] = _mm512_fmadd_ph(xb, w1, c1[t]);
      }
    }
    const __m512 f = _mm512_set1_ps(factor);
    const __m512 s_lo = _mm512_mul_ps(_mm512_loadu_ps(scales + g * float_block_cols), f);
    const __m512 s_hi = _mm512_mul_ps(_mm512_loadu_ps(scales + g * float_block_cols + 16), f);
    const __m512 s0 = _mm512_permutexvar_ps(dup0, s_lo), s1 = _mm512_permutexvar_ps(dup1, s_lo);
    const __m512 s2 = _mm512_permutexvar_ps(dup0, s_hi), s3 = _mm512_permutexvar_ps(dup1, s_hi);
#pragma GCC unroll 16
    for (int t = 0; t < TB; ++t) {
      const __m512i b0 = _mm512_castph_si512(c0[t]), b1 = _mm512_castph_si512(c1[t]);
      float* a = acc + t * fp16_pair_halves;
      _mm512_storeu_ps(a, _mm512_fmadd_ps(_mm512_cvtph_ps(_mm512_castsi512_si256(b0)), s0, _mm512_loadu_ps(a)));
      _mm512_storeu_ps(a + 16, _mm512_fmadd_ps(_mm512_cvtph_ps(_mm512_extracti64x4_epi64(b0, 1)), s1,
                                               _mm512_loadu_ps(a + 16)));
      _mm512_storeu_ps(a + 32, _mm512_fmadd_ps(_mm512_cvtph_ps(_mm512_castsi512_si256(b1)), s2,
                                               _mm512_loadu_ps(a + 32)));
      _mm512_storeu_ps(a + 48, _mm512_fmadd_ps(_mm512_cvtph_ps(_mm512_extracti64x4_epi64(b1, 1)), s3,
                                               _mm512_loadu_ps(a + 48)));
    }
  }
}

// Register blocks of 12 tokens (24 accumulators, two weight registers, one broadcast), then
// one block for the remainder.
template <class Deferred = void>  // see "Compile time" in docs/design.md
inline void fp16_pair_accumulate(const std::uint16_t* x, std::int64_t xs, std::int64_t tokens,
                                 const std::uint16_t* tile, std::int64_t k0, std::int64_t kc,
                                 std::int64_t group_size, const float* scales, float factor, float* acc,
                                 bool first) {
  constexpr int tb = 12;
  std::int64_t t = 0;
  for (; t + tb <= tokens; t += tb)
    fp16_pair_accumulate_tile<tb>(x + t * xs, xs, tile, k0, kc, group_size, scales, factor,
                                  acc + t * fp16_pair_halves, first);
  const std::uint16_t* xr = x + t * xs;
  float* ar = acc + t * fp16_pair_halves;
  auto tail = [&](auto tb_tag) {
    fp16_pair_accumulate_tile<decltype(tb_tag)::value>(xr, xs, tile, k0, kc, group_size, scales, factor, ar, first);
  };
  switch (tokens - t) {
    case 0: break;
    case 1: tail(std::integral_constant<int, 1>{}); break;
    case 2: tail(std::integral_constant<int, 2>{}); break;
    case 3: tail(std::integral_constant<int, 3>{}); break;
    case 4: tail(std::integral_constant<int, 4>{}); break;
    case 5: tail(std::integral_constant<int, 5>{}); break;
    case 6: tail(std::integral_constant<int, 6>{}); break;
    case 7: tail(std::integral_constant<int, 7>{}); break;
    case 8: tail(std::integral_constant<int, 8>{}); break;
    case 9: tail(std::integral_constant<int, 9>{}); break;
    case 10: tail(std::integral_constant<int, 10>{}); break;
    default: tail(std::integral_constant<int, 11>{}); break;
  }
}

// y(t, n0 + j) = (acc[t][2j] + acc[t][2j + 1]) * token scale, for the columns in
// [n_begin, n_end).
inline void fp16_store_block(const float_workspace& ws, const float* acc, std::int64_t n0,
                             std::int64_t n_begin, std::int64_t n_end, RowMatrixRef y) noexcept {
  const std::int64_t j0 = std::max<std::int64_t>(n_begin - n0, 0);
  const std::int64_t j1 = std::min<std::int64_t>(n_end - n0, float_block_cols);
  for (std::int64_t t = 0; t < ws.tokens; ++t) {
    const float s = ws.token_scales[static_cast<std::size_t>(t)];
    const float* a = acc + t * fp16_pair_halves;
    float* yrow = y.data() + t * y.outerStride() + n0;
    for (std::int64_t j = j0; j < j1; ++j) yrow[j] = (a[2 * j] + a[2 * j + 1]) * s;
  }
}

template <class Deferred = void>  // see "Compile time" in docs/design.md
inline void run_float_avx512fp16(const float_packed& w, const float_workspace& ws, RowMatrixRef y,
                                 std::int64_t n_begin, std::int64_t n_end) {
  if (ws.x_half.size() != static_cast<std::size_t>(ws.tokens * ws.x_stride))
    fail("gemm: workspace lacks the fp16 activations of the AVX512-FP16 path");
  void (*decode)(const float_packed&, std::int64_t, std::int64_t, std::int64_t, std::uint16_t*) = nullptr;
  switch (w.code) {
    case float_code::e2m1: decode = fp16_pair_decode_rows<float_code::e2m1>; break;
    case float_code::int4_signed: decode = fp16_pair_decode_rows<float_code::int4_signed>; break;
    case float_code::uint4_with_zero: decode = fp16_pair_decode_rows<float_code::uint4_with_zero>; break;
    case float_code::e4m3:
    case float_code::int8_signed: fail("gemm: the AVX512-FP16 path runs 4-bit weights only");
    case float_code::uint4_with_offset:  // float_uses_fp16_path keeps them off this path
      fail("gemm: the AVX512-FP16 path does not run float-offset groups");
  }
  if (w.groups > 1 && w.group_size % 2 != 0)
    fail("gemm: the AVX512-FP16 path needs an even group size (k-row pairs)");
  thread_local std::vector<float> acc_buf;
  thread_local std::vector<std::uint16_t> tile_buf;
  const std::int64_t tokens = ws.tokens, k_in = w.cols;
  float* acc = float_scratch(acc_buf, static_cast<std::size_t>(tokens * fp16_pair_halves));
  if (tile_buf.size() < static_cast<std::size_t>(float_chunk_k * float_block_cols))
    tile_buf.resize(static_cast<std::size_t>(float_chunk_k * float_block_cols));
  const std::int64_t b_end = (n_end + float_block_cols - 1) / float_block_cols;
  for (std::int64_t b = n_begin / float_block_cols; b < b_end; ++b) {
    for (std::int64_t k0 = 0; k0 < k_in; k0 += float_chunk_k) {  // float_chunk_k is even
      const std::int64_t kc = std::min(float_chunk_k, k_in - k0);
      decode(w, b, k0, kc, tile_buf.data());
      fp16_pair_accumulate(ws.x_half.data(), ws.x_stride, tokens, tile_buf.data(), k0, kc, w.group_size,
                           w.block_scales(b), ws.half_factor, acc, k0 == 0);
    }
    fp16_store_block(ws, acc, b * float_block_cols, n_begin, n_end, y);
  }
}

// The A16 activations of this path: for each token, e(t) with max_k |x(t, k)| * 2^e(t) in
// [64, 128), x_half = fp16(x * 2^e(t)) (VSCALEFPS: exact until the fp16 conversion, which
// rounds only subnormals), token scale 2^-e(t). `bits` holds fp16 or bf16 values, row stride
// `stride` elements. A non-finite value is an error naming its token and column.
LOWBIT_TARGET_AVX512_FP16 inline void fp16_prepare_scaled_rows(const std::uint16_t* bits, std::int64_t stride,
                                                               activation_dtype dt, float_workspace& ws,
                                                               std::int64_t t0, std::int64_t t1) {
  const std::int64_t k_in = ws.cols;
  const bool bf16 = dt == activation_dtype::bf16;
  const __m512 inf = _mm512_set1_ps(std::numeric_limits<float>::infinity());
  for (std::int64_t t = t0; t < t1; ++t) {
    const std::uint16_t* row = bits + t * stride;
    __m512 vmax = _mm512_setzero_ps();
    __mmask16 bad = 0;
    for (std::int64_t k = 0; k < k_in; k += 16) {
      const __mmask16 m = k + 16 <= k_in ? __mmask16(0xFFFF) : __mmask16((1u << (k_in - k)) - 1);
      const __m512 a = _mm512_abs_ps(fp16_widen_16bit(_mm256_maskz_loadu_epi16(m, row + k), bf16));
      bad |= _mm512_cmp_ps_mask(a, inf, _CMP_NLT_UQ);  // Inf or NaN
      vmax = _mm512_max_ps(vmax, a);
    }
    if (bad) {
      for (std::int64_t k = 0; k < k_in; ++k) {
        const std::uint16_t v = row[k];
        if (bf16 ? (v & 0x7F80u) == 0x7F80u : (v & 0x7C00u) == 0x7C00u)
          fail("activations: non-finite value at token " + std::to_string(t) + ", column " + std::to_string(k));
      }
    }
    const float amax = _mm512_reduce_max_ps(vmax);
    int e = 0;
    if (amax > 0.0f) {
      int ex = 0;
      (void)std::frexp(amax, &ex);  // amax = m * 2^ex, m in [0.5, 1)
      e = 7 - ex;                   // amax * 2^e in [64, 128); e <= 7 + 133 (bf16 subnormals)
    }
    ws.token_scales[static_cast<std::size_t>(t)] = std::ldexp(1.0f, -e);
    const __m512 ev = _mm512_set1_ps(static_cast<float>(e));
    std::uint16_t* out = ws.x_half.data() + t * ws.x_stride;
    for (std::int64_t k = 0; k < k_in; k += 16) {
      const __mmask16 m = k + 16 <= k_in ? __mmask16(0xFFFF) : __mmask16((1u << (k_in - k)) - 1);
      const __m512 v = _mm512_scalef_ps(fp16_widen_16bit(_mm256_maskz_loadu_epi16(m, row + k), bf16), ev);
      _mm256_mask_storeu_epi16(out + k, m, _mm512_cvtps_ph(v, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC));
    }
  }
}

}  // namespace lowbit::detail

#pragma GCC diagnostic pop

#elif LOWBIT_HAVE_X86_SIMD
namespace lowbit::detail {

// A compiler without AVX512-FP16 intrinsics (LOWBIT_HAVE_AVX512FP16, detail/target.hpp):
// float_uses_fp16_path is false there, so nothing reaches these.
template <class Deferred = void>
inline void run_float_avx512fp16(const float_packed&, const float_workspace&, RowMatrixRef, std::int64_t,
                                 std::int64_t) {
  fail("gemm: the AVX512-FP16 path is not compiled in (the compiler has no AVX512-FP16 intrinsics)");
}
template <class Deferred = void>
inline void fp16_prepare_scaled_rows(const std::uint16_t*, std::int64_t, activation_dtype, float_workspace&,
                                     std::int64_t, std::int64_t) {
  fail("gemm: the AVX512-FP16 path is not compiled in (the compiler has no AVX512-FP16 intrinsics)");
}

}  // namespace lowbit::detail
#endif  // LOWBIT_HAVE_X86_SIMD
