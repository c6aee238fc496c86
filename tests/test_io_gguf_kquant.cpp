// GGUF K-quants imported onto lowbit's quantized forms (issue 13): Q6_K and Q4_K super-blocks
// encoded by hand from the format definition import (Q6_K as int8 groups of 16, Q4_K as int4
// groups of 32 with float offsets) whose dequantize() equals the GGUF decoder (gguf_decode,
// cross-checked against ggml) bit for bit, keep ggml's signs, refuse non-finite super-scales
// naming row and block, run on the kernels of every tier this CPU has (w8a16_int8, and
// w4a16_int4 with float offsets), and are refused by the exporters and checkpoint writer.
#include <catch2/catch.hpp>

#include <cmath>
#include <cstdint>
#include <cstring>
#include <initializer_list>
#include <limits>
#include <random>
#include <string>
#include <vector>

#include "lowbit/algo/linear_gemm.hpp"
#include "lowbit/gemm.hpp"
#include "lowbit/detail/bit.hpp"
#include "lowbit/io/gguf.hpp"
#include "lowbit/io/gguf_blocks.hpp"
#include "lowbit/io/gguf_writer.hpp"
#include "lowbit/io/checkpoint.hpp"
#include "lowbit/model/ct_format.hpp"
#include "lowbit/quant/quantizer.hpp"
#include "lowbit/quant/spec_text.hpp"
#include "test_io_support.hpp"

