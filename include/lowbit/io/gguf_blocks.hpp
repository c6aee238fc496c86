#pragma once
// ggml's block formats, and their exact correspondence with lowbit's QuantizedMatrix.
//
// Block layouts (ggml-common.h; every multi-byte field little-endian; "fp16" is IEEE binary16):
//   Q8_0  (32 elems, 34 B): fp16 d, int8 q[32];                      x[j] = q[j] * d
//   Q4_0  (32 elems, 18 B): fp16 d, u8 qs[16];                       x[j] = ((qs[j] & 15) - 8) * d,
//                                                                    x[j+16] = ((qs[j] >> 4) - 8) * d
//   Q4_1  (32 elems, 20 B): fp16 d, fp16 m, u8 qs[16];               x[j] = (qs[j] & 15) * d + m, x[j+16]: >> 4
//   MXFP4 (32 elems, 17 B): u8 e (E8M0), u8 qs[16] of E2M1 codes;    x[j] = kv[qs[j] & 15] * 2^(e-128),
//                           kv = {0,1,2,3,4,6,8,12,0,-1,...,-12}    x[j+16]: >> 4
//     (ggml stores the E2M1 values doubled in an int8 table and halves the scale, 2^(e-127)/2,
//      so x = E2M1(code) * 2^(e-127) exactly: the OCP MX value. Code 8, E2M1's -0, decodes
//      to +0.)
//   Q4_K  (256 elems, 144 B): fp16 d, fp16 dmin, u8 scales[12] (eight 6-bit scales and mins),
//         u8 qs[128]; for each 64-element chunk c: sub-blocks 2c and 2c+1 with
//         x = (d * sc) * q - (dmin * m), q = low nibbles (first 32) / high nibbles (next 32)
//   Q6_K  (256 elems, 210 B): u8 ql[128], u8 qh[64], int8 scales[16], fp16 d;
//         x = (d * scale) * (q - 32), q the 6-bit code (4 low bits from ql, 2 from qh)
// Note the 32-block nibble order: element j and element j + 16 share byte j, unlike lowbit's
// row-wide order (elements 2i and 2i + 1 share byte i); the mapping below reorders.
//
// Float evaluation: every product above is exact in fp32 (at most 4 + 11 or 6 + 11 + 8
// significant bits), Q6_K's in any association (sc * (q - 32) has at most 12 bits, d 11); the
// sums add an exact product to a value, so FMA contraction cannot change any result.
//
// lowbit -> GGUF (gguf_encode): exact or refused, naming the tensor and the feature.
//   int8 symmetric, groups of a multiple of 32 (or per channel / per tensor)  -> Q8_0
//   int4 symmetric (either scale rule, incl. q4_0's -8), same grouping      -> Q4_0 (code + 8)
//   int4 asymmetric, same grouping, when -zero * scale is an fp16 value     -> Q4_1 (m = -z*S)
//   MXFP4 (E2M1, mx constraint)                                              -> MXFP4
// Every scale must be an fp16 value (f16 scale storage guarantees it; pow2_m1 / pow2_m2 scales
// usually are, and then export exactly as their effective scale). A group of 128 repeats its
// scale in four blocks. Refused: group sizes that are not a multiple of 32, rows that are not
// a multiple of 32, non-fp16 scales, asymmetric int8, FP8/FP6, NVFP4, MX with other elements.
//
// GGUF -> lowbit (gguf_to_quantized): Q8_0, Q4_0, MXFP4 always (except ggml's int8 code -128
// and E8M0 255, which lowbit's kernels do not take); Q4_1 only where every block's min is
// -z * d for an integer z in [0, 15] (Q4_1 does not use the float-offset form yet); Q6_K as
// int8 in groups of 16 with fp32 scales d * sc (detail::gguf_q6k_to_quantized); Q4_K as int4
// with float offsets (QuantSpec::zero == float_offset, detail::gguf_q4k_to_quantized).
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <string>
#include <vector>

