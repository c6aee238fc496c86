#pragma once
// Threads for the kernels: a small persistent pool that the calling thread joins. The public
// functions (thread count, polling time, parallel_for, executor) are in lowbit/threads.hpp.
//
// - Workers start lazily, the first time a call asks for more than one thread, and then stay
//   (parked on a condition variable), so a hot loop never pays for thread creation.
// - A call with one thread, or one task, runs inline and touches no lock: a single-token
//   decode step costs nothing here.
// - The count comes from, in order: the call's own request, set_num_threads(), the
//   LOWBIT_NUM_THREADS environment variable (read once), std::thread::hardware_concurrency().
// - A caller that owns its threads passes an `executor` instead and lowbit uses it as is.
// - A parallel_for issued from inside a task (or while another caller holds the pool) runs
//   inline rather than deadlocking.
// - A thread that cannot be created (std::system_error: a process or memory limit) is not
//   an error: the call runs on the threads that exist (at least the caller's), so the
//   result is the same, only slower. Nothing ever destroys a joinable std::thread.
// - A model's forward pass is a stream of short parallel_for calls (two per linear layer,
//   the attention, the element-wise steps) separated by microseconds of serial work. A
//   worker parked on the condition variable takes microseconds to wake (a futex wake; on a
//   virtual machine an IPI to a halted vCPU, possibly tens of microseconds), a visible part
//   of a 0.1-0.3 ms product split over threads. So a worker that finishes a call polls for
//   the next one for a while before it parks, and the caller polls for the workers to finish
//   before it sleeps. The rule (spin_time(), idle_spin_time()): calls on 4 or more threads
//   poll 200 us; calls on 2-3 threads poll 50 us after a call shorter than 1 ms (a decode
//   step's products) and park at once after longer ones; LOWBIT_SPIN_US or
//   set_spin_time_us() replace it with one
//   time for every call (0 = never poll). Measured on the 16-core Xeon (docs/performance.md,
//   "Model level: lowbit bench"): polling 200 us gained 8-26% decode and up to 30% prefill
//   from 4 threads up, and lost 11-22% of 2-thread prefill in three runs of four,
//   where the polling worker costs more than the wake it saves (2-thread calls on the 2-core
//   build machine: 15 us polling vs 11 us parked). 200 us outlasts the serial gaps of a
//   forward pass and still parks every worker at once at a human-scale pause. Polling only
//   delays parking; the tasks and results are the same.
// - Work too small to pay for a hand-off is not split: a call gives each task at least
//   min_task_macs multiply-adds (products: gemm, the attention, the 16-bit classifier) or
//   min_task_elements elements (element-wise steps, activation preparation), and runs inline
//   when it has no more than one task's worth (tasks_for_work()). A small model's decode step
//   is all such calls: stories260K on 2 threads decoded 23x slower than on 1 (1,805 vs 41,445
//   tokens/s, one wake per 64 x 64 product) before this rule. 2^18 multiply-adds are about
//   9 us of 4-bit weights streamed from DRAM at one token, the size of one wake. Calls whose
//   workers poll (4+ threads) hand off without a wake, so there the minimum is 16x smaller.
//   The split never changes a result; the test binary sets split_small_work() so that the
//   splits run on the tests' small shapes.
#include <algorithm>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <cstdlib>
#include <exception>
#include <functional>
#include <mutex>
#include <new>
#include <string>
#include <system_error>
#include <thread>
#include <utility>
#include <vector>

#include "lowbit/error.hpp"

