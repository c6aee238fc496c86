// GGUF K-quants imported onto lowbit's quantized forms (issue 13): Q6_K super-blocks encoded
// by hand from the format definition import as int8 groups of 16 whose dequantize() equals
// the GGUF decoder (gguf_decode, cross-checked against ggml) bit for bit, keep ggml's signed
// sub-scales, refuse non-finite super-scales naming row and block, and run on the weight-only
// int8 kernel (w8a16_int8) of every tier this CPU has.
#include <catch2/catch.hpp>

#include <cmath>
#include <cstdint>
#include <cstring>
#include <limits>
#include <random>
#include <string>
#include <vector>

#include "lowbit/algo/linear_gemm.hpp"
#include "lowbit/gemm.hpp"
#include "lowbit/io/gguf.hpp"
#include "lowbit/io/gguf_blocks.hpp"
#include "lowbit/io/gguf_writer.hpp"
#include "lowbit/quant/quantizer.hpp"
#include "test_io_support.hpp"

// One namespace per test file, so that any set of test files can be compiled as one
// unity translation unit (tests/CMakeLists.txt) without their file-local names clashing.
namespace test_io_gguf_kquant_cpp {

using lowbit::GgufFile;
using lowbit::GgufWriter;
using lowbit::gguf_type;
using lowbit::RowMatrixXf;

namespace {

std::uint32_t kquant_bits(float f) {
  std::uint32_t u;
  std::memcpy(&u, &f, 4);
  return u;
}

// One Q6_K super-block (210 bytes) from 256 6-bit codes q (0..63), 16 int8 sub-scales and the
// fp16 bits of d, laid out as the format defines it: element 128h + 32t + l keeps its low 4
// bits in ql[64h + l + 32 (t odd)] (low nibble for t < 2, high for t >= 2) and its top 2 bits
// in bits 2t..2t+1 of qh[32h + l]; scales at 192, d at 208.
std::vector<std::uint8_t> kquant_q6k_block(const int* q, const std::int8_t* sc, std::uint16_t d_bits) {
  std::vector<std::uint8_t> b(210, 0);
  for (int e = 0; e < 256; ++e) {
    const int h = e / 128, t = (e % 128) / 32, l = e % 32;
    std::uint8_t& lo = b[std::size_t(64 * h + l + 32 * (t % 2))];
    lo = std::uint8_t(t < 2 ? (lo & 0xF0) | (q[e] & 15) : (lo & 0x0F) | ((q[e] & 15) << 4));
    b[std::size_t(128 + 32 * h + l)] |= std::uint8_t((q[e] >> 4) << (2 * t));
  }
  for (int i = 0; i < 16; ++i) b[std::size_t(192 + i)] = std::uint8_t(sc[i]);
  b[208] = std::uint8_t(d_bits & 0xFF);
  b[209] = std::uint8_t(d_bits >> 8);
  return b;
}

// A rows x (256 * blocks) Q6_K tensor: its bytes, and the value every element must decode to
// by the format definition, d * sc * (q - 32) (exact in double, so float() is one rounding of
// an exact value: the fp32 value itself, since it has at most 23 significant bits).
struct kquant_q6k_tensor {
  std::int64_t rows = 0, cols = 0;
  std::vector<std::uint8_t> bytes;
  std::vector<float> want;
};

kquant_q6k_tensor kquant_make_q6k(std::int64_t rows, std::int64_t blocks, unsigned seed) {
  std::mt19937 gen(seed);
  kquant_q6k_tensor t;
  t.rows = rows;
  t.cols = 256 * blocks;
  // fp16 super-scales: ordinary, negative, subnormal (2^-20), -0, tiny normal.
  const std::uint16_t d_menu[] = {0x3A00 /* 0.75 */, 0xB4CD /* -0.3001 */, 0x0010 /* 2^-20 */, 0x8000 /* -0 */,
                                  0x0400 /* 2^-14 */, 0x2E66 /* 0.0998 */};
  int q[256];
  std::int8_t sc[16];
  for (std::int64_t r = 0; r < rows; ++r)
    for (std::int64_t bi = 0; bi < blocks; ++bi) {
      for (int e = 0; e < 256; ++e) q[e] = int(gen() % 64);
      q[0] = 0;    // code -32
      q[17] = 63;  // code +31
      q[40] = 32;  // code 0: a signed zero under a negative scale
      for (int i = 0; i < 16; ++i) sc[i] = std::int8_t(int(gen() % 256) - 128);
      sc[0] = -128;
      sc[1] = 127;
      sc[2] = 0;
      sc[3] = -1;
      const std::uint16_t d_bits = d_menu[(r * blocks + bi) % std::size(d_menu)];
      const auto blk = kquant_q6k_block(q, sc, d_bits);
      t.bytes.insert(t.bytes.end(), blk.begin(), blk.end());
      const double d = double(lowbit::detail::half_to_float(d_bits));
      for (int e = 0; e < 256; ++e) t.want.push_back(float(d * double(sc[e / 16]) * double(q[e] - 32)));
    }
  return t;
}

// Writes one tensor "blk.0.ffn_down.weight" of type t to a GGUF file and opens it.
GgufFile kquant_file(const lowbit_test::scratch_dir& dir, gguf_type t, std::int64_t rows, std::int64_t cols,
                     const std::vector<std::uint8_t>& bytes) {
  const std::string path = dir.file("k.gguf");
  GgufWriter w(path);
  w.set("general.architecture", "test");
  w.add_tensor_info("blk.0.ffn_down.weight", t, {std::uint64_t(cols), std::uint64_t(rows)});
  w.write_tensor_data("blk.0.ffn_down.weight", bytes);
  w.finish();
  return GgufFile::open(path);
}

}  // namespace

TEST_CASE("gguf K-quants: Q6_K imports as int8 groups of 16 equal to the GGUF decoder bit for bit",
          "[io][gguf][kquant]") {
  lowbit_test::scratch_dir dir;
  const kquant_q6k_tensor src = kquant_make_q6k(3, 2, 5);
  const GgufFile f = kquant_file(dir, gguf_type::q6_k, src.rows, src.cols, src.bytes);
  const lowbit::GgufTensor& t = f.at("blk.0.ffn_down.weight");
  const RowMatrixXf decoded = lowbit::gguf_to_matrix(t);
  const lowbit::QuantizedMatrix q = lowbit::gguf_to_quantized(t);
  CHECK(q.spec.format == lowbit::element_format::int8);
  CHECK(q.spec.symmetric);
  CHECK(q.spec.scale_storage == lowbit::scale_dtype::f32);
  CHECK(q.group_size == 16);
  CHECK(q.groups_per_row == src.cols / 16);
  CHECK(q.row_stride == src.cols);
  CHECK(q.zeros.empty());
  const RowMatrixXf deq = lowbit::dequantize(q);
  std::int64_t differ_decoder = 0, differ_definition = 0, negative_zeros = 0;
  for (std::int64_t i = 0; i < deq.size(); ++i) {
    if (kquant_bits(deq.data()[i]) != kquant_bits(decoded.data()[i])) ++differ_decoder;
    if (deq.data()[i] != src.want[std::size_t(i)]) ++differ_definition;
    if (kquant_bits(deq.data()[i]) == 0x80000000u) ++negative_zeros;
  }
  CHECK(differ_decoder == 0);
  CHECK(differ_definition == 0);
  CHECK(negative_zeros > 0);  // the menu makes some: ggml's signs are kept, not normalised
  // Codes are q - 32 in [-32, 31]; scales d * sc with ggml's sign (row 0 block 0: d = 0.75).
  const auto* codes = reinterpret_cast<const std::int8_t*>(q.codes.data());
  CHECK(int(codes[0]) == -32);
  CHECK(int(codes[17]) == 31);
  CHECK(int(codes[40]) == 0);
  CHECK(q.scales[0] == 0.75f * -128.0f);
  CHECK(q.scales[1] == 0.75f * 127.0f);
  CHECK(q.scales[3] == -0.75f);
  for (std::size_t i = 0; i < q.codes.size(); ++i) REQUIRE((codes[i] >= -32 && codes[i] <= 31));
  // 8-bit codes plus one fp32 scale per 16 weights.
  CHECK(q.storage_bits() == q.rows * q.cols * 8 + std::int64_t(q.scales.size()) * 32);

  // A non-finite super-scale is refused, naming the tensor, row and block.
  std::vector<std::uint8_t> bad = src.bytes;
  const std::size_t at = std::size_t(1 * 2 + 1) * 210 + 208;  // row 1, block 1
  bad[at] = 0x00;
  bad[at + 1] = 0x7C;  // +Inf
  const GgufFile fb = kquant_file(dir, gguf_type::q6_k, src.rows, src.cols, bad);
  try {
    (void)lowbit::gguf_to_quantized(fb.at("blk.0.ffn_down.weight"));
    FAIL("no error raised");
  } catch (const lowbit::error& e) {
    const std::string msg = e.what();
    INFO(msg);
    CHECK(msg.find("blk.0.ffn_down.weight") != std::string::npos);
    CHECK(msg.find("row 1, block 1") != std::string::npos);
    CHECK(msg.find("not finite") != std::string::npos);
  }
}

TEST_CASE("gguf K-quants: an imported Q6_K layer runs on the weight-only int8 kernel of every tier",
          "[io][gguf][kquant]") {
  lowbit_test::scratch_dir dir;
  const kquant_q6k_tensor src = kquant_make_q6k(45, 2, 9);  // a full 32-column block and a ragged one
  const GgufFile f = kquant_file(dir, gguf_type::q6_k, src.rows, src.cols, src.bytes);
  const lowbit::QuantizedMatrix q = lowbit::gguf_to_quantized(f.at("blk.0.ffn_down.weight"));
  const RowMatrixXf w_hat = lowbit::gguf_to_matrix(f.at("blk.0.ffn_down.weight"));
  std::mt19937 gen(3);
  std::normal_distribution<float> nd(0.0f, 1.0f);
  for (const std::int64_t tokens : {1, 3, 9}) {
    RowMatrixXf x(tokens, src.cols);
    for (std::int64_t i = 0; i < x.size(); ++i) x.data()[i] = nd(gen);
    const RowMatrixXf want = x * w_hat.transpose();
    // The float family's stated bound (kernels/float_layout.hpp): 2e-5 * sum_k |x * w_hat|.
    const RowMatrixXf tol = (x.cwiseAbs() * w_hat.cwiseAbs().transpose()).array() * 2e-5f + 1e-30f;
    for (const lowbit::isa_tier tier : lowbit::supported_isa_tiers()) {
      INFO("tokens " << tokens << " tier " << lowbit::to_string(tier));
      lowbit::PackOptions po;
      po.activations = lowbit::activation_quant::none;
      po.tier = tier;
      const lowbit::PackedWeights p = lowbit::pack(q, po);
      CHECK(p.scheme() == lowbit::gemm_scheme::w8a16_int8);
      RowMatrixXf y(tokens, src.rows);
      lowbit::gemm(x, p, y);
      CHECK(((y - want).cwiseAbs().array() <= tol.array()).all());
    }
  }
  // A weight-only QuantizedLinear of it gets a kernel (no reference path).
  lowbit::QuantizedLinear layer;
  layer.weight = q;
  CHECK(lowbit::attach_kernels(layer));
}

}  // namespace test_io_gguf_kquant_cpp
