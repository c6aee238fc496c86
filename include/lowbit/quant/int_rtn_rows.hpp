#pragma once
// Row kernels for the most common weight schemes: symmetric int4 / int8, real fp32 scales
// S = amax / qmax, per-channel or per-group, round to nearest, no clipping search (INT4 g128
// RTN, W8 per-channel). Per group: one pass for amax (which also catches NaN/Inf: their
// absolute bit patterns are the largest), one pass to scale, round, clamp and pack.
//
// Each tier writes exactly the bytes and scales of quantize_rows_generic (the same fp32
// operations: S = amax / qmax, inv = 1 / S, code = clamp(nearbyint(x * inv))); tests compare
// every tier with it. The scale takes the range edges of scale_rules.hpp (capped near
// FLT_MAX, flushed to 0 when 1 / S overflows) through the same bounded_f32_scale. A NaN/Inf sends the group back to the scalar scan, which names it.
#include <cstdint>
#include <cstring>

#include "lowbit/config.hpp"
#include "lowbit/detail/target.hpp"
#include "lowbit/dispatch/cpu_features.hpp"
#include "lowbit/formats/nibbles.hpp"
#include "lowbit/quant/group_io.hpp"

#if LOWBIT_HAVE_X86_SIMD
#include <immintrin.h>
#endif

