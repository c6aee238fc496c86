// GPTQ in one n x n buffer (gptq.hpp: in-place permutation, damping retries from a copy kept
// in the other triangle, in-place Cholesky and triangular inverse) and the consuming
// quantize_linear give the same codes and scales, bit for bit, as the plain GPTQ they
// replaced: that implementation (before the rework, copies of the Hessian at every step) is
// kept below as the reference. Both perform the same floating-point operations in the same
// order (moves replace copies; the reference's products take the same 64-row chunks), so
// exact equality is the claim, on every platform and instruction set.
#include <catch2/catch.hpp>
#include <Eigen/Cholesky>
#include <Eigen/QR>
#include <numeric>
#include <string>
#include <vector>

#include "lowbit/algo/calibration.hpp"
#include "lowbit/algo/gptq.hpp"
#include "lowbit/detail/target.hpp"
#include "lowbit/algo/linear.hpp"
#include "lowbit/algo/recipes.hpp"
#include "lowbit/model/sequential_calibration.hpp"
#include "lowbit/quant/spec_text.hpp"

#include "test_algo_support.hpp"


namespace lowbit {
namespace gptq_inplace_reference {
namespace gptq_inplace_reference_detail {

// Upper U with H^-1 = U^T U, or an empty matrix when H (damped) is not positive definite.
inline Eigen::MatrixXf gptq_inplace_reference_inverse(const Eigen::MatrixXf& h, std::int64_t panel) {
  const Eigen::Index n = h.rows();
  Eigen::LLT<Eigen::MatrixXf> llt(h.reverse());
  if (llt.info() != Eigen::Success) return {};
  const Eigen::MatrixXf& l = llt.matrixLLT();  // lower triangle holds L
  for (Eigen::Index i = 0; i < n; ++i)
    if (!(l(i, i) > 0.0f) || !std::isfinite(l(i, i))) return {};
  Eigen::MatrixXf linv = Eigen::MatrixXf::Zero(n, n);
  for (Eigen::Index a = 0; a < n; a += panel) {
    const Eigen::Index w = std::min<Eigen::Index>(panel, n - a);
    auto blk = linv.block(a, a, n - a, w);
    blk.topRows(w).setIdentity();
    l.bottomRightCorner(n - a, n - a).triangularView<Eigen::Lower>().solveInPlace(blk);
  }
  if (!linv.allFinite()) return {};
  return linv.reverse();
}

}  // namespace gptq_inplace_reference_detail

inline GptqResult gptq_inplace_reference(ConstRowMatrixRef w, const Eigen::MatrixXf& hessian, const QuantSpec& spec,
                       const GptqOptions& options = {}, std::string_view name = "weight") {
  const std::string tname(name);
  const Eigen::Index m = w.rows(), n = w.cols();
  if (m == 0 || n == 0) lowbit::detail::fail("gptq '" + tname + "': empty weight");
  if (hessian.rows() != n || hessian.cols() != n)
    lowbit::detail::fail("gptq '" + tname + "': Hessian is " + std::to_string(hessian.rows()) + "x" +
                 std::to_string(hessian.cols()) + " but the weight has " + std::to_string(n) +
                 " input columns");
  if (!hessian.allFinite()) lowbit::detail::fail("gptq '" + tname + "': Hessian contains NaN or Inf");
  if (options.block_size <= 0) lowbit::detail::fail("gptq '" + tname + "': block_size must be positive");
  if (!(options.damp_percent >= 0.0f)) lowbit::detail::fail("gptq '" + tname + "': damp_percent < 0");
  for (Eigen::Index r = 0; r < m; ++r)
    for (Eigen::Index c = 0; c < n; ++c)
      if (!std::isfinite(w(r, c)))
        lowbit::detail::fail("gptq '" + tname + "': non-finite weight at row " + std::to_string(r) +
                     ", column " + std::to_string(c));

  GptqResult result;
  Eigen::MatrixXf h = hessian;
  RowMatrixXf w0 = w;  // original order, dead columns zeroed
  for (Eigen::Index i = 0; i < n; ++i) {
    if (h(i, i) == 0.0f) {
      h(i, i) = 1.0f;
      w0.col(i).setZero();
      ++result.dead_columns;
    }
  }

  // Column order.
  std::vector<Eigen::Index> perm(static_cast<std::size_t>(n));
  std::iota(perm.begin(), perm.end(), Eigen::Index{0});
  if (options.act_order)
    std::stable_sort(perm.begin(), perm.end(),
                     [&](Eigen::Index a, Eigen::Index b) { return h(a, a) > h(b, b); });
  std::vector<Eigen::Index> position(perm.size());
  for (std::size_t p = 0; p < perm.size(); ++p) position[static_cast<std::size_t>(perm[p])] = Eigen::Index(p);
  Eigen::MatrixXf hp(n, n);
  for (Eigen::Index j = 0; j < n; ++j)
    for (Eigen::Index i = 0; i < n; ++i) hp(i, j) = h(perm[std::size_t(i)], perm[std::size_t(j)]);

  // Damping with escalation.
  const float mean_diag = hp.diagonal().mean();
  float lambda = options.damp_percent * mean_diag;
  Eigen::MatrixXf u;
  for (int attempt = 0; attempt <= options.max_damp_escalations; ++attempt) {
    Eigen::MatrixXf damped = hp;
    damped.diagonal().array() += lambda;
    u = gptq_inplace_reference_detail::gptq_inplace_reference_inverse(damped, options.block_size);
    if (u.size() != 0) {
      result.damping = lambda;
      result.damp_escalations = attempt;
      break;
    }
    if (attempt < options.max_damp_escalations) lambda *= 10.0f;
  }
  if (u.size() == 0) {
    result.fell_back_to_rtn = true;
    result.damp_escalations = options.max_damp_escalations;
    result.warning = "gptq '" + tname + "': Hessian not positive definite even with damping " +
                     std::to_string(lambda) + "; used round-to-nearest for this matrix";
    result.matrix = quantize(w, spec, name);
    return result;
  }
  if (result.damp_escalations > 0)
    result.warning = "gptq '" + tname + "': damping raised " +
                     std::to_string(result.damp_escalations) + " time(s) to " +
                     std::to_string(lambda);

  QuantizedMatrix q = make_quantized_matrix(m, n, spec, name);
  fit_matrix_scales(q, w0);
  const bool grouped = q.spec.gran == granularity::per_group;
  const bool dynamic_groups = grouped && !options.static_groups;
  if (!dynamic_groups) fit_group_scales(q, w0, 0, q.groups_per_row);
  std::vector<char> group_fitted(static_cast<std::size_t>(q.groups_per_row), 0);

  // Working copy, column-major and permuted, so that each column is contiguous.
  Eigen::MatrixXf work(m, n);
  for (Eigen::Index p = 0; p < n; ++p) work.col(p) = w0.col(perm[std::size_t(p)]);
  RowMatrixXf scratch = dynamic_groups ? w0 : RowMatrixXf();  // current values, original order
  const Eigen::Index bs = static_cast<Eigen::Index>(options.block_size);
  Eigen::MatrixXf err(m, std::min<Eigen::Index>(bs, n));
  Eigen::VectorXf dq(m);
  // Rows are independent; the products run over the library's fixed row chunks, because
  // Eigen's AVX-512 product kernels round a 64-row block differently from a whole matrix
  // (measured; why inside Eigen was not traced), so only equal shapes give equal bits
  // in -march=x86-64-v4 builds. Default and AVX2 builds gave equal bits either way.
  const auto for_row_chunks = [&](const auto& f) {
    for (Eigen::Index r0 = 0; r0 < m; r0 += detail::gptq_row_chunk) f(r0, std::min(detail::gptq_row_chunk, m - r0));
  };

  for (Eigen::Index i1 = 0; i1 < n; i1 += bs) {
    const Eigen::Index i2 = std::min<Eigen::Index>(i1 + bs, n), count = i2 - i1;
    for (Eigen::Index i = i1; i < i2; ++i) {
      const Eigen::Index col = perm[std::size_t(i)];
      if (dynamic_groups) {
        const std::int64_t g = col / q.group_size;
        if (!group_fitted[std::size_t(g)]) {
          // The group's columns as they are now: in or before this block, `work` is current;
          // beyond it, the block's pending lazy update has to be added in.
          const std::int64_t c_end = std::min<std::int64_t>((g + 1) * q.group_size, n);
          for (std::int64_t c = g * q.group_size; c < c_end; ++c) {
            const Eigen::Index p = position[std::size_t(c)];
            if (p < i2 || i == i1) {
              scratch.col(c) = work.col(p);
            } else {
              for_row_chunks([&](Eigen::Index r0, Eigen::Index nr) {
                scratch.col(c).segment(r0, nr) =
                    work.col(p).segment(r0, nr) - err.block(r0, 0, nr, i - i1) * u.block(i1, p, i - i1, 1);
              });
            }
          }
          fit_group_scales(q, scratch, g, 1);
          group_fitted[std::size_t(g)] = 1;
        }
      }
      quantize_column(q, col, work.col(i).data(), dq.data());
      const float d = u(i, i);
      err.col(i - i1) = (work.col(i) - dq) / d;
      const Eigen::Index rest = i2 - i - 1;
      if (rest > 0)
        for_row_chunks([&](Eigen::Index r0, Eigen::Index nr) {
          work.block(r0, i + 1, nr, rest).noalias() -= err.col(i - i1).segment(r0, nr) * u.row(i).segment(i + 1, rest);
        });
    }
    if (i2 < n)
      for_row_chunks([&](Eigen::Index r0, Eigen::Index nr) {
        work.block(r0, i2, nr, n - i2).noalias() -= err.block(r0, 0, nr, count) * u.block(i1, i2, count, n - i2);
      });
  }
  result.matrix = std::move(q);
  return result;
}


}  // namespace gptq_inplace_reference
}  // namespace lowbit

