#pragma once
// What `lowbit quantize` does to each tensor: which tensors are quantized (--ignore, the
// default ignore list, --include/--exclude), with which recipe (the base scheme, or the first
// --override REGEX=SCHEME whose regex matches), and the byte sizes of --max-shard-size.
#include <cstdint>
#include <regex>
#include <string>
#include <vector>

#include "cli_common.hpp"
#include "lowbit/algo/recipes.hpp"
#include "lowbit/io/dtype.hpp"
#include "lowbit/quant/spec_text.hpp"

namespace lowbit_cli {

inline std::regex compile_regex(const std::string& text, const std::string& flag) {
  try {
    return std::regex(text);
  } catch (const std::regex_error& e) {
    lowbit_cli::fail(flag + ": invalid regex '" + text + "': " + e.what());
  }
}

// One --override REGEX=SCHEME: SCHEME is a named recipe (the whole recipe replaces the base
// one) or spec text such as int8:channel (only the weight format changes; the base recipe's
// method, activations, smoothing and LoRC stay).
struct scheme_override {
  std::string pattern, scheme;
  std::regex re;
  lowbit::LinearRecipe recipe;
  std::string label;
};

inline scheme_override parse_override(const std::string& arg, const resolved_scheme& base) {
  const auto eq = arg.rfind('=');
  if (eq == std::string::npos || eq == 0 || eq + 1 == arg.size())
    lowbit_cli::fail("--override: expected REGEX=SCHEME (a recipe name or spec text such as int8:channel), got '" + arg + "'");
  scheme_override o;
  o.pattern = arg.substr(0, eq);
  o.scheme = arg.substr(eq + 1);
  o.re = compile_regex(o.pattern, "--override");
  const auto& names = lowbit::recipe_names();
  if (std::find(names.begin(), names.end(), o.scheme) != names.end()) {
    o.recipe = lowbit::recipe_from_name(o.scheme);
    o.recipe.weight = lowbit::normalized_spec(o.recipe.weight, o.scheme);
    o.label = o.scheme + " (" + lowbit::to_string(o.recipe.weight) + ")";
  } else {
    o.recipe = base.recipe;
    try {
      o.recipe.weight = lowbit::parse_quant_spec(o.scheme);  // validated (normalized_spec) by the parser
    } catch (const lowbit::error& e) {
      lowbit_cli::fail("--override '" + arg + "': '" + o.scheme + "' is neither a recipe nor a scheme: " + e.what());
    }
    o.recipe.name = base.recipe.name + "/" + o.scheme;
    o.label = lowbit::to_string(o.recipe.weight);
    if (o.recipe.activations) o.label += " a:" + std::string(lowbit::to_string(o.recipe.activations->format));
  }
  return o;
}

// The tensors kept in their input dtype by default: embeddings, norms, the classifier.
inline const std::vector<std::string>& default_ignore() {
  static const std::vector<std::string> v = {"embed", "norm", "lm_head", "^output\\.weight$"};
  return v;
}

struct tensor_rules {
  std::vector<std::string> ignore;  // effective list (defaults first unless turned off)
  std::vector<std::regex> ignore_re;
  std::string include, exclude;
  std::regex include_re, exclude_re;
  std::vector<scheme_override> overrides;

  tensor_rules(const std::vector<std::string>& user_ignore, bool default_list, std::string inc, std::string exc)
      : include(std::move(inc)), exclude(std::move(exc)) {
    if (default_list) ignore = default_ignore();
    ignore.insert(ignore.end(), user_ignore.begin(), user_ignore.end());
    for (const auto& p : ignore) ignore_re.push_back(compile_regex(p, "--ignore"));
    if (!include.empty()) include_re = compile_regex(include, "--include");
    if (!exclude.empty()) exclude_re = compile_regex(exclude, "--exclude");
  }

  // Rank-2 float tensors named *.weight, not ignored, selected by --include/--exclude.
  bool quantizes(const std::string& n, lowbit::tensor_dtype dtype, const std::vector<std::int64_t>& shape) const {
    const bool floaty = dtype == lowbit::tensor_dtype::f32 || dtype == lowbit::tensor_dtype::f16 ||
                        dtype == lowbit::tensor_dtype::bf16 || dtype == lowbit::tensor_dtype::f64;
    if (shape.size() != 2 || !floaty || shape[0] == 0 || shape[1] == 0) return false;
    if (n.size() < 7 || n.compare(n.size() - 7, 7, ".weight") != 0) return false;
    for (const auto& re : ignore_re)
      if (std::regex_search(n, re)) return false;
    if (!include.empty() && !std::regex_search(n, include_re)) return false;
    if (!exclude.empty() && std::regex_search(n, exclude_re)) return false;
    return true;
  }
  // The first override matching `name`, or nullptr (the base scheme).
  const scheme_override* override_for(const std::string& name) const {
    for (const auto& o : overrides)
      if (std::regex_search(name, o.re)) return &o;
    return nullptr;
  }
};

// "4GiB", "500MB", "100M", "123456" -> bytes.
inline std::uint64_t parse_byte_size(const std::string& text, const char* flag) {
  std::size_t used = 0;
  double v = 0;
  try {
    v = std::stod(text, &used);
  } catch (const std::exception&) {
    used = 0;
  }
  std::string unit = text.substr(used);
  for (auto& c : unit) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  double mul = 0;
  if (unit.empty() || unit == "b") mul = 1;
  else if (unit == "k" || unit == "kb") mul = 1e3;
  else if (unit == "m" || unit == "mb") mul = 1e6;
  else if (unit == "g" || unit == "gb") mul = 1e9;
  else if (unit == "kib") mul = 1024.0;
  else if (unit == "mib") mul = 1024.0 * 1024;
  else if (unit == "gib") mul = 1024.0 * 1024 * 1024;
  if (used == 0 || mul == 0 || !(v > 0) || v * mul > 1e15)
    lowbit_cli::fail(std::string(flag) + ": expected a size such as 4GiB, 500MB or 1000000, got '" + text + "'");
  return static_cast<std::uint64_t>(v * mul);
}

}  // namespace lowbit_cli
