#pragma once
// QuantSpec <-> JSON, the way checkpoints record each layer's scheme. The record's "text" is
// the canonical spec text (quant/spec_text.hpp), the one spelling of the scheme; the
// structured fields beside it ("format", "granularity", ...) are derived from the parsed text
// by structured_spec_json() alone, for readers older than the "text" field (they read only
// those). A reader takes the text, checks that structured fields, when present, say the same,
// and reads records without text (written before it) from the structured fields.
// The structured spellings are part of the checkpoint format (docs/checkpoint-format.md) and
// must not change silently. Element formats, scale storage and activation formats are spelled
// as in the spec text: their names come from quant/spec_text.hpp's to_string (one table per
// enum). Granularity, scale constraint, integer rule and MX rounding have file-format
// spellings of their own ("per_group", "pow2_m1", ...), kept here and nowhere else.
#include <cstddef>
#include <nlohmann/json.hpp>
#include <string>

#include "lowbit/config.hpp"
#include "lowbit/error.hpp"
#include "lowbit/quant/scheme.hpp"
#include "lowbit/quant/spec_text.hpp"

namespace lowbit::detail {

template <class Enum, std::size_t N>
struct enum_names {
  Enum values[N];
  const char* names[N];

  const char* name(Enum e) const {
    for (std::size_t i = 0; i < N; ++i)
      if (values[i] == e) return names[i];
    return "?";
  }
  Enum parse(const std::string& s, const std::string& what, const std::string& layer) const {
    for (std::size_t i = 0; i < N; ++i)
      if (s == names[i]) return values[i];
    fail("layer '" + layer + "': unknown " + what + " '" + s + "'");
  }
};

// A table whose names are to_string(value) (string literals, so .data() is null-terminated).
template <class Enum, std::size_t N>
enum_names<Enum, N> enum_names_from_to_string(const Enum (&values)[N]) {
  enum_names<Enum, N> n{};
  for (std::size_t i = 0; i < N; ++i) {
    n.values[i] = values[i];
    n.names[i] = to_string(values[i]).data();
  }
  return n;
}

inline const auto& element_format_names() {
  static const auto n = enum_names_from_to_string<element_format, 7>(
      {element_format::int8, element_format::int4, element_format::float8_e4m3fn, element_format::float8_e5m2,
       element_format::float6_e3m2fn, element_format::float6_e2m3fn, element_format::float4_e2m1fn});
  return n;
}
inline const auto& granularity_names() {
  static const enum_names<granularity, 3> n{
      {granularity::per_tensor, granularity::per_channel, granularity::per_group},
      {"per_tensor", "per_channel", "per_group"}};
  return n;
}
inline const auto& constraint_names() {
  static const enum_names<scale_constraint, 5> n{
      {scale_constraint::none, scale_constraint::pow2_m1, scale_constraint::pow2_m2, scale_constraint::mx,
       scale_constraint::nvfp4},
      {"none", "pow2_m1", "pow2_m2", "mx", "nvfp4"}};
  return n;
}
inline const auto& scale_dtype_names() {
  static const auto n =
      enum_names_from_to_string<scale_dtype, 3>({scale_dtype::f32, scale_dtype::f16, scale_dtype::bf16});
  return n;
}
inline const auto& int_rule_names() {
  static const enum_names<int_scale_rule, 3> n{
      {int_scale_rule::amax_over_qmax, int_scale_rule::amax_over_qmax_half, int_scale_rule::q4_0},
      {"amax_over_qmax", "amax_over_qmax_half", "q4_0"}};
  return n;
}
inline const auto& mx_rounding_names() {
  static const enum_names<mx_scale_rounding, 2> n{{mx_scale_rounding::floor, mx_scale_rounding::round_up_175},
                                                  {"floor", "round_up_175"}};
  return n;
}
inline const auto& act_format_names() {
  static const auto n = enum_names_from_to_string<act_format, 3>(
      {act_format::int8, act_format::float8_e4m3fn, act_format::float8_e5m2});
  return n;
}

// The structured fields of a spec (no "text"): the derivation spec_to_json uses.
template <class Deferred = void>  // see "Compile time" in docs/design.md
inline nlohmann::json structured_spec_json(const QuantSpec& s) {
  return {{"format", element_format_names().name(s.format)},
          {"granularity", granularity_names().name(s.gran)},
          {"group_size", s.group_size},
          {"symmetric", s.symmetric},
          {"constraint", constraint_names().name(s.constraint)},
          {"scale_storage", scale_dtype_names().name(s.scale_storage)},
          {"int_rule", int_rule_names().name(s.int_rule)},
          {"mx_rounding", mx_rounding_names().name(s.mx_rounding)},
          {"clip", {{"enabled", s.clip.enabled}, {"min_ratio", s.clip.min_ratio}, {"steps", s.clip.steps}}}};
}

// The record: the canonical text and the structured fields of that text parsed back, so the
// two cannot disagree (fields the text does not carry, such as the group size of a
// per-channel spec, take the parser's defaults). `s` must be valid (normalized_spec).
template <class Deferred = void>  // see "Compile time" in docs/design.md
inline nlohmann::json spec_to_json(const QuantSpec& s) {
  using json_t = deferred_t<Deferred, nlohmann::json>;
  const std::string text = to_string(s);
  json_t j = structured_spec_json(parse_quant_spec(text));
  j["text"] = text;
  return j;
}

// Typed field access that turns a missing or mistyped field into a lowbit::error. Deferred
// templates with dependent bodies (deferred_t; "Compile time" in docs/design.md).
template <class Deferred = void>
inline const deferred_t<Deferred, nlohmann::json>& json_field(const deferred_t<Deferred, nlohmann::json>& j, const char* key, const std::string& layer) {
  if (!j.is_object()) fail("layer '" + layer + "': scheme is not a JSON object");
  const auto it = j.find(key);
  if (it == j.end()) fail("layer '" + layer + "': scheme has no field '" + key + "'");
  return *it;
}
template <class Deferred = void>
inline std::string json_string(const deferred_t<Deferred, nlohmann::json>& j, const char* key, const std::string& layer) {
  const auto& v = json_field<Deferred>(j, key, layer);
  if (!v.is_string()) fail("layer '" + layer + "': field '" + key + "' is not a string");
  return v.template get<std::string>();
}
template <class Deferred = void>
inline std::int64_t json_int(const deferred_t<Deferred, nlohmann::json>& j, const char* key, const std::string& layer) {
  const auto& v = json_field<Deferred>(j, key, layer);
  if (!v.is_number_integer()) fail("layer '" + layer + "': field '" + key + "' is not an integer");
  return v.template get<std::int64_t>();
}
template <class Deferred = void>
inline bool json_bool(const deferred_t<Deferred, nlohmann::json>& j, const char* key, const std::string& layer) {
  const auto& v = json_field<Deferred>(j, key, layer);
  if (!v.is_boolean()) fail("layer '" + layer + "': field '" + key + "' is not a boolean");
  return v.template get<bool>();
}

// The structured fields alone (every record before "text", and the check of newer ones).
template <class Deferred = void>  // see "Compile time" in docs/design.md
inline QuantSpec spec_from_structured_json(const deferred_t<Deferred, nlohmann::json>& j, const std::string& layer) {
  QuantSpec s;
  s.format = element_format_names().parse(json_string(j, "format", layer), "element format", layer);
  s.gran = granularity_names().parse(json_string(j, "granularity", layer), "granularity", layer);
  const auto g = json_int(j, "group_size", layer);
  if (g < 0 || g > (1ll << 31) - 1) fail("layer '" + layer + "': group_size out of range");
  s.group_size = static_cast<int>(g);
  s.symmetric = json_bool(j, "symmetric", layer);
  s.constraint = constraint_names().parse(json_string(j, "constraint", layer), "scale constraint", layer);
  s.scale_storage = scale_dtype_names().parse(json_string(j, "scale_storage", layer), "scale storage", layer);
  s.int_rule = int_rule_names().parse(json_string(j, "int_rule", layer), "integer scale rule", layer);
  s.mx_rounding = mx_rounding_names().parse(json_string(j, "mx_rounding", layer), "mx rounding", layer);
  const auto& clip = json_field(j, "clip", layer);
  s.clip.enabled = json_bool(clip, "enabled", layer);
  const auto& ratio = json_field(clip, "min_ratio", layer);
  if (!ratio.is_number()) fail("layer '" + layer + "': clip.min_ratio is not a number");
  s.clip.min_ratio = ratio.template get<float>();
  const auto steps = json_int(clip, "steps", layer);
  if (steps < 0 || steps > 1000000) fail("layer '" + layer + "': clip.steps out of range");
  s.clip.steps = static_cast<int>(steps);
  return s;
}

// A layer's scheme record: the spec text when the record has one (then any structured fields
// must name the same spec: a record whose two spellings disagree is refused, not resolved in
// favour of either), else the structured fields of a record written before the text.
template <class Deferred = void>  // see "Compile time" in docs/design.md
inline QuantSpec spec_from_json(const deferred_t<Deferred, nlohmann::json>& j, const std::string& layer) {
  if (!j.is_object()) fail("layer '" + layer + "': scheme is not a JSON object");
  if (!j.contains("text")) return spec_from_structured_json(j, layer);
  const std::string text = json_string(j, "text", layer);
  QuantSpec s;
  try {
    s = parse_quant_spec(text);
  } catch (const error& e) {
    fail("layer '" + layer + "': scheme text '" + text + "': " + e.what());
  }
  bool structured = false;  // any structured field beside the text (then all of them); other keys are ignored
  for (const char* key : {"format", "granularity", "group_size", "symmetric", "constraint", "scale_storage", "int_rule",
                          "mx_rounding", "clip"})
    structured = structured || j.contains(key);
  if (structured) {
    // Compared as canonical text: the spelling that says which fields matter for the spec.
    const QuantSpec fields = normalized_spec(spec_from_structured_json(j, layer), layer);
    if (to_string(fields) != to_string(s))
      fail("layer '" + layer + "': the scheme text '" + text + "' and the structured fields (" + to_string(fields) +
           ") disagree");
  }
  return s;
}

}  // namespace lowbit::detail
