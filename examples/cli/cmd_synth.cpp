// `lowbit synth PATH --size-gb N` (or `lowbit synth DIR --shape llama-3.2-1b`): writes a synthetic Llama-shaped safetensors checkpoint of
// about N GB (F32 or BF16, heavy-tailed weights, deterministic), one tensor at a time, for
// the streaming benchmark (scripts/bench_streaming.sh) and the CLI tests. Hidden from --help.
#include <fmt/format.h>
#include <sys/stat.h>

#include <cerrno>
#include <cstring>
#include <fstream>
#include <sstream>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "cli_common.hpp"
#include "lowbit/io/paths.hpp"
#include "lowbit/io/safetensors_writer.hpp"
#include "registry.hpp"

namespace {

struct synth_options {
  std::string path, dtype = "f32", shape, tokenizer;
  double size_gb = 0.01;
  int dim = 0, hidden = 0;
  int layers = 0;  // with --shape: decoder layers (0: the shape's own)
  std::uint64_t seed = 1;
};

// splitmix64: a tiny, fast, well-mixed deterministic generator.
struct splitmix {
  std::uint64_t s;
  std::uint64_t next() {
    std::uint64_t z = (s += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
  }
  float uniform() { return static_cast<float>((next() >> 40) + 1) * (1.0f / 16777217.0f); }  // (0, 1)
};

// bfloat16 bits of f, round to nearest even (Eigen's conversion, as gemm()'s bf16 input uses).
std::uint16_t bf16_bits(float f) { return Eigen::numext::bit_cast<std::uint16_t>(Eigen::bfloat16(f)); }

// --shape llama-3.2-1b: a Hugging Face directory shaped like Llama-3.2-1B (hidden 2048,
// intermediate 8192, 16 layers, 32 heads, 8 kv heads, head_dim 64, vocab 128256, tied
// embeddings; BF16, about 2.5 GB): config.json, model.safetensors and, with --tokenizer FILE, a
// copy of that tokenizer.json. Weights are random (Laplace, a few loud input channels), for
// memory and speed benchmarks of quantize / eval on a real model's shapes.
int run_synth_hf(const synth_options& o) {
  if (o.shape != "llama-3.2-1b") lowbit_cli::fail("--shape: expected llama-3.2-1b, got '" + o.shape + "'");
  if (o.layers < 0 || o.layers > 16) lowbit_cli::fail("--layers: expected 1 to 16, got " + std::to_string(o.layers));
  // --layers N keeps every width and cuts the depth: calibration's peak memory is per layer,
  // so a 2-layer model shows it in minutes (scripts/bench_calibration.sh LAYERS=2).
  const int dim = 2048, hidden = 8192, layers = o.layers > 0 ? o.layers : 16, heads = 32, kv_heads = 8, head_dim = 64,
            vocab = 128256;
  if (::mkdir(o.path.c_str(), 0755) != 0 && errno != EEXIST)
    lowbit_cli::fail("cannot create '" + o.path + "': " + std::strerror(errno));
  lowbit::SafetensorsWriter out(o.path + "/model.safetensors");
  out.set_metadata("format", "pt");
  out.set_metadata("source", "lowbit synth --shape llama-3.2-1b (synthetic, heavy-tailed)");
  splitmix rng{o.seed};
  std::vector<std::uint16_t> h;
  const auto add = [&](const std::string& name, std::int64_t rows, std::int64_t cols, bool norm) {
    const std::size_t n = static_cast<std::size_t>(rows * cols);
    h.resize(n);
    const float scale = 0.5f / std::sqrt(static_cast<float>(cols));  // keeps activations O(1) through the layers
    for (std::size_t i = 0; i < n; ++i) {
      const float u = rng.uniform() - 0.5f;
      float f = norm ? 1.0f + 0.1f * u : -scale * std::copysign(std::log(std::max(1e-7f, 1.0f - 2.0f * std::fabs(u))), u);
      if (!norm && (i % static_cast<std::size_t>(cols)) % 97 == 13) f *= 8.0f;
      h[i] = bf16_bits(f);
    }
    const std::vector<std::int64_t> shape = rows == 1 ? std::vector<std::int64_t>{cols} : std::vector<std::int64_t>{rows, cols};
    out.add(name, lowbit::tensor_dtype::bf16, shape, h);
  };
  add("model.embed_tokens.weight", vocab, dim, false);
  for (int l = 0; l < layers; ++l) {
    const std::string p = "model.layers." + std::to_string(l) + ".";
    add(p + "input_layernorm.weight", 1, dim, true);
    add(p + "self_attn.q_proj.weight", heads * head_dim, dim, false);
    add(p + "self_attn.k_proj.weight", kv_heads * head_dim, dim, false);
    add(p + "self_attn.v_proj.weight", kv_heads * head_dim, dim, false);
    add(p + "self_attn.o_proj.weight", dim, heads * head_dim, false);
    add(p + "post_attention_layernorm.weight", 1, dim, true);
    add(p + "mlp.gate_proj.weight", hidden, dim, false);
    add(p + "mlp.up_proj.weight", hidden, dim, false);
    add(p + "mlp.down_proj.weight", dim, hidden, false);
  }
  add("model.norm.weight", 1, dim, true);
  out.finish();
  const nlohmann::ordered_json config = {
      {"architectures", {"LlamaForCausalLM"}}, {"model_type", "llama"}, {"hidden_size", dim},
      {"intermediate_size", hidden}, {"num_hidden_layers", layers}, {"num_attention_heads", heads},
      {"num_key_value_heads", kv_heads}, {"head_dim", head_dim}, {"vocab_size", vocab},
      {"max_position_embeddings", 131072}, {"rms_norm_eps", 1e-5}, {"rope_theta", 500000.0},
      {"rope_scaling", {{"factor", 32.0}, {"high_freq_factor", 4.0}, {"low_freq_factor", 1.0},
                        {"original_max_position_embeddings", 8192}, {"rope_type", "llama3"}}},
      {"tie_word_embeddings", true}, {"attention_bias", false}, {"mlp_bias", false},
      {"bos_token_id", 128000}, {"eos_token_id", 128001}, {"hidden_act", "silu"}, {"torch_dtype", "bfloat16"}};
  lowbit_cli::write_json(o.path + "/config.json", nlohmann::json::parse(config.dump()));
  if (!o.tokenizer.empty()) {
    std::ifstream in(o.tokenizer, std::ios::binary);
    if (!in) lowbit_cli::fail("--tokenizer: cannot open '" + o.tokenizer + "'");
    std::stringstream ss;
    ss << in.rdbuf();
    const std::string text = ss.str();
    lowbit::write_file_atomically(o.path + "/tokenizer.json", text);
  }
  fmt::print("{}: Llama-3.2-1B shape, {} layers, dim {}, hidden {}, vocab {}, {} (BF16){}\n", o.path, layers, dim, hidden,
             vocab, lowbit_cli::human_bytes(double(out.data_bytes())), o.tokenizer.empty() ? "" : ", tokenizer.json copied");
  return 0;
}

int run_synth(const synth_options& o) {
  if (!o.shape.empty()) return run_synth_hf(o);
  if (o.size_gb <= 0) lowbit_cli::fail("--size-gb must be > 0");
  lowbit::check_outputs({o.path}, {});  // a device, FIFO or directory at PATH is refused before work
  const bool bf16 = o.dtype == "bf16";
  if (!bf16 && o.dtype != "f32") lowbit_cli::fail("--dtype: expected f32 or bf16, got '" + o.dtype + "'");
  const double elem = bf16 ? 2.0 : 4.0;
  // Llama-like proportions; dim grows with the size so that tensors stay tens of MB.
  int dim = o.dim > 0 ? o.dim : (o.size_gb >= 1 ? 2048 : o.size_gb >= 0.05 ? 512 : 64);
  int hidden = o.hidden > 0 ? o.hidden : (dim * 11 / 4 + 31) / 32 * 32;
  const double layer_bytes = elem * (4.0 * dim * dim + 3.0 * dim * hidden + 2.0 * dim);
  const int vocab = 512;
  const int layers = std::max(1, static_cast<int>(std::lround((o.size_gb * 1e9 - elem * 2.0 * vocab * dim) / layer_bytes)));
  lowbit::SafetensorsWriter out(o.path);
  out.set_metadata("source", "lowbit synth (synthetic, heavy-tailed)");
  splitmix rng{o.seed};
  std::vector<float> f;
  std::vector<std::uint16_t> h;
  const auto add = [&](const std::string& name, std::int64_t rows, std::int64_t cols, bool norm) {
    const std::size_t n = static_cast<std::size_t>(rows * cols);
    f.resize(n);
    // Laplace-distributed weights (heavier tails than Gaussian) and a few outlier input channels.
    for (std::size_t i = 0; i < n; ++i) {
      const float u = rng.uniform() - 0.5f;
      f[i] = norm ? 1.0f + 0.1f * u : -0.02f * std::copysign(std::log(std::max(1e-7f, 1.0f - 2.0f * std::fabs(u))), u);
      if (!norm && (i % static_cast<std::size_t>(cols)) % 97 == 13) f[i] *= 8.0f;
    }
    const std::vector<std::int64_t> shape = rows == 1 ? std::vector<std::int64_t>{cols} : std::vector<std::int64_t>{rows, cols};
    if (bf16) {
      h.resize(n);
      for (std::size_t i = 0; i < n; ++i) h[i] = bf16_bits(f[i]);
      out.add(name, lowbit::tensor_dtype::bf16, shape, h);
    } else {
      out.add(name, lowbit::tensor_dtype::f32, shape, f);
    }
  };
  add("tok_embeddings.weight", vocab, dim, false);
  for (int l = 0; l < layers; ++l) {
    const std::string p = "layers." + std::to_string(l) + ".";
    add(p + "attention_norm.weight", 1, dim, true);
    add(p + "ffn_norm.weight", 1, dim, true);
    for (const char* w : {"wq", "wk", "wv", "wo"}) add(p + "attention." + w + ".weight", dim, dim, false);
    add(p + "feed_forward.w1.weight", hidden, dim, false);
    add(p + "feed_forward.w2.weight", dim, hidden, false);
    add(p + "feed_forward.w3.weight", hidden, dim, false);
  }
  add("norm.weight", 1, dim, true);
  add("output.weight", vocab, dim, false);
  out.finish();
  fmt::print("{}: {} layers, dim {}, hidden {}, {} ({})\n", o.path, layers, dim, hidden,
             lowbit_cli::human_bytes(double(out.data_bytes())), bf16 ? "BF16" : "F32");
  return 0;
}

lowbit_cli::registration synth_registration{"synth", "", 90, [](CLI::App& sub) -> lowbit_cli::run_fn {
                               auto o = std::make_shared<synth_options>();
                               sub.group("");  // hidden: a benchmark and test helper
                               sub.add_option("PATH", o->path, "Output .safetensors (a directory with --shape)")->required();
                               sub.add_option("--size-gb", o->size_gb, "Approximate size in GB (1e9 bytes)");
                               sub.add_option("--dtype", o->dtype, "f32 or bf16");
                               sub.add_option("--dim", o->dim, "Model width (default from the size)");
                               sub.add_option("--hidden", o->hidden, "FFN width (default 11/4 dim)");
                               sub.add_option("--seed", o->seed, "Random seed");
                               sub.add_option("--shape", o->shape,
                                              "llama-3.2-1b: write a Hugging Face directory of that shape (BF16) at PATH");
                               sub.add_option("--tokenizer", o->tokenizer, "With --shape: tokenizer.json to copy into the directory");
                               sub.add_option("--layers", o->layers, "With --shape: decoder layers (default the shape's 16)");
                               return [o] { return run_synth(*o); };
                             }};

}  // namespace
