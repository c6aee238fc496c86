#pragma once
// The templated quantizer (DESIGN.md section 5): the element type is a template argument and
// the scale policy a small struct, so C++ callers write
//   auto q = lowbit::quantize<lowbit::float4_e2m1fn>(w, lowbit::group_scales{128, lowbit::scale_constraint::pow2_m2});
// on any Eigen expression and get the row kernel of that format instantiated directly
// (no runtime format switch). QuantSpec-based quantize() reaches the same instantiation.
#include <cstdint>
#include <string_view>
#include <type_traits>

#include "lowbit/formats/traits.hpp"
#include "lowbit/formats/intn.hpp"
#include "lowbit/quant/scheme.hpp"

namespace lowbit {

// Element type -> (format, symmetric).
template <class T>
struct element_format_of;
template <> struct element_format_of<std::int8_t> { static constexpr element_format format = element_format::int8; static constexpr bool symmetric = true; };
template <> struct element_format_of<std::uint8_t> { static constexpr element_format format = element_format::int8; static constexpr bool symmetric = false; };
template <> struct element_format_of<int4> { static constexpr element_format format = element_format::int4; static constexpr bool symmetric = true; };
template <> struct element_format_of<uint4> { static constexpr element_format format = element_format::int4; static constexpr bool symmetric = false; };
template <> struct element_format_of<float8_e4m3fn> { static constexpr element_format format = element_format::float8_e4m3fn; static constexpr bool symmetric = true; };
template <> struct element_format_of<float8_e5m2> { static constexpr element_format format = element_format::float8_e5m2; static constexpr bool symmetric = true; };
template <> struct element_format_of<float6_e3m2fn> { static constexpr element_format format = element_format::float6_e3m2fn; static constexpr bool symmetric = true; };
template <> struct element_format_of<float6_e2m3fn> { static constexpr element_format format = element_format::float6_e2m3fn; static constexpr bool symmetric = true; };
template <> struct element_format_of<float4_e2m1fn> { static constexpr element_format format = element_format::float4_e2m1fn; static constexpr bool symmetric = true; };

// Scale policies.
struct tensor_scales {
  scale_dtype storage = scale_dtype::f32;
  clip_search clip{};
};
struct channel_scales {
  scale_constraint constraint = scale_constraint::none;
  scale_dtype storage = scale_dtype::f32;
  clip_search clip{};
};
struct group_scales {
  int group_size = 128;
  scale_constraint constraint = scale_constraint::none;
  scale_dtype storage = scale_dtype::f32;
  clip_search clip{};
};
struct mx_scales {  // OCP MX: E8M0 per 32
  mx_scale_rounding rounding = mx_scale_rounding::floor;
};
struct nvfp4_scales {};  // E4M3 per 16 + fp32 tensor scale

namespace detail {
template <class Element>
QuantSpec spec_for(granularity gr, int group, scale_constraint c, scale_dtype st, clip_search clip) {
  QuantSpec s;
  s.format = element_format_of<Element>::format;
  s.symmetric = element_format_of<Element>::symmetric;
  s.gran = gr;
  s.group_size = group;
  s.constraint = c;
  s.scale_storage = st;
  s.clip = clip;
  return s;
}
template <class Element>
QuantSpec spec_for_policy(const tensor_scales& p) {
  return spec_for<Element>(granularity::per_tensor, 0, scale_constraint::none, p.storage, p.clip);
}
template <class Element>
QuantSpec spec_for_policy(const channel_scales& p) {
  return spec_for<Element>(granularity::per_channel, 0, p.constraint, p.storage, p.clip);
}
template <class Element>
QuantSpec spec_for_policy(const group_scales& p) {
  return spec_for<Element>(granularity::per_group, p.group_size, p.constraint, p.storage, p.clip);
}
template <class Element>
QuantSpec spec_for_policy(const mx_scales& p) {
  QuantSpec s = spec_for<Element>(granularity::per_group, 32, scale_constraint::mx, scale_dtype::f32, {});
  s.mx_rounding = p.rounding;
  return s;
}
template <class Element>
QuantSpec spec_for_policy(const nvfp4_scales&) {
  return spec_for<Element>(granularity::per_group, 16, scale_constraint::nvfp4, scale_dtype::f32, {});
}
}  // namespace detail

// The spec a (type, policy) pair stands for.
template <class Element, class Policy>
QuantSpec make_spec(const Policy& policy) {
  return detail::spec_for_policy<Element>(policy);
}

// Quantizes any Eigen matrix expression (evaluated once into row-major order if it is not
// already a compatible view) as Element with the given scale policy.
template <class Element, class Derived, class Policy>
QuantizedMatrix quantize(const Eigen::MatrixBase<Derived>& w, const Policy& policy, std::string_view name = "weight") {
  static_assert(std::is_same_v<typename Derived::Scalar, float>, "lowbit::quantize takes float matrices");
  const QuantSpec spec = make_spec<Element>(policy);
  const ConstRowMatrixRef view(w.derived());
  if (view.rows() == 0 || view.cols() == 0)
    detail::fail("quantize '" + std::string(name) + "': empty matrix");
  return detail::quantize_as<element_format_of<Element>::format>(view, spec, name);
}

}  // namespace lowbit
