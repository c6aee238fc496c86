// Hardening of file output and input (issue 15, items 1-5, 7, 15): what an atomic write may
// replace, that no output is an input, that an unwritable output fails before another is
// committed, that no temporary is left behind, that a written file reads back, that FIFO
// inputs never block, and that the checkpoint reader rejects values the scheme forbids.
#include <catch2/catch.hpp>
#include <sys/socket.h>
#include <sys/un.h>
#include <sys/wait.h>

#include <cmath>
#include <cstring>
#include <limits>
#include <random>

#include "lowbit/io/checkpoint.hpp"
#include "lowbit/io/linear_checkpoint.hpp"
#include "lowbit/io/paths.hpp"
#include "lowbit/quant/quantizer.hpp"
#include "lowbit/quant/spec_text.hpp"
#include "test_io_support.hpp"

// One namespace per test file, so that any set of test files can be compiled as one
// unity translation unit (tests/CMakeLists.txt) without their file-local names clashing.
namespace test_hardening_io_cpp {

using lowbit_test::dead_pid;
using lowbit_test::file_exists;
using lowbit_test::scratch_dir;

namespace {

std::string read_all(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  return std::string(std::istreambuf_iterator<char>(in), {});
}

void write_text(const std::string& path, const std::string& text) {
  lowbit::detail::atomic_output_file f(path);
  f.write_at(text.data(), text.size(), 0);
  f.commit();
}

lowbit::RowMatrixXf small_weight(std::int64_t rows, std::int64_t cols) {
  std::mt19937 rng(7);
  std::normal_distribution<float> n(0.0f, 0.05f);
  lowbit::RowMatrixXf w(rows, cols);
  for (Eigen::Index i = 0; i < w.size(); ++i) w.data()[i] = n(rng);
  return w;
}


}  // namespace

TEST_CASE("atomic output: only a regular file or nothing is replaced", "[io][hardening]") {
  scratch_dir dir;
  SECTION("a FIFO, a directory, a socket, a device node are refused and left alone") {
    REQUIRE(::mkfifo(dir.file("fifo").c_str(), 0644) == 0);
    CHECK_THROWS_WITH(write_text(dir.file("fifo"), "x"), Catch::Contains("is a FIFO") && Catch::Contains("regular file"));
    struct stat st {};
    REQUIRE(::lstat(dir.file("fifo").c_str(), &st) == 0);
    CHECK(S_ISFIFO(st.st_mode));
    REQUIRE(::mkdir(dir.file("d").c_str(), 0755) == 0);
    CHECK_THROWS_WITH(write_text(dir.file("d"), "x"), Catch::Contains("is a directory"));
    const int s = ::socket(AF_UNIX, SOCK_STREAM, 0);
    sockaddr_un addr{};
    addr.sun_family = AF_UNIX;
    const std::string sp = dir.file("sock");
    if (sp.size() < sizeof(addr.sun_path)) {
      std::strcpy(addr.sun_path, sp.c_str());
      REQUIRE(::bind(s, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) == 0);
      CHECK_THROWS_WITH(write_text(sp, "x"), Catch::Contains("is a socket"));
    }
    ::close(s);
    // Only the check runs on /dev/null: nothing is created or written.
    CHECK_THROWS_WITH(lowbit::detail::resolve_output_target("/dev/null"), Catch::Contains("character device"));
    CHECK_THROWS_WITH(lowbit::check_outputs({"/dev/null"}, {}), Catch::Contains("character device"));
  }
  SECTION("a symlink to a regular file: the target is replaced, the link stays") {
    write_text(dir.file("target"), "old");
    REQUIRE(::symlink("target", dir.file("link").c_str()) == 0);
    write_text(dir.file("link"), "new");
    struct stat st {};
    REQUIRE(::lstat(dir.file("link").c_str(), &st) == 0);
    CHECK(S_ISLNK(st.st_mode));
    CHECK(read_all(dir.file("target")) == "new");
  }
  SECTION("a dangling symlink and a symlink to a FIFO are refused") {
    REQUIRE(::symlink("missing", dir.file("dangling").c_str()) == 0);
    CHECK_THROWS_WITH(write_text(dir.file("dangling"), "x"), Catch::Contains("symbolic link to a missing file"));
    REQUIRE(::mkfifo(dir.file("fifo").c_str(), 0644) == 0);
    REQUIRE(::symlink("fifo", dir.file("tofifo").c_str()) == 0);
    CHECK_THROWS_WITH(write_text(dir.file("tofifo"), "x"), Catch::Contains("symbolic link to a FIFO"));
  }
  SECTION("a regular file is replaced") {
    write_text(dir.file("f"), "one");
    write_text(dir.file("f"), "two");
    CHECK(read_all(dir.file("f")) == "two");
    CHECK(dir.entries() == std::vector<std::string>{"f"});
  }
}

TEST_CASE("atomic output: no temporary file is left behind", "[io][hardening]") {
  scratch_dir dir;
  SECTION("a new file appears without a named temporary, and none remains") {
    lowbit::detail::atomic_output_file f(dir.file("new"));
    f.write_at("abc", 3, 0);
    CHECK(dir.entries().empty());  // O_TMPFILE (or a mkstemp name where unavailable)
    f.commit();
    CHECK(dir.entries() == std::vector<std::string>{"new"});
  }
  SECTION("a temporary left by a killed process is removed by the next write of that name") {
    const std::string stale = dir.file(".out.lowbit-tmp-" + std::to_string(dead_pid()) + "-0");
    const std::string alive = dir.file(".out.lowbit-tmp-" + std::to_string(::getppid()) + "-0");
    const std::string other = dir.file(".other.lowbit-tmp-" + std::to_string(dead_pid()) + "-0");
    for (const auto& p : {stale, alive, other}) std::ofstream(p) << "leftover";
    write_text(dir.file("out"), "x");
    CHECK_FALSE(file_exists(stale));
    CHECK(file_exists(alive));  // its process still runs: it may be writing
    CHECK(file_exists(other));  // another name's temporaries are not ours to judge
  }
}

TEST_CASE("check_outputs: no output is an input, every output can be created", "[io][hardening]") {
  scratch_dir dir;
  write_text(dir.file("in.safetensors"), "input");
  write_text(dir.file("config.json"), "{}");
  const std::string in = dir.file("in.safetensors");
  CHECK_NOTHROW(lowbit::check_outputs({dir.file("out.safetensors"), dir.file("report.json"), "-"}, {in}));
  CHECK_THROWS_WITH(lowbit::check_outputs({in}, {in}), Catch::Contains("is the input file"));
  CHECK_THROWS_WITH(lowbit::check_outputs({dir.file("out"), dir.file("config.json")}, {in, dir.file("config.json")}),
                    Catch::Contains("output '" + dir.file("config.json") + "' is the input file"));
  // The same file through another name: a hard link, a symlink, a relative spelling.
  REQUIRE(::link(in.c_str(), dir.file("hard").c_str()) == 0);
  REQUIRE(::symlink("in.safetensors", dir.file("soft").c_str()) == 0);
  CHECK_THROWS_WITH(lowbit::check_outputs({dir.file("hard")}, {in}), Catch::Contains("is the input file"));
  CHECK_THROWS_WITH(lowbit::check_outputs({dir.file("soft")}, {in}), Catch::Contains("is the input file"));
  CHECK_THROWS_WITH(lowbit::check_outputs({dir.path + "/./in.safetensors"}, {in}), Catch::Contains("is the input file"));
  // Two outputs that are one file (also before it exists).
  CHECK_THROWS_WITH(lowbit::check_outputs({dir.file("o"), dir.path + "/./o"}, {in}), Catch::Contains("are the same file"));
  // An output whose directory does not exist or is not writable fails before any work.
  CHECK_THROWS_WITH(lowbit::check_outputs({dir.file("out"), dir.file("nodir/report.json")}, {in}),
                    Catch::Contains("nodir"));
  CHECK(!file_exists(dir.file("out")));
  CHECK_THROWS_WITH(lowbit::check_outputs({dir.file("fifo/x")}, {in}), Catch::Contains("fifo"));
}

TEST_CASE("inputs: a FIFO or a directory is refused before open", "[io][hardening]") {
  scratch_dir dir;
  REQUIRE(::mkfifo(dir.file("fifo").c_str(), 0644) == 0);
  // Without the check, open() blocks forever here (no writer).
  CHECK_THROWS_WITH(lowbit::open_safetensors(dir.file("fifo")), Catch::Contains("is a FIFO"));
  CHECK_THROWS_WITH(lowbit::open_safetensors(dir.path), Catch::Contains("is a directory"));
  CHECK_THROWS_WITH(lowbit::check_input_file(dir.path, "--calib"), Catch::Contains("--calib") && Catch::Contains("is a directory"));
  CHECK_THROWS_WITH(lowbit::check_input_file(dir.file("fifo"), "--tokens"), Catch::Contains("--tokens") && Catch::Contains("FIFO"));
  CHECK_THROWS_WITH(lowbit::check_input_file(dir.file("none"), "--calib"), Catch::Contains("--calib") && Catch::Contains("No such file"));
}

TEST_CASE("safetensors writer: what it commits reads back", "[io][hardening]") {
  scratch_dir dir;
  SECTION("a header over the readers' 100 MiB limit fails before the rename") {
    const std::string path = dir.file("huge.safetensors");
    const std::string name(std::size_t{101} << 20, 'n');
    {
      lowbit::SafetensorsWriter out(path);
      const float v = 1.0f;
      out.add(name, lowbit::tensor_dtype::f32, {1}, &v, sizeof v);
      CHECK_THROWS_WITH(out.finish(), Catch::Contains("100 MiB"));
    }
    CHECK(dir.entries().empty());
  }
  SECTION("a large header reserve is capped so the padded header stays readable") {
    lowbit::SafetensorsWriterOptions o;
    o.header_reserve = std::size_t{200} << 20;
    const std::string path = dir.file("r.safetensors");
    {
      lowbit::SafetensorsWriter out(path, o);
      const float v = 2.0f;
      out.add("t", lowbit::tensor_dtype::f32, {1}, &v, sizeof v);
      out.finish();
    }
    CHECK(lowbit::open_safetensors(path).at("t").to_float_vector() == std::vector<float>{2.0f});
  }
}

TEST_CASE("checkpoints: what the reader would reject is never committed", "[io][hardening]") {
  scratch_dir dir;
  const lowbit::RowMatrixXf w = small_weight(4, 32);
  lowbit::QuantizedLinear layer;
  layer.weight = lowbit::quantize(w, lowbit::parse_quant_spec("int4:g32"), "x.weight");
  const std::string path = dir.file("c.safetensors");
  SECTION("a NaN bias") {
    layer.bias = Eigen::VectorXf::Zero(4);
    (*layer.bias)(2) = NAN;
    lowbit::SafetensorsWriter out(path);
    lowbit::begin_checkpoint(out);
    CHECK_THROWS_WITH(lowbit::write_quantized_linear(out, "x.weight", layer),
                      Catch::Contains("x.bias") && Catch::Contains("NaN"));
  }
  SECTION("a non-positive smoothing factor") {
    layer.smoothing = Eigen::VectorXf::Ones(32);
    (*layer.smoothing)(5) = 0.0f;
    lowbit::SafetensorsWriter out(path);
    lowbit::begin_checkpoint(out);
    CHECK_THROWS_WITH(lowbit::write_quantized_linear(out, "x.weight", layer), Catch::Contains("must be positive"));
  }
  SECTION("a stray x.smooth, a 2-D x.bias, an I32 x.bias copied beside the layer") {
    struct stray {
      const char* name;
      lowbit::tensor_dtype dtype;
      std::vector<std::int64_t> shape;
    };
    for (const stray& s : {stray{"x.smooth", lowbit::tensor_dtype::f32, {32}}, stray{"x.bias", lowbit::tensor_dtype::f32, {2, 2}},
                           stray{"x.bias", lowbit::tensor_dtype::i32, {4}}}) {
      lowbit::SafetensorsWriter out(path);
      lowbit::begin_checkpoint(out);
      lowbit::write_quantized_linear(out, "x.weight", layer);
      std::size_t n = 4;  // bytes per element of F32 and I32
      for (const auto d : s.shape) n *= static_cast<std::size_t>(d);
      out.add(s.name, s.dtype, s.shape, std::vector<std::uint8_t>(n, 0));
      CHECK_THROWS_WITH(out.finish(), Catch::Contains(std::string(s.name) + " is not declared"));
    }
    CHECK(dir.entries().empty());
  }
  SECTION("a valid layer is committed and loads") {
    layer.bias = Eigen::VectorXf::Ones(4);
    {
      lowbit::SafetensorsWriter out(path);
      lowbit::begin_checkpoint(out);
      lowbit::write_quantized_linear(out, "x.weight", layer);
      out.finish();
    }
    CHECK(lowbit::load_quantized_linear(lowbit::open_safetensors(path), "x").bias->isApproxToConstant(1.0f));
  }
}

TEST_CASE("checkpoint reader: scales and codes the scheme forbids are rejected", "[io][hardening]") {
  scratch_dir dir;
  const lowbit::RowMatrixXf w = small_weight(4, 32);
  // Writes `q` without the before-commit validation (a file from elsewhere), then loads it.
  const auto load_back = [&](const lowbit::QuantizedMatrix& q) {
    const std::string path = dir.file("r.safetensors");
    {
      lowbit::SafetensorsWriter out(path);
      lowbit::begin_checkpoint(out);
      out.set_validator(nullptr);
      lowbit::write_quantized_matrix(out, "x.weight", q);
      out.finish();
    }
    return lowbit::load_quantized_matrix(lowbit::open_safetensors(path), "x");
  };
  const auto q = lowbit::quantize(w, lowbit::parse_quant_spec("int4:g16"), "x.weight");
  CHECK_NOTHROW(load_back(q));
  for (const float bad : {NAN, INFINITY, -0.5f}) {
    auto b = q;
    b.scales[3] = bad;
    CHECK_THROWS_WITH(load_back(b), Catch::Contains("layer 'x'") && Catch::Contains("row 1, group 1"));
  }
  auto minus8 = q;
  minus8.codes[5] = static_cast<std::uint8_t>((minus8.codes[5] & 0x0F) | 0x80);  // high nibble -8
  CHECK_THROWS_WITH(load_back(minus8), Catch::Contains("layer 'x'") && Catch::Contains("code -8"));
  auto i8 = lowbit::quantize(w, lowbit::parse_quant_spec("int8:channel"), "x.weight");
  i8.codes[0] = 0x80;
  CHECK_THROWS_WITH(load_back(i8), Catch::Contains("code -128"));
  // q4_0 uses -8 and signed scales: accepted.
  auto q40 = lowbit::quantize(w, lowbit::parse_quant_spec("int4:g16:q4_0"), "x.weight");
  q40.codes[0] = 0x88;
  q40.scales[0] = -std::fabs(q40.scales[0]);
  CHECK_NOTHROW(load_back(q40));
}
}  // namespace test_hardening_io_cpp
