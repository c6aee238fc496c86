#pragma once
// The contract between gemm() and the kernel families.
//
// gemm(x, packed, y) computes y = x * W_hat^T for one of the schemes below. The work is split
// in two phases so that activations are prepared once per call and shared by all threads:
//
//   family_workspace ws = prepare(packed, x);           // once per call: smoothing already
//                                                      // applied; quantize/convert/pad x
//   run(packed, ws, y, n_begin, n_end);                 // per thread, a range of output
//                                                      // columns; writes y[:, n_begin:n_end]
//
// A family (the integer-activation kernels, the float-decoding kernels) owns its packed
// layout, its workspace and its implementations (scalar reference first). Each
// implementation is one record per scheme of kernels/registry.hpp's table (name, tile sizes,
// pack and run functions, requirements); pack() selects a record and gemm() runs its
// functions. gemm() adds the epilogue terms it owns (bias, the LoRC term) after run().
#include <cstdint>
#include <string_view>

#include "lowbit/config.hpp"  // activation_dtype
#include "lowbit/dispatch/cpu_features.hpp"

namespace lowbit {

// Weight x activation schemes the kernels run.
enum class gemm_scheme : std::uint8_t {
  w8a8_int8,     // int8 weights (per channel or group) x int8 per-token activations, int32 acc
  w8a8_fp8,      // E4M3 weights x E4M3 per-token activations
  w4a8_int4,     // int4 group-wise x int8 per-token, per-group fp32 scaling
  w4a8_int4_m2,  // int4 with M2 scales: group shifts folded into the weights, one int32 acc
  w4a8_fp4,      // E2M1 (M1/M2 scales) x E4M3 per-token (ZeroQuant-FP W4A8-FP)
  w4a16_int4,    // int4 (symmetric or asymmetric) x fp32 (or bf16/fp16) activations
  w4a16_fp4,     // E2M1 x fp32 (or bf16/fp16) activations
  w8a16_int8,    // symmetric int8 (per channel or group) x fp32 activations (weight-only int8:
                 // GGUF Q8_0/Q6_K imports); fp16/bf16 activations widen to fp32
};

// The weight-only schemes that may run fp16/bf16 activations on the AVX512-FP16 path. Not
// w8a16_int8: its decoded weights (|code| up to 128 times the scale) would not fit the fp16
// path's pre-scaled products.
constexpr bool is_w4a16_scheme(gemm_scheme s) noexcept {
  return s == gemm_scheme::w4a16_int4 || s == gemm_scheme::w4a16_fp4;
}

constexpr std::string_view to_string(gemm_scheme s) noexcept {
  switch (s) {
    case gemm_scheme::w8a8_int8: return "w8a8_int8";
    case gemm_scheme::w8a8_fp8: return "w8a8_fp8";
    case gemm_scheme::w4a8_int4: return "w4a8_int4";
    case gemm_scheme::w4a8_int4_m2: return "w4a8_int4_m2";
    case gemm_scheme::w4a8_fp4: return "w4a8_fp4";
    case gemm_scheme::w4a16_int4: return "w4a16_int4";
    case gemm_scheme::w4a16_fp4: return "w4a16_fp4";
    case gemm_scheme::w8a16_int8: return "w8a16_int8";
  }
  return "unknown";
}

namespace detail {

// The two kernel families; each packed layout and workspace says which one it belongs to.
enum class kernel_family : std::uint8_t { int_act, float_decode };

// What every packed layout records (int_packed, pack/int_packing.hpp; float_packed,
// pack/float_packing.hpp): which family and scheme, the tier and sub-tier it was packed for,
// and the shape. gemm() checks these against the kernel record that runs them
// (kernels/registry.hpp) before each call.
struct packed_header {
  kernel_family family = kernel_family::int_act;
  gemm_scheme scheme = gemm_scheme::w8a8_int8;
  isa_tier tier = isa_tier::scalar;
  isa_subtier subtier = isa_subtier::scalar;  // float family: the sub-tier it was packed on
  std::int64_t rows = 0;                      // N: outputs (rows of W)
  std::int64_t cols = 0;                      // K: inputs
  std::int64_t group_size = 0;                // along K; the last group may be shorter
  std::int64_t groups = 1;                    // ceil(K / group_size)
};

// The common part of the per-call workspaces (int_workspace, float_workspace).
struct workspace_header {
  kernel_family family = kernel_family::int_act;
};

}  // namespace detail
}  // namespace lowbit
