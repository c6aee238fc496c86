// The forward pass's threaded steps outside the linear layers (RMSNorm, SiLU, residual adds:
// model/decoder_layer.hpp) give the same bits on 1, 2 and 3 threads, and the same bits as
// one unsplit pass; and the thread pool's spin-then-park hand-off
// (detail/threads.hpp) runs every task exactly once, whether its workers are still polling
// (back-to-back calls with set_spin_time_us), parked (calls far apart), never poll, or follow
// the default rule (calls on 4+ threads poll, fewer park), with the thread count changing
// between calls.
#include <catch2/catch.hpp>

#include <atomic>
#include <chrono>
#include <cstdint>
#include <random>
#include <stdexcept>
#include <thread>
#include <vector>

#include "lowbit/threads.hpp"
#include "lowbit/model/llama.hpp"
#include "test_random_llama.hpp"

namespace test_model_threading_cpp {

using lowbit::RowMatrixXf;
using namespace lowbit::model;

namespace {

struct threading_restore_threads {
  ~threading_restore_threads() {
    lowbit::set_num_threads(0);
    lowbit::set_spin_time_us(-1);
  }
};

RowMatrixXf threading_random(Eigen::Index rows, Eigen::Index cols, unsigned seed, float sd = 2.0f) {
  std::mt19937 rng(seed);
  std::normal_distribution<float> nd(0.0f, sd);
  RowMatrixXf m(rows, cols);
  for (Eigen::Index i = 0; i < m.size(); ++i) m.data()[i] = nd(rng);
  return m;
}

// A random model whose 90-token prompt's SiLU step is split over the threads (90 x 392
// values; the test binary splits every step, small or not: catch_main.cpp), with a hidden
// width that is not a multiple of any SIMD width (so rows start at every alignment).
LlamaWeights threading_model_weights() {
  LlamaWeights w = lowbit_test::random_llama_weights(lowbit_test::random_llama_config(256, 392, 2, 4, 2, 50, 128), 3, 0.08f);
  w.tok_embeddings *= 10.0f;
  return w;
}

}  // namespace

TEST_CASE("rmsnorm, SiLU and the residual add give the same bits on 1, 2 and 3 threads", "[model][threads]") {
  threading_restore_threads restore;
  // These cases compare thread splits: the test binary must split small work (catch_main.cpp).
  REQUIRE(lowbit::detail::split_small_work().load());
  // 301 x 392 = 117992 values: rows that do not start on a vector boundary, split at rows
  // that do not either; three tasks' worth of detail::min_task_elements.
  const RowMatrixXf x = threading_random(301, 392, 1), y = threading_random(301, 392, 2);
  const Eigen::VectorXf weight = threading_random(392, 1, 3, 0.5f).col(0).array() + 1.0f;

  // SiLU over the whole array in one call of the scalar code (forward_ops.hpp), which every
  // tier matches bit for bit (test_float_forward_ops.cpp).
  RowMatrixXf silu_whole = x;
  lowbit::model::detail::silu_mul_scalar(silu_whole.data(), y.data(), static_cast<std::size_t>(silu_whole.size()));

  std::vector<RowMatrixXf> norms, silus, sums;
  for (int threads : {1, 2, 3}) {
    lowbit::set_num_threads(threads);
    RowMatrixXf n;
    lowbit::model::detail::rmsnorm(x, weight, 1e-5f, n);
    norms.push_back(n);
    RowMatrixXf g = x;
    lowbit::model::detail::silu_mul(g, y);
    silus.push_back(g);
    RowMatrixXf s = x;
    lowbit::model::detail::add_in_place(s, y);
    sums.push_back(s);
  }
  for (std::size_t i = 1; i < norms.size(); ++i) {
    CHECK(norms[i] == norms[0]);
    CHECK(silus[i] == silus[0]);
    CHECK(sums[i] == sums[0]);
  }
  // The split SiLU is the one-call scalar SiLU bit for bit, the add is exact, the norm row by
  // row as before.
  CHECK(silus[0] == silu_whole);
  CHECK(sums[0] == x + y);
  for (Eigen::Index t = 0; t < x.rows(); t += 37) {
    const float inv = 1.0f / std::sqrt(x.row(t).squaredNorm() / static_cast<float>(x.cols()) + 1e-5f);
    const Eigen::RowVectorXf expect = (x.row(t).array() * inv) * weight.transpose().array();
    CHECK(norms[0].row(t) == expect);
  }
}

TEST_CASE("a prompt and decode steps give the same logits on 1, 2 and 3 threads", "[model][threads]") {
  threading_restore_threads restore;
  const LlamaModel m(threading_model_weights());
  std::vector<int> ids(96);
  for (std::size_t i = 0; i < ids.size(); ++i) ids[i] = static_cast<int>((i * 17 + 5) % 50);
  const auto run = [&](int threads) {
    lowbit::set_num_threads(threads);
    KvCache cache(m.config());
    ForwardWorkspace ws;
    RowMatrixXf prompt, step1, step2;
    m.forward(ids.data(), 90, cache, prompt, ws);  // 90 x 392 SiLU values: the threaded path
    m.forward(&ids[90], 1, cache, step1, ws);      // one token: every step inline
    m.forward(&ids[91], 5, cache, step2, ws);
    RowMatrixXf all(prompt.rows() + step1.rows() + step2.rows(), prompt.cols());
    all << prompt, step1, step2;
    return all;
  };
  const RowMatrixXf one = run(1);
  REQUIRE(one.allFinite());
  REQUIRE(one.cwiseAbs().maxCoeff() > 0.0f);
  CHECK(run(2) == one);
  CHECK(run(3) == one);
}

TEST_CASE("an fp32 layer splits its products over threads without changing a bit", "[model][threads]") {
  threading_restore_threads restore;
  // 3001 x 300 fp32 = 3.6 MB: three tasks of whole chunks at most, a partial last chunk (of
  // 64 rows in a decode step, of 256 in a prompt).
  const std::int64_t n = 3001, k = 300;
  const RowMatrixXf w = threading_random(n, k, 7, 0.05f);
  const Fp32Linear layer(w);
  REQUIRE(n * k / lowbit::detail::min_task_macs >= 3);
  REQUIRE(n % Fp32Linear::fp32_prompt_chunk_rows != 0);
  for (std::int64_t tokens : {1, 3, 5, 37}) {
    INFO("tokens " << tokens);
    const RowMatrixXf x = threading_random(tokens, k, 8 + static_cast<unsigned>(tokens));
    const RowMatrixXf plain = x * w.transpose();
    std::vector<RowMatrixXf> ys;
    for (int threads : {1, 2, 3}) {
      lowbit::set_num_threads(threads);
      RowMatrixXf y(tokens, n);
      layer.forward(x, y);
      ys.push_back(y);
    }
    CHECK(ys[1] == ys[0]);
    CHECK(ys[2] == ys[0]);
    // Summation order may differ from the whole product's; every element stays within fp32
    // rounding of it (|x| ~ 2, |w| ~ 0.05, K = 300).
    CHECK((ys[0] - plain).cwiseAbs().maxCoeff() <= 1e-4f);
  }
}

TEST_CASE("the pool runs every task once with its workers polling, parked, or left out", "[model][threads]") {
  // The shared pool (other tests may have started its workers already).
  threading_restore_threads restore;
  std::vector<std::atomic<int>> hits(97);
  const auto call = [&](int threads, std::int64_t tasks) {
    for (std::int64_t i = 0; i < tasks; ++i) hits[static_cast<std::size_t>(i)].store(0);
    lowbit::parallel_for(tasks, threads, lowbit::executor(), [&](std::int64_t i) {
      // A little work, so that several threads take part.
      volatile double s = 0.0;
      for (int k = 0; k < 200; ++k) s = s + static_cast<double>(k * i);
      hits[static_cast<std::size_t>(i)].fetch_add(1);
    });
    // Every task has finished (not just started) when parallel_for returns.
    for (std::int64_t i = 0; i < tasks; ++i)
      if (hits[static_cast<std::size_t>(i)].load() != 1) return false;
    return true;
  };
  // Back to back with polling on: the workers are still polling for the next call. The
  // thread count changes between calls, so some polling workers see a call they are not
  // part of.
  lowbit::set_spin_time_us(200);
  for (int rep = 0; rep < 300; ++rep) REQUIRE(call(1 + rep % 4, 1 + (rep * 7) % 97));
  // Far apart (longer than the polling time): the workers have parked.
  for (int rep = 0; rep < 6; ++rep) {
    std::this_thread::sleep_for(std::chrono::milliseconds(2));
    REQUIRE(call(rep % 2 == 0 ? 3 : 2, 50));
  }
  // No polling: every worker parks after each call.
  lowbit::set_spin_time_us(0);
  for (int rep = 0; rep < 100; ++rep) REQUIRE(call(1 + rep % 4, 1 + (rep * 5) % 97));
  // The default rule: 4- and 5-thread calls poll, 2- and 3-thread calls park, alternating, so
  // workers still polling after a wide call meet a narrow call they are not part of.
  lowbit::set_spin_time_us(-1);
  for (int rep = 0; rep < 200; ++rep) REQUIRE(call(2 + rep % 4, 1 + (rep * 11) % 97));
  CHECK_THROWS_AS(lowbit::set_spin_time_us(-2), lowbit::error);
  lowbit::set_spin_time_us(200);
  // An exception still reaches the caller, after every other task has run.
  std::atomic<int> ran{0};
  CHECK_THROWS_AS(lowbit::parallel_for(40, 3, lowbit::executor(),
                                       [&](std::int64_t i) {
                                         ran.fetch_add(1);
                                         if (i == 7) throw std::runtime_error("task 7");
                                       }),
                  std::runtime_error);
  CHECK(ran.load() == 40);
  REQUIRE(call(3, 97));
}

}  // namespace test_model_threading_cpp
