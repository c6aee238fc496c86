// The persistent pool behind gemm(): every task exactly once, exceptions carried to the
// caller, nested calls inline, caller executors honoured, and results independent of the
// thread count.
#include <catch2/catch.hpp>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdlib>
#include <functional>
#include <stdexcept>
#include <thread>
#include <vector>

#include "lowbit/threads.hpp"
#include "lowbit/gemm.hpp"
#include "test_gemm_support.hpp"

// One namespace per test file, so that any set of test files can be compiled as one
// unity translation unit (tests/CMakeLists.txt) without their file-local names clashing.
namespace test_threads_cpp {

using namespace lowbit;

TEST_CASE("parallel_for runs every task exactly once", "[threads]") {
  for (int threads : {1, 2, 3, 8}) {
    for (std::int64_t tasks : {0, 1, 2, 7, 100}) {
      std::vector<std::atomic<int>> hits(static_cast<std::size_t>(tasks));
      for (int rep = 0; rep < 3; ++rep)
        parallel_for(tasks, threads, executor{}, [&](std::int64_t i) { hits[static_cast<std::size_t>(i)]++; });
      for (auto& h : hits) CHECK(h.load() == 3);
    }
  }
}

TEST_CASE("a task's exception reaches the caller and the pool stays usable", "[threads]") {
  CHECK_THROWS_WITH(parallel_for(16, 4, executor{},
                                 [](std::int64_t i) {
                                   if (i == 11) throw lowbit::error("task 11 failed");
                                 }),
                    "task 11 failed");
  std::atomic<int> n{0};
  parallel_for(16, 4, executor{}, [&](std::int64_t) { n++; });
  CHECK(n.load() == 16);
}

TEST_CASE("nested parallel_for runs inline instead of deadlocking", "[threads]") {
  std::atomic<int> n{0};
  parallel_for(4, 4, executor{}, [&](std::int64_t) {
    parallel_for(5, 4, executor{}, [&](std::int64_t) { n++; });
  });
  CHECK(n.load() == 20);
}

TEST_CASE("one thread runs on the calling thread and starts no worker", "[threads]") {
  const std::thread::id me = std::this_thread::get_id();
  bool same = true;
  parallel_for(10, 1, executor{}, [&](std::int64_t) { same = same && std::this_thread::get_id() == me; });
  CHECK(same);
}

TEST_CASE("set_num_threads and LOWBIT_NUM_THREADS parsing", "[threads]") {
  set_num_threads(3);
  CHECK(default_num_threads() == 3);
  set_num_threads(0);
  CHECK(default_num_threads() >= 1);
  CHECK_THROWS_AS(set_num_threads(-1), lowbit::error);
  CHECK(detail::parse_thread_count("4") == 4);
  CHECK(detail::parse_thread_count(nullptr) == 0);
  CHECK_THROWS_AS(detail::parse_thread_count("four"), lowbit::error);
  CHECK_THROWS_AS(detail::parse_thread_count("0"), lowbit::error);
}

TEST_CASE("polling rule: 4+ threads poll 200 us, 2-3 threads 50 us after calls under 1 ms; an override applies to all", "[threads]") {
  using us = std::chrono::microseconds;
  using pool = detail::thread_pool;
  if (std::getenv("LOWBIT_SPIN_US") == nullptr) {
    set_spin_time_us(-1);  // the default rule
    CHECK(pool::spin_time(1) == us(0));
    CHECK(pool::spin_time(2) == us(0));
    CHECK(pool::spin_time(3) == us(0));
    CHECK(pool::spin_time(4) == us(200));
    CHECK(pool::spin_time(16) == us(200));
    // After a call: 2-3 threads poll briefly after short calls (a decode step's), not after
    // long ones; 4+ threads always poll; one thread never waits for anyone.
    using std::chrono::milliseconds;
    CHECK(pool::idle_spin_time(2, us(300)) == us(pool::short_spin_us));
    CHECK(pool::idle_spin_time(3, us(999)) == us(pool::short_spin_us));
    CHECK(pool::idle_spin_time(2, milliseconds(1)) == us(0));
    CHECK(pool::idle_spin_time(2, milliseconds(20)) == us(0));
    CHECK(pool::idle_spin_time(4, milliseconds(20)) == us(200));
    CHECK(pool::idle_spin_time(1, us(10)) == us(0));
  } else {
    WARN("LOWBIT_SPIN_US is set: the default rule is not checked");
  }
  set_spin_time_us(0);  // never poll, whatever the thread count
  CHECK(pool::spin_time(16) == us(0));
  CHECK(pool::idle_spin_time(2, us(10)) == us(0));  // short calls too
  set_spin_time_us(50);  // one time for every call, 2 threads included
  CHECK(pool::spin_time(2) == us(50));
  CHECK(pool::idle_spin_time(2, std::chrono::milliseconds(20)) == us(50));  // long calls too
  CHECK(pool::spin_time(8) == us(50));
  set_spin_time_us(-1);
  // A 4-thread call that polls still runs every task once and returns after all of them.
  std::vector<std::atomic<int>> hits(200);
  for (int rep = 0; rep < 50; ++rep) {
    for (auto& h : hits) h.store(0);
    parallel_for(200, 4 + rep % 3, executor(), [&](std::int64_t i) { hits[static_cast<std::size_t>(i)].fetch_add(1); });
    for (auto& h : hits) REQUIRE(h.load() == 1);
  }
}

TEST_CASE("gemm gives identical results on 1, 2, 3 threads and on a caller executor", "[threads][gemm]") {
  lowbit::test::int_matrix_recipe r;
  r.rows = 300;
  r.cols = 256;
  r.group = 64;
  const QuantizedMatrix q = lowbit::test::make_int_matrix(r);
  const RowMatrixXf x = lowbit::test::random_activations(9, 256, 2);
  const PackedWeights w = pack(q);
  RowMatrixXf y1(9, 300);
  GemmOptions o;
  o.num_threads = 1;
  gemm(x, w, y1, o);
  for (int threads : {2, 3}) {
    RowMatrixXf y(9, 300);
    o.num_threads = threads;
    gemm(x, w, y, o);
    CHECK((y.array() == y1.array()).all());
  }
  std::atomic<std::int64_t> seen{0};
  GemmOptions with_exec;
  with_exec.exec = [&](std::int64_t tasks, const std::function<void(std::int64_t)>& body) {
    std::vector<std::thread> ts;
    for (std::int64_t i = 0; i < tasks; ++i) ts.emplace_back([&, i] { body(i); seen++; });
    for (auto& t : ts) t.join();
  };
  RowMatrixXf y(9, 300);
  gemm(x, w, y, with_exec);
  CHECK(seen.load() > 1);
  CHECK((y.array() == y1.array()).all());
}

TEST_CASE("work too small for a hand-off runs inline; larger work splits by its size", "[threads][gemm]") {
  // The test binary splits everything (catch_main.cpp); this case tests the default rule.
  struct restore_split {
    bool was = detail::split_small_work().load();
    ~restore_split() {
      detail::split_small_work().store(was);
      set_spin_time_us(-1);
    }
  } restore;
  detail::split_small_work().store(false);
  using detail::min_task_macs;
  set_spin_time_us(0);  // parked workers: the whole minimum
  CHECK(detail::tasks_for_work(0, min_task_macs, 8, 2) == 1);
  CHECK(detail::tasks_for_work(min_task_macs - 1, min_task_macs, 8, 2) == 1);
  CHECK(detail::tasks_for_work(2 * min_task_macs - 1, min_task_macs, 8, 2) == 1);
  CHECK(detail::tasks_for_work(3 * min_task_macs, min_task_macs, 8, 2) == 3);
  CHECK(detail::tasks_for_work(100 * min_task_macs, min_task_macs, 8, 2) == 8);
  CHECK(detail::tasks_for_work(100 * min_task_macs, min_task_macs, 0, 2) == 1);
  set_spin_time_us(50);  // polling workers: a sixteenth of it
  CHECK(detail::tasks_for_work(min_task_macs / 16 - 1, min_task_macs, 8, 2) == 1);
  CHECK(detail::tasks_for_work(3 * min_task_macs / 16, min_task_macs, 8, 2) == 3);
  set_spin_time_us(-1);  // the default: calls on 2 threads park, on 4+ poll
  if (std::getenv("LOWBIT_SPIN_US") == nullptr) {
    CHECK(detail::tasks_for_work(min_task_macs, min_task_macs, 8, 2) == 1);
    CHECK(detail::tasks_for_work(min_task_macs, min_task_macs, 8, 4) == 8);
  }

  // gemm's column phase on a caller executor (2 threads, workers parking): a 64 x 64 product
  // of one token is one task; a 1024 x 1024 one (4 tasks' worth) is 4 of the 8 that 2
  // threads would take.
  set_spin_time_us(0);
  std::int64_t most = 0;
  GemmOptions o;
  o.num_threads = 2;
  o.exec = [&](std::int64_t tasks, const std::function<void(std::int64_t)>& body) {
    most = std::max(most, tasks);
    for (std::int64_t i = 0; i < tasks; ++i) body(i);
  };
  auto tasks_of = [&](std::int64_t n, std::int64_t k) {
    lowbit::test::int_matrix_recipe r;
    r.rows = n;
    r.cols = k;
    r.group = 64;
    const PackedWeights w = pack(lowbit::test::make_int_matrix(r));
    const RowMatrixXf x = lowbit::test::random_activations(1, k, 5);
    RowMatrixXf y(1, n), y1(1, n);
    most = 0;
    gemm(x, w, y, o);
    GemmOptions one;
    one.num_threads = 1;
    gemm(x, w, y1, one);
    CHECK((y.array() == y1.array()).all());
    return most;
  };
  CHECK(tasks_of(64, 64) == 1);
  CHECK(tasks_of(1024, 1024) == 4);
  detail::split_small_work().store(true);
  CHECK(tasks_of(64, 64) > 1);  // one task per 16- or 32-column tile
  set_spin_time_us(-1);
}
// run_split_work hands every work's tasks to one parallel_for: each (work, task) runs exactly
// once, empty and null works are skipped, and an executor sees a single call.
TEST_CASE("run_split_work runs every task of every work once, in one hand-off", "[threads]") {
  struct counting final : SplitWork {
    explicit counting(std::int64_t n) : hits(static_cast<std::size_t>(n)) {}
    std::int64_t tasks() const override { return static_cast<std::int64_t>(hits.size()); }
    void run(std::int64_t i) const override { hits[static_cast<std::size_t>(i)]++; }
    mutable std::vector<std::atomic<int>> hits;
  };
  for (int threads : {1, 2, 3}) {
    counting a(3), empty(0), b(5), c(1);
    const SplitWork* works[] = {&a, nullptr, &empty, &b, &c};
    run_split_work(works, 5, threads);
    for (const counting* w : {&a, &b, &c})
      for (const auto& h : w->hits) CHECK(h.load() == 1);
  }
  counting a(4), b(7);
  const SplitWork* works[] = {&a, &b};
  int calls = 0;
  std::int64_t handed = 0;
  run_split_work(works, 2, 0, [&](std::int64_t tasks, const std::function<void(std::int64_t)>& body) {
    ++calls;
    handed = tasks;
    for (std::int64_t i = tasks - 1; i >= 0; --i) body(i);  // any order
  });
  CHECK(calls == 1);
  CHECK(handed == 11);
  for (const counting* w : {&a, &b})
    for (const auto& h : w->hits) CHECK(h.load() == 1);
}

// prepare_gemm + the call's tasks is gemm(): the same bits, whichever order and threads run the
// tasks, with x gone once prepared (the call holds what it read), for the integer and float
// families, with smoothing, bias and LoRC, on fp32 and bf16 activations.
TEST_CASE("prepare_gemm's tasks give gemm()'s bits in any order, after x is gone", "[threads][gemm]") {
  lowbit::test::int_matrix_recipe r;
  r.rows = 300;
  r.cols = 256;
  r.group = 64;
  const QuantizedMatrix qi = lowbit::test::make_int_matrix(r);
  const QuantizedMatrix qf = lowbit::test::random_float_family_matrix(element_format::int4, true, 300, 256, 64, 5);
  const Eigen::VectorXf bias = Eigen::VectorXf::LinSpaced(300, -1.0f, 1.0f);
  const Eigen::VectorXf smoothing = Eigen::VectorXf::LinSpaced(256, 0.5f, 2.0f);
  const RowMatrixXf u = lowbit::test::random_activations(300, 4, 6), v = lowbit::test::random_activations(4, 256, 7);
  PackOptions int_act, weight_only;
  int_act.activations = activation_quant::int8;
  weight_only.activations = activation_quant::none;
  const PackedWeights packed[] = {pack(qi, int_act), pack(qf, weight_only)};
  for (const PackedWeights& w : packed) {
    INFO(w.kernel_name());
    for (int terms = 0; terms < 2; ++terms) {
      GemmOptions o;
      o.num_threads = 3;
      if (terms) {
        o.bias = &bias;
        o.smoothing = &smoothing;
        o.lorc_u = &u;
        o.lorc_v = &v;
      }
      const RowMatrixXf x0 = lowbit::test::random_activations(9, 256, 2);
      RowMatrixXf expected(9, 300), y = RowMatrixXf::Constant(9, 300, -7.0f);
      gemm(x0, w, expected, o);
      GemmCall call;
      {
        RowMatrixXf x = x0;
        call = prepare_gemm(x, w, y, o);
        x.setConstant(1e30f);  // what the tasks read was taken before
      }
      REQUIRE(call.tasks() > 1);
      for (std::int64_t i = call.tasks() - 1; i >= 0; --i) call.run(i);
      CHECK((y.array() == expected.array()).all());

      // bf16 activations: prepare_gemm's 16-bit overload against gemm's.
      const RowMatrixXbf16 xb = x0.cast<Eigen::bfloat16>();
      RowMatrixXf eb(9, 300), yb = RowMatrixXf::Zero(9, 300);
      gemm(xb, w, eb, o);
      run_split_work(prepare_gemm(xb, w, yb, o), 2);
      CHECK((yb.array() == eb.array()).all());
    }
  }
  RowMatrixXf x_none(0, 256), y_none(0, 300);
  CHECK(prepare_gemm(x_none, packed[0], y_none).tasks() == 0);
  RowMatrixXf y_wrong(9, 299);
  CHECK_THROWS_AS(prepare_gemm(lowbit::test::random_activations(9, 256, 2), packed[0], y_wrong), lowbit::error);
}
}  // namespace test_threads_cpp
