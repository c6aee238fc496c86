// The forward pass's float steps (model/detail/forward_ops.hpp): exp_ref against double
// precision and at its edges; SiLU, softmax and the small fp32 product on every ISA tier this
// CPU runs, bit for bit against the scalar code, over lengths, offsets and shapes that cover
// every vector tail and register-block remainder, with NaN, infinities and signed zeros; the
// scalar code against double-precision references.
#include <catch2/catch.hpp>

#include <cmath>
#include <cstdint>
#include <cstring>
#include <limits>
#include <random>
#include <string>
#include <vector>

#include "lowbit/model/detail/forward_ops.hpp"

namespace test_float_forward_ops_cpp {

using namespace lowbit;
using namespace lowbit::model::detail;

namespace {

std::uint32_t bits_of(float f) {
  std::uint32_t u;
  std::memcpy(&u, &f, sizeof u);
  return u;
}

// Equal bits, or both NaN (the NaN's payload is not part of the contract).
bool same(float a, float b) { return (std::isnan(a) && std::isnan(b)) || bits_of(a) == bits_of(b); }

// Index of the first element where a and b are not the same, or -1.
long first_difference(const std::vector<float>& a, const std::vector<float>& b) {
  if (a.size() != b.size()) return 0;
  for (std::size_t i = 0; i < a.size(); ++i)
    if (!same(a[i], b[i])) return static_cast<long>(i);
  return -1;
}

std::vector<float> random_vector(std::size_t n, unsigned seed, float sd) {
  std::mt19937 rng(seed);
  std::normal_distribution<float> nd(0.0f, sd);
  std::vector<float> v(n);
  for (float& x : v) x = nd(rng);
  return v;
}

// Distance in units in the last place between a float and the double it approximates
// (below FLT_MIN, in units of the smallest subnormal).
double ulps(float got, double want) {
  const double ulp = std::max(std::ldexp(1.0, std::ilogb(want) - 23), std::ldexp(1.0, -149));
  return std::abs(static_cast<double>(got) - want) / ulp;
}

}  // namespace

TEST_CASE("exp_ref is within 1 ulp of exp and exact at its edges", "[float][forward]") {
  double worst = 0;
  float worst_x = 0;
  // Every 257th float from the smallest subnormal to 104, of each sign: 8.7 million inputs.
  for (std::uint32_t u = 1; u < 0x42d00000u; u += 257)
    for (float sign : {1.0f, -1.0f}) {
      float x;
      std::memcpy(&x, &u, sizeof x);
      x *= sign;
      if (x > exp_constants::hi || x < exp_constants::lo) continue;
      const double e = ulps(exp_ref(x), std::exp(static_cast<double>(x)));
      if (e > worst) worst = e, worst_x = x;
    }
  INFO("worst at x = " << worst_x);
  CHECK(worst <= 1.0);
  CHECK(exp_ref(0.0f) == 1.0f);
  CHECK(exp_ref(-0.0f) == 1.0f);
  CHECK(std::isfinite(exp_ref(exp_constants::hi)));
  CHECK(exp_ref(exp_constants::hi) > 3.4e38f);
  CHECK(exp_ref(std::nextafter(exp_constants::hi, 100.0f)) == std::numeric_limits<float>::infinity());
  CHECK(exp_ref(std::numeric_limits<float>::infinity()) == std::numeric_limits<float>::infinity());
  CHECK(exp_ref(-std::numeric_limits<float>::infinity()) == 0.0f);
  CHECK(exp_ref(-104.5f) == 0.0f);
  CHECK(exp_ref(-103.0f) > 0.0f);  // subnormal, not flushed
  CHECK(std::isnan(exp_ref(std::numeric_limits<float>::quiet_NaN())));
}

TEST_CASE("silu_mul_n: every tier gives the scalar bits", "[float][forward]") {
  const float inf = std::numeric_limits<float>::infinity(), nan = std::numeric_limits<float>::quiet_NaN();
  const float specials[] = {0.0f, -0.0f, inf, -inf, nan, 88.7f, -88.7f, 104.5f, -104.5f, 1e-40f, -1e-40f, 3.0e38f};
  for (std::size_t n : {std::size_t{0}, std::size_t{1}, std::size_t{7}, std::size_t{8}, std::size_t{15},
                        std::size_t{16}, std::size_t{17}, std::size_t{31}, std::size_t{33}, std::size_t{100},
                        std::size_t{1001}})
    for (std::size_t offset : {std::size_t{0}, std::size_t{3}}) {
      std::vector<float> g = random_vector(n + offset, static_cast<unsigned>(n + 1), 6.0f);
      const std::vector<float> u = random_vector(n + offset, static_cast<unsigned>(n + 7), 1.0f);
      for (std::size_t i = 0; i < n && i < sizeof specials / sizeof specials[0]; ++i) g[offset + i * 3 % n] = specials[i];
      std::vector<float> want = g;
      silu_mul_scalar(want.data() + offset, u.data() + offset, n);
      for (isa_tier tier : supported_isa_tiers()) {
        std::vector<float> got = g;
        silu_mul_n(tier, got.data() + offset, u.data() + offset, n);
        INFO("tier " << to_string(tier) << ", n " << n << ", offset " << offset);
        CHECK(first_difference(got, want) == -1);
      }
    }
  // The scalar code against double precision.
  const std::vector<float> g = random_vector(4000, 11, 5.0f), u = random_vector(4000, 12, 1.0f);
  std::vector<float> got = g;
  silu_mul_scalar(got.data(), u.data(), got.size());
  for (std::size_t i = 0; i < g.size(); ++i) {
    const double x = g[i], want = x / (1.0 + std::exp(-x)) * u[i];
    INFO("g " << g[i] << " u " << u[i]);
    CHECK(ulps(got[i], want) <= 4.0);
  }
}

TEST_CASE("softmax_n: every tier gives the scalar bits, and the scalar code sums to one", "[float][forward]") {
  for (std::size_t n = 1; n <= 70; ++n)
    for (float scale : {0.125f, 1.0f}) {
      std::vector<float> x = random_vector(n + 1, static_cast<unsigned>(n), 8.0f);
      if (n > 5) x[1 + n / 2] = -std::numeric_limits<float>::infinity();  // a masked score
      std::vector<float> want = x;
      softmax_scalar(want.data() + 1, n, scale);
      double sum = 0;
      for (std::size_t i = 1; i <= n; ++i) sum += want[i];
      CHECK(sum == Approx(1.0).epsilon(1e-5));
      for (isa_tier tier : supported_isa_tiers()) {
        std::vector<float> got = x;
        softmax_n(tier, got.data() + 1, n, scale);
        INFO("tier " << to_string(tier) << ", n " << n << ", scale " << scale);
        CHECK(first_difference(got, want) == -1);
      }
    }
  // Against double precision, long rows (the sum's 16 partial sums over many terms).
  for (std::size_t n : {std::size_t{300}, std::size_t{4099}}) {
    const std::vector<float> x = random_vector(n, 5, 3.0f);
    std::vector<float> got = x;
    softmax_scalar(got.data(), n, 0.5f);
    double mx = x[0], sum = 0;
    for (float v : x) mx = std::max(mx, static_cast<double>(v));
    for (float v : x) sum += std::exp((v - mx) * 0.5);
    // The float argument (x - max) * scale carries up to ~1 ulp of its own magnitude, which
    // exp turns into that many ulps of relative error; then a few for exp, the sum and the
    // division.
    for (std::size_t i = 0; i < n; ++i) {
      const double arg = (x[i] - mx) * 0.5;
      CHECK(ulps(got[i], std::exp(arg) / sum) <= 4.0 + std::abs(arg));
    }
    for (isa_tier tier : supported_isa_tiers()) {
      std::vector<float> t = x;
      softmax_n(tier, t.data(), n, 0.5f);
      CHECK(first_difference(t, got) == -1);
    }
  }
  // A NaN anywhere makes the whole row NaN on every tier.
  std::vector<float> x = random_vector(40, 9, 1.0f);
  x[21] = std::numeric_limits<float>::quiet_NaN();
  for (isa_tier tier : supported_isa_tiers()) {
    std::vector<float> t = x;
    softmax_n(tier, t.data(), t.size(), 1.0f);
    for (float v : t) CHECK(std::isnan(v));
  }
}

TEST_CASE("gemm_f32: every tier gives the scalar bits over shapes and strides", "[float][forward]") {
  const int ms[] = {1, 2, 5, 6, 7, 8, 9, 13, 17};
  const int ns[] = {1, 3, 8, 15, 16, 17, 31, 32, 33, 47, 64, 65};
  const int ks[] = {0, 1, 2, 7, 64, 131};
  unsigned seed = 1;
  for (int m : ms)
    for (int n : ns)
      for (int k : ks) {
        // Row strides past the used columns, so that a tile reading or writing beyond its
        // columns shows in the result or in the untouched padding.
        const int lda = k + 3, ldb = n + 5, ldc = n + 2;
        const std::vector<float> a = random_vector(static_cast<std::size_t>(m * lda), ++seed, 1.0f);
        const std::vector<float> b = random_vector(static_cast<std::size_t>(std::max(k, 1) * ldb), ++seed, 1.0f);
        std::vector<float> want(static_cast<std::size_t>(m * ldc), 7.0f);
        gemm_f32_scalar(m, n, k, a.data(), lda, b.data(), ldb, want.data(), ldc);
        for (int i = 0; i < m; ++i)
          for (int j = n; j < ldc; ++j) REQUIRE(want[static_cast<std::size_t>(i * ldc + j)] == 7.0f);
        for (isa_tier tier : supported_isa_tiers()) {
          std::vector<float> got(want.size(), 7.0f);
          gemm_f32(tier, m, n, k, a.data(), lda, b.data(), ldb, got.data(), ldc);
          INFO("tier " << to_string(tier) << ", m " << m << ", n " << n << ", k " << k);
          CHECK(first_difference(got, want) == -1);
        }
        // The scalar code against a double-precision product.
        for (int i = 0; i < m; ++i)
          for (int j = 0; j < n; ++j) {
            double s = 0, mag = 0;
            for (int p = 0; p < k; ++p) {
              const double t = static_cast<double>(a[static_cast<std::size_t>(i * lda + p)]) * b[static_cast<std::size_t>(p * ldb + j)];
              s += t;
              mag += std::abs(t);
            }
            CHECK(std::abs(want[static_cast<std::size_t>(i * ldc + j)] - s) <= 1e-6 * (mag + 1e-30) * (k + 1));
          }
      }
}

TEST_CASE("the forward ops refuse a tier the CPU cannot run", "[float][forward]") {
  for (isa_tier tier : {isa_tier::avx2, isa_tier::avx512, isa_tier::neon}) {
    if (lowbit::detail::tier_supported(tier, host_cpu_features())) continue;
    float x[4] = {1, 2, 3, 4};
    const float y[4] = {1, 1, 1, 1};
    CHECK_THROWS_AS(silu_mul_n(tier, x, y, 4), lowbit::error);
    CHECK_THROWS_AS(softmax_n(tier, x, 4, 1.0f), lowbit::error);
    CHECK_THROWS_AS(gemm_f32(tier, 1, 1, 1, x, 1, y, 1, x, 1), lowbit::error);
  }
}

}  // namespace test_float_forward_ops_cpp
