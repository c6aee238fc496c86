// The calibration Gram product (algo/detail/gram.hpp): every tier the CPU runs gives the bits
// of the scalar reference (the order of operations is defined), every thread count gives the
// same bits, and the values are X^T X (checked in double against an independent sum).
#include <catch2/catch.hpp>
#include <cmath>
#include <cstdint>
#include <random>
#include <vector>

#include "lowbit/algo/calibration.hpp"
#include "lowbit/algo/detail/gram.hpp"
#include "lowbit/dispatch/cpu_features.hpp"

namespace test_algo_gram_cpp {

using namespace lowbit;

namespace {

std::vector<float> gram_test_data(std::int64_t rows, std::int64_t ld, std::uint64_t seed) {
  std::mt19937_64 rng(seed);
  std::normal_distribution<float> g(0.0f, 1.0f);
  std::vector<float> x(static_cast<std::size_t>(rows * ld));
  for (float& v : x) v = g(rng);
  return x;
}

// Full n x n result of gram_lower_accumulate plus mirroring, starting from `init`.
std::vector<float> gram_test_run(const std::vector<float>& x, std::int64_t ld, std::int64_t t, std::int64_t n,
                                 isa_tier tier, int threads, float init) {
  std::vector<float> c(static_cast<std::size_t>(n * n), init);
  detail::gram_lower_accumulate(x.data(), ld, t, n, c.data(), tier, threads);
  detail::mirror_lower_to_upper(c.data(), n);
  return c;
}

}  // namespace

TEST_CASE("gram: every tier equals the scalar reference bit for bit, at any thread count", "[algo][gram]") {
  // Shapes around the tile widths (16/32 rows, 6 columns, 48-column chunks) and a row stride
  // larger than the row.
  const std::int64_t shapes[][2] = {{1, 1}, {3, 5}, {7, 16}, {2, 17}, {5, 31}, {9, 33}, {4, 47},
                                    {13, 48}, {6, 49}, {33, 97}, {56, 200}, {3, 301}};
  for (const auto& s : shapes) {
    const std::int64_t t = s[0], n = s[1], ld = n + 3;
    const auto x = gram_test_data(t, ld, std::uint64_t(t * 1000 + n));
    const auto ref = gram_test_run(x, ld, t, n, isa_tier::scalar, 1, 0.25f);
    for (isa_tier tier : supported_isa_tiers()) {
      for (int threads : {1, 2, 3}) {
        INFO("t=" << t << " n=" << n << " tier=" << to_string(tier) << " threads=" << threads);
        CHECK(gram_test_run(x, ld, t, n, tier, threads, 0.25f) == ref);
      }
    }
  }
}

TEST_CASE("gram: values are X^T X, symmetric, added to what is there", "[algo][gram]") {
  const std::int64_t t = 37, n = 70;
  const auto x = gram_test_data(t, n, 7);
  for (isa_tier tier : supported_isa_tiers()) {
    const auto c = gram_test_run(x, n, t, n, tier, 2, 1.5f);
    for (std::int64_t i = 0; i < n; ++i)
      for (std::int64_t j = 0; j < n; ++j) {
        double want = 1.5, mag = 1.5;
        for (std::int64_t r = 0; r < t; ++r) {
          want += double(x[std::size_t(r * n + i)]) * double(x[std::size_t(r * n + j)]);
          mag += std::fabs(double(x[std::size_t(r * n + i)]) * double(x[std::size_t(r * n + j)]));
        }
        INFO("tier=" << to_string(tier) << " i=" << i << " j=" << j);
        REQUIRE(std::fabs(double(c[std::size_t(j * n + i)]) - want) <= 1e-6 * mag);
        REQUIRE(c[std::size_t(j * n + i)] == c[std::size_t(i * n + j)]);
      }
  }
}

TEST_CASE("gram: ActivationStats' Hessian is the mirrored X^T X, merge stays exact", "[algo][gram]") {
  const std::int64_t n = 53;
  const auto a = gram_test_data(20, n, 1), b = gram_test_data(11, n, 2);
  const RowMatrixXf xa = Eigen::Map<const RowMatrixXf>(a.data(), 20, n);
  const RowMatrixXf xb = Eigen::Map<const RowMatrixXf>(b.data(), 11, n);
  ActivationStats s(n);
  s.add(xa);
  s.add(xb);
  const Eigen::MatrixXf h = s.hessian();
  CHECK(h == h.transpose());
  const Eigen::MatrixXd want =
      (xa.cast<double>().transpose() * xa.cast<double>() + xb.cast<double>().transpose() * xb.cast<double>()) *
      (2.0 / 31.0);
  CHECK((h.cast<double>() - want).cwiseAbs().maxCoeff() <= 1e-5 * want.cwiseAbs().maxCoeff());
  ActivationStats m1(n), m2(n);
  m1.add(xa);
  m2.add(xb);
  m1.merge(m2);
  CHECK(m1.xtx() == s.xtx());
  CHECK(m1.hessian() == h);
  // take_hessian() hands over the same (mirrored) matrix.
  CHECK(s.take_hessian() == h);
}

}  // namespace test_algo_gram_cpp