namespace lowbit {

namespace detail {

inline int parse_thread_count(const char* text) {
  if (text == nullptr || *text == '\0') return 0;
  char* end = nullptr;
  const long v = std::strtol(text, &end, 10);
  if (*end != '\0' || v < 1 || v > 4096)
    throw error("LOWBIT_NUM_THREADS=" + std::string(text) + ": expected an integer in [1, 4096]");
  return static_cast<int>(v);
}

inline int env_or_hardware_threads() {
  static const int n = [] {
    const int env = parse_thread_count(std::getenv("LOWBIT_NUM_THREADS"));
    if (env > 0) return env;
    const unsigned hw = std::thread::hardware_concurrency();
    return hw == 0 ? 1 : static_cast<int>(hw);
  }();
  return n;
}

// Test hook: called before each worker thread is created; a test makes it throw
// std::system_error to simulate a process that cannot create threads.
inline void (*&thread_creation_hook())() {
  static void (*hook)() = nullptr;
  return hook;
}

inline std::atomic<int>& thread_count_override() {
  static std::atomic<int> n{0};
  return n;
}

// Microseconds the pool polls before parking, for every call; -1 = not set (LOWBIT_SPIN_US,
// else the thread-count rule of thread_pool::spin_time(), applies).
inline std::atomic<long>& spin_time_override() {
  static std::atomic<long> us{-1};
  return us;
}

// The least work a task gets (the header comment): multiply-adds of a product, elements of
// an element-wise step.
constexpr std::int64_t min_task_macs = std::int64_t{1} << 18;
constexpr std::int64_t min_task_elements = std::int64_t{1} << 15;

// Test hook: when set, tasks_for_work() ignores the minimum (every call splits as if large).
inline std::atomic<bool>& split_small_work() {
  static std::atomic<bool> on{false};
  return on;
}

// One spin-wait step: tells the CPU this is a polling loop (lets a sibling hyperthread run).
inline void cpu_relax() noexcept {
#if defined(__x86_64__) || defined(__i386__)
  __builtin_ia32_pause();
#elif defined(__aarch64__)
  __asm__ __volatile__("yield");
#endif
}

// Polls done() for up to `limit`; whether it came true. Every 64 polls it checks the clock
// and yields the CPU, so that on an oversubscribed machine a polling thread does not hold a
// core that the thread it waits for (or another process) needs.
template <class Done>
bool spin_until(const Done& done, std::chrono::microseconds limit) {
  if (limit.count() <= 0) return done();
  const auto deadline = std::chrono::steady_clock::now() + limit;
  for (unsigned i = 1;; ++i) {
    if (done()) return true;
    cpu_relax();
    if (i % 64 == 0) {
      if (std::chrono::steady_clock::now() >= deadline) return done();
      std::this_thread::yield();
    }
  }
}

class thread_pool {
 public:
  // The default polling rule (see the header comment): calls on at least this many threads
  // poll for default_spin_us.
  static constexpr int spin_min_threads = 4;
  static constexpr long default_spin_us = 200;
  // Calls on 2-3 threads poll short_spin_us after a call that ended within short_call_us (see
  // idle_spin_time()).
  static constexpr long short_spin_us = 50;
  static constexpr long short_call_us = 1000;

  // How long an idle worker (and a caller waiting for its workers) polls before sleeping on
  // the condition variable after a call on `threads` threads (the caller included):
  // spin_time_override() when set, else LOWBIT_SPIN_US when set, else the rule above.
  static std::chrono::microseconds spin_time(int threads) {
    const std::chrono::microseconds set = configured_spin_time();
    if (set.count() >= 0) return set;
    return std::chrono::microseconds(threads >= spin_min_threads ? default_spin_us : 0);
  }
  // How long a worker polls after a call on `threads` threads that ran for `call` (and the
  // caller polls for its workers, `call` after it started): spin_time(), except that without
  // an override calls on 2-3 threads that ran under short_call_us poll short_spin_us. Such
  // calls are a decode step's products, back to back (the 1B shape: ~24 ms a token over ~110
  // calls). On the 2-vCPU Zen 5 build machine polling 50 us after them raised the 1B shape's
  // 2-thread tg by 4-34% in four rounds (docs/performance.md, session 34), while the 2-thread
  // prefill, whose calls run for milliseconds, lost on the device Xeon when its workers
  // polled; those calls still park at once.
  static std::chrono::microseconds idle_spin_time(int threads, std::chrono::nanoseconds call) {
    if (configured_spin_time().count() >= 0 || threads >= spin_min_threads || threads < 2) return spin_time(threads);
    return std::chrono::microseconds(call < std::chrono::microseconds(short_call_us) ? short_spin_us : 0);
  }
  // What the user set: spin_time_override() when set, else LOWBIT_SPIN_US; -1 when neither is.
  static std::chrono::microseconds configured_spin_time() {
    const long o = spin_time_override().load(std::memory_order_relaxed);
    return o >= 0 ? std::chrono::microseconds(o) : env_spin_time();
  }
  // LOWBIT_SPIN_US (read once), or -1 when it is not set.
  static std::chrono::microseconds env_spin_time() {
    static const std::chrono::microseconds t{[] {
      const char* text = std::getenv("LOWBIT_SPIN_US");
      if (text == nullptr || *text == '\0') return -1L;
      char* end = nullptr;
      const long v = std::strtol(text, &end, 10);
      if (*end != '\0' || v < 0 || v > 1000000)
        throw error("LOWBIT_SPIN_US=" + std::string(text) + ": expected an integer in [0, 1000000] (microseconds)");
      return v;
    }()};
    return t;
  }

