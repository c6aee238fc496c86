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
#include <sys/stat.h>

#include <climits>
#include <cstdlib>
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

}  // namespace lowbit
