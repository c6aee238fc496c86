// One table of names per enum (issue 15, "one rule, one home"): the checkpoint's JSON, the
// spec text and the CLI's flags spell element formats, scale storage and activation formats
// through quant/spec_text.hpp's to_string / parse_*; these tests pin those spellings (they are
// part of the checkpoint format) and check that every spelling reads back.
#include <catch2/catch.hpp>

#include <string>

#include "lowbit/dispatch/select.hpp"
#include "lowbit/io/detail/scheme_json.hpp"
#include "lowbit/quant/spec_text.hpp"

// One namespace per test file, so that any set of test files can be compiled as one
// unity translation unit (tests/CMakeLists.txt) without their file-local names clashing.
namespace test_hardening_names_cpp {

TEST_CASE("enum names: the checkpoint spellings come from the spec text's one table", "[io][hardening]") {
  using namespace lowbit;
  const element_format formats[] = {element_format::int8,          element_format::int4,
                                    element_format::float8_e4m3fn, element_format::float8_e5m2,
                                    element_format::float6_e3m2fn, element_format::float6_e2m3fn,
                                    element_format::float4_e2m1fn};
  // The checkpoint format's spellings (docs/checkpoint-format.md): these must never change.
  const char* file_names[] = {"int8",          "int4",          "float8_e4m3fn", "float8_e5m2",
                              "float6_e3m2fn", "float6_e2m3fn", "float4_e2m1fn"};
  for (int i = 0; i < 7; ++i) {
    const element_format f = formats[i];
    CHECK(std::string(detail::element_format_names().name(f)) == file_names[i]);
    CHECK(std::string(to_string(f)) == file_names[i]);
    CHECK(parse_element_format(file_names[i]) == f);
    CHECK(detail::element_format_names().parse(file_names[i], "format", "l") == f);
  }
  const act_format acts[] = {act_format::int8, act_format::float8_e4m3fn, act_format::float8_e5m2};
  const char* act_names[] = {"int8", "float8_e4m3fn", "float8_e5m2"};
  for (int i = 0; i < 3; ++i) {
    CHECK(std::string(detail::act_format_names().name(acts[i])) == act_names[i]);
    CHECK(parse_act_format(act_names[i]) == acts[i]);
  }
  const scale_dtype dts[] = {scale_dtype::f32, scale_dtype::f16, scale_dtype::bf16};
  const char* dt_names[] = {"f32", "f16", "bf16"};
  for (int i = 0; i < 3; ++i) {
    CHECK(std::string(detail::scale_dtype_names().name(dts[i])) == dt_names[i]);
    CHECK(parse_scale_dtype(dt_names[i]) == dts[i]);
  }
  CHECK_THROWS_WITH(detail::element_format_names().parse("fp4", "element format", "blk.0"),
                    Catch::Contains("blk.0") && Catch::Contains("unknown element format 'fp4'"));
}

TEST_CASE("enum names: a spec reads back from its JSON and its text", "[io][hardening]") {
  for (const char* text : {"int4:g128", "int4:g128:asym:f16", "float4_e2m1fn:g128:m2", "float4_e2m1fn:g32:mx:up175",
                           "float4_e2m1fn:g16:nvfp4", "int8:channel", "int8:tensor:bf16", "int4:g32:q4_0",
                           "float6_e2m3fn:g32:mx", "float8_e5m2:channel", "int4:g128:clip0.5x20"}) {
    INFO(text);
    const lowbit::QuantSpec s = lowbit::parse_quant_spec(text);
    CHECK(lowbit::to_string(s) == text);
    const lowbit::QuantSpec back = lowbit::detail::spec_from_json(lowbit::detail::spec_to_json(s), "l");
    CHECK(lowbit::to_string(back) == text);
  }
}

TEST_CASE("enum names: kernel descriptions use the same names", "[gemm][hardening]") {
  lowbit::QuantizedMatrix q;
  q.spec = lowbit::parse_quant_spec("float6_e3m2fn:g32");
  CHECK(lowbit::detail::describe_weights(q) == "float6_e3m2fn");
  q.spec = lowbit::parse_quant_spec("int4:g32:asym");
  CHECK(lowbit::detail::describe_weights(q) == "asymmetric int4");
  q.spec = lowbit::parse_quant_spec("int8:channel");
  CHECK(lowbit::detail::describe_weights(q) == "symmetric int8");
}

}  // namespace test_hardening_names_cpp
