// Hardening (issue 15, item 6): a thread that cannot be created is not a crash. The pool
// runs every task on the threads it has, down to the caller alone.
#include <catch2/catch.hpp>

#include <atomic>
#include <cstdint>
#include <system_error>
#include <thread>
#include <vector>

#include "lowbit/detail/aligned_buffer.hpp"

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
// Per-call workspaces (resize_uninitialized) reuse the blocks their thread released
// (recycled_blocks): the next call of the same shape gets its block back instead of fresh
// pages. Zeroed buffers (packed weights) and blocks outside the kept sizes are freed.
TEST_CASE("aligned_buffer: a thread's released workspace blocks are reused", "[threads]") {
  using lowbit::detail::aligned_buffer;
  using lowbit::detail::recycled_blocks;
  const std::size_t n = (std::size_t{1} << 20) / sizeof(float);  // 1 MiB
  const void* first = nullptr;
  {
    aligned_buffer<float> a;
    a.resize_uninitialized(n);
    first = a.data();
  }
  {
    aligned_buffer<float> b;
    b.resize_uninitialized(n / 2);  // a smaller request takes the kept block
    CHECK(static_cast<const void*>(b.data()) == first);
    aligned_buffer<float> c;
    c.resize_uninitialized(n);  // the block is taken: a new one
    CHECK(static_cast<const void*>(c.data()) != first);
    CHECK(reinterpret_cast<std::uintptr_t>(c.data()) % aligned_buffer<float>::alignment == 0);
  }
  {
    // Both came back (two slots): the 1 MiB one serves 1 MiB again, whichever it is.
    aligned_buffer<float> d, e;
    d.resize_uninitialized(n);
    e.resize_uninitialized(n);
    CHECK((static_cast<const void*>(d.data()) == first || static_cast<const void*>(e.data()) == first));
    for (std::size_t i = 0; i < n; ++i) e[i] = 1.0f;  // the whole length is usable
  }
  {
    aligned_buffer<std::uint8_t> moved;
    moved.resize_uninitialized(std::size_t{1} << 20);
    aligned_buffer<std::uint8_t> to(std::move(moved));  // the block's length moves with it
    CHECK(moved.empty());
  }
  // A zeroed buffer is never handed a kept block (its zeros are its contract) and is freed.
  aligned_buffer<float> z(n);
  for (std::size_t i = 0; i < n; i += 4099) CHECK(z[i] == 0.0f);
  // Too large to keep (max_bytes): freed, not kept.
  {
    aligned_buffer<std::uint8_t> big;
    big.resize_uninitialized(recycled_blocks::max_bytes + 64);
  }
  aligned_buffer<std::uint8_t> again;
  again.resize_uninitialized(recycled_blocks::max_bytes);
  CHECK(again.size() == recycled_blocks::max_bytes);
  // Another thread: its own blocks, and a thread-local buffer destroyed after them at thread
  // exit frees its block rather than keeping it (run under ASan in CI).
  std::thread t([] {
    thread_local aligned_buffer<float> late;  // constructed before the thread's kept blocks
    late.resize_uninitialized(std::size_t{1} << 18);
    aligned_buffer<float> w;
    w.resize_uninitialized(std::size_t{1} << 18);
  });
  t.join();
}

}  // namespace test_hardening_threads_cpp
