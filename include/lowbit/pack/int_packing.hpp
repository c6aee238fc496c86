#pragma once
// Packing for the integer-activation kernels (w8a8_int8, w4a8_int4, w4a8_int4_m2).
//
// The dot instruction of every x86 tier (VPDPBUSD, or VPMADDUBSW without VNNI) multiplies
// UNSIGNED bytes by SIGNED bytes. lowbit makes the weight the unsigned operand, stored with a
// bias (int8: w + 128 in 0..255, int4: w + 8 in 0..15), and the activation the signed one,
// because the activation is the operand broadcast from memory ({1to16}) and only the signed
// operand of VPDPBUSD may come from memory. The bias is removed exactly in int32 once per
// group: acc = sum (w + B) * a - B * sum a, where sum a (per token and group) is computed when
// the activations are quantized (prepare), so the weights need no column sums at all.
//
// Tile layout (one per ISA tier; `nt` columns per tile, 16-column sub-blocks of 64 bytes):
//   for each tile of nt output columns:
//     for each group g (its length padded up to a multiple of kstep with zero weights):
//       for each k step:  nt columns x 4 bytes, column c at (c / 16) * 64 + (c % 16) * 4:
//            int8: byte j = w[c, k0 + j] + 128                              (kstep 4)
//            int4: byte j = (w[c, k0 + j] + 8) | (w[c, k0 + 4 + j] + 8) << 4 (kstep 8)
//       nt x 4 bytes of group parameters: fp32 scale s_w[n, g], or for M2 the int32 left shift
//            shift[n, g] - min_g shift[n, g] (>= 0)
//     M2 only: nt fp32 row factors row_scale[n] * 2^(min_g shift[n, g])
// Every 16-column sub-block is one zmm (16 int32 lanes x 4 bytes), two ymm or four NEON q
// registers, so one byte order serves every tier; the tile width differs per tier and is
// recorded, so packed weights made for another tier are rejected.
//
// AMX (sub-tier amx) keeps this byte order: 16 consecutive k steps of one 16-column sub-block
// are exactly an AMX B tile in its "VNNI" layout (row r = k quad r, 4 bytes per column), so an
// int8 B tile loads straight from the packed weights with a 128-byte row stride, and an int4
// K block (8 steps) unpacks into two B tiles (low nibbles: even rows, high nibbles: odd rows).
// The only difference is the padding: every group is padded to a multiple of 64 inputs (one
// TDPBSSD's K, `k_align`), with weights at the bias and activations zero, so no tile ever
// reads across a group boundary. The sub-tier and k_align are recorded with the tier.
//
// NEON I8MM (sub-tier neoni8mm, layout `mmla`) reorders the bytes inside each PAIR of k steps,
// so that one 16-byte load is one operand of USMMLA (2 rows x 8 bytes, row-major): in the 128
// bytes of a step pair of a 16-column sub-block, column c owns bytes (c % 16) * 8 .. + 7, so
// the 16 bytes of columns 2p and 2p + 1 are that operand (two weight rows interleaved in
// 8-byte k chunks):
//   int8 (pair = 8 inputs):  byte j = w[c, k0 + j] + 128                           j = 0..7
//   int4 (pair = 16 inputs): byte j = (w[c, k0 + j] + 8) | (w[c, k0 + 8 + j] + 8) << 4
// (int4: AND 0x0F gives the operand of inputs k0..k0+7, a shift by 4 that of k0+8..k0+15).
// Groups are padded to a whole pair (k_align = 2 * kstep); the group parameters and the tile
// size are unchanged. The layout is recorded (int_packed::layout) with k_align.
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <string>
#include <vector>

#include "lowbit/detail/aligned_buffer.hpp"
#include "lowbit/dispatch/cpu_features.hpp"
#include "lowbit/error.hpp"
#include "lowbit/formats/nibbles.hpp"
#include "lowbit/kernels/kernel.hpp"
#include "lowbit/quant/quantized_matrix.hpp"

