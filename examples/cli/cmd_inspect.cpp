// `lowbit inspect FILE`: the tensors of a safetensors checkpoint (dtype, shape, bytes), the
// scheme of each quantized layer when it is a lowbit checkpoint (with the QuantizedLinear
// extras: recipe, activation format, bias, smoothing, LoRC rank), and the totals.
#include <fmt/format.h>

#include <map>
#include <memory>
#include <string>

#include "cli_common.hpp"
#include "lowbit/io/checkpoint.hpp"
#include "lowbit/io/linear_checkpoint.hpp"
#include "lowbit/io/sharded.hpp"
#include "registry.hpp"

namespace {

struct inspect_options {
  std::string file;
  bool json = false;
};

// "recipe w4a8-fp, a:float8_e4m3fn, lorc8/f16, smooth a=0.45, bias": what the layer adds to
// its weight scheme.
std::string extras_text(const lowbit::QuantizedLinear& l) {
  std::string out;
  const auto add = [&](const std::string& part) { out += (out.empty() ? "" : ", ") + part; };
  if (!l.recipe.empty() && l.recipe != "custom") add("recipe " + l.recipe);
  if (l.activations) {
    add("a:" + std::string(lowbit::to_string(l.activations->format)) +
        (l.activations->group > 0 ? ":g" + std::to_string(l.activations->group) : std::string()));
  }
  if (l.lorc) {
    const char* st = l.lorc->storage == lowbit::lorc_storage::f32 ? "f32" : l.lorc->storage == lowbit::lorc_storage::f16 ? "f16" : "int8";
    add(fmt::format("lorc{}/{}", l.lorc->rank(), st));
  }
  if (l.smoothing) add(fmt::format("smooth alpha={:.2f}", l.smoothing_alpha));
  if (l.bias) add("bias");
  if (!l.warning.empty()) add("warning: " + l.warning);
  return out;
}

int run_inspect(const inspect_options& o) {
  const auto model = lowbit_cli::open_safetensors_input(o.file, "inspect");
  // Quantized layers live in shards' metadata; map each of their tensors to the layer.
  std::map<std::string, std::string> layer_of;       // tensor -> layer base
  std::map<std::string, nlohmann::json> layers;      // base -> metadata entry
  bool lowbit_file = false;
  for (const auto& shard : model.shards()) {
    if (!lowbit::is_lowbit_checkpoint(*shard)) continue;
    lowbit_file = true;
    for (const auto& base : lowbit::checkpoint_layers(*shard)) {
      const nlohmann::json info = lowbit::checkpoint_layer_info(*shard, base);
      // Validate by rebuilding the layer (dtype and shape of every part checked).
      const lowbit::QuantizedLinear l = lowbit::load_quantized_linear(*shard, base);
      layers[base] = info;
      layers[base]["scheme"] = lowbit::to_string(l.weight.spec);
      layers[base]["extras"] = extras_text(l);
      layers[base]["bits_per_weight"] = l.bits_per_weight();  // QuantizedLinear's definition, as quantize
      for (const auto& t : shard->tensors())
        if (t.name.rfind(base + ".", 0) == 0 && t.name.find('.', base.size() + 1) == std::string::npos)
          layer_of[t.name] = base;
    }
  }
  std::uint64_t data_bytes = 0, elements = 0;
  for (const auto* t : model.tensors()) {
    data_bytes += t->nbytes;
    elements += static_cast<std::uint64_t>(t->numel());
  }
  if (o.json) {
    nlohmann::json j;
    j["file"] = o.file;
    j["file_bytes"] = model.total_file_bytes();
    j["shards"] = model.shards().size();
    j["lowbit_checkpoint"] = lowbit_file;
    j["metadata"] = model.metadata();
    auto& ts = j["tensors"] = nlohmann::json::array();
    for (const auto* t : model.tensors()) {
      nlohmann::json e = {{"name", t->name}, {"dtype", std::string(lowbit::dtype_name(t->dtype))},
                          {"shape", t->shape}, {"bytes", t->nbytes}};
      const auto it = layer_of.find(t->name);
      if (it != layer_of.end()) e["layer"] = it->second;
      ts.push_back(std::move(e));
    }
    j["layers"] = layers;
    lowbit_cli::write_json("-", j);
    return 0;
  }
  fmt::print("{}: {} tensors in {} file(s), {} ({} elements)\n", lowbit_cli::printable(o.file), model.tensors().size(), model.shards().size(),
             lowbit_cli::human_bytes(double(model.total_file_bytes())), elements);
  for (const auto& [k, v] : model.metadata())
    if (k.rfind(lowbit::checkpoint_layer_prefix, 0) != 0)
      fmt::print("  {} = {}\n", lowbit_cli::printable(k), lowbit_cli::printable(v));
  fmt::print("\n{:<52} {:<8} {:>14} {:>12}  {}\n", "tensor", "dtype", "shape", "bytes", "layer scheme");
  for (const auto* t : model.tensors()) {
    const auto it = layer_of.find(t->name);
    std::string scheme;
    if (it != layer_of.end()) {
      const auto& info = layers[it->second];
      scheme = lowbit_cli::printable(it->second) + ": " + info["scheme"].get<std::string>();
      if (info.contains("bits_per_weight")) scheme += fmt::format(" ({:.3f} bits/w)", info["bits_per_weight"].get<double>());
      const std::string extras = info["extras"].get<std::string>();
      if (!extras.empty()) scheme += " [" + lowbit_cli::printable(extras) + "]";
    }
    fmt::print("{:<52} {:<8} {:>14} {:>12}  {}\n", lowbit_cli::printable(t->name), lowbit::dtype_name(t->dtype), lowbit_cli::shape_text(t->shape),
               t->nbytes, scheme);
  }
  fmt::print("\ntotal: {} of tensor data", lowbit_cli::human_bytes(double(data_bytes)));
  if (lowbit_file) fmt::print(", {} quantized layers", layers.size());
  fmt::print("\n");
  return 0;
}

lowbit_cli::registration inspect_registration{"inspect", "List a checkpoint's tensors, dtypes, shapes, schemes and size", 30,
                             [](CLI::App& sub) -> lowbit_cli::run_fn {
                               auto o = std::make_shared<inspect_options>();
                               sub.add_option("FILE", o->file, "A .safetensors file, index or directory")->required();
                               sub.add_flag("--json", o->json, "Print JSON instead of a table");
                               return [o] { return run_inspect(*o); };
                             }};

}  // namespace
