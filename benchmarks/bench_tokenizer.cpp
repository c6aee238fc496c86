// tokenizer.json encode throughput (lowbit::model::HfTokenizer, one thread) on the TinyStories
// text of ../shared/data (794 KB), bytes/s of input text:
//   tokenizer_encode/<tokenizer>/whole       the file as one text (lowbit tokenize --file)
//   tokenizer_encode/<tokenizer>/documents   its 4,300 documents one encode() each (eval, calib)
//   tokenizer_encode/llama3_style/cold       whole text on a fresh tokenizer each time: the word
//                                            cache starts empty (parsing is not timed)
// The target: >= 10 MB/s for the Llama-3-style tokenizer on one core.
// Skipped (an error row) when the shared data or tokenizer.json support is missing.
#include <benchmark/benchmark.h>

#include <fstream>
#include <sstream>
#include <string>
#include <vector>

#include "lowbit/model/hf_tokenizer.hpp"

#ifndef LOWBIT_SHARED_DATA_DIR
#define LOWBIT_SHARED_DATA_DIR "../shared/data"
#endif

// One namespace per benchmark file, so that the files can be compiled as one unity
// translation unit (benchmarks/CMakeLists.txt) without their file-local names clashing.
namespace bench_tokenizer_cpp {

namespace {

std::string read_text(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::stringstream s;
  s << in.rdbuf();
  return s.str();
}

const std::string& stories_text() {
  static const std::string text =
      read_text(std::string(LOWBIT_SHARED_DATA_DIR) + "/stories260k/tinystories_validation_head_794k.txt");
  return text;
}

const std::vector<std::string>& stories_documents() {
  static const std::vector<std::string> docs = [] {
    std::vector<std::string> out;
    const std::string& t = stories_text();
    for (std::size_t pos = 0; pos < t.size();) {
      std::size_t end = t.find("\n\n", pos);
      if (end == std::string::npos) end = t.size();
      if (end > pos) out.push_back(t.substr(pos, end - pos));
      pos = end + 2;
    }
    return out;
  }();
  return docs;
}

std::string tokenizer_path(const std::string& name) {
  const std::string d = LOWBIT_SHARED_DATA_DIR;
  if (name == "stories260k") return d + "/stories260k-hf/tokenizer.json";
  return d + "/tokenizers/" + name + "_tokenizer.json";
}

bool ready(benchmark::State& state, const std::string& name) {
  if (!lowbit::model::hf_tokenizer_available()) {
    state.SkipWithError("built without tokenizer.json support");
    return false;
  }
  if (stories_text().empty() || !std::ifstream(tokenizer_path(name)).good()) {
    state.SkipWithError("shared test data missing (../shared/data)");
    return false;
  }
  return true;
}

void bench_encode(benchmark::State& state, const std::string& name, int mode) {
  if (!ready(state, name)) return;
  const std::string& text = stories_text();
  const std::string json = read_text(tokenizer_path(name));
  auto tok = lowbit::model::HfTokenizer::parse(json, name);
  std::size_t tokens = 0;
  for (auto _ : state) {
    if (mode == 2) {
      state.PauseTiming();
      tok = lowbit::model::HfTokenizer::parse(json, name);
      state.ResumeTiming();
    }
    if (mode == 1) {
      for (const auto& d : stories_documents()) tokens += tok.encode(d).size();
    } else {
      tokens += tok.encode(text).size();
    }
  }
  benchmark::DoNotOptimize(tokens);
  std::size_t bytes = text.size();
  if (mode == 1) {
    bytes = 0;
    for (const auto& d : stories_documents()) bytes += d.size();
  }
  state.SetBytesProcessed(static_cast<std::int64_t>(state.iterations()) * static_cast<std::int64_t>(bytes));
  state.counters["tokens/s"] = benchmark::Counter(static_cast<double>(tokens), benchmark::Counter::kIsRate);
}

const int registered = [] {
  for (const char* name : {"llama3_style", "qwen2_style", "stories260k"}) {
    const std::string n = name;
    benchmark::RegisterBenchmark(("tokenizer_encode/" + n + "/whole").c_str(),
                                 [n](benchmark::State& s) { bench_encode(s, n, 0); })
        ->Unit(benchmark::kMillisecond);
    benchmark::RegisterBenchmark(("tokenizer_encode/" + n + "/documents").c_str(),
                                 [n](benchmark::State& s) { bench_encode(s, n, 1); })
        ->Unit(benchmark::kMillisecond);
  }
  benchmark::RegisterBenchmark("tokenizer_encode/llama3_style/cold",
                               [](benchmark::State& s) { bench_encode(s, "llama3_style", 2); })
      ->Unit(benchmark::kMillisecond);
  return 0;
}();

}  // namespace

}  // namespace bench_tokenizer_cpp
