#pragma once
// Packing for the float-decoding kernels (w8a8_fp8, w4a8_fp4, w4a16_int4, w4a16_fp4,
// w8a16_int8): the packed layout, float_packed, and pack_float(). The integer family's
// counterpart is pack/int_packing.hpp. The layout ("colblock32") and the tolerance it allows
// are described in kernels/float_layout.hpp; which kernel runs it is kernels/registry.hpp's.
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <string>
#include <vector>

#include "lowbit/config.hpp"
#include "lowbit/dispatch/cpu_features.hpp"
#include "lowbit/error.hpp"
#include "lowbit/kernels/kernel.hpp"
#include "lowbit/quant/quantized_matrix.hpp"

namespace lowbit::detail {

constexpr int float_block_cols = 32;   // output columns per packed block
constexpr std::uint32_t float_layout_colblock32 = 0x46433332u;  // "FC32": the layout id

// How a packed code decodes (before zero point and scale). int8_signed: a two's-complement
// byte, the weight-only int8 scheme (w8a16_int8). uint4_with_offset: codes 0..15 with a float
// offset per group, w_hat = fma(code, scale, offset) (QuantSpec::zero == float_offset, GGUF
// Q4_K); kept apart from uint4_with_zero because (code - z) * s is not fma(code, s, -s*z)
// when s has more than ~20 significant bits, as quantizer-made scales do.
enum class float_code : std::uint8_t { e4m3, e2m1, int4_signed, uint4_with_zero, int8_signed, uint4_with_offset };

// Codes whose group has a term times sum_group(x) on the few-token paths (zero points,
// offsets): prepare computes the group sums for them.
constexpr bool float_code_has_group_term(float_code c) noexcept {
  return c == float_code::uint4_with_zero || c == float_code::uint4_with_offset;
}

// Codes of one nibble, 16 k-row bytes per k-row (the one-token quad and bf16-pair paths
// decode only these).
constexpr bool float_code_is_4bit(float_code c) noexcept {
  return c != float_code::e4m3 && c != float_code::int8_signed;
}

struct float_packed : packed_header {  // family float_decode; rows = N, cols = K
  std::uint32_t layout = 0;      // float_layout_colblock32
  float_code code = float_code::e2m1;
  std::int64_t blocks = 0;       // ceil(N / 32); padded N = 32 * blocks
  std::int64_t krow_bytes = 0;   // 16 (4-bit) or 32 (8-bit)
  std::vector<std::uint8_t> codes;  // [block][k][krow_bytes]
  std::vector<float> scales;        // [block][group][32], 0 in padded columns
  std::vector<float> zeros;         // [block][group][32]: uint4_with_zero's zero points as
                                    // floats, or uint4_with_offset's offsets
  // Packed by an AMX-BF16 record (kernels/x86/amx_float.hpp): the same bytes as the avx512
  // tier's, but calls of more than 4 tokens run TDPBF16PS tiles. Checked against the record
  // that runs them ("pack them again").
  bool amx_bf16 = false;
  // Where the bf16 tiles run: round fp32 / fp16 activations to bf16 instead of splitting them into hi + lo
  // (PackOptions::bf16_activations; error bound there and in x86/amx_float.hpp).
  bool bf16_round_activations = false;

  float_packed() {
    family = kernel_family::float_decode;
    scheme = gemm_scheme::w4a16_int4;
    groups = 0;
  }

