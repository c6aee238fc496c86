#pragma once
// The checks every program that reads files and writes others makes before it starts work,
// so that no input is ever overwritten and no output is found unwritable after another one
// was already committed:
//
//   lowbit::check_outputs({out, json_out}, {model files..., config.json, calib file});
//   lowbit::write_file_atomically(json_out, text);
//
// - every output must be absent or a regular file (a symlink to a regular file is followed:
//   its target is replaced atomically, the link stays); directories, device nodes, FIFOs,
//   sockets and dangling symlinks are refused (io/detail/atomic_file.hpp enforces the same
//   rule again when the file is written);
// - no output may be any input, compared by device and inode after resolving symlinks (so
//   hard links, symlinks and "./x" vs "x" are all caught), nor another output;
// - every output's directory must accept a new file: a temporary is created there and
//   discarded, so an unwritable --json path fails before the checkpoint is replaced.
// "-" (stdout) and empty entries are skipped; inputs that do not exist are ignored.
//
// Directories (an exporter's output directory, a program's scratch space) follow the same
// rule as files, through the classes at the end of this file: atomic_output_directory builds
// a new directory under a hidden temporary name beside it and renames it into place when
// complete, temporary_directory is scratch space removed when done, and process_temporaries
// removes every temporary this process has beside an output, from a signal handler too. All
// temporaries are named ".<name>.lowbit-tmp-<pid>-<n>" beside the output (its filesystem, so
// the rename is atomic); one left by a killed process is removed by the next write of the same
// name.
#include <dirent.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <climits>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <string>
#include <string_view>
#include <vector>

#include "lowbit/error.hpp"
#include "lowbit/io/detail/atomic_file.hpp"
#include "lowbit/io/detail/file_checks.hpp"

