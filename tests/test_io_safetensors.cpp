// The safetensors reader: one hand-made malformed file per validation rule, the dtype
// conversions (exhaustive for F16/BF16), and the fuzzer's regressions.
#include <catch2/catch.hpp>
#include <cmath>
#include <cstring>

#include "lowbit/io/safetensors.hpp"
#include "test_io_support.hpp"

// One namespace per test file, so that any set of test files can be compiled as one
// unity translation unit (tests/CMakeLists.txt) without their file-local names clashing.
namespace test_io_safetensors_cpp {

using lowbit::SafetensorsFile;
using lowbit::tensor_dtype;
using lowbit_test::safetensors_bytes;

namespace {

// Parses and expects a lowbit::error whose message contains every one of `parts`.
void expect_error(const std::vector<std::uint8_t>& bytes, std::initializer_list<const char*> parts) {
  try {
    (void)SafetensorsFile::parse(bytes.data(), bytes.size(), "bad.safetensors");
    FAIL("no error raised");
  } catch (const lowbit::error& e) {
    const std::string msg = e.what();
    INFO(msg);
    CHECK(msg.find("bad.safetensors") != std::string::npos);
    for (const char* p : parts) CHECK(msg.find(p) != std::string::npos);
  }
}

std::string entry(const std::string& name, const std::string& dtype, const std::string& shape, std::uint64_t b,
                  std::uint64_t e) {
  return "\"" + name + "\":{\"dtype\":\"" + dtype + "\",\"shape\":" + shape + ",\"data_offsets\":[" +
         std::to_string(b) + "," + std::to_string(e) + "]}";
}

}  // namespace

TEST_CASE("safetensors: a valid file gives zero-copy views in header order", "[io]") {
  std::vector<std::uint8_t> data(16 + 4 + 2);
  const float w[4] = {1.5f, -2.0f, 0.25f, 3.0f};
  std::memcpy(data.data(), w, 16);
  const std::uint16_t h[2] = {0x3C00, 0xC000};  // F16 1.0, -2.0
  std::memcpy(data.data() + 16, h, 4);
  data[20] = 0x7E;  // E4M3 448
  data[21] = 0x81;  // I8 -127
  const std::string header = "{\"__metadata__\":{\"k\":\"v\"}," + entry("w", "F32", "[2,2]", 0, 16) + "," +
                             entry("h", "F16", "[2]", 16, 20) + "," + entry("e", "F8_E4M3", "[1]", 20, 21) + "," +
                             entry("i", "I8", "[1,1]", 21, 22) + "," + entry("z", "U8", "[0,3]", 22, 22) + "}";
  const auto bytes = safetensors_bytes(header, data);
  const auto f = SafetensorsFile::parse(bytes.data(), bytes.size(), "ok");
  REQUIRE(f.tensors().size() == 5);
  CHECK(f.tensors()[0].name == "w");
  CHECK(f.tensors()[4].name == "z");
  CHECK(f.metadata().at("k") == "v");
  const auto& tw = f.at("w");
  CHECK(tw.data == reinterpret_cast<const std::byte*>(bytes.data()) + 8 + header.size());
  const lowbit::RowMatrixXf m = tw.to_matrix();
  CHECK(m.rows() == 2);
  CHECK(m(1, 0) == 0.25f);
  CHECK(f.at("h").to_float_vector() == std::vector<float>{1.0f, -2.0f});
  CHECK(f.at("e").to_float_vector() == std::vector<float>{448.0f});
  CHECK(f.at("i").to_float_vector() == std::vector<float>{-127.0f});
  CHECK(f.at("z").numel() == 0);
  CHECK(f.find("missing") == nullptr);
  CHECK_THROWS_AS(f.at("missing"), lowbit::error);
}

TEST_CASE("safetensors: each malformed header is a lowbit::error naming file, tensor and problem",
          "[io]") {
  const std::vector<std::uint8_t> four(4, 0);
  SECTION("file shorter than the length field") { expect_error({1, 2, 3}, {"too short"}); }
  SECTION("header length past the end of the file") {
    expect_error(safetensors_bytes("{}", {}, 1000), {"exceeds the file size"});
  }
  SECTION("header length over the sanity cap") {
    expect_error(safetensors_bytes("{}", {}, std::uint64_t{1} << 40), {"100 MiB"});
  }
  SECTION("JSON that fails to parse") { expect_error(safetensors_bytes("{\"a\":"), {"not valid JSON"}); }
  SECTION("a header that is not an object") { expect_error(safetensors_bytes("[1,2]"), {"not a JSON object"}); }
  SECTION("an entry that is not an object") { expect_error(safetensors_bytes("{\"t\":5}"), {"'t'", "not an object"}); }
  SECTION("an entry missing a field") {
    expect_error(safetensors_bytes("{\"t\":{\"dtype\":\"F32\",\"shape\":[1]}}"), {"'t'", "data_offsets"});
  }
  SECTION("an unknown dtype") {
    expect_error(safetensors_bytes("{" + entry("t", "F12", "[1]", 0, 4) + "}", four), {"'t'", "unknown dtype 'F12'"});
  }
  SECTION("shape product that does not match the byte size") {
    expect_error(safetensors_bytes("{" + entry("t", "F32", "[2]", 0, 4) + "}", four), {"'t'", "span 4 bytes"});
  }
  SECTION("shape product that overflows") {
    expect_error(safetensors_bytes("{" + entry("t", "F32", "[4294967296,4294967296,16]", 0, 4) + "}", four),
                 {"'t'", "overflows"});
  }
  SECTION("a negative or fractional shape entry") {
    expect_error(safetensors_bytes("{" + entry("t", "U8", "[-4]", 0, 4) + "}", four), {"'t'", "non-negative"});
    expect_error(safetensors_bytes("{" + entry("t", "U8", "[4.0]", 0, 4) + "}", four), {"'t'", "non-negative"});
  }
  SECTION("offsets that are not a pair of integers") {
    expect_error(safetensors_bytes("{\"t\":{\"dtype\":\"U8\",\"shape\":[4],\"data_offsets\":[0]}}", four),
                 {"'t'", "pair"});
    expect_error(safetensors_bytes("{\"t\":{\"dtype\":\"U8\",\"shape\":[4],\"data_offsets\":[-1,3]}}", four),
                 {"'t'", "pair"});
  }
  SECTION("offsets not ordered (begin > end)") {
    expect_error(safetensors_bytes("{" + entry("t", "U8", "[0]", 4, 0) + "}", four), {"'t'", "not ordered"});
  }
  SECTION("offsets out of bounds") {
    expect_error(safetensors_bytes("{" + entry("t", "U8", "[8]", 0, 8) + "}", four), {"'t'", "out of bounds"});
  }
  SECTION("overlapping tensors") {
    expect_error(safetensors_bytes("{" + entry("a", "U8", "[3]", 0, 3) + "," + entry("b", "U8", "[2]", 2, 4) + "}", four),
                 {"'b'", "overlap", "'a'"});
  }
  SECTION("a hole between tensors") {
    expect_error(safetensors_bytes("{" + entry("a", "U8", "[1]", 0, 1) + "," + entry("b", "U8", "[2]", 2, 4) + "}", four),
                 {"'b'", "hole"});
  }
  SECTION("data bytes that no tensor covers") {
    expect_error(safetensors_bytes("{" + entry("a", "U8", "[2]", 0, 2) + "}", four), {"cover only 2"});
  }
  SECTION("duplicate tensor names") {
    expect_error(safetensors_bytes("{" + entry("a", "U8", "[2]", 0, 2) + "," + entry("a", "U8", "[2]", 2, 4) + "}", four),
                 {"'a'", "duplicate tensor name"});
  }
  SECTION("a duplicate key inside an entry") {
    expect_error(safetensors_bytes("{\"a\":{\"dtype\":\"U8\",\"dtype\":\"I8\",\"shape\":[4],\"data_offsets\":[0,4]}}", four),
                 {"duplicate key 'dtype'"});
  }
  SECTION("__metadata__ that is not string to string") {
    expect_error(safetensors_bytes("{\"__metadata__\":{\"k\":1}}"), {"__metadata__", "'k'"});
    expect_error(safetensors_bytes("{\"__metadata__\":[]}"), {"__metadata__"});
  }
}

TEST_CASE("safetensors: open() maps a file and names it in errors", "[io]") {
  lowbit_test::scratch_dir dir;
  const std::string good = dir.file("good.safetensors"), bad = dir.file("bad.safetensors");
  lowbit_test::write_bytes(good, safetensors_bytes("{" + entry("x", "I32", "[1]", 0, 4) + "}", {7, 0, 0, 0}));
  lowbit_test::write_bytes(bad, safetensors_bytes("{" + entry("x", "I32", "[2]", 0, 4) + "}", {7, 0, 0, 0}));
  const auto f = lowbit::open_safetensors(good);
  CHECK(f.at("x").to_float_vector() == std::vector<float>{7.0f});
  f.release(f.at("x"));  // a hint only: the view stays readable
  CHECK(f.at("x").to_float_vector() == std::vector<float>{7.0f});
  CHECK_THROWS_WITH(lowbit::open_safetensors(bad), Catch::Contains(bad) && Catch::Contains("'x'"));
  CHECK_THROWS_WITH(lowbit::open_safetensors(dir.file("nope")), Catch::Contains("cannot open"));
  CHECK_THROWS_WITH(lowbit::open_safetensors(dir.path), Catch::Contains("is a directory, expected a regular file"));
}

TEST_CASE("dtype conversions: F16 and BF16 exhaustively, round trips exact", "[io]") {
  for (std::uint32_t h = 0; h < 0x10000; ++h) {
    const auto code = static_cast<std::uint16_t>(h);
    const float f = lowbit::detail::half_to_float(code);
    const int e = (h >> 10) & 0x1F, m = h & 0x3FF;
    const float sign = (h & 0x8000) ? -1.0f : 1.0f;
    if (e == 0x1F) {
      CHECK((m == 0 ? std::isinf(f) : std::isnan(f)));
      continue;
    }
    const float ref = sign * (e == 0 ? std::ldexp(float(m), -24) : std::ldexp(float(m + 1024), e - 25));
    REQUIRE(std::memcmp(&f, &ref, 4) == 0);
    REQUIRE(lowbit::detail::float_to_half(f) == code);
    const float b = lowbit::detail::bf16_to_float(code);
    if (!std::isnan(b)) REQUIRE(lowbit::detail::float_to_bf16(b) == code);
  }
  // Rounding: ties to even, overflow to Inf, underflow to zero.
  CHECK(lowbit::detail::float_to_half(1.0f + std::ldexp(1.0f, -11)) == 0x3C00);            // tie -> even
  CHECK(lowbit::detail::float_to_half(1.0f + 3 * std::ldexp(1.0f, -11)) == 0x3C02);        // tie -> even (up)
  CHECK(lowbit::detail::float_to_half(65520.0f) == 0x7C00);
  CHECK(lowbit::detail::float_to_half(std::ldexp(1.0f, -25)) == 0x0000);
  CHECK(lowbit::detail::float_to_half(std::ldexp(1.5f, -25)) == 0x0001);
  CHECK(lowbit::detail::float_to_bf16(1.0f + std::ldexp(1.0f, -8)) == 0x3F80);
}
}  // namespace test_io_safetensors_cpp
