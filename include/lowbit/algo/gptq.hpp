#pragma once
// GPTQ (arXiv 2210.17323): quantize a weight one input column at a time and push each
// column's rounding error onto the columns not yet quantized, weighted by the inverse
// Hessian of the layer's calibration loss ||(W - W_hat) X^T||^2, H = 2 X^T X / n.
//
//   dead columns (H_ii = 0): H_ii = 1, W[:, i] = 0 (the input never fires);
//   damping lambda = damp * mean(diag H); if the Cholesky fails, lambda *= 10 (up to
//     max_damp_escalations times), then round-to-nearest for this matrix, with a warning;
//   U = upper Cholesky factor of H^-1 (H^-1 = U^T U);
//   for each lazy block of columns [i1, i2):
//     for i in block:  q = Q(w_i);  err_i = (w_i - q) / U_ii;  W[:, i+1:i2] -= err_i U[i, i+1:i2]
//     W[:, i2:] -= Err[:, block] * U[block, i2:]          (one Eigen matrix product)
//   optional act-order: columns in order of descending H_ii;
//   group scales fitted before the loop from W (static) or when the loop first enters a group
//     from the current, error-updated W (dynamic). With act-order a group is fitted when the
//     first of its columns comes up, from the current values of all its columns.
//
// Element codes and scales come from the quantizer's building blocks (fit_matrix_scales,
// fit_group_scales, quantize_column), so every format and scale constraint works, and the
// result is an ordinary QuantizedMatrix.
//
// U without forming H^-1: with P the reversal permutation, chol(P H P) = L gives
// H = (P L P)(P L P)^T with P L P upper, hence H^-1 = U^T U with U = (P L P)^-1 = P L^-1 P.
// One Cholesky and one triangular inverse (computed in column panels, skipping the zero
// triangle) instead of Cholesky, inverse and a second Cholesky.
#include <Eigen/Cholesky>
#include <Eigen/Core>
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <numeric>
#include <string>
#include <string_view>
#include <vector>

#include "lowbit/config.hpp"
#include "lowbit/threads.hpp"
#include "lowbit/quant/quantizer.hpp"