namespace lowbit::detail {

// Exact int32 limits (see docs/performance.md, "Overflow"):
//  - w8a8_int8: |sum over one group of w * a| <= len * 127 * 127, so a group may hold up to
//    133,144 inputs (2^31 - 1 = 2,147,483,647 >= 133,144 * 16,129).
//  - w4a8_int4_m2: the whole row accumulates sum_k w * a * 2^s(k), |w| <= 8, |a| <= 127, so
//    K * 1016 * 2^spread <= 2^31 - 1, spread = the largest (max_g shift - min_g shift) of any
//    row. lowbit claims K <= 16,384 at spread 7 (16,384 * 1016 * 128 = 2,130,706,432) and,
//    generally, K * 2^spread <= 2,113,665.
constexpr std::int64_t int8_group_k_limit = 133144;
constexpr std::int64_t m2_k_times_pow2_spread_limit = 2113665;

// The integer schemes' template parameters: 4-bit codes, M2 scales.
constexpr bool int_scheme_is_int4(gemm_scheme s) noexcept { return s != gemm_scheme::w8a8_int8; }
constexpr bool int_scheme_is_m2(gemm_scheme s) noexcept { return s == gemm_scheme::w4a8_int4_m2; }

// The byte order inside the k steps of a tile (see above).
enum class int_layout : std::uint8_t {
  dot4,  // 4 bytes per column and k step (VPDPBUSD, VPMADDUBSW, AMX's VNNI order, SDOT)
  mmla,  // k steps in pairs, 8 bytes per column: USMMLA's 2 x 8 operands (neoni8mm)
};

struct int_packed : packed_header {  // family int_act; rows = N, cols = K (packed_header)
  int nt = 16;           // output columns per tile
  int k_align = 4;       // each group padded to a multiple of this: kstep, or 64 for AMX
  int kstep = 4;         // inputs per 4-byte lane: 4 (int8) or 8 (int4)
  int weight_bias = 128; // added to each stored weight: 128 (int8) or 8 (int4)
  int_layout layout = int_layout::dot4;  // byte order inside the k steps
  bool per_channel = true;
  std::int64_t group_padded = 0;         // group_size rounded up to kstep
  std::int64_t last_group_padded = 0;
  std::int64_t k_padded = 0;             // sum of padded group lengths
  std::int64_t n_tiles = 0, tile_bytes = 0;
  int shift_spread = 0;                  // M2: largest per-row shift range
  aligned_buffer<std::uint8_t> data;

  int_packed() { family = kernel_family::int_act; }
  int_packed(int_packed&&) noexcept = default;
  int_packed& operator=(int_packed&&) noexcept = default;
  int_packed(const int_packed& o) : packed_header(o) { *this = o; }
  int_packed& operator=(const int_packed& o) {
    if (this != &o) {
      static_cast<packed_header&>(*this) = o;
      nt = o.nt; k_align = o.k_align; kstep = o.kstep; weight_bias = o.weight_bias;
      layout = o.layout;
      per_channel = o.per_channel;
      group_padded = o.group_padded; last_group_padded = o.last_group_padded;
      k_padded = o.k_padded; n_tiles = o.n_tiles; tile_bytes = o.tile_bytes;
      shift_spread = o.shift_spread; data = o.data.clone();
    }
    return *this;
  }

