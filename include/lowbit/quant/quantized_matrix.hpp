#pragma once
// QuantizedMatrix: a quantized [out, in] weight matrix with everything needed to reproduce
// it exactly (codes, scales, zero points, constraint data), in a plain, documented layout
// that the packer, the algorithms and the checkpoint writer all read.
//
// Dequantization of element (r, c), with g = c / group_size:
//     w_hat(r, c) = (value(code(r, c)) - zero(r, g)) * scales[r * groups_per_row + g]
// where value() is the integer or the exact float value of the code, and zero is 0 for
// symmetric schemes. `scales` always holds the effective fp32 scale of every (row, group),
// already rounded to what the constraint and storage allow, so every consumer can use it
// directly; the compact fields below are the form that storage_bytes() counts and
// checkpoints keep, and they reproduce `scales` bit for bit.
#include <cstdint>
#include <string>
#include <vector>

#include "lowbit/quant/scheme.hpp"

namespace lowbit {

struct QuantizedMatrix {
  QuantSpec spec;
  std::int64_t rows = 0;            // out
  std::int64_t cols = 0;            // in (K)
  std::int64_t group_size = 0;      // effective group length along cols (cols unless per_group)
  std::int64_t groups_per_row = 0;  // ceil(cols / group_size)
  std::int64_t row_stride = 0;      // bytes of `codes` per row

  // Codes, row-major, each row starting on a byte boundary:
  //  - 8-bit formats: one code per byte (int8 symmetric as two's complement; asymmetric int8
  //    as unsigned 0..255);
  //  - 4-bit formats (int4, float4_e2m1fn): nibbles, low nibble first (formats/nibbles.hpp),
  //    row_stride = ceil(cols / 2); an odd last high nibble is 0;
  //  - 6-bit formats: one code per byte in the low 6 bits (storage_bytes() counts 6 bits).
  std::vector<std::uint8_t> codes;

  // Effective scale per (row, group): rows * groups_per_row floats.
  std::vector<float> scales;
  // Asymmetric integer schemes: the integer zero point per (row, group), else empty.
  std::vector<std::uint8_t> zeros;
  // spec.zero == float_offset instead (zeros empty): the fp32 offset per (row, group), and
  // w_hat = fma(value(code), scale, offset) with codes 0..15.
  std::vector<float> offsets;

  // Constraint data (empty when not used):
  //  pow2_m1: shifts = the exponent e of each scale 2^e (rows * groups_per_row)
  //  pow2_m2: row_scales (one per row) and shifts k <= 0 with scale = row_scale * 2^k
  //  mx:      scale_codes = E8M0 code per (row, group)
  //  nvfp4:   scale_codes = E4M3 code s_b per (row, group) and tensor_scale g, with
  //           scale = decode(s_b) / g
  std::vector<float> row_scales;
  std::vector<std::int8_t> shifts;
  std::vector<std::uint8_t> scale_codes;
  float tensor_scale = 1.0f;

  // The tensor's name, used in error messages (and by checkpoints). Not part of the math.
  std::string name = "weight";

  // Bits this matrix takes in its compact stored form: codes (4-bit rows padded to a byte,
  // 6-bit codes counted as 6 bits each) plus every scale, zero point, shift, scale code and
  // the tensor scale. Per-tensor schemes count their one scale (and zero) once.
  std::int64_t storage_bits() const noexcept;
  // ceil(storage_bits() / 8).
  std::int64_t storage_bytes() const noexcept { return (storage_bits() + 7) / 8; }
  // storage_bits() / (rows * cols); 0 for an empty matrix.
  double bits_per_weight() const noexcept {
    return rows * cols == 0 ? 0.0 : static_cast<double>(storage_bits()) / static_cast<double>(rows * cols);
  }
};

inline std::int64_t QuantizedMatrix::storage_bits() const noexcept {
  const int eb = element_bits(spec.format);
  const std::int64_t code_bits = eb == 6 ? rows * cols * 6 : rows * row_stride * 8;
  const std::int64_t real_bits = spec.scale_storage == scale_dtype::f32 ? 32 : 16;
  const std::int64_t groups = spec.gran == granularity::per_tensor ? 1 : rows * groups_per_row;
  std::int64_t meta = 0;
  switch (spec.constraint) {
    case scale_constraint::none: meta = groups * real_bits; break;
    case scale_constraint::pow2_m1: meta = groups * 8; break;  // the exponent, int8
    case scale_constraint::pow2_m2:
      meta = (spec.gran == granularity::per_tensor ? 1 : rows) * real_bits + groups * 8;
      break;
    case scale_constraint::mx: meta = groups * 8; break;           // E8M0
    case scale_constraint::nvfp4: meta = groups * 8 + 32; break;   // E4M3 + fp32 tensor scale
  }
  if (!spec.symmetric) meta += groups * (spec.zero == zero_form::float_offset ? 32 : 8);  // zero point / offset
  return code_bits + meta;
}

}  // namespace lowbit