namespace lowbit {

// Fails unless `path` is an existing regular file (after following symlinks); `what` names
// the argument in the message ("--calib", "--tokens"). Call it before opening an input: a
// FIFO would block the open, a directory gives unhelpful errors later.
inline void check_input_file(const std::string& path, const std::string& what) {
  detail::require_regular_input(path, what);
}

// Writes `bytes` to `path` atomically: a temporary in the same directory, then renamed over
// the name, so a reader sees the old file or the new one, never a part (the rules of
// check_outputs apply: only a regular file or nothing is replaced).
inline void write_file_atomically(const std::string& path, std::string_view bytes) {
  detail::atomic_output_file f(path);
  f.write_at(bytes.data(), bytes.size(), 0);
  f.commit();
}

inline void check_outputs(const std::vector<std::string>& outputs, const std::vector<std::string>& inputs) {
  struct identity {
    bool exists = false;
    dev_t dev = 0;
    ino_t ino = 0;
    std::string where;  // canonical directory + name when the file does not exist yet
    bool same(const identity& o) const {
      return exists == o.exists && (exists ? dev == o.dev && ino == o.ino : where == o.where);
    }
  };
  const auto identify = [](const std::string& path) {
    identity id;
    struct stat st {};
    if (::stat(path.c_str(), &st) == 0) {
      id.exists = true;
      id.dev = st.st_dev;
      id.ino = st.st_ino;
      return id;
    }
    char buf[PATH_MAX];
    const std::string dir = detail::parent_directory(path);
    id.where = (::realpath(dir.c_str(), buf) != nullptr ? std::string(buf) : dir) + "/" + detail::base_name(path);
    return id;
  };
  std::vector<std::pair<std::string, identity>> seen;
  for (const std::string& out : outputs) {
    if (out.empty() || out == "-") continue;
    const std::string target = detail::resolve_output_target(out);  // refuses non-regular files
    const identity id = identify(target);
    for (const std::string& in : inputs) {
      if (in.empty() || in == "-") continue;
      const identity iid = identify(in);
      if (id.exists && iid.exists && id.same(iid))
        detail::fail("output '" + out + "' is the input file '" + in + "'; refusing to overwrite an input");
    }
    for (const auto& [other, oid] : seen)
      if (id.same(oid)) detail::fail("outputs '" + other + "' and '" + out + "' are the same file");
    seen.emplace_back(out, id);
    detail::atomic_output_file probe(out);  // the directory accepts a new file (then discarded)
    probe.abandon();
  }
}

namespace detail {

inline std::string without_trailing_slashes(std::string p) {
  while (p.size() > 1 && p.back() == '/') p.pop_back();
  return p;
}

// Creates a new hidden directory ".<name>.lowbit-tmp-<pid>-<n>" beside `final_path` (after
// removing such leftovers of dead processes) and returns its path.
inline std::string make_temporary_directory(const std::string& final_path) {
  static std::atomic<unsigned> counter{0};
  remove_stale_temporaries(final_path);
  const std::string stem = parent_directory(final_path) + "/" + temp_prefix(final_path) + std::to_string(::getpid()) + "-";
  for (int attempt = 0; attempt < 100; ++attempt) {
    std::string name = stem + std::to_string(counter++);
    if (::mkdir(name.c_str(), 0755) == 0) return name;
    if (errno != EEXIST) break;
  }
  fail("cannot create a temporary directory beside '" + final_path + "': " + std::strerror(errno));
}

}  // namespace detail

// A directory that appears under its final name only when complete: the caller writes into
// path(), a new hidden directory beside final_path(), and commit() renames it into place
// (rename(2) also replaces an empty directory there), so no reader and no interrupted run ever
// sees a half-written directory under the final name. Destroyed or abandoned before commit(),
// the temporary and everything in it are removed; a process killed meanwhile leaves it hidden,
// and the next atomic write of the same name removes it.
//
// A final directory that already holds files cannot be replaced atomically (and is not
// removed): then path() is the directory itself, each file is written into it atomically
// (atomic writers), and an error leaves the files already committed. staged() tells which.
// Anything else at the final name (a file, a device, a dangling link) is refused.
class atomic_output_directory {
 public:
  explicit atomic_output_directory(const std::string& final_dir) : final_(detail::without_trailing_slashes(final_dir)) {
    if (final_.empty()) detail::fail("output directory path is empty");
    struct stat st {};
    if (::stat(final_.c_str(), &st) == 0) {
      if (!S_ISDIR(st.st_mode)) detail::fail("the output '" + final_ + "' is not a directory");
      struct stat lst {};
      if (::lstat(final_.c_str(), &lst) != 0 || S_ISLNK(lst.st_mode) || !empty_directory(final_)) {
        path_ = final_;  // written in place, file by file
        return;
      }
    } else if (errno != ENOENT) {
      detail::fail("output directory '" + final_ + "': " + std::strerror(errno));
    } else if (::lstat(final_.c_str(), &st) == 0) {
      detail::fail("the output '" + final_ + "' is a symbolic link to a missing file; refusing to write through it");
    }
    path_ = detail::make_temporary_directory(final_);
    staged_ = true;
  }
  atomic_output_directory(const atomic_output_directory&) = delete;
  atomic_output_directory& operator=(const atomic_output_directory&) = delete;
  ~atomic_output_directory() { abandon(); }

  // Where to write: the temporary (staged()) or the final directory itself.
  const std::string& path() const noexcept { return path_; }
  const std::string& final_path() const noexcept { return final_; }
  bool staged() const noexcept { return staged_; }