  std::int64_t padded_len(std::int64_t g) const noexcept {
    return g + 1 == groups ? last_group_padded : group_padded;
  }
  std::int64_t group_len(std::int64_t g) const noexcept {
    return g + 1 == groups ? cols - g * group_size : group_size;
  }
  bool is_m2() const noexcept { return scheme == gemm_scheme::w4a8_int4_m2; }
  bool is_int4() const noexcept { return kstep == 8; }
  const std::uint8_t* tile(std::int64_t t) const noexcept { return data.data() + t * tile_bytes; }
};

inline std::int64_t round_up(std::int64_t v, std::int64_t m) noexcept { return (v + m - 1) / m * m; }

// The signed weight code of QuantizedMatrix element (r, c) for the integer formats.
inline int int_weight_code(const QuantizedMatrix& q, std::int64_t r, std::int64_t c) noexcept {
  const std::uint8_t* row = q.codes.data() + r * q.row_stride;
  if (q.spec.format == element_format::int8) return static_cast<std::int8_t>(row[c]);
  const int nib = get_nibble(row, static_cast<std::size_t>(c));
  return (nib & 8) ? nib - 16 : nib;
}

// The smallest shift of row r (M2), which becomes part of the row factor.
inline int m2_row_min_shift(const QuantizedMatrix& q, std::int64_t r) noexcept {
  int lo = 0;
  for (std::int64_t g = 0; g < q.groups_per_row; ++g)
    lo = std::min<int>(lo, q.shifts[static_cast<std::size_t>(r * q.groups_per_row + g)]);
  return lo;
}

inline int m2_shift_spread(const QuantizedMatrix& q) noexcept {
  int spread = 0;
  for (std::int64_t r = 0; r < q.rows; ++r) {
    int lo = 0, hi = -128;
    for (std::int64_t g = 0; g < q.groups_per_row; ++g) {
      const int s = q.shifts[static_cast<std::size_t>(r * q.groups_per_row + g)];
      lo = std::min(lo, s);
      hi = std::max(hi, s);
    }
    spread = std::max(spread, hi - lo);
  }
  return spread;
}

// Checks that `q` is a well-formed symmetric integer matrix the scheme can run
// (check_codes_size false: the codes are elsewhere, e.g. in a checkpoint's memory map, and
// the caller checked their size).
inline void validate_int_weights(const QuantizedMatrix& q, gemm_scheme scheme, bool check_codes_size = true) {
  const std::string what = "pack(" + std::string(to_string(scheme)) + "): ";
  const bool int8 = q.spec.format == element_format::int8;
  const bool int4 = q.spec.format == element_format::int4;
  if (scheme == gemm_scheme::w8a8_int8 ? !int8 : !int4)
    fail(what + "weights have the wrong element format for this scheme");
  if (!q.spec.symmetric)
    fail(what + "integer-activation kernels need symmetric weights (no zero points); "
                "use a w4a16 scheme for asymmetric weights");
  if (q.rows < 1 || q.cols < 1) fail(what + "weight matrix is empty");
  if (q.group_size < 1 || q.groups_per_row != (q.cols + q.group_size - 1) / q.group_size)
    fail(what + "group_size / groups_per_row do not match cols");
  const std::int64_t min_stride = int8 ? q.cols : (q.cols + 1) / 2;
  if (q.row_stride < min_stride || (check_codes_size && static_cast<std::int64_t>(q.codes.size()) < q.rows * q.row_stride))
    fail(what + "codes buffer is smaller than rows * row_stride");
  if (static_cast<std::int64_t>(q.scales.size()) != q.rows * q.groups_per_row)
    fail(what + "scales must hold rows * groups_per_row values");
  for (std::int64_t i = 0; i < q.rows * q.groups_per_row; ++i)
    if (!std::isfinite(q.scales[static_cast<std::size_t>(i)]))
      fail(what + "scale of row " + std::to_string(i / q.groups_per_row) + ", group " +
           std::to_string(i % q.groups_per_row) + " is not finite");
  if (int8 && q.group_size > int8_group_k_limit)
    fail(what + "int32 accumulation of one group is exact only up to " +
         std::to_string(int8_group_k_limit) + " inputs; got a group of " + std::to_string(q.group_size) +
         " (use per-group scales)");
  if (scheme == gemm_scheme::w4a8_int4_m2) {
    if (q.spec.constraint != scale_constraint::pow2_m2)
      fail(what + "the M2 kernel needs pow2_m2 scales");
    if (static_cast<std::int64_t>(q.row_scales.size()) != q.rows ||
        static_cast<std::int64_t>(q.shifts.size()) != q.rows * q.groups_per_row)
      fail(what + "pow2_m2 weights need one row scale per row and one shift per group");
    for (std::int64_t i = 0; i < q.rows * q.groups_per_row; ++i)
      if (q.shifts[static_cast<std::size_t>(i)] > 0 || q.shifts[static_cast<std::size_t>(i)] < -126)
        fail(what + "M2 shift of row " + std::to_string(i / q.groups_per_row) + " is outside [-126, 0]");
  }
}

// True when the whole of K accumulates exactly in int32 with the M2 shifts of `q`.
inline bool m2_fits_int32(const QuantizedMatrix& q) noexcept {
  const int spread = m2_shift_spread(q);
  if (spread > 20) return false;
  return q.cols <= (m2_k_times_pow2_spread_limit >> spread);
}

// The tile bytes of one k step of one column: 4 codes (int8, kstep 4) or 8 codes (int4,
// kstep 8) of a row starting at `src` (int4: nibble-packed, low nibble first, even k), with
// the weight bias added. int8: byte j = w[j] + 128 = w[j] ^ 0x80. int4: byte j =
// (w[j] + 8) | (w[j + 4] + 8) << 4, where +8 is nibble ^ 8; the 8 source nibbles k0..k7 are
// reordered to k0 k4 k1 k5 k2 k6 k3 k7 by two swaps (middle bytes, then inner nibbles).
inline std::uint32_t int_lane_word(const std::uint8_t* src, bool int4) noexcept {
  std::uint32_t x = std::uint32_t(src[0]) | std::uint32_t(src[1]) << 8 | std::uint32_t(src[2]) << 16 |
                    std::uint32_t(src[3]) << 24;
  if (!int4) return x ^ 0x80808080u;
  x = (x & 0xFF0000FFu) | ((x & 0x00FF0000u) >> 8) | ((x & 0x0000FF00u) << 8);
  x = (x & 0xF00FF00Fu) | ((x & 0x0F000F00u) >> 4) | ((x & 0x00F000F0u) << 4);
  return x ^ 0x88888888u;
}

// Packs `q` whose codes are `codes` (rows * row_stride bytes; nullptr: q.codes) into the
// layout a kernel record states (kernels/registry.hpp): `col_block` columns per tile (16 or
// 32), groups padded to multiples of `k_align` inputs, byte order `layout`. Loading a
// checkpoint passes the codes in place in the file's memory map, so they are never copied.
// pack_int(q, scheme, subtier) (kernels/registry.hpp) looks the numbers up.
inline int_packed pack_int_layout(const QuantizedMatrix& q, gemm_scheme scheme, isa_subtier subtier, int col_block,
                                  int k_align, int_layout layout, const std::uint8_t* codes = nullptr) {
  validate_int_weights(q, scheme, codes == nullptr);
  if (codes == nullptr) codes = q.codes.data();
  int_packed p;
  p.scheme = scheme;
  p.subtier = subtier;
  p.tier = tier_of(subtier);
  p.nt = col_block;
  const bool int4 = int_scheme_is_int4(scheme);
  p.kstep = int4 ? 8 : 4;
  p.k_align = k_align;
  p.layout = layout;
  if ((col_block != 16 && col_block != 32) || k_align % p.kstep != 0 ||
      (layout == int_layout::mmla && k_align % (2 * p.kstep) != 0))
    fail("pack(" + std::string(to_string(scheme)) + "): inconsistent layout (" + std::to_string(col_block) +
         "-column tiles, groups padded to " + std::to_string(k_align) + ")");
  p.weight_bias = int4 ? 8 : 128;
  p.rows = q.rows;
  p.cols = q.cols;
  p.groups = q.groups_per_row;
  p.group_size = q.group_size;
  p.per_channel = p.groups == 1;
  p.group_padded = round_up(std::min(q.group_size, q.cols), p.k_align);
  p.last_group_padded = round_up(q.cols - (p.groups - 1) * q.group_size, p.k_align);
  p.k_padded = (p.groups - 1) * p.group_padded + p.last_group_padded;
  if (scheme == gemm_scheme::w4a8_int4_m2) {
    p.shift_spread = m2_shift_spread(q);
    if (!m2_fits_int32(q))
      fail("pack(w4a8_int4_m2): K = " + std::to_string(q.cols) + " with a shift spread of " +
           std::to_string(p.shift_spread) + " can overflow int32 (K * 2^spread must be <= " +
           std::to_string(m2_k_times_pow2_spread_limit) + "); use w4a8_int4");
  }
  const std::int64_t lane_bytes = static_cast<std::int64_t>(p.nt) * 4;
  p.tile_bytes = (p.k_padded / p.kstep) * lane_bytes + p.groups * lane_bytes + (p.is_m2() ? lane_bytes : 0);
  p.n_tiles = (p.rows + p.nt - 1) / p.nt;
  p.data.resize(static_cast<std::size_t>(p.n_tiles * p.tile_bytes));

  const int bias = p.weight_bias;
  // The smallest shift of each row (M2), once per row rather than once per group.
  std::vector<int> row_min_shift;
  if (p.is_m2())
    for (std::int64_t r = 0; r < q.rows; ++r) row_min_shift.push_back(m2_row_min_shift(q, r));
  // Fast path: every k step lies inside one group and one row (group and K multiples of the
  // step), so a step of a column is one 4-byte word of its codes (int_lane_word).
  const bool word_steps = q.group_size % p.kstep == 0 && q.cols % p.kstep == 0;
  const std::uint32_t pad_word = int4 ? 0x88888888u : 0x80808080u;  // weight 0 (+ bias)
  const auto signed_code = [&](std::int64_t r, std::int64_t c) -> int {
    const std::uint8_t* row = codes + r * q.row_stride;
    if (!int4) return static_cast<std::int8_t>(row[c]);
    const int nib = get_nibble(row, static_cast<std::size_t>(c));
    return (nib & 8) ? nib - 16 : nib;
  };
  const auto store_word = [](std::uint8_t* lane, std::uint32_t w) {
    for (int j = 0; j < 4; ++j) lane[j] = static_cast<std::uint8_t>(w >> (8 * j));
  };
  for (std::int64_t t = 0; t < p.n_tiles; ++t) {
    std::uint8_t* out = p.data.data() + t * p.tile_bytes;
    // The code rows of this tile's columns; nullptr past N (padding columns).
    const std::uint8_t* row_codes[32] = {};
    for (int c = 0; c < p.nt; ++c)
      if (t * p.nt + c < p.rows) row_codes[c] = codes + (t * p.nt + c) * q.row_stride;
    for (std::int64_t g = 0; g < p.groups; ++g) {
      const std::int64_t k0 = g * p.group_size, len = p.group_len(g);
      const std::int64_t steps = p.padded_len(g) / p.kstep;
      if (p.layout == int_layout::mmla) {
        // Pairs of k steps (steps is even: k_align = 2 * kstep); column c's 8 bytes of a pair
        // at (c / 16) * 128 + (c % 16) * 8.
        for (std::int64_t s = 0; s < steps; s += 2, out += 2 * lane_bytes) {
          for (int c = 0; c < p.nt; ++c) {
            const std::int64_t n = t * p.nt + c;
            std::uint8_t* dst = out + (c / 16) * 128 + (c % 16) * 8;
            if (word_steps) {
              // The unbiased code words of steps s and s + 1 (0: K padding or past N).
              std::uint32_t raw[2] = {0, 0};
              for (int h = 0; h < 2; ++h) {
                const std::int64_t k = k0 + (s + h) * p.kstep;
                if ((s + h) * p.kstep < len && row_codes[c]) {
                  const std::uint8_t* src = row_codes[c] + (int4 ? k / 2 : k);
                  raw[h] = std::uint32_t(src[0]) | std::uint32_t(src[1]) << 8 | std::uint32_t(src[2]) << 16 |
                           std::uint32_t(src[3]) << 24;
                }
              }
              if (!int4) {
                store_word(dst, raw[0] ^ 0x80808080u);
                store_word(dst + 4, raw[1] ^ 0x80808080u);
              } else {
                for (int j = 0; j < 8; ++j)  // nibble j of each step, + 8 (= ^ 8)
                  dst[j] = static_cast<std::uint8_t>((((raw[0] >> (4 * j)) & 0xF) ^ 8) |
                                                     ((((raw[1] >> (4 * j)) & 0xF) ^ 8) << 4));
              }
              continue;
            }
            auto biased = [&](std::int64_t kk) {  // kk: offset inside the group
              if (n >= p.rows || kk >= len) return bias;
              return signed_code(n, k0 + kk) + bias;
            };
            for (int j = 0; j < 8; ++j)
              dst[j] = int4 ? static_cast<std::uint8_t>(biased(s * 8 + j) | (biased(s * 8 + 8 + j) << 4))
                            : static_cast<std::uint8_t>(biased(s * 4 + j));
          }
        }
      }
      for (std::int64_t s = 0; p.layout == int_layout::dot4 && s < steps; ++s, out += lane_bytes) {
        if (word_steps) {
          const std::int64_t k = k0 + s * p.kstep, at = int4 ? k / 2 : k;
          const bool inside = s * p.kstep < len;  // else K padding (AMX groups)
          for (int c = 0; c < p.nt; ++c)
            store_word(out + (c / 16) * 64 + (c % 16) * 4,
                       inside && row_codes[c] ? int_lane_word(row_codes[c] + at, int4) : pad_word);
          continue;
        }
        for (int c = 0; c < p.nt; ++c) {
          const std::int64_t n = t * p.nt + c;
          std::uint8_t* lane = out + (c / 16) * 64 + (c % 16) * 4;
          auto biased = [&](std::int64_t kk) {  // kk: offset inside the group
            if (n >= p.rows || kk >= len) return bias;
            return signed_code(n, k0 + kk) + bias;
          };
          for (int j = 0; j < 4; ++j) {
            lane[j] = int4 ? static_cast<std::uint8_t>(biased(s * 8 + j) | (biased(s * 8 + 4 + j) << 4))
                           : static_cast<std::uint8_t>(biased(s * 4 + j));
          }
        }
      }
      for (int c = 0; c < p.nt; ++c, out += 4) {
        const std::int64_t n = t * p.nt + c;
        if (n >= p.rows) continue;  // zero
        if (p.is_m2()) {
          const std::int32_t sh = q.shifts[static_cast<std::size_t>(n * p.groups + g)] - row_min_shift[static_cast<std::size_t>(n)];
          std::memcpy(out, &sh, 4);
        } else {
          std::memcpy(out, &q.scales[static_cast<std::size_t>(n * p.groups + g)], 4);
        }
      }
    }
    if (p.is_m2()) {
      for (int c = 0; c < p.nt; ++c, out += 4) {
        const std::int64_t n = t * p.nt + c;
        if (n >= p.rows) continue;
        const float f = std::ldexp(q.row_scales[static_cast<std::size_t>(n)], row_min_shift[static_cast<std::size_t>(n)]);
        std::memcpy(out, &f, 4);
      }
    }
  }
  return p;
}

}  // namespace lowbit::detail
