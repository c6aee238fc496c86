// `lowbit demo`: quantize a deterministic synthetic LLM-like block (synthetic.hpp) with the
// schemes of the seed papers, print bits/weight, weight SQNR, output SQNR and time side by
// side, then say which of the papers' claims the measured numbers support or contradict.
// Activation schemes are evaluated by fake quantization (dequantized weights, quantized-
// dequantized activations, fp32 product), which is exactly what the integer/FP8 kernels
// compute up to fp32 accumulation order.
#include <fmt/core.h>

#include <chrono>
#include <cmath>
#include <limits>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <vector>

#include "lowbit/quant.hpp"
#include "registry.hpp"
#include "synthetic.hpp"

namespace {

using namespace lowbit;

struct DemoScheme {
  std::string name;
  std::string source;  // paper / system the scheme comes from
  std::optional<QuantSpec> weights;
  std::optional<act_format> activations;
};

struct DemoResult {
  double bits_per_weight = 32.0;
  double weight_sqnr_db = std::numeric_limits<double>::infinity();
  double output_sqnr_db = 0.0;
  double output_rel_err = 0.0;
  double millis = 0.0;
};

std::vector<DemoScheme> demo_schemes() {
  using ef = element_format;
  using sc = scale_constraint;
  QuantSpec mx175 = mx_spec(ef::float4_e2m1fn, mx_scale_rounding::round_up_175);
  return {
      {"W4A16-INT g128", "GPTQ/BF16-or-death (RTN here)", group_spec(ef::int4, 128), std::nullopt},
      {"W4A16-INT g128 asym", "SmoothQuant+ (vLLM kernel)", group_spec(ef::int4, 128, sc::none, false), std::nullopt},
      {"W4A16-FP4 g128", "ZeroQuant-FP", group_spec(ef::float4_e2m1fn, 128), std::nullopt},
      {"W4A16-INT g128 M1", "ZeroQuant-FP", group_spec(ef::int4, 128, sc::pow2_m1), std::nullopt},
      {"W4A16-FP4 g128 M1", "ZeroQuant-FP", group_spec(ef::float4_e2m1fn, 128, sc::pow2_m1), std::nullopt},
      {"W4A16-INT g128 M2", "ZeroQuant-FP", group_spec(ef::int4, 128, sc::pow2_m2), std::nullopt},
      {"W4A16-FP4 g128 M2", "ZeroQuant-FP", group_spec(ef::float4_e2m1fn, 128, sc::pow2_m2), std::nullopt},
      {"MXFP4", "OCP MX v1.0", mx_spec(ef::float4_e2m1fn), std::nullopt},
      {"MXFP4 round-up-1.75", "vLLM/compressed-tensors", mx175, std::nullopt},
      {"NVFP4", "NVIDIA", nvfp4_spec(), std::nullopt},
      {"W16A8-INT8 per-token", "ZeroQuant-FP", std::nullopt, act_format::int8},
      {"W16A8-FP8 E4M3 per-token", "ZeroQuant-FP", std::nullopt, act_format::float8_e4m3fn},
      {"W16A8-FP8 E5M2 per-token", "ZeroQuant-FP", std::nullopt, act_format::float8_e5m2},
      {"W8A8-INT", "BF16-or-death (no SmoothQuant/GPTQ)", channel_spec(ef::int8), act_format::int8},
      {"W8A8-FP", "BF16-or-death", channel_spec(ef::float8_e4m3fn), act_format::float8_e4m3fn},
      {"W4A8-INT g128", "ZeroQuant-FP", group_spec(ef::int4, 128), act_format::int8},
      {"W4A8-FP g128 M2", "ZeroQuant-FP", group_spec(ef::float4_e2m1fn, 128, sc::pow2_m2), act_format::float8_e4m3fn},
  };
}

DemoResult run_scheme(const DemoScheme& s, const std::vector<lowbit_synthetic::SyntheticLayer>& layers,
                      const std::vector<RowMatrixXf>& reference_outputs) {
  DemoResult r;
  lowbit::SquaredErrorSums w_sums, y_sums;  // in double: the library's one SQNR definition
  double bits = 0, weights = 0;
  std::chrono::duration<double, std::milli> elapsed{0};
  for (std::size_t i = 0; i < layers.size(); ++i) {
    const auto& L = layers[i];
    const auto t0 = std::chrono::steady_clock::now();
    RowMatrixXf w_hat, x_hat;
    if (s.weights) {
      const QuantizedMatrix q = quantize(L.weight, *s.weights, L.name);
      bits += static_cast<double>(q.storage_bits());
      w_hat = dequantize(q);
    }
    if (s.activations) x_hat = dequantize(quantize_activations(L.activations, *s.activations, 0, L.name));
    elapsed += std::chrono::steady_clock::now() - t0;
    weights += static_cast<double>(L.weight.size());
    if (!s.weights) bits += 32.0 * static_cast<double>(L.weight.size());
    const RowMatrixXf& wq = s.weights ? w_hat : L.weight;
    const RowMatrixXf& xq = s.activations ? x_hat : L.activations;
    if (s.weights) w_sums.add(L.weight, w_hat);
    const RowMatrixXf y = xq * wq.transpose();
    y_sums.add(reference_outputs[i], y);
  }
  r.bits_per_weight = bits / weights;
  if (s.weights) r.weight_sqnr_db = w_sums.sqnr_db();
  r.output_sqnr_db = y_sums.sqnr_db();
  r.output_rel_err = std::sqrt(y_sums.err2 / y_sums.ref2);
  r.millis = elapsed.count();
  return r;
}

struct Claim {
  std::string paper, text;
  bool supported;
  std::string evidence;
};

}  // namespace

