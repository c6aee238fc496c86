#pragma once
// The integer-activation kernel family: w8a8_int8, w4a8_int4, w4a8_int4_m2.
//
//   int_packed    p  = pack_int(q, scheme, subtier);      the layout of the sub-tier's record
//                      (kernels/registry.hpp), packed by pack_int_layout (pack/int_packing.hpp)
//   int_workspace ws = prepare_int(p, x);                 once per call (gemm() runs
//                      make_int_workspace + prepare_int_tokens over token ranges on the pool)
//   run_int(p, ws, y, n_begin, n_end, tier);              per thread, tile-aligned ranges: the
//                      record's run (kernels/registry.hpp), run_int_<sub-tier><scheme> on tiles
// The entry points are one per sub-tier and scheme: run_int_scalar (here; also the neon
// sub-tier's), run_int_avx2 / avx2vnni (x86/avx2_int.hpp), run_int_avx512bw / avx512vnni
// (x86/avx512_int.hpp), run_int_amx (x86/amx_int.hpp), run_int_neondot (arm/neon_int.hpp),
// run_int_neoni8mm (arm/neon_i8mm_int.hpp).
//
// prepare_int quantizes each token row of x exactly as quantize_activations(int8) does, with
// its scale rule (activation_scale in quant/activation.hpp):
//   amax = max |x|, scale = amax / 127, inv = 127 / amax (both 0 when amax == 0 or the row is
//   too small to invert), code = clamp(round_half_even(x * inv), -127, 127)  (fp32 multiply)
// Result, per token t and column n (the order every tier follows, so outputs are bit-exact
// across tiers, given the exact int32 group sums acc_g = sum_{k in g} w[n,k] * a[t,k]):
//   per-group / per-channel:  y = fma(acc_G-1, s_w[n,G-1], ... fma(acc_0, s_w[n,0], 0)) * s_a[t]
//   M2:                       y = (float(sum_g acc_g << (shift[n,g] - min shift[n])) *
//                                  (row_scale[n] * 2^min shift[n])) * s_a[t]
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <string>

#include "lowbit/config.hpp"
#include "lowbit/dispatch/cpu_features.hpp"
#include "lowbit/kernels/arm/neon_i8mm_int.hpp"
#include "lowbit/kernels/arm/neon_int.hpp"
#include "lowbit/kernels/int_workspace.hpp"
#include "lowbit/kernels/x86/amx_int.hpp"
#include "lowbit/kernels/x86/avx2_int.hpp"
#include "lowbit/kernels/x86/avx512_int.hpp"
#include "lowbit/pack/int_packing.hpp"
#include "lowbit/quant/activation.hpp"

