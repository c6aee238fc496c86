#pragma once
// One stories260K checkpoint writer for the test_model_*.cpp files that export or re-import
// a lowbit checkpoint (compressed-tensors, GGUF, --allow-lossy): the files `lowbit quantize`
// writes, with each linear layer made by the caller.
#include <Eigen/Core>

#include <fstream>
#include <functional>
#include <iterator>
#include <string>

#include "lowbit/io/linear_checkpoint.hpp"
#include "lowbit/model/load.hpp"
#include "test_model_support.hpp"

namespace lowbit_test {

// Makes a linear layer from its name and fp32 weight; a layer with empty codes is written as
// a plain fp32 tensor instead.
using checkpoint_layer_fn =
    std::function<lowbit::QuantizedLinear(const std::string&, const lowbit::RowMatrixXf&)>;

// `dir` as a lowbit checkpoint of stories260K: Meta names (from stories260K.bin, config.json
// copied) or Hugging Face names (from stories260k-hf, config.json and tokenizer.json copied);
// embeddings and norms as f32 tensors. With `config_to_metadata` the config.json is not
// copied: its text, passed through the function, is stored in the file's metadata
// (checkpoint_config_key), as `lowbit quantize` writes a single file.
inline void write_stories_checkpoint(const std::string& dir, bool hf, const checkpoint_layer_fn& make,
                                     const std::function<std::string(const std::string&)>& config_to_metadata = {}) {
  namespace m = lowbit::model;
  const std::string hf_dir = std::string(LOWBIT_SHARED_DATA_DIR) + "/stories260k-hf";
  const m::LlamaWeights w = m::read_all_weights(*m::open_model(hf ? hf_dir : kStoriesDir + "/stories260K.bin"));
  const m::LlamaConfig& c = w.config;
  const m::weight_naming nm = hf ? m::weight_naming::hf : m::weight_naming::meta;
  lowbit::SafetensorsWriter out(dir + "/model.safetensors");
  lowbit::begin_checkpoint(out);
  out.add(m::TensorNames::embeddings(nm), lowbit::tensor_dtype::f32, {c.vocab_size, c.dim},
          w.tok_embeddings.data(), std::size_t(w.tok_embeddings.size()) * 4);
  const auto vec = [&](const std::string& n, const Eigen::VectorXf& v) {
    out.add(n, lowbit::tensor_dtype::f32, {v.size()}, v.data(), std::size_t(v.size()) * 4);
  };
  vec(m::TensorNames::final_norm(nm), w.norm);
  for (int l = 0; l < c.n_layers; ++l) {
    const m::LlamaLayerWeights& L = w.layers[std::size_t(l)];
    vec(m::TensorNames::attention_norm(l, nm), L.attention_norm);
    vec(m::TensorNames::ffn_norm(l, nm), L.ffn_norm);
    for (int s = 0; s < m::kLinearSlots; ++s) {
      const std::string name = m::linear_name(l, static_cast<m::linear_slot>(s), nm);
      const lowbit::RowMatrixXf& mat = L.matrix(static_cast<m::linear_slot>(s));
      const lowbit::QuantizedLinear q = make(name, mat);
      if (q.weight.codes.empty())
        out.add(name + ".weight", lowbit::tensor_dtype::f32, {mat.rows(), mat.cols()}, mat.data(),
                std::size_t(mat.size()) * 4);
      else
        lowbit::write_quantized_linear(out, name, q);
    }
  }
  const std::string cdir = hf ? hf_dir : kStoriesDir;
  std::ifstream in(cdir + "/config.json");
  const std::string config((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  if (config_to_metadata) out.set_metadata(lowbit::checkpoint_config_key, config_to_metadata(config));
  out.finish();
  if (!config_to_metadata) std::ofstream(dir + "/config.json") << config;
  if (hf) {
    std::ifstream t(hf_dir + "/tokenizer.json");
    std::ofstream(dir + "/tokenizer.json") << t.rdbuf();
  }
}

}  // namespace lowbit_test
