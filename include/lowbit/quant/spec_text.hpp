#pragma once
// QuantSpec as text, for the CLI, logs and checkpoint metadata. The canonical form is a list
// of ':'-separated fields, format first:
//   <format>:<granularity>[:<constraint>][:asym][:f16|bf16][:qmax_half|q4_0][:up175][:clip<r>x<n>]
//     format       int8 int4 float8_e4m3fn float8_e5m2 float6_e3m2fn float6_e2m3fn float4_e2m1fn
//     granularity  tensor | channel | g<N>
//     constraint   m1 | m2 | mx | nvfp4 (absent: real scales)
//   e.g. "int4:g128", "int4:g128:asym:f16", "float4_e2m1fn:g128:m2", "float4_e2m1fn:g32:mx:up175",
//        "float4_e2m1fn:g16:nvfp4", "int8:channel", "int4:g128:clip0.5x20".
// The text is the one canonical spelling of a QuantSpec: checkpoints store it and derive their
// structured fields from it (io/detail/scheme_json.hpp), the CLI's --weights/--group/--scale/
// --asymmetric flags compose it and go through parse_quant_spec, and labels print to_string.
// to_string(spec) writes the canonical form and parse_quant_spec reads it back exactly. The
// parser also takes short names: fp8/e4m3, e5m2, fp6/e3m2, e2m3, fp4/e2m1, pow2_m1/pow2_m2,
// per_tensor/per_channel, and whole presets: mxfp4, mxfp6 (E3M2), mxfp6_e2m3, mxfp8 (E4M3),
// mxfp8_e5m2, nvfp4. Unknown words raise lowbit::error listing what is accepted.
#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <string_view>
#include <vector>

#include "lowbit/error.hpp"
#include "lowbit/quant/scheme.hpp"

