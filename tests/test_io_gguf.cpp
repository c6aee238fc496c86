// GGUF: blocks encoded by hand from ggml's format definition and decoded; writer -> reader
// round trips of every metadata and tensor type; lowbit-quantized matrices through GGUF
// blocks decoding to dequantize() bit for bit; and one hand-made malformed file per rule.
#include <catch2/catch.hpp>
#include <cmath>
#include <cstring>
#include <iterator>
#include <random>

#include "lowbit/detail/bit.hpp"
#include "lowbit/io/gguf.hpp"
#include "lowbit/io/gguf_blocks.hpp"
#include "lowbit/io/gguf_writer.hpp"
#include "lowbit/quant/quantizer.hpp"
#include "test_io_support.hpp"

// One namespace per test file, so that any set of test files can be compiled as one
// unity translation unit (tests/CMakeLists.txt) without their file-local names clashing.
namespace test_io_gguf_cpp {

using lowbit::GgufFile;
using lowbit::GgufWriter;
using lowbit::gguf_type;
using lowbit::RowMatrixXf;

namespace {

using lowbit::detail::float_bits;

// fp16 bits of a value fp16 holds exactly (the test's values are chosen so).
std::uint16_t h(float f) {
  const std::uint16_t v = lowbit::detail::float_to_half(f);
  REQUIRE(lowbit::detail::half_to_float(v) == f);
  return v;
}
void put16(std::vector<std::uint8_t>& b, std::size_t at, std::uint16_t v) {
  b[at] = std::uint8_t(v & 0xFF);
  b[at + 1] = std::uint8_t(v >> 8);
}

std::vector<float> decode(gguf_type t, const std::vector<std::uint8_t>& b, std::int64_t n) {
  std::vector<float> out(static_cast<std::size_t>(n));
  lowbit::gguf_decode(t, reinterpret_cast<const std::byte*>(b.data()), n, out.data());
  return out;
}

// E2M1 value of a 4-bit code, from the OCP definition: sign, 2 exponent bits (bias 1), 1 mantissa.
float e2m1(int code) {
  const int e = (code >> 1) & 3, m = code & 1;
  const float mag = e == 0 ? 0.5f * m : std::ldexp(1.0f + 0.5f * m, e - 1);
  return (code & 8) ? -mag : mag;
}

// ---- a hand-made GGUF byte builder, independent of GgufWriter ----------------------------
struct raw_gguf {
  std::vector<std::uint8_t> b;
  template <class T>
  raw_gguf& put(T v) {
    const auto* p = reinterpret_cast<const std::uint8_t*>(&v);
    b.insert(b.end(), p, p + sizeof(T));
    return *this;
  }
  raw_gguf& str(const std::string& s) {
    put<std::uint64_t>(s.size());
    b.insert(b.end(), s.begin(), s.end());
    return *this;
  }
  raw_gguf& header(std::uint64_t tensors, std::uint64_t kvs, std::uint32_t version = 3) {
    b.insert(b.end(), {'G', 'G', 'U', 'F'});
    return put(version).put(tensors).put(kvs);
  }
  raw_gguf& kv_u32(const std::string& k, std::uint32_t v) { return str(k).put<std::uint32_t>(4).put(v); }
  raw_gguf& tensor(const std::string& name, std::vector<std::uint64_t> ne, std::uint32_t type, std::uint64_t offset) {
    str(name).put<std::uint32_t>(std::uint32_t(ne.size()));
    for (auto d : ne) put(d);
    return put(type).put(offset);
  }
  raw_gguf& pad(std::size_t a = 32) {
    while (b.size() % a) b.push_back(0);
    return *this;
  }
  raw_gguf& data(std::size_t n, std::uint8_t v = 0) {
    b.insert(b.end(), n, v);
    return *this;
  }
};

void expect_error(const std::vector<std::uint8_t>& bytes, std::initializer_list<const char*> parts) {
  try {
    (void)GgufFile::parse(bytes.data(), bytes.size(), "bad.gguf");
    FAIL("no error raised");
  } catch (const lowbit::error& e) {
    const std::string msg = e.what();
    INFO(msg);
    CHECK(msg.find("bad.gguf") != std::string::npos);
    for (const char* p : parts) CHECK(msg.find(p) != std::string::npos);
  }
}

template <class F>
void expect_refusal(F&& f, std::initializer_list<const char*> parts) {
  try {
    f();
    FAIL("no error raised");
  } catch (const lowbit::error& e) {
    const std::string msg = e.what();
    INFO(msg);
    for (const char* p : parts) CHECK(msg.find(p) != std::string::npos);
  }
}

RowMatrixXf random_matrix(std::int64_t rows, std::int64_t cols, unsigned seed, float sd = 0.05f) {
  std::mt19937 gen(seed);
  std::normal_distribution<float> nd(0.0f, sd);
  RowMatrixXf w(rows, cols);
  for (std::int64_t i = 0; i < w.size(); ++i) w.data()[i] = nd(gen);
  w(0, 0) = 0.0f;  // a zero and an all-zero group somewhere
  if (cols >= 64) w.row(rows - 1).segment(32, 32).setZero();
  return w;
}

// Writes q's GGUF blocks to a file, reads them back, decodes them, and requires the result to
// equal dequantize(q) bit for bit (MXFP4: ggml's table has no -0, so -0 reads as +0); then
// imports the tensor into lowbit's form and requires the same dequantized values again.
void check_exact_through_file(const lowbit::QuantizedMatrix& q, gguf_type t, bool zero_sign_free = false) {
  lowbit_test::scratch_dir dir;
  const std::string path = dir.file("m.gguf");
  const auto blocks = lowbit::gguf_encode(q, t);
  {
    GgufWriter w(path);
    w.set("general.architecture", "test");
    w.add_tensor_info("w", t, {std::uint64_t(q.cols), std::uint64_t(q.rows)});
    w.write_tensor_data("w", blocks);
    w.finish();
  }
  const GgufFile f = GgufFile::open(path);
  const auto& tv = f.at("w");
  REQUIRE(tv.ggml_type() == t);
  REQUIRE(tv.rows() == q.rows);
  REQUIRE(tv.cols() == q.cols);
  const RowMatrixXf from_gguf = lowbit::gguf_to_matrix(tv);
  const RowMatrixXf ref = lowbit::dequantize(q);
  std::int64_t differ = 0;
  for (std::int64_t i = 0; i < ref.size(); ++i) {
    const float a = from_gguf.data()[i], b = ref.data()[i];
    const bool same = zero_sign_free && a == 0.0f && b == 0.0f ? true : float_bits(a) == float_bits(b);
    if (!same) ++differ;
  }
  CHECK(differ == 0);
  const lowbit::QuantizedMatrix back = lowbit::gguf_to_quantized(tv);
  const RowMatrixXf again = lowbit::dequantize(back);
  CHECK(std::memcmp(again.data(), ref.data(), sizeof(float) * std::size_t(ref.size())) == 0);
  if (q.group_size == 32) CHECK(back.codes == q.codes);
}

}  // namespace

// ---- blocks by hand -------------------------------------------------------------------

TEST_CASE("gguf blocks: Q8_0, Q4_0, Q4_1 and MXFP4 encoded by hand decode to the defined values", "[io][gguf]") {
  SECTION("Q8_0: fp16 d, then 32 int8") {
    std::vector<std::uint8_t> b(34);
    put16(b, 0, h(0.5f));
    for (int j = 0; j < 32; ++j) b[2 + j] = std::uint8_t(std::int8_t(j * 8 - 127));
    const auto x = decode(gguf_type::q8_0, b, 32);
    for (int j = 0; j < 32; ++j) CHECK(x[std::size_t(j)] == 0.5f * float(j * 8 - 127));
  }
  SECTION("Q4_0: element j in the low nibble of byte j, element j+16 in its high nibble, minus 8") {
    std::vector<std::uint8_t> b(18);
    put16(b, 0, h(0.25f));
    for (int j = 0; j < 16; ++j) b[2 + j] = std::uint8_t(j | ((15 - j) << 4));
    const auto x = decode(gguf_type::q4_0, b, 32);
    for (int j = 0; j < 16; ++j) {
      CHECK(x[std::size_t(j)] == 0.25f * float(j - 8));
      CHECK(x[std::size_t(j + 16)] == 0.25f * float(7 - j));
    }
  }
  SECTION("Q4_1: d, then min m, then nibbles; x = q*d + m") {
    std::vector<std::uint8_t> b(20);
    put16(b, 0, h(0.5f));
    put16(b, 2, h(-1.25f));
    for (int j = 0; j < 16; ++j) b[4 + j] = std::uint8_t(((j * 5) & 15) | (j << 4));
    const auto x = decode(gguf_type::q4_1, b, 32);
    for (int j = 0; j < 16; ++j) {
      CHECK(x[std::size_t(j)] == 0.5f * float((j * 5) & 15) - 1.25f);
      CHECK(x[std::size_t(j + 16)] == 0.5f * float(j) - 1.25f);
    }
  }
  SECTION("MXFP4: E8M0 e (2^(e-127)), E2M1 nibbles in the j / j+16 order; the extremes of e") {
    for (const int e : {127, 130, 1, 0, 254}) {
      std::vector<std::uint8_t> b(17);
      b[0] = std::uint8_t(e);
      for (int j = 0; j < 16; ++j) b[1 + j] = std::uint8_t(j | ((15 - j) << 4));
      const auto x = decode(gguf_type::mxfp4, b, 32);
      const float s = std::ldexp(1.0f, e - 127);
      INFO("e = " << e);
      for (int j = 0; j < 16; ++j) {
        CHECK(x[std::size_t(j)] == e2m1(j) * s);
        CHECK(x[std::size_t(j + 16)] == e2m1(15 - j) * s);
      }
      CHECK(x[1] == (e == 0 ? std::ldexp(1.0f, -128) : 0.5f * s));  // 2^-128: a subnormal, not flushed
    }
    std::vector<std::uint8_t> b(17, 0);
    b[0] = 127;
    b[1] = 8;  // E2M1 code 8 is -0; ggml's table decodes it as +0
    CHECK(float_bits(decode(gguf_type::mxfp4, b, 32)[0]) == 0u);
  }
}

TEST_CASE("gguf blocks: Q4_K and Q6_K super-blocks encoded by hand decode to the defined values", "[io][gguf]") {
  SECTION("Q4_K: eight 6-bit (scale, min) pairs packed in 12 bytes; x = d*sc*q - dmin*m") {
    int sc[8], mn[8];
    for (int j = 0; j < 8; ++j) {
      sc[j] = j < 4 ? j + 1 : 40 + j;  // j >= 4 uses the top two bits
      mn[j] = j < 4 ? 2 * j : 60 - j;
    }
    std::vector<std::uint8_t> b(144, 0);
    put16(b, 0, h(0.5f));
    put16(b, 2, h(0.125f));
    std::uint8_t* s = b.data() + 4;
    for (int j = 0; j < 4; ++j) {
      s[j] = std::uint8_t(sc[j] | ((sc[j + 4] >> 4) << 6));
      s[j + 4] = std::uint8_t(mn[j] | ((mn[j + 4] >> 4) << 6));
      s[j + 8] = std::uint8_t((sc[j + 4] & 15) | ((mn[j + 4] & 15) << 4));
    }
    // Element e: chunk c = e / 64; the first 32 of a chunk in low nibbles, the next 32 in high.
    auto code = [](int e) { return (e * 7 + 3) % 16; };
    for (int e = 0; e < 256; ++e) {
      const int c = e / 64, k = e % 64;
      std::uint8_t& q = b[16 + 32 * c + k % 32];
      q = std::uint8_t(k < 32 ? (q & 0xF0) | code(e) : (q & 0x0F) | (code(e) << 4));
    }
    const auto x = decode(gguf_type::q4_k, b, 256);
    for (int e = 0; e < 256; ++e) {
      const int sub = e / 32;
      INFO("element " << e);
      CHECK(x[std::size_t(e)] == 0.5f * float(sc[sub]) * float(code(e)) - 0.125f * float(mn[sub]));
    }
  }
  SECTION("Q6_K: low nibbles in ql, 2 high bits in qh, int8 scale per 16, fp16 d at the end") {
    std::vector<std::uint8_t> b(210, 0);
    for (int i = 0; i < 16; ++i) b[192 + std::size_t(i)] = std::uint8_t(std::int8_t(i * 9 - 70));
    put16(b, 208, h(0.375f));
    auto code = [](int e) { return (e * 37 + 11) % 64; };
    // Element e: half hf = e / 128; within it, quarter qt = k / 32 and l = k % 32. Quarters
    // 0/1 are low nibbles of ql[l] / ql[l+32], quarters 2/3 their high nibbles; the top two
    // bits go to bits 2*qt of qh[l].
    for (int e = 0; e < 256; ++e) {
      const int hf = e / 128, k = e % 128, qt = k / 32, l = k % 32, q = code(e);
      std::uint8_t& lo = b[std::size_t(64 * hf + l + (qt % 2) * 32)];
      lo = std::uint8_t(qt < 2 ? (lo & 0xF0) | (q & 15) : (lo & 0x0F) | ((q & 15) << 4));
      b[std::size_t(128 + 32 * hf + l)] |= std::uint8_t((q >> 4) << (2 * qt));
    }
    const auto x = decode(gguf_type::q6_k, b, 256);
    for (int e = 0; e < 256; ++e) {
      const float scale = float(std::int8_t(b[192 + std::size_t(e / 16)]));
      INFO("element " << e);
      CHECK(x[std::size_t(e)] == 0.375f * scale * float(code(e) - 32));
    }
  }
}

// ---- writer -> reader -----------------------------------------------------------------

TEST_CASE("gguf writer: every metadata type and tensor type round-trips bit for bit", "[io][gguf]") {
  lowbit_test::scratch_dir dir;
  for (const std::uint32_t alignment : {32u, 64u}) {
    const std::string path = dir.file("rt" + std::to_string(alignment) + ".gguf");
    const gguf_type types[] = {gguf_type::f32,  gguf_type::f16,  gguf_type::bf16, gguf_type::q8_0, gguf_type::q4_0,
                               gguf_type::q4_1, gguf_type::mxfp4, gguf_type::q4_k, gguf_type::q6_k};
    std::mt19937 gen(alignment);
    std::vector<std::vector<std::uint8_t>> payloads;
    {
      GgufWriter w(path, alignment);
      w.set("general.architecture", "llama");
      w.set("k.u8", std::uint8_t(200));
      w.set("k.i8", std::int8_t(-100));
      w.set("k.u16", std::uint16_t(60000));
      w.set("k.i16", std::int16_t(-30000));
      w.set("k.u32", std::uint32_t(4000000000u));
      w.set("k.i32", std::int32_t(-2000000000));
      w.set("k.f32", -0.0f);
      w.set("k.bool", true);
      w.set("k.u64", std::uint64_t(1) << 63);
      w.set("k.i64", -(std::int64_t(1) << 62));
      w.set("k.f64", 1e300);
      w.set("k.arr_i32", std::vector<std::int32_t>{1, -2, 3});
      w.set("k.arr_f32", std::vector<float>{0.5f, NAN});
      w.set("k.arr_bool", std::vector<bool>{true, false, true});
      w.set("k.arr_str", std::vector<std::string>{"a", "", std::string("z\0y", 3)});
      w.set("k.arr_empty", std::vector<std::uint64_t>{});
      for (std::size_t i = 0; i < std::size(types); ++i) {
        const auto geo = lowbit::gguf_geometry(std::uint32_t(types[i]));
        const std::uint64_t ne0 = geo.block_elems == 1 ? 3 + i : geo.block_elems * 2;
        w.add_tensor_info("t." + std::to_string(i), types[i], {ne0, 3});
        std::vector<std::uint8_t> p(ne0 / geo.block_elems * geo.block_bytes * 3);
        for (auto& v : p) v = std::uint8_t(gen());
        payloads.push_back(p);
      }
      for (std::size_t i = 0; i < std::size(types); ++i) w.write_tensor_data("t." + std::to_string(i), payloads[i]);
      w.finish();
    }
    const GgufFile f = GgufFile::open(path);
    CHECK(f.version() == 3);
    CHECK(f.alignment() == alignment);
    CHECK(f.data_offset() % alignment == 0);
    CHECK(f.get_string("general.architecture") == "llama");
    CHECK(f.get<std::uint8_t>("k.u8") == 200);
    CHECK(f.get<std::int8_t>("k.i8") == -100);
    CHECK(f.get<std::uint16_t>("k.u16") == 60000);
    CHECK(f.get<std::int16_t>("k.i16") == -30000);
    CHECK(f.get<std::uint32_t>("k.u32") == 4000000000u);
    CHECK(f.get<std::int32_t>("k.i32") == -2000000000);
    CHECK(float_bits(f.get<float>("k.f32")) == 0x80000000u);
    CHECK(f.get<bool>("k.bool"));
    CHECK(f.get<std::uint64_t>("k.u64") == std::uint64_t(1) << 63);
    CHECK(f.get<std::int64_t>("k.i64") == -(std::int64_t(1) << 62));
    CHECK(f.get<double>("k.f64") == 1e300);
    CHECK(f.get_array<std::int32_t>("k.arr_i32") == std::vector<std::int32_t>{1, -2, 3});
    const auto af = f.get_array<float>("k.arr_f32");
    REQUIRE(af.size() == 2);
    CHECK(af[0] == 0.5f);
    CHECK(std::isnan(af[1]));
    CHECK(f.get_array<bool>("k.arr_bool") == std::vector<bool>{true, false, true});
    CHECK(f.get_string_array("k.arr_str") == std::vector<std::string>{"a", "", std::string("z\0y", 3)});
    CHECK(f.get_array<std::uint64_t>("k.arr_empty").empty());
    // Keys in the order they were set (general.alignment first when not the default).
    CHECK(f.metadata().size() == (alignment == 32 ? 17u : 18u));
    // Typed access names the key and both types.
    expect_refusal([&] { (void)f.get<std::uint32_t>("k.u8"); }, {"k.u8", "UINT32", "UINT8"});
    expect_refusal([&] { (void)f.get_string("missing.key"); }, {"missing.key"});
    REQUIRE(f.tensors().size() == std::size(types));
    for (std::size_t i = 0; i < std::size(types); ++i) {
      const auto& t = f.tensors()[i];
      INFO(t.name);
      CHECK(t.ggml_type() == types[i]);
      CHECK(t.offset % alignment == 0);
      CHECK(t.rows() == 3);
      REQUIRE(t.nbytes == payloads[i].size());
      CHECK(std::memcmp(t.data, payloads[i].data(), t.nbytes) == 0);
      if (types[i] != gguf_type::f16 && types[i] != gguf_type::bf16 && types[i] != gguf_type::f32)
        (void)lowbit::gguf_to_matrix(t);  // random blocks decode without faults
    }
    CHECK(f.file_size() % alignment == 0);
  }
}

TEST_CASE("gguf writer: atomic, ordered, and refuses what the format cannot hold", "[io][gguf]") {
  lowbit_test::scratch_dir dir;
  const std::string path = dir.file("x.gguf");
  {
    GgufWriter w(path);
    w.add_tensor_info("a", gguf_type::f32, {4});
    w.write_tensor_data("a", std::vector<float>{1, 2, 3, 4});
    // destroyed without finish(): nothing under the final name, no temporary left behind
  }
  CHECK(dir.entries().empty());
  GgufWriter w(path);
  expect_refusal([&] { w.add_tensor_info("q", gguf_type::q4_0, {16, 2}); }, {"'q'", "Q4_0", "blocks of 32"});
  expect_refusal([&] { w.add_tensor_info(std::string(64, 'n'), gguf_type::f32, {1}); }, {"63"});
  expect_refusal([&] { w.set("general.alignment", std::uint32_t(64)); }, {"general.alignment", "32"});
  expect_refusal([&] { w.set("general.alignment", std::uint64_t(32)); }, {"general.alignment", "UINT32"});
  w.set("general.alignment", std::uint32_t(32));  // the value the layout uses: fine
  w.add_tensor_info("a", gguf_type::f32, {2});
  w.add_tensor_info("b", gguf_type::f32, {2});
  expect_refusal([&] { w.add_tensor_info("a", gguf_type::f32, {2}); }, {"'a'", "already"});
  expect_refusal([&] { w.write_tensor_data("b", std::vector<float>{1, 2}); }, {"'b'", "order", "'a'"});
  expect_refusal([&] { w.write_tensor_data("a", std::vector<float>{1}); }, {"'a'", "8 bytes", "4 were given"});
  w.write_tensor_data("a", std::vector<float>{1, 2});
  expect_refusal([&] { w.set("late.key", 1.0f); }, {"late.key", "header was already written"});
  expect_refusal([&] { w.finish(); }, {"'b'", "never written"});
  w.write_tensor_data("b", std::vector<float>{3, 4});
  w.finish();
  const GgufFile f = GgufFile::open(path);
  CHECK(lowbit::gguf_to_matrix(f.at("b"))(0, 1) == 4.0f);
  CHECK(f.at("b").offset == 32);  // padded to the default alignment
}

// ---- lowbit schemes <-> GGUF ----------------------------------------------------------

TEST_CASE("gguf mapping: lowbit-quantized matrices decode from GGUF to dequantize() bit for bit", "[io][gguf]") {
  const RowMatrixXf w = random_matrix(5, 256, 7);
  SECTION("Q8_0 <- int8 symmetric, fp16 scales, group 32 / 128 / per channel") {
    for (const std::int64_t g : {32, 128, 0}) {
      lowbit::QuantSpec s = g ? lowbit::group_spec(lowbit::element_format::int8, int(g))
                              : lowbit::channel_spec(lowbit::element_format::int8);
      s.scale_storage = lowbit::scale_dtype::f16;
      INFO("group " << g);
      const auto q = lowbit::quantize(w, s, "blk.0.attn_q.weight");
      CHECK(lowbit::gguf_type_for(q) == gguf_type::q8_0);
      check_exact_through_file(q, gguf_type::q8_0);
    }
  }
  SECTION("Q4_0 <- int4 symmetric with the q4_0 (-8) rule or the default rule, fp16 scales") {
    for (const auto rule : {lowbit::int_scale_rule::q4_0, lowbit::int_scale_rule::amax_over_qmax}) {
      for (const int g : {32, 64}) {
        lowbit::QuantSpec s = lowbit::group_spec(lowbit::element_format::int4, g);
        s.int_rule = rule;
        s.scale_storage = lowbit::scale_dtype::f16;
        const auto q = lowbit::quantize(w, s);
        CHECK(lowbit::gguf_type_for(q) == gguf_type::q4_0);
        check_exact_through_file(q, gguf_type::q4_0);
      }
    }
  }
  SECTION("Q4_1 <- int4 asymmetric, fp16 scale and min, when -zero*scale is an fp16 value") {
    // Each group spans exactly 15 steps of a power of two, so S and z*S are fp16 values.
    RowMatrixXf a(3, 64);
    std::mt19937 gen(3);
    for (std::int64_t r = 0; r < a.rows(); ++r)
      for (std::int64_t g = 0; g < 2; ++g) {
        const float step = std::ldexp(1.0f, -int(r) - 4 - int(g));
        const int z = int(gen() % 16);
        for (int j = 0; j < 32; ++j) a(r, 32 * g + j) = float(int(gen() % 16) - z) * step;
        a(r, 32 * g) = float(-z) * step;
        a(r, 32 * g + 1) = float(15 - z) * step;
      }
    lowbit::QuantSpec s = lowbit::group_spec(lowbit::element_format::int4, 32, lowbit::scale_constraint::none, false);
    s.scale_storage = lowbit::scale_dtype::f16;
    const auto q = lowbit::quantize(a, s);
    CHECK(lowbit::gguf_type_for(q) == gguf_type::q4_1);
    check_exact_through_file(q, gguf_type::q4_1);
    // Typical weights: z * S needs more than fp16's 11 bits, so the export refuses.
    const auto q2 = lowbit::quantize(w, s, "blk.3.ffn_up.weight");
    expect_refusal([&] { (void)lowbit::gguf_encode(q2, gguf_type::q4_1); }, {"blk.3.ffn_up.weight", "min", "fp16"});
  }
  SECTION("MXFP4 <- lowbit MXFP4 (E8M0 codes as is), both scale roundings, tiny and huge scales") {
    RowMatrixXf m = w;
    m.row(1) *= 1e-36f;  // E8M0 near its bottom (2^-127 is a subnormal scale)
    m.row(2) *= 1e30f;
    for (const auto rnd : {lowbit::mx_scale_rounding::floor, lowbit::mx_scale_rounding::round_up_175}) {
      const auto q = lowbit::quantize(m, lowbit::mx_spec(lowbit::element_format::float4_e2m1fn, rnd));
      CHECK(lowbit::gguf_type_for(q) == gguf_type::mxfp4);
      check_exact_through_file(q, gguf_type::mxfp4, true);
    }
  }
}

TEST_CASE("gguf mapping: what has no exact GGUF form is refused, naming the tensor and the feature", "[io][gguf]") {
  const RowMatrixXf w = random_matrix(2, 64, 11);
  using lowbit::element_format;
  auto q_of = [&](lowbit::QuantSpec s) { return lowbit::quantize(w, s, "blk.1.attn_k.weight"); };
  lowbit::QuantSpec g16 = lowbit::group_spec(element_format::int4, 16);
  g16.scale_storage = lowbit::scale_dtype::f16;
  expect_refusal([&] { (void)lowbit::gguf_encode(q_of(g16), gguf_type::q4_0); }, {"blk.1.attn_k.weight", "group size 16"});
  const auto f32_scales = q_of(lowbit::group_spec(element_format::int8, 32));
  expect_refusal([&] { (void)lowbit::gguf_encode(f32_scales, gguf_type::q8_0); }, {"blk.1.attn_k.weight", "not an fp16 value"});
  expect_refusal([&] { (void)lowbit::gguf_type_for(q_of(lowbit::nvfp4_spec())); }, {"NVFP4"});
  expect_refusal([&] { (void)lowbit::gguf_type_for(q_of(lowbit::channel_spec(element_format::float8_e4m3fn))); },
                 {"FP8"});
  expect_refusal([&] { (void)lowbit::gguf_type_for(q_of(lowbit::channel_spec(element_format::int8, false))); },
                 {"asymmetric int8"});
  expect_refusal([&] { (void)lowbit::gguf_type_for(q_of(lowbit::mx_spec(element_format::float8_e4m3fn))); },
                 {"MXFP8"});
  lowbit::QuantSpec s8 = lowbit::group_spec(element_format::int8, 32);
  s8.scale_storage = lowbit::scale_dtype::f16;
  expect_refusal([&] { (void)lowbit::gguf_encode(q_of(s8), gguf_type::q4_0); }, {"maps to Q8_0, not to Q4_0"});
  const RowMatrixXf odd = random_matrix(2, 48, 1);
  expect_refusal([&] { (void)lowbit::gguf_encode(lowbit::quantize(odd, s8, "odd"), gguf_type::q8_0); },
                 {"'odd'", "48 elements"});
}

TEST_CASE("gguf import: blocks lowbit's form cannot hold are refused, naming tensor and block", "[io][gguf]") {
  auto one_block = [](gguf_type t, std::vector<std::uint8_t> block) {
    raw_gguf g;
    g.header(1, 0).tensor("blk.0.w", {32, 1}, std::uint32_t(t), 0).pad();
    g.b.insert(g.b.end(), block.begin(), block.end());
    return g.b;
  };
  std::vector<std::uint8_t> q8(34, 0);
  put16(q8, 0, h(1.0f));
  q8[5] = 0x80;
  const auto f1 = one_block(gguf_type::q8_0, q8);
  expect_refusal([&] { (void)lowbit::gguf_to_quantized(GgufFile::parse(f1.data(), f1.size()).at("blk.0.w")); },
                 {"blk.0.w", "row 0, block 0", "-128"});
  std::vector<std::uint8_t> q41(20, 0);
  put16(q41, 0, h(0.5f));
  put16(q41, 2, h(-0.3125f));  // -0.625 * d: not an integer multiple
  const auto f2 = one_block(gguf_type::q4_1, q41);
  expect_refusal([&] { (void)lowbit::gguf_to_quantized(GgufFile::parse(f2.data(), f2.size()).at("blk.0.w")); },
                 {"blk.0.w", "float-offset"});
  std::vector<std::uint8_t> mx(17, 0);
  mx[0] = 255;
  const auto f3 = one_block(gguf_type::mxfp4, mx);
  expect_refusal([&] { (void)lowbit::gguf_to_quantized(GgufFile::parse(f3.data(), f3.size()).at("blk.0.w")); },
                 {"blk.0.w", "255"});
  const auto f4 = one_block(gguf_type::q4_k, std::vector<std::uint8_t>(144, 0));
  expect_refusal([&] { (void)GgufFile::parse(f4.data(), f4.size()); }, {"blk.0.w", "Q4_K", "256"});
}

// ---- malformed files -------------------------------------------------------------------

TEST_CASE("gguf reader: each malformed file is a lowbit::error naming file, key or tensor and problem",
          "[io][gguf]") {
  expect_error({'G', 'G', 'U'}, {"magic"});
  expect_error({'G', 'G', 'U', 'L', 3, 0, 0, 0}, {"magic"});
  {
    auto truncated = raw_gguf().header(0, 0).b;
    truncated.resize(12);  // the tensor count cut short
    expect_error(truncated, {"ends inside the header"});
  }
  expect_error(raw_gguf().header(0, 0, 1).b, {"version 1"});
  expect_error(raw_gguf().header(1ull << 60, 0).b, {"tensor count"});
  expect_error(raw_gguf().header(0, 1ull << 40).b, {"metadata count"});
  // Strings: a key length past the end, and one beyond the 64 KiB key limit.
  expect_error(raw_gguf().header(0, 1).put<std::uint64_t>(1000).data(8).b, {"metadata entry 0", "key length 1000", "past the end"});
  expect_error(raw_gguf().header(0, 1).put<std::uint64_t>(1ull << 40).data(8).b, {"key length", "limit"});
  expect_error(raw_gguf().header(0, 1).str("a.s").put<std::uint32_t>(8).put<std::uint64_t>(99).data(3).b,
               {"key 'a.s'", "string length 99"});
  // Value types.
  expect_error(raw_gguf().header(0, 1).str("a.t").put<std::uint32_t>(13).data(8).b, {"key 'a.t'", "unknown value type 13"});
  expect_error(raw_gguf().header(0, 1).str("a.n").put<std::uint32_t>(9).put<std::uint32_t>(9).put<std::uint64_t>(1).data(16).b,
               {"key 'a.n'", "nested arrays"});
  expect_error(raw_gguf().header(0, 1).str("a.x").put<std::uint32_t>(9).put<std::uint32_t>(77).put<std::uint64_t>(1).data(8).b,
               {"key 'a.x'", "unknown value type 77"});
  expect_error(raw_gguf().header(0, 1).str("a.h").put<std::uint32_t>(9).put<std::uint32_t>(5).put<std::uint64_t>(1ull << 61).data(8).b,
               {"key 'a.h'", "array of 2305843009213693952 INT32"});
  expect_error(raw_gguf().header(0, 1).str("a.b").put<std::uint32_t>(7).put<std::uint8_t>(2).b, {"key 'a.b'", "bool value 2"});
  expect_error(raw_gguf().header(0, 1).str("a.u").put<std::uint32_t>(4).data(2).b, {"key 'a.u'", "ends inside the value"});
  expect_error(raw_gguf().header(0, 2).kv_u32("a.d", 1).kv_u32("a.d", 2).b, {"key 'a.d'", "duplicate metadata key"});
  // Alignment.
  expect_error(raw_gguf().header(0, 1).kv_u32("general.alignment", 48).b, {"general.alignment", "not a power of two"});
  expect_error(raw_gguf().header(0, 1).str("general.alignment").put<std::uint32_t>(10).put<std::uint64_t>(32).b,
               {"general.alignment", "must be UINT32", "UINT64"});
  // Tensor infos.
  expect_error(raw_gguf().header(1, 0).tensor("w", {32, 2}, 16, 0).pad().data(64).b, {"tensor 'w'", "IQ2_XXS"});
  expect_error(raw_gguf().header(1, 0).tensor("w", {32}, 99, 0).pad().data(64).b, {"tensor 'w'", "type 99"});
  expect_error(raw_gguf().header(1, 0).tensor("w", {1, 1, 1, 1, 1}, 0, 0).pad().data(4).b, {"tensor 'w'", "5 dimensions"});
  expect_error(raw_gguf().header(1, 0).tensor("w", {1ull << 40, 1ull << 40}, 0, 0).b, {"tensor 'w'", "overflows"});
  expect_error(raw_gguf().header(1, 0).tensor("w", {16}, 2, 0).pad().data(32).b, {"tensor 'w'", "Q4_0 blocks of 32"});
  expect_error(raw_gguf().header(1, 0).tensor(std::string(64, 'n'), {1}, 0, 0).pad().data(32).b, {"exceeds ggml's limit of 63"});
  expect_error(raw_gguf().header(1, 0).str("weight.w").put<std::uint32_t>(2).put<std::uint64_t>(4).data(4).b,
               {"tensor 'weight.w'", "ends inside the dimensions"});
  expect_error(raw_gguf().header(2, 0).tensor("w", {8}, 0, 0).tensor("w", {8}, 0, 32).pad().data(64).b,
               {"tensor 'w'", "duplicate tensor name"});
  // Tensor data.
  expect_error(raw_gguf().header(1, 0).tensor("w", {8}, 0, 4).pad().data(64).b, {"tensor 'w'", "offset 4", "alignment 32"});
  expect_error(raw_gguf().header(1, 0).tensor("w", {32}, 0, 0).pad().data(100).b, {"tensor 'w'", "past the end"});
  expect_error(raw_gguf().header(1, 0).tensor("w", {8}, 0, 1ull << 63).pad().data(32).b, {"tensor 'w'", "past the end"});
  expect_error(raw_gguf().header(2, 0).tensor("a", {16}, 0, 0).tensor("b", {8}, 0, 32).pad().data(64).b,
               {"tensor 'b'", "overlaps tensor 'a'"});
  expect_error(raw_gguf().header(1, 0).tensor("w", {8}, 0, 0).b, {"ends before its data section"});
  // A valid hand-made file parses, and its tensor lies where the format says.
  raw_gguf ok;
  ok.header(1, 1).kv_u32("general.alignment", 64).tensor("w", {2}, 0, 0).pad(64).put(1.5f).put(-2.0f);
  const GgufFile f = GgufFile::parse(ok.b.data(), ok.b.size(), "ok.gguf");
  CHECK(f.alignment() == 64);
  CHECK(f.data_offset() == 128);  // 90 bytes of header and infos, padded to 64
  const RowMatrixXf m = lowbit::gguf_to_matrix(f.at("w"));
  CHECK(m(0, 0) == 1.5f);
  CHECK(m(0, 1) == -2.0f);
  expect_refusal([&] { (void)f.at("nope"); }, {"ok.gguf", "nope"});
  expect_refusal([] { (void)GgufFile::open("/nonexistent-dir/model.gguf"); }, {"/nonexistent-dir/model.gguf"});
}
}  // namespace test_io_gguf_cpp