  const std::uint8_t* block_codes(std::int64_t b) const noexcept {
    return codes.data() + b * cols * krow_bytes;
  }
  const float* block_scales(std::int64_t b) const noexcept {
    return scales.data() + b * groups * float_block_cols;
  }
  const float* block_zeros(std::int64_t b) const noexcept {
    return zeros.empty() ? nullptr : zeros.data() + b * groups * float_block_cols;
  }
};


// check_codes_size false: the codes are elsewhere (pack_float's `codes`), sized by the caller.
inline void check_float_matrix(const QuantizedMatrix& q, gemm_scheme scheme, bool check_codes_size = true) {
  const auto fmt = q.spec.format;
  const bool ok_format =
      (scheme == gemm_scheme::w8a8_fp8 && fmt == element_format::float8_e4m3fn) ||
      ((scheme == gemm_scheme::w4a8_fp4 || scheme == gemm_scheme::w4a16_fp4) &&
       fmt == element_format::float4_e2m1fn) ||
      (scheme == gemm_scheme::w4a16_int4 && fmt == element_format::int4) ||
      (scheme == gemm_scheme::w8a16_int8 && fmt == element_format::int8);
  if (!ok_format)
    fail("pack: weights: format does not match scheme " + std::string(to_string(scheme)));
  if (q.rows < 1 || q.cols < 1) fail("pack: weights: empty matrix");
  if (q.group_size < 1 || q.groups_per_row != (q.cols + q.group_size - 1) / q.group_size)
    fail("pack: weights: group_size/groups_per_row inconsistent with cols");
  const bool eight_bit = fmt == element_format::float8_e4m3fn || fmt == element_format::int8;
  const std::int64_t stride = eight_bit ? q.cols : (q.cols + 1) / 2;
  if (q.row_stride != stride || (check_codes_size && static_cast<std::int64_t>(q.codes.size()) != q.rows * stride))
    fail("pack: weights: codes size does not match rows x row_stride");
  const std::size_t n_scales = static_cast<std::size_t>(q.rows * q.groups_per_row);
  if (q.scales.size() != n_scales) fail("pack: weights: scales size is not rows x groups_per_row");
  const bool asym = fmt == element_format::int4 && !q.spec.symmetric;
  const bool offsets = q.spec.zero == zero_form::float_offset;
  if (offsets && !asym) fail("pack: weights: float-offset groups need asymmetric int4");
  if (asym && !offsets && q.zeros.size() != n_scales)
    fail("pack: weights: asymmetric int4 needs one zero point per (row, group)");
  if (offsets && q.offsets.size() != n_scales)
    fail("pack: weights: float-offset groups need one offset per (row, group)");
  for (std::size_t i = 0; offsets && i < n_scales; ++i)
    if (!std::isfinite(q.offsets[i]))
      fail("pack: weights: non-finite offset at row " + std::to_string(i / q.groups_per_row) + ", group " +
           std::to_string(i % q.groups_per_row));
  if (!asym && fmt != element_format::int4 && !q.spec.symmetric)
    fail("pack: weights: float formats and weight-only int8 are symmetric");
  for (std::size_t i = 0; i < n_scales; ++i)
    if (!std::isfinite(q.scales[i]))
      fail("pack: weights: non-finite scale at row " + std::to_string(i / q.groups_per_row) +
           ", group " + std::to_string(i % q.groups_per_row));
}

// Packs `q` whose codes are `codes` (rows * row_stride bytes; nullptr: q.codes), e.g. in
// place in a checkpoint's memory map.
inline float_packed pack_float(const QuantizedMatrix& q, gemm_scheme scheme, isa_tier tier,
                               const std::uint8_t* codes = nullptr) {
  check_float_matrix(q, scheme, codes == nullptr);
  if (codes == nullptr) codes = q.codes.data();
  if (!tier_supported(tier, host_cpu_features()))
    fail("pack: ISA tier " + std::string(to_string(tier)) + " is not supported by this CPU");
  float_packed w;
  w.scheme = scheme;
  w.tier = tier;
  // The tier's first sub-tier; pack() records the sub-tier it resolved (the family runs its
  // tier's code on every sub-tier of it).
  w.subtier = isa_subtier::scalar;
  for (isa_subtier s : all_isa_subtiers)
    if (tier_of(s) == tier) {
      w.subtier = s;
      break;
    }
  w.layout = float_layout_colblock32;
  w.rows = q.rows;
  w.cols = q.cols;
  w.group_size = q.group_size;
  w.groups = q.groups_per_row;
  w.blocks = (q.rows + float_block_cols - 1) / float_block_cols;
  const bool eight_bit = q.spec.format == element_format::float8_e4m3fn || q.spec.format == element_format::int8;
  const bool e4m3 = q.spec.format == element_format::float8_e4m3fn;
  w.code = e4m3 ? float_code::e4m3
           : q.spec.format == element_format::int8 ? float_code::int8_signed
           : q.spec.format == element_format::float4_e2m1fn ? float_code::e2m1
           : q.spec.symmetric ? float_code::int4_signed
           : q.spec.zero == zero_form::float_offset ? float_code::uint4_with_offset : float_code::uint4_with_zero;
  w.krow_bytes = eight_bit ? 32 : 16;
  w.codes.assign(static_cast<std::size_t>(w.blocks * w.cols * w.krow_bytes), 0);
  const std::size_t per_block_scales = static_cast<std::size_t>(w.groups * float_block_cols);
  w.scales.assign(static_cast<std::size_t>(w.blocks) * per_block_scales, 0.0f);
  if (float_code_has_group_term(w.code))
    w.zeros.assign(w.scales.size(), 0.0f);

  if (!eight_bit) {
    // 4-bit codes: a transpose of the block's rows. Source byte kb of row j holds k = 2kb
    // (low nibble) and 2kb + 1 (high); k-row k's byte j takes row j's nibble k low and row
    // j + 16's nibble k high. Chunks of 64 source bytes keep the block's rows and the k-rows
    // written in L1.
    const std::int64_t kbytes = q.row_stride;
    constexpr std::int64_t chunk = 64;
    for (std::int64_t b = 0; b < w.blocks; ++b) {
      std::uint8_t* dst = w.codes.data() + b * w.cols * w.krow_bytes;
      for (std::int64_t kb0 = 0; kb0 < kbytes; kb0 += chunk) {
        const std::int64_t kb1 = std::min(kbytes, kb0 + chunk);
        for (std::int64_t j = 0; j < 16; ++j) {
          const std::int64_t ra = b * float_block_cols + j, rb = ra + 16;
          if (ra >= q.rows) break;  // padded columns stay 0
          const std::uint8_t* sa = codes + ra * q.row_stride;
          const std::uint8_t* sb = rb < q.rows ? codes + rb * q.row_stride : nullptr;
          for (std::int64_t kb = kb0; kb < kb1; ++kb) {
            const std::uint8_t a = sa[kb], c = sb ? sb[kb] : 0;
            dst[(2 * kb) * 16 + j] = static_cast<std::uint8_t>((a & 0x0F) | (c << 4));
            // The high nibbles of an odd K's last byte are 0 and have no k-row.
            if (2 * kb + 1 < q.cols) dst[(2 * kb + 1) * 16 + j] = static_cast<std::uint8_t>((a >> 4) | (c & 0xF0));
          }
        }
      }
    }
  }
  for (std::int64_t r = 0; r < q.rows; ++r) {
    const std::int64_t b = r / float_block_cols, j = r % float_block_cols;
    const std::uint8_t* src = codes + r * q.row_stride;
    std::uint8_t* dst = w.codes.data() + b * w.cols * w.krow_bytes;
    for (std::int64_t k = 0; eight_bit && k < q.cols; ++k) {
      // The SIMD decoders do not reproduce NaN; a quantizer never emits it.
      if (e4m3 && (src[k] & 0x7F) == 0x7F)
        fail("pack: weights: E4M3 NaN code at row " + std::to_string(r) + ", column " + std::to_string(k));
      dst[k * w.krow_bytes + j] = src[k];
    }
    for (std::int64_t g = 0; g < q.groups_per_row; ++g) {
      const std::size_t at = static_cast<std::size_t>((b * w.groups + g) * float_block_cols + j);
      const std::size_t from = static_cast<std::size_t>(r * q.groups_per_row + g);
      w.scales[at] = q.scales[from];
      if (w.code == float_code::uint4_with_offset)
        w.zeros[at] = q.offsets[from];
      else if (!w.zeros.empty())
        w.zeros[at] = static_cast<float>(q.zeros[from]);
    }
  }
  return w;
}

}  // namespace lowbit::detail
