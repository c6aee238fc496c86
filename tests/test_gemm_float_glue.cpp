// gemm() with the float-decoding family (w8a8_fp8, w4a8_fp4, w4a16_int4, w4a16_fp4): scheme
// selection, the epilogue terms, strided outputs and threads go through the same framework
// as the integer kernels. The family's own kernel tests live in test_float_kernels.cpp.
#include <catch2/catch.hpp>

#include <random>

#include "lowbit/formats/float4.hpp"
#include "lowbit/formats/float8.hpp"
#include "lowbit/gemm.hpp"
#include "test_gemm_support.hpp"

// One namespace per test file, so that any set of test files can be compiled as one
// unity translation unit (tests/CMakeLists.txt) without their file-local names clashing.
namespace test_gemm_float_glue_cpp {

using namespace lowbit;

namespace {

QuantizedMatrix float_matrix(element_format f, bool symmetric, std::int64_t n, std::int64_t k, std::int64_t group) {
  QuantizedMatrix q;
  q.spec.format = f;
  q.spec.symmetric = symmetric;
  q.spec.gran = granularity::per_group;
  q.spec.group_size = static_cast<int>(group);
  q.rows = n;
  q.cols = k;
  q.group_size = group;
  q.groups_per_row = (k + group - 1) / group;
  const bool eight = f == element_format::float8_e4m3fn;
  q.row_stride = eight ? k : (k + 1) / 2;
  q.codes.assign(static_cast<std::size_t>(n * q.row_stride), 0);
  std::mt19937 rng(11);
  for (std::int64_t r = 0; r < n; ++r)
    for (std::int64_t c = 0; c < k; ++c) {
      std::uint8_t* row = q.codes.data() + r * q.row_stride;
      if (eight) {
        std::uint8_t b = static_cast<std::uint8_t>(rng());
        if ((b & 0x7F) == 0x7F) b = 0x7E;
        row[c] = b;
      } else {
        set_nibble(row, static_cast<std::size_t>(c), static_cast<std::uint8_t>(rng() & 0xF));
      }
    }
  q.scales.resize(static_cast<std::size_t>(n * q.groups_per_row));
  for (float& s : q.scales) s = 0.01f + 0.001f * static_cast<float>(rng() % 16);
  if (!symmetric) q.zeros.assign(q.scales.size(), 8);
  return q;
}

RowMatrixXf dequantize_float(const QuantizedMatrix& q) {
  RowMatrixXf w(q.rows, q.cols);
  for (std::int64_t r = 0; r < q.rows; ++r)
    for (std::int64_t c = 0; c < q.cols; ++c) {
      const std::uint8_t* row = q.codes.data() + r * q.row_stride;
      const std::size_t g = static_cast<std::size_t>(r * q.groups_per_row + c / q.group_size);
      float v;
      if (q.spec.format == element_format::float8_e4m3fn)
        v = float8_e4m3fn::from_bits(row[c]).to_float();
      else if (q.spec.format == element_format::float4_e2m1fn)
        v = float4_e2m1fn::from_bits(get_nibble(row, static_cast<std::size_t>(c))).to_float();
      else
        v = static_cast<float>(get_nibble(row, static_cast<std::size_t>(c))) - static_cast<float>(q.zeros[g]);
      w(r, c) = v * q.scales[g];
    }
  return w;
}

}  // namespace

TEST_CASE("float schemes run through pack/gemm with bias, strided output and threads", "[gemm]") {
  struct float_case {
    element_format f;
    bool symmetric;
    activation_quant act;
    gemm_scheme want;
    float rel;  // activation rounding: E4M3 has 3 mantissa bits (2^-4 relative)
  };
  const float_case cases[] = {
      {element_format::float8_e4m3fn, true, activation_quant::automatic, gemm_scheme::w8a8_fp8, 0.0625f},
      {element_format::float4_e2m1fn, true, activation_quant::automatic, gemm_scheme::w4a8_fp4, 0.0625f},
      {element_format::float4_e2m1fn, true, activation_quant::none, gemm_scheme::w4a16_fp4, 1e-5f},
      {element_format::int4, false, activation_quant::automatic, gemm_scheme::w4a16_int4, 1e-5f},
      {element_format::int4, true, activation_quant::none, gemm_scheme::w4a16_int4, 1e-5f},
      // Weight-only int8 (GGUF Q8_0 / Q6_K imports; automatic would pick w8a8_int8).
      {element_format::int8, true, activation_quant::none, gemm_scheme::w8a16_int8, 1e-5f},
  };
  const std::int64_t m = 5, n = 70, k = 100;
  for (const float_case& fc : cases) {
    QuantizedMatrix q = float_matrix(fc.f, fc.symmetric, n, k, 32);
    const bool int_sym = (fc.f == element_format::int4 || fc.f == element_format::int8) && fc.symmetric;
    if (int_sym) {
      lowbit::test::int_matrix_recipe r{n, k, fc.f, 32};
      if (fc.f == element_format::int8) r.code_lo = -128, r.code_hi = 127;
      q = lowbit::test::make_int_matrix(r);
    }
    const RowMatrixXf what = int_sym ? lowbit::test::dequantize_int(q) : dequantize_float(q);
    const RowMatrixXf x = lowbit::test::random_activations(m, k, 6);
    const Eigen::VectorXf bias = Eigen::VectorXf::LinSpaced(n, 0.5f, -0.5f);
    const RowMatrixXf want = (x * what.transpose()).rowwise() + bias.transpose();
    const RowMatrixXf slack = (x.cwiseAbs() * what.cwiseAbs().transpose()).array() * fc.rel + 1e-4f;
    for (isa_tier tier : supported_isa_tiers()) {
      PackOptions po;
      po.activations = fc.act;
      po.tier = tier;
      const PackedWeights w = pack(q, po);
      INFO(to_string(fc.want) << " tier " << to_string(tier) << " kernel " << selected_kernel(w));
      CHECK(w.scheme() == fc.want);
      CHECK(w.is_float_family());
      RowMatrixXf big = RowMatrixXf::Constant(m, n + 3, 9.0f);
      RowMatrixRef y = big.leftCols(n);
      GemmOptions o;
      o.bias = &bias;
      o.num_threads = 2;
      gemm(x, w, y, o);
      CHECK(((RowMatrixXf(y) - want).cwiseAbs().array() <= slack.array()).all());
      CHECK((big.rightCols(3).array() == 9.0f).all());
    }
  }
  // int8 activations with float weights are refused with a message that says why.
  PackOptions po;
  po.activations = activation_quant::int8;
  CHECK_THROWS_WITH(pack(float_matrix(element_format::float4_e2m1fn, true, 8, 8, 8), po),
                    Catch::Contains("int8 activations need"));
  // Pre-quantized int8 activations do not go to float weights.
  const PackedWeights wf = pack(float_matrix(element_format::float4_e2m1fn, true, 8, 8, 8));
  RowMatrixXi8 codes = RowMatrixXi8::Zero(1, 8);
  RowMatrixXf y(1, 8);
  CHECK_THROWS_AS(gemm(codes, Eigen::VectorXf::Ones(1), wf, y), lowbit::error);
}
}  // namespace test_gemm_float_glue_cpp
