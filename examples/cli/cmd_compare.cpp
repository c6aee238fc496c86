// `lowbit compare IN --recipes a,b,c`: quantizes every eligible weight of a checkpoint with
// each scheme and prints them side by side: bits/weight, weight SQNR, output SQNR on probe
// activations (--probe-tokens N: N deterministic Gaussian tokens with a few outlier
// channels, since `compare` does not run the model), and time. Schemes are spec texts
// (int4:g128, float4_e2m1fn:g32:m2, mxfp4, nvfp4, int8:channel, ...; see quant/spec_text.hpp).
// Tensors are read one at a time, so memory stays near one tensor's working set.
#include <fmt/format.h>

#include <chrono>
#include <cmath>
#include <memory>
#include <random>
#include <sstream>
#include <string>
#include <vector>

#include "cli_common.hpp"
#include "lowbit/io/sharded.hpp"
#include "lowbit/quant/metrics.hpp"
#include "lowbit/quant/quantizer.hpp"
#include "registry.hpp"

namespace {

struct compare_options {
  std::string input, recipes = "int8:channel,int4:g128,float4_e2m1fn:g32:m2,mxfp4,nvfp4";
  lowbit_cli::tensor_filter filter;
  int probe_tokens = 0;
  bool json = false, quiet = false;
};

struct totals {
  std::string name;
  lowbit::QuantSpec spec;
  std::int64_t bits = 0, weights = 0;
  double w_err2 = 0, w_ref2 = 0, y_err2 = 0, y_ref2 = 0, seconds = 0;
};

double db(double ref2, double err2) { return err2 == 0 ? INFINITY : 10.0 * std::log10(ref2 / err2); }

int run_compare(const compare_options& o) {
  std::vector<totals> rows;
  std::stringstream list(o.recipes);
  for (std::string item; std::getline(list, item, ',');) {
    if (item.empty()) continue;
    totals t;
    t.name = item;
    t.spec = lowbit::normalized_spec(lowbit::parse_quant_spec(item), item);
    rows.push_back(t);
  }
  if (rows.empty()) lowbit::detail::fail("--recipes: no scheme given");
  if (o.probe_tokens < 0) lowbit::detail::fail("--probe-tokens must be >= 0");
  const auto model = lowbit::open_safetensors_model(o.input);
  std::uint64_t total = 0, done = 0;
  for (const auto* t : model.tensors())
    if (o.filter.selects(*t)) total += t->nbytes;
  if (total == 0) lowbit::detail::fail(o.input + ": no tensor is eligible for quantization (2-D *.weight, see --help)");
  lowbit_cli::progress_bar bar(total, o.quiet);
  std::mt19937 rng(1234);
  std::normal_distribution<float> normal(0.0f, 1.0f);
  for (const auto* t : model.tensors()) {
    if (!o.filter.selects(*t)) continue;
    const lowbit::RowMatrixXf w = t->to_matrix();
    lowbit::RowMatrixXf x, y;
    if (o.probe_tokens > 0) {
      x.resize(o.probe_tokens, w.cols());
      for (Eigen::Index i = 0; i < x.size(); ++i) x.data()[i] = normal(rng);
      for (Eigen::Index c = 7; c < x.cols(); c += 61) x.col(c) *= 20.0f;  // outlier channels
      y = x * w.transpose();
    }
    for (auto& r : rows) {
      const auto t0 = std::chrono::steady_clock::now();
      const lowbit::QuantizedMatrix q = lowbit::quantize(w, r.spec, t->name);
      r.seconds += std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
      const lowbit::RowMatrixXf w_hat = lowbit::dequantize(q);
      r.bits += q.storage_bits();
      r.weights += w.size();
      r.w_err2 += double((w - w_hat).squaredNorm());
      r.w_ref2 += double(w.squaredNorm());
      if (o.probe_tokens > 0) {
        r.y_err2 += double((y - x * w_hat.transpose()).squaredNorm());
        r.y_ref2 += double(y.squaredNorm());
      }
    }
    model.release(*t);
    done += t->nbytes;
    bar.update(done, t->name);
  }
  bar.finish();
  if (o.json) {
    nlohmann::json j = {{"input", o.input}, {"probe_tokens", o.probe_tokens}};
    auto& arr = j["schemes"] = nlohmann::json::array();
    for (const auto& r : rows) {
      nlohmann::json e = {{"scheme", r.name},
                          {"spec", lowbit::to_string(r.spec)},
                          {"bits_per_weight", double(r.bits) / double(r.weights)},
                          {"weight_sqnr_db", lowbit_cli::db_json(db(r.w_ref2, r.w_err2))},
                          {"quantize_seconds", r.seconds}};
      if (o.probe_tokens > 0) e["output_sqnr_db"] = lowbit_cli::db_json(db(r.y_ref2, r.y_err2));
      arr.push_back(std::move(e));
    }
    lowbit_cli::write_json("-", j);
    return 0;
  }
  fmt::print("{:<28} {:>8} {:>12} {:>12} {:>10}\n", "scheme", "bits/w", "weight SQNR", "output SQNR", "time s");
  for (const auto& r : rows)
    fmt::print("{:<28} {:>8.3f} {:>12} {:>12} {:>10.3f}\n", r.name, double(r.bits) / double(r.weights),
               lowbit_cli::db_text(db(r.w_ref2, r.w_err2)),
               o.probe_tokens > 0 ? lowbit_cli::db_text(db(r.y_ref2, r.y_err2)) : std::string("-"), r.seconds);
  fmt::print("(SQNR in dB over all eligible tensors{})\n",
             o.probe_tokens > 0 ? fmt::format("; output SQNR on {} synthetic probe tokens, fp32 activations", o.probe_tokens)
                                : std::string("; --probe-tokens N adds output SQNR"));
  return 0;
}

lowbit_cli::registration reg{
    "compare", "Compare quantization schemes side by side on a checkpoint's weights", 40,
    [](CLI::App& sub) -> lowbit_cli::run_fn {
      auto o = std::make_shared<compare_options>();
      sub.add_option("IN", o->input, "A .safetensors file, index or directory")->required();
      sub.add_option("--recipes", o->recipes, "Comma-separated schemes (spec texts such as int4:g128, mxfp4, nvfp4)")
          ->capture_default_str();
      o->filter.add_to(sub);
      sub.add_option("--probe-tokens", o->probe_tokens, "Synthetic activation rows for an output-SQNR column (0 = off)");
      sub.add_flag("--json", o->json, "Print JSON instead of a table");
      sub.add_flag("-q,--quiet", o->quiet, "No progress bar");
      return [o] { return run_compare(*o); };
    }};

}  // namespace
