#pragma once
// The float-decoding kernel family: w8a8_fp8, w4a8_fp4, w4a16_int4, w4a16_fp4, w8a16_int8.
//
// CPUs have no FP8/FP4 arithmetic. Every code of these formats is exactly an fp32 (and fp16)
// number, so the kernels decode weights in registers (a 16-entry permute for the nibble
// formats, a bit move into fp16 for E4M3), apply zero point and scale, and run fp32 FMAs;
// A8 activations are quantized per token to E4M3 and decoded back to their exact values in
// prepare_float(), with the token scale applied in the store. See float_layout.hpp for the
// packed layout and the stated tolerance; float_reference.hpp is the oracle.
//
//   choose_float_scheme(spec, act)   which scheme a weight spec and activation format make
//   pack_float(q, scheme, tier)      once per weight matrix (pack/float_packing.hpp)
//   prepare_float(packed, x)         once per call (shared read-only by all threads); gemm()
//                                    splits it: make_float_workspace, then
//                                    prepare_float_tokens over token ranges on the pool
//   make_float_half_workspace, then  the same for fp16/bf16 activations on the AVX512-FP16
//   prepare_float_half_tokens        path (x86/avx512fp16_float.hpp); gemm() runs the ranges
//   run_float(packed, ws, y, n0, n1) per thread, a range of output columns (no bias);
//                                    ranges that start on multiples of float_block_cols
//                                    (32) waste no work. It runs the record of the tier
//                                    (kernels/registry.hpp): run_float_scalar (here),
//                                    run_float_avx2, run_float_avx512, run_float_neon,
//                                    run_float_amx (AMX-BF16 tiles, x86/amx_float.hpp)
// Each tier's run function holds its call paths (kernels/x86/avx512_float.hpp: fp16,
// bf16 pairs, quad, direct, buffered), chosen per call; they share the tier's layout.
#include <string>
#include <string_view>

#include "lowbit/kernels/float_layout.hpp"
#include "lowbit/kernels/arm/neon_float.hpp"
#include "lowbit/kernels/x86/amx_float.hpp"
#include "lowbit/kernels/x86/avx2_float.hpp"
#include "lowbit/kernels/x86/avx512_float.hpp"

namespace lowbit::detail {

// The scalar tier: the same layout and loop as the SIMD tiers, plain C++.
inline void float_accumulate_scalar(const float* x, std::int64_t x_stride, std::int64_t tokens,
                                    const float* tile, std::int64_t kc, float* acc, bool first) {
  for (std::int64_t t = 0; t < tokens; ++t) {
    float* a = acc + t * float_block_cols;
    if (first) std::fill(a, a + float_block_cols, 0.0f);
    const float* xr = x + t * x_stride;
    for (std::int64_t kk = 0; kk < kc; ++kk) {
      const float xv = xr[kk];
      const float* wr = tile + kk * float_block_cols;
      for (int j = 0; j < float_block_cols; ++j) a[j] += xv * wr[j];
    }
  }
}

template <class Deferred = void>  // see "Compile time" in docs/design.md
inline void run_float_scalar(const float_packed& w, const float_workspace& ws, RowMatrixRef y,
                             std::int64_t n_begin, std::int64_t n_end) {
  run_float_buffered(w, ws, y, n_begin, n_end, decode_float_rows_scalar, float_accumulate_scalar);
}

// e.g. "w4a8_fp4_g128_avx512fp16", "w8a8_fp8_pc_avx512bf16", "w8a8_fp8_pc_avx2" (pc: one group spans K),
// "w4a16_int4_g128_amx" (the AMX-BF16 records, whatever the activations): the kernel
// that runs more than 4 tokens of `input` activations.
inline std::string float_kernel_name(const float_packed& w, activation_dtype input = activation_dtype::f32) {
  std::string name(to_string(w.scheme));
  if (w.code == float_code::uint4_with_zero) name += "_asym";
  if (w.code == float_code::uint4_with_offset) name += "_offset";
  name += w.groups == 1 ? std::string("_pc") : "_g" + std::to_string(w.group_size);
  name += "_";
  name += w.amx_bf16 ? std::string_view("amx") : to_string(w.tier);
  if (float_uses_fp16_path(w, 5, input)) name += "fp16";  // the many-token paths
  if (float_uses_avx512bf16_tiles(w, 5, input)) name += "bf16";
  return name;
}

// The workspace of fp16 or bf16 activations on the AVX512-FP16 path (the caller checked
// float_uses_fp16_path(w, tokens, input); other calls widen x to fp32 and use
// prepare_float), before prepare_float_half_tokens() fills its rows.
inline float_workspace make_float_half_workspace(const float_packed& w, std::int64_t tokens, std::int64_t k,
                                                 activation_dtype input) {
  if (w.layout != float_layout_colblock32) fail("gemm: packed weights: unknown float layout");
  if (k != w.cols)
    fail("gemm: x has " + std::to_string(k) + " columns, the weights have K = " + std::to_string(w.cols));
  if (input == activation_dtype::f32 || !is_w4a16_scheme(w.scheme) || !float_uses_fp16_path(w, tokens, input))
    fail("gemm: " + std::string(to_string(input)) + " activations cannot run on the AVX512-FP16 path of " +
         float_kernel_name(w));
  float_workspace ws;
  ws.scheme = w.scheme;
  ws.layout = w.layout;
  ws.tokens = tokens;
  ws.cols = w.cols;
  ws.group_size = w.group_size;
  ws.groups = w.groups;
  ws.x_stride = (k + 15) / 16 * 16 + 16;
  ws.token_scales.assign(static_cast<std::size_t>(tokens), 1.0f);
  ws.x_half.assign(static_cast<std::size_t>(tokens * ws.x_stride), 0);
  ws.half_factor = 1.0f;
  return ws;
}

// Fills tokens [t0, t1) of `ws`; `bits` is the call's whole activation matrix (fp16 or bf16
// values, row stride `stride` elements). Disjoint ranges may run on different threads.
inline void prepare_float_half_tokens(const std::uint16_t* bits, std::int64_t stride, activation_dtype input,
                                      float_workspace& ws, std::int64_t t0, std::int64_t t1) {
#if LOWBIT_HAVE_X86_SIMD
  fp16_prepare_scaled_rows(bits, stride, input, ws, t0, t1);
#else
  (void)bits, (void)stride, (void)input, (void)ws, (void)t0, (void)t1;
  fail("gemm: the AVX512-FP16 path is x86 only");
#endif
}

inline std::size_t float_packed_bytes(const float_packed& w) {
  return w.codes.size() + (w.scales.size() + w.zeros.size()) * sizeof(float);
}

}  // namespace lowbit::detail
