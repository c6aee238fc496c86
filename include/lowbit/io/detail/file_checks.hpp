#pragma once
// What kind of file a path names, for the checks that keep readers from blocking on a FIFO
// and writers from replacing anything but a regular file (io/paths.hpp, atomic_file.hpp).
#include <sys/stat.h>

#include <cerrno>
#include <cstring>
#include <string>

#include "lowbit/error.hpp"

namespace lowbit::detail {

// "a directory", "a FIFO", ... for messages; "a regular file" for S_ISREG.
inline const char* file_kind_name(mode_t mode) noexcept {
  if (S_ISREG(mode)) return "a regular file";
  if (S_ISDIR(mode)) return "a directory";
  if (S_ISCHR(mode)) return "a character device";
  if (S_ISBLK(mode)) return "a block device";
  if (S_ISFIFO(mode)) return "a FIFO";
  if (S_ISSOCK(mode)) return "a socket";
  if (S_ISLNK(mode)) return "a symbolic link";
  return "not a regular file";
}

// Fails unless `path` names (after following symlinks) an existing regular file. Called
// before open(): opening a FIFO for reading blocks until a writer appears, and reading a
// directory fails in ways that do not say what was wrong (std::bad_alloc from a size of
// 2^63). `what` names the argument in the message ("--calib", "input").
inline void require_regular_input(const std::string& path, const std::string& what) {
  struct stat st {};
  if (::stat(path.c_str(), &st) != 0)
    fail(what + " '" + path + "': cannot open: " + std::strerror(errno));
  if (!S_ISREG(st.st_mode)) fail(what + " '" + path + "' is " + file_kind_name(st.st_mode) + ", expected a regular file");
}

}  // namespace lowbit::detail