  // Makes the directory visible under its final name (the files in it must be complete and
  // synced, as the atomic writers leave them).
  void commit() {
    if (!staged_) return;
    const int fd = ::open(path_.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd >= 0) {  // persist the names in the directory; some filesystems refuse, harmlessly
      ::fsync(fd);
      ::close(fd);
    }
    if (::rename(path_.c_str(), final_.c_str()) != 0)
      detail::fail("cannot rename the temporary directory '" + path_ + "' to '" + final_ + "': " + std::strerror(errno) +
                   (errno == ENOTEMPTY || errno == EEXIST ? " (something was written there meanwhile)" : ""));
    staged_ = false;
    path_ = final_;
    const int dfd = ::open(detail::parent_directory(final_).c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (dfd >= 0) {
      ::fsync(dfd);
      ::close(dfd);
    }
  }

  // Removes the temporary and what it holds; nothing appears under the final name.
  void abandon() noexcept {
    if (staged_) detail::remove_tree(path_.c_str(), 8);
    staged_ = false;
  }

 private:
  static bool empty_directory(const std::string& dir) {
    DIR* d = ::opendir(dir.c_str());
    if (d == nullptr) return false;
    bool empty = true;
    while (const dirent* e = ::readdir(d))
      if (std::strcmp(e->d_name, ".") != 0 && std::strcmp(e->d_name, "..") != 0) empty = false;
    ::closedir(d);
    return empty;
  }

  std::string final_, path_;
  bool staged_ = false;
};

// Scratch space beside `near` (hidden, on its filesystem, named as the atomic writers name
// their temporaries), removed with what it holds when the object is destroyed. For
// intermediate results a program does not keep, e.g. the lowbit checkpoint that
// `lowbit quantize --format` exports from.
class temporary_directory {
 public:
  explicit temporary_directory(const std::string& near)
      : path_(detail::make_temporary_directory(detail::without_trailing_slashes(near))) {}
  temporary_directory(const temporary_directory&) = delete;
  temporary_directory& operator=(const temporary_directory&) = delete;
  ~temporary_directory() { detail::remove_tree(path_.c_str(), 8); }
  const std::string& path() const noexcept { return path_; }

 private:
  std::string path_;
};

// Every temporary this process has beside `final_path` (".<name>.lowbit-tmp-<pid>-*": atomic
// files being replaced, atomic output directories, temporary directories), removable from a
// signal handler: remove() is async-signal-safe (the names are prepared here, in fixed
// buffers). A library installs no signal handler; a program that wants SIGINT/SIGTERM to leave
// nothing behind calls remove() from its own (`lowbit quantize --format` does). Unnamed
// temporaries (O_TMPFILE) die with the process anyway.
class process_temporaries {
 public:
  explicit process_temporaries(const std::string& final_path) {
    const std::string f = detail::without_trailing_slashes(final_path);
    const std::string dir = detail::parent_directory(f);
    const std::string prefix = detail::temp_prefix(f) + std::to_string(::getpid()) + "-";
    if (dir.size() >= sizeof dir_ || prefix.size() >= sizeof prefix_) detail::fail("output path '" + final_path + "' is too long");
    std::memcpy(dir_, dir.c_str(), dir.size() + 1);
    std::memcpy(prefix_, prefix.c_str(), prefix.size() + 1);
  }
  void remove() const noexcept {
    const int fd = ::open(dir_, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0) return;
    const std::size_t lp = std::strlen(prefix_), ld = std::strlen(dir_);
    char names[16][NAME_MAX + 1];  // matched first, removed after: removal changes the listing
    int found = 0;
    const auto match = [&](const char* name) {
      if (found < 16 && std::strncmp(name, prefix_, lp) == 0 && std::strlen(name) <= NAME_MAX)
        std::memcpy(names[found++], name, std::strlen(name) + 1);
    };
    detail::for_each_entry(fd, match);
    ::close(fd);
    for (int i = 0; i < found; ++i) {
      char full[PATH_MAX];
      const std::size_t ln = std::strlen(names[i]);
      if (ld + 1 + ln >= sizeof full) continue;
      std::memcpy(full, dir_, ld);
      full[ld] = '/';
      std::memcpy(full + ld + 1, names[i], ln + 1);
      detail::remove_tree(full, 8);
    }
  }

 private:
  char dir_[PATH_MAX] = {};
  char prefix_[NAME_MAX + 1] = {};
};

}  // namespace lowbit
