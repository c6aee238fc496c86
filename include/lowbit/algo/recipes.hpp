#pragma once
// Named recipes: the papers' schemes one word away.
//
//   w8a8-fp8      FP8 E4M3 per-channel weights, dynamic per-token E4M3 activations,
//                 round-to-nearest ("Give Me BF16 or Give Me Death": lossless)
//   w8a8-int8     SmoothQuant alpha = 0.8 (one vector per norm: q/k/v share one, gate/up one,
//                 o_proj/down_proj none), GPTQ int8 per-channel, int8 per-token activations
//   w4a16-int4    GPTQ, symmetric int4, group 128, fp activations
//   w4a16-sqplus  SmoothQuant+ (alpha searched per layer, a vector per layer), then
//                 round-to-nearest asymmetric int4, group 128 (the paper's W4A16 setting);
//                 smoothing_scope::per_norm makes it exportable to compressed-tensors
//   w4a8-int      GPTQ symmetric int4 group 128, int8 per-token activations
//   w4a8-fp       ZeroQuant-FP: GPTQ FP4 E2M1 group 128 with M2 scales, E4M3 per-token
//                 activations, LoRC rank 8 (fp16 factors)
//   mxfp4         OCP MXFP4 weights (E2M1, E8M0 scale per 32), round-to-nearest, fp activations
//   nvfp4         NVFP4 weights (E2M1, E4M3 scale per 16, fp32 tensor scale), round-to-nearest,
//                 fp activations
//   gguf-q8_0     llama.cpp's Q8_0 grid: symmetric int8, group 32, fp16 scales (amax / 127),
//                 round-to-nearest; `lowbit export --format gguf` writes it exactly
//   gguf-q4_0     llama.cpp's Q4_0 grid: symmetric int4, group 32, fp16 scales by ggml's
//                 rule (scale = -max / 8 of the signed extreme value), round-to-nearest
//   gguf-q8_0-gptq, gguf-q4_0-gptq   the same grids with GPTQ
#include <string>
#include <string_view>
#include <vector>

#include "lowbit/algo/linear.hpp"

namespace lowbit {

inline const std::vector<std::string>& recipe_names() {
  static const std::vector<std::string> names = {"w8a8-fp8",  "w8a8-int8", "w4a16-int4",
                                                 "w4a16-sqplus", "w4a8-int", "w4a8-fp",
                                                 "mxfp4",     "nvfp4",     "gguf-q8_0",
                                                 "gguf-q4_0", "gguf-q8_0-gptq", "gguf-q4_0-gptq"};
  return names;
}

inline LinearRecipe recipe_from_name(std::string_view name) {
  LinearRecipe r;
  r.name = std::string(name);
  QuantSpec& s = r.weight;
  auto group = [&](element_format f, int g, bool sym, scale_constraint c) {
    s.format = f;
    s.gran = granularity::per_group;
    s.group_size = g;
    s.symmetric = sym;
    s.constraint = c;
  };
  auto channel = [&](element_format f) {
    s.format = f;
    s.gran = granularity::per_channel;
    s.symmetric = true;
    s.constraint = scale_constraint::none;
  };
  if (name == "w8a8-fp8") {
    channel(element_format::float8_e4m3fn);
    r.activations = ActivationQuant{act_format::float8_e4m3fn, 0};
  } else if (name == "w8a8-int8") {
    channel(element_format::int8);
    r.activations = ActivationQuant{act_format::int8, 0};
    r.smoothing = smoothing_mode::fixed;
    r.alpha = 0.8f;
    // One vector per norm (q/k/v, gate/up; none on o_proj/down_proj): it folds into the norms
    // for export, and on stories260K it is as good as per layer (20 documents: perplexity
    // 3.9740 shared vs 3.9787 per layer).
    r.scope = smoothing_scope::per_norm;
    r.method = weight_method::gptq;
  } else if (name == "w4a16-int4") {
    group(element_format::int4, 128, true, scale_constraint::none);
    r.method = weight_method::gptq;
  } else if (name == "w4a16-sqplus") {
    group(element_format::int4, 128, false, scale_constraint::none);
    r.smoothing = smoothing_mode::search;
    // Per layer: one vector per norm costs this recipe accuracy (stories260K, 20 documents:
    // perplexity 4.3190 shared vs 4.1987 per layer, 4.3689 unsmoothed; v_proj suffers most),
    // so sharing (--smooth-scope norm) is asked for where it is needed: compressed-tensors export.
  } else if (name == "w4a8-int") {
    group(element_format::int4, 128, true, scale_constraint::none);
    r.activations = ActivationQuant{act_format::int8, 0};
    r.method = weight_method::gptq;
  } else if (name == "w4a8-fp") {
    group(element_format::float4_e2m1fn, 128, true, scale_constraint::pow2_m2);
    r.activations = ActivationQuant{act_format::float8_e4m3fn, 0};
    r.method = weight_method::gptq;
    r.lorc_rank = 8;
    r.lorc.storage = lorc_storage::f16;
  } else if (name == "mxfp4") {
    group(element_format::float4_e2m1fn, 32, true, scale_constraint::mx);
  } else if (name == "nvfp4") {
    group(element_format::float4_e2m1fn, 16, true, scale_constraint::nvfp4);
  } else if (name == "gguf-q8_0" || name == "gguf-q8_0-gptq" || name == "gguf-q4_0" || name == "gguf-q4_0-gptq") {
    const bool q8 = name.substr(0, 9) == "gguf-q8_0";
    group(q8 ? element_format::int8 : element_format::int4, 32, true, scale_constraint::none);
    s.scale_storage = scale_dtype::f16;  // GGUF blocks hold an fp16 scale
    if (!q8) s.int_rule = int_scale_rule::q4_0;
    if (name.size() > 9) r.method = weight_method::gptq;
  } else {
    std::string known;
    for (const std::string& n : recipe_names()) known += (known.empty() ? "" : ", ") + n;
    detail::fail("unknown recipe '" + std::string(name) + "' (known recipes: " + known + ")");
  }
  return r;
}

}  // namespace lowbit
