#pragma once
// NEON (AArch64 Advanced SIMD) bulk conversion between float and the small formats: 4 lanes
// per vector, 16 elements per step, following the integer recipe of codec_constants.hpp.
// A tail goes through a zero-padded
// block on the stack, so the same vector code (and its test) covers it.
#include <cstddef>
#include <cstdint>
#include <cstring>

#include "lowbit/detail/target.hpp"
#include "lowbit/formats/detail/codec_constants.hpp"

#if LOWBIT_HAVE_NEON
#include <arm_neon.h>

namespace lowbit::detail::neon {

inline uint32x4_t set1(std::int32_t v) { return vdupq_n_u32(static_cast<std::uint32_t>(v)); }
inline uint32x4_t select(uint32x4_t mask, uint32x4_t if_set, uint32x4_t if_clear) {
  return vbslq_u32(mask, if_set, if_clear);
}

// ---- float -> code ----------------------------------------------------------------------

template <class Desc>
inline uint32x4_t encode_exmy(float32x4_t x, uint32x4_t overflow_code, uint32x4_t nan_code) {
  using K = exmy_codec_constants<Desc>;
  const uint32x4_t u = vreinterpretq_u32_f32(x);
  const uint32x4_t one = set1(1);
  const uint32x4_t a = vandq_u32(u, set1(0x7fffffff));
  const uint32x4_t sign = vandq_u32(vshrq_n_u32(u, K::sign_shift), set1(K::sign_mask));
  const uint32x4_t odd = vandq_u32(vshrq_n_u32(a, K::drop_bits), one);
  uint32x4_t normal = vaddq_u32(a, vaddq_u32(set1(K::round_half_minus_1), odd));
  normal = vsubq_u32(vshrq_n_u32(normal, K::drop_bits), set1(K::rebias));
  // Subnormal in the target: |x| scaled to units of the smallest subnormal, rounded to even.
  const float32x4_t units = vmulq_f32(vreinterpretq_f32_u32(a), vdupq_n_f32(K::subnormal_units));
  const uint32x4_t sub = vcvtq_u32_f32(vrndnq_f32(units));
  uint32x4_t code = select(vcltq_u32(a, set1(K::normal_threshold)), sub, normal);
  code = select(vcgtq_u32(code, set1(K::max_finite_code)), overflow_code, code);
  code = vorrq_u32(code, sign);
  const uint32x4_t nan_value = K::nan_keeps_sign ? vorrq_u32(sign, nan_code) : nan_code;
  return select(vcgtq_u32(a, set1(0x7f800000)), nan_value, code);
}

inline uint32x4_t encode_e8m0(float32x4_t x, uint32x4_t overflow_code) {
  using K = e8m0_codec_constants;
  const uint32x4_t u = vreinterpretq_u32_f32(x);
  const uint32x4_t round =
      select(vcltq_u32(u, set1(K::min_normal_float_bits)), set1(K::subnormal_round), set1(K::normal_round));
  uint32x4_t code = vshrq_n_u32(vaddq_u32(u, round), 23);
  code = select(vcgtq_u32(code, set1(K::max_code)), overflow_code, code);
  // u == 0, negative, or NaN  <=>  u - 1 >= 0x7f800000 as unsigned.
  const uint32x4_t is_nan = vcgeq_u32(vsubq_u32(u, set1(1)), set1(0x7f800000));
  return select(is_nan, set1(K::nan_code), code);
}

template <class T>
inline uint32x4_t encode(float32x4_t x, uint32x4_t overflow_code, uint32x4_t nan_code) {
  if constexpr (is_e8m0_v<T>) {
    (void)nan_code;
    return encode_e8m0(x, overflow_code);
  } else {
    return encode_exmy<typename T::desc>(x, overflow_code, nan_code);
  }
}

// 16 floats -> 16 codes.
template <class T>
inline void encode_block16(const float* in, std::uint8_t* dst, uint32x4_t overflow_v, uint32x4_t nan_v) {
  const uint32x4_t c0 = encode<T>(vld1q_f32(in), overflow_v, nan_v);
  const uint32x4_t c1 = encode<T>(vld1q_f32(in + 4), overflow_v, nan_v);
  const uint32x4_t c2 = encode<T>(vld1q_f32(in + 8), overflow_v, nan_v);
  const uint32x4_t c3 = encode<T>(vld1q_f32(in + 12), overflow_v, nan_v);
  const uint16x8_t h01 = vcombine_u16(vmovn_u32(c0), vmovn_u32(c1));
  const uint16x8_t h23 = vcombine_u16(vmovn_u32(c2), vmovn_u32(c3));
  vst1q_u8(dst, vcombine_u8(vmovn_u16(h01), vmovn_u16(h23)));
}

template <class T>
void convert_n(const float* in, T* out, std::size_t n, saturation s) {
  std::int32_t overflow = 0, nan = 0;
  if constexpr (is_e8m0_v<T>) {
    overflow = e8m0_codec_constants::overflow_code(s);
  } else {
    using K = exmy_codec_constants<typename T::desc>;
    overflow = K::overflow_code(s);
    nan = K::nan_code;
  }
  const uint32x4_t overflow_v = set1(overflow), nan_v = set1(nan);
  auto* dst = reinterpret_cast<std::uint8_t*>(out);
  std::size_t i = 0;
  for (; i + 16 <= n; i += 16) encode_block16<T>(in + i, dst + i, overflow_v, nan_v);
  if (i < n) {
    float tail_in[16] = {};
    std::uint8_t tail_out[16];
    std::memcpy(tail_in, in + i, (n - i) * sizeof(float));
    encode_block16<T>(tail_in, tail_out, overflow_v, nan_v);
    std::memcpy(dst + i, tail_out, n - i);
  }
}

// ---- code -> float ----------------------------------------------------------------------

template <class Desc>
inline float32x4_t decode_exmy(uint32x4_t c) {
  using K = exmy_codec_constants<Desc>;
  c = vandq_u32(c, set1(K::code_mask));
  const uint32x4_t sign = vshlq_n_u32(vandq_u32(c, set1(K::sign_mask)), K::code_sign_to_float_sign);
  const uint32x4_t mag = vbicq_u32(c, set1(K::sign_mask));
  uint32x4_t bits = vaddq_u32(vshlq_n_u32(mag, K::drop_bits), set1(K::exponent_rebias_bits));
  const float32x4_t sub = vmulq_f32(vcvtq_f32_u32(mag), vdupq_n_f32(K::subnormal_scale));
  bits = select(vcltq_u32(mag, set1(K::subnormal_limit)), vreinterpretq_u32_f32(sub), bits);
  if constexpr (K::has_special) {
    bits = select(vcgeq_u32(mag, set1(K::first_special_mag)), set1(0x7fc00000), bits);
    if constexpr (K::ieee) bits = select(vceqq_u32(mag, set1(K::inf_mag)), set1(0x7f800000), bits);
  }
  return vreinterpretq_f32_u32(vorrq_u32(bits, sign));
}

inline float32x4_t decode_e8m0(uint32x4_t c) {
  using K = e8m0_codec_constants;
  uint32x4_t bits = vshlq_n_u32(c, 23);
  bits = select(vceqq_u32(c, vdupq_n_u32(0)), set1(K::code0_float_bits), bits);
  bits = select(vceqq_u32(c, set1(K::nan_code)), set1(K::nan_float_bits), bits);
  return vreinterpretq_f32_u32(bits);
}

template <class T>
inline float32x4_t decode(uint32x4_t c) {
  if constexpr (is_e8m0_v<T>)
    return decode_e8m0(c);
  else
    return decode_exmy<typename T::desc>(c);
}

// 16 codes -> 16 floats.
template <class T>
inline void decode_block16(const std::uint8_t* src, float* out) {
  const uint8x16_t bytes = vld1q_u8(src);
  const uint16x8_t lo = vmovl_u8(vget_low_u8(bytes)), hi = vmovl_u8(vget_high_u8(bytes));
  vst1q_f32(out, decode<T>(vmovl_u16(vget_low_u16(lo))));
  vst1q_f32(out + 4, decode<T>(vmovl_u16(vget_high_u16(lo))));
  vst1q_f32(out + 8, decode<T>(vmovl_u16(vget_low_u16(hi))));
  vst1q_f32(out + 12, decode<T>(vmovl_u16(vget_high_u16(hi))));
}

template <class T>
void to_float_n(const T* in, float* out, std::size_t n) {
  const auto* src = reinterpret_cast<const std::uint8_t*>(in);
  std::size_t i = 0;
  for (; i + 16 <= n; i += 16) decode_block16<T>(src + i, out + i);
  if (i < n) {
    std::uint8_t tail_in[16] = {};
    float tail_out[16];
    std::memcpy(tail_in, src + i, n - i);
    decode_block16<T>(tail_in, tail_out);
    std::memcpy(out + i, tail_out, (n - i) * sizeof(float));
  }
}

}  // namespace lowbit::detail::neon

#endif  // LOWBIT_HAVE_NEON
