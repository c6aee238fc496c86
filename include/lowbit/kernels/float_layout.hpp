#pragma once
// The packed layout and the per-call workspace of the float-decoding kernel family
// (w8a8_fp8, w4a8_fp4, w4a16_int4, w4a16_fp4, w8a16_int8), and the two phases that build them:
// pack_float() once per weight matrix, prepare_float() once per gemm call.
//
// Layout "colblock32" (every tier reads the same bytes; the tier that packed it is recorded
// so that a PackedWeights built for one CPU is not silently run by another):
//   - output rows (N) are cut into blocks of 32 columns of y; the last block is zero-padded;
//   - inside a block, K runs outermost: one "k-row" holds the 32 codes of one input channel,
//       8-bit codes (E4M3, int8): 32 bytes, byte j = column j;
//       4-bit codes: 16 bytes, low nibble of byte j = column j, high nibble = column j + 16,
//     so a 16-lane decode of the low nibbles gives columns 0..15 and of the high ones 16..31,
//     and odd K needs no padding (nibbles pair across columns, not along K);
//   - scales (and zero points as floats, or float offsets) per (block, group) as 32
//     contiguous fp32 values.
// Keeping K whole (no K padding, ragged last group as is) means the workspace is just the
// activation rows in order.
//
// Accuracy (every tier, tested against kernels/float_reference.hpp): weights are decoded to
// exactly the fp32 w_hat that dequantize() gives (or the exact code value with the scale
// applied per group), products and sums are fp32 (the one-token integer path sums spans of a
// group exactly in int32 over activations held exactly (w4a8_fp4) or within 2^-17 (W4A16),
// then in fp32: inside the same bound). Documented tolerance:
//   |y - y_ref| <= 2e-5 * s_a(t) * sum_k |xq(t, k)| * |w_hat(n, k)|   (K up to 4096 tested),
// with |w_hat| read as (|value| + zero) * scale for zero-point int4 (the few-token path
// subtracts zero * sum_group(x) once per group instead of per element), and as
// |value| * scale + |offset| for float offsets (added as offset * sum_group(x) likewise).
#include <algorithm>
#include <atomic>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <optional>
#include <string>
#include <vector>

#include "lowbit/config.hpp"
#include "lowbit/detail/aligned_buffer.hpp"
#include "lowbit/detail/target.hpp"
#include "lowbit/dispatch/cpu_features.hpp"
#include "lowbit/error.hpp"
#include "lowbit/formats/convert.hpp"
#include "lowbit/formats/float4.hpp"
#include "lowbit/formats/float8.hpp"
#include "lowbit/formats/nibbles.hpp"
#include "lowbit/kernels/float_reference.hpp"
#include "lowbit/kernels/kernel.hpp"
#include "lowbit/pack/float_packing.hpp"
#include "lowbit/quant/group_kernels.hpp"
#include "lowbit/quant/quantized_matrix.hpp"

#if LOWBIT_HAVE_X86_SIMD
#include <immintrin.h>  // int_planes_span_avx512
#endif

