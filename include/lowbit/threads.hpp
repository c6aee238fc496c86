#pragma once
// The threads lowbit's kernels and model code run on, for callers: how many (set_num_threads,
// LOWBIT_NUM_THREADS, else the hardware's), how long idle workers poll between calls
// (set_spin_time_us, LOWBIT_SPIN_US), a caller's own threads instead of the pool (executor),
// and parallel_for, which every parallel step of lowbit goes through. The pool, its polling
// rule and the rule for how finely work is split are in detail/threads.hpp.
#include <cstdint>
#include <functional>
#include <string>

#include "lowbit/detail/threads.hpp"
#include "lowbit/error.hpp"

namespace lowbit {

// A caller-supplied way to run `tasks` independent tasks: it must call body(i) exactly once
// for every i in [0, tasks) (in any order, on any threads) and return when all are done.
using executor = std::function<void(std::int64_t tasks, const std::function<void(std::int64_t)>& body)>;

// The thread count lowbit uses when a call does not say: set_num_threads() if called with
// n >= 1, else LOWBIT_NUM_THREADS, else the hardware thread count.
inline int default_num_threads() {
  const int o = detail::thread_count_override().load(std::memory_order_relaxed);
  return o > 0 ? o : detail::env_or_hardware_threads();
}

// Sets the process-wide default thread count (0 restores LOWBIT_NUM_THREADS / hardware).
inline void set_num_threads(int n) {
  if (n < 0) throw error("set_num_threads: thread count must be >= 0, got " + std::to_string(n));
  detail::thread_count_override().store(n, std::memory_order_relaxed);
}

// Sets how long the pool's idle workers (and a caller waiting for them) poll before they
// park, in microseconds, for calls on any thread count (0 = park at once; -1 restores
// LOWBIT_SPIN_US, else the default rule: 200 us for calls on 4 or more threads, 50 us after
// calls on 2-3 threads shorter than 1 ms, none otherwise).
// Polling trades CPU time for the wake-up latency of back-to-back calls; results do not
// change.
inline void set_spin_time_us(long us) {
  if (us < -1 || us > 1000000)
    throw error("set_spin_time_us: expected -1 .. 1000000 microseconds, got " + std::to_string(us));
  detail::spin_time_override().store(us, std::memory_order_relaxed);
}

// Runs body(i) for i in [0, tasks): on `exec` when given, else on the pool with `threads`
// threads (0 = default_num_threads()).
inline void parallel_for(std::int64_t tasks, int threads, const executor& exec,
                         const std::function<void(std::int64_t)>& body) {
  if (tasks <= 0) return;
  if (exec) {
    exec(tasks, body);
    return;
  }
  const int n = threads > 0 ? threads : default_num_threads();
  if (n <= 1 || tasks == 1) {
    for (std::int64_t i = 0; i < tasks; ++i) body(i);
    return;
  }
  detail::thread_pool::instance().parallel_for(tasks, n, body);
}

// Work already prepared and split into independent tasks (a gemm call whose activations are
// quantized: lowbit::GemmCall, gemm.hpp): run(i) must be called exactly once for every i in
// [0, tasks()), on any threads, in any order. Splitting the preparation from the tasks lets
// run_split_work() hand several products that read one input (a decode step's q, k and v)
// to the pool at once: one hand-off and one wait instead of one each, and no thread idle
// at the end of the short ones.
class SplitWork {
 public:
  virtual ~SplitWork() = default;
  virtual std::int64_t tasks() const = 0;
  virtual void run(std::int64_t task) const = 0;
};

// Runs every task of `count` works (in order: the first's tasks, then the second's, ...) in
// one parallel_for on `exec`, or on the pool with `threads` (0 = default_num_threads()).
// Null entries are skipped.
inline void run_split_work(const SplitWork* const* works, std::size_t count, int threads = 0,
                           const executor& exec = {}) {
  std::int64_t total = 0;
  for (std::size_t i = 0; i < count; ++i)
    if (works[i]) total += works[i]->tasks();
  if (total == 0) return;
  parallel_for(total, threads, exec, [&](std::int64_t t) {
    for (std::size_t i = 0;; ++i) {
      if (!works[i]) continue;
      const std::int64_t n = works[i]->tasks();
      if (t < n) {
        works[i]->run(t);
        return;
      }
      t -= n;
    }
  });
}
inline void run_split_work(const SplitWork& work, int threads = 0, const executor& exec = {}) {
  const SplitWork* one = &work;
  run_split_work(&one, 1, threads, exec);
}

}  // namespace lowbit
