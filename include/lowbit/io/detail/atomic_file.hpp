#pragma once
// A file that appears under its final name only when complete: data goes to a temporary
// file in the same directory (so rename is atomic), then fsync, rename, fsync of the
// directory. Until commit() nothing exists under the final name; an exception or a
// destructor before commit() removes the temporary file. On Linux the temporary file is
// an unnamed O_TMPFILE inode, so even a process killed with SIGKILL leaves nothing behind;
// where that is unavailable a hidden ".<name>.lowbit-tmp-XXXXXX" file is used instead.
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

#include "lowbit/error.hpp"

namespace lowbit::detail {

inline std::string parent_directory(const std::string& path) {
  const auto slash = path.find_last_of('/');
  if (slash == std::string::npos) return ".";
  if (slash == 0) return "/";
  return path.substr(0, slash);
}
inline std::string base_name(const std::string& path) {
  const auto slash = path.find_last_of('/');
  return slash == std::string::npos ? path : path.substr(slash + 1);
}

class atomic_output_file {
 public:
  explicit atomic_output_file(std::string final_path) : final_path_(std::move(final_path)) {
    if (final_path_.empty() || final_path_.back() == '/') fail("output path '" + final_path_ + "' names no file");
    const std::string dir = parent_directory(final_path_);
#ifdef O_TMPFILE
    if (::access("/proc/self/fd", X_OK) == 0) fd_ = ::open(dir.c_str(), O_TMPFILE | O_RDWR | O_CLOEXEC, 0644);
#endif
    if (fd_ < 0) {
      std::string templ = dir + "/." + base_name(final_path_) + ".lowbit-tmp-XXXXXX";
      std::vector<char> buf(templ.begin(), templ.end());
      buf.push_back('\0');
      fd_ = ::mkstemp(buf.data());
      if (fd_ < 0) fail("cannot create a temporary file in '" + dir + "' for '" + final_path_ + "': " + std::strerror(errno));
      temp_path_ = buf.data();
      ::fchmod(fd_, 0644);
    }
  }
  atomic_output_file(const atomic_output_file&) = delete;
  atomic_output_file& operator=(const atomic_output_file&) = delete;
  ~atomic_output_file() { abandon(); }

  const std::string& final_path() const noexcept { return final_path_; }
  // Changes the name commit() gives the file (same filesystem: a rename moves it there), for
  // outputs whose final name is only known at the end (shard k "of n").
  void set_final_path(std::string path) {
    if (fd_ < 0) fail("'" + final_path_ + "' was already committed or abandoned");
    if (path.empty() || path.back() == '/') fail("output path '" + path + "' names no file");
    final_path_ = std::move(path);
  }
  // The temporary file's name, empty when it is unnamed (O_TMPFILE).
  const std::string& temp_path() const noexcept { return temp_path_; }
  int fd() const noexcept { return fd_; }

  void write_at(const void* data, std::size_t n, std::uint64_t offset) {
    const char* p = static_cast<const char*>(data);
    while (n > 0) {
      const ssize_t w = ::pwrite(fd_, p, n, static_cast<off_t>(offset));
      if (w < 0) {
        if (errno == EINTR) continue;
        fail("writing '" + final_path_ + "' failed: " + std::strerror(errno));
      }
      p += w;
      n -= static_cast<std::size_t>(w);
      offset += static_cast<std::uint64_t>(w);
    }
  }
  // Reads back what was written (used to relocate data when a header outgrows its room).
  void read_at(void* data, std::size_t n, std::uint64_t offset) const {
    char* p = static_cast<char*>(data);
    while (n > 0) {
      const ssize_t r = ::pread(fd_, p, n, static_cast<off_t>(offset));
      if (r < 0 && errno == EINTR) continue;
      if (r <= 0) fail("reading back the temporary file of '" + final_path_ + "' failed");
      p += r;
      n -= static_cast<std::size_t>(r);
      offset += static_cast<std::uint64_t>(r);
    }
  }

  // Makes the file durable and visible under its final name (replacing an older file).
  void commit() {
    if (fd_ < 0) fail("'" + final_path_ + "' was already committed or abandoned");
    if (::fsync(fd_) != 0) fail("fsync of '" + final_path_ + "' failed: " + std::strerror(errno));
    if (temp_path_.empty()) link_unnamed();
    if (::rename(temp_path_.c_str(), final_path_.c_str()) != 0)
      fail("cannot rename the temporary file to '" + final_path_ + "': " + std::strerror(errno));
    temp_path_.clear();
    ::close(fd_);
    fd_ = -1;
    const int dfd = ::open(parent_directory(final_path_).c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (dfd >= 0) {  // persist the rename; some filesystems refuse directory fsync, harmlessly
      ::fsync(dfd);
      ::close(dfd);
    }
  }

  // Discards the temporary file; nothing appears under the final name.
  void abandon() noexcept {
    if (fd_ >= 0) ::close(fd_);
    fd_ = -1;
    if (!temp_path_.empty()) ::unlink(temp_path_.c_str());
    temp_path_.clear();
  }

 private:
  // Gives the O_TMPFILE inode a (hidden, unique) name so that rename() can move it over
  // the final name atomically; linkat alone cannot replace an existing file.
  void link_unnamed() {
    static std::atomic<unsigned> counter{0};
    const std::string proc = "/proc/self/fd/" + std::to_string(fd_);
    for (int attempt = 0; attempt < 100; ++attempt) {
      std::string name = parent_directory(final_path_) + "/." + base_name(final_path_) + ".lowbit-tmp-" +
                         std::to_string(::getpid()) + "-" + std::to_string(counter++);
      if (::linkat(AT_FDCWD, proc.c_str(), AT_FDCWD, name.c_str(), AT_SYMLINK_FOLLOW) == 0) {
        temp_path_ = std::move(name);
        return;
      }
      if (errno != EEXIST) break;
    }
    fail("cannot give the temporary file of '" + final_path_ + "' a name: " + std::strerror(errno));
  }

  std::string final_path_;
  std::string temp_path_;
  int fd_ = -1;
};

}  // namespace lowbit::detail
