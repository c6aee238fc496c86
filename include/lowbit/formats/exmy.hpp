#pragma once
// One generic description of a small binary floating-point format ("eXmY", as in CUTLASS),
// from which every named lowbit type, its decode table and its encoder are derived. Nothing
// here is a hand-written value table: tests check the derived tables against the formula.
//
// Encoding of a code with E exponent bits, M mantissa bits and bias B:
//   sign | exponent field ef | mantissa field mf
//   ef == 0         : subnormal, value = mf * 2^(1 - B - M)
//   0 < ef          : normal,    value = (1 + mf / 2^M) * 2^(ef - B)
// except the codes reserved by the non-finite policy:
//   ieee           : ef all ones is Inf (mf == 0) or NaN (mf != 0)          (E5M2)
//   nan_only       : ef and mf all ones is NaN, no Inf ("fn")              (E4M3FN)
//   finite_only    : every code is a finite number, no Inf and no NaN      (E3M2, E2M3, E2M1)
#include <array>
#include <cstdint>
#include <limits>

namespace lowbit {

// What happens to values beyond the largest finite value of the target format.
//   finite: clamp to +-max (Inf too); NaN stays NaN where the format has one. What every
//           quantizer wants.
//   none:   the non-saturating OCP / ml_dtypes rule: overflow gives NaN (E4M3FN) or +-Inf
//           (E5M2); formats with neither (FP4, FP6) saturate anyway.
enum class saturation { finite, none };

enum class nonfinite_policy { ieee, nan_only, finite_only };

namespace detail {

constexpr float exp2i(int e) noexcept {
  float r = 1.0f;
  if (e >= 0) {
    for (int i = 0; i < e; ++i) r *= 2.0f;
  } else {
    for (int i = 0; i < -e; ++i) r *= 0.5f;
  }
  return r;
}

constexpr std::uint32_t float_bits_c(float f) noexcept { return __builtin_bit_cast(std::uint32_t, f); }

// RNE right shift usable in constant expressions.
constexpr std::uint32_t shr_rne(std::uint32_t v, int shift) noexcept {
  if (shift <= 0) return v << (-shift);
  if (shift > 32) return 0;
  const std::uint64_t w = v;
  const std::uint64_t kept = w >> shift;
  const std::uint64_t rem = w & ((std::uint64_t{1} << shift) - 1);
  const std::uint64_t half = std::uint64_t{1} << (shift - 1);
  return static_cast<std::uint32_t>(kept + ((rem > half || (rem == half && (kept & 1))) ? 1 : 0));
}

}  // namespace detail

// The bit description of one format.
template <int E, int M, int Bias, nonfinite_policy NF>
struct exmy_desc {
  static_assert(E >= 1 && E <= 5 && M >= 0 && M <= 7 && 1 + E + M <= 8);
  static constexpr int exponent_bits = E;
  static constexpr int mantissa_bits = M;
  static constexpr int bias = Bias;
  static constexpr nonfinite_policy policy = NF;
  static constexpr int bits = 1 + E + M;
  static constexpr std::uint8_t sign_mask = static_cast<std::uint8_t>(1u << (E + M));
  static constexpr std::uint8_t code_mask = static_cast<std::uint8_t>((1u << bits) - 1);
  static constexpr std::uint32_t exp_all_ones = (1u << E) - 1;
  static constexpr std::uint32_t man_all_ones = (1u << M) - 1;
  static constexpr bool has_inf = NF == nonfinite_policy::ieee;
  static constexpr bool has_nan = NF != nonfinite_policy::finite_only;
  // Magnitude code of the largest finite value.
  static constexpr std::uint8_t max_finite_code = static_cast<std::uint8_t>(
      NF == nonfinite_policy::ieee       ? (((exp_all_ones - 1) << M) | man_all_ones)
      : NF == nonfinite_policy::nan_only ? ((exp_all_ones << M) | (man_all_ones - 1))
                                         : ((exp_all_ones << M) | man_all_ones));
  static constexpr std::uint8_t inf_code = static_cast<std::uint8_t>(exp_all_ones << M);
  // The canonical (quiet) NaN magnitude code this library produces.
  static constexpr std::uint8_t nan_code = static_cast<std::uint8_t>(
      NF == nonfinite_policy::ieee ? ((exp_all_ones << M) | (1u << (M - 1 < 0 ? 0 : M - 1)))
                                   : ((exp_all_ones << M) | man_all_ones));
  static constexpr int min_normal_exponent = 1 - Bias;

  static constexpr bool is_nan_code(std::uint8_t c) noexcept {
    const std::uint32_t ef = (c >> M) & exp_all_ones, mf = c & man_all_ones;
    if constexpr (NF == nonfinite_policy::ieee) return ef == exp_all_ones && mf != 0;
    if constexpr (NF == nonfinite_policy::nan_only) return ef == exp_all_ones && mf == man_all_ones;
    return false;
  }
  static constexpr bool is_inf_code(std::uint8_t c) noexcept {
    if constexpr (NF == nonfinite_policy::ieee)
      return ((c >> M) & exp_all_ones) == exp_all_ones && (c & man_all_ones) == 0;
    return false;
  }

