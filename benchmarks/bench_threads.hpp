#pragma once
// The thread counts of every /threads:N row (gemm, oneDNN, the roofline's threaded peaks):
// LOWBIT_BENCH_THREADS, comma-separated (e.g. 1,2,4,8,16 for scaling runs on larger hosts),
// else 1 and 2. One parser, so the rows a scaling run compares always have the same counts.
#include <cstdlib>
#include <vector>

namespace lowbit_bench {

inline std::vector<int> thread_counts() {
  std::vector<int> counts;
  if (const char* env = std::getenv("LOWBIT_BENCH_THREADS")) {
    for (const char* p = env; *p != '\0';) {
      char* end = nullptr;
      const long v = std::strtol(p, &end, 10);
      if (end == p) break;
      if (v > 0 && v <= 1024) counts.push_back(static_cast<int>(v));
      p = (*end == ',') ? end + 1 : end;
    }
  }
  if (counts.empty()) counts = {1, 2};
  return counts;
}

}  // namespace lowbit_bench
