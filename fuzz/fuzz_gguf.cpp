// libFuzzer target: arbitrary bytes through the GGUF reader's in-memory entry point, then
// every tensor decoded (and, for the types that have one, imported into lowbit's quantized
// form and dequantized). Any input must either work or raise lowbit::error; anything else
// (a crash, an ASan/UBSan report, another exception type) is a bug.
//   clang++ -std=c++17 -g -O1 -fsanitize=fuzzer,address,undefined -Iinclude \
//     -I/usr/include/eigen3 fuzz/fuzz_gguf.cpp -o /tmp/fz
//   /tmp/fz -max_total_time=60 fuzz/corpus/fuzz_gguf
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <vector>

#include "lowbit/io/gguf.hpp"
#include "lowbit/io/gguf_blocks.hpp"
#include "lowbit/quant/quantizer.hpp"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  try {
    const auto file = lowbit::GgufFile::parse(data, size, "fuzz");
    const auto* begin = reinterpret_cast<const std::byte*>(data);
    for (const auto& [key, v] : file.metadata())
      if (file.find_value(key) != &v) std::abort();  // the key index disagrees with the list
    for (const auto& t : file.tensors()) {
      if (t.nbytes > 0 && (t.data < begin || t.data + t.nbytes > begin + size)) std::abort();  // a view escaped
      if (file.find(t.name) != &t) std::abort();
      if (!lowbit::gguf_decodes(t.ggml_type()) || t.numel() > (1u << 16)) continue;
      if (t.numel() > 0) {
        const lowbit::RowMatrixXf m = lowbit::gguf_to_matrix(t);
        if (static_cast<std::uint64_t>(m.size()) != t.numel()) std::abort();
      }
      try {
        const lowbit::QuantizedMatrix q = lowbit::gguf_to_quantized(t);
        (void)lowbit::dequantize(q);
      } catch (const lowbit::error&) {
      }
    }
  } catch (const lowbit::error&) {
  }
  return 0;
}
