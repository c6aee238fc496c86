// GPTQ invariants: beats round-to-nearest on the calibration loss for every format,
// equals round-to-nearest when H = I, valid codes with act-order and static groups,
// damping escalation and fallback, dead columns, bad input.
#include <catch2/catch.hpp>
#include <Eigen/QR>
#include <limits>
#include <random>
#include <string>

#include "lowbit/algo/calibration.hpp"
#include "lowbit/algo/gptq.hpp"

#include "test_algo_support.hpp"

// One namespace per test file, so that any set of test files can be compiled as one
// unity translation unit (tests/CMakeLists.txt) without their file-local names clashing.
namespace test_algo_gptq_cpp {

using namespace lowbit;

namespace {

using lowbit_test::gaussian;

// Correlated inputs: independent Gaussians mixed by a random matrix, plus per-channel
// magnitudes that differ (as activations do).
RowMatrixXf correlated_inputs(Eigen::Index tokens, Eigen::Index channels, std::uint64_t seed) {
  const RowMatrixXf z = gaussian(tokens, channels, seed);
  RowMatrixXf mix = gaussian(channels, channels, seed + 1, 0.3f);
  mix += RowMatrixXf::Identity(channels, channels);
  RowMatrixXf x = z * mix;
  for (Eigen::Index j = 0; j < channels; ++j) x.col(j) *= 0.5f + float(j % 7) * 0.4f;
  return x;
}

QuantSpec make_spec(element_format f, granularity g, int group, bool sym = true,
                    scale_constraint c = scale_constraint::none) {
  QuantSpec s;
  s.format = f;
  s.gran = g;
  s.group_size = group;
  s.symmetric = sym;
  s.constraint = c;
  return s;
}

struct named_spec {
  std::string name;
  QuantSpec spec;
};

std::vector<named_spec> every_format() {
  using ef = element_format;
  using gr = granularity;
  using sc = scale_constraint;
  return {
      {"int4 sym g32", make_spec(ef::int4, gr::per_group, 32)},
      {"int4 asym g32", make_spec(ef::int4, gr::per_group, 32, false)},
      {"int4 per-channel", make_spec(ef::int4, gr::per_channel, 0)},
      {"int8 per-channel", make_spec(ef::int8, gr::per_channel, 0)},
      {"int8 per-tensor", make_spec(ef::int8, gr::per_tensor, 0)},
      {"int8 asym g32", make_spec(ef::int8, gr::per_group, 32, false)},
      {"e4m3 per-channel", make_spec(ef::float8_e4m3fn, gr::per_channel, 0)},
      {"e5m2 per-channel", make_spec(ef::float8_e5m2, gr::per_channel, 0)},
      {"e3m2 g32", make_spec(ef::float6_e3m2fn, gr::per_group, 32)},
      {"e2m3 g32", make_spec(ef::float6_e2m3fn, gr::per_group, 32)},
      {"e2m1 g32", make_spec(ef::float4_e2m1fn, gr::per_group, 32)},
      {"e2m1 g32 M1", make_spec(ef::float4_e2m1fn, gr::per_group, 32, true, sc::pow2_m1)},
      {"e2m1 g32 M2", make_spec(ef::float4_e2m1fn, gr::per_group, 32, true, sc::pow2_m2)},
      {"int4 g32 M2", make_spec(ef::int4, gr::per_group, 32, true, sc::pow2_m2)},
      {"mxfp4", make_spec(ef::float4_e2m1fn, gr::per_group, 32, true, sc::mx)},
      {"mxfp8", make_spec(ef::float8_e4m3fn, gr::per_group, 32, true, sc::mx)},
      {"nvfp4", make_spec(ef::float4_e2m1fn, gr::per_group, 16, true, sc::nvfp4)},
  };
}

double calibration_loss(const RowMatrixXf& w, const QuantizedMatrix& q, const RowMatrixXf& x) {
  return ((w - dequantize(q)) * x.transpose()).norm();
}

}  // namespace

TEST_CASE("gptq: beats round-to-nearest on ||(W - W_hat) X^T|| for every format", "[algo][gptq]") {
  const RowMatrixXf x = correlated_inputs(256, 96, 1);
  const RowMatrixXf w = gaussian(24, 96, 3, 0.05f);
  const Eigen::MatrixXf h = collect_stats(x).hessian();
  for (const named_spec& s : every_format()) {
    INFO(s.name);
    const double rtn = calibration_loss(w, quantize(w, s.spec), x);
    for (bool act_order : {false, true}) {
      for (bool static_groups : {false, true}) {
        GptqOptions opt;
        opt.block_size = 40;  // not a multiple of the group: exercises pending lazy updates
        opt.act_order = act_order;
        opt.static_groups = static_groups;
        const GptqResult g = gptq(w, h, s.spec, opt);
        INFO("act_order " << act_order << " static_groups " << static_groups);
        CHECK_FALSE(g.fell_back_to_rtn);
        CHECK(g.warning.empty());
        CHECK(calibration_loss(w, g.matrix, x) < rtn);
      }
    }
  }
}

TEST_CASE("gptq: with H = I it equals round-to-nearest", "[algo][gptq]") {
  const RowMatrixXf w = gaussian(10, 72, 4, 0.05f);
  const Eigen::MatrixXf h = Eigen::MatrixXf::Identity(72, 72);
  for (const named_spec& s : every_format()) {
    INFO(s.name);
    const QuantizedMatrix rtn = quantize(w, s.spec);
    for (bool act_order : {false, true}) {
      GptqOptions opt;
      opt.act_order = act_order;
      opt.block_size = 16;
      const QuantizedMatrix g = gptq(w, h, s.spec, opt).matrix;
      CHECK(g.codes == rtn.codes);
      CHECK(g.scales == rtn.scales);
      CHECK(g.zeros == rtn.zeros);
      CHECK(g.shifts == rtn.shifts);
      CHECK(g.row_scales == rtn.row_scales);
      CHECK(g.scale_codes == rtn.scale_codes);
      CHECK(g.tensor_scale == rtn.tensor_scale);
    }
  }
}

TEST_CASE("gptq: act-order and static groups produce valid codes", "[algo][gptq]") {
  const RowMatrixXf x = correlated_inputs(128, 70, 5);  // ragged last group (70 = 2*32 + 6)
  const RowMatrixXf w = gaussian(12, 70, 6, 0.05f);
  const Eigen::MatrixXf h = collect_stats(x).hessian();
  const QuantSpec spec = make_spec(element_format::int4, granularity::per_group, 32);
  GptqOptions opt;
  opt.act_order = true;
  opt.static_groups = true;
  const QuantizedMatrix g = gptq(w, h, spec, opt).matrix;
  const QuantizedMatrix rtn = quantize(w, spec);
  // Static groups: the scales are the round-to-nearest scales of the original weight.
  CHECK(g.scales == rtn.scales);
  CHECK(g.codes.size() == rtn.codes.size());
  // Symmetric int4 codes are -7..7 (the nibble 0x8 = -8 is unused), odd tail nibble is 0.
  for (Eigen::Index r = 0; r < 12; ++r)
    for (Eigen::Index c = 0; c < 70; ++c) {
      const std::uint8_t byte = g.codes[std::size_t(r * g.row_stride + c / 2)];
      const std::uint8_t nib = (c % 2 == 0) ? (byte & 0xF) : (byte >> 4);
      CHECK(nib != 0x8);
    }
  // Re-quantizing the dequantized weight with the same scales reproduces the codes.
  const RowMatrixXf w_hat = dequantize(g);
  QuantizedMatrix again = g;
  std::vector<float> col(12), dq(12);
  for (Eigen::Index c = 0; c < 70; ++c) {
    for (Eigen::Index r = 0; r < 12; ++r) col[std::size_t(r)] = w_hat(r, c);
    quantize_column(again, c, col.data(), dq.data());
    for (Eigen::Index r = 0; r < 12; ++r) CHECK(dq[std::size_t(r)] == w_hat(r, c));
  }
  CHECK(again.codes == g.codes);
  // Dynamic groups with act-order differ from the static ones but are just as valid.
  opt.static_groups = false;
  const QuantizedMatrix d = gptq(w, h, spec, opt).matrix;
  CHECK(dequantize(d).allFinite());
  CHECK(calibration_loss(w, d, x) < calibration_loss(w, rtn, x));
}

namespace {
// A symmetric matrix with the given eigenvalues and a fixed random basis.
Eigen::MatrixXf with_eigenvalues(const std::vector<float>& eig, std::uint64_t seed) {
  const Eigen::Index n = Eigen::Index(eig.size());
  Eigen::HouseholderQR<Eigen::MatrixXf> qr(Eigen::MatrixXf(gaussian(n, n, seed)));
  const Eigen::MatrixXf b = qr.householderQ();
  const Eigen::VectorXf e = Eigen::Map<const Eigen::VectorXf>(eig.data(), n);
  return b * e.asDiagonal() * b.transpose();
}
}  // namespace

TEST_CASE("gptq: damping escalation and round-to-nearest fallback", "[algo][gptq]") {
  const RowMatrixXf w = gaussian(6, 4, 7);
  const QuantSpec spec = make_spec(element_format::int4, granularity::per_channel, 0);
  // mean(diag) = 7.25: lambda 0.0725 and 0.725 fail on the eigenvalue -1, 7.25 works.
  const GptqResult esc = gptq(w, with_eigenvalues({10, 10, 10, -1}, 8), spec);
  CHECK_FALSE(esc.fell_back_to_rtn);
  CHECK(esc.damp_escalations == 2);
  CHECK(esc.damping == Approx(7.25f).epsilon(1e-4));
  CHECK_FALSE(esc.warning.empty());
  // mean(diag) = 1.25: even lambda = 12.5 leaves an eigenvalue -12.5: fall back.
  const GptqResult fb = gptq(w, with_eigenvalues({10, 10, 10, -25}, 9), spec);
  CHECK(fb.fell_back_to_rtn);
  CHECK(fb.warning.find("round-to-nearest") != std::string::npos);
  CHECK(fb.matrix.codes == quantize(w, spec).codes);
  // A well-conditioned H needs no escalation.
  const GptqResult ok = gptq(w, with_eigenvalues({1, 2, 3, 4}, 10), spec);
  CHECK(ok.damp_escalations == 0);
  CHECK(ok.damping == Approx(0.025f));
}

TEST_CASE("gptq: dead columns are quantized as zero", "[algo][gptq]") {
  RowMatrixXf x = correlated_inputs(64, 16, 11);
  x.col(3).setZero();
  x.col(9).setZero();
  const RowMatrixXf w = gaussian(5, 16, 12);
  const Eigen::MatrixXf h = collect_stats(x).hessian();
  const QuantSpec spec = make_spec(element_format::int8, granularity::per_channel, 0);
  const GptqResult g = gptq(w, h, spec);
  CHECK(g.dead_columns == 2);
  const RowMatrixXf w_hat = dequantize(g.matrix);
  CHECK(w_hat.col(3).isZero(0.0f));
  CHECK(w_hat.col(9).isZero(0.0f));
}

TEST_CASE("gptq: bad input", "[algo][gptq]") {
  const RowMatrixXf w = gaussian(4, 8, 13);
  const QuantSpec spec = make_spec(element_format::int4, granularity::per_group, 4);
  CHECK_THROWS_AS(gptq(w, Eigen::MatrixXf::Identity(7, 7), spec), error);
  Eigen::MatrixXf h = Eigen::MatrixXf::Identity(8, 8);
  h(2, 3) = std::nanf("");
  CHECK_THROWS_AS(gptq(w, h, spec), error);
  RowMatrixXf bad = w;
  bad(1, 5) = std::numeric_limits<float>::infinity();
  try {
    (void)gptq(bad, Eigen::MatrixXf::Identity(8, 8), spec, {}, "layers.0.wq");
    FAIL("no error");
  } catch (const error& e) {
    const std::string msg = e.what();
    CHECK(msg.find("layers.0.wq") != std::string::npos);
    CHECK(msg.find("row 1") != std::string::npos);
    CHECK(msg.find("column 5") != std::string::npos);
  }
}
}  // namespace test_algo_gptq_cpp
