#pragma once
// Helpers for the io tests: a scratch directory that cleans up after itself, hand-made
// safetensors bytes, and directory listings.
#include <dirent.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdint>
#include <cstdlib>
#include <fstream>
#include <string>
#include <vector>

#include "lowbit/error.hpp"

namespace lowbit_test {

// The message of the lowbit::error that `f` throws, or "(no error)": for checks that an
// error names the right file, tensor or rule.
template <class F>
std::string error_of(F&& f) {
  try {
    f();
  } catch (const lowbit::error& e) {
    return e.what();
  }
  return "(no error)";
}

struct scratch_dir {
  std::string path;
  scratch_dir() {
    const char* base = std::getenv("TMPDIR");
    std::string templ = std::string(base && *base ? base : "/tmp") + "/lowbit-io-XXXXXX";
    std::vector<char> buf(templ.begin(), templ.end());
    buf.push_back('\0');
    if (::mkdtemp(buf.data()) == nullptr) std::abort();
    path = buf.data();
  }
  ~scratch_dir() { (void)std::system(("rm -rf '" + path + "'").c_str()); }
  std::string file(const std::string& name) const { return path + "/" + name; }
  // Names in the directory, dot-files included (temporary files are hidden ones).
  std::vector<std::string> entries() const {
    std::vector<std::string> out;
    if (DIR* d = ::opendir(path.c_str())) {
      while (const dirent* e = ::readdir(d)) {
        const std::string n = e->d_name;
        if (n != "." && n != "..") out.push_back(n);
      }
      ::closedir(d);
    }
    return out;
  }
};

// A pid that certainly belongs to no process: a child that has exited and been reaped (for
// the stale-temporary rules, which remove what dead processes left).
inline pid_t dead_pid() {
  const pid_t p = ::fork();
  if (p == 0) ::_exit(0);
  int status = 0;
  ::waitpid(p, &status, 0);
  return p;
}

inline bool file_exists(const std::string& p) {
  struct stat st {};
  return ::stat(p.c_str(), &st) == 0;
}

// 8-byte little-endian length + header text (as given, no padding) + data bytes.
inline std::vector<std::uint8_t> safetensors_bytes(const std::string& header, const std::vector<std::uint8_t>& data = {},
                                                   std::uint64_t length_override = UINT64_MAX) {
  std::vector<std::uint8_t> out;
  std::uint64_t n = length_override == UINT64_MAX ? header.size() : length_override;
  for (int i = 0; i < 8; ++i, n >>= 8) out.push_back(static_cast<std::uint8_t>(n & 0xFF));
  out.insert(out.end(), header.begin(), header.end());
  out.insert(out.end(), data.begin(), data.end());
  return out;
}

inline void write_bytes(const std::string& path, const std::vector<std::uint8_t>& b) {
  std::ofstream(path, std::ios::binary).write(reinterpret_cast<const char*>(b.data()), static_cast<std::streamsize>(b.size()));
}

}  // namespace lowbit_test