#include "lowbit/config.hpp"
#include "lowbit/error.hpp"
#include "lowbit/formats/nibbles.hpp"
#include "lowbit/io/dtype.hpp"
#include "lowbit/io/gguf.hpp"
#include "lowbit/quant/element_codec.hpp"
#include "lowbit/quant/group_io.hpp"
#include "lowbit/quant/quantized_matrix.hpp"
#include "lowbit/quant/scheme.hpp"

namespace lowbit {

namespace detail {

inline std::uint16_t gguf_load_u16(const std::byte* p) noexcept { return load_unaligned<std::uint16_t>(p); }
inline void gguf_store_u16(std::uint8_t* p, std::uint16_t v) noexcept { std::memcpy(p, &v, 2); }

// ggml's E2M1 table, values doubled (int8) as the format defines them.
constexpr std::int8_t gguf_mxfp4_doubled[16] = {0, 1, 2, 3, 4, 6, 8, 12, 0, -1, -2, -3, -4, -6, -8, -12};

// 2^(e-128): half the E8M0 scale, built from bits like the format's reference (e < 2 is
// subnormal).
inline float gguf_e8m0_half(std::uint8_t e) noexcept {
  const std::uint32_t bits = e < 2 ? 0x00200000u << e : static_cast<std::uint32_t>(e - 1) << 23;
  return bits_to_float(bits);
}

// Q4_K's eight 6-bit scales and mins packed into 12 bytes: j < 4 in the low 6 bits of bytes j
// (scale) and j + 4 (min); j >= 4 as a low nibble in byte j + 4 with its top two bits in the
// top bits of byte j - 4 (scale) / byte j (min).
inline void gguf_q4k_scale_min(int j, const std::uint8_t* s, std::uint8_t& sc, std::uint8_t& m) noexcept {
  if (j < 4) {
    sc = s[j] & 63;
    m = s[j + 4] & 63;
  } else {
    sc = static_cast<std::uint8_t>((s[j + 4] & 0xF) | ((s[j - 4] >> 6) << 4));
    m = static_cast<std::uint8_t>((s[j + 4] >> 4) | ((s[j] >> 6) << 4));
  }
}

template <class Deferred = void>  // see "Compile time" in docs/design.md
inline void gguf_decode_block(gguf_type t, const std::byte* b, float* y) {
  const auto* u = reinterpret_cast<const std::uint8_t*>(b);
  switch (t) {
    case gguf_type::q8_0: {
      const float d = half_to_float(gguf_load_u16(b));
      for (int j = 0; j < 32; ++j) y[j] = static_cast<float>(static_cast<std::int8_t>(u[2 + j])) * d;
      return;
    }
    case gguf_type::q4_0: {
      const float d = half_to_float(gguf_load_u16(b));
      for (int j = 0; j < 16; ++j) {
        y[j] = static_cast<float>((u[2 + j] & 0xF) - 8) * d;
        y[j + 16] = static_cast<float>((u[2 + j] >> 4) - 8) * d;
      }
      return;
    }
    case gguf_type::q4_1: {
      const float d = half_to_float(gguf_load_u16(b)), m = half_to_float(gguf_load_u16(b + 2));
      for (int j = 0; j < 16; ++j) {
        y[j] = static_cast<float>(u[4 + j] & 0xF) * d + m;
        y[j + 16] = static_cast<float>(u[4 + j] >> 4) * d + m;
      }
      return;
    }
    case gguf_type::mxfp4: {
      const float d = gguf_e8m0_half(u[0]);
      for (int j = 0; j < 16; ++j) {
        y[j] = static_cast<float>(gguf_mxfp4_doubled[u[1 + j] & 0xF]) * d;
        y[j + 16] = static_cast<float>(gguf_mxfp4_doubled[u[1 + j] >> 4]) * d;
      }
      return;
    }
    case gguf_type::q4_k: {
      const float d = half_to_float(gguf_load_u16(b)), dmin = half_to_float(gguf_load_u16(b + 2));
      const std::uint8_t* scales = u + 4;
      const std::uint8_t* q = u + 16;
      for (int c = 0; c < 4; ++c, q += 32) {
        std::uint8_t sc = 0, m = 0;
        gguf_q4k_scale_min(2 * c, scales, sc, m);
        const float d1 = d * static_cast<float>(sc), m1 = dmin * static_cast<float>(m);
        gguf_q4k_scale_min(2 * c + 1, scales, sc, m);
        const float d2 = d * static_cast<float>(sc), m2 = dmin * static_cast<float>(m);
        for (int l = 0; l < 32; ++l) y[64 * c + l] = d1 * static_cast<float>(q[l] & 0xF) - m1;
        for (int l = 0; l < 32; ++l) y[64 * c + 32 + l] = d2 * static_cast<float>(q[l] >> 4) - m2;
      }
      return;
    }
    case gguf_type::q6_k: {
      const std::uint8_t* ql = u;
      const std::uint8_t* qh = u + 128;
      const auto* sc = reinterpret_cast<const std::int8_t*>(u + 192);
      const float d = half_to_float(gguf_load_u16(b + 208));
      // Each 128-element half uses 64 bytes of ql, 32 of qh and 8 scales (one per 16).
      for (int h = 0; h < 2; ++h, ql += 64, qh += 32, sc += 8) {
        float* yh = y + 128 * h;
        for (int l = 0; l < 32; ++l) {
          const int is = l / 16;
          const int q1 = ((ql[l] & 0xF) | (((qh[l] >> 0) & 3) << 4)) - 32;
          const int q2 = ((ql[l + 32] & 0xF) | (((qh[l] >> 2) & 3) << 4)) - 32;
          const int q3 = ((ql[l] >> 4) | (((qh[l] >> 4) & 3) << 4)) - 32;
          const int q4 = ((ql[l + 32] >> 4) | (((qh[l] >> 6) & 3) << 4)) - 32;
          yh[l] = d * static_cast<float>(sc[is]) * static_cast<float>(q1);
          yh[l + 32] = d * static_cast<float>(sc[is + 2]) * static_cast<float>(q2);
          yh[l + 64] = d * static_cast<float>(sc[is + 4]) * static_cast<float>(q3);
          yh[l + 96] = d * static_cast<float>(sc[is + 6]) * static_cast<float>(q4);
        }
      }
      return;
    }
    default: fail("GGUF: blocks of type " + gguf_type_name(t) + " do not decode to float in lowbit");
  }
}

}  // namespace detail

// Whether gguf_decode handles the type.
constexpr bool gguf_decodes(gguf_type t) noexcept {
  switch (t) {
    case gguf_type::f32: case gguf_type::f16: case gguf_type::bf16: case gguf_type::q8_0: case gguf_type::q4_0:
    case gguf_type::q4_1: case gguf_type::mxfp4: case gguf_type::q4_k: case gguf_type::q6_k: return true;
    default: return false;
  }
}

// Decodes n elements (a whole number of blocks) of type t at src into out.
template <class Deferred = void>  // see "Compile time" in docs/design.md
inline void gguf_decode(gguf_type t, const std::byte* src, std::int64_t n, float* out) {
  const gguf_block_geometry g = gguf_geometry(static_cast<std::uint32_t>(t));
  if (!gguf_decodes(t)) detail::fail("GGUF: type " + gguf_type_name(t) + " does not decode to float in lowbit");
  if (n < 0 || n % g.block_elems != 0)
    detail::fail("GGUF: " + std::to_string(n) + " elements are not a whole number of " + gguf_type_name(t) + " blocks");
  switch (t) {
    case gguf_type::f32: dtype_to_float(tensor_dtype::f32, src, out, static_cast<std::size_t>(n)); return;
    case gguf_type::f16: dtype_to_float(tensor_dtype::f16, src, out, static_cast<std::size_t>(n)); return;
    case gguf_type::bf16: dtype_to_float(tensor_dtype::bf16, src, out, static_cast<std::size_t>(n)); return;
    default:
      for (std::int64_t b = 0; b < n / g.block_elems; ++b)
        detail::gguf_decode_block(t, src + b * g.block_bytes, out + b * g.block_elems);
  }
}

// A tensor as a row-major [rows, cols] float matrix (cols = ne[0]).
template <class Deferred = void>  // see "Compile time" in docs/design.md
inline RowMatrixXf gguf_to_matrix(const GgufTensor& t) {
  if (!gguf_decodes(t.ggml_type()))
    detail::fail("tensor '" + t.name + "': type " + gguf_type_name(t.type) + " does not decode to float in lowbit");
  RowMatrixXf m(t.rows(), t.cols());
  gguf_decode(t.ggml_type(), t.data, static_cast<std::int64_t>(t.numel()), m.data());
  return m;
}

// Floats as F32, F16 or BF16 bytes (nearest even for the 16-bit types).
template <class Deferred = void>  // see "Compile time" in docs/design.md
inline std::vector<std::uint8_t> gguf_encode_float(gguf_type t, const float* x, std::size_t n) {
  std::vector<std::uint8_t> out;
  if (t == gguf_type::f32) {
    out.resize(n * 4);
    if (n > 0) std::memcpy(out.data(), x, n * 4);
  } else if (t == gguf_type::f16 || t == gguf_type::bf16) {
    out.resize(n * 2);
    for (std::size_t i = 0; i < n; ++i)
      detail::gguf_store_u16(out.data() + 2 * i, t == gguf_type::f16 ? detail::float_to_half(x[i]) : detail::float_to_bf16(x[i]));
  } else {
    detail::fail("GGUF: gguf_encode_float writes F32, F16 or BF16, not " + gguf_type_name(t));
  }
  return out;
}

namespace detail {

[[noreturn]] inline void gguf_refuse(const QuantizedMatrix& q, const std::string& why) {
  fail("GGUF export of '" + q.name + "': " + why);
}

// The fp16 bits of a scale, refusing one that fp16 does not hold exactly.
template <class Deferred = void>  // see "Compile time" in docs/design.md
inline std::uint16_t gguf_exact_half(const QuantizedMatrix& q, float v, std::int64_t r, std::int64_t g,
                                     const char* what) {
  const std::uint16_t h = float_to_half(v);
  if (float_to_bits(half_to_float(h)) != float_to_bits(v))
    gguf_refuse(q, std::string(what) + " " + std::to_string(v) + " of row " + std::to_string(r) + ", group " +
                       std::to_string(g) + " is not an fp16 value (GGUF stores fp16; use f16 scale storage)");
  return h;
}

}  // namespace detail

namespace detail {

// The one rule of which weight schemes GGUF holds exactly: empty when `s` maps to a GGUF type
// (stored in *type), else what has no GGUF form. gguf_type_for() refuses with it, and
// model::exportable() (model/exportable.hpp) answers with it before anything is quantized.
template <class Deferred = void>  // see "Compile time" in docs/design.md
inline std::string gguf_spec_refusal(const QuantSpec& s, gguf_type* type) {
  gguf_type t = gguf_type::q8_0;
  if (s.zero == zero_form::float_offset)
    return "float-offset groups (a GGUF Q4_K import) are not exported (no Q4_K writer yet)";
  if (s.constraint == scale_constraint::nvfp4)
    return "NVFP4 (E4M3 scales per 16 with a tensor scale) has no GGUF type lowbit writes";
  if (s.constraint == scale_constraint::mx) {
    if (s.format != element_format::float4_e2m1fn) return "MXFP8/MXFP6 have no GGUF type";
    t = gguf_type::mxfp4;
  } else {
    switch (s.format) {
      case element_format::int8:
        if (!s.symmetric) return "asymmetric int8 (a zero point) has no GGUF type";
        t = gguf_type::q8_0;
        break;
      case element_format::int4: t = s.symmetric ? gguf_type::q4_0 : gguf_type::q4_1; break;
      default: return "float element formats other than MXFP4 (FP8, FP6, FP4 without MX scales) have no GGUF type";
    }
  }
  if (type != nullptr) *type = t;
  return {};
}

// The block-layout rule: empty when rows of `cols` elements with one scale per `group_size`
// elements fit GGUF's 32-element blocks, else why not.
template <class Deferred = void>  // see "Compile time" in docs/design.md
inline std::string gguf_layout_refusal(std::int64_t cols, std::int64_t group_size) {
  if (cols % 32 != 0)
    return "rows of " + std::to_string(cols) + " elements are not a whole number of 32-element GGUF blocks";
  if (group_size % 32 != 0)
    return "group size " + std::to_string(group_size) + " is not a multiple of GGUF's 32-element blocks (one scale per block)";
  return {};
}

}  // namespace detail

// The GGUF type a quantized matrix maps to exactly, or an error naming what has no GGUF form.
template <class Deferred = void>  // see "Compile time" in docs/design.md
inline gguf_type gguf_type_for(const QuantizedMatrix& q) {
  gguf_type t{};
  const std::string why = detail::gguf_spec_refusal(q.spec, &t);
  if (!why.empty()) detail::gguf_refuse(q, why);
  return t;
}

// q's codes and scales as GGUF blocks of type t (row after row, ne = {cols, rows}); the
// decoded blocks equal dequantize(q) bit for bit (MXFP4: up to the sign of zero, see above).
template <class Deferred = void>  // see "Compile time" in docs/design.md
inline std::vector<std::uint8_t> gguf_encode(const QuantizedMatrix& q, gguf_type t) {
  detail::check_layout(q);
  const gguf_type want = gguf_type_for(q);
  if (want != t)
    detail::gguf_refuse(q, "its scheme maps to " + gguf_type_name(want) + ", not to " + gguf_type_name(t));
  if (const std::string why = detail::gguf_layout_refusal(q.cols, q.group_size); !why.empty()) detail::gguf_refuse(q, why);
  const gguf_block_geometry geo = gguf_geometry(static_cast<std::uint32_t>(t));
  const std::int64_t blocks = q.cols / 32;
  std::vector<std::uint8_t> out(static_cast<std::size_t>(q.rows * blocks * geo.block_bytes));
  std::uint8_t codes[32];
  for (std::int64_t r = 0; r < q.rows; ++r) {
    const std::uint8_t* row = q.codes.data() + r * q.row_stride;
    for (std::int64_t b = 0; b < blocks; ++b) {
      std::uint8_t* o = out.data() + (r * blocks + b) * geo.block_bytes;
      const std::int64_t g = (b * 32) / q.group_size;
      const std::size_t gi = static_cast<std::size_t>(r * q.groups_per_row + g);
      const float scale = q.scales[gi];
      if (t == gguf_type::q8_0) {
        detail::gguf_store_u16(o, detail::gguf_exact_half(q, scale, r, g, "scale"));
        std::memcpy(o + 2, row + b * 32, 32);
        continue;
      }
      unpack_nibbles(row + b * 16, 32, codes);
      std::uint8_t* qs = o + 2;
      if (t == gguf_type::q4_0) {
        detail::gguf_store_u16(o, detail::gguf_exact_half(q, scale, r, g, "scale"));
        for (int i = 0; i < 32; ++i) codes[i] ^= 8;  // two's complement nibble v -> v + 8
      } else if (t == gguf_type::q4_1) {
        detail::gguf_store_u16(o, detail::gguf_exact_half(q, scale, r, g, "scale"));
        // -z * S is exact in fp32 (4 x 11 bits); fp16 must hold it too.
        const float m = -static_cast<float>(q.zeros[gi]) * scale;
        detail::gguf_store_u16(o + 2, detail::gguf_exact_half(q, m, r, g, "min -zero*scale (Q4_1 keeps it in fp16)"));
        qs = o + 4;
      } else {  // mxfp4
        o[0] = q.scale_codes[gi];
        qs = o + 1;
      }
      for (int j = 0; j < 16; ++j) qs[j] = static_cast<std::uint8_t>((codes[j] & 0xF) | ((codes[j + 16] & 0xF) << 4));
    }
  }
  return out;
}

namespace detail {

// The QuantizedMatrix a K-quant tensor (`type`: 256-element super-blocks) imports into,
// before its blocks are read: `spec` with fp32 scales (d * sc is not an fp16 value in
// general), codes (one byte each for int8, two per byte for int4) and scales zeroed.
template <class Deferred = void>  // see "Compile time" in docs/design.md
inline QuantizedMatrix gguf_kquant_matrix(const GgufTensor& t, const std::string& who, const char* type,
                                          QuantSpec spec) {
  if (t.rows() <= 0 || t.cols() <= 0 || t.cols() % 256 != 0)
    fail(who + type + " rows must be a positive multiple of 256 elements");
  spec.scale_storage = scale_dtype::f32;
  QuantizedMatrix q;
  q.name = t.name;
  q.spec = spec;
  q.rows = t.rows();
  q.cols = t.cols();
  q.group_size = spec.group_size;
  q.groups_per_row = q.cols / spec.group_size;
  q.row_stride = spec.format == element_format::int4 ? q.cols / 2 : q.cols;
  q.codes.assign(static_cast<std::size_t>(q.rows * q.row_stride), 0);
  q.scales.assign(static_cast<std::size_t>(q.rows * q.groups_per_row), 0.0f);
  return q;
}

// Q6_K as symmetric int8 in groups of 16 with fp32 scales: code = q - 32 (in [-32, 31]),
// scale = d * sc (sc the block's int8 sub-scale, sign kept: negating a negative scale and its
// codes would turn ggml's -0 results into +0). d * sc has at most 11 + 8 significant bits and
// code * scale at most 23, so code * scale is ggml's (d * sc) * (q - 32) bit for bit in any
// association. The layer runs on the weight-only int8 kernel (w8a16_int8).
template <class Deferred = void>  // see "Compile time" in docs/design.md
inline QuantizedMatrix gguf_q6k_to_quantized(const GgufTensor& t, const std::string& who) {
  constexpr std::int64_t block = 256, block_bytes = 210;
  QuantizedMatrix q = gguf_kquant_matrix(t, who, "Q6_K", group_spec(element_format::int8, 16));
  const std::int64_t blocks_per_row = q.cols / block;
  for (std::int64_t r = 0; r < q.rows; ++r)
    for (std::int64_t bi = 0; bi < blocks_per_row; ++bi) {
      const auto* u = reinterpret_cast<const std::uint8_t*>(t.data + (r * blocks_per_row + bi) * block_bytes);
      const std::uint8_t* ql = u;
      const std::uint8_t* qh = u + 128;
      const auto* sc = reinterpret_cast<const std::int8_t*>(u + 192);
      const float d = half_to_float(gguf_load_u16(reinterpret_cast<const std::byte*>(u + 208)));
      if (!std::isfinite(d))
        fail(who + "row " + std::to_string(r) + ", block " + std::to_string(bi) + ": scale d is not finite");
      float* scales = q.scales.data() + r * q.groups_per_row + bi * 16;
      for (int i = 0; i < 16; ++i) scales[i] = d * static_cast<float>(sc[i]);
      auto* codes = reinterpret_cast<std::int8_t*>(q.codes.data() + r * q.row_stride + bi * block);
      // The element order of gguf_decode_block: element 128h + 32t + l takes its low 4 bits
      // from ql[64h + l + 32 (t & 1)] (low nibble for t < 2) and its top 2 from qh[32h + l] >> 2t.
      for (int h = 0; h < 2; ++h)
        for (int tq = 0; tq < 4; ++tq)
          for (int l = 0; l < 32; ++l) {
            const std::uint8_t lo = ql[64 * h + l + 32 * (tq & 1)];
            const int low4 = tq < 2 ? (lo & 0xF) : (lo >> 4);
            const int q6 = low4 | (((qh[32 * h + l] >> (2 * tq)) & 3) << 4);
            codes[128 * h + 32 * tq + l] = static_cast<std::int8_t>(q6 - 32);
          }
    }
  return q;
}

// Q4_K as int4 asymmetric in groups of 32 with float offsets (QuantSpec::zero ==
// float_offset): codes q (0..15), scale d * sc, offset -(dmin * m), so that dequantize()'s
// fma(q, scale, offset) is ggml's (d * sc) * q - dmin * m bit for bit: d * sc and dmin * m
// have at most 17 significant bits, (d * sc) * q at most 21 (exact, no overflow or
// subnormal), so ggml's one rounding is the subtraction, which is the fma's.
template <class Deferred = void>  // see "Compile time" in docs/design.md
inline QuantizedMatrix gguf_q4k_to_quantized(const GgufTensor& t, const std::string& who) {
  constexpr std::int64_t block = 256, block_bytes = 144;
  QuantSpec spec = group_spec(element_format::int4, 32, scale_constraint::none, false);
  spec.zero = zero_form::float_offset;
  QuantizedMatrix q = gguf_kquant_matrix(t, who, "Q4_K", spec);
  q.offsets.assign(q.scales.size(), 0.0f);
  const std::int64_t blocks_per_row = q.cols / block;
  std::uint8_t codes[256];
  for (std::int64_t r = 0; r < q.rows; ++r)
    for (std::int64_t bi = 0; bi < blocks_per_row; ++bi) {
      const std::byte* b = t.data + (r * blocks_per_row + bi) * block_bytes;
      const auto* u = reinterpret_cast<const std::uint8_t*>(b);
      const float d = half_to_float(gguf_load_u16(b)), dmin = half_to_float(gguf_load_u16(b + 2));
      if (!std::isfinite(d) || !std::isfinite(dmin))
        fail(who + "row " + std::to_string(r) + ", block " + std::to_string(bi) + ": scale d or dmin is not finite");
      const std::size_t g0 = static_cast<std::size_t>(r * q.groups_per_row + bi * 8);
      for (int j = 0; j < 8; ++j) {
        std::uint8_t sc = 0, m = 0;
        gguf_q4k_scale_min(j, u + 4, sc, m);
        q.scales[g0 + std::size_t(j)] = d * static_cast<float>(sc);
        q.offsets[g0 + std::size_t(j)] = -(dmin * static_cast<float>(m));
      }
      // Chunk c: elements 64c + l in the low nibbles of qs[32c + l], 64c + 32 + l in the high.
      const std::uint8_t* qs = u + 16;
      for (int c = 0; c < 4; ++c)
        for (int l = 0; l < 32; ++l) {
          codes[64 * c + l] = qs[32 * c + l] & 0xF;
          codes[64 * c + 32 + l] = qs[32 * c + l] >> 4;
        }
      pack_nibbles(codes, 256, q.codes.data() + r * q.row_stride + bi * (block / 2));
    }
  return q;
}

}  // namespace detail

// A Q8_0 / Q4_0 / Q4_1 / MXFP4 tensor as a lowbit QuantizedMatrix with the same dequantized
// values (group 32), Q6_K as int8 in groups of 16 (detail::gguf_q6k_to_quantized), Q4_K as
// int4 with float offsets in groups of 32 (detail::gguf_q4k_to_quantized); fails
// naming the tensor and block where lowbit's form cannot hold it.
template <class Deferred = void>  // see "Compile time" in docs/design.md
inline QuantizedMatrix gguf_to_quantized(const GgufTensor& t) {
  const gguf_type type = t.ggml_type();
  const std::string who = "GGUF import of tensor '" + t.name + "': ";
  if (type == gguf_type::q6_k) return detail::gguf_q6k_to_quantized(t, who);
  if (type == gguf_type::q4_k) return detail::gguf_q4k_to_quantized(t, who);
  QuantSpec spec;
  switch (type) {
    case gguf_type::q8_0: spec = group_spec(element_format::int8, 32); break;
    case gguf_type::q4_0: spec = group_spec(element_format::int4, 32); spec.int_rule = int_scale_rule::q4_0; break;
    case gguf_type::q4_1: spec = group_spec(element_format::int4, 32, scale_constraint::none, false); break;
    case gguf_type::mxfp4: spec = mx_spec(element_format::float4_e2m1fn); break;
    default: detail::fail(who + "type " + gguf_type_name(t.type) + " has no lowbit quantized form (decode it to float)");
  }
  if (type != gguf_type::mxfp4) spec.scale_storage = scale_dtype::f16;
  if (t.rows() <= 0 || t.cols() <= 0) detail::fail(who + "empty tensor");
  QuantizedMatrix q;
  q.name = t.name;
  q.spec = spec;
  q.rows = t.rows();
  q.cols = t.cols();
  q.group_size = 32;
  q.groups_per_row = q.cols / 32;
  q.row_stride = type == gguf_type::q8_0 ? q.cols : q.cols / 2;
  const std::size_t n = static_cast<std::size_t>(q.rows * q.groups_per_row);
  q.codes.assign(static_cast<std::size_t>(q.rows * q.row_stride), 0);
  q.scales.assign(n, 0.0f);
  if (type == gguf_type::q4_1) q.zeros.assign(n, 0);
  if (type == gguf_type::mxfp4) q.scale_codes.assign(n, 0);
  const gguf_block_geometry geo = gguf_geometry(t.type);
  std::uint8_t codes[32];
  for (std::size_t gi = 0; gi < n; ++gi) {
    const std::byte* b = t.data + gi * geo.block_bytes;
    const auto* u = reinterpret_cast<const std::uint8_t*>(b);
    const std::int64_t r = static_cast<std::int64_t>(gi) / q.groups_per_row, g = static_cast<std::int64_t>(gi) % q.groups_per_row;
    // The message is built only on failure: this loop runs once per 32 weights.
    const auto fail_block = [&](const std::string& problem) {
      detail::fail(who + "row " + std::to_string(r) + ", block " + std::to_string(g) + ": " + problem);
    };
    std::uint8_t* row = q.codes.data() + r * q.row_stride;
    if (type == gguf_type::mxfp4) {
      if (u[0] == 255) fail_block("E8M0 scale 255 (NaN in OCP MX) has no lowbit form");
      q.scale_codes[gi] = u[0];
      q.scales[gi] = std::ldexp(1.0f, int(u[0]) - 127);
    } else {
      const float d = detail::half_to_float(detail::gguf_load_u16(b));
      if (!std::isfinite(d)) fail_block("scale is not finite");
      q.scales[gi] = d;
    }
    if (type == gguf_type::q8_0) {
      for (int j = 0; j < 32; ++j)
        if (u[2 + j] == 0x80) fail_block("int8 code -128 is outside lowbit's symmetric range -127..127");
      std::memcpy(row + g * 32, u + 2, 32);
      continue;
    }
    const std::uint8_t* qs = u + (type == gguf_type::q4_1 ? 4 : type == gguf_type::q4_0 ? 2 : 1);
    for (int j = 0; j < 16; ++j) {
      codes[j] = qs[j] & 0xF;
      codes[j + 16] = qs[j] >> 4;
    }
    if (type == gguf_type::q4_0)
      for (int i = 0; i < 32; ++i) codes[i] ^= 8;
    if (type == gguf_type::q4_1) {
      // lowbit's asymmetric form is (code - z) * S with an integer z: the min must be -z * d.
      const float d = q.scales[gi], m = detail::half_to_float(detail::gguf_load_u16(b + 2));
      const float z = d != 0.0f ? -m / d : 0.0f;
      if (!std::isfinite(m) || !(z >= 0.0f && z <= 15.0f) || std::nearbyint(z) != z || -z * d != m)
        fail_block("min " + std::to_string(m) +
                   " is not -z * scale for an integer z in [0, 15] (Q4_1 does not use the float-offset form yet)");
      q.zeros[gi] = static_cast<std::uint8_t>(z);
    }
    pack_nibbles(codes, 32, row + g * 16);
  }
  return q;
}

}  // namespace lowbit
