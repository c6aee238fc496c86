#pragma once
// The one home of the rule "the readers of one norm share one smoothing vector".
//
// SmoothQuant's 1/s is meant to be folded into the RMSNorm that feeds a layer (`norm(x)·γ/s`),
// which is possible only when every layer reading that norm carries the same s: q/k/v read the
// attention norm (input_layernorm), gate/up (w1/w3) the FFN norm (post_attention_layernorm).
// o_proj (wo) and down_proj (w2) read no norm (the attention output, the SwiGLU product), so a
// vector there can never be folded. A recipe with `smoothing_scope::per_norm` therefore gets
//   - one s per norm, chosen by smooth_shared() over all of the norm's readers that the recipe
//     quantizes (their column maxima pooled, their errors summed);
//   - no smoothing on o_proj / down_proj.
// The exporters (compressed-tensors folding, model/ct_export.hpp) and the export rules before
// quantizing (model/exportable.hpp) read the same functions.
#include <array>
#include <functional>
#include <optional>
#include <string>
#include <vector>

#include "lowbit/algo/linear.hpp"
#include "lowbit/algo/smoothquant.hpp"
#include "lowbit/model/weights.hpp"
#include "lowbit/quant/spec_text.hpp"

namespace lowbit::model {

// The norm a linear of a decoder layer reads: 0 the attention norm, 1 the FFN norm; none for
// o_proj / down_proj.
inline std::optional<int> norm_read_by(linear_slot s) noexcept {
  switch (s) {
    case linear_slot::wq:
    case linear_slot::wk:
    case linear_slot::wv: return 0;
    case linear_slot::w1:
    case linear_slot::w3: return 1;
    default: return std::nullopt;
  }
}

// The readers of norm `n` (0 or 1), in slot order.
inline const std::vector<linear_slot>& norm_readers(int n) {
  static const std::vector<linear_slot> r[2] = {{linear_slot::wq, linear_slot::wk, linear_slot::wv},
                                                {linear_slot::w1, linear_slot::w3}};
  return r[n == 0 ? 0 : 1];
}

inline const char* norm_hf_name(int n) noexcept { return n == 0 ? "input_layernorm" : "post_attention_layernorm"; }

// Whether `recipe` smooths the layer at `slot` (unknown place: as the recipe says).
inline bool recipe_smooths(const LinearRecipe& recipe, std::optional<linear_slot> slot) noexcept {
  if (recipe.smoothing == smoothing_mode::none) return false;
  if (recipe.scope == smoothing_scope::per_norm && slot) return norm_read_by(*slot).has_value();
  return true;
}

// The recipe a layer at `slot` is quantized with: per_norm recipes lose their smoothing on
// layers that read no norm.
inline LinearRecipe recipe_at(const LinearRecipe& recipe, std::optional<linear_slot> slot) {
  LinearRecipe r = recipe;
  if (r.smoothing != smoothing_mode::none && !recipe_smooths(recipe, slot)) r.smoothing = smoothing_mode::none;
  return r;
}

// One decoder layer's shared smoothing: per slot, the vector its recipe uses instead of its own
// search (empty: none shared; the layer is quantized by recipe_at(recipe, slot) alone).
struct LayerSmoothing {
  std::array<std::optional<SmoothingResult>, kLinearSlots> shared;
};

// Chooses the shared vectors of one decoder layer. For slot s: `recipe_of(s)` is the recipe it
// will be quantized with (null: kept in float), `weight_of(s)` its fp32 weight, `stats_of(s)`
// the statistics of its input, `name_of(s)` its name (errors). Readers of one norm with a
// per_norm smoothing recipe must use the same recipe (one s, one search objective): otherwise
// refused, naming both layers.
template <class Deferred = void>  // see "Compile time" in docs/design.md
LayerSmoothing share_norm_smoothing(const std::function<const LinearRecipe*(linear_slot)>& recipe_of,
                                    const std::function<const RowMatrixXf*(linear_slot)>& weight_of,
                                    const std::function<const ActivationStats*(linear_slot)>& stats_of,
                                    const std::function<std::string(linear_slot)>& name_of) {
  LayerSmoothing out;
  for (int n = 0; n < 2; ++n) {
    const LinearRecipe* recipe = nullptr;
    linear_slot first{};
    std::vector<linear_slot> members;
    for (linear_slot s : norm_readers(n)) {
      const LinearRecipe* r = recipe_of(s);
      if (!r || r->smoothing == smoothing_mode::none || r->scope != smoothing_scope::per_norm) continue;
      if (recipe && (r->name != recipe->name || lowbit::to_string(r->weight) != lowbit::to_string(recipe->weight) || r->smoothing != recipe->smoothing ||
                     r->alpha != recipe->alpha || r->alpha_step != recipe->alpha_step ||
                     r->activations.has_value() != recipe->activations.has_value()))
        lowbit::detail::fail("layer " + name_of(s) + " and " + name_of(first) + " read the same norm (" + norm_hf_name(n) +
                             ") and share one smoothing vector, but are quantized by different recipes ('" + r->name +
                             "', '" + recipe->name + "'); give them one recipe");
      if (!recipe) {
        recipe = r;
        first = s;
      }
      members.push_back(s);
    }
    if (members.empty()) continue;
    const ActivationStats* stats = stats_of(first);
    if (!stats)
      lowbit::detail::fail("layer " + name_of(first) + ": recipe '" + recipe->name +
                           "' needs calibration statistics of its input (smoothing)");
    std::vector<ConstRowMatrixRef> weights;
    for (linear_slot s : members) {
      const RowMatrixXf* w = weight_of(s);
      if (!w || w->size() == 0) lowbit::detail::fail("layer " + name_of(s) + ": no fp32 weight to choose its smoothing from");
      weights.emplace_back(*w);
    }
    const SmoothingResult sr = smooth_shared<Deferred>(*stats, weights, lowbit::detail::smooth_options(*recipe, name_of(first)));
    for (linear_slot s : members) out.shared[static_cast<int>(s)] = sr;
  }
  return out;
}

}  // namespace lowbit::model