// One namespace per test file, so that any set of test files can be compiled as one
// unity translation unit (tests/CMakeLists.txt) without their file-local names clashing.
namespace test_io_gguf_kquant_cpp {

using lowbit::GgufFile;
using lowbit::GgufWriter;
using lowbit::gguf_type;
using lowbit::RowMatrixXf;

namespace {

// How an imported matrix differs from the GGUF decoder's (bit patterns) and from the format's
// definition (values), and how many -0 it keeps.
struct kquant_diffs {
  std::int64_t decoder = 0, definition = 0, negative_zeros = 0;
};
kquant_diffs kquant_compare(const RowMatrixXf& deq, const RowMatrixXf& decoded, const std::vector<float>& want) {
  using lowbit::detail::float_bits;
  kquant_diffs d;
  for (std::int64_t i = 0; i < deq.size(); ++i) {
    if (float_bits(deq.data()[i]) != float_bits(decoded.data()[i])) ++d.decoder;
    if (deq.data()[i] != want[std::size_t(i)]) ++d.definition;
    if (float_bits(deq.data()[i]) == 0x80000000u) ++d.negative_zeros;
  }
  return d;
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

// A rows x (256 * blocks) K-quant tensor: its bytes, and the value every element must decode
// to by the format definition. Q6_K: d * sc * (q - 32) (exact in double, so float() is one
// rounding of an exact value: the fp32 value itself, since it has at most 23 significant bits).
struct kquant_tensor {
  std::int64_t rows = 0, cols = 0;
  std::vector<std::uint8_t> bytes;
  std::vector<float> want;
};

kquant_tensor kquant_make_q6k(std::int64_t rows, std::int64_t blocks, unsigned seed) {
  std::mt19937 gen(seed);
  kquant_tensor t;
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

// One Q4_K super-block (144 bytes) from 256 4-bit codes, eight 6-bit (scale, min) pairs and the
// fp16 bits of d and dmin, as the format defines it: sub-block pair j < 4 in the low 6 bits of
// bytes 4 + j (scale) and 8 + j (min); j >= 4 as nibbles of byte 8 + j (scale low, min high)
// with their top two bits in bits 6-7 of bytes 4 + j - 4 / 8 + j - 4; chunk c's 32 bytes at
// 16 + 32c hold elements 64c + l (low nibble) and 64c + 32 + l (high nibble).
std::vector<std::uint8_t> kquant_q4k_block(const int* q, const int* sc, const int* mn, std::uint16_t d_bits,
                                           std::uint16_t dmin_bits) {
  std::vector<std::uint8_t> b(144, 0);
  b[0] = std::uint8_t(d_bits & 0xFF);
  b[1] = std::uint8_t(d_bits >> 8);
  b[2] = std::uint8_t(dmin_bits & 0xFF);
  b[3] = std::uint8_t(dmin_bits >> 8);
  std::uint8_t* s = b.data() + 4;
  for (int j = 0; j < 4; ++j) {
    s[j] = std::uint8_t(sc[j] | ((sc[j + 4] >> 4) << 6));
    s[j + 4] = std::uint8_t(mn[j] | ((mn[j + 4] >> 4) << 6));
    s[j + 8] = std::uint8_t((sc[j + 4] & 15) | ((mn[j + 4] & 15) << 4));
  }
  for (int c = 0; c < 4; ++c)
    for (int l = 0; l < 32; ++l) b[std::size_t(16 + 32 * c + l)] = std::uint8_t(q[64 * c + l] | (q[64 * c + 32 + l] << 4));
  return b;
}

// A rows x (256 * blocks) Q4_K tensor and every element's defined value d*sc*q - dmin*m
// (products exact in double, their difference too: float() is the one rounding ggml does).
kquant_tensor kquant_make_q4k(std::int64_t rows, std::int64_t blocks, unsigned seed) {
  std::mt19937 gen(seed);
  kquant_tensor t;
  t.rows = rows;
  t.cols = 256 * blocks;
  // (d, dmin): ordinary, subnormal d, dmin -0, negative d, tiny normal, larger.
  const std::uint16_t d_menu[][2] = {{0x2E66, 0x2A00}, {0x0010, 0x1C00}, {0x3400, 0x8000},
                                     {0xB266, 0x2C00}, {0x0400, 0x0401}, {0x4100, 0x3800}};
  int q[256], sc[8], mn[8];
  for (std::int64_t r = 0; r < rows; ++r)
    for (std::int64_t bi = 0; bi < blocks; ++bi) {
      for (int e = 0; e < 256; ++e) q[e] = int(gen() % 16);
      q[0] = 0;
      q[33] = 15;
      for (int j = 0; j < 8; ++j) {
        sc[j] = int(gen() % 64);
        mn[j] = int(gen() % 64);
      }
      sc[1] = 0;   // a zero scale: the whole sub-block is -dmin * m
      mn[2] = 63;  // the largest min
      sc[5] = 63;  // j >= 4 uses the top two bits
      mn[6] = 0;   // no min: w = d * sc * q, +0 or -0 with ggml's sign rules
      const auto& dd = d_menu[(r * blocks + bi) % std::size(d_menu)];
      const auto blk = kquant_q4k_block(q, sc, mn, dd[0], dd[1]);
      t.bytes.insert(t.bytes.end(), blk.begin(), blk.end());
      const double d = double(lowbit::detail::half_to_float(dd[0]));
      const double dmin = double(lowbit::detail::half_to_float(dd[1]));
      for (int e = 0; e < 256; ++e) {
        const int j = e / 32;
        t.want.push_back(float(d * sc[j] * q[e] - dmin * mn[j]));
      }
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

// Requires gguf_to_quantized to refuse the tensor of f, naming it, `where` (row and block) and
// the non-finite super-scale.
void kquant_check_refused(const GgufFile& f, const char* where) {
  try {
    (void)lowbit::gguf_to_quantized(f.at("blk.0.ffn_down.weight"));
    FAIL("no error raised");
  } catch (const lowbit::error& e) {
    const std::string msg = e.what();
    INFO(msg);
    CHECK(msg.find("blk.0.ffn_down.weight") != std::string::npos);
    CHECK(msg.find(where) != std::string::npos);
    CHECK(msg.find("not finite") != std::string::npos);
  }
}

// Runs the imported layer q on the weight-only kernel of every tier this CPU has, packed as
// `scheme` with a kernel name containing `kernel_part`, for each token count, against
// x * w_hat^T within the float family's stated bound (kernels/float_layout.hpp):
// 2e-5 * sum_k |x| * w_abs, w_abs being |w_hat| as the kernel reads it. Then a weight-only
// QuantizedLinear of it must get a kernel (no reference path).
void kquant_check_on_every_tier(const lowbit::QuantizedMatrix& q, const RowMatrixXf& w_hat, const RowMatrixXf& w_abs,
                                std::initializer_list<std::int64_t> token_counts, unsigned seed,
                                lowbit::gemm_scheme scheme, const char* kernel_part) {
  std::mt19937 gen(seed);
  std::normal_distribution<float> nd(0.0f, 1.0f);
  for (const std::int64_t tokens : token_counts) {
    RowMatrixXf x(tokens, q.cols);
    for (std::int64_t i = 0; i < x.size(); ++i) x.data()[i] = nd(gen);
    const RowMatrixXf want = x * w_hat.transpose();
    const RowMatrixXf tol = (x.cwiseAbs() * w_abs.transpose()).array() * 2e-5f + 1e-30f;
    for (const lowbit::isa_tier tier : lowbit::supported_isa_tiers()) {
      INFO("tokens " << tokens << " tier " << lowbit::to_string(tier));
      lowbit::PackOptions po;
      po.activations = lowbit::activation_quant::none;
      po.tier = tier;
      const lowbit::PackedWeights p = lowbit::pack(q, po);
      CHECK(p.scheme() == scheme);
      CHECK(std::string(p.kernel_name()).find(kernel_part) != std::string::npos);
      RowMatrixXf y(tokens, q.rows);
      lowbit::gemm(x, p, y);
      CHECK(((y - want).cwiseAbs().array() <= tol.array()).all());
    }
  }
  lowbit::QuantizedLinear layer;
  layer.weight = q;
  CHECK(lowbit::attach_kernels(layer));
}

}  // namespace

TEST_CASE("gguf K-quants: Q6_K imports as int8 groups of 16 equal to the GGUF decoder bit for bit",
          "[io][gguf][kquant]") {
  lowbit_test::scratch_dir dir;
  const kquant_tensor src = kquant_make_q6k(3, 2, 5);
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
  const kquant_diffs d = kquant_compare(lowbit::dequantize(q), decoded, src.want);
  CHECK(d.decoder == 0);
  CHECK(d.definition == 0);
  CHECK(d.negative_zeros > 0);  // the menu makes some: ggml's signs are kept, not normalised
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
  kquant_check_refused(fb, "row 1, block 1");
}

TEST_CASE("gguf K-quants: an imported Q6_K layer runs on the weight-only int8 kernel of every tier",
          "[io][gguf][kquant]") {
  lowbit_test::scratch_dir dir;
  const kquant_tensor src = kquant_make_q6k(45, 2, 9);  // a full 32-column block and a ragged one
  const GgufFile f = kquant_file(dir, gguf_type::q6_k, src.rows, src.cols, src.bytes);
  const lowbit::QuantizedMatrix q = lowbit::gguf_to_quantized(f.at("blk.0.ffn_down.weight"));
  const RowMatrixXf w_hat = lowbit::gguf_to_matrix(f.at("blk.0.ffn_down.weight"));
  // code * scale is exact (see above), so the kernel reads |w_hat| itself.
  kquant_check_on_every_tier(q, w_hat, w_hat.cwiseAbs(), {1, 3, 9}, 3, lowbit::gemm_scheme::w8a16_int8, "w8a16_int8");
}

}  // namespace test_io_gguf_kquant_cpp

namespace test_io_gguf_kquant_cpp {

TEST_CASE("gguf K-quants: Q4_K imports as int4 groups of 32 with float offsets, equal to the GGUF decoder bit for bit",
          "[io][gguf][kquant]") {
  lowbit_test::scratch_dir dir;
  const kquant_tensor src = kquant_make_q4k(3, 2, 7);
  const GgufFile f = kquant_file(dir, gguf_type::q4_k, src.rows, src.cols, src.bytes);
  const lowbit::GgufTensor& t = f.at("blk.0.ffn_down.weight");
  const RowMatrixXf decoded = lowbit::gguf_to_matrix(t);
  const lowbit::QuantizedMatrix q = lowbit::gguf_to_quantized(t);
  CHECK(q.spec.format == lowbit::element_format::int4);
  CHECK_FALSE(q.spec.symmetric);
  CHECK(q.spec.zero == lowbit::zero_form::float_offset);
  CHECK(q.group_size == 32);
  CHECK(q.zeros.empty());
  CHECK(q.offsets.size() == q.scales.size());
  CHECK(lowbit::to_string(q.spec).find(":asym:offset") != std::string::npos);
  const kquant_diffs d = kquant_compare(lowbit::dequantize(q), decoded, src.want);
  CHECK(d.decoder == 0);
  CHECK(d.definition == 0);
  // Row 0 block 0: d = 0.0998 (fp16 0x2E66), dmin = 0.046875; offsets are -(dmin * m).
  CHECK(q.scales[1] == 0.0f);
  CHECK(q.offsets[2] == -(lowbit::detail::half_to_float(0x2A00) * 63.0f));
  // 4-bit codes plus an fp32 scale and an fp32 offset per 32 weights.
  CHECK(q.storage_bits() == q.rows * q.cols * 4 + std::int64_t(q.scales.size()) * 64);

  // A non-finite dmin is refused, naming the tensor, row and block.
  std::vector<std::uint8_t> bad = src.bytes;
  const std::size_t at = std::size_t(2 * 2 + 0) * 144 + 2;  // row 2, block 0: dmin
  bad[at] = 0x00;
  bad[at + 1] = 0xFE;  // NaN
  const GgufFile fb = kquant_file(dir, gguf_type::q4_k, src.rows, src.cols, bad);
  kquant_check_refused(fb, "row 2, block 0");
}

TEST_CASE("gguf K-quants: an imported Q4_K layer runs on the W4A16 kernel of every tier, offsets included",
          "[io][gguf][kquant]") {
  lowbit_test::scratch_dir dir;
  const kquant_tensor src = kquant_make_q4k(45, 2, 11);
  const GgufFile f = kquant_file(dir, gguf_type::q4_k, src.rows, src.cols, src.bytes);
  const lowbit::QuantizedMatrix q = lowbit::gguf_to_quantized(f.at("blk.0.ffn_down.weight"));
  const RowMatrixXf w_hat = lowbit::gguf_to_matrix(f.at("blk.0.ffn_down.weight"));
  // |w_hat| as the kernel reads it: |code| * scale + |offset| (float_layout.hpp).
  RowMatrixXf w_abs(q.rows, q.cols);
  for (std::int64_t r = 0; r < q.rows; ++r)
    for (std::int64_t c = 0; c < q.cols; ++c) {
      const std::size_t g = std::size_t(r * q.groups_per_row + c / 32);
      const int code = lowbit::get_nibble(q.codes.data() + r * q.row_stride, std::size_t(c));
      w_abs(r, c) = float(code) * std::fabs(q.scales[g]) + std::fabs(q.offsets[g]);
    }
  // one-token, direct and tiled paths
  kquant_check_on_every_tier(q, w_hat, w_abs, {1, 2, 9}, 4, lowbit::gemm_scheme::w4a16_int4, "_offset");
}

TEST_CASE("gguf K-quants: float-offset groups are refused by the quantizer, exporters and checkpoint writer",
          "[io][gguf][kquant]") {
  lowbit_test::scratch_dir dir;
  const kquant_tensor src = kquant_make_q4k(2, 1, 3);
  const GgufFile f = kquant_file(dir, gguf_type::q4_k, src.rows, src.cols, src.bytes);
  const lowbit::QuantizedMatrix q = lowbit::gguf_to_quantized(f.at("blk.0.ffn_down.weight"));
  const auto refused = [](auto&& fn, std::initializer_list<const char*> parts) {
    try {
      fn();
      FAIL("no error raised");
    } catch (const lowbit::error& e) {
      const std::string msg = e.what();
      INFO(msg);
      for (const char* p : parts) CHECK(msg.find(p) != std::string::npos);
    }
  };
  refused([&] { (void)lowbit::gguf_type_for(q); }, {"blk.0.ffn_down.weight", "float-offset"});
  refused([&] { (void)lowbit::gguf_encode(q, gguf_type::q4_1); }, {"float-offset"});
  CHECK(lowbit::model::detail::ct_layer_refusal(q.spec, q.cols, q.group_size, false, false, false, std::nullopt)
            .find("float-offset") != std::string::npos);
  refused(
      [&] {
        lowbit::SafetensorsWriter w(dir.file("ck.safetensors"));
        lowbit::write_quantized_matrix(w, "layers.0.feed_forward.w2.weight", q);
      },
      {"layers.0.feed_forward.w2.weight", "float-offset"});
  lowbit::QuantSpec s = q.spec;
  refused([&] { (void)lowbit::quantize(RowMatrixXf::Ones(2, 64), s, "probe"); }, {"probe", "float-offset"});
  // Malformed float-offset matrices: dequantize() checks the offsets' size and values.
  lowbit::QuantizedMatrix m = q;
  m.offsets.pop_back();
  refused([&] { (void)lowbit::dequantize(m); }, {"offsets have the wrong size"});
  m = q;
  m.offsets[1] = std::numeric_limits<float>::infinity();
  refused([&] { (void)lowbit::dequantize(m); }, {"offset is not finite"});
}

}  // namespace test_io_gguf_kquant_cpp
