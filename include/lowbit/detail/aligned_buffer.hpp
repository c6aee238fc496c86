#pragma once
// aligned_buffer<T>: a heap array of trivially copyable T on a 64-byte boundary (one cache
// line, one AVX-512 register), zero-initialised (or, on request, not initialised at all),
// movable, not copyable by accident (clone()). Packed weights and kernel workspaces use it so
// SIMD loads never split cache lines.
#include <cstddef>
#include <cstdlib>
#include <cstring>
#include <new>
#include <type_traits>
#include <utility>

namespace lowbit::detail {

// Per-call workspaces (aligned_buffer::resize_uninitialized) come and go with every gemm()
// call. glibc serves blocks above its mmap threshold (128 KiB until it adapts) with fresh
// mappings, so every call paid a page fault per 4 KiB it wrote: 7% of a 1B model's 128-token
// prefill on Zen 5 (docs/performance.md, "Session 40"). Each thread keeps the last
// `slots` such blocks it released, each of min_bytes .. max_bytes, for its next ones: what a
// call made, the next call of the same shape finds again.
class recycled_blocks {
 public:
  static constexpr std::size_t min_bytes = std::size_t{64} << 10, max_bytes = std::size_t{64} << 20;
  static constexpr int slots = 2;

  // A kept block of at least `bytes` (the smallest such; its length in `bytes`), or nullptr.
  static void* take(std::size_t& bytes) noexcept {
    if (bytes < min_bytes || bytes > max_bytes || ended()) return nullptr;
    recycled_blocks& r = mine();
    int best = -1;
    for (int i = 0; i < slots; ++i)
      if (r.block_[i] && r.bytes_[i] >= bytes && (best < 0 || r.bytes_[i] < r.bytes_[best])) best = i;
    if (best < 0) return nullptr;
    void* p = std::exchange(r.block_[best], nullptr);
    bytes = std::exchange(r.bytes_[best], 0);
    return p;
  }
  // Keeps `p` (`bytes` long, from std::aligned_alloc) in place of the smallest kept block,
  // freeing whichever is not kept.
  static void put(void* p, std::size_t bytes) noexcept {
    if (p == nullptr) return;
    if (bytes < min_bytes || bytes > max_bytes || ended()) return std::free(p);
    recycled_blocks& r = mine();
    int low = 0;
    for (int i = 1; i < slots; ++i)
      if (r.bytes_[i] < r.bytes_[low]) low = i;
    if (r.block_[low] && r.bytes_[low] >= bytes) return std::free(p);
    std::free(r.block_[low]);
    r.block_[low] = p;
    r.bytes_[low] = bytes;
  }
  ~recycled_blocks() {
    for (void* b : block_) std::free(b);
    ended() = true;
  }

 private:
  static recycled_blocks& mine() noexcept {
    thread_local recycled_blocks r;
    return r;
  }
  // Set once this thread's blocks are gone: a thread-local buffer destroyed after them (at
  // thread exit, in whatever order) frees its own block. A bool needs no destructor, so it
  // can still be read then.
  static bool& ended() noexcept {
    thread_local bool e = false;
    return e;
  }
  void* block_[slots] = {};
  std::size_t bytes_[slots] = {};
};

template <class T>
class aligned_buffer {
  static_assert(std::is_trivially_copyable_v<T>, "aligned_buffer holds plain data only");

 public:
  static constexpr std::size_t alignment = 64;

  aligned_buffer() = default;
  explicit aligned_buffer(std::size_t n) { resize(n); }
  aligned_buffer(aligned_buffer&& o) noexcept
      : data_(std::exchange(o.data_, nullptr)), size_(std::exchange(o.size_, 0)),
        block_bytes_(std::exchange(o.block_bytes_, 0)) {}
  aligned_buffer& operator=(aligned_buffer&& o) noexcept {
    if (this != &o) {
      release();
      data_ = std::exchange(o.data_, nullptr);
      size_ = std::exchange(o.size_, 0);
      block_bytes_ = std::exchange(o.block_bytes_, 0);
    }
    return *this;
  }
  aligned_buffer(const aligned_buffer&) = delete;
  aligned_buffer& operator=(const aligned_buffer&) = delete;
  ~aligned_buffer() { release(); }

  // Discards the contents; the new elements are zero.
  void resize(std::size_t n) {
    release();
    if (n == 0) return;
    data_ = static_cast<T*>(std::aligned_alloc(alignment, bytes_of(n)));
    if (data_ == nullptr) throw std::bad_alloc();
    size_ = n;
    std::memset(static_cast<void*>(data_), 0, bytes_of(n));
  }

  // Discards the contents; the new elements are indeterminate: the owner writes every element
  // before it reads one. For per-call workspaces whose rows are filled on the thread pool: a
  // serial zero fill of them (and its page faults) took a quarter of a 16-thread AMX-BF16
  // call (docs/performance.md, "Where a 16-thread call's time went").
  // Fresh pages from the system are zero, so a missed write would pass unnoticed in most
  // tests: the test binary defines LOWBIT_POISON_UNINITIALIZED, and the new elements are then
  // all-ones bytes (NaN as fp32 or bf16, -1 as an integer).
  // Its block may be one this thread released before (recycled_blocks), and goes back there.
  void resize_uninitialized(std::size_t n) {
    release();
    if (n == 0) return;
    block_bytes_ = bytes_of(n);
    data_ = static_cast<T*>(recycled_blocks::take(block_bytes_));
    if (data_ == nullptr) data_ = static_cast<T*>(std::aligned_alloc(alignment, block_bytes_ = bytes_of(n)));
    if (data_ == nullptr) throw std::bad_alloc();
    size_ = n;
#ifdef LOWBIT_POISON_UNINITIALIZED
    std::memset(static_cast<void*>(data_), 0xFF, bytes_of(n));
#endif
  }

  aligned_buffer clone() const {
    aligned_buffer out(size_);
    if (size_) std::memcpy(static_cast<void*>(out.data_), data_, size_ * sizeof(T));
    return out;
  }

  T* data() noexcept { return data_; }
  const T* data() const noexcept { return data_; }
  std::size_t size() const noexcept { return size_; }
  bool empty() const noexcept { return size_ == 0; }
  T& operator[](std::size_t i) noexcept { return data_[i]; }
  const T& operator[](std::size_t i) const noexcept { return data_[i]; }

 private:
  static std::size_t bytes_of(std::size_t n) noexcept {
    return (n * sizeof(T) + alignment - 1) / alignment * alignment;
  }
  void release() noexcept {
    if (block_bytes_ != 0)
      recycled_blocks::put(data_, block_bytes_);
    else
      std::free(data_);
    block_bytes_ = 0;
    data_ = nullptr;
    size_ = 0;
  }
  T* data_ = nullptr;
  std::size_t size_ = 0;
  // A workspace's block (resize_uninitialized): its whole length, kept for reuse when
  // released (recycled_blocks); 0 for a block that is freed.
  std::size_t block_bytes_ = 0;
};

}  // namespace lowbit::detail