static lowbit_cli::registration demo_registration{
    "demo", "Compare the seed papers' schemes on a built-in synthetic LLM-like block", 10, [](CLI::App& sub) {
      auto opts = std::make_shared<lowbit_synthetic::SyntheticOptions>();
      auto json = std::make_shared<bool>(false);
      sub.add_option("--hidden", opts->hidden, "hidden size of the synthetic block")->capture_default_str();
      sub.add_option("--ffn", opts->ffn, "FFN size")->capture_default_str();
      sub.add_option("--tokens", opts->tokens, "tokens of activations per layer")->capture_default_str();
      sub.add_option("--outlier-scale", opts->outlier_scale, "outlier channel magnitude")->capture_default_str();
      sub.add_option("--seed", opts->seed, "generator seed")->capture_default_str();
      sub.add_flag("--json", *json, "print a machine-readable report instead of the table");
      return [opts, json]() -> int {
        if (opts->hidden < 1 || opts->ffn < 1 || opts->tokens < 1) throw lowbit::error("demo: sizes must be >= 1");
        const auto layers = lowbit_synthetic::make_synthetic_block(*opts);
        std::vector<RowMatrixXf> ref;
        for (const auto& L : layers) ref.push_back(L.activations * L.weight.transpose());
        const auto schemes = demo_schemes();
        std::vector<DemoResult> res;
        for (const auto& s : schemes) res.push_back(run_scheme(s, layers, ref));
        const auto find = [&](const std::string& n) -> const DemoResult& {
          for (std::size_t i = 0; i < schemes.size(); ++i)
            if (schemes[i].name == n) return res[i];
          throw lowbit::error("demo: no scheme " + n);
        };
        const auto out = [&](const std::string& n) { return find(n).output_sqnr_db; };
        const auto cmp = [&](const std::string& a, const std::string& b) {
          return fmt::format("{} {:.2f} dB vs {} {:.2f} dB (output SQNR)", a, out(a), b, out(b));
        };
        std::vector<Claim> claims;
        const auto better = [&](const char* paper, const char* text, const std::string& a, const std::string& b) {
          claims.push_back({paper, text, out(a) > out(b), cmp(a, b)});
        };
        better("ZeroQuant-FP", "FP4 (E2M1) weights beat INT4 at group 128", "W4A16-FP4 g128", "W4A16-INT g128");
        better("ZeroQuant-FP", "FP8 (E4M3) per-token activations beat INT8", "W16A8-FP8 E4M3 per-token",
               "W16A8-INT8 per-token");
        better("ZeroQuant-FP", "E4M3 is the better FP8 format for activations", "W16A8-FP8 E4M3 per-token",
               "W16A8-FP8 E5M2 per-token");
        better("ZeroQuant-FP", "the M2 scale constraint loses less than M1 (FP4)", "W4A16-FP4 g128 M2",
               "W4A16-FP4 g128 M1");
        better("ZeroQuant-FP", "W4A8-FP beats W4A8-INT", "W4A8-FP g128 M2", "W4A8-INT g128");
        better("BF16-or-death", "W8A8-FP is more accurate than W8A8-INT", "W8A8-FP", "W8A8-INT");
        {
          const DemoResult& f = find("W8A8-FP");
          claims.push_back({"BF16-or-death", "W8A8-FP is near-lossless (criterion: output rel. error <= 3%)",
                            f.output_rel_err <= 0.03,
                            fmt::format("W8A8-FP output rel. error {:.2f}%", 100.0 * f.output_rel_err)});
          const double d = out("W4A16-INT g128") - out("W8A8-INT");
          claims.push_back({"BF16-or-death",
                            "W4A16-INT g128 is competitive with W8A8-INT (criterion: output SQNR within 3 dB)",
                            d >= -3.0, cmp("W4A16-INT g128", "W8A8-INT")});
        }
        better("NVIDIA NVFP4", "NVFP4 is more accurate than MXFP4", "NVFP4", "MXFP4");
        better("vLLM/compressed-tensors", "rounding the MX scale up at significand >= 1.75 lowers the error",
               "MXFP4 round-up-1.75", "MXFP4");

        if (*json) {
          nlohmann::json j;
          j["model"] = {{"hidden", opts->hidden}, {"ffn", opts->ffn}, {"tokens", opts->tokens},
                        {"outlier_scale", opts->outlier_scale}, {"seed", opts->seed}};
          for (std::size_t i = 0; i < schemes.size(); ++i)
            j["schemes"].push_back({{"name", schemes[i].name},
                                    {"source", schemes[i].source},
                                    {"weights", schemes[i].weights ? to_string(*schemes[i].weights) : "fp32"},
                                    {"activations", schemes[i].activations ? std::string(to_string(*schemes[i].activations)) : "fp32"},
                                    {"bits_per_weight", res[i].bits_per_weight},
                                    {"weight_sqnr_db", std::isinf(res[i].weight_sqnr_db) ? nlohmann::json() : nlohmann::json(res[i].weight_sqnr_db)},
                                    {"output_sqnr_db", res[i].output_sqnr_db},
                                    {"millis", res[i].millis}});
          for (const auto& c : claims)
            j["claims"].push_back({{"paper", c.paper}, {"claim", c.text}, {"supported", c.supported}, {"evidence", c.evidence}});
          fmt::print("{}\n", j.dump(2));
          return 0;
        }
        std::int64_t total = 0;
        for (const auto& L : layers) total += L.weight.size();
        fmt::print("lowbit demo: synthetic Llama-like block (hidden {}, ffn {}, 7 linear layers, {:.2f} M weights,\n"
                   "Student-t(nu={}) weights, {} tokens, {} outlier input channels x{:g}), seed {}\n\n",
                   opts->hidden, opts->ffn, double(total) / 1e6, opts->student_nu, opts->tokens,
                   opts->outlier_channels, opts->outlier_scale, opts->seed);
        fmt::print("{:<26} {:>8} {:>12} {:>12} {:>9}  {}\n", "scheme", "bits/w", "weight SQNR", "output SQNR",
                   "time ms", "weights | activations");
        for (std::size_t i = 0; i < schemes.size(); ++i) {
          const auto& s = schemes[i];
          const auto& r = res[i];
          fmt::print("{:<26} {:>8.3f} {:>12} {:>9.2f} dB {:>9.2f}  {} | {}\n", s.name, r.bits_per_weight,
                     std::isinf(r.weight_sqnr_db) ? std::string("-") : fmt::format("{:.2f} dB", r.weight_sqnr_db),
                     r.output_sqnr_db, r.millis, s.weights ? to_string(*s.weights) : std::string("fp32"),
                     s.activations ? std::string(to_string(*s.activations)) + " per-token" : std::string("fp32"));
        }
        fmt::print("\nClaims checked against these numbers (RTN weights, no smoothing/GPTQ):\n");
        for (const auto& c : claims)
          fmt::print("  [{}] {}: {}\n      {}\n", c.supported ? "supports   " : "contradicts", c.paper, c.text,
                     c.evidence);
        return 0;
      };
    }};
