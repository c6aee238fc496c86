#pragma once
// Which kernel runs: the scheme (from the weights' format and constraint plus the activation
// choice) and the ISA tier (selected_isa_tier() unless the caller forces one it can run).
#include <cstdint>
#include <optional>
#include <string>

#include "lowbit/dispatch/cpu_features.hpp"
#include "lowbit/error.hpp"
#include "lowbit/kernels/kernel.hpp"
#include "lowbit/pack/int_packing.hpp"
#include "lowbit/quant/quantized_matrix.hpp"
#include "lowbit/quant/spec_text.hpp"

namespace lowbit {

// How gemm() treats the activations of a packed weight matrix (fixed at pack time, because
// the packed layout depends on it).
enum class activation_quant : std::uint8_t {
  automatic,      // integer weights -> int8 per token; float weights -> E4M3 per token (8-bit
                  // float) or fp32 (int4 with zero points)
  int8,           // dynamic per-token int8 (w8a8_int8, w4a8_int4, w4a8_int4_m2)
  float8_e4m3fn,  // dynamic per-token E4M3 (w8a8_fp8, w4a8_fp4)
  none,           // fp32 activations, weight-only quantization (w4a16_*)
};

constexpr bool is_int_activation_scheme(gemm_scheme s) noexcept {
  return s == gemm_scheme::w8a8_int8 || s == gemm_scheme::w4a8_int4 || s == gemm_scheme::w4a8_int4_m2;
}

namespace detail {

// The format's name from spec_text.hpp's table; integers say whether they are symmetric.
inline std::string describe_weights(const QuantizedMatrix& q) {
  const std::string name(to_string(q.spec.format));
  if (q.spec.format != element_format::int8 && q.spec.format != element_format::int4) return name;
  return (q.spec.symmetric ? "symmetric " : "asymmetric ") + name;
}

// The integer-activation scheme for `q`, or nullopt when its weights are not symmetric
// int8/int4. M2 weights run the M2 kernel when all of K provably fits int32 (see
// pack/int_packing.hpp), otherwise the per-group kernel, which is exact for them too.
inline std::optional<gemm_scheme> choose_int_scheme(const QuantizedMatrix& q) noexcept {
  if (!q.spec.symmetric) return std::nullopt;
  if (q.spec.format == element_format::int8) return gemm_scheme::w8a8_int8;
  if (q.spec.format != element_format::int4) return std::nullopt;
  if (q.spec.constraint == scale_constraint::pow2_m2 && q.row_scales.size() == static_cast<std::size_t>(q.rows) &&
      q.shifts.size() == static_cast<std::size_t>(q.rows * q.groups_per_row) && m2_fits_int32(q))
    return gemm_scheme::w4a8_int4_m2;
  return gemm_scheme::w4a8_int4;
}

// The sub-tier to pack for. `subtier` wins (it must run here, and match `tier` if both are
// given); `tier` alone means the selected sub-tier if it belongs to that tier (LOWBIT_ISA=
// avx512bw with tier avx512 packs for avx512bw), else the tier's best vector sub-tier;
// neither means selected_isa_subtier().
inline isa_subtier resolve_subtier(std::optional<isa_tier> tier, std::optional<isa_subtier> subtier) {
  const cpu_features& f = host_cpu_features();
  if (subtier) {
    if (!subtier_supported(*subtier, f))
      fail("pack: this CPU cannot run the " + std::string(to_string(*subtier)) + " tier");
    if (tier && tier_of(*subtier) != *tier)
      fail("pack: sub-tier " + std::string(to_string(*subtier)) + " is not part of the " +
           std::string(to_string(*tier)) + " tier");
    return *subtier;
  }
  if (!tier) return selected_isa_subtier();
  if (!tier_supported(*tier, f)) fail("pack: this CPU cannot run the " + std::string(to_string(*tier)) + " tier");
  const isa_subtier sel = selected_isa_subtier();
  return tier_of(sel) == *tier ? sel : best_vector_subtier(*tier, f);
}

}  // namespace detail
}  // namespace lowbit
