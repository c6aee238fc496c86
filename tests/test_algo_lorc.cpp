// LoRC invariants: error falls with rank, full rank is exact, randomized SVD ~ exact SVD,
// the cost of int8 factors.
#include <catch2/catch.hpp>
#include <random>

#include "lowbit/algo/lorc.hpp"
#include "lowbit/quant/quantizer.hpp"

#include "test_algo_support.hpp"

// One namespace per test file, so that any set of test files can be compiled as one
// unity translation unit (tests/CMakeLists.txt) without their file-local names clashing.
namespace test_algo_lorc_cpp {

using namespace lowbit;

namespace {

using lowbit_test::gaussian;

QuantSpec int4_g32() {
  QuantSpec s;
  s.format = element_format::int4;
  s.gran = granularity::per_group;
  s.group_size = 32;
  return s;
}

double residual(const RowMatrixXf& w, const RowMatrixXf& w_hat, const LowRank& lr) {
  return (w - w_hat - lr.product()).norm();
}

}  // namespace

TEST_CASE("lorc: error falls monotonically with rank, exact at full rank", "[algo][lorc]") {
  const RowMatrixXf w = gaussian(48, 40, 1, 0.02f);
  const QuantizedMatrix q = quantize(w, int4_g32());
  const RowMatrixXf w_hat = dequantize(q);
  LorcOptions opt;
  opt.storage = lorc_storage::f32;
  double prev = (w - w_hat).norm();
  for (int r : {1, 2, 4, 8, 16, 32}) {
    const LowRank lr = lorc(w, q, r, opt);
    CHECK(lr.rank() == r);
    CHECK(lr.u.rows() == 48);
    CHECK(lr.v.cols() == 40);
    const double e = residual(w, w_hat, lr);
    CHECK(e < prev);
    prev = e;
  }
  const LowRank full = lorc(w, q, 40, opt);
  CHECK(residual(w, w_hat, full) <= 1e-5 * (w - w_hat).norm());
  // Rank above min(out, in) is capped.
  CHECK(lorc(w, q, 100, opt).rank() == 40);
}

TEST_CASE("lorc: randomized SVD reaches the exact SVD's error within 1%", "[algo][lorc]") {
  // A quantization error of a weight with a decaying spectrum plus noise (both exist in
  // practice) and a pure quantization error (flat spectrum).
  RowMatrixXf w = gaussian(300, 260, 2, 0.02f);
  w += gaussian(300, 6, 3) * gaussian(6, 260, 4) * 0.01f;
  for (const RowMatrixXf& m : {w, RowMatrixXf(gaussian(256, 300, 5, 0.02f))}) {
    const QuantizedMatrix q = quantize(m, int4_g32());
    const RowMatrixXf w_hat = dequantize(q);
    LorcOptions exact, randomized;
    exact.storage = randomized.storage = lorc_storage::f32;
    exact.method = svd_method::exact;
    randomized.method = svd_method::randomized;
    for (int r : {4, 8, 16}) {
      const double e_exact = residual(m, w_hat, lorc(m, q, r, exact));
      const double e_rand = residual(m, w_hat, lorc(m, q, r, randomized));
      CHECK(e_rand <= 1.01 * e_exact);
      CHECK(e_rand >= e_exact * (1.0 - 1e-4));  // the exact SVD is optimal (Eckart-Young)
      // A stronger check, since with a flat spectrum both residuals are close to ||E||:
      // the part of ||E||^2 that the factors remove is within 3% of the exact SVD's.
      const double total = (m - w_hat).squaredNorm();
      CHECK(total - e_rand * e_rand >= 0.97 * (total - e_exact * e_exact));
    }
  }
}

TEST_CASE("lorc: storage formats and their cost", "[algo][lorc]") {
  const RowMatrixXf w = gaussian(64, 96, 6, 0.02f);
  const QuantizedMatrix q = quantize(w, int4_g32());
  const RowMatrixXf w_hat = dequantize(q);
  LorcOptions opt;
  opt.storage = lorc_storage::f32;
  const LowRank f32 = lorc(w, q, 8, opt);
  opt.storage = lorc_storage::f16;
  const LowRank f16 = lorc(w, q, 8, opt);
  opt.storage = lorc_storage::int8;
  const LowRank i8 = lorc(w, q, 8, opt);
  CHECK(f32.storage_bits() == 32 * 8 * (64 + 96));
  CHECK(f16.storage_bits() == 16 * 8 * (64 + 96));
  CHECK(i8.storage_bits() == 8 * 8 * (64 + 96) + 32 * (64 + 8));
  CHECK(i8.bits_per_weight() == Approx(double(i8.storage_bits()) / (64.0 * 96.0)));
  // int8 codes reproduce the effective values.
  for (Eigen::Index r = 0; r < i8.u.rows(); ++r)
    for (Eigen::Index c = 0; c < i8.u.cols(); ++c)
      CHECK(i8.u(r, c) == float(i8.u_codes(r, c)) * i8.u_scales[std::size_t(r)]);
  for (Eigen::Index r = 0; r < i8.v.rows(); ++r)
    for (Eigen::Index c = 0; c < i8.v.cols(); ++c)
      CHECK(i8.v(r, c) == float(i8.v_codes(r, c)) * i8.v_scales[std::size_t(r)]);
  // fp16 factors are exactly representable in fp16.
  CHECK(f16.u == f16.u.cast<Eigen::half>().cast<float>());
  // Stated accuracy cost: the error removed by int8 (fp16) factors is at least 97% (99.9%)
  // of what fp32 factors remove.
  const double e0 = (w - w_hat).squaredNorm();
  auto removed = [&](const LowRank& lr) { return e0 - std::pow(residual(w, w_hat, lr), 2); };
  CHECK(removed(f32) > 0.0);
  CHECK(removed(i8) >= 0.97 * removed(f32));
  CHECK(removed(f16) >= 0.999 * removed(f32));
}

TEST_CASE("lorc: bad input", "[algo][lorc]") {
  const RowMatrixXf w = gaussian(8, 8, 7);
  const QuantizedMatrix q = quantize(w, int4_g32());
  CHECK_THROWS_AS(lorc(w, q, 0), error);
  CHECK_THROWS_AS(lorc(RowMatrixXf(gaussian(8, 9, 8)), q, 2), error);
}
}  // namespace test_algo_lorc_cpp
