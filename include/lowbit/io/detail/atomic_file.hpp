#pragma once
// A file that appears under its final name only when complete: data goes to a temporary
// file in the same directory (so rename is atomic), then fsync, rename, fsync of the
// directory. Until commit() nothing exists under the final name; an exception or a
// destructor before commit() removes the temporary file.
//
// What may be replaced: only a regular file, or nothing. A directory, device node, FIFO or
// socket at the final path is refused when the object is made (before any work), and again
// just before the rename. A symbolic link to a regular file is FOLLOWED: its target is
// replaced atomically and the link stays; a dangling link is refused.
//
// Temporaries: on Linux the data goes to an unnamed O_TMPFILE inode. When nothing exists
// under the final name, commit() links that inode there directly (linkat), so no named
// temporary ever exists. When a file must be replaced, the inode first gets a hidden name
// ".<name>.lowbit-tmp-<pid>-<n>" and is renamed over it; a process killed between those two
// steps leaves that hidden file, and so does a kill during a write where O_TMPFILE is
// unavailable (mkstemp, ".<name>.lowbit-tmp-<pid>-XXXXXX"). The next atomic write of the
// same name removes such leftovers whose process <pid> no longer exists.
#include <dirent.h>
#include <fcntl.h>
#include <signal.h>
#include <sys/stat.h>
#include <unistd.h>
#ifdef __linux__
#include <sys/syscall.h>
#endif

#include <atomic>
#include <cerrno>
#include <climits>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

#include "lowbit/error.hpp"
#include "lowbit/io/detail/file_checks.hpp"

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

// The file an atomic write of `path` replaces: `path` itself when it is absent or a regular
// file, the target of a symlink to a regular file; anything else fails, naming what is there.
inline std::string resolve_output_target(const std::string& path) {
  if (path.empty() || path.back() == '/') fail("output path '" + path + "' names no file");
  struct stat st {};
  if (::lstat(path.c_str(), &st) != 0) {
    if (errno == ENOENT) return path;
    fail("output '" + path + "': " + std::strerror(errno));
  }
  if (S_ISREG(st.st_mode)) return path;
  if (!S_ISLNK(st.st_mode))
    fail("output '" + path + "' is " + file_kind_name(st.st_mode) + "; only a regular file may be replaced");
  struct stat target {};
  if (::stat(path.c_str(), &target) != 0)
    fail("output '" + path + "' is a symbolic link to a missing file (" + std::strerror(errno) + "); refusing to write through it");
  if (!S_ISREG(target.st_mode))
    fail("output '" + path + "' is a symbolic link to " + file_kind_name(target.st_mode) +
         "; only a regular file may be replaced");
  char buf[PATH_MAX];
  if (::realpath(path.c_str(), buf) == nullptr) fail("output '" + path + "': cannot resolve the symbolic link: " + std::strerror(errno));
  return buf;
}

// The hidden temporary names of `final_path` start with this.
inline std::string temp_prefix(const std::string& final_path) { return "." + base_name(final_path) + ".lowbit-tmp-"; }

// Calls f(name) for each entry of the open directory `fd` ("." and ".." included).
// Async-signal-safe on Linux: the kernel's records are read raw into a fixed buffer, since
// readdir may allocate.
template <class F>
void for_each_entry(int fd, F&& f) noexcept {
#ifdef __linux__
  struct linux_dirent64 {  // the kernel's record (struct dirent64 needs _LARGEFILE64_SOURCE)
    std::uint64_t d_ino;
    std::int64_t d_off;
    unsigned short d_reclen;
    unsigned char d_type;
    char d_name[1];
  };
  alignas(8) char buf[4096];
  for (long n; (n = ::syscall(SYS_getdents64, fd, buf, sizeof buf)) > 0;)
    for (long at = 0; at < n;) {
      const auto* e = reinterpret_cast<const linux_dirent64*>(buf + at);
      at += e->d_reclen;
      f(static_cast<const char*>(e->d_name));
    }
#else  // readdir: not async-signal-safe
  if (DIR* d = ::fdopendir(::dup(fd))) {
    while (const dirent* e = ::readdir(d)) f(static_cast<const char*>(e->d_name));
    ::closedir(d);
  }
#endif
}

// Removes `path` and, when it is a directory, what it holds, up to `depth` levels down
// (symbolic links are removed, never followed). Async-signal-safe on Linux, so a program's
// signal handler may call it on its temporaries. Best effort: errors are ignored.
inline void remove_tree(const char* path, int depth) noexcept {
  if (::unlink(path) == 0 || errno == ENOENT) return;
  const int fd = ::open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC | O_NOFOLLOW);
  if (fd < 0) return;
  const std::size_t lp = std::strlen(path);
  for_each_entry(fd, [&](const char* name) {
    if (name[0] == '.' && (name[1] == 0 || (name[1] == '.' && name[2] == 0))) return;
    if (::unlinkat(fd, name, 0) == 0 || depth <= 1) return;
    char sub[PATH_MAX];
    const std::size_t ln = std::strlen(name);
    if (lp + 1 + ln >= sizeof sub) return;
    std::memcpy(sub, path, lp);
    sub[lp] = '/';
    std::memcpy(sub + lp + 1, name, ln + 1);
    remove_tree(sub, depth - 1);
  });
  ::close(fd);
  ::rmdir(path);
}