  // The exact value of a code, straight from the formula above.
  static constexpr float decode(std::uint8_t code) noexcept {
    const std::uint8_t c = code & code_mask;
    const bool neg = (c & sign_mask) != 0;
    if (is_nan_code(c))
      return neg ? -std::numeric_limits<float>::quiet_NaN() : std::numeric_limits<float>::quiet_NaN();
    if (is_inf_code(c))
      return neg ? -std::numeric_limits<float>::infinity() : std::numeric_limits<float>::infinity();
    const int ef = static_cast<int>((c >> M) & exp_all_ones);
    const int mf = static_cast<int>(c & man_all_ones);
    float mag = ef == 0 ? static_cast<float>(mf) * detail::exp2i(1 - Bias - M)
                        : static_cast<float>((1 << M) + mf) * detail::exp2i(ef - Bias - M);
    return neg ? -mag : mag;
  }

  // Round to nearest, ties to even on the code's mantissa; overflow as `sat` says.
  // NaN becomes the canonical NaN (sign kept) where the format has one, and +0 in formats
  // with no NaN (FP4, FP6); quantizers reject NaN before they get here.
  static constexpr std::uint8_t encode(float x, saturation sat) noexcept {
    const std::uint32_t u = detail::float_bits_c(x);
    const std::uint8_t sign = (u >> 31) ? sign_mask : 0;
    const std::uint32_t a = u & 0x7fffffffu;
    if (a > 0x7f800000u) {
      if constexpr (has_nan) return static_cast<std::uint8_t>(sign | nan_code);
      return 0;
    }
    if (a == 0x7f800000u) {
      if (sat == saturation::none) {
        if constexpr (NF == nonfinite_policy::ieee) return static_cast<std::uint8_t>(sign | inf_code);
        if constexpr (NF == nonfinite_policy::nan_only) return static_cast<std::uint8_t>(sign | nan_code);
      }
      return static_cast<std::uint8_t>(sign | max_finite_code);
    }
    const int fexp = static_cast<int>(a >> 23);
    const std::uint32_t sig = fexp == 0 ? (a & 0x7fffffu) : ((a & 0x7fffffu) | 0x800000u);
    const int e = fexp == 0 ? -126 : fexp - 127;  // value = sig * 2^(e - 23)
    std::uint32_t code = 0;
    if (e >= min_normal_exponent) {
      const std::uint32_t r = detail::shr_rne(sig, 23 - M);  // in [2^M, 2^(M+1)]
      code = (static_cast<std::uint32_t>(e - min_normal_exponent + 1) << M) + (r - (1u << M));
    } else {
      // Subnormal in the target: count units of 2^(emin - M). Rounding up to 2^M is the
      // smallest normal's code, so the carry needs no special case.
      code = detail::shr_rne(sig, 23 - M + (min_normal_exponent - e));
    }
    if (code > max_finite_code) {
      if (sat == saturation::none) {
        if constexpr (NF == nonfinite_policy::ieee) return static_cast<std::uint8_t>(sign | inf_code);
        if constexpr (NF == nonfinite_policy::nan_only) return static_cast<std::uint8_t>(sign | nan_code);
      }
      return static_cast<std::uint8_t>(sign | max_finite_code);
    }
    return static_cast<std::uint8_t>(sign | code);
  }

  static constexpr std::array<float, (1u << bits)> make_table() noexcept {
    std::array<float, (1u << bits)> t{};
    for (unsigned c = 0; c < (1u << bits); ++c) t[c] = decode(static_cast<std::uint8_t>(c));
    return t;
  }
};

// A value of a small float format: one byte holding the code in its low `bits` bits.
// Trivially copyable; widening to float is exact and goes through a constexpr table.
template <class Desc>
struct minifloat {
  using desc = Desc;
  static constexpr std::array<float, (1u << Desc::bits)> decode_table = Desc::make_table();

  minifloat() = default;
  // Rounds to nearest even, saturating (saturation::finite). Use lowbit::convert for the
  // other policy.
  constexpr explicit minifloat(float x) noexcept : rep_(Desc::encode(x, saturation::finite)) {}

  // Bits above the format's width are ignored.
  static constexpr minifloat from_bits(std::uint8_t b) noexcept {
    return minifloat(bits_tag{}, static_cast<std::uint8_t>(b & Desc::code_mask));
  }
  constexpr std::uint8_t bits() const noexcept { return rep_; }
  constexpr float to_float() const noexcept { return decode_table[rep_ & Desc::code_mask]; }
  constexpr explicit operator float() const noexcept { return to_float(); }

  constexpr bool is_nan() const noexcept { return Desc::is_nan_code(rep_); }
  constexpr bool is_inf() const noexcept { return Desc::is_inf_code(rep_); }

  // Named limits.
  static constexpr minifloat max() noexcept { return from_bits(Desc::max_finite_code); }
  static constexpr minifloat lowest() noexcept {
    return from_bits(static_cast<std::uint8_t>(Desc::sign_mask | Desc::max_finite_code));
  }
  static constexpr minifloat min_normal() noexcept {
    return from_bits(static_cast<std::uint8_t>(1u << Desc::mantissa_bits));
  }
  static constexpr minifloat min_subnormal() noexcept { return from_bits(1); }
  static constexpr minifloat zero() noexcept { return from_bits(0); }

 private:
  struct bits_tag {};
  constexpr minifloat(bits_tag, std::uint8_t b) noexcept : rep_(b) {}
  std::uint8_t rep_;  // uninitialized by default, like float: the type stays trivial
};

}  // namespace lowbit
