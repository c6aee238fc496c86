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

template <class T>
class aligned_buffer {
  static_assert(std::is_trivially_copyable_v<T>, "aligned_buffer holds plain data only");

 public:
  static constexpr std::size_t alignment = 64;

  aligned_buffer() = default;
  explicit aligned_buffer(std::size_t n) { resize(n); }
  aligned_buffer(aligned_buffer&& o) noexcept : data_(std::exchange(o.data_, nullptr)), size_(std::exchange(o.size_, 0)) {}
  aligned_buffer& operator=(aligned_buffer&& o) noexcept {
    if (this != &o) {
      release();
      data_ = std::exchange(o.data_, nullptr);
      size_ = std::exchange(o.size_, 0);
    }
    return *this;
  }
  aligned_buffer(const aligned_buffer&) = delete;
  aligned_buffer& operator=(const aligned_buffer&) = delete;
  ~aligned_buffer() { release(); }

  // Discards the contents; the new elements are zero.
  void resize(std::size_t n) {
    resize_uninitialized(n);
    if (data_ != nullptr) std::memset(static_cast<void*>(data_), 0, bytes_of(n));
  }

  // Discards the contents; the new elements are indeterminate: the owner writes every element
  // before it reads one. For per-call workspaces whose rows are filled on the thread pool: a
  // serial zero fill of them (and its page faults) took a quarter of a 16-thread AMX-BF16
  // call (docs/performance.md, "Where a 16-thread call's time went").
  // Fresh pages from the system are zero, so a missed write would pass unnoticed in most
  // tests: the test binary defines LOWBIT_POISON_UNINITIALIZED, and the new elements are then
  // all-ones bytes (NaN as fp32 or bf16, -1 as an integer).
  void resize_uninitialized(std::size_t n) {
    release();
    if (n == 0) return;
    data_ = static_cast<T*>(std::aligned_alloc(alignment, bytes_of(n)));
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
    std::free(data_);
    data_ = nullptr;
    size_ = 0;
  }
  T* data_ = nullptr;
  std::size_t size_ = 0;
};

}  // namespace lowbit::detail
