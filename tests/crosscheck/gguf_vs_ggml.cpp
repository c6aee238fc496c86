// Manual cross-check of lowbit's GGUF layer against ggml's own implementation (not part of
// CTest: ggml is not a Debian package). It links ggml's library and calls its API; nothing of
// ggml is copied. Checks, bit for bit:
//   1. random blocks of Q8_0/Q4_0/Q4_1/MXFP4/Q4_K/Q6_K/F16/BF16: lowbit's decoder == ggml's to_float;
//   2. weights quantized by ggml (Q8_0/Q4_0/MXFP4) imported with gguf_to_quantized: lowbit's
//      dequantize() == ggml's to_float (Q4_1 is expected to be refused: float min);
//   3. lowbit-quantized matrices written by GgufWriter, read by ggml's gguf_init_from_file:
//      metadata and tensors as written, ggml's to_float == lowbit's dequantize();
//   4. a file written by ggml's gguf_write_to_file read by GgufFile.
// Build (ggml checkout in $GGML, its ggml-base target built in $GGML/build):
//   g++ -std=c++17 -O1 -fopenmp -Iinclude -I/usr/include/eigen3 -I$GGML/include
//     tests/crosscheck/gguf_vs_ggml.cpp $GGML/build/src/libggml-base.a -lpthread -o /tmp/xc
//   /tmp/xc [scratch-dir]
#include <cstdio>
#include <cstring>
#include <random>
#include "ggml.h"
#include "gguf.h"
#include "lowbit/io/gguf.hpp"
#include "lowbit/io/gguf_blocks.hpp"
#include "lowbit/io/gguf_writer.hpp"
#include "lowbit/quant/quantizer.hpp"
using namespace lowbit;
static int failures = 0;
#define EXPECT(c) do { if (!(c)) { std::printf("FAIL %s:%d %s\n", __FILE__, __LINE__, #c); ++failures; } } while (0)
static std::uint32_t fb(float f) { std::uint32_t u; std::memcpy(&u, &f, 4); return u; }
static bool same(float a, float b, bool zero_sign_free) {
  if (std::isnan(a) && std::isnan(b)) return true;
  if (zero_sign_free && a == 0 && b == 0) return true;
  return fb(a) == fb(b);
}
int main(int argc, char** argv) {
  const std::string dir = argc > 1 ? argv[1] : "/tmp";
  std::mt19937 gen(42);
  const lowbit::gguf_type types[] = {lowbit::gguf_type::q8_0, lowbit::gguf_type::q4_0, lowbit::gguf_type::q4_1, lowbit::gguf_type::mxfp4, lowbit::gguf_type::q4_k, lowbit::gguf_type::q6_k, lowbit::gguf_type::f16, lowbit::gguf_type::bf16};
  // 1. random blocks: lowbit decode == ggml to_float
  for (auto t : types) {
    const auto geo = gguf_geometry(std::uint32_t(t));
    const int n = 256 * 64;
    std::vector<std::uint8_t> raw(std::size_t(n) / geo.block_elems * geo.block_bytes);
    for (auto& v : raw) v = std::uint8_t(gen());
    std::vector<float> a(n), b(n);
    gguf_decode(t, reinterpret_cast<const std::byte*>(raw.data()), n, a.data());
    ggml_get_type_traits(ggml_type(t))->to_float(raw.data(), b.data(), n);
    long diff = 0;
    for (int i = 0; i < n; ++i) diff += !same(a[std::size_t(i)], b[std::size_t(i)], false);
    std::printf("random blocks %-6s: %ld of %d differ\n", gguf_type_name(t).c_str(), diff, n);
    EXPECT(diff == 0);
  }
  // 2. ggml-quantized weights imported into lowbit: dequantize() == ggml to_float
  const int rows = 16, cols = 512;
  std::vector<float> w(rows * cols);
  std::normal_distribution<float> nd(0, 0.02f);
  for (auto& v : w) v = nd(gen);
  for (auto t : {lowbit::gguf_type::q8_0, lowbit::gguf_type::q4_0, lowbit::gguf_type::mxfp4, lowbit::gguf_type::q4_1}) {
    const auto geo = gguf_geometry(std::uint32_t(t));
    std::vector<std::uint8_t> q(std::size_t(rows * cols) / geo.block_elems * geo.block_bytes);
    ggml_quantize_chunk(ggml_type(t), w.data(), q.data(), 0, rows, cols, nullptr);
    std::vector<float> ref(w.size());
    ggml_get_type_traits(ggml_type(t))->to_float(q.data(), ref.data(), rows * cols);
    // wrap in a GGUF in memory via the writer
    const std::string path = dir + "/xc-imp.gguf";
    { GgufWriter wr(path); wr.add_tensor_info("w", t, {std::uint64_t(cols), std::uint64_t(rows)}); wr.write_tensor_data("w", q); wr.finish(); }
    const GgufFile f = GgufFile::open(path);
    try {
      const QuantizedMatrix qm = gguf_to_quantized(f.at("w"));
      const RowMatrixXf d = dequantize(qm);
      long diff = 0;
      for (int i = 0; i < rows * cols; ++i) diff += !same(d.data()[i], ref[std::size_t(i)], t == lowbit::gguf_type::mxfp4);
      std::printf("ggml %-6s -> lowbit dequantize: %ld differ\n", gguf_type_name(t).c_str(), diff);
      EXPECT(diff == 0);
    } catch (const lowbit::error& e) {
      std::printf("ggml %-6s -> lowbit: refused: %s\n", gguf_type_name(t).c_str(), e.what());
      EXPECT(t == lowbit::gguf_type::q4_1);
    }
  }
  // 3. lowbit-quantized -> lowbit writer -> ggml's gguf reader -> ggml to_float == dequantize
  RowMatrixXf W(rows, cols);
  for (int i = 0; i < rows * cols; ++i) W.data()[i] = w[std::size_t(i)];
  QuantSpec s8 = group_spec(element_format::int8, 32); s8.scale_storage = scale_dtype::f16;
  QuantSpec s4 = group_spec(element_format::int4, 128); s4.int_rule = int_scale_rule::q4_0; s4.scale_storage = scale_dtype::f16;
  const QuantizedMatrix qs[] = {quantize(W, s8, "a"), quantize(W, s4, "b"), quantize(W, mx_spec(element_format::float4_e2m1fn), "c")};
  const lowbit::gguf_type ts[] = {lowbit::gguf_type::q8_0, lowbit::gguf_type::q4_0, lowbit::gguf_type::mxfp4};
  const std::string path = dir + "/xc-exp.gguf";
  {
    GgufWriter wr(path, 64);
    wr.set("general.architecture", "llama");
    wr.set("llama.block_count", std::uint32_t(1));
    wr.set("k.f64", 2.5); wr.set("k.b", true); wr.set("k.i16", std::int16_t(-5));
    wr.set("tokenizer.ggml.tokens", std::vector<std::string>{"<s>", "x"});
    wr.set("tokenizer.ggml.scores", std::vector<float>{0.5f, -1.0f});
    for (int i = 0; i < 3; ++i) wr.add_tensor_info(qs[i].name, ts[i], {std::uint64_t(cols), std::uint64_t(rows)});
    wr.add_tensor_info("norm", lowbit::gguf_type::f32, {7});
    for (int i = 0; i < 3; ++i) wr.write_tensor_data(qs[i].name, gguf_encode(qs[i], ts[i]));
    wr.write_tensor_data("norm", std::vector<float>{1, 2, 3, 4, 5, 6, 7});
    wr.finish();
  }
  ggml_context* gctx = nullptr;
  gguf_init_params ip{false, &gctx};
  gguf_context* g = gguf_init_from_file(path.c_str(), ip);
  EXPECT(g != nullptr);
  if (g) {
    EXPECT(gguf_get_n_tensors(g) == 4);
    EXPECT(gguf_get_alignment(g) == 64);
    EXPECT(std::string(gguf_get_val_str(g, gguf_find_key(g, "general.architecture"))) == "llama");
    EXPECT(gguf_get_val_u32(g, gguf_find_key(g, "llama.block_count")) == 1);
    EXPECT(gguf_get_val_f64(g, gguf_find_key(g, "k.f64")) == 2.5);
    EXPECT(gguf_get_val_bool(g, gguf_find_key(g, "k.b")));
    EXPECT(gguf_get_val_i16(g, gguf_find_key(g, "k.i16")) == -5);
    EXPECT(gguf_get_arr_n(g, gguf_find_key(g, "tokenizer.ggml.tokens")) == 2);
    EXPECT(std::string(gguf_get_arr_str(g, gguf_find_key(g, "tokenizer.ggml.tokens"), 1)) == "x");
    for (int i = 0; i < 3; ++i) {
      ggml_tensor* t = ggml_get_tensor(gctx, qs[i].name.c_str());
      EXPECT(t != nullptr);
      if (!t) continue;
      EXPECT(t->type == ggml_type(ts[i]) && t->ne[0] == cols && t->ne[1] == rows);
      std::vector<float> out(std::size_t(rows * cols));
      ggml_get_type_traits(t->type)->to_float(t->data, out.data(), rows * cols);
      const RowMatrixXf ref = dequantize(qs[i]);
      long diff = 0;
      for (int k = 0; k < rows * cols; ++k) diff += !same(out[std::size_t(k)], ref.data()[k], ts[i] == lowbit::gguf_type::mxfp4);
      std::printf("lowbit %-5s -> ggml gguf reader -> to_float: %ld differ\n", gguf_type_name(ts[i]).c_str(), diff);
      EXPECT(diff == 0);
    }
    ggml_tensor* n = ggml_get_tensor(gctx, "norm");
    EXPECT(n && static_cast<float*>(n->data)[6] == 7.0f);
    gguf_free(g);
    ggml_free(gctx);
  }
  // 4. ggml's writer -> lowbit reader
  {
    gguf_context* o = gguf_init_empty();
    gguf_set_val_str(o, "general.architecture", "qwen2");
    gguf_set_val_u64(o, "k.u64", 123);
    const char* strs[] = {"a", "bb"};
    gguf_set_arr_str(o, "k.s", strs, 2);
    ggml_init_params p{1 << 20, nullptr, false};
    ggml_context* c = ggml_init(p);
    ggml_tensor* t = ggml_new_tensor_2d(c, GGML_TYPE_Q4_0, 64, 3);
    ggml_set_name(t, "blk.0.attn_q.weight");
    ggml_quantize_chunk(GGML_TYPE_Q4_0, w.data(), t->data, 0, 3, 64, nullptr);
    gguf_add_tensor(o, t);
    gguf_write_to_file(o, (dir + "/xc-ggml.gguf").c_str(), false);
    const GgufFile f = GgufFile::open(dir + "/xc-ggml.gguf");
    EXPECT(f.get_string("general.architecture") == "qwen2");
    EXPECT(f.get<std::uint64_t>("k.u64") == 123);
    EXPECT(f.get_string_array("k.s")[1] == "bb");
    const auto& tv = f.at("blk.0.attn_q.weight");
    EXPECT(tv.rows() == 3 && tv.cols() == 64);
    EXPECT(std::memcmp(tv.data, t->data, tv.nbytes) == 0);
    std::printf("ggml writer -> lowbit reader: %zu keys, tensor ok\n", f.metadata().size());
    gguf_free(o);
    ggml_free(c);
  }
  std::printf("%s (%d failures)\n", failures ? "FAILED" : "ALL OK", failures);
  return failures != 0;
}