namespace lowbit::detail {

// Whether q's spec is one the int_rtn row kernels handle.
inline bool int_rtn_rows_apply(const QuantizedMatrix& q) noexcept {
  const QuantSpec& s = q.spec;
  return (s.format == element_format::int4 || s.format == element_format::int8) && s.symmetric &&
         s.int_rule == int_scale_rule::amax_over_qmax && s.constraint == scale_constraint::none &&
         s.scale_storage == scale_dtype::f32 && !s.clip.enabled &&
         (s.gran == granularity::per_channel || s.gran == granularity::per_group);
}

constexpr std::uint32_t abs_bits_nonfinite = 0x7f800000u;

// ---- scalar reference ------------------------------------------------------------------

template <element_format F>
void int_rtn_rows_scalar(QuantizedMatrix& q, const ConstRowMatrixRef& w, std::int64_t r0, std::int64_t r1) {
  constexpr bool nib = F == element_format::int4;
  constexpr int qmax = nib ? 7 : 127;
  for (std::int64_t r = r0; r < r1; ++r) {
    std::uint8_t* out = q.codes.data() + r * q.row_stride;
    for (std::int64_t g = 0; g < q.groups_per_row; ++g) {
      const std::int64_t c0 = g * q.group_size, n = std::min(q.group_size, q.cols - c0);
      const float* x = element_ptr(w, r, c0);
      std::uint32_t mb = 0;
      for (std::int64_t i = 0; i < n; ++i) mb = std::max(mb, scale_bits(x[i]) & 0x7fffffffu);
      if (mb >= abs_bits_nonfinite) scan_range(x, n, q.name, r, c0);  // throws, naming the element
      const float scale = bounded_f32_scale(scale_from_bits(mb) / static_cast<float>(qmax), float(qmax));  // scale_rules.hpp edges
      const float inv = scale == 0.0f ? 0.0f : 1.0f / scale;
      q.scales[static_cast<std::size_t>(r * q.groups_per_row + g)] = scale;
      for (std::int64_t i = 0; i < n; ++i) {
        const int v = round_clamp(x[i] * inv, -qmax, qmax);
        if constexpr (nib)
          set_nibble(out, static_cast<std::size_t>(c0 + i), static_cast<std::uint8_t>(v & 0xF));
        else
          out[c0 + i] = static_cast<std::uint8_t>(v);
      }
    }
  }
}

// ---- AVX-512 ----------------------------------------------------------------------------
#if LOWBIT_HAVE_X86_SIMD
// GCC 12 warns (-Wmaybe-uninitialized) inside its own AVX-512 intrinsics (GCC bug 105593).
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic push
LOWBIT_IGNORE_GCC_MAYBE_UNINITIALIZED
#pragma GCC diagnostic ignored "-Wuninitialized"
#endif

// One group of n elements starting at an even column; codes go to out (bytes for int8,
// nibble pairs for int4, out pointing at the group's first byte). Returns the scale, or -1
// when the group holds a NaN/Inf.
template <bool Nib>
LOWBIT_TARGET_AVX512 inline float int_rtn_group_avx512(const float* x, std::int64_t n, std::uint8_t* out) {
  constexpr int qmax = Nib ? 7 : 127;
  const __m512i abs_mask = _mm512_set1_epi32(0x7fffffff);
  __m512i m0 = _mm512_setzero_si512(), m1 = _mm512_setzero_si512();
  std::int64_t i = 0;
  for (; i + 32 <= n; i += 32) {
    m0 = _mm512_max_epu32(m0, _mm512_and_si512(_mm512_loadu_si512(x + i), abs_mask));
    m1 = _mm512_max_epu32(m1, _mm512_and_si512(_mm512_loadu_si512(x + i + 16), abs_mask));
  }
  for (; i < n; i += 16) {
    const __mmask16 k = n - i >= 16 ? __mmask16(0xFFFF) : __mmask16((1u << (n - i)) - 1);
    m0 = _mm512_max_epu32(m0, _mm512_and_si512(_mm512_maskz_loadu_epi32(k, x + i), abs_mask));
  }
  const std::uint32_t mb = _mm512_reduce_max_epu32(_mm512_max_epu32(m0, m1));
  if (mb >= abs_bits_nonfinite) return -1.0f;
  const float scale = bounded_f32_scale(scale_from_bits(mb) / static_cast<float>(qmax), float(qmax));  // scale_rules.hpp edges
  const float inv = scale == 0.0f ? 0.0f : 1.0f / scale;
  const __m512 vinv = _mm512_set1_ps(inv);
  const __m512 hi = _mm512_set1_ps(static_cast<float>(qmax)), lo = _mm512_set1_ps(-static_cast<float>(qmax));
  for (i = 0; i < n; i += 16) {
    const std::int64_t left = n - i;
    const __mmask16 k = left >= 16 ? __mmask16(0xFFFF) : __mmask16((1u << left) - 1);
    __m512 y = _mm512_mul_ps(_mm512_maskz_loadu_ps(k, x + i), vinv);
    y = _mm512_roundscale_ps(y, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
    y = _mm512_min_ps(_mm512_max_ps(y, lo), hi);
    const __m512i v = _mm512_cvtps_epi32(y);
    if constexpr (Nib) {
      // Lane pairs (2j, 2j+1) share a 64-bit lane: low nibble from the even one.
      const __m512i t = _mm512_and_si512(v, _mm512_set1_epi32(0xF));
      const __m512i pair = _mm512_or_si512(t, _mm512_srli_epi64(t, 28));
      const __m128i bytes = _mm512_cvtepi64_epi8(pair);
      if (left >= 16) {
        _mm_storel_epi64(reinterpret_cast<__m128i*>(out + i / 2), bytes);
      } else {
        const __mmask16 kb = __mmask16((1u << ((left + 1) / 2)) - 1);
        _mm_mask_storeu_epi8(out + i / 2, kb, bytes);
      }
    } else {
      _mm_mask_storeu_epi8(out + i, k, _mm512_cvtepi32_epi8(v));
    }
  }
  return scale;
}

template <element_format F>
LOWBIT_TARGET_AVX512 void int_rtn_rows_avx512(QuantizedMatrix& q, const ConstRowMatrixRef& w, std::int64_t r0,
                                              std::int64_t r1) {
  constexpr bool nib = F == element_format::int4;
  for (std::int64_t r = r0; r < r1; ++r) {
    std::uint8_t* out = q.codes.data() + r * q.row_stride;
    for (std::int64_t g = 0; g < q.groups_per_row; ++g) {
      const std::int64_t c0 = g * q.group_size, n = std::min(q.group_size, q.cols - c0);
      const float* x = element_ptr(w, r, c0);
      const float scale = int_rtn_group_avx512<nib>(x, n, nib ? out + c0 / 2 : out + c0);
      if (scale < 0.0f) scan_range(x, n, q.name, r, c0);  // throws, naming the element
      q.scales[static_cast<std::size_t>(r * q.groups_per_row + g)] = scale;
    }
  }
}

#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic pop
#endif
#endif  // LOWBIT_HAVE_X86_SIMD

// Tier-explicit entry (tests); AVX-512 needs every int4 group to start on an even column.
template <element_format F>
void int_rtn_rows_tier(isa_tier tier, QuantizedMatrix& q, const ConstRowMatrixRef& w, std::int64_t r0,
                       std::int64_t r1) {
#if LOWBIT_HAVE_X86_SIMD
  const bool even_groups = F != element_format::int4 || q.groups_per_row == 1 || q.group_size % 2 == 0;
  if (tier == isa_tier::avx512 && even_groups) return int_rtn_rows_avx512<F>(q, w, r0, r1);
#endif
  (void)tier;
  int_rtn_rows_scalar<F>(q, w, r0, r1);
}

template <element_format F>
void int_rtn_rows(QuantizedMatrix& q, const ConstRowMatrixRef& w, std::int64_t r0, std::int64_t r1) {
  int_rtn_rows_tier<F>(selected_isa_tier(), q, w, r0, r1);
}

}  // namespace lowbit::detail