namespace lowbit::detail {

struct float_workspace : workspace_header {
  float_workspace() { family = kernel_family::float_decode; }
  gemm_scheme scheme = gemm_scheme::w4a16_int4;
  std::uint32_t layout = 0;
  std::int64_t tokens = 0, cols = 0, group_size = 0, groups = 0;
  // Row stride of x and x_half, in elements: K rounded up to 16, plus 16, so that the rows
  // a register block reads together do not all fall into one L1 set (a stride that is a
  // multiple of 4 KiB would make 12-16 rows fight over 12 ways).
  std::int64_t x_stride = 0;
  // [tokens][x_stride]: exact E4M3 values (A8) or x (A16), columns K.. zero; not initialised
  // when made: prepare_float_tokens writes every element of its rows (on the pool).
  aligned_buffer<float> x;
  std::vector<float> token_scales;   // [tokens]: s_a (A8), 1 (A16)
  aligned_buffer<std::uint8_t> codes;  // [tokens][K]: the E4M3 codes (A8 only); not initialised
                                       // when made: prepare writes every row
  std::vector<float> group_sums;     // [tokens][groups]: sum of x over each group (zero points)
  // The AVX512-FP16 path (x86/avx512fp16_float.hpp) reads fp16 activations instead of x:
  //   w4a8_fp4:         the E4M3 values / 2 (exact), half_factor = 2;
  //   w4a16, fp16/bf16: x * 2^e(t), e(t) putting max_k |x(t, k)| in [64, 128) (exact but for
  //                     values that become fp16 subnormals), token_scales = 2^-e(t),
  //                     half_factor = 1.
  std::vector<std::uint16_t> x_half; // [tokens][x_stride], zero-padded
  float half_factor = 1.0f;          // multiplies the group scales on that path
  // The AVX-512 one-token path for 4-bit codes (float_uses_quad_path) reads x with every
  // element repeated 4 times: x_quad[j] = x[j / 4], made once per call in prepare.
  std::vector<float> x_quad;
  // The one-token integer path (float_uses_int_planes, x86/avx512_float.hpp) reads token 0
  // as integers v = round(x * 2^e(s)), one exponent a span s (the kernel sums each group in
  // spans of up to float_int_planes_span k-rows, int_plane_span_of), split into signed-byte
  // planes v = q0 + 2^8 q1 + 2^16 q2 + 2^24 q3 (balanced digits, int_plane_digits):
  //   - w4a8_fp4 (planes_exact): e = 9, so every E4M3 value is such an integer, below 2^18
  //     (q3 = 0, and q2 in [-4, 4]);
  //   - W4A16: e(s) puts the span's largest |x| in [2^29, 2^30), or in [2^21, 2^22) where
  //     that lists at most one fix per 32 k-rows (16-bit inputs: three planes, q3 = 0; see
  //     prepare_int_planes). An x with |x| 2^e below 2^16 whose v is not exact is listed as
  //     a fix (k, r = x - v 2^-e, exact), which the kernel adds as r * w in fp32; every
  //     other x is off by at most 2^-e / 2 <= 2^-17 |x|.
  // x_planes[p * 4 (K / 4) + k] is digit p of k-row k (dword i of a plane: k-rows 4i..4i+3,
  // a VPDPBUSD operand; the last K % 4 k-rows take the per-row fp32 path). Per span s:
  // plane_sums[4 s + p] = plane_bias * (sum of plane p over the span), the correction for the
  // weights' bias (the kernel's unsigned weight bytes are m w + plane_bias, m = 2 for E2M1,
  // 1 for the integer codes); plane_count[s] = 1 + the highest plane with a non-zero digit in
  // the span (the planes above are skipped); plane_unit[s] = 2^-e(s) / m, from the span's
  // integer sum to code-value units; its fixes are fix_k / fix_r [fix_begin[s], fix_begin[s + 1]).
  std::vector<std::int8_t> x_planes;
  std::vector<std::int32_t> plane_sums;
  std::vector<std::uint8_t> plane_count;
  std::vector<float> plane_unit;
  std::vector<std::int32_t> fix_begin, fix_k;
  std::vector<float> fix_r;
  std::int64_t spans_per_group = 0;
  std::int32_t plane_bias = 12;
  float plane_m = 2.0f;
  bool planes_exact = true;
  // The bf16 tiles (x86/amx_float.hpp: AMX-BF16, or VDPBF16PS) read bf16 parts of x' = x * 2^e(t) instead:
  // x_bf16[part][row][bf16_stride], part 0 = hi, 1 = lo, bf16_rows = tokens rounded up to 16
  // (padding rows and columns 0); bf16_scale[t] = 2^e(t), bf16_unscale[t] = 2^-e(t);
  // bf16_two[t] = 1 when some lo of token t is non-zero. Empty when the tiles do not run.
  // bf16_planes = 1 for calls whose activations take one bf16 pass (A8 codes, bf16 inputs,
  // PackOptions::bf16_activations): every lo is 0, never read (bf16_two = 0), so the lo plane
  // is neither made nor written; 2 for fp32 and fp16 inputs split in two.
  aligned_buffer<std::uint16_t> x_bf16;  // not initialised when made: prepare writes all of it
  std::int64_t bf16_rows = 0, bf16_stride = 0, bf16_planes = 0;
  std::vector<float> bf16_scale, bf16_unscale;
  std::vector<std::uint8_t> bf16_two;
};

// 16-entry decode tables of the 4-bit codes, indexed by nibble.
struct nibble_tables {
  float e2m1[16], int4_signed[16], uint4[16];
};
inline const nibble_tables& nibble_decode_tables() noexcept {
  static const nibble_tables t = [] {
    nibble_tables r{};
    for (int i = 0; i < 16; ++i) {
      r.e2m1[i] = float4_e2m1fn::from_bits(static_cast<std::uint8_t>(i)).to_float();
      r.int4_signed[i] = static_cast<float>(i >= 8 ? i - 16 : i);
      r.uint4[i] = static_cast<float>(i);
    }
    return r;
  }();
  return t;
}
inline const float* nibble_table(float_code c) noexcept {
  const nibble_tables& t = nibble_decode_tables();
  return c == float_code::e2m1 ? t.e2m1 : c == float_code::int4_signed ? t.int4_signed : t.uint4;
}

// fp16 bits of (E2M1 value of nibble i) and of (E4M3 value of code c) / 2: all exact.
inline std::uint16_t fp16_bits_of_exact(float v) noexcept {
  std::uint32_t u;
  std::memcpy(&u, &v, 4);
  const std::uint16_t sign = static_cast<std::uint16_t>((u >> 16) & 0x8000);
  if ((u & 0x7fffffffu) == 0) return sign;
  const int e = static_cast<int>((u >> 23) & 0xFF) - 127 + 15;  // callers keep it normal
  return static_cast<std::uint16_t>(sign | (e << 10) | ((u & 0x7FFFFFu) >> 13));
}
struct fp16_tables {
  // The 4-bit codes' values, 16 entries repeated: VPERMW reads 5 index bits.
  std::uint16_t e2m1[32], int4_signed[32], uint4[32];
  std::uint16_t e4m3_half[256];
  const std::uint16_t* nibbles(float_code c) const noexcept {
    return c == float_code::e2m1 ? e2m1 : c == float_code::int4_signed ? int4_signed : uint4;
  }
};
inline const fp16_tables& fp16_decode_tables() noexcept {
  static const fp16_tables t = [] {
    fp16_tables r{};
    for (int i = 0; i < 32; ++i) {
      r.e2m1[i] = fp16_bits_of_exact(nibble_decode_tables().e2m1[i & 15]);
      r.int4_signed[i] = fp16_bits_of_exact(nibble_decode_tables().int4_signed[i & 15]);
      r.uint4[i] = fp16_bits_of_exact(nibble_decode_tables().uint4[i & 15]);
    }
    for (int c = 0; c < 256; ++c)
      r.e4m3_half[c] = (c & 0x7F) == 0x7F ? 0 : fp16_bits_of_exact(0.5f * float8_e4m3fn::decode_table[c]);
    return r;
  }();
  return t;
}

// Where VDPBF16PS pays (x86/avx512_float.hpp: avx512bf16_pairs_cpu has the measurements):
// AVX512-BF16 without AVX512-FP16, i.e. AMD Zen 4/5 (or Cooper Lake, not measured). On Zen 5
// it multiplies 32 bf16 pairs per instruction at about two a cycle, twice the fp32 FMA's rate
// (405 against 215 GFLOPS on one core, docs/performance.md, "Session 38"); Intel's runs one
// every two cycles.
inline bool avx512bf16_pays(const cpu_features& f) noexcept { return f.avx512bf16 && !f.avx512fp16; }

// Which many-token path the AVX-512 float records take where both could run: the CPU rule
// (automatic), the fp32 (or AVX512-FP16) code, or the bf16 tiles on VDPBF16PS. A test hook:
// with it the tests run both over every shape on every CPU with AVX512-BF16.
enum class many_token_path : std::uint8_t { automatic, fp32, bf16_tiles };
inline std::atomic<many_token_path>& many_token_path_override() noexcept {
  static std::atomic<many_token_path> path{many_token_path::automatic};
  return path;
}

// Whether a call of more than 4 tokens on weights packed by an AVX-512 float record runs the
// bf16 tiles of x86/amx_float.hpp on VDPBF16PS instead of the fp32 tile: where the activations
// need one bf16 pass (A8 schemes' E4M3 values and bf16 inputs are exact in bf16; fp32 and fp16
// ones with PackOptions::bf16_activations), on a CPU where it pays. fp32 inputs split into two
// bf16 parts would cost two VDPBF16PS per pair: the fp32 FMA's rate, no gain (measured alike on
// Zen 5), so they stay on the fp32 tile.
inline bool float_uses_avx512bf16_tiles(const float_packed& w, std::int64_t tokens,
                                        activation_dtype input = activation_dtype::f32) {
  if (!(LOWBIT_HAVE_X86_SIMD && w.tier == isa_tier::avx512 && !w.amx_bf16 && tokens > 4)) return false;
  if (!(scheme_quantizes_activations(w.scheme) || input == activation_dtype::bf16 || w.bf16_round_activations))
    return false;
  const cpu_features& f = host_cpu_features();
  switch (many_token_path_override().load(std::memory_order_relaxed)) {
    case many_token_path::fp32: return false;
    case many_token_path::bf16_tiles: return f.avx512bf16;
    case many_token_path::automatic: break;
  }
  return avx512bf16_pays(f);
}

// Whether a call with `tokens` rows of `input` activations takes the AVX512-FP16 path
// (x86/avx512fp16_float.hpp): w4a8_fp4 (its E4M3 activations are exact in fp16), or W4A16
// given fp16/bf16 activations; more than 4 tokens (fewer stream the weights once on the
// fp32 path, which is memory-bound anyway); and groups that k-row pairs do not straddle.
inline bool float_uses_fp16_path(const float_packed& w, std::int64_t tokens,
                                 activation_dtype input = activation_dtype::f32) {
  // Float offsets are not on that path (its pair decode scales later in fp16), so their fp16
  // and bf16 activations widen to fp32.
  const bool scheme_ok = w.scheme == gemm_scheme::w4a8_fp4 ||
                         (is_w4a16_scheme(w.scheme) && input != activation_dtype::f32 &&
                          w.code != float_code::uint4_with_offset);
  // Weights packed by the AMX-BF16 records run more than 4 tokens on tiles instead, and so do
  // calls that take the AVX512-BF16 tiles (only where a test forces them on such a CPU).
  return scheme_ok && w.tier == isa_tier::avx512 && !w.amx_bf16 && tokens > 4 &&
         (w.groups == 1 || w.group_size % 2 == 0) && LOWBIT_HAVE_AVX512FP16 &&
         host_cpu_features().avx512fp16 && !float_uses_avx512bf16_tiles(w, tokens, input);
}

// Where the one-token path on bf16 pairs (VDPBF16PS, x86/avx512_float.hpp) pays: measured
// 2.0-2.4x the quad path's cold rate on Zen 5 (VDPBF16PS and VPERMW at two a cycle; since its
// touch load and compact table it reads cold weights at 1.03-1.23 x dram_read there), but
// 0.6-0.9x on the device machine's Sapphire Rapids-class Xeon (there VDPBF16PS shares one port
// with the shifts; the quad path reads at 0.62-0.76 x dram_read, with or without the touch
// load: docs/performance.md, "One-token kernels at DRAM speed"). CPUs with AVX512-FP16
// (Intel's) do not take the pairs (the integer planes, or the quad path); AVX512-BF16 without
// it means AMD Zen 4/5 (or Cooper Lake, not measured).
inline bool avx512bf16_pairs_cpu(const cpu_features& f) noexcept { return avx512bf16_pays(f); }

// Which of the one-token paths 4-bit codes take where several could run: the CPU rules
// (automatic), or one of them forced. A test hook: without it a Zen 5 runs the quad path only
// for groups the pairs cannot take, an Intel CPU never runs the pairs, and only Intel CPUs and
// Zen 4 run the integer planes; with it the tests
// run every path over every shape on every CPU that has its instructions.
enum class one_token_path : std::uint8_t { automatic, quad, bf16_pairs, int_planes };
inline std::atomic<one_token_path>& one_token_path_override() noexcept {
  static std::atomic<one_token_path> path{one_token_path::automatic};
  return path;
}

// The integer path sums a group in spans of at most this many k-rows: each plane's span sum
// stays below 15 * 128 * 512 < 2^24, so it converts to fp32 exactly, and for w4a8_fp4 the
// planes' int32 combination stays below 2^31 (x86/avx512_float.hpp has the bounds).
constexpr std::int64_t float_int_planes_span = 512;

// Where the one-token integer path pays: CPUs with VNNI (and VBMI, for its VPERMB) whose
// one-token float path is the quad path, bound by its decode uops. On the device Xeon
// (docs/performance.md, "Session 43", "Session 44") it reads w4a8_fp4 at 0.86-0.99 x
// dram_read cold and W4A16 at 0.69-0.99 depending on the host (the quad path: 0.75-0.81 on
// the same hosts as the upper figures); 1B-shape W4A16 decode within 5% of DRAM at 1 and 2
// threads. Where VDPBF16PS pays (Zen 4/5) the bf16 pairs stay on Zen 5 (1.03-1.21 of DRAM;
// the planes not measured there). Zen 4 (avx512_halves) takes the planes: with their
// prefetch into L2 (avx512_int_planes_prefetch_l2) they read cold weights 8-36% faster
// than the pairs did, and hot 12-45% (docs/performance.md, "Session 45").
inline bool avx512_int_planes_runs(const cpu_features& f) noexcept {  // its instructions
  return f.avx512vnni && f.avx512vbmi;  // VPDPBUSD, VPERMB
}
inline bool avx512_int_planes_cpu(const cpu_features& f) noexcept {
  return avx512_int_planes_runs(f) && (!avx512bf16_pays(f) || f.avx512_halves);
}
// Where the planes kernel prefetches its codes into L2 (PREFETCHT2, 16 KiB ahead) rather than
// L1 (PREFETCHT0, 8 KiB ahead): Zen 4, where that read cold W4A16 at 0.90-0.95 x dram_read
// against 0.77-0.85 (a copy of the kernel, two rounds); on the device Xeon the L2 hint
// measured no better (0.92-0.95 against 0.93-0.99, four rounds), nor in the integer kernel
// on either CPU (Zen 4: 0.7 against 1.05-1.14). docs/performance.md, "Session 45".
inline bool avx512_int_planes_prefetch_l2(const cpu_features& f) noexcept { return f.avx512_halves; }

// The one-token path a call takes: nullopt unless it is one token of 4-bit codes on the
// AVX-512 tier; else the CPU rules (or the override, falling back to the quad path where the
// forced path cannot run). The one rule behind the three float_uses_* below.
//   - integer planes (x86/avx512_float.hpp, avx512_direct_block_int_planes): w4a8_fp4 (E2M1
//     times 2 is an integer in [-12, 12], an E4M3 activation times 2^9 one below 2^18, so
//     every product and span sum is an exact integer) and the W4A16 schemes (their fp32
//     activations as per-span fixed point, float_workspace::x_planes), in groups of whole
//     4-k-row steps, on a CPU with AVX512-VNNI and -VBMI where it pays;
//   - bf16 pairs: groups that start on multiples of 16 k-rows, on a CPU where they pay (or
//     forced, where the CPU has AVX512-BF16);
//   - the quad path otherwise.
inline std::optional<one_token_path> float_one_token_path(const float_packed& w, std::int64_t tokens) {
  if (!(tokens == 1 && w.tier == isa_tier::avx512 && float_code_is_4bit(w.code))) return std::nullopt;
  const bool planes_fit = (w.scheme == gemm_scheme::w4a8_fp4 || is_w4a16_scheme(w.scheme)) && w.cols >= 4 &&
                          (w.groups == 1 || w.group_size % 4 == 0);
  const bool pairs_fit = w.groups == 1 || w.group_size % 16 == 0;
  const cpu_features& f = host_cpu_features();
  switch (one_token_path_override().load(std::memory_order_relaxed)) {
    case one_token_path::quad: return one_token_path::quad;
    case one_token_path::bf16_pairs:
      return pairs_fit && f.avx512bf16 ? one_token_path::bf16_pairs : one_token_path::quad;
    case one_token_path::int_planes:
      return planes_fit && avx512_int_planes_runs(f) ? one_token_path::int_planes : one_token_path::quad;
    case one_token_path::automatic: break;
  }
  if (planes_fit && avx512_int_planes_cpu(f)) return one_token_path::int_planes;
  if (pairs_fit && avx512bf16_pairs_cpu(f)) return one_token_path::bf16_pairs;
  return one_token_path::quad;
}

inline bool float_uses_int_planes(const float_packed& w, std::int64_t tokens) {
  return float_one_token_path(w, tokens) == one_token_path::int_planes;
}
inline bool float_uses_bf16_pairs(const float_packed& w, std::int64_t tokens) {
  return float_one_token_path(w, tokens) == one_token_path::bf16_pairs;
}
// The path that decodes 4 k-rows of 4-bit codes per load (x86/avx512_float.hpp) needs the
// workspace's x_quad, so prepare makes x_quad only for it.
inline bool float_uses_quad_path(const float_packed& w, std::int64_t tokens) {
  return float_one_token_path(w, tokens) == one_token_path::quad;
}

// The balanced base-256 digits of v (|v| <= 2^30): v = d[0] + 2^8 d[1] + 2^16 d[2] + 2^24 d[3],
// d[0..2] in [-128, 127], d[3] in [-64, 64] (below 2^18: d[2] in [-4, 4], d[3] = 0).
inline void int_plane_digits(std::int32_t v, std::int32_t d[4]) noexcept {
  for (int p = 0; p < 3; ++p) {
    d[p] = ((v + 128) & 255) - 128;
    v = (v - d[p]) / 256;  // exact
  }
  d[3] = v;
}

// The span of k-row k (a multiple of 4 below 4 (K / 4)): spans_per_group per group, the
// group's k-rows cut every float_int_planes_span from its start.
inline std::int64_t int_plane_span_of(const float_workspace& ws, std::int64_t k) noexcept {
  const std::int64_t g = k / ws.group_size;
  return g * ws.spans_per_group + (k - g * ws.group_size) / float_int_planes_span;
}

// The integer path's arrays in ws (cols, group_size and groups set) for weights of `code`,
// with E4M3 activations (exact) or fp32 ones.
inline void make_int_planes(float_workspace& ws, float_code code, bool exact) {
  ws.x_planes.assign(static_cast<std::size_t>(4 * (ws.cols / 4 * 4)), 0);
  ws.spans_per_group = (ws.group_size + float_int_planes_span - 1) / float_int_planes_span;
  const std::size_t spans = static_cast<std::size_t>(ws.groups * ws.spans_per_group);
  ws.plane_sums.assign(4 * spans, 0);
  ws.plane_count.assign(spans, 1);  // (prepare_int_planes sets every span's)
  ws.plane_unit.assign(spans, 0.0f);
  ws.fix_begin.assign(spans + 1, 0);
  ws.planes_exact = exact;
  ws.plane_m = code == float_code::e2m1 ? 2.0f : 1.0f;
  ws.plane_bias = code == float_code::e2m1 ? 12 : code == float_code::int4_signed ? 8 : 0;
}

// y = x 2^e (exact) rounded to the nearest integer, ties to even: for |y| < 2^23 by adding
// and subtracting +-2^23; from 2^23 up y is an integer already. E4M3 values times 2^9 are
// integers and pass through unchanged.
inline float int_plane_rounded(float y) noexcept {
  const float c = std::copysign(8388608.0f, y);
  return std::fabs(y) < 8388608.0f ? (y + c) - c : y;
}

// Whether x, held as v = int_plane_rounded(x up) at up = 2^e (down = 2^-e), is listed as a
// fix: |x up| < 2^16 and v down is not x. The one rule of int_planes_span_scalar and
// int_planes_fixes_within_scalar (their AVX-512 twins test the same in vector form).
inline bool int_plane_needs_fix(float x, float v, float up, float down) noexcept {
  return std::fabs(x * up) < 65536.0f && x - v * down != 0.0f;
}

// One span's share of prepare_int_planes, k-rows [k0, k1) of x scaled by up = 2^e: the digits
// of v = round(x 2^e) (ties to even) into the planes (q + p n + k), and per plane the span's
// digit sum and whether a digit is non-zero; with `fixes`, the k-rows whose |x 2^e| < 2^16 and
// whose v 2^-e (down = 2^-e) is not x, as (k, r = x - v 2^-e) appended. The scalar reference
// of int_planes_span_avx512 below, which is bit-identical (tests/test_float_int_planes.cpp).
struct int_plane_span_sums {
  std::int32_t sum[4] = {0, 0, 0, 0};
  bool nonzero[4] = {false, false, false, false};
};
inline void int_planes_span_scalar(const float* x, std::int64_t k0, std::int64_t k1, float up, float down,
                                   bool fixes, std::int8_t* q, std::int64_t n, int_plane_span_sums& out,
                                   std::vector<std::int32_t>& fix_k, std::vector<float>& fix_r) {
  for (std::int64_t k = k0; k < k1; ++k) {
    const float v = int_plane_rounded(x[k] * up);
    std::int32_t d[4];
    int_plane_digits(static_cast<std::int32_t>(v), d);
    for (int p = 0; p < 4; ++p) {
      q[p * n + k] = static_cast<std::int8_t>(d[p]);
      out.sum[p] += d[p];
      out.nonzero[p] = out.nonzero[p] || d[p] != 0;
    }
    if (fixes && int_plane_needs_fix(x[k], v, up, down)) {
      fix_k.push_back(static_cast<std::int32_t>(k));
      fix_r.push_back(x[k] - v * down);  // exact: x minus x rounded to a multiple of 2^-e
    }
  }
}

// Whether at most `limit` k-rows of [k0, k1) would be fixes at up = 2^e: prepare_int_planes'
// test of a span's narrower fixed point. It stops at the first fix past the limit (most fp32
// spans reach it within a few dozen k-rows). The scalar reference of
// int_planes_fixes_within_avx512.
inline bool int_planes_fixes_within_scalar(const float* x, std::int64_t k0, std::int64_t k1, float up, float down,
                                           std::int64_t limit) noexcept {
  std::int64_t count = 0;
  for (std::int64_t k = k0; k < k1 && count <= limit; ++k)
    count += int_plane_needs_fix(x[k], int_plane_rounded(x[k] * up), up, down);
  return count <= limit;
}

#if LOWBIT_HAVE_X86_SIMD
#pragma GCC diagnostic push
LOWBIT_IGNORE_GCC_MAYBE_UNINITIALIZED  // GCC bug 105593, in the intrinsics (the reductions)
#pragma GCC diagnostic ignored "-Wuninitialized"
// int_plane_rounded of 16 values y (ay = |y|).
LOWBIT_TARGET_AVX512 inline __m512 int_plane_rounded_avx512(__m512 y, __m512 ay) {
  const __m512 c = _mm512_castsi512_ps(_mm512_or_si512(_mm512_and_si512(_mm512_castps_si512(y), _mm512_set1_epi32(INT32_MIN)),
                                                       _mm512_castps_si512(_mm512_set1_ps(8388608.0f))));
  const __mmask16 small = _mm512_cmp_ps_mask(ay, _mm512_set1_ps(8388608.0f), _CMP_LT_OQ);
  return _mm512_mask_sub_ps(y, small, _mm512_add_ps(y, c), c);
}

// int_plane_needs_fix of the lanes in m (ay = |x up|, rem = x - v down).
LOWBIT_TARGET_AVX512 inline __mmask16 int_plane_fix_mask_avx512(__mmask16 m, __m512 ay, __m512 rem) {
  return _mm512_mask_cmp_ps_mask(_mm512_mask_cmp_ps_mask(m, ay, _mm512_set1_ps(65536.0f), _CMP_LT_OQ), rem,
                                 _mm512_setzero_ps(), _CMP_NEQ_UQ);
}

// The AVX-512 twin of int_planes_fixes_within_scalar (16 k-rows a step; the answer is the
// same wherever either stops).
LOWBIT_TARGET_AVX512 inline bool int_planes_fixes_within_avx512(const float* x, std::int64_t k0, std::int64_t k1,
                                                                float up, float down, std::int64_t limit) {
  const __m512 vup = _mm512_set1_ps(up), vdown = _mm512_set1_ps(down);
  std::int64_t count = 0;
  for (std::int64_t k = k0; k < k1 && count <= limit; k += 16) {
    const __mmask16 m = k1 - k >= 16 ? __mmask16(0xFFFF) : __mmask16((1u << (k1 - k)) - 1);
    const __m512 xv = _mm512_maskz_loadu_ps(m, x + k);
    const __m512 y = _mm512_mul_ps(xv, vup);
    const __m512 ay = _mm512_abs_ps(y);
    const __m512 rem = _mm512_sub_ps(xv, _mm512_mul_ps(int_plane_rounded_avx512(y, ay), vdown));
    count += __builtin_popcount(int_plane_fix_mask_avx512(m, ay, rem));
  }
  return count <= limit;
}

// The AVX-512 twin of int_planes_span_scalar: the same operations in fp32 and int32 on 16
// k-rows at once (masked at the span's end), the digits narrowed by VPMOVDB. The fixes are rare
// (well under 1% of the k-rows of normal activations), so their mask is walked bit by bit.
LOWBIT_TARGET_AVX512 inline void int_planes_span_avx512(const float* x, std::int64_t k0, std::int64_t k1, float up,
                                                        float down, bool fixes, std::int8_t* q, std::int64_t n,
                                                        int_plane_span_sums& out, std::vector<std::int32_t>& fix_k,
                                                        std::vector<float>& fix_r) {
  const __m512 vup = _mm512_set1_ps(up), vdown = _mm512_set1_ps(down);
  const __m512i c128 = _mm512_set1_epi32(128), c255 = _mm512_set1_epi32(255);
  __m512i sum[4], any[4];
  for (int p = 0; p < 4; ++p) sum[p] = any[p] = _mm512_setzero_si512();
  for (std::int64_t k = k0; k < k1; k += 16) {
    const __mmask16 m = k1 - k >= 16 ? __mmask16(0xFFFF) : __mmask16((1u << (k1 - k)) - 1);
    const __m512 xv = _mm512_maskz_loadu_ps(m, x + k);
    const __m512 y = _mm512_mul_ps(xv, vup);
    const __m512 ay = _mm512_abs_ps(y);
    const __m512 v = int_plane_rounded_avx512(y, ay);
    __m512i r = _mm512_cvtps_epi32(v);  // an integer already: exact
    for (int p = 0; p < 3; ++p) {
      const __m512i d = _mm512_sub_epi32(_mm512_and_si512(_mm512_add_epi32(r, c128), c255), c128);
      _mm_mask_storeu_epi8(q + p * n + k, m, _mm512_cvtepi32_epi8(d));
      sum[p] = _mm512_add_epi32(sum[p], d);
      any[p] = _mm512_or_si512(any[p], d);
      r = _mm512_srai_epi32(_mm512_sub_epi32(r, d), 8);  // exact: a multiple of 256
    }
    _mm_mask_storeu_epi8(q + 3 * n + k, m, _mm512_cvtepi32_epi8(r));
    sum[3] = _mm512_add_epi32(sum[3], r);
    any[3] = _mm512_or_si512(any[3], r);
    if (fixes) {
      const __m512 rem = _mm512_sub_ps(xv, _mm512_mul_ps(v, vdown));  // exact, as in the scalar loop
      __mmask16 f = int_plane_fix_mask_avx512(m, ay, rem);
      if (f != 0) {
        alignas(64) float rs[16];
        _mm512_store_ps(rs, rem);
        for (; f != 0; f = static_cast<__mmask16>(f & (f - 1))) {
          const int i = __builtin_ctz(f);
          fix_k.push_back(static_cast<std::int32_t>(k + i));
          fix_r.push_back(rs[i]);
        }
      }
    }
  }
  for (int p = 0; p < 4; ++p) {
    out.sum[p] += _mm512_reduce_add_epi32(sum[p]);
    out.nonzero[p] = out.nonzero[p] || _mm512_test_epi32_mask(any[p], any[p]) != 0;
  }
}
#pragma GCC diagnostic pop
#endif  // LOWBIT_HAVE_X86_SIMD

// Whether prepare_int_planes runs the AVX-512 twin: on the AVX-512 tier, the only one whose
// kernels read the planes.
inline bool int_planes_prepare_vector() noexcept {
  return LOWBIT_HAVE_X86_SIMD && selected_isa_tier() == isa_tier::avx512;
}

// Token 0's planes, span sums, units and fixes (float_workspace::x_planes) from its x: the
// exact E4M3 values (planes_exact) or the fp32 activations. This runs on every one-token call,
// so on AVX-512 CPUs (`vector`, where the planes run) the span loop is the AVX-512 twin: the
// scalar one took 16.8 us at K = 4096 on the device Xeon, 2.5% of a 4096 x 4096 call's time
// at DRAM speed (docs/performance.md, "Session 44").
inline void prepare_int_planes(const float* x, float_workspace& ws, bool vector = int_planes_prepare_vector()) {
  (void)vector;  // (no twin without x86 SIMD)
  const std::int64_t n = ws.cols / 4 * 4;
  std::int8_t* const q = ws.x_planes.data();  // plane p at q + p n
  // Spans without a whole 4-row step (a last group of K % 4 k-rows) are never read.
  std::fill(ws.plane_sums.begin(), ws.plane_sums.end(), 0);
  std::fill(ws.plane_count.begin(), ws.plane_count.end(), std::uint8_t{1});
  std::fill(ws.plane_unit.begin(), ws.plane_unit.end(), 0.0f);
  ws.fix_k.clear();
  ws.fix_r.clear();
  std::fill(ws.fix_begin.begin(), ws.fix_begin.end(), 0);
  for (std::int64_t g0 = 0; g0 < n; g0 += ws.group_size)
    for (std::int64_t k0 = g0; k0 < std::min(n, g0 + ws.group_size); k0 += float_int_planes_span) {
      const std::int64_t k1 = std::min({n, g0 + ws.group_size, k0 + float_int_planes_span});
      const std::size_t span = static_cast<std::size_t>(int_plane_span_of(ws, k0));
      const std::size_t fixes_before = ws.fix_k.size();
      int e = 9;  // E4M3 values * 2^9 are integers
      if (!ws.planes_exact) {
        // |x| as bits (x is finite: prepare checked it), the vector loop on AVX-512 CPUs.
        const std::uint32_t amax_bits = abs_max_bits(x + k0, k1 - k0);
        float amax;
        std::memcpy(&amax, &amax_bits, 4);
        int ex = 0;
        if (amax > 0.0f) (void)std::frexp(amax, &ex);  // amax in [2^(ex-1), 2^ex)
        // amax * 2^e in [2^29, 2^30); at most 2^100 so that 2^e and 2^-e are normal floats
        // (a tinier span uses fewer digits and lists more fixes, still exact).
        e = amax > 0.0f ? std::min(30 - ex, 100) : 0;
        // Three planes (largest |x| 2^e in [2^21, 2^22)) where they list at most one fix per
        // 32 k-rows: 16-bit inputs (bf16 values are integers there down to 2^-14 of the
        // largest, fp16 ones to 2^-11), while normal fp32 ones list one in about 20 k-rows
        // (about a quarter of their 128-row spans still narrow). The fourth plane costs two
        // VPDPBUSD per 4-row step of 32 columns, a fix one decode and two FMAs: 32 k-rows on
        // four planes cost 16 VPDPBUSD more than on three.
        if (amax > 0.0f) {
          const float up3 = std::ldexp(1.0f, e - 8), down3 = std::ldexp(1.0f, 8 - e);
          const std::int64_t limit = (k1 - k0) / 32;
#if LOWBIT_HAVE_X86_SIMD
          const bool narrow = vector ? int_planes_fixes_within_avx512(x, k0, k1, up3, down3, limit)
                                     : int_planes_fixes_within_scalar(x, k0, k1, up3, down3, limit);
#else
          const bool narrow = int_planes_fixes_within_scalar(x, k0, k1, up3, down3, limit);
#endif
          if (narrow) e -= 8;
        }
      }
      const float up = std::ldexp(1.0f, e), down = std::ldexp(1.0f, -e);
      int_plane_span_sums sums;
#if LOWBIT_HAVE_X86_SIMD
      if (vector)
        int_planes_span_avx512(x, k0, k1, up, down, !ws.planes_exact, q, n, sums, ws.fix_k, ws.fix_r);
      else
#endif
        int_planes_span_scalar(x, k0, k1, up, down, !ws.planes_exact, q, n, sums, ws.fix_k, ws.fix_r);
      int count = 1;
      for (int p = 0; p < 4; ++p) {
        ws.plane_sums[4 * span + static_cast<std::size_t>(p)] = ws.plane_bias * sums.sum[p];
        if (sums.nonzero[p]) count = p + 1;
      }
      ws.plane_count[span] = static_cast<std::uint8_t>(count);
      ws.plane_unit[span] = down / ws.plane_m;
      ws.fix_begin[span + 1] = static_cast<std::int32_t>(ws.fix_k.size() - fixes_before);  // a count, for now
    }
  // The spans were visited in order, so their fixes lie in order: counts to offsets.
  for (std::size_t span = 0; span + 1 < ws.fix_begin.size(); ++span) ws.fix_begin[span + 1] += ws.fix_begin[span];
}

inline gemm_scheme choose_float_scheme(const QuantSpec& weights, std::optional<act_format> activations) {
  if (activations) {
    if (*activations != act_format::float8_e4m3fn)
      fail("float kernels: activation format must be float8_e4m3fn (int8 activations belong to "
           "the integer kernels, e5m2 is not supported)");
    if (weights.format == element_format::float8_e4m3fn) return gemm_scheme::w8a8_fp8;
    if (weights.format == element_format::float4_e2m1fn) return gemm_scheme::w4a8_fp4;
    fail("float kernels: E4M3 activations need float8_e4m3fn or float4_e2m1fn weights");
  }
  if (weights.format == element_format::int4) return gemm_scheme::w4a16_int4;
  if (weights.format == element_format::float4_e2m1fn) return gemm_scheme::w4a16_fp4;
  if (weights.format == element_format::int8 && weights.symmetric) return gemm_scheme::w8a16_int8;
  fail("float kernels: fp32 activations need int4, float4_e2m1fn or symmetric int8 weights");
}

// E4M3 code of v (|v| <= 448 up to one rounding, finite), round to nearest even with finite
// saturation: the same result as convert<float8_e4m3fn>(v, saturation::finite), computed
// with integer and exact fp32 steps instead of the generic encoder (prepare is on the hot
// path). Tested against convert<> over every boundary and many random values.
inline std::uint8_t e4m3_code_fast(float v) noexcept {
  std::uint32_t u;
  std::memcpy(&u, &v, 4);
  const std::uint8_t sign = static_cast<std::uint8_t>((u >> 24) & 0x80);
  std::uint32_t a = u & 0x7fffffffu;
  if (a >= 0x3C800000u) {  // >= 2^-6, the smallest normal: keep 3 mantissa bits, RNE
    a = (a + 0x7FFFFu + ((a >> 20) & 1u)) & 0xFFF00000u;
    if (a > 0x43E00000u) a = 0x43E00000u;  // 448
    return static_cast<std::uint8_t>(sign | ((a >> 20) - 960u));
  }
  // Subnormal: count units of 2^-9. |v| * 512 < 8 and adding 2^23 rounds it to an integer
  // (ties to even) in the default rounding mode; 8 is the smallest normal's code.
  float m;
  std::memcpy(&m, &a, 4);
  volatile float big = 8388608.0f;  // keeps the compiler from folding (x + c) - c
  const float r = (m * 512.0f + big) - big;
  return static_cast<std::uint8_t>(sign | static_cast<std::uint8_t>(r));
}

// The workspace of a call with `tokens` activation rows, allocated (zero-filled), before
// prepare_float_tokens() fills its rows.
inline float_workspace make_float_workspace(const float_packed& w, std::int64_t tokens, std::int64_t k) {
  if (w.layout != float_layout_colblock32) fail("gemm: packed weights: unknown float layout");
  if (k != w.cols)
    fail("gemm: x has " + std::to_string(k) + " columns, the weights have K = " + std::to_string(w.cols));
  float_workspace ws;
  ws.scheme = w.scheme;
  ws.layout = w.layout;
  ws.tokens = tokens;
  ws.cols = w.cols;
  ws.group_size = w.group_size;
  ws.groups = w.groups;
  ws.x_stride = (w.cols + 15) / 16 * 16 + 16;
  // The AVX512-FP16 path reads only x_half; the others read only x.
  if (scheme_quantizes_activations(w.scheme) && float_uses_fp16_path(w, tokens)) {
    ws.x_half.assign(static_cast<std::size_t>(tokens * ws.x_stride), 0);
    ws.half_factor = 2.0f;
  } else {
    ws.x.resize_uninitialized(static_cast<std::size_t>(tokens * ws.x_stride));
  }
  ws.token_scales.assign(static_cast<std::size_t>(tokens), 1.0f);
  if (scheme_quantizes_activations(w.scheme)) ws.codes.resize_uninitialized(static_cast<std::size_t>(tokens * w.cols));
  if (float_code_has_group_term(w.code)) ws.group_sums.assign(static_cast<std::size_t>(tokens * w.groups), 0.0f);
  if (float_uses_quad_path(w, tokens)) ws.x_quad.assign(static_cast<std::size_t>(4 * w.cols), 0.0f);
  if (float_uses_int_planes(w, tokens)) make_int_planes(ws, w.code, scheme_quantizes_activations(w.scheme));
  return ws;
}

// Fills tokens [t0, t1) of `ws` from x (rows t0..t1-1 of the call's activations); bit-exact
// with quantize_token_e4m3_reference. Disjoint ranges may run on different threads.
inline void prepare_float_tokens(const float_packed& w, ConstRowMatrixRef x, float_workspace& ws, std::int64_t t0,
                                 std::int64_t t1) {
  const std::int64_t k_in = w.cols, xs = ws.x_stride;
  if (scheme_quantizes_activations(w.scheme)) {
    const bool half_path = !ws.x_half.empty();
    const std::uint16_t* half_table = fp16_decode_tables().e4m3_half;
    std::vector<float> scaled(static_cast<std::size_t>(k_in));
    for (std::int64_t t = t0; t < t1; ++t) {
      const float* row = x.data() + t * x.outerStride();
      // The amax as bits (the quantizers' vector loop: a scalar max chain was 2.5 ns an element).
      const std::uint32_t amax_bits = abs_max_bits(row, k_in);
      float amax;
      std::memcpy(&amax, &amax_bits, 4);
      if (amax_bits >= 0x7f800000u) {  // Inf or NaN: find the culprit for the message
        for (std::int64_t k = 0; k < k_in; ++k)
          if (!std::isfinite(row[k]))
            fail("activations: non-finite value at token " + std::to_string(t) + ", column " +
                 std::to_string(k));
      }
      const ActivationScale rule = activation_scale(act_format::float8_e4m3fn, amax);  // the one rule
      if (rule.overflows)
        fail("activations: token " + std::to_string(t) + ": |x| up to " + std::to_string(amax) +
             " is too close to FLT_MAX: its dequantized values would overflow");
      const float inv = rule.inv;
      ws.token_scales[static_cast<std::size_t>(t)] = rule.scale;
      std::uint8_t* codes = ws.codes.data() + t * k_in;
      // Through Eigen so that it is a vector loop at -O2 too (GCC 12 left the plain loop
      // scalar there: 302 against 134 us for 128 x 4096 at -O3); the same fp32 multiplies.
      Eigen::Map<Eigen::ArrayXf>(scaled.data(), k_in) = Eigen::Map<const Eigen::ArrayXf>(row, k_in) * inv;
      // The bulk encoder of this tier: bit-exact with convert<float8_e4m3fn> (and so with
      // e4m3_code_fast and the reference rule).
      convert_n_tier(w.tier, scaled.data(), reinterpret_cast<float8_e4m3fn*>(codes), static_cast<std::size_t>(k_in),
                     saturation::finite);
      if (half_path) {
        std::uint16_t* xh = ws.x_half.data() + t * xs;
        for (std::int64_t k = 0; k < k_in; ++k) xh[k] = half_table[codes[k]];
      } else if (!ws.x.empty()) {  // (the AMX-BF16 tiles' workspace has no x: they read the codes)
        float* xv = ws.x.data() + t * xs;
        // The tier's bulk decoder: exact, as the table is (tests/test_convert*).
        to_float_n_tier(w.tier, reinterpret_cast<const float8_e4m3fn*>(codes), xv, static_cast<std::size_t>(k_in));
        std::fill(xv + k_in, xv + xs, 0.0f);
      }
    }
  } else {
    for (std::int64_t t = t0; t < t1; ++t) {
      const float* row = x.data() + t * x.outerStride();
      // Weight-only schemes (W4A16): a non-finite fp32 activation is an error here too, as on
      // every other path (issue 15, item 10), instead of a silent NaN row. Checked by the
      // amax's vector loop (bits >= Inf's), the culprit looked for only then.
      if (abs_max_bits(row, k_in) >= 0x7f800000u)
        for (std::int64_t k = 0; k < k_in; ++k)
          if (!std::isfinite(row[k]))
            fail("activations: non-finite value at token " + std::to_string(t) + ", column " + std::to_string(k));
      std::memcpy(ws.x.data() + t * xs, row, static_cast<std::size_t>(k_in) * sizeof(float));
      std::fill(ws.x.data() + t * xs + k_in, ws.x.data() + (t + 1) * xs, 0.0f);
    }
  }
  if (float_code_has_group_term(w.code)) {
    for (std::int64_t t = t0; t < t1; ++t)
      for (std::int64_t g = 0; g < ws.groups; ++g) {
        const std::int64_t k0 = g * ws.group_size, k1 = std::min(k_in, k0 + ws.group_size);
        float s = 0.0f;
        for (std::int64_t k = k0; k < k1; ++k) s += ws.x[static_cast<std::size_t>(t * xs + k)];
        ws.group_sums[static_cast<std::size_t>(t * ws.groups + g)] = s;
      }
  }
  if (!ws.x_planes.empty() && t0 == 0 && t1 > 0) prepare_int_planes(ws.x.data(), ws);  // one token: row 0
  if (!ws.x_quad.empty() && t0 == 0 && t1 > 0)  // one token: row 0
    for (std::int64_t k = 0; k < k_in; ++k)
      for (int r = 0; r < 4; ++r) ws.x_quad[static_cast<std::size_t>(4 * k + r)] = ws.x[static_cast<std::size_t>(k)];
}

// Per-token activation preparation on the calling thread.
inline float_workspace prepare_float(const float_packed& w, ConstRowMatrixRef x) {
  float_workspace ws = make_float_workspace(w, x.rows(), x.cols());
  prepare_float_tokens(w, x, ws, 0, x.rows());
  return ws;
}

// Decodes k-rows [k0, k0 + kc) of block b into dst[kk * 32 + j] = w_hat exactly as
// dequantize() defines it: (value - zero) * scale in fp32. The scalar, AVX2 and NEON tiers
// share it (its cost is spread over all the tokens of a call).
inline void decode_float_rows_scalar(const float_packed& w, std::int64_t b, std::int64_t k0,
                                     std::int64_t kc, float* dst) noexcept {
  const std::uint8_t* codes = w.block_codes(b);
  const float* scales = w.block_scales(b);
  const float* zeros = w.block_zeros(b);
  const float* table = w.code == float_code::e4m3 ? float8_e4m3fn::decode_table.data()
                       : w.code == float_code::int8_signed ? nullptr
                                                           : nibble_table(w.code);
  for (std::int64_t kk = 0; kk < kc; ++kk) {
    const std::int64_t k = k0 + kk;
    const float* s = scales + (k / w.group_size) * float_block_cols;
    const float* z = zeros ? zeros + (k / w.group_size) * float_block_cols : nullptr;
    const std::uint8_t* krow = codes + k * w.krow_bytes;
    float* out = dst + kk * float_block_cols;
    if (w.code == float_code::e4m3) {
      for (int j = 0; j < 32; ++j) out[j] = table[krow[j]] * s[j];
    } else if (w.code == float_code::int8_signed) {
      for (int j = 0; j < 32; ++j) out[j] = static_cast<float>(static_cast<std::int8_t>(krow[j])) * s[j];
    } else {
      for (int j = 0; j < 16; ++j) {
        out[j] = table[krow[j] & 0xF];
        out[j + 16] = table[krow[j] >> 4];
      }
      if (z && w.code == float_code::uint4_with_offset)
        for (int j = 0; j < 32; ++j) out[j] = std::fma(out[j], s[j], z[j]);  // dequantize()'s one rounding
      else if (z)
        for (int j = 0; j < 32; ++j) out[j] = (out[j] - z[j]) * s[j];
      else
        for (int j = 0; j < 32; ++j) out[j] *= s[j];
    }
  }
}

// Writes the block's accumulators acc[t * 32 + j] (times the token scale) to the columns of
// y that lie in [n_begin, n_end).
inline void store_float_block(const float_workspace& ws, const float* acc, std::int64_t n0,
                              std::int64_t n_begin, std::int64_t n_end, RowMatrixRef y) noexcept {
  const std::int64_t j0 = std::max<std::int64_t>(n_begin - n0, 0);
  const std::int64_t j1 = std::min<std::int64_t>(n_end - n0, float_block_cols);
  for (std::int64_t t = 0; t < ws.tokens; ++t) {
    const float s = ws.token_scales[static_cast<std::size_t>(t)];
    float* yrow = y.data() + t * y.outerStride() + n0;
    for (std::int64_t j = j0; j < j1; ++j) yrow[j] = acc[t * float_block_cols + j] * s;
  }
}

// Grows a per-thread scratch buffer (run_float is called from several threads at once).
inline float* float_scratch(std::vector<float>& v, std::size_t n) {
  if (v.size() < n) v.resize(n);
  return v.data();
}

}  // namespace lowbit::detail