// One namespace per test file, so that any set of test files can be compiled as one
// unity translation unit (tests/CMakeLists.txt) without their file-local names clashing.
namespace test_algo_gptq_inplace_cpp {

using namespace lowbit;

namespace {

void gptq_inplace_same_matrix(const QuantizedMatrix& a, const QuantizedMatrix& b) {
  REQUIRE(a.rows == b.rows);
  REQUIRE(a.cols == b.cols);
  CHECK(a.codes == b.codes);
  CHECK(a.scales == b.scales);
  CHECK(a.zeros == b.zeros);
  CHECK(a.row_scales == b.row_scales);
  CHECK(a.shifts == b.shifts);
  CHECK(a.scale_codes == b.scale_codes);
  CHECK(a.tensor_scale == b.tensor_scale);
}

void gptq_inplace_same_result(const GptqResult& a, const GptqResult& b) {
  gptq_inplace_same_matrix(a.matrix, b.matrix);
  CHECK(a.damping == b.damping);
  CHECK(a.damp_escalations == b.damp_escalations);
  CHECK(a.fell_back_to_rtn == b.fell_back_to_rtn);
  CHECK(a.dead_columns == b.dead_columns);
  CHECK(a.warning == b.warning);
}

// Correlated, unevenly scaled inputs (as activations are), optionally with dead channels.
RowMatrixXf gptq_inplace_inputs(Eigen::Index tokens, Eigen::Index channels, std::uint64_t seed) {
  RowMatrixXf x = lowbit_test::gaussian(tokens, channels, seed);
  RowMatrixXf mix = lowbit_test::gaussian(channels, channels, seed + 1, 0.3f);
  mix += RowMatrixXf::Identity(channels, channels);
  x = x * mix;
  for (Eigen::Index j = 0; j < channels; ++j) x.col(j) *= 0.3f + float(j % 5) * 0.6f;
  return x;
}

Eigen::MatrixXf gptq_inplace_with_eigenvalues(const std::vector<float>& eig, std::uint64_t seed) {
  const Eigen::Index n = Eigen::Index(eig.size());
  Eigen::HouseholderQR<Eigen::MatrixXf> qr(Eigen::MatrixXf(lowbit_test::gaussian(n, n, seed)));
  const Eigen::MatrixXf b = qr.householderQ();
  const Eigen::VectorXf e = Eigen::Map<const Eigen::VectorXf>(eig.data(), n);
  return b * e.asDiagonal() * b.transpose();
}

}  // namespace

TEST_CASE("gptq in place: equals the reference GPTQ bit for bit", "[algo][gptq]") {
  struct gptq_inplace_case {
    const char* name;
    const char* spec;
    bool act_order, static_groups;
    std::int64_t block;
    Eigen::Index in;
    bool dead;
  };
  const std::vector<gptq_inplace_case> cases = {
      {"int4 g32 dynamic groups", "int4:g32", false, false, 16, 96, false},
      {"int4 g32 act-order", "int4:g32", true, false, 32, 96, false},
      {"int4 g32 act-order static groups", "int4:g32", true, true, 24, 96, true},
      {"int8 per-channel, block not dividing n", "int8:channel", false, false, 40, 100, true},
      {"nvfp4 act-order, dead columns", "nvfp4", true, false, 128, 64, true},
      {"int4 asym g32, one block", "int4:g32:asym", false, false, 256, 160, false},
  };
  for (const auto& c : cases) {
    DYNAMIC_SECTION(c.name) {
      RowMatrixXf x = gptq_inplace_inputs(3 * c.in, c.in, 41);
      if (c.dead) {
        x.col(5).setZero();
        x.col(c.in - 2).setZero();
      }
      // 150 rows: GPTQ runs in chunks of detail::gptq_row_chunk (64) rows on the pool, two
      // whole chunks and a partial one; the result must not depend on the thread count.
      const RowMatrixXf w = lowbit_test::gaussian(150, c.in, 42);
      const Eigen::MatrixXf h = collect_stats(x).hessian();
      GptqOptions opt;
      opt.act_order = c.act_order;
      opt.static_groups = c.static_groups;
      opt.block_size = c.block;
      const QuantSpec spec = parse_quant_spec(c.spec);
#if LOWBIT_X86
      // x86: the chunked loop does the unsplit reference's arithmetic, bit for bit.
      const GptqResult ref = gptq_inplace_reference::gptq_inplace_reference(w, h, spec, opt, "t");
#else
      // Elsewhere (aarch64 contracts multiply-adds into FMA, and Eigen's products on a 64-row
      // block fuse differently than on the whole matrix) the chunked result can differ from
      // the unsplit reference in the last bit, so it is held to itself at one thread: the
      // chunks are fixed, so any thread count must give the same bits.
      set_num_threads(1);
      const GptqResult ref = gptq(w, h, spec, opt, "t");
#endif
      for (int threads : {1, 2, 3}) {
        INFO("threads " << threads);
        set_num_threads(threads);
        gptq_inplace_same_result(gptq(w, h, spec, opt, "t"), ref);  // copy of the Hessian
        Eigen::MatrixXf moved = h;
        gptq_inplace_same_result(gptq(w, std::move(moved), spec, opt, "t"), ref);  // in its buffer
      }
      set_num_threads(0);
      CHECK(ref.dead_columns == (c.dead ? 2 : 0));
    }
  }
}

TEST_CASE("gptq in place: damping retries and the fallback equal the reference", "[algo][gptq]") {
  const RowMatrixXf w = lowbit_test::gaussian(6, 8, 43);
  const QuantSpec spec = parse_quant_spec("int4:channel");
  GptqOptions opt;
  opt.block_size = 3;  // several panels of the inverse
  // mean(diag) = 7.25 over 8 eigenvalues; escalations until lambda covers the -1.5.
  for (const std::vector<float>& eig :
       {std::vector<float>{10, 10, 10, -1.5f, 9, 8, 7, 4.5f}, std::vector<float>{10, 10, 10, -60, 9, 8, 7, 6},
        std::vector<float>{1, 2, 3, 4, 5, 6, 7, 8}}) {
    const Eigen::MatrixXf h = gptq_inplace_with_eigenvalues(eig, 44);
    for (bool act : {false, true}) {
      opt.act_order = act;
      const GptqResult ref = gptq_inplace_reference::gptq_inplace_reference(w, h, spec, opt, "t");
      gptq_inplace_same_result(gptq(w, h, spec, opt, "t"), ref);
    }
  }
  // The cases above do reach both escalation and the fallback.
  opt.act_order = false;
  CHECK(gptq(w, gptq_inplace_with_eigenvalues({10, 10, 10, -1.5f, 9, 8, 7, 4.5f}, 44), spec, opt).damp_escalations > 0);
  CHECK(gptq(w, gptq_inplace_with_eigenvalues({10, 10, 10, -60, 9, 8, 7, 6}, 44), spec, opt).fell_back_to_rtn);
}

TEST_CASE("quantize_linear_consuming: same layer as quantize_linear, the Hessian taken", "[algo][gptq]") {
  const RowMatrixXf x = gptq_inplace_inputs(200, 64, 45);
  const RowMatrixXf w = lowbit_test::gaussian(16, 64, 46);
  CalibrationOptions co;
  co.max_sample_rows = 32;
  LinearRecipe plain = recipe_from_name("w4a16-int4");
  plain.weight = parse_quant_spec("int4:g32");
  LinearRecipe smoothed = plain;  // GPTQ on diag(1/s) H diag(1/s)
  smoothed.smoothing = smoothing_mode::fixed;
  smoothed.alpha = 0.5f;
  for (const LinearRecipe* r : {&plain, &smoothed}) {
    ActivationStats stats = collect_stats(x, co, "t");
    const QuantizedLinear a = quantize_linear(w, *r, &stats, "t");
    const QuantizedLinear b = quantize_linear_consuming(w, nullptr, *r, stats, "t");
    gptq_inplace_same_matrix(a.weight, b.weight);
    CHECK(a.smoothing.has_value() == (r == &smoothed));
    if (a.smoothing) CHECK(*a.smoothing == *b.smoothing);
    // The reference on the same Hessian (smoothed as quantize_linear always did).
    Eigen::MatrixXf h = collect_stats(x, co, "t").hessian();
    RowMatrixXf ws = w;
    if (a.smoothing) {
      const Eigen::VectorXf inv = a.smoothing->cwiseInverse();
      h = inv.asDiagonal() * h * inv.asDiagonal();
      ws = smoothed_weight(w, *a.smoothing);
    }
    gptq_inplace_same_matrix(gptq_inplace_reference::gptq_inplace_reference(ws, h, r->weight, r->gptq, "t").matrix,
                             b.weight);
    // The statistics gave up their Hessian; the rest stays.
    CHECK(stats.hessian_taken());
    CHECK(stats.xtx().size() == 0);
    CHECK_THROWS_AS(stats.hessian(), error);
    CHECK_THROWS_AS(stats.add(x), error);
    CHECK(stats.count() == 200);
    CHECK(stats.sample().rows() == 32);
  }
  // Round-to-nearest recipes leave the statistics alone.
  ActivationStats stats = collect_stats(x, co, "t");
  (void)quantize_linear_consuming(w, nullptr, recipe_from_name("w4a16-sqplus"), stats, "t");
  CHECK_FALSE(stats.hessian_taken());
}

TEST_CASE("LayerStats::find_sole: only the last linear reading an input may consume it", "[algo][gptq]") {
  model::LayerStats rec(CalibrationOptions{});
  const RowMatrixXf x = gptq_inplace_inputs(8, 6, 47);
  const RowMatrixXf y = gptq_inplace_inputs(8, 6, 48);
  rec.observe("q", x);
  rec.observe("k", x);  // same matrix: shares q's statistics
  rec.observe("o", y);
  CHECK(rec.find_sole("q") == nullptr);
  CHECK(rec.find_sole("k") == nullptr);
  CHECK(rec.find_sole("o") == rec.find("o"));
  rec.release("q");
  CHECK(rec.find_sole("k") == rec.find("k"));
  CHECK(rec.find_sole("q") == nullptr);  // released
}
}  // namespace test_algo_gptq_inplace_cpp