namespace lowbit {

struct GptqOptions {
  float damp_percent = 0.01f;     // lambda = damp_percent * mean(diag H)
  int max_damp_escalations = 3;   // lambda *= 10 at most this many times before falling back
  std::int64_t block_size = 128;  // lazy-update block
  bool act_order = false;         // process columns by descending H_ii
  bool static_groups = false;     // fit every group's scale before the loop
};

struct GptqResult {
  QuantizedMatrix matrix;
  float damping = 0.0f;           // the lambda that worked (0 after a fallback)
  int damp_escalations = 0;       // how many times lambda was raised
  bool fell_back_to_rtn = false;  // the Cholesky failed at every damping: round-to-nearest
  std::int64_t dead_columns = 0;  // columns with H_ii == 0 (quantized as zeros)
  std::string warning;            // empty unless something needs the caller's attention
};

namespace detail {

// Rows per task of the GPTQ loop (a constant, so results do not depend on the thread count).
inline constexpr Eigen::Index gptq_row_chunk = 64;

// Symmetric permutation in place: a(i, j) <- a(perm[i], perm[j]), by cycles of column and then
// row moves (values are moved, never recomputed, so the result equals the gathered copy).
template <class Deferred = void>  // see "Compile time" in docs/design.md
void permute_symmetric_in_place(deferred_t<Deferred, Eigen::MatrixXf>& a, const std::vector<Eigen::Index>& perm) {
  const Eigen::Index n = a.rows();
  std::vector<char> done(static_cast<std::size_t>(n), 0);
  deferred_t<Deferred, Eigen::VectorXf> tmp(n);
  for (int pass = 0; pass < 2; ++pass) {
    std::fill(done.begin(), done.end(), 0);
    for (Eigen::Index s = 0; s < n; ++s) {
      if (done[std::size_t(s)]) continue;
      if (pass == 0) tmp = a.col(s); else tmp = a.row(s).transpose();
      Eigen::Index j = s;
      for (;;) {
        done[std::size_t(j)] = 1;
        const Eigen::Index k = perm[std::size_t(j)];
        if (k == s) {
          if (pass == 0) a.col(j) = tmp; else a.row(j) = tmp.transpose();
          break;
        }
        if (pass == 0) a.col(j) = a.col(k); else a.row(j) = a.row(k);
        j = k;
      }
    }
  }
}

// GPTQ's inverse factor in the buffer of the Hessian. On entry `a` holds the permuted Hessian
// H (undamped; only its diagonal and upper triangle are read, as the factorization of
// H.reverse()'s lower triangle always did). Tries lambda, lambda * 10, ... (escalations + 1
// values); on success `a` holds the upper U with (H + lambda I)^-1 = U^T U (zeros below the
// diagonal) and the number of escalations is returned; -1 when no damping worked (`a` is then
// undefined).
//
// Memory: the n x n buffer, one n x panel block and two n-vectors, where computing U used to
// take six n x n matrices (damped copy, reversed copy in the LLT, L^-1, its reversal).
//   1. a <- reverse(a); upper <- lower^T: the lower triangle is what LLT factors, the upper
//      keeps a copy of it for retries;
//   2. diag <- diag(H) + lambda; LLT in place (lower triangle only, upper untouched);
//   3. L^-1 by column panels: panel [p, p + w) needs only L's columns >= p, so each finished
//      panel replaces L's columns [p, p + w) in the lower triangle; a failure (non-finite L or
//      L^-1) restores the lower triangle from the upper copy and retries with more damping;
//   4. a <- reverse(a): U = P L^-1 P is upper; the lower part is zeroed.
template <class Deferred = void>  // see "Compile time" in docs/design.md
int inverse_hessian_factor_in_place(deferred_t<Deferred, Eigen::MatrixXf>& a, float& lambda, int max_escalations,
                                    std::int64_t panel) {
  const Eigen::Index n = a.rows();
  a.reverseInPlace();
  const deferred_t<Deferred, Eigen::VectorXf> diag = a.diagonal();
  for (Eigen::Index j = 0; j < n; ++j)
    for (Eigen::Index i = 0; i < j; ++i) a(i, j) = a(j, i);
  const auto restore_lower = [&] {
    for (Eigen::Index j = 0; j < n; ++j)
      for (Eigen::Index i = j + 1; i < n; ++i) a(i, j) = a(j, i);
  };
  deferred_t<Deferred, Eigen::MatrixXf> block;
  for (int attempt = 0; attempt <= max_escalations; ++attempt) {
    if (attempt > 0) {
      lambda *= 10.0f;
      restore_lower();
    }
    a.diagonal() = diag.array() + lambda;
    bool ok = false;
    {
      Eigen::LLT<Eigen::Ref<deferred_t<Deferred, Eigen::MatrixXf>>> llt(a);  // factors a's lower triangle in place
      ok = llt.info() == Eigen::Success;
    }
    for (Eigen::Index i = 0; ok && i < n; ++i)
      if (!(a(i, i) > 0.0f) || !std::isfinite(a(i, i))) ok = false;
    for (Eigen::Index p = 0; ok && p < n; p += panel) {
      const Eigen::Index w = std::min<Eigen::Index>(panel, n - p);
      block.setZero(n - p, w);
      block.topRows(w).setIdentity();
      a.bottomRightCorner(n - p, n - p).template triangularView<Eigen::Lower>().solveInPlace(block);
      if (!block.allFinite()) {
        ok = false;
        break;
      }
      for (Eigen::Index j = 0; j < w; ++j)
        a.col(p + j).segment(p + j, n - p - j) = block.col(j).segment(j, n - p - j);
    }
    if (!ok) {
      // The diagonal was damped; step 2 of the next attempt sets it again.
      continue;
    }
    a.reverseInPlace();
    for (Eigen::Index j = 0; j < n; ++j) a.col(j).tail(n - j - 1).setZero();
    return attempt;
  }
  return -1;
}

}  // namespace detail

// `hessian` is taken by value: pass it with std::move() and GPTQ works in that buffer (the
// n x n matrix is the memory peak of calibrating a large layer); pass an lvalue and it copies.
template <class Deferred = void>  // see "Compile time" in docs/design.md
GptqResult gptq(deferred_t<Deferred, ConstRowMatrixRef> w, deferred_t<Deferred, Eigen::MatrixXf> hessian, const QuantSpec& spec,
                const GptqOptions& options = {}, std::string_view name = "weight") {
  const std::string tname(name);
  const Eigen::Index m = w.rows(), n = w.cols();
  if (m == 0 || n == 0) detail::fail("gptq '" + tname + "': empty weight");
  if (hessian.rows() != n || hessian.cols() != n)
    detail::fail("gptq '" + tname + "': Hessian is " + std::to_string(hessian.rows()) + "x" +
                 std::to_string(hessian.cols()) + " but the weight has " + std::to_string(n) +
                 " input columns");
  if (!hessian.allFinite()) detail::fail("gptq '" + tname + "': Hessian contains NaN or Inf");
  if (options.block_size <= 0) detail::fail("gptq '" + tname + "': block_size must be positive");
  if (!(options.damp_percent >= 0.0f)) detail::fail("gptq '" + tname + "': damp_percent < 0");
  for (Eigen::Index r = 0; r < m; ++r)
    for (Eigen::Index c = 0; c < n; ++c)
      if (!std::isfinite(w(r, c)))
        detail::fail("gptq '" + tname + "': non-finite weight at row " + std::to_string(r) +
                     ", column " + std::to_string(c));

  GptqResult result;
  deferred_t<Deferred, Eigen::MatrixXf>& h = hessian;  // becomes the permuted Hessian, then U, in place
  // The weight with dead columns zeroed: a copy only when there are dead columns.
  deferred_t<Deferred, RowMatrixXf> w_dead;
  for (Eigen::Index i = 0; i < n; ++i) {
    if (h(i, i) == 0.0f) {
      h(i, i) = 1.0f;
      if (result.dead_columns++ == 0) w_dead = w;
      w_dead.col(i).setZero();
    }
  }
  using Ref = deferred_t<Deferred, ConstRowMatrixRef>;
  const Ref w0 = result.dead_columns > 0 ? Ref(w_dead) : w;

  // Column order.
  std::vector<Eigen::Index> perm(static_cast<std::size_t>(n));
  std::iota(perm.begin(), perm.end(), Eigen::Index{0});
  if (options.act_order) {
    std::stable_sort(perm.begin(), perm.end(),
                     [&](Eigen::Index a, Eigen::Index b) { return h(a, a) > h(b, b); });
    detail::permute_symmetric_in_place<Deferred>(h, perm);
  }
  std::vector<Eigen::Index> position(perm.size());
  for (std::size_t p = 0; p < perm.size(); ++p) position[static_cast<std::size_t>(perm[p])] = Eigen::Index(p);

  // Damping with escalation.
  const float mean_diag = h.diagonal().mean();
  float lambda = options.damp_percent * mean_diag;
  const int escalations =
      detail::inverse_hessian_factor_in_place<Deferred>(h, lambda, options.max_damp_escalations, options.block_size);
  if (escalations < 0) {
    result.fell_back_to_rtn = true;
    result.damp_escalations = options.max_damp_escalations;
    result.warning = "gptq '" + tname + "': Hessian not positive definite even with damping " +
                     std::to_string(lambda) + "; used round-to-nearest for this matrix";
    hessian = deferred_t<Deferred, Eigen::MatrixXf>();
    result.matrix = quantize(w, spec, name);
    return result;
  }
  result.damping = lambda;
  result.damp_escalations = escalations;
  const deferred_t<Deferred, Eigen::MatrixXf>& u = h;
  if (result.damp_escalations > 0)
    result.warning = "gptq '" + tname + "': damping raised " +
                     std::to_string(result.damp_escalations) + " time(s) to " +
                     std::to_string(lambda);

  QuantizedMatrix q = make_quantized_matrix(m, n, spec, name);
  fit_matrix_scales(q, w0);
  const bool grouped = q.spec.gran == granularity::per_group;
  const bool dynamic_groups = grouped && !options.static_groups;
  if (!dynamic_groups) fit_group_scales(q, w0, 0, q.groups_per_row);

  // Working copy, column-major and permuted, so that each column is contiguous.
  deferred_t<Deferred, Eigen::MatrixXf> work(m, n);
  for (Eigen::Index p = 0; p < n; ++p) work.col(p) = w0.col(perm[std::size_t(p)]);
  using Row = deferred_t<Deferred, RowMatrixXf>;
  Row scratch = dynamic_groups ? Row(w0) : Row();  // current values, original order
  const Eigen::Index bs = static_cast<Eigen::Index>(options.block_size);
  deferred_t<Deferred, Eigen::MatrixXf> err(m, std::min<Eigen::Index>(bs, n));
  deferred_t<Deferred, Eigen::VectorXf> dq(m);

  // Rows are independent in GPTQ (each row's error moves only along that row; group scales
  // are per row), so the loop runs on the lowbit pool over fixed chunks of rows. The chunks do
  // not depend on the thread count, so neither do the results.
  const Eigen::Index chunk = detail::gptq_row_chunk;
  const auto run_rows = [&](Eigen::Index r0, Eigen::Index nr) {
    std::vector<char> group_fitted(static_cast<std::size_t>(q.groups_per_row), 0);
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
                scratch.col(c).segment(r0, nr) = work.col(p).segment(r0, nr);
              } else {
                scratch.col(c).segment(r0, nr) =
                    work.col(p).segment(r0, nr) - err.block(r0, 0, nr, i - i1) * u.block(i1, p, i - i1, 1);
              }
            }
            detail::fit_group_scales_rows(q, scratch, g, r0, r0 + nr);
            group_fitted[std::size_t(g)] = 1;
          }
        }
        detail::quantize_column_rows(q, col, work.col(i).data() + r0, dq.data() + r0, r0, r0 + nr);
        const float d = u(i, i);
        err.col(i - i1).segment(r0, nr) = (work.col(i).segment(r0, nr) - dq.segment(r0, nr)) / d;
        const Eigen::Index rest = i2 - i - 1;
        if (rest > 0)
          work.block(r0, i + 1, nr, rest).noalias() -=
              err.col(i - i1).segment(r0, nr) * u.row(i).segment(i + 1, rest);
      }
      if (i2 < n)
        work.block(r0, i2, nr, n - i2).noalias() -= err.block(r0, 0, nr, count) * u.block(i1, i2, count, n - i2);
    }
  };
  parallel_for((m + chunk - 1) / chunk, 0, executor{}, [&](std::int64_t task) {
    const Eigen::Index r0 = Eigen::Index(task) * chunk;
    run_rows(r0, std::min<Eigen::Index>(chunk, m - r0));
  });
  result.matrix = std::move(q);
  return result;
}

}  // namespace lowbit
