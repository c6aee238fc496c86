// The safetensors writer: write -> read round trips, header room overflow, atomicity
// (an exception midway, a destroyed writer, a process killed mid-write), and sharded models.
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <catch2/catch.hpp>
#include <cstring>
#include <fstream>

#include "lowbit/io/safetensors_writer.hpp"
#include "lowbit/io/sharded.hpp"
#include "test_io_support.hpp"

// One namespace per test file, so that any set of test files can be compiled as one
// unity translation unit (tests/CMakeLists.txt) without their file-local names clashing.
namespace test_io_writer_cpp {

using lowbit::tensor_dtype;
using lowbit_test::file_exists;
using lowbit_test::scratch_dir;

namespace {
struct interrupted {};

void write_three(lowbit::SafetensorsWriter& w) {
  const std::vector<float> a{1, 2, 3, 4, 5, 6};
  const std::vector<std::uint8_t> b{9, 8, 7};
  const std::vector<std::uint16_t> c{0x3F80, 0xC000};  // BF16 1, -2
  w.add("a", tensor_dtype::f32, {2, 3}, a);
  w.add("b", tensor_dtype::u8, {3}, b);
  w.add("c", tensor_dtype::bf16, {2, 1}, c);
  w.add("empty", tensor_dtype::f32, {0, 4}, nullptr, 0);
}
}  // namespace

TEST_CASE("writer: round trip with metadata, 8-byte aligned header", "[io]") {
  scratch_dir dir;
  for (std::size_t reserve : {std::size_t{64 * 1024}, std::size_t{8}}) {  // room to spare / header outgrows it
    const std::string path = dir.file("m" + std::to_string(reserve) + ".safetensors");
    lowbit::SafetensorsWriterOptions opt;
    opt.header_reserve = reserve;
    lowbit::SafetensorsWriter w(path, opt);
    write_three(w);
    w.set_metadata("note", "hello \"world\"");
    CHECK_FALSE(file_exists(path));  // nothing under the final name before finish()
    w.finish();
    REQUIRE(file_exists(path));
    const auto f = lowbit::open_safetensors(path);
    CHECK(f.header_size() % 8 == 0);
    CHECK(f.metadata().at("note") == "hello \"world\"");
    REQUIRE(f.tensors().size() == 4);
    CHECK(f.at("a").shape == std::vector<std::int64_t>{2, 3});
    CHECK(f.at("a").to_float_vector() == std::vector<float>{1, 2, 3, 4, 5, 6});
    CHECK(f.at("b").to_float_vector() == std::vector<float>{9, 8, 7});
    CHECK(f.at("c").to_float_vector() == std::vector<float>{1, -2});
    CHECK(f.at("empty").numel() == 0);
    CHECK(dir.entries().size() == (reserve == 8 ? 2u : 1u));  // no temporary file left
  }
}

TEST_CASE("writer: bad tensors are rejected with the tensor's name", "[io]") {
  scratch_dir dir;
  lowbit::SafetensorsWriter w(dir.file("x.safetensors"));
  const std::vector<float> v(4);
  CHECK_THROWS_WITH(w.add("t", tensor_dtype::f32, {3}, v), Catch::Contains("'t'") && Catch::Contains("12 bytes"));
  CHECK_THROWS_WITH(w.add("__metadata__", tensor_dtype::f32, {4}, v), Catch::Contains("reserved"));
  w.add("u", tensor_dtype::f32, {4}, v);
  CHECK_THROWS_WITH(w.add("u", tensor_dtype::f32, {4}, v), Catch::Contains("'u'") && Catch::Contains("already"));
  CHECK_THROWS_WITH(w.add("n", tensor_dtype::f32, {-1}, v), Catch::Contains("invalid shape"));
  w.finish();
  CHECK_THROWS_WITH(w.add("z", tensor_dtype::f32, {4}, v), Catch::Contains("already finished"));
}

TEST_CASE("writer: an exception midway leaves no file and no temporary", "[io]") {
  scratch_dir dir;
  const std::string path = dir.file("model.safetensors");
  SECTION("thrown from the progress hook after the second tensor") {
    lowbit::SafetensorsWriterOptions opt;
    opt.on_tensor_written = [](const std::string& name, std::uint64_t) {
      if (name == "b") throw interrupted{};
    };
    try {
      lowbit::SafetensorsWriter w(path, opt);
      write_three(w);
      w.finish();
      FAIL("not interrupted");
    } catch (const interrupted&) {
    }
  }
  SECTION("the writer is destroyed without finish()") {
    lowbit::SafetensorsWriter w(path);
    write_three(w);
  }
  CHECK_FALSE(file_exists(path));
  CHECK(dir.entries().empty());
}

TEST_CASE("writer: a failed rewrite keeps the old file intact", "[io]") {
  scratch_dir dir;
  const std::string path = dir.file("model.safetensors");
  {
    lowbit::SafetensorsWriter w(path);
    w.add("old", tensor_dtype::u8, {1}, std::vector<std::uint8_t>{42});
    w.finish();
  }
  try {
    lowbit::SafetensorsWriter w(path);
    w.add("new", tensor_dtype::u8, {1}, std::vector<std::uint8_t>{1});
    w.add("new", tensor_dtype::u8, {1}, std::vector<std::uint8_t>{1});  // throws: duplicate
    w.finish();
  } catch (const lowbit::error&) {
  }
  const auto f = lowbit::open_safetensors(path);
  CHECK(f.find("old") != nullptr);
  CHECK(dir.entries().size() == 1);
}

TEST_CASE("writer: a process killed mid-write leaves nothing under the final name", "[io]") {
  scratch_dir dir;
  const std::string path = dir.file("killed.safetensors");
  const pid_t child = ::fork();
  REQUIRE(child >= 0);
  if (child == 0) {
    lowbit::SafetensorsWriterOptions opt;
    opt.on_tensor_written = [](const std::string& name, std::uint64_t) {
      if (name == "b") ::raise(SIGKILL);
    };
    try {
      lowbit::SafetensorsWriter w(path, opt);
      write_three(w);
      w.finish();
    } catch (...) {
    }
    ::_exit(0);  // not reached when the kill lands
  }
  int status = 0;
  REQUIRE(::waitpid(child, &status, 0) == child);
  CHECK(WIFSIGNALED(status));
  CHECK_FALSE(file_exists(path));
  // With O_TMPFILE (Linux) the unnamed temporary dies with the process; elsewhere a hidden
  // ".killed.safetensors.lowbit-tmp-*" file may remain, and never under the final name.
  for (const auto& e : dir.entries()) CHECK(e.rfind(".killed.safetensors.lowbit-tmp-", 0) == 0);
}

TEST_CASE("sharded models: index, directory and single file", "[io]") {
  scratch_dir dir;
  {
    lowbit::SafetensorsWriter w(dir.file("model-00001-of-00002.safetensors"));
    w.add("a", tensor_dtype::f32, {2}, std::vector<float>{1, 2});
    w.finish();
    lowbit::SafetensorsWriter w2(dir.file("model-00002-of-00002.safetensors"));
    w2.add("b", tensor_dtype::f32, {1}, std::vector<float>{3});
    w2.add("c", tensor_dtype::u8, {1}, std::vector<std::uint8_t>{4});
    w2.finish();
  }
  const auto write_index = [&](const std::string& text) {
    std::ofstream(dir.file("model.safetensors.index.json")) << text;
  };
  write_index(R"({"metadata":{"total_size":13},"weight_map":{"a":"model-00001-of-00002.safetensors",
      "b":"model-00002-of-00002.safetensors","c":"model-00002-of-00002.safetensors"}})");
  for (const std::string& p : {dir.path, dir.file("model.safetensors.index.json")}) {
    const auto m = lowbit::open_safetensors_model(p);
    REQUIRE(m.tensors().size() == 3);
    CHECK(m.shards().size() == 2);
    CHECK(m.at("b").to_float_vector() == std::vector<float>{3});
    CHECK(m.metadata().at("total_size") == "13");
  }
  const auto single = lowbit::open_safetensors_model(dir.file("model-00001-of-00002.safetensors"));
  CHECK(single.tensors().size() == 1);

  write_index(R"({"weight_map":{"a":"model-00002-of-00002.safetensors","b":"model-00002-of-00002.safetensors",
      "c":"model-00002-of-00002.safetensors"}})");
  CHECK_THROWS_WITH(lowbit::open_safetensors_model(dir.path), Catch::Contains("'a'") && Catch::Contains("not in its listed shard"));
  write_index(R"({"weight_map":{"a":"../x.safetensors"}})");
  CHECK_THROWS_WITH(lowbit::open_safetensors_model(dir.path), Catch::Contains("relative name"));
  write_index(R"({"weight_map":{"a":"model-00001-of-00002.safetensors"}})");
  CHECK(lowbit::open_safetensors_model(dir.path).tensors().size() == 1);
  write_index(R"({"weight_map":{"a":"model-00001-of-00002.safetensors","b":"model-00002-of-00002.safetensors"}})");
  CHECK_THROWS_WITH(lowbit::open_safetensors_model(dir.path), Catch::Contains("does not list"));
  write_index("{not json");
  CHECK_THROWS_WITH(lowbit::open_safetensors_model(dir.path), Catch::Contains("not a JSON object"));
}
}  // namespace test_io_writer_cpp