  static thread_pool& instance() {
    static thread_pool pool;
    return pool;
  }

  thread_pool() = default;
  thread_pool(const thread_pool&) = delete;
  thread_pool& operator=(const thread_pool&) = delete;
  ~thread_pool() {
    {
      std::lock_guard<std::mutex> lock(mu_);
      stop_ = true;
    }
    cv_work_.notify_all();
    for (std::thread& t : workers_) t.join();
  }

  // Runs body(i) for i in [0, tasks) on up to `threads` threads (the caller included).
  void parallel_for(std::int64_t tasks, int threads, const std::function<void(std::int64_t)>& body) {
    if (tasks <= 0) return;
    const int helpers = static_cast<int>(std::min<std::int64_t>(threads, tasks)) - 1;
    std::unique_lock<std::mutex> caller(call_mu_, std::try_to_lock);
    if (helpers <= 0 || !caller.owns_lock()) {
      for (std::int64_t i = 0; i < tasks; ++i) body(i);
      return;
    }
    const int available = ensure_workers(helpers);
    if (available == 0) {
      for (std::int64_t i = 0; i < tasks; ++i) body(i);
      return;
    }
    const auto start = std::chrono::steady_clock::now();
    {
      std::lock_guard<std::mutex> lock(mu_);
      call_start_.store(start.time_since_epoch().count(), std::memory_order_relaxed);
      body_ = &body;
      tasks_ = tasks;
      next_.store(0, std::memory_order_relaxed);
      participants_ = available;
      last_threads_.store(available + 1, std::memory_order_relaxed);
      pending_.store(available, std::memory_order_relaxed);
      error_ = nullptr;
      // Release: a spinning worker that sees the new generation sees everything above.
      generation_.store(generation_.load(std::memory_order_relaxed) + 1, std::memory_order_release);
    }
    cv_work_.notify_all();
    drain();
    const auto done = [&] { return pending_.load(std::memory_order_acquire) == 0; };
    if (!spin_until(done, idle_spin_time(available + 1, std::chrono::steady_clock::now() - start))) {
      std::unique_lock<std::mutex> lock(mu_);
      cv_done_.wait(lock, done);
    }
    std::lock_guard<std::mutex> lock(mu_);
    body_ = nullptr;
    if (error_) std::rethrow_exception(std::exchange(error_, nullptr));
  }

  int worker_count() const {
    std::lock_guard<std::mutex> lock(mu_);
    return static_cast<int>(workers_.size());
  }

