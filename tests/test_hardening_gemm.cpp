// gemm() with weight-only (W4A16) weights and non-finite fp32 activations raises an error,
// as every other path does (issue 15, item 10), instead of returning NaN rows.
#include <catch2/catch.hpp>

#include <cmath>
#include <random>

#include "lowbit/gemm.hpp"
#include "lowbit/quant/quantizer.hpp"
#include "lowbit/quant/spec_text.hpp"

// One namespace per test file, so that any set of test files can be compiled as one
// unity translation unit (tests/CMakeLists.txt) without their file-local names clashing.
namespace test_hardening_gemm_cpp {

TEST_CASE("gemm: W4A16 with NaN/Inf fp32 activations is an error", "[gemm][hardening]") {
  std::mt19937 rng(5);
  std::normal_distribution<float> n(0.0f, 1.0f);
  lowbit::RowMatrixXf w(32, 64), x(6, 64);
  for (Eigen::Index i = 0; i < w.size(); ++i) w.data()[i] = n(rng);
  for (Eigen::Index i = 0; i < x.size(); ++i) x.data()[i] = n(rng);
  for (const char* spec : {"int4:g32", "int4:g32:asym", "float4_e2m1fn:g32:m1"}) {
    INFO(spec);
    lowbit::PackOptions po;
    po.activations = lowbit::activation_quant::none;  // weight-only: fp32 activations
    const lowbit::PackedWeights p = lowbit::pack(lowbit::quantize(w, lowbit::parse_quant_spec(spec)), po);
    REQUIRE(lowbit::is_w4a16_scheme(p.scheme()));
    lowbit::RowMatrixXf y(6, 32);
    CHECK_NOTHROW(lowbit::gemm(x, p, y));
    for (const float bad : {NAN, INFINITY, -INFINITY}) {
      lowbit::RowMatrixXf xb = x;
      xb(4, 17) = bad;
      CHECK_THROWS_WITH(lowbit::gemm(xb, p, y), Catch::Contains("token 4") && Catch::Contains("column 17"));
    }
  }
}
}  // namespace test_hardening_gemm_cpp
