// libFuzzer target: arbitrary bytes through the safetensors reader's in-memory entry point.
// Any input must either parse (and then every view must lie inside the buffer and convert
// without faults) or raise lowbit::error; anything else (a crash, an ASan report, another
// exception type) is a bug. A file's "lowbit.config" metadata (the config.json text a
// single-file checkpoint carries, which open_model reads) goes through both config parsers.
//   clang++ -std=c++17 -g -O1 -fsanitize=fuzzer,address,undefined -Iinclude \
//     -I/usr/include/eigen3 fuzz/fuzz_safetensors.cpp -o /tmp/fz
//   /tmp/fz -max_total_time=60 fuzz/corpus/fuzz_safetensors
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <vector>

#include "lowbit/io/checkpoint.hpp"
#include "lowbit/io/safetensors.hpp"
#include "lowbit/model/config_hints.hpp"
#include "lowbit/model/hf_config.hpp"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  try {
    const auto file = lowbit::SafetensorsFile::parse(data, size, "fuzz");
    const auto* begin = reinterpret_cast<const std::byte*>(data);
    for (const auto& t : file.tensors()) {
      if (t.data < begin || t.data + t.nbytes > begin + size) std::abort();  // a view escaped the buffer
      if (lowbit::dtype_converts_to_float(t.dtype) && t.numel() <= (1 << 16)) {
        std::vector<float> out(static_cast<std::size_t>(t.numel()));
        t.to_float(out.data());
      }
      if (file.find(t.name) == nullptr) std::abort();
    }
    const auto cfg = file.metadata().find(lowbit::checkpoint_config_key);
    if (cfg != file.metadata().end()) {
      try {
        lowbit::model::parse_config_hints(cfg->second, "fuzz");
      } catch (const lowbit::error&) {
      }
      lowbit::model::parse_hf_config(cfg->second, "fuzz");
    }
  } catch (const lowbit::error&) {
  }
  return 0;
}