 private:
  // Starts workers up to n; returns how many exist (fewer when creation failed).
  int ensure_workers(int n) {
    (void)env_spin_time();  // a bad LOWBIT_SPIN_US throws here, on the caller, not in a worker
    std::lock_guard<std::mutex> lock(mu_);
    try {
      while (static_cast<int>(workers_.size()) < n) {
        if (thread_creation_hook()) thread_creation_hook()();
        const int index = static_cast<int>(workers_.size());
        workers_.reserve(workers_.size() + 1);  // a failed push_back must not lose a running thread
        workers_.emplace_back([this, index] { worker_loop(index); });
      }
    } catch (const std::system_error&) {
      // Fewer threads: the tasks still all run (see the header comment).
    } catch (const std::bad_alloc&) {
    }
    return std::min(n, static_cast<int>(workers_.size()));
  }

  // Takes tasks until none are left; the first exception wins, the rest still run.
  void drain() {
    for (;;) {
      const std::int64_t i = next_.fetch_add(1, std::memory_order_relaxed);
      if (i >= tasks_) return;
      try {
        (*body_)(i);
      } catch (...) {
        std::lock_guard<std::mutex> lock(mu_);
        if (!error_) error_ = std::current_exception();
      }
    }
  }

  void worker_loop(int index) {
    std::uint64_t seen = 0;
    for (;;) {
      // Poll for a new call first (see idle_spin_time(); the last call's thread count and
      // duration decide), then park. A generation this worker does not take part in
      // (index >= participants_) is only marked seen.
      const auto called = [&] { return generation_.load(std::memory_order_acquire) != seen; };
      const std::chrono::steady_clock::duration last_call =
          std::chrono::steady_clock::now().time_since_epoch() -
          std::chrono::steady_clock::duration(call_start_.load(std::memory_order_relaxed));
      bool take = false;
      if (spin_until(called, idle_spin_time(last_threads_.load(std::memory_order_relaxed), last_call))) {
        std::lock_guard<std::mutex> lock(mu_);
        if (stop_) return;
        seen = generation_.load(std::memory_order_relaxed);
        take = index < participants_;
      }
      if (!take) {
        std::unique_lock<std::mutex> lock(mu_);
        cv_work_.wait(lock, [&] {
          return stop_ || (generation_.load(std::memory_order_relaxed) != seen && index < participants_);
        });
        if (stop_) return;
        seen = generation_.load(std::memory_order_relaxed);
      }
      drain();
      if (pending_.fetch_sub(1, std::memory_order_acq_rel) == 1) {
        std::lock_guard<std::mutex> lock(mu_);  // the caller checks pending_ under mu_ before it sleeps
        cv_done_.notify_one();
      }
    }
  }

  mutable std::mutex mu_;
  std::mutex call_mu_;  // one parallel_for at a time; others (and nested ones) run inline
  std::condition_variable cv_work_, cv_done_;
  std::vector<std::thread> workers_;
  const std::function<void(std::int64_t)>* body_ = nullptr;
  std::int64_t tasks_ = 0;
  std::atomic<std::int64_t> next_{0};
  int participants_ = 0;
  std::atomic<int> pending_{0};
  std::atomic<int> last_threads_{0};  // threads of the latest call (its polling rule)
  std::atomic<std::chrono::steady_clock::rep> call_start_{0};  // when the latest call began
  std::atomic<std::uint64_t> generation_{0};
  bool stop_ = false;
  std::exception_ptr error_;
};

// How many tasks a call of `work` units on `threads` threads splits into: at most max_tasks,
// at least 1, each with at least `min_per_task` units, or 1/polling_task_divisor of that
// when the call's workers poll (spin_time(threads) > 0: a hand-off then costs no wake).
constexpr std::int64_t polling_task_divisor = 16;
inline std::int64_t tasks_for_work(std::int64_t work, std::int64_t min_per_task, std::int64_t max_tasks, int threads) {
  const std::int64_t cap = std::max<std::int64_t>(1, max_tasks);
  if (split_small_work().load(std::memory_order_relaxed)) return cap;
  const bool polling = thread_pool::spin_time(threads).count() > 0;
  const std::int64_t min = polling ? min_per_task / polling_task_divisor : min_per_task;
  return std::max<std::int64_t>(1, std::min(cap, work / std::max<std::int64_t>(1, min)));
}

}  // namespace detail
}  // namespace lowbit
