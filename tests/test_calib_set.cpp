// Calibration sets (model/calibration_set.hpp) and sharded output directories
// (io/sharded_writer.hpp), the two file formats `lowbit quantize` gained for issue 11/12.
#include <catch2/catch.hpp>
#include <fstream>
#include <string>
#include <vector>

#include "lowbit/io/sharded.hpp"
#include "lowbit/io/sharded_writer.hpp"
#include "lowbit/model/calibration_set.hpp"
#include "test_io_support.hpp"

// One namespace per test file, so that any set of test files can be compiled as one
// unity translation unit (tests/CMakeLists.txt) without their file-local names clashing.
namespace test_calib_set_cpp {

using namespace lowbit;
using lowbit::model::CalibrationSetOptions;
using lowbit::model::read_calibration_set;

namespace {

void write_text(const std::string& path, const std::string& text) { std::ofstream(path, std::ios::binary) << text; }

// A stand-in tokenizer: BOS (1), then one id per byte (+ 3), as a post-processor adding BOS does.
std::vector<int> byte_encode(const std::string& s) {
  std::vector<int> ids{1};
  for (unsigned char c : s) ids.push_back(c + 3);
  return ids;
}
std::vector<int> ids_of(const std::string& s) { return byte_encode(s); }

void write_u16(const std::string& path, const std::vector<int>& ids) {
  std::vector<std::uint8_t> b;
  for (int id : ids) {
    b.push_back(static_cast<std::uint8_t>(id & 0xFF));
    b.push_back(static_cast<std::uint8_t>(id >> 8));
  }
  lowbit_test::write_bytes(path, b);
}

}  // namespace

TEST_CASE("calibration set: .txt documents are separated by blank lines", "[calib]") {
  lowbit_test::scratch_dir d;
  const std::string p = d.file("c.txt");
  write_text(p, "\n\nfirst line\nsecond line\n\n \t \nsecond doc\r\n\r\n\n\nthird\n");
  CalibrationSetOptions o;
  const auto set = read_calibration_set(p, o, byte_encode);
  CHECK(set.kind == "txt");
  REQUIRE(set.samples.size() == 3);
  CHECK(set.samples[0] == ids_of("first line\nsecond line"));
  CHECK(set.samples[1] == ids_of("second doc"));  // CRLF's \r is not part of the text
  CHECK(set.samples[2] == ids_of("third"));
  CHECK(set.tokens() == static_cast<std::int64_t>(set.samples[0].size() + set.samples[1].size() + set.samples[2].size()));

  o.samples = 2;  // file order, stops after N
  o.seq_len = 4;  // cut to L tokens (BOS included)
  const auto cut = read_calibration_set(p, o, byte_encode);
  REQUIRE(cut.samples.size() == 2);
  CHECK(cut.samples[0] == std::vector<int>{1, 'f' + 3, 'i' + 3, 'r' + 3});
  CHECK(cut.samples[1].size() == 4);
  CHECK(cut.truncated == 2);
}

TEST_CASE("calibration set: .jsonl takes each line's text field", "[calib]") {
  lowbit_test::scratch_dir d;
  const std::string p = d.file("c.jsonl");
  write_text(p, "{\"text\": \"ab\", \"id\": 1}\n\n{\"text\": \"line\\nbreak\"}\n");
  const auto set = read_calibration_set(p, {}, byte_encode);
  REQUIRE(set.samples.size() == 2);
  CHECK(set.samples[0] == ids_of("ab"));
  CHECK(set.samples[1] == ids_of("line\nbreak"));

  write_text(p, "{\"text\": \"ok\"}\n[1, 2]\n");
  CHECK_THROWS_WITH(read_calibration_set(p, {}, byte_encode), Catch::Contains("line 2") && Catch::Contains("not a JSON object"));
  write_text(p, "{\"text\": \"ok\"}\n{\"txt\": \"x\"}\n");
  CHECK_THROWS_WITH(read_calibration_set(p, {}, byte_encode), Catch::Contains("line 2") && Catch::Contains("\"text\""));
  write_text(p, "{\"text\": \"ok\"}\n{\"text\": \"\"}\n");  // BOS alone: nothing to predict
  CHECK_THROWS_WITH(read_calibration_set(p, {}, byte_encode),
                    Catch::Contains("line 2") && Catch::Contains("1 token(s)") && Catch::Contains("at least 2"));
}

TEST_CASE("calibration set: .u16 documents start at BOS", "[calib]") {
  lowbit_test::scratch_dir d;
  const std::string p = d.file("c.u16");
  write_u16(p, {1, 5, 6, 7, 1, 8, 9, 1, 10, 11, 12, 13});
  CalibrationSetOptions o;
  o.seq_len = 3;
  const auto set = read_calibration_set(p, o, {});  // no tokenizer needed
  REQUIRE(set.samples.size() == 3);
  CHECK(set.samples[0] == std::vector<int>{1, 5, 6});
  CHECK(set.samples[1] == std::vector<int>{1, 8, 9});
  CHECK(set.samples[2] == std::vector<int>{1, 10, 11});
  CHECK(set.truncated == 2);
  o.samples = 1;
  CHECK(read_calibration_set(p, o, {}).samples.size() == 1);

  write_u16(p, {1, 5, 1, 1, 6});
  CHECK_THROWS_WITH(read_calibration_set(p, {}, {}), Catch::Contains("document 2") && Catch::Contains("1 token(s)"));
  lowbit_test::write_bytes(p, {1, 0, 5});
  CHECK_THROWS_WITH(read_calibration_set(p, {}, {}), Catch::Contains("whole number"));
}

TEST_CASE("calibration set: empty files, missing tokenizer and bad options are errors", "[calib]") {
  lowbit_test::scratch_dir d;
  for (const char* name : {"e.txt", "e.jsonl", "e.u16"}) {
    write_text(d.file(name), "");
    CHECK_THROWS_WITH(read_calibration_set(d.file(name), {}, byte_encode), Catch::Contains("is empty"));
  }
  write_text(d.file("blank.txt"), "\n \n\n");
  CHECK_THROWS_WITH(read_calibration_set(d.file("blank.txt"), {}, byte_encode), Catch::Contains("holds no documents"));
  write_text(d.file("a.txt"), "text");
  CHECK_THROWS_WITH(read_calibration_set(d.file("a.txt"), {}, {}), Catch::Contains("tokenizer"));
  write_text(d.file("a.csv"), "text");
  CHECK_THROWS_WITH(read_calibration_set(d.file("a.csv"), {}, byte_encode), Catch::Contains("unknown calibration file type"));
  CHECK_THROWS_WITH(read_calibration_set(d.file("missing.txt"), {}, byte_encode), Catch::Contains("cannot open"));
  CalibrationSetOptions o;
  o.samples = 0;
  CHECK_THROWS_WITH(read_calibration_set(d.file("a.txt"), o, byte_encode), Catch::Contains("samples"));
  o = {};
  o.seq_len = 1;
  CHECK_THROWS_WITH(read_calibration_set(d.file("a.txt"), o, byte_encode), Catch::Contains("sequence length"));
}

TEST_CASE("sharded writer: shards above the limit, an index, extra files; readable as one model", "[calib]") {
  lowbit_test::scratch_dir d;
  const std::string out = d.file("model");
  std::vector<float> a(100, 1.5f), b(50, -2.0f), c(30, 0.25f);
  {
    ShardedWriterOptions o;
    o.directory = true;
    o.max_shard_bytes = 600;  // a (400 B) fits; a + b does not
    ShardedSafetensorsWriter w(out, o);
    w.set_metadata("format", "lowbit");
    w.writer(400).add("a", tensor_dtype::f32, {100}, a);
    w.writer(200).add("b", tensor_dtype::f32, {50}, b);
    w.writer(200).set_metadata("lowbit.layer.b", "{}");  // same shard as b
    w.writer(120).add("c", tensor_dtype::f32, {30}, c);
    w.add_file("config.json", "{\"x\": 1}\n");
    // Nothing is visible before finish(): not even the directory.
    CHECK_FALSE(lowbit_test::file_exists(out));
    w.finish();
    CHECK(w.shard_files() == std::vector<std::string>{"model-00001-of-00002.safetensors", "model-00002-of-00002.safetensors"});
  }
  CHECK(lowbit_test::file_exists(out + "/config.json"));
  const auto m = open_safetensors_model(out);
  REQUIRE(m.tensors().size() == 3);
  CHECK(m.at("a").to_float_vector() == a);
  CHECK(m.at("b").to_float_vector() == b);
  CHECK(m.at("c").to_float_vector() == c);
  CHECK(m.shards().size() == 2);
  CHECK(m.shards()[1]->metadata().count("lowbit.layer.b") == 1);  // with its tensors
  CHECK(m.shards()[0]->metadata().count("lowbit.layer.b") == 0);
  CHECK(m.shards()[0]->metadata().at("format") == "lowbit");      // file-level keys everywhere
  CHECK(m.metadata().count("lowbit.layer.b") == 1);               // the index has the union
  // No temporaries are left beside the directory.
  CHECK(d.entries() == std::vector<std::string>{"model"});
}

TEST_CASE("sharded writer: one shard is model.safetensors; an error before finish leaves nothing", "[calib]") {
  lowbit_test::scratch_dir d;
  std::vector<float> a(10, 1.0f);
  {
    ShardedWriterOptions o;
    o.directory = true;
    ShardedSafetensorsWriter w(d.file("one"), o);
    w.writer(40).add("a", tensor_dtype::f32, {10}, a);
    w.finish();
  }
  CHECK(lowbit_test::file_exists(d.file("one/model.safetensors")));
  CHECK_FALSE(lowbit_test::file_exists(d.file("one/model.safetensors.index.json")));
  CHECK(open_safetensors_model(d.file("one")).at("a").to_float_vector() == a);
  try {
    ShardedWriterOptions o;
    o.directory = true;
    o.max_shard_bytes = 40;
    ShardedSafetensorsWriter w(d.file("two"), o);
    w.writer(40).add("a", tensor_dtype::f32, {10}, a);
    w.writer(40).add("b", tensor_dtype::f32, {10}, a);
    w.add_file("config.json", "{}");
    throw std::runtime_error("interrupted");
  } catch (const std::runtime_error&) {
  }
  CHECK(d.entries() == std::vector<std::string>{"one"});
  // Single-file mode.
  {
    ShardedSafetensorsWriter w(d.file("x.safetensors"), {});
    w.writer(40).add("a", tensor_dtype::f32, {10}, a);
    CHECK_THROWS_WITH(w.add_file("config.json", "{}"), Catch::Contains("single file"));
    w.finish();
  }
  CHECK(open_safetensors(d.file("x.safetensors")).at("a").to_float_vector() == a);
  lowbit_test::write_bytes(d.file("plain"), {1});
  ShardedWriterOptions o;
  o.directory = true;
  CHECK_THROWS_WITH(ShardedSafetensorsWriter(d.file("plain"), o), Catch::Contains("not a directory"));
}
}  // namespace test_calib_set_cpp
