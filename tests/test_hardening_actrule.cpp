// The per-token activation scale rule has one home, activation_scale() in quant/activation.hpp
// (issue 15, "one rule, one home"): quantize_activations, the integer and float kernels'
// prepare steps and their references all call it. These tests hold every path to that rule
// at its edges, where the copies used to differ: a row too small to invert its scale is
// flushed to zero on every path (items 11-12 had fixed only quantize_activations; the kernels
// still saturated such a row at +-qmax), and a row whose scale would overflow is refused.
#include <catch2/catch.hpp>

#include <cfloat>
#include <cmath>
#include <random>
#include <string>

#include "lowbit/gemm.hpp"
#include "lowbit/kernels/float_reference.hpp"
#include "lowbit/kernels/reference.hpp"
#include "lowbit/quant/activation.hpp"
#include "lowbit/quant/quantizer.hpp"
#include "lowbit/quant/spec_text.hpp"

// One namespace per test file, so that any set of test files can be compiled as one
// unity translation unit (tests/CMakeLists.txt) without their file-local names clashing.
namespace test_hardening_actrule_cpp {

namespace {

lowbit::RowMatrixXf actrule_random(std::int64_t rows, std::int64_t cols, float scale, unsigned seed) {
  std::mt19937 rng(seed);
  std::normal_distribution<float> n(0.0f, 1.0f);
  lowbit::RowMatrixXf m(rows, cols);
  for (Eigen::Index i = 0; i < m.size(); ++i) m.data()[i] = scale * n(rng);
  return m;
}

}  // namespace

TEST_CASE("activation_scale: the one rule, its edges", "[quant][hardening]") {
  using lowbit::act_format;
  for (const auto f : {act_format::int8, act_format::float8_e4m3fn, act_format::float8_e5m2}) {
    const float qmax = lowbit::act_qmax(f);
    const auto one = lowbit::activation_scale(f, 2.0f);
    CHECK(one.scale == 2.0f / qmax);
    CHECK(one.inv == qmax / 2.0f);  // qmax / amax, not 1 / scale: one rounding
    CHECK_FALSE(one.overflows);
    const auto zero = lowbit::activation_scale(f, 0.0f);
    CHECK((zero.scale == 0.0f && zero.inv == 0.0f && !zero.overflows));
    const auto tiny = lowbit::activation_scale(f, 1e-39f);  // qmax / amax overflows
    CHECK((tiny.scale == 0.0f && tiny.inv == 0.0f));
    const auto normal_small = lowbit::activation_scale(f, 1e-30f);
    CHECK(normal_small.scale > 0.0f);
    CHECK(std::isfinite(normal_small.inv));
    CHECK(lowbit::activation_scale(f, FLT_MAX).overflows == !std::isfinite(qmax * (FLT_MAX / qmax)));
  }
}

TEST_CASE("kernels: a row too small to invert its scale is flushed to zero on every path", "[gemm][hardening]") {
  // Row 1 of x has |x| ~ 1e-39 (no zeros): 127 / amax overflows. quantize_activations flushes
  // it; the kernels and references must too, on every sub-tier, instead of encoding every
  // element as +-qmax (before: y row 1 = +-127 * sum |w| * 1e-41, not zero).
  const lowbit::RowMatrixXf w = actrule_random(40, 64, 1.0f, 11);
  lowbit::RowMatrixXf x = actrule_random(3, 64, 1.0f, 12);
  for (Eigen::Index c = 0; c < x.cols(); ++c) x(1, c) = (c % 2 ? 1.0f : -1.0f) * (1e-39f + 1e-41f * float(c));

  // quantize_activations: the documented behaviour the others must follow.
  for (const auto f : {lowbit::act_format::int8, lowbit::act_format::float8_e4m3fn}) {
    const auto a = lowbit::quantize_activations(x, f);
    CHECK(a.scales[1] == 0.0f);
    CHECK(a.scales[0] > 0.0f);
  }

  // The references of the two kernel families.
  const auto ref8 = lowbit::detail::reference_quantize_int8(x);
  CHECK(ref8.scales[1] == 0.0f);
  for (Eigen::Index c = 0; c < x.cols(); ++c) CHECK(ref8.codes[static_cast<std::size_t>(x.cols() + c)] == 0);
  std::vector<std::uint8_t> codes(static_cast<std::size_t>(x.cols()));
  float s = -1.0f;
  lowbit::detail::quantize_token_e4m3_reference(x.row(1).data(), x.cols(), 1, codes.data(), &s);
  CHECK(s == 0.0f);
  for (const auto code : codes) CHECK((code & 0x7f) == 0);

  // The packed kernels, every scheme with quantized activations, every sub-tier this CPU runs.
  for (const char* spec : {"int8:channel", "int4:g32", "int4:g32:m2", "float8_e4m3fn:channel", "float4_e2m1fn:g32:m1"}) {
    const lowbit::QuantizedMatrix q = lowbit::quantize(w, lowbit::parse_quant_spec(spec), "w");
    for (const lowbit::isa_subtier sub : lowbit::supported_isa_subtiers()) {
      INFO(spec << " on " << lowbit::to_string(sub));
      lowbit::PackOptions po;
      po.subtier = sub;
      lowbit::PackedWeights p;
      try {
        p = lowbit::pack(q, po);
      } catch (const lowbit::error&) {
        continue;  // a scheme this sub-tier does not run
      }
      lowbit::RowMatrixXf y = lowbit::RowMatrixXf::Constant(3, 40, 7.0f);
      lowbit::gemm(x, p, y);
      CHECK(y.row(1).isZero(0.0f));
      CHECK(y.row(0).cwiseAbs().maxCoeff() > 0.1f);
      CHECK(y.allFinite());
    }
  }
}

TEST_CASE("kernels: a row whose scale would overflow is refused, naming it", "[gemm][hardening]") {
  // Find an amax near FLT_MAX for which 127 * (amax / 127) rounds past FLT_MAX (the rule
  // refuses those in quantize_activations); every kernel path refuses it too.
  float big = 0.0f;
  for (int k = 0; k < 4096 && big == 0.0f; ++k) {
    const float a = FLT_MAX * (1.0f - static_cast<float>(k) * 0x1p-24f);
    if (lowbit::activation_scale(lowbit::act_format::int8, a).overflows) big = a;
  }
  REQUIRE(big > 0.0f);
  const lowbit::RowMatrixXf w = actrule_random(32, 64, 1.0f, 13);
  lowbit::RowMatrixXf x = actrule_random(3, 64, 1.0f, 14);
  x(2, 9) = -big;
  CHECK_THROWS_WITH(lowbit::quantize_activations(x, lowbit::act_format::int8), Catch::Contains("row 2"));
  const lowbit::QuantizedMatrix q = lowbit::quantize(w, lowbit::parse_quant_spec("int8:channel"), "w");
  for (const lowbit::isa_subtier sub : lowbit::supported_isa_subtiers()) {
    INFO(lowbit::to_string(sub));
    lowbit::PackOptions po;
    po.subtier = sub;
    po.activations = lowbit::activation_quant::int8;
    lowbit::PackedWeights p;
    try {
      p = lowbit::pack(q, po);
    } catch (const lowbit::error&) {
      continue;
    }
    lowbit::RowMatrixXf y(3, 32);
    CHECK_THROWS_WITH(lowbit::gemm(x, p, y), Catch::Contains("row 2") && Catch::Contains("FLT_MAX"));
  }
}

}  // namespace test_hardening_actrule_cpp
