// libFuzzer target: arbitrary bytes through the safetensors reader's in-memory entry point.
// Any input must either parse (and then every view must lie inside the buffer and convert
// without faults) or raise lowbit::error; anything else (a crash, an ASan report, another
// exception type) is a bug.
//   clang++ -std=c++17 -g -O1 -fsanitize=fuzzer,address,undefined -Iinclude \
//     -I/usr/include/eigen3 fuzz/fuzz_safetensors.cpp -o /tmp/fz
//   /tmp/fz -max_total_time=60 fuzz/corpus/fuzz_safetensors
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <vector>

#include "lowbit/io/safetensors.hpp"

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
  } catch (const lowbit::error&) {
  }
  return 0;
}
