// Directories written atomically (io/paths.hpp): atomic_output_directory builds a new directory
// under a hidden name beside the final one and renames it into place at commit(), removes it
// when abandoned, writes into a directory that already holds files in place, refuses anything
// else; temporary_directory is removed when done; process_temporaries removes this process's
// temporaries beside an output and nobody else's; a leftover of a dead process is cleared by the
// next write of the same name.
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <catch2/catch.hpp>

#include <algorithm>
#include <fstream>
#include <string>
#include <vector>

#include "lowbit/io/paths.hpp"
#include "test_io_support.hpp"

namespace test_io_directory_cpp {

namespace {

std::vector<std::string> directory_sorted(const lowbit_test::scratch_dir& d) {
  std::vector<std::string> v = d.entries();
  std::sort(v.begin(), v.end());
  return v;
}

bool directory_is_dir(const std::string& p) {
  struct stat st {};
  return ::stat(p.c_str(), &st) == 0 && S_ISDIR(st.st_mode);
}

}  // namespace

TEST_CASE("atomic output directory: appears whole at commit, or not at all", "[io]") {
  lowbit_test::scratch_dir d;
  const std::string out = d.file("out");
  {
    lowbit::atomic_output_directory dir(out + "/");  // a trailing slash names the same directory
    REQUIRE(dir.staged());
    CHECK(dir.final_path() == out);
    CHECK(dir.path() != out);
    CHECK(lowbit::detail::base_name(dir.path()).rfind(".out.lowbit-tmp-", 0) == 0);  // hidden, beside OUT
    lowbit::write_file_atomically(dir.path() + "/a.txt", "a\n");
    CHECK_FALSE(directory_is_dir(out));  // nothing under the final name before commit
    dir.commit();
    CHECK(dir.path() == out);
  }
  CHECK(directory_sorted(d) == std::vector<std::string>{"out"});
  CHECK(lowbit_test::file_exists(out + "/a.txt"));

  // Abandoned (an exception, or destroyed before commit): no OUT, no temporary.
  const std::string out2 = d.file("out2");
  {
    lowbit::atomic_output_directory dir(out2);
    lowbit::write_file_atomically(dir.path() + "/a.txt", "a\n");
    REQUIRE(::mkdir((dir.path() + "/sub").c_str(), 0755) == 0);
    lowbit::write_file_atomically(dir.path() + "/sub/b.txt", "b\n");
  }
  CHECK(directory_sorted(d) == std::vector<std::string>{"out"});

  // An empty directory is replaced by the rename; one with files is written in place.
  REQUIRE(::mkdir(out2.c_str(), 0755) == 0);
  {
    lowbit::atomic_output_directory dir(out2);
    CHECK(dir.staged());
    lowbit::write_file_atomically(dir.path() + "/c.txt", "c\n");
    dir.commit();
  }
  CHECK(lowbit_test::file_exists(out2 + "/c.txt"));
  {
    lowbit::atomic_output_directory dir(out);
    CHECK_FALSE(dir.staged());
    CHECK(dir.path() == out);
    lowbit::write_file_atomically(dir.path() + "/d.txt", "d\n");
    dir.commit();
  }
  CHECK(lowbit_test::file_exists(out + "/a.txt"));  // kept
  CHECK(lowbit_test::file_exists(out + "/d.txt"));
  CHECK(directory_sorted(d) == std::vector<std::string>{"out", "out2"});

  // Anything but a directory (or nothing) is refused before any work.
  lowbit::write_file_atomically(d.file("file"), "x\n");
  CHECK_THROWS_WITH(lowbit::atomic_output_directory(d.file("file")), Catch::Contains("is not a directory"));
  REQUIRE(::symlink("missing", d.file("dangling").c_str()) == 0);
  CHECK_THROWS_WITH(lowbit::atomic_output_directory(d.file("dangling")), Catch::Contains("symbolic link to a missing file"));
}

TEST_CASE("temporaries: scratch directories go when done, a dead process's on the next write", "[io]") {
  lowbit_test::scratch_dir d;
  const std::string out = d.file("model.gguf");
  {
    lowbit::temporary_directory t(out);
    CHECK(lowbit::detail::parent_directory(t.path()) == d.path);
    REQUIRE(::mkdir((t.path() + "/checkpoint").c_str(), 0755) == 0);
    lowbit::write_file_atomically(t.path() + "/checkpoint/x", "x\n");
  }
  CHECK(d.entries().empty());

  // A killed process's leftovers (a directory tree and a file) go with the next temporary of
  // that name; another name's and a live process's stay.
  const std::string dead = std::to_string(lowbit_test::dead_pid());
  const std::string left_dir = d.file(".model.gguf.lowbit-tmp-" + dead + "-0"), left_file = d.file(".model.gguf.lowbit-tmp-" + dead + "-1");
  const std::string live = d.file(".model.gguf.lowbit-tmp-1-0"), other = d.file(".other.lowbit-tmp-" + dead + "-0");
  for (const std::string& p : {left_dir, live, other}) REQUIRE(::mkdir(p.c_str(), 0755) == 0);
  lowbit::write_file_atomically(left_dir + "/shard", "s\n");
  lowbit::write_file_atomically(left_file, "f\n");
  { lowbit::atomic_output_directory dir(out); }
  CHECK(directory_sorted(d) ==
        std::vector<std::string>{".model.gguf.lowbit-tmp-1-0", ".other.lowbit-tmp-" + dead + "-0"});

  // process_temporaries: this process's temporaries of one output, from a signal handler too.
  lowbit::temporary_directory a(out), b(out);
  lowbit::write_file_atomically(a.path() + "/x", "x\n");
  const lowbit::process_temporaries mine(out);
  mine.remove();
  CHECK(directory_sorted(d) ==
        std::vector<std::string>{".model.gguf.lowbit-tmp-1-0", ".other.lowbit-tmp-" + dead + "-0"});
}

}  // namespace test_io_directory_cpp
