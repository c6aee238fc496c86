// A downstream program, built by CTest against an installed lowbit (find_package) and against
// the source tree (add_subdirectory): it proves the package exports a usable lowbit::lowbit
// target, and checks a few exact conversions so a wrong include path or a stale header shows.
#include <lowbit/lowbit.hpp>
#include <lowbit/model/hf_tokenizer.hpp>

#include <cmath>
#include <cstdio>
#include <cstring>
#include <vector>

namespace {

int failures = 0;

void expect_bits(const char* what, unsigned got, unsigned want) {
  if (got != want) {
    std::fprintf(stderr, "consumer: %s: bits 0x%02x, expected 0x%02x\n", what, got, want);
    ++failures;
  }
}

void expect_value(const char* what, float got, float want) {
  if (!(got == want)) {
    std::fprintf(stderr, "consumer: %s: %g, expected %g\n", what, static_cast<double>(got),
                 static_cast<double>(want));
    ++failures;
  }
}

}  // namespace

int main() {
  using lowbit::saturation;
  // E4M3FN: 448 is the largest finite value (0x7E); 1.0 is 0x38; 0.0625 rounds to itself.
  expect_bits("e4m3fn(448)", lowbit::convert<lowbit::float8_e4m3fn>(448.0f).bits(), 0x7E);
  expect_bits("e4m3fn(1)", lowbit::convert<lowbit::float8_e4m3fn>(1.0f).bits(), 0x38);
  expect_bits("e4m3fn(1e6, finite)",
              lowbit::convert<lowbit::float8_e4m3fn>(1e6f, saturation::finite).bits(), 0x7E);
  if (!std::isnan(static_cast<float>(
          lowbit::convert<lowbit::float8_e4m3fn>(1e6f, saturation::none)))) {
    std::fprintf(stderr, "consumer: e4m3fn(1e6, none) is not NaN\n");
    ++failures;
  }
  // E2M1: 5 lies halfway between 4 and 6 and rounds to the even code (4).
  expect_value("e2m1(5)", static_cast<float>(lowbit::convert<lowbit::float4_e2m1fn>(5.0f)), 4.0f);
  expect_value("e5m2(-0.75)", static_cast<float>(lowbit::convert<lowbit::float8_e5m2>(-0.75f)),
               -0.75f);

  // The bulk path (SIMD where the CPU has it) agrees with the scalar conversion.
  const float in[5] = {0.1f, -2.5f, 300.0f, 1e-3f, -448.0f};
  lowbit::float8_e4m3fn out[5];
  lowbit::convert_n(in, out, 5);
  for (int i = 0; i < 5; ++i)
    expect_bits("convert_n vs convert", out[i].bits(),
                lowbit::convert<lowbit::float8_e4m3fn>(in[i]).bits());

#if LOWBIT_HAVE_HF_TOKENIZER
  // tokenizer.json support: lowbit::lowbit must bring PCRE2 (\p{L}) and utf8proc (NFC) along.
  const auto tok = lowbit::model::HfTokenizer::parse(
      R"({"normalizer": {"type": "NFC"},
          "pre_tokenizer": {"type": "Split", "pattern": {"Regex": "\\p{L}+"}, "behavior": "Isolated"},
          "model": {"type": "BPE", "vocab": {"a": 0, "b": 1, "ab": 2, " ": 3, "\u00e9": 4},
                    "merges": [["a", "b"]]}})",
      "consumer tokenizer");
  if (tok.encode("ab e\u0301") != std::vector<int>{2, 3, 4}) {
    std::fprintf(stderr, "consumer: HfTokenizer::encode gave unexpected ids\n");
    ++failures;
  }
#endif
  if (std::strcmp(LOWBIT_VERSION_STRING, LOWBIT_CONSUMER_EXPECTED_VERSION) != 0) {
    std::fprintf(stderr, "consumer: header version %s, package version %s\n",
                 LOWBIT_VERSION_STRING, LOWBIT_CONSUMER_EXPECTED_VERSION);
    ++failures;
  }
  if (failures != 0) return 1;
  std::printf("consumer: lowbit %s OK\n", LOWBIT_VERSION_STRING);
  return 0;
}
