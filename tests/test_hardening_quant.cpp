// Hardening of the quantizers' numeric edges (issue 15, items 11-14, 17, 18): weights near
// +-FLT_MAX dequantize finite, groups too small to invert are flushed to zero, f16 scale
// storage saturates instead of zeroing a group, activations near FLT_MAX are refused, SQNR
// is summed in double and NaN is never "exact", and spec texts say what is wrong.
#include <catch2/catch.hpp>

#include <cfloat>
#include <cmath>
#include <limits>
#include <random>
#include <string>

#include "lowbit/quant/activation.hpp"
#include "lowbit/quant/metrics.hpp"
#include "lowbit/quant/quantizer.hpp"
#include "lowbit/quant/spec_text.hpp"

// One namespace per test file, so that any set of test files can be compiled as one
// unity translation unit (tests/CMakeLists.txt) without their file-local names clashing.
namespace test_hardening_quant_cpp {

namespace {

lowbit::RowMatrixXf random_matrix(std::int64_t rows, std::int64_t cols, float scale, unsigned seed) {
  std::mt19937 rng(seed);
  std::normal_distribution<float> n(0.0f, 1.0f);
  lowbit::RowMatrixXf w(rows, cols);
  for (Eigen::Index i = 0; i < w.size(); ++i) w.data()[i] = scale * n(rng);
  return w;
}

}  // namespace

TEST_CASE("quant: weights near +-FLT_MAX dequantize to finite values", "[quant][hardening]") {
  // The schemes the issue found returning Inf, plus every other real-scale path: the fast
  // int_rtn rows (int8 channel, int4 g32), the generic path (asym, q4_0, floats, m1, m2, bf16).
  for (const char* spec : {"int8:channel", "int4:g32", "int4:g32:asym", "int8:channel:asym", "int4:g32:m1", "int8:g32:m1",
                           "int4:g32:m2", "int4:g32:q4_0", "float8_e4m3fn:g32", "float4_e2m1fn:g32:m1", "int4:g32:bf16",
                           "int4:tensor", "int8:g32:clip", "int4:g32:asym:clip"}) {
    INFO(spec);
    lowbit::RowMatrixXf w = random_matrix(3, 64, 1.0f, 1);
    w(0, 5) = FLT_MAX;
    w(0, 6) = -FLT_MAX;
    w(1, 40) = -FLT_MAX;
    w(2, 0) = FLT_MAX;
    w(2, 1) = FLT_MAX / 3;
    const auto q = lowbit::quantize(w, lowbit::parse_quant_spec(spec), "big.weight");
    const lowbit::RowMatrixXf d = lowbit::dequantize(q);
    CHECK(d.allFinite());
    for (const float s : q.scales) CHECK(std::isfinite(s));
    // The extreme elements keep their sign and most of their magnitude.
    CHECK(d(0, 5) > FLT_MAX / 4);
    CHECK(d(1, 40) < -FLT_MAX / 4);
  }
}

TEST_CASE("quant: a group too small to invert its scale is flushed to zero", "[quant][hardening]") {
  // amax ~2e-39: S = amax / 7 ~ 3e-40 and 1 / S overflows. Before the fix every element
  // encoded as +-qmax and dequantized to +-qmax * S (relative error 0.9-1.0, elements grew).
  for (const char* spec : {"int4:g32", "int8:channel", "int4:g32:asym", "float8_e4m3fn:g32", "int4:g32:q4_0", "int4:g32:m2"}) {
    INFO(spec);
    lowbit::RowMatrixXf w = random_matrix(2, 64, 1.0f, 2);
    for (Eigen::Index c = 0; c < 32; ++c) w(0, c) = 1e-39f * static_cast<float>(c % 5) - 2e-39f;
    if (std::string(spec) == "int8:channel") w.row(0).tail(32).setConstant(1e-39f);
    const auto q = lowbit::quantize(w, lowbit::parse_quant_spec(spec), "tiny.weight");
    const lowbit::RowMatrixXf d = lowbit::dequantize(q);
    CHECK(d.allFinite());
    if (std::string(spec) == "int4:g32:m2") {
      // M2 keeps a power-of-two shift of the row scale, stopped where its reciprocal would
      // overflow (2^-127): the error stays below that step instead of flushing.
      for (Eigen::Index c = 0; c < 32; ++c) CHECK(std::fabs(d(0, c) - w(0, c)) <= 0x1p-127f);
    } else {
      for (Eigen::Index c = 0; c < 32; ++c) CHECK(d(0, c) == 0.0f);
    }
    // The other row is quantized as usual.
    CHECK(lowbit::error_stats(w.row(1), d.row(1)).sqnr_db > 10.0);
  }
}

TEST_CASE("quant: f16 scale storage saturates instead of zeroing a group", "[quant][hardening]") {
  lowbit::RowMatrixXf w = random_matrix(2, 32, 1e-7f, 3);  // scale ~ 3e-7 / 127 underflows f16
  const auto q = lowbit::quantize(w, lowbit::parse_quant_spec("int8:g32:f16"), "small.weight");
  CHECK(q.scales[0] == 0x1p-24f);  // the smallest f16 subnormal, exactly storable
  const lowbit::RowMatrixXf d = lowbit::dequantize(q);
  CHECK(d.cwiseAbs().maxCoeff() > 0.0f);
  CHECK(lowbit::error_stats(w, d).rel_fro < 1.0);
  CHECK(lowbit::detail::round_to_f16(1e-12f) == 0x1p-24f);
  CHECK(lowbit::detail::round_to_f16(-1e-12f) == -0x1p-24f);
  CHECK(lowbit::detail::round_to_f16(0.0f) == 0.0f);
}

TEST_CASE("quant: activations near FLT_MAX are refused or finite, tiny ones flushed", "[quant][hardening]") {
  // Near FLT_MAX the product code * scale rounds past FLT_MAX for a few amax values (one in
  // this sweep did, before the fix): those are refused, naming the row; all others are finite.
  int refused = 0;
  for (const auto f : {lowbit::act_format::int8, lowbit::act_format::float8_e4m3fn, lowbit::act_format::float8_e5m2})
    for (int k = 0; k < 4096; ++k) {
      lowbit::RowMatrixXf x = lowbit::RowMatrixXf::Constant(3, 4, 1.0f);
      x(2, 1) = -(FLT_MAX * (1.0f - static_cast<float>(k) * 0x1p-24f));
      x(2, 2) = 0.3f * x(2, 1);
      bool finite = false;
      try {
        finite = lowbit::dequantize(lowbit::quantize_activations(x, f, 0, "acts")).allFinite();
      } catch (const lowbit::error& e) {
        CHECK_THAT(e.what(), Catch::Contains("'acts'") && Catch::Contains("row 2"));
        ++refused;
        continue;
      }
      CHECK(finite);
    }
  CHECK(refused >= 1);
  lowbit::RowMatrixXf t = random_matrix(2, 16, 1e-39f, 5);
  const auto a = lowbit::quantize_activations(t, lowbit::act_format::int8);
  CHECK(a.scales[0] == 0.0f);
  CHECK(lowbit::dequantize(a).isZero(0.0f));
}

TEST_CASE("metrics: SQNR sums squares in double; NaN is never exact", "[quant][hardening]") {
  lowbit::RowMatrixXf ref = lowbit::RowMatrixXf::Constant(4, 4, 1e-30f), approx = lowbit::RowMatrixXf::Zero(4, 4);
  lowbit::SquaredErrorSums s;
  s.add(ref, approx);
  // (1e-30)^2 underflows in float: a float sum would call this exact.
  CHECK(s.err2 > 0.0);
  CHECK(s.sqnr_db() == Approx(0.0).margin(1e-9));
  CHECK(std::isnan(lowbit::sqnr_db(1.0, std::numeric_limits<double>::quiet_NaN())));
  CHECK(std::isnan(lowbit::sqnr_db(1.0, std::numeric_limits<double>::infinity())));
  CHECK(lowbit::sqnr_db(0.0, 1.0) == -std::numeric_limits<double>::infinity());
  CHECK(lowbit::sqnr_db(1.0, 0.0) == std::numeric_limits<double>::infinity());
  approx(1, 1) = NAN;
  CHECK(std::isnan(lowbit::error_stats(ref, approx).sqnr_db));
}

TEST_CASE("metrics: per-tensor error_stats add up to the SQNR over all tensors", "[quant][hardening]") {
  // quantize's total weight SQNR adds each layer's sums (SquaredErrorSums::add(ErrorStats));
  // it used to rebuild them from mse and the per-layer dB, which breaks on exact layers.
  const lowbit::RowMatrixXf a = random_matrix(8, 16, 1.0f, 6), b = random_matrix(4, 32, 3.0f, 7);
  lowbit::RowMatrixXf aq = a, bq = b;
  aq(1, 2) += 0.25f;
  bq(3, 30) -= 0.5f;
  lowbit::SquaredErrorSums direct, summed;
  direct.add(a, aq);
  direct.add(b, bq);
  direct.add(a, a);  // an exact tensor: +inf dB alone, adds only to the reference sum
  const lowbit::ErrorStats ea = lowbit::error_stats(a, aq), eb = lowbit::error_stats(b, bq), ee = lowbit::error_stats(a, a);
  CHECK(ea.err2 == Approx(0.0625));
  CHECK(std::isinf(ee.sqnr_db));
  for (const auto& e : {ea, eb, ee}) summed.add(e);
  CHECK(summed.ref2 == Approx(direct.ref2).epsilon(1e-12));
  CHECK(summed.err2 == Approx(direct.err2).epsilon(1e-12));
  CHECK(summed.sqnr_db() == Approx(direct.sqnr_db()).epsilon(1e-12));
}

TEST_CASE("spec text: every message says what is wrong with which field", "[quant][hardening]") {
  CHECK_THROWS_WITH(lowbit::parse_quant_spec("int4:g99999999999"),
                    Catch::Contains("int4:g99999999999") && Catch::Contains("group size"));
  CHECK_THROWS_WITH(lowbit::parse_quant_spec("int4:g0"), Catch::Contains("group size '0'"));
  // mx / nvfp4 fix the group size: an explicit different one is refused, not replaced.
  CHECK_THROWS_WITH(lowbit::parse_quant_spec("float4_e2m1fn:g7:mx"), Catch::Contains("fixes the group size at 32"));
  CHECK_THROWS_WITH(lowbit::parse_quant_spec("float4_e2m1fn:g32:nvfp4"), Catch::Contains("fixes the group size at 16"));
  CHECK(lowbit::parse_quant_spec("float4_e2m1fn:g32:mx").group_size == 32);
  CHECK(lowbit::parse_quant_spec("mxfp4").group_size == 32);
}
}  // namespace test_hardening_quant_cpp
