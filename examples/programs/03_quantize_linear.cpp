// Example 3: quantize one linear layer with SmoothQuant+, GPTQ and LoRC and compare errors.
//
// quantize_linear() runs a LinearRecipe: smoothing (scales activation outliers into the
// weights), then GPTQ or round-to-nearest weight rounding, then LoRC (a low-rank correction
// of the remaining weight error). Smoothing and GPTQ need the layer's input statistics,
// recorded here from synthetic activations with a few outlier channels, as LLM activations
// have. The error printed is the layer's output error on held-out activations.
#include <lowbit/lowbit.hpp>

#include <cstdio>
#include <random>

int main() {
  using namespace lowbit;
  const int in = 256, out = 384;
  std::mt19937 rng(7);
  std::normal_distribution<float> n01(0.0f, 1.0f);
  const auto activations = [&](int tokens) {
    RowMatrixXf x(tokens, in);
    for (int t = 0; t < tokens; ++t)
      for (int i = 0; i < in; ++i) x(t, i) = n01(rng) * (i % 37 == 0 ? 20.0f : 1.0f);  // outlier channels
    return x;
  };
  RowMatrixXf w(out, in);
  for (int r = 0; r < out; ++r)
    for (int i = 0; i < in; ++i) w(r, i) = 0.05f * n01(rng);

  // Calibration: the layer's input statistics (and the GPTQ Hessian) from 512 tokens.
  CalibrationOptions co;
  co.max_sample_rows = 512;
  ActivationStats stats(in, co);
  stats.add(activations(512));
  const RowMatrixXf x = activations(128);
  const RowMatrixXf y = x * w.transpose();

  LinearRecipe base;
  base.weight = group_spec(element_format::int4, 64, scale_constraint::none);
  base.activations = ActivationQuant{act_format::int8, 0};  // W4A8: int8 per-token activations
  struct variant {
    const char* name;
    LinearRecipe recipe;
  };
  std::vector<variant> variants;
  variants.push_back({"round-to-nearest", base});
  LinearRecipe sq = base;
  sq.smoothing = smoothing_mode::search;  // SmoothQuant+: the alpha that minimizes the error
  variants.push_back({"SmoothQuant+", sq});
  LinearRecipe gptq = sq;
  gptq.method = weight_method::gptq;
  variants.push_back({"SmoothQuant+ + GPTQ", gptq});
  LinearRecipe lorc = gptq;
  lorc.lorc_rank = 16;
  variants.push_back({"SmoothQuant+ + GPTQ + LoRC16", lorc});

  for (const variant& v : variants) {
    const QuantizedLinear layer = quantize_linear(w, v.recipe, &stats, "example");
    const ErrorStats e = error_stats(y, layer(x));
    std::printf("%-30s output SQNR %6.2f dB, %.3f bits/weight%s\n", v.name, e.sqnr_db,
                static_cast<double>(layer.storage_bits()) / static_cast<double>(w.size()),
                layer.warning.empty() ? "" : (" (" + layer.warning + ")").c_str());
  }
  return 0;
}