namespace lowbit::detail {

// The loop every buffered tier shares: for each 32-column block that meets
// [n_begin, n_end), decode K in chunks of `float_chunk_k` rows into an fp32 tile once and let
// the tier's `accumulate` add x[:, chunk] * tile into the block's [tokens x 32] accumulators
// (overwriting them on the first chunk). The tile is reused by every token of the call.
constexpr std::int64_t float_chunk_k = 128;  // 128 x 32 fp32 = 16 KiB: stays in L1

template <class Decode, class Accumulate>
void run_float_buffered(const float_packed& w, const float_workspace& ws, RowMatrixRef y,
                        std::int64_t n_begin, std::int64_t n_end, Decode decode,
                        Accumulate accumulate) {
  thread_local std::vector<float> acc_buf, tile_buf;
  const std::int64_t tokens = ws.tokens, k_in = w.cols;
  float* acc = float_scratch(acc_buf, static_cast<std::size_t>(tokens * float_block_cols));
  float* tile = float_scratch(tile_buf, static_cast<std::size_t>(float_chunk_k * float_block_cols));
  const std::int64_t b_end = (n_end + float_block_cols - 1) / float_block_cols;
  for (std::int64_t b = n_begin / float_block_cols; b < b_end; ++b) {
    for (std::int64_t k0 = 0; k0 < k_in; k0 += float_chunk_k) {
      const std::int64_t kc = std::min(float_chunk_k, k_in - k0);
      decode(w, b, k0, kc, tile);
      accumulate(ws.x.data() + k0, ws.x_stride, tokens, tile, kc, acc, k0 == 0);
    }
    store_float_block(ws, acc, b * float_block_cols, n_begin, n_end, y);
  }
}

}  // namespace lowbit::detail