// Removes ".<name>.lowbit-tmp-<pid>-*" files and directories left by processes that no longer
// exist (killed between naming the temporary and the rename, or while an atomic directory was
// being filled). Best effort: errors are ignored, one whose pid is alive (or reused) is kept.
inline void remove_stale_temporaries(const std::string& final_path) {
  const std::string dir = parent_directory(final_path), prefix = temp_prefix(final_path);
  DIR* d = ::opendir(dir.c_str());
  if (d == nullptr) return;
  std::vector<std::string> stale;
  while (const dirent* e = ::readdir(d)) {
    const std::string name = e->d_name;
    if (name.compare(0, prefix.size(), prefix) != 0) continue;
    char* end = nullptr;
    const long pid = std::strtol(name.c_str() + prefix.size(), &end, 10);
    if (pid <= 0 || *end != '-') continue;
    if (pid == static_cast<long>(::getpid()) || ::kill(static_cast<pid_t>(pid), 0) == 0 || errno != ESRCH) continue;
    stale.push_back(dir + "/" + name);
  }
  ::closedir(d);
  for (const std::string& f : stale) {
    struct stat st {};
    if (::lstat(f.c_str(), &st) != 0 || st.st_uid != ::geteuid()) continue;
    if (S_ISREG(st.st_mode)) ::unlink(f.c_str());
    else if (S_ISDIR(st.st_mode)) remove_tree(f.c_str(), 8);
  }
}

class atomic_output_file {
 public:
  // `final_path` is resolved by resolve_output_target() (symlinks followed, non-regular
  // files refused); final_path() is the file that commit() replaces.
  explicit atomic_output_file(const std::string& final_path)
      : requested_path_(final_path), final_path_(resolve_output_target(final_path)) {
    remove_stale_temporaries(final_path_);
    const std::string dir = parent_directory(final_path_);
#ifdef O_TMPFILE
    if (::access("/proc/self/fd", X_OK) == 0) fd_ = ::open(dir.c_str(), O_TMPFILE | O_RDWR | O_CLOEXEC, 0644);
#endif
    if (fd_ < 0) {
      std::string templ = dir + "/" + temp_prefix(final_path_) + std::to_string(::getpid()) + "-XXXXXX";
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
  // The path as given (a symlink's own name when one was followed).
  const std::string& requested_path() const noexcept { return requested_path_; }
  // Changes the name commit() gives the file, for outputs whose final name is only known at
  // the end (shard k "of n"). It must be on the temporary's filesystem (commit() links or
  // renames it there); the new name gets the constructor's checks (symlinks followed,
  // non-regular files refused).
  void set_final_path(std::string path) {
    if (fd_ < 0) fail("'" + final_path_ + "' was already committed or abandoned");
    if (path.empty() || path.back() == '/') fail("output path '" + path + "' names no file");
    std::string resolved = resolve_output_target(path);
    requested_path_ = std::move(path);
    final_path_ = std::move(resolved);
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
    // Something may have appeared at the final name since the constructor's check.
    if (resolve_output_target(final_path_) != final_path_)
      fail("output '" + final_path_ + "' became a symbolic link while it was written; not replaced");
    if (temp_path_.empty() && link_unnamed_at_final()) {
      ::close(fd_);
      fd_ = -1;
      sync_directory();
      return;
    }
    if (temp_path_.empty()) link_unnamed();
    if (::rename(temp_path_.c_str(), final_path_.c_str()) != 0)
      fail("cannot rename the temporary file to '" + final_path_ + "': " + std::strerror(errno));
    temp_path_.clear();
    ::close(fd_);
    fd_ = -1;
    sync_directory();
  }

  // Discards the temporary file; nothing appears under the final name.
  void abandon() noexcept {
    if (fd_ >= 0) ::close(fd_);
    fd_ = -1;
    if (!temp_path_.empty()) ::unlink(temp_path_.c_str());
    temp_path_.clear();
  }

 private:
  void sync_directory() const noexcept {
    const int dfd = ::open(parent_directory(final_path_).c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (dfd >= 0) {  // persist the link / rename; some filesystems refuse directory fsync, harmlessly
      ::fsync(dfd);
      ::close(dfd);
    }
  }

  // When nothing exists under the final name, links the O_TMPFILE inode there: the file
  // appears complete in one step and no named temporary ever exists. False when a file
  // is there (it is then replaced through a named temporary and rename).
  bool link_unnamed_at_final() {
    const std::string proc = "/proc/self/fd/" + std::to_string(fd_);
    if (::linkat(AT_FDCWD, proc.c_str(), AT_FDCWD, final_path_.c_str(), AT_SYMLINK_FOLLOW) == 0) return true;
    if (errno == EEXIST) return false;
    fail("cannot link the new file at '" + final_path_ + "': " + std::strerror(errno));
  }

  // Gives the O_TMPFILE inode a (hidden, unique) name so that rename() can move it over
  // the final name atomically; linkat alone cannot replace an existing file.
  void link_unnamed() {
    static std::atomic<unsigned> counter{0};
    const std::string proc = "/proc/self/fd/" + std::to_string(fd_);
    for (int attempt = 0; attempt < 100; ++attempt) {
      std::string name = parent_directory(final_path_) + "/" + temp_prefix(final_path_) +
                         std::to_string(::getpid()) + "-" + std::to_string(counter++);
      if (::linkat(AT_FDCWD, proc.c_str(), AT_FDCWD, name.c_str(), AT_SYMLINK_FOLLOW) == 0) {
        temp_path_ = std::move(name);
        return;
      }
      if (errno != EEXIST) break;
    }
    fail("cannot give the temporary file of '" + final_path_ + "' a name: " + std::strerror(errno));
  }

  std::string requested_path_;
  std::string final_path_;
  std::string temp_path_;
  int fd_ = -1;
};

}  // namespace lowbit::detail
