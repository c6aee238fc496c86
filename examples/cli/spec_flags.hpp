#pragma once
// The weight-scheme flags of `lowbit quantize` and `lowbit eval` (--weights, --group, --scale,
// --asymmetric) as spec text. Each flag spells one field of the canonical text
// (lowbit/quant/spec_text.hpp) and the composed text goes through lowbit::parse_quant_spec:
// one validation path, so `--weights fp4 --group 7 --scale mx` is refused by the parser's own
// rule ("the mx scale fixes the group size at 32"), with the flags named in front.
// Depends on the library only (no CLI11), so tests can include it.
#include <optional>
#include <string>

#include "lowbit/error.hpp"
#include "lowbit/quant/scheme.hpp"
#include "lowbit/quant/spec_text.hpp"

namespace lowbit_cli {

struct weight_spec_flags {
  std::optional<std::string> weights;  // element format (a name parse_element_format takes); absent: int4
  std::optional<int> group;            // > 0: g<N>, 0: channel, -1: tensor; absent: no field (the text's default)
  std::optional<std::string> scale;    // fp32 (no constraint field) or a constraint's name; absent: fp32
  bool asymmetric = false;

  // The flags as given, for messages: "--weights fp4 --group 7 --scale mx".
  std::string given() const {
    std::string out;
    const auto add = [&](const std::string& flag) { out += (out.empty() ? "" : " ") + flag; };
    if (weights) add("--weights " + *weights);
    if (group) add("--group " + std::to_string(*group));
    if (scale) add("--scale " + *scale);
    if (asymmetric) add("--asymmetric");
    return out.empty() ? std::string("the default weight flags") : out;
  }
};

// One flag's value checked to be a field of the flag's kind, through the library's table of
// names for that kind: --weights takes an element format, --scale a scale constraint, not
// whole spec text ("--scale m2:f16") or another kind of field ("--scale asym").
template <class Parse>
auto spec_flag_field(const char* flag, const std::string& value, Parse parse) {
  try {
    return parse(value);
  } catch (const lowbit::error& e) {
    throw lowbit::error(std::string(flag) + ": " + e.what());
  }
}

// The spec text of the flags, canonical field names in canonical order:
// <format>[:g<N>|:channel|:tensor][:<constraint>][:asym].
inline std::string spec_text_of(const weight_spec_flags& f) {
  std::string text(lowbit::to_string(spec_flag_field("--weights", f.weights.value_or("int4"), lowbit::parse_element_format)));
  if (f.group) {
    if (*f.group > 0) text += ":g" + std::to_string(*f.group);
    else if (*f.group == 0) text += ":channel";
    else if (*f.group == -1) text += ":tensor";
    else
      throw lowbit::error("--group: expected a group size > 0, 0 (per channel) or -1 (per tensor), got " +
                          std::to_string(*f.group));
  }
  const std::string scale = f.scale.value_or("fp32");
  if (scale != "fp32") {
    const lowbit::scale_constraint c = spec_flag_field("--scale", scale, [](const std::string& v) {
      try {
        return lowbit::parse_scale_constraint(v);
      } catch (const lowbit::error&) {
        throw lowbit::error("expected fp32, m1, m2, mx or nvfp4, got '" + v + "'");
      }
    });
    if (c != lowbit::scale_constraint::none) text += ":" + std::string(lowbit::to_string(c));
  }
  if (f.asymmetric) text += ":asym";
  return text;
}

// The QuantSpec of the flags: parse_quant_spec(spec_text_of(f)), its errors led by the flags.
inline lowbit::QuantSpec spec_of(const weight_spec_flags& f) {
  const std::string text = spec_text_of(f);
  try {
    return lowbit::parse_quant_spec(text);
  } catch (const lowbit::error& e) {
    throw lowbit::error(f.given() + ": " + e.what());
  }
}

}  // namespace lowbit_cli
