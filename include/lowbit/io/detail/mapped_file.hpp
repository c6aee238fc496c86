#pragma once
// A read-only memory map of a whole file (POSIX), owned RAII-style. Reading a checkpoint
// through the map costs no copy, and release() hands pages back to the kernel once a
// tensor has been consumed, so streaming over a large file keeps resident memory small.
#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <string>
#include <utility>

#include "lowbit/error.hpp"
#include "lowbit/io/detail/file_checks.hpp"

namespace lowbit::detail {

class mapped_file {
 public:
  mapped_file() = default;
  explicit mapped_file(const std::string& path) : path_(path) {
    // The kind is checked before open(): opening a FIFO would block until a writer appears.
    // O_NONBLOCK covers a FIFO swapped in between; it does not affect regular-file reads.
    require_regular_input(path, "input");
    const int fd = ::open(path.c_str(), O_RDONLY | O_NONBLOCK | O_CLOEXEC);
    if (fd < 0) fail("cannot open '" + path + "': " + std::strerror(errno));
    try {
      map_fd(fd);
    } catch (...) {
      ::close(fd);
      throw;
    }
    ::close(fd);  // the mapping keeps the file alive
  }
  // Maps the file open as `fd` (kept open by the caller; a file still being written, to be
  // read back before it is committed). `name` is what messages call it.
  mapped_file(int fd, std::string name) : path_(std::move(name)) { map_fd(fd); }
  mapped_file(const mapped_file&) = delete;
  mapped_file& operator=(const mapped_file&) = delete;
  mapped_file(mapped_file&& o) noexcept { swap(o); }
  mapped_file& operator=(mapped_file&& o) noexcept {
    if (this != &o) {
      unmap();
      swap(o);
    }
    return *this;
  }
  ~mapped_file() { unmap(); }

  const std::byte* data() const noexcept { return data_; }
  std::size_t size() const noexcept { return size_; }
  const std::string& path() const noexcept { return path_; }

  // Drops the resident pages that lie wholly inside [p, p + n) from this process (the
  // page cache keeps them; a later read faults them back in). A no-op outside the map.
  void release(const std::byte* p, std::size_t n) const noexcept {
    if (data_ == nullptr || p < data_ || n == 0 || p + n > data_ + size_) return;
    const auto page = static_cast<std::uintptr_t>(::sysconf(_SC_PAGESIZE));
    auto begin = reinterpret_cast<std::uintptr_t>(p);
    auto end = begin + n;
    begin = (begin + page - 1) / page * page;
    end = end / page * page;
    if (end > begin) ::madvise(reinterpret_cast<void*>(begin), end - begin, MADV_DONTNEED);
  }

 private:
  void map_fd(int fd) {
    struct stat st {};
    if (::fstat(fd, &st) != 0) fail("cannot stat '" + path_ + "': " + std::strerror(errno));
    if (!S_ISREG(st.st_mode)) fail("'" + path_ + "' is " + file_kind_name(st.st_mode) + ", not a regular file");
    size_ = static_cast<std::size_t>(st.st_size);
    if (size_ > 0) {
      void* p = ::mmap(nullptr, size_, PROT_READ, MAP_PRIVATE, fd, 0);
      if (p == MAP_FAILED) {
        const int e = errno;
        size_ = 0;
        fail("cannot memory-map '" + path_ + "': " + std::strerror(e));
      }
      data_ = static_cast<const std::byte*>(p);
      ::madvise(p, size_, MADV_SEQUENTIAL);  // a hint only; failure is harmless
    }
  }

  void unmap() noexcept {
    if (data_ != nullptr) ::munmap(const_cast<std::byte*>(data_), size_);
    data_ = nullptr;
    size_ = 0;
  }
  void swap(mapped_file& o) noexcept {
    std::swap(data_, o.data_);
    std::swap(size_, o.size_);
    std::swap(path_, o.path_);
  }

  const std::byte* data_ = nullptr;
  std::size_t size_ = 0;
  std::string path_;
};

}  // namespace lowbit::detail
