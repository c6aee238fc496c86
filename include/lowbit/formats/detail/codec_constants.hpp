#pragma once
// The integer recipe that every SIMD converter (AVX2, AVX-512, NEON) follows, with its
// constants derived from the format's bit description. Keeping the recipe and its constants
// here, ISA-free, means the three ISA headers only translate it into intrinsics.
//
// float -> exmy code, per lane, integers only (no dependence on the FP rounding mode, FTZ/DAZ):
//   u = bits(x), a = u & 0x7fffffff, sign = (u >> 31) << (E + M)
//   normal in the target (a >= normal_threshold):
//       code = ((a + round_half_minus_1 + ((a >> drop_bits) & 1)) >> drop_bits) - rebias
//     i.e. round the float's exponent+mantissa bits to M mantissa bits, ties to even (a carry
//     out of the mantissa bumps the exponent, as it should), then rebias the exponent.
//   subnormal in the target (a < normal_threshold): count units of 2^(emin - M):
//       code = int(round_to_nearest_even(|x| * 2^(M - emin)))
//     The product is exact (a power-of-two scaling into [0, 2^M)), and the rounding uses an
//     explicit ties-to-even instruction (roundscale / roundps / frintn), never the MXCSR/FPCR
//     mode. Under FTZ/DAZ only inputs far below half the smallest subnormal are affected, and
//     they round to 0 either way. Rounding up to 2^M lands on the smallest normal code, right.
//   code > max_finite_code (Inf included)  -> overflow_code(sat)
//   result = sign | code;  NaN input (a > 0x7f800000) -> nan_result (sign | nan_code, or +0)
//
// exmy code -> float:
//   mag = c & ~sign_mask;  normal: bits = (mag << drop_bits) + exponent_rebias_bits
//   subnormal (mag < 2^M): float(mag) * 2^(1 - bias - M) (exact)
//   Inf / NaN codes -> 0x7f800000 / 0x7fc00000;  then OR the sign in at bit 31.
#include <cstdint>

#include "lowbit/formats/e8m0.hpp"
#include "lowbit/formats/exmy.hpp"

namespace lowbit::detail {

template <class Desc>
struct exmy_codec_constants {
  static constexpr int E = Desc::exponent_bits;
  static constexpr int M = Desc::mantissa_bits;
  static constexpr int emin = Desc::min_normal_exponent;
  static constexpr int drop_bits = 23 - M;
  static constexpr std::int32_t round_half_minus_1 = (std::int32_t{1} << (drop_bits - 1)) - 1;
  static constexpr std::int32_t rebias = (127 - Desc::bias) << M;
  static constexpr std::int32_t normal_threshold = (127 + emin) << 23;
  static constexpr float subnormal_units = exp2i(M - emin);  // |x| * this = count of 2^(emin-M)
  static constexpr int sign_shift = 31 - (E + M);  // float sign bit -> code sign bit
  static constexpr std::int32_t sign_mask = Desc::sign_mask;
  static constexpr std::int32_t code_mask = Desc::code_mask;
  static constexpr std::int32_t max_finite_code = Desc::max_finite_code;

  // The code that replaces an overflowing magnitude (sign added afterwards).
  static constexpr std::int32_t overflow_code(saturation s) noexcept {
    if (s == saturation::none) {
      if (Desc::policy == nonfinite_policy::ieee) return Desc::inf_code;
      if (Desc::policy == nonfinite_policy::nan_only) return Desc::nan_code;
    }
    return Desc::max_finite_code;
  }
  // NaN inputs: the canonical NaN with the input's sign where the format has NaN, else +0.
  static constexpr bool nan_keeps_sign = Desc::has_nan;
  static constexpr std::int32_t nan_code = Desc::has_nan ? Desc::nan_code : 0;

  // Decoding.
  static constexpr std::int32_t exponent_rebias_bits = (127 - Desc::bias) << 23;
  static constexpr std::int32_t subnormal_limit = std::int32_t{1} << M;  // mag below: subnormal
  static constexpr float subnormal_scale = exp2i(1 - Desc::bias - M);
  static constexpr int code_sign_to_float_sign = 31 - (E + M);
  // Magnitude codes reserved for Inf/NaN: mag >= first_special_mag (none for finite_only).
  static constexpr bool has_special = Desc::policy != nonfinite_policy::finite_only;
  static constexpr std::int32_t first_special_mag =
      Desc::policy == nonfinite_policy::ieee ? Desc::inf_code : Desc::nan_code;
  static constexpr std::int32_t inf_mag = Desc::inf_code;  // only meaningful for ieee
  static constexpr bool ieee = Desc::policy == nonfinite_policy::ieee;
};

// float8_e8m0fnu, per lane:
//   u = bits(x); NaN code if u == 0, the sign bit is set, or x is NaN (i.e. u - 1 is outside
//   [0, 0x7f800000) as a signed number);
//   normal float: code = (u + 2^22) >> 23   (adds 1 to the exponent iff mantissa >= 0.5:
//                                           ties go up, as e8m0_desc::encode says)
//   float subnormal: code = (u + 2^21) >> 23 (1 iff x >= 1.5 * 2^-127, else 0 = 2^-127)
//   code > 254 (Inf included) -> 0xFE (finite) or 0xFF (none)
// Decoding: c << 23, except 0 -> 2^-127 (0x00400000) and 0xFF -> NaN (0x7fc00000).
struct e8m0_codec_constants {
  static constexpr std::int32_t normal_round = 0x00400000;
  static constexpr std::int32_t subnormal_round = 0x00200000;
  static constexpr std::int32_t min_normal_float_bits = 0x00800000;
  static constexpr std::int32_t max_code = 0xFE;
  static constexpr std::int32_t nan_code = 0xFF;
  static constexpr std::int32_t code0_float_bits = 0x00400000;
  static constexpr std::int32_t nan_float_bits = 0x7fc00000;
  static constexpr std::int32_t overflow_code(saturation s) noexcept {
    return s == saturation::none ? nan_code : max_code;
  }
};

template <class T>
inline constexpr bool is_e8m0_v = false;
template <>
inline constexpr bool is_e8m0_v<float8_e8m0fnu> = true;

}  // namespace lowbit::detail