namespace lowbit {

constexpr std::string_view to_string(element_format f) noexcept {
  switch (f) {
    case element_format::int8: return "int8";
    case element_format::int4: return "int4";
    case element_format::float8_e4m3fn: return "float8_e4m3fn";
    case element_format::float8_e5m2: return "float8_e5m2";
    case element_format::float6_e3m2fn: return "float6_e3m2fn";
    case element_format::float6_e2m3fn: return "float6_e2m3fn";
    case element_format::float4_e2m1fn: return "float4_e2m1fn";
  }
  return "unknown";
}
constexpr std::string_view to_string(scale_constraint c) noexcept {
  switch (c) {
    case scale_constraint::none: return "none";
    case scale_constraint::pow2_m1: return "m1";
    case scale_constraint::pow2_m2: return "m2";
    case scale_constraint::mx: return "mx";
    case scale_constraint::nvfp4: return "nvfp4";
  }
  return "unknown";
}
constexpr std::string_view to_string(granularity g) noexcept {
  switch (g) {
    case granularity::per_tensor: return "tensor";
    case granularity::per_channel: return "channel";
    case granularity::per_group: return "group";
  }
  return "unknown";
}
constexpr std::string_view to_string(scale_dtype d) noexcept {
  return d == scale_dtype::f32 ? "f32" : d == scale_dtype::f16 ? "f16" : "bf16";
}
constexpr std::string_view to_string(act_format f) noexcept {
  return f == act_format::int8 ? "int8" : f == act_format::float8_e4m3fn ? "float8_e4m3fn" : "float8_e5m2";
}

template <class Deferred = void>  // see "Compile time" in docs/design.md
std::string to_string(const QuantSpec& s) {
  std::string out(to_string(s.format));
  out += s.gran == granularity::per_tensor ? ":tensor"
         : s.gran == granularity::per_channel ? ":channel"
                                              : ":g" + std::to_string(s.group_size);
  if (s.constraint != scale_constraint::none) out += ":" + std::string(to_string(s.constraint));
  if (!s.symmetric) out += ":asym";
  if (s.zero == zero_form::float_offset) out += ":offset";  // printed only (labels, errors)
  if (s.scale_storage != scale_dtype::f32) out += ":" + std::string(to_string(s.scale_storage));
  if (s.int_rule == int_scale_rule::amax_over_qmax_half) out += ":qmax_half";
  if (s.int_rule == int_scale_rule::q4_0) out += ":q4_0";
  if (s.mx_rounding == mx_scale_rounding::round_up_175) out += ":up175";
  if (s.clip.enabled) {
    // The shortest decimal that reads back as the same float (%g alone keeps 6 digits, and
    // checkpoints compare the text with their structured fields: it must round-trip).
    char buf[64];
    for (int digits = 6; digits <= 9; ++digits) {
      std::snprintf(buf, sizeof buf, "%.*g", digits, static_cast<double>(s.clip.min_ratio));
      if (std::strtof(buf, nullptr) == s.clip.min_ratio) break;
    }
    out += ":clip" + std::string(buf) + "x" + std::to_string(s.clip.steps);
  }
  return out;
}

// The parser's presets: a whole spec under one name, written as the text's first field.
struct quant_spec_preset {
  const char* name;
  QuantSpec spec;
};
inline const std::vector<quant_spec_preset>& quant_spec_presets() {
  static const std::vector<quant_spec_preset> presets = {
      {"mxfp4", mx_spec(element_format::float4_e2m1fn)},
      {"mxfp6", mx_spec(element_format::float6_e3m2fn)},
      {"mxfp6_e3m2", mx_spec(element_format::float6_e3m2fn)},
      {"mxfp6_e2m3", mx_spec(element_format::float6_e2m3fn)},
      {"mxfp8", mx_spec(element_format::float8_e4m3fn)},
      {"mxfp8_e4m3", mx_spec(element_format::float8_e4m3fn)},
      {"mxfp8_e5m2", mx_spec(element_format::float8_e5m2)},
      {"nvfp4", nvfp4_spec()},
  };
  return presets;
}

inline element_format parse_element_format(std::string_view t) {
  if (t == "int8" || t == "i8") return element_format::int8;
  if (t == "int4" || t == "i4") return element_format::int4;
  if (t == "float8_e4m3fn" || t == "fp8" || t == "e4m3" || t == "fp8_e4m3") return element_format::float8_e4m3fn;
  if (t == "float8_e5m2" || t == "e5m2" || t == "fp8_e5m2") return element_format::float8_e5m2;
  if (t == "float6_e3m2fn" || t == "fp6" || t == "e3m2" || t == "fp6_e3m2") return element_format::float6_e3m2fn;
  if (t == "float6_e2m3fn" || t == "e2m3" || t == "fp6_e2m3") return element_format::float6_e2m3fn;
  if (t == "float4_e2m1fn" || t == "fp4" || t == "e2m1" || t == "fp4_e2m1") return element_format::float4_e2m1fn;
  detail::fail("unknown element format '" + std::string(t) +
               "' (expected int8, int4, float8_e4m3fn/fp8, float8_e5m2/e5m2, float6_e3m2fn/fp6, "
               "float6_e2m3fn/e2m3, float4_e2m1fn/fp4)");
}

inline scale_constraint parse_scale_constraint(std::string_view t) {
  if (t == "none") return scale_constraint::none;
  if (t == "m1" || t == "pow2_m1") return scale_constraint::pow2_m1;
  if (t == "m2" || t == "pow2_m2") return scale_constraint::pow2_m2;
  if (t == "mx") return scale_constraint::mx;
  if (t == "nvfp4") return scale_constraint::nvfp4;
  detail::fail("unknown scale constraint '" + std::string(t) + "' (expected none, m1, m2, mx, nvfp4)");
}

inline act_format parse_act_format(std::string_view t) {
  if (t == "int8" || t == "i8") return act_format::int8;
  if (t == "float8_e4m3fn" || t == "fp8" || t == "e4m3" || t == "fp8_e4m3") return act_format::float8_e4m3fn;
  if (t == "float8_e5m2" || t == "e5m2" || t == "fp8_e5m2") return act_format::float8_e5m2;
  detail::fail("unknown activation format '" + std::string(t) + "' (expected int8, float8_e4m3fn/fp8, float8_e5m2/e5m2)");
}

inline scale_dtype parse_scale_dtype(std::string_view t) {
  if (t == "f32" || t == "fp32") return scale_dtype::f32;
  if (t == "f16" || t == "fp16") return scale_dtype::f16;
  if (t == "bf16") return scale_dtype::bf16;
  detail::fail("unknown scale storage '" + std::string(t) + "' (expected f32, f16, bf16)");
}

// Parses the canonical form (or a preset); the result is validated with normalized_spec.
template <class Deferred = void>  // see "Compile time" in docs/design.md
QuantSpec parse_quant_spec(std::string_view text) {
  std::vector<std::string> f;
  std::size_t start = 0;
  while (start <= text.size()) {
    const std::size_t end = std::min(text.find(':', start), text.size());
    f.emplace_back(text.substr(start, end - start));
    start = end + 1;
  }
  const std::string whole(text);
  QuantSpec s;
  bool explicit_group = false;  // a g<N> field, which mx / nvfp4 must not silently replace
  const std::string& head = f[0];
  const auto& presets = quant_spec_presets();
  const auto preset = std::find_if(presets.begin(), presets.end(), [&](const quant_spec_preset& p) { return head == p.name; });
  if (preset != presets.end()) s = preset->spec;
  else s.format = parse_element_format(head);
  for (std::size_t i = 1; i < f.size(); ++i) {
    const std::string& t = f[i];
    if (t == "tensor" || t == "per_tensor") s.gran = granularity::per_tensor;
    else if (t == "channel" || t == "per_channel") s.gran = granularity::per_channel;
    else if (t.size() > 1 && t[0] == 'g' && t.find_first_not_of("0123456789", 1) == std::string::npos) {
      s.gran = granularity::per_group;
      const std::string digits = t.substr(1);
      if (digits.size() > 9 || std::stol(digits) < 1)
        detail::fail("quant spec '" + whole + "': group size '" + digits + "' must be an integer in [1, 999999999]");
      s.group_size = static_cast<int>(std::stol(digits));
      explicit_group = true;
    } else if (t == "asym") s.symmetric = false;
    else if (t == "sym") s.symmetric = true;
    else if (t == "f32" || t == "f16" || t == "bf16") s.scale_storage = parse_scale_dtype(t);
    else if (t == "qmax_half") s.int_rule = int_scale_rule::amax_over_qmax_half;
    else if (t == "q4_0") s.int_rule = int_scale_rule::q4_0;
    else if (t == "up175") s.mx_rounding = mx_scale_rounding::round_up_175;
    else if (t.rfind("clip", 0) == 0) {
      s.clip.enabled = true;
      if (t.size() > 4) {
        float r = 0.0f;
        int n = 0;
        char tail = 0;
        if (std::sscanf(t.c_str() + 4, "%fx%d%c", &r, &n, &tail) != 2)
          detail::fail("quant spec '" + whole + "': bad clip field '" + t + "' (expected clip or clip<ratio>x<steps>)");
        s.clip.min_ratio = r;
        s.clip.steps = n;
      }
    } else if (t == "none" || t == "m1" || t == "m2" || t == "pow2_m1" || t == "pow2_m2" || t == "mx" ||
               t == "nvfp4") {
      s.constraint = parse_scale_constraint(t);
    } else {
      detail::fail("quant spec '" + whole + "': unknown field '" + t +
                   "' (expected tensor, channel, g<N>, m1, m2, mx, nvfp4, asym, f16, bf16, qmax_half, q4_0, "
                   "up175, clip<r>x<n>)");
    }
  }
  const QuantSpec n = normalized_spec(s, whole);
  if (explicit_group && n.group_size != s.group_size)
    detail::fail("quant spec '" + whole + "': the " + std::string(s.constraint == scale_constraint::mx ? "mx" : "nvfp4") +
                 " scale fixes the group size at " + std::to_string(n.group_size) + ", not " +
                 std::to_string(s.group_size) + "; drop the g field or write g" + std::to_string(n.group_size));
  return n;
}

}  // namespace lowbit
