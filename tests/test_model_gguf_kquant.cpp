// A GGUF llama whose linears are K-quants (issue 13) loads them as stored quantized layers on
// lowbit's kernels: Q6_K on the weight-only int8 kernel (w8a16_int8), Q4_K on W4A16 with float
// offsets. K-quant rows need a multiple of 256 elements, so stories260K (dim 64) cannot hold
// them: the model is a random llama of dim 256 written as llama2.c, exported to an F32 GGUF by
// export_gguf, and rewritten with K-quant blocks made by small test encoders from the format
// definition (all Q6_K, or Q4_K_M's pattern: Q4_K with Q6_K for some layers).
#include <catch2/catch.hpp>

#include <cmath>
#include <cstdint>
#include <cstring>
#include <fstream>
#include <memory>
#include <string>
#include <vector>

#include "lowbit/io/gguf.hpp"
#include "lowbit/io/gguf_blocks.hpp"
#include "lowbit/io/gguf_writer.hpp"
#include "lowbit/model/gguf_export.hpp"
#include "lowbit/model/quantized_model.hpp"
#include "test_io_support.hpp"
#include "test_random_llama.hpp"

// One namespace per test file, so that any set of test files can be compiled as one
// unity translation unit (tests/CMakeLists.txt) without their file-local names clashing.
namespace test_model_gguf_kquant_cpp {

using namespace lowbit::model;
using lowbit::gguf_type;
using lowbit::RowMatrixXf;

namespace {

void kq_put(std::vector<std::uint8_t>& b, const float* p, std::size_t n) {
  const auto* u = reinterpret_cast<const std::uint8_t*>(p);
  b.insert(b.end(), u, u + n * 4);
}

// The llama2.c layout of `w` (model/llama2c.hpp): header, then the tensors in its order.
std::vector<std::uint8_t> kq_llama2c(const LlamaWeights& w) {
  const LlamaConfig& c = w.config;
  std::vector<std::uint8_t> b;
  for (std::int32_t v : {c.dim, c.hidden_dim, c.n_layers, c.n_heads, c.n_kv_heads,
                         c.tied_classifier ? c.vocab_size : -c.vocab_size, c.max_seq_len}) {
    const auto* u = reinterpret_cast<const std::uint8_t*>(&v);
    b.insert(b.end(), u, u + 4);
  }
  const auto mat = [&](const RowMatrixXf& m) { kq_put(b, m.data(), std::size_t(m.size())); };
  const auto vec = [&](const Eigen::VectorXf& v) { kq_put(b, v.data(), std::size_t(v.size())); };
  mat(w.tok_embeddings);
  for (const auto& L : w.layers) vec(L.attention_norm);
  for (const auto& L : w.layers) mat(L.wq);
  for (const auto& L : w.layers) mat(L.wk);
  for (const auto& L : w.layers) mat(L.wv);
  for (const auto& L : w.layers) mat(L.wo);
  for (const auto& L : w.layers) vec(L.ffn_norm);
  for (const auto& L : w.layers) mat(L.w1);
  for (const auto& L : w.layers) mat(L.w2);
  for (const auto& L : w.layers) mat(L.w3);
  vec(w.norm);
  const std::vector<float> freq(std::size_t(c.max_seq_len * c.head_dim()), 0.0f);
  kq_put(b, freq.data(), freq.size());
  if (!c.tied_classifier) mat(w.output);
  return b;
}

// Q6_K blocks of a row-major float matrix (cols % 256 == 0): per 16-group s = amax / 31, one
// fp16 d per super-block with int8 sub-scales round(s / d), codes round(x / (d * sc)) + 32.
// Not ggml's quantizer (its search is not needed here): any valid blocks do.
std::vector<std::uint8_t> kq_encode_q6k(const RowMatrixXf& m) {
  std::vector<std::uint8_t> out;
  for (Eigen::Index r = 0; r < m.rows(); ++r)
    for (Eigen::Index b0 = 0; b0 < m.cols(); b0 += 256) {
      const float* x = m.data() + r * m.cols() + b0;
      float s[16], smax = 0.0f;
      for (int g = 0; g < 16; ++g) {
        float a = 0.0f;
        for (int i = 0; i < 16; ++i) a = std::max(a, std::fabs(x[16 * g + i]));
        s[g] = a / 31.0f;
        smax = std::max(smax, s[g]);
      }
      const std::uint16_t d_bits = lowbit::detail::float_to_half(smax / 127.0f);
      const float d = lowbit::detail::half_to_float(d_bits);
      std::int8_t sc[16];
      int q[256];
      for (int g = 0; g < 16; ++g) {
        sc[g] = d > 0.0f ? std::int8_t(std::clamp(std::lround(s[g] / d), -128L, 127L)) : std::int8_t(0);
        // Odd groups get a negative sub-scale (ggml writes signed scales too).
        if (g % 2 == 1 && sc[g] > 0) sc[g] = std::int8_t(-sc[g]);
        const float step = d * float(sc[g]);
        for (int i = 0; i < 16; ++i)
          q[16 * g + i] = step != 0.0f ? int(std::clamp(std::lround(x[16 * g + i] / step), -32L, 31L)) + 32 : 32;
      }
      std::uint8_t blk[210] = {};
      for (int e = 0; e < 256; ++e) {
        const int h = e / 128, t = (e % 128) / 32, l = e % 32;
        std::uint8_t& lo = blk[64 * h + l + 32 * (t % 2)];
        lo = std::uint8_t(t < 2 ? (lo & 0xF0) | (q[e] & 15) : (lo & 0x0F) | ((q[e] & 15) << 4));
        blk[128 + 32 * h + l] |= std::uint8_t((q[e] >> 4) << (2 * t));
      }
      for (int i = 0; i < 16; ++i) blk[192 + i] = std::uint8_t(sc[i]);
      std::memcpy(blk + 208, &d_bits, 2);
      out.insert(out.end(), blk, blk + 210);
    }
  return out;
}

// Q4_K blocks of a row-major float matrix (cols % 256 == 0): per 32-sub-block scale
// (max - min) / 15 and min -min(x, 0), 6-bit multiples of fp16 d / dmin, codes 0..15.
std::vector<std::uint8_t> kq_encode_q4k(const RowMatrixXf& m) {
  std::vector<std::uint8_t> out;
  for (Eigen::Index r = 0; r < m.rows(); ++r)
    for (Eigen::Index b0 = 0; b0 < m.cols(); b0 += 256) {
      const float* x = m.data() + r * m.cols() + b0;
      float scale[8], mins[8], smax = 0.0f, mmax = 0.0f;
      for (int j = 0; j < 8; ++j) {
        float lo = 0.0f, hi = 0.0f;
        for (int i = 0; i < 32; ++i) {
          lo = std::min(lo, x[32 * j + i]);
          hi = std::max(hi, x[32 * j + i]);
        }
        scale[j] = (hi - lo) / 15.0f;
        mins[j] = -lo;
        smax = std::max(smax, scale[j]);
        mmax = std::max(mmax, mins[j]);
      }
      const std::uint16_t d_bits = lowbit::detail::float_to_half(smax / 63.0f);
      const std::uint16_t dmin_bits = lowbit::detail::float_to_half(mmax / 63.0f);
      const float d = lowbit::detail::half_to_float(d_bits), dmin = lowbit::detail::half_to_float(dmin_bits);
      int sc[8], mn[8], q[256];
      for (int j = 0; j < 8; ++j) {
        sc[j] = d > 0.0f ? int(std::clamp(std::lround(scale[j] / d), 0L, 63L)) : 0;
        mn[j] = dmin > 0.0f ? int(std::clamp(std::lround(mins[j] / dmin), 0L, 63L)) : 0;
        const float step = d * float(sc[j]), off = dmin * float(mn[j]);
        for (int i = 0; i < 32; ++i)
          q[32 * j + i] = step > 0.0f ? int(std::clamp(std::lround((x[32 * j + i] + off) / step), 0L, 15L)) : 0;
      }
      std::uint8_t blk[144] = {};
      std::memcpy(blk, &d_bits, 2);
      std::memcpy(blk + 2, &dmin_bits, 2);
      for (int j = 0; j < 4; ++j) {
        blk[4 + j] = std::uint8_t(sc[j] | ((sc[j + 4] >> 4) << 6));
        blk[8 + j] = std::uint8_t(mn[j] | ((mn[j + 4] >> 4) << 6));
        blk[12 + j] = std::uint8_t((sc[j + 4] & 15) | ((mn[j + 4] & 15) << 4));
      }
      for (int c = 0; c < 4; ++c)
        for (int l = 0; l < 32; ++l) blk[16 + 32 * c + l] = std::uint8_t(q[64 * c + l] | (q[64 * c + 32 + l] << 4));
      out.insert(out.end(), blk, blk + 144);
    }
  return out;
}

// Copies the F32 GGUF `in` to `out` with every 2-D tensor named blk.* or output as Q6_K
// (q4k_m false), or as Q4_K_M lays them out (q4k_m true): Q4_K, with Q6_K for attn_v and
// ffn_down of layer 0 and for output; token_embd too becomes Q4_K then.
void kq_rewrite(const std::string& in, const std::string& out, bool q4k_m) {
  const lowbit::GgufFile f = lowbit::GgufFile::open(in);
  lowbit::GgufWriter w(out);
  for (const auto& [key, value] : f.metadata())
    if (key != "general.alignment") w.set(key, value);
  std::vector<std::vector<std::uint8_t>> data;
  for (const lowbit::GgufTensor& t : f.tensors()) {
    const bool linear = t.ne.size() == 2 && (t.name.rfind("blk.", 0) == 0 || t.name == "output.weight");
    const bool q6 = linear && (!q4k_m || t.name == "output.weight" || t.name == "blk.0.attn_v.weight" ||
                               t.name == "blk.0.ffn_down.weight");
    const bool q4 = q4k_m && !q6 && t.ne.size() == 2;
    REQUIRE(t.ggml_type() == gguf_type::f32);
    if (q6) {
      w.add_tensor_info(t.name, gguf_type::q6_k, t.ne);
      data.push_back(kq_encode_q6k(lowbit::gguf_to_matrix(t)));
    } else if (q4) {
      w.add_tensor_info(t.name, gguf_type::q4_k, t.ne);
      data.push_back(kq_encode_q4k(lowbit::gguf_to_matrix(t)));
    } else {
      w.add_tensor_info(t.name, gguf_type::f32, t.ne);
      data.emplace_back(reinterpret_cast<const std::uint8_t*>(t.data),
                        reinterpret_cast<const std::uint8_t*>(t.data) + t.nbytes);
    }
  }
  std::size_t i = 0;
  for (const lowbit::GgufTensor& t : f.tensors()) w.write_tensor_data(t.name, data[i++]);
  w.finish();
}

}  // namespace

TEST_CASE("gguf K-quants: Q6_K and Q4_K_M-like llamas run their linears on lowbit's kernels", "[model][gguf][kquant]") {
  lowbit_test::scratch_dir dir;
  const LlamaConfig c = lowbit_test::random_llama_config(256, 512, 2, 4, 2, 64, 16, /*tied=*/false);
  const LlamaWeights wts = lowbit_test::random_llama_weights(c, 17, 0.05f, 0.2f);
  {
    const std::vector<std::uint8_t> bin = kq_llama2c(wts);
    std::ofstream(dir.file("m.bin"), std::ios::binary).write(reinterpret_cast<const char*>(bin.data()),
                                                             std::streamsize(bin.size()));
  }
  (void)export_gguf(dir.file("m.bin"), dir.file("f32.gguf"));
  for (const bool q4k_m : {false, true}) {
    INFO((q4k_m ? "Q4_K_M-like" : "all Q6_K"));
    const std::string path = dir.file(q4k_m ? "q4km.gguf" : "q6k.gguf");
    kq_rewrite(dir.file("f32.gguf"), path, q4k_m);

    const std::shared_ptr<const ModelSource> src = open_model(path);
    const auto* gg = dynamic_cast<const GgufSource*>(src.get());
    REQUIRE(gg != nullptr);
    CHECK(gg->quantized_linears().size() == 2 * 7 + 1);  // every linear and the classifier

    // Kernels (require_kernels: no layer may fall back to the reference path).
    QuantizedLoadOptions strict;
    strict.require_kernels = true;
    const LlamaModel kern = load_quantized_llama(src, strict);
    for (int l = 0; l < 2; ++l)
      for (int s = 0; s < kLinearSlots; ++s) {
        const bool q6 = !q4k_m || (l == 0 && (s == int(linear_slot::wv) || s == int(linear_slot::w2)));
        CHECK(kern.linear(l, static_cast<linear_slot>(s)).describe() ==
              std::string("recipe gguf ") + (q6 ? "Q6_K" : "Q4_K") + " (packed kernels)");
      }
    // Today's path before this import existed: every K-quant tensor decoded to fp32 (the same
    // values: each layer's dequantize() is the GGUF decoder's output bit for bit, checked below).
    const LinearFactory decoded = [gg](const std::string& name, const RowMatrixXf& weight) -> std::unique_ptr<LinearLayer> {
      if (!gg->quantized_linears().count(name)) return std::make_unique<Fp32Linear>(weight);
      return std::make_unique<Fp32Linear>(lowbit::dequantize(gg->quantized_linear(name).weight));
    };
    const LlamaModel dec(src, decoded);
    const std::vector<int> tokens = {1, 5, 9, 33, 2, 60, 7, 7, 41};
    const RowMatrixXf a = kern.forward(tokens), b = dec.forward(tokens);
    const double scale = b.cwiseAbs().maxCoeff();
    INFO("max |logit diff| " << (a - b).cwiseAbs().maxCoeff() << " of max |logit| " << scale);
    CHECK((a - b).cwiseAbs().maxCoeff() <= 1e-4 * scale);
    // The import itself is exact: each layer's dequantize() is the GGUF decoder's output.
    const lowbit::GgufFile f = lowbit::GgufFile::open(path);
    for (int l = 0; l < 2; ++l)
      for (int s = 0; s < kLinearSlots; ++s) {
        const RowMatrixXf want = lowbit::gguf_to_matrix(f.at(detail::gguf_linear_name(l, static_cast<linear_slot>(s)) + ".weight"));
        const RowMatrixXf got = lowbit::dequantize(gg->quantized_linear(linear_name(l, static_cast<linear_slot>(s))).weight);
        REQUIRE(want.rows() == got.rows());
        REQUIRE(want.cols() == got.cols());
        CHECK(std::memcmp(want.data(), got.data(), std::size_t(want.size()) * 4) == 0);
      }
  }
}

}  // namespace test_model_gguf_kquant_cpp