namespace lowbit::detail {

// ---- activation quantization (scalar reference; the SIMD versions must match it exactly) --

inline float scalar_absmax(const float* x, std::int64_t n, bool& has_nan) noexcept {
  float m = 0.0f;
  has_nan = false;
  for (std::int64_t i = 0; i < n; ++i) {
    if (x[i] != x[i]) has_nan = true;
    m = std::max(m, std::fabs(x[i]));
  }
  return m;
}

inline std::int32_t scalar_quantize_codes(const float* x, std::int64_t n, float inv, std::int8_t* out) noexcept {
  std::int32_t sum = 0;
  for (std::int64_t i = 0; i < n; ++i) {
    const float v = std::min(std::max(x[i] * inv, -127.0f), 127.0f);
    const int q = static_cast<int>(std::nearbyint(v));
    out[i] = static_cast<std::int8_t>(q);
    sum += q;
  }
  return sum;
}

// Not initialised here (a serial zero fill of a 16-thread call's workspace, page faults
// included, was a sixth of the call on the device Xeon): the codes and the corrections are
// written by prepare on the pool, which also zeroes each row's padding
// (zero_int_row_padding) and, with the last token, the AMX padding rows
// (zero_int_padding_rows).
inline void allocate_int_workspace(const int_packed& p, std::int64_t m, int_workspace& ws) {
  ws.m = m;
  ws.a_stride = round_up(p.k_padded + 8, 64);  // +8: room for the last step's second broadcast
  // AMX loads 16 token rows per tile: the rows past m exist and must be zero.
  ws.a_rows = p.subtier == isa_subtier::amx ? round_up(m, amx_token_rows) : m;
  ws.a.resize_uninitialized(static_cast<std::size_t>(ws.a_rows * ws.a_stride));
  ws.a_scale.assign(static_cast<std::size_t>(m), 0.0f);
  ws.comp.resize_uninitialized(static_cast<std::size_t>(m * p.groups));
}

// Zeroes what the codes of one token row leave unwritten: each group's padding up to the
// kernel's k step (read by every kernel, and it must add nothing) and the row's tail up to
// a_stride (read past K by the last step's second broadcast).
inline void zero_int_row_padding(const int_packed& p, const int_workspace& ws, std::int8_t* dst) noexcept {
  std::int64_t off = 0;
  for (std::int64_t g = 0; g < p.groups; ++g) {
    const std::int64_t len = p.group_len(g), padded = p.padded_len(g);
    if (padded > len) std::memset(dst + off + len, 0, static_cast<std::size_t>(padded - len));
    off += padded;
  }
  std::memset(dst + off, 0, static_cast<std::size_t>(ws.a_stride - off));
}

// The rows past the last token (AMX tiles load 16 rows): zero, written by whichever call
// prepares the last token.
inline void zero_int_padding_rows(int_workspace& ws) noexcept {
  if (ws.a_rows > ws.m)
    std::memset(ws.a.data() + ws.m * ws.a_stride, 0, static_cast<std::size_t>((ws.a_rows - ws.m) * ws.a_stride));
}

// int32 arithmetic that wraps modulo 2^32, as VPDPBUSD / VPADDD / SDOT do. The biased sums
// (sum (w + B) * a, and B * sum a) may exceed int32 at the largest groups we accept; their
// difference, the true sum, fits (docs/performance.md gives the bounds). Signed overflow is
// undefined in C++, so the scalar reference computes in uint32_t and converts back (modular
// on every compiler lowbit supports; defined by C++20).
inline std::int32_t wrapping_mul(std::int32_t a, std::int32_t b) noexcept {
  return static_cast<std::int32_t>(static_cast<std::uint32_t>(a) * static_cast<std::uint32_t>(b));
}

// Bias corrections from codes already in the workspace.
inline void compute_int_corrections(const int_packed& p, int_workspace& ws, std::int64_t t) {
  const std::int8_t* a = ws.a.data() + t * ws.a_stride;
  std::int64_t off = 0;
  for (std::int64_t g = 0; g < p.groups; ++g) {
    std::int32_t s = 0;
    for (std::int64_t i = 0; i < p.group_len(g); ++i) s += a[off + i];
    ws.comp[static_cast<std::size_t>(t * p.groups + g)] = wrapping_mul(s, p.weight_bias);
    off += p.padded_len(g);
  }
}

// A workspace for m tokens of K = p.cols inputs, checked against x's width; prepare_int_tokens
// fills it one token range at a time (gemm() runs the ranges on the pool).
inline int_workspace make_int_workspace(const int_packed& p, std::int64_t m, std::int64_t k) {
  if (k != p.cols)
    fail("gemm: activations have " + std::to_string(k) + " columns but the weights have K = " +
         std::to_string(p.cols));
  int_workspace ws;
  allocate_int_workspace(p, m, ws);
  return ws;
}

// Quantizes tokens [t0, t1) of x (m x K fp32) into the padded group layout of `p`, on tier
// `tier`. Each token writes only its own row of the workspace, padding included; the range
// that ends with the last token also zeroes the AMX padding rows.
inline void prepare_int_tokens(const int_packed& p, ConstRowMatrixRef x, isa_tier tier, int_workspace& ws,
                               std::int64_t t0, std::int64_t t1) {
  (void)tier;  // only the x86 builds have a SIMD quantizer
  for (std::int64_t t = t0; t < t1; ++t) {
    const float* row = x.data() + t * x.outerStride();
    bool nan = false;
    float amax = 0.0f;
#if LOWBIT_HAVE_X86_SIMD
    if (tier == isa_tier::avx512) amax = avx512_absmax(row, p.cols, nan);
    else
#endif
      amax = scalar_absmax(row, p.cols, nan);
    if (nan || !std::isfinite(amax))
      fail("gemm: activation row " + std::to_string(t) + " holds a NaN or an infinity");
    // The scale rule of quant/activation.hpp (the one definition; tiny rows flush to zero).
    const ActivationScale rule = activation_scale(act_format::int8, amax);
    if (rule.overflows)
      fail("gemm: activation row " + std::to_string(t) + ": |x| up to " + std::to_string(amax) +
           " is too close to FLT_MAX: its dequantized values would overflow");
    ws.a_scale[static_cast<std::size_t>(t)] = rule.scale;
    const float inv = rule.inv;
    std::int8_t* dst = ws.a.data() + t * ws.a_stride;
    std::int64_t off = 0;
    for (std::int64_t g = 0; g < p.groups; ++g) {
      const std::int64_t len = p.group_len(g);
      std::int32_t sum;
#if LOWBIT_HAVE_X86_SIMD
      if (tier == isa_tier::avx512) sum = avx512_quantize_codes(row + g * p.group_size, len, inv, dst + off);
      else
#endif
        sum = scalar_quantize_codes(row + g * p.group_size, len, inv, dst + off);
      ws.comp[static_cast<std::size_t>(t * p.groups + g)] = wrapping_mul(sum, p.weight_bias);
      off += p.padded_len(g);
    }
    zero_int_row_padding(p, ws, dst);
  }
  if (t1 == ws.m) zero_int_padding_rows(ws);
}

// Quantizes every token of x, on the calling thread.
inline int_workspace prepare_int(const int_packed& p, ConstRowMatrixRef x, isa_tier tier) {
  int_workspace ws = make_int_workspace(p, x.rows(), x.cols());
  prepare_int_tokens(p, x, tier, ws, 0, x.rows());
  return ws;
}

// Uses activations quantized elsewhere: codes (m x K, row-major, int8 in [-127, 127]) and one
// scale per token.
inline int_workspace prepare_int_quantized(const int_packed& p, const std::int8_t* codes, std::int64_t m,
                                           std::int64_t k, const float* scales) {
  if (k != p.cols)
    fail("gemm: quantized activations have " + std::to_string(k) + " columns but the weights have K = " +
         std::to_string(p.cols));
  int_workspace ws;
  allocate_int_workspace(p, m, ws);
  for (std::int64_t t = 0; t < m; ++t) {
    ws.a_scale[static_cast<std::size_t>(t)] = scales[t];
    std::int8_t* dst = ws.a.data() + t * ws.a_stride;
    std::int64_t off = 0;
    for (std::int64_t g = 0; g < p.groups; ++g) {
      const std::int8_t* src = codes + t * k + g * p.group_size;
      for (std::int64_t i = 0; i < p.group_len(g); ++i)
        if (src[i] == -128)
          fail("gemm: quantized activation (" + std::to_string(t) + ", " + std::to_string(g * p.group_size + i) +
               ") is -128; int8 activation codes must lie in [-127, 127]");
      std::memcpy(dst + off, src, static_cast<std::size_t>(p.group_len(g)));
      off += p.padded_len(g);
    }
    zero_int_row_padding(p, ws, dst);
    compute_int_corrections(p, ws, t);
  }
  zero_int_padding_rows(ws);
  return ws;
}

// ---- scalar tier: the packed layout read one byte at a time -------------------------------

// The scalar sub-tier's entry point (and the neon one's: AArch64 without SDOT), one
// instantiation per scheme like the SIMD kernels (kernels/registry.hpp).
template <gemm_scheme S>
inline void run_int_scalar(const int_packed& p, const int_workspace& ws, float* y, std::int64_t ldy,
                           std::int64_t tile_begin, std::int64_t tile_end) {
  const std::int64_t lane_bytes = p.nt * 4;
  for (std::int64_t tile = tile_begin; tile < tile_end; ++tile) {
    const std::uint8_t* base = p.tile(tile);
    const int ncols = static_cast<int>(std::min<std::int64_t>(p.nt, p.rows - tile * p.nt));
    for (std::int64_t t = 0; t < ws.m; ++t) {
      const std::int8_t* a = ws.a.data() + t * ws.a_stride;
      for (int c = 0; c < ncols; ++c) {
        const std::uint8_t* w = base;
        const std::int64_t lane = (c / 16) * 64 + (c % 16) * 4;
        float totf = 0.0f;
        std::uint32_t toti = 0;  // M2: wraps like vpaddd; exact when the total fits (see above)
        std::int64_t koff = 0;
        for (std::int64_t g = 0; g < p.groups; ++g) {
          std::uint32_t uacc = 0;  // wraps like the hardware accumulators
          for (std::int64_t s = 0; s < p.padded_len(g); s += p.kstep, w += lane_bytes) {
            for (int j = 0; j < 4; ++j) {
              const std::uint8_t b = w[lane + j];
              if (p.is_int4()) {
                uacc += static_cast<std::uint32_t>((b & 0xF) * a[koff + s + j] + (b >> 4) * a[koff + s + 4 + j]);
              } else {
                uacc += static_cast<std::uint32_t>(b * a[koff + s + j]);
              }
            }
          }
          uacc -= static_cast<std::uint32_t>(ws.comp[static_cast<std::size_t>(t * p.groups + g)]);
          const std::int32_t acc = static_cast<std::int32_t>(uacc);
          float scale;
          std::memcpy(&scale, w + c * 4, 4);
          if (p.is_m2()) {
            std::int32_t sh;
            std::memcpy(&sh, w + c * 4, 4);
            toti += static_cast<std::uint32_t>(acc) << sh;  // wraps like vpsllvd
          } else {
            totf = std::fma(static_cast<float>(acc), scale, totf);
          }
          w += lane_bytes;
          koff += p.padded_len(g);
        }
        float out = totf;
        if (p.is_m2()) {
          float rowf;
          std::memcpy(&rowf, w + c * 4, 4);
          out = static_cast<float>(static_cast<std::int32_t>(toti)) * rowf;
        }
        y[t * ldy + tile * p.nt + c] = out * ws.a_scale[static_cast<std::size_t>(t)];
      }
    }
  }
}

// ---- names -----------------------------------------------------------------------------------

// e.g. "w4a8_int4_g128_avx512vnni": scheme, groups, sub-tier.
inline std::string int_kernel_name(const int_packed& p) {
  std::string name(to_string(p.scheme));
  name += p.per_channel ? "_pc" : "_g" + std::to_string(p.group_size);
  return name + "_" + std::string(to_string(p.subtier));
}

inline std::size_t int_packed_bytes(const int_packed& p) noexcept { return p.data.size(); }

}  // namespace lowbit::detail
