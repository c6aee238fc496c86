// Hardening (issue 15, item 6): a thread that cannot be created is not a crash. The pool
// runs every task on the threads it has, down to the caller alone.
#include <catch2/catch.hpp>

#include <atomic>
#include <system_error>
#include <vector>

#include "lowbit/threads.hpp"

// One namespace per test file, so that any set of test files can be compiled as one
// unity translation unit (tests/CMakeLists.txt) without their file-local names clashing.
namespace test_hardening_threads_cpp {

namespace {

std::atomic<int> allowed{0};
void limited_creation() {
  if (allowed.fetch_sub(1) <= 0) throw std::system_error(std::make_error_code(std::errc::resource_unavailable_try_again));
}

struct hook_guard {
  explicit hook_guard(int n) {
    allowed = n;
    lowbit::detail::thread_creation_hook() = limited_creation;
  }
  ~hook_guard() { lowbit::detail::thread_creation_hook() = nullptr; }
};

}  // namespace

TEST_CASE("threads: creation failure falls back to fewer threads", "[threads][hardening]") {
  for (const int can_create : {0, 1, 3}) {
    hook_guard guard(can_create);
    lowbit::detail::thread_pool pool;  // a fresh pool: its workers start under the hook
    std::vector<std::atomic<int>> hits(100);
    pool.parallel_for(100, 8, [&](std::int64_t i) { hits[std::size_t(i)]++; });
    for (const auto& h : hits) CHECK(h.load() == 1);
    CHECK(pool.worker_count() == can_create);
    // Later calls still work, with what exists.
    std::atomic<std::int64_t> sum{0};
    pool.parallel_for(50, 8, [&](std::int64_t i) { sum += i; });
    CHECK(sum.load() == 50 * 49 / 2);
  }
}
}  // namespace test_hardening_threads_cpp
