#pragma once
// Shared helpers for the test_model*.cpp files: where stories260K lives, a skip that is
// visible (WARN + SUCCEED) when the shared data folder is missing, and one fp32 model
// loaded once per test run.
#include <catch2/catch.hpp>

#include <cmath>
#include <fstream>
#include <string>
#include <vector>

#include "lowbit/model/load.hpp"
#include "lowbit/model/perplexity.hpp"

namespace lowbit_test {

inline const std::string kStoriesDir = std::string(LOWBIT_SHARED_DATA_DIR) + "/stories260k";
inline const std::string kCheckSentence =
    "One day, a clever fox found a shiny key under the old oak tree.";

inline bool have_stories() {
  for (const char* f : {"/stories260K.bin", "/stories260K.safetensors", "/tok512.bin",
                        "/eval_tinystories_val_tok512.u16"})
    if (!std::ifstream(kStoriesDir + f)) return false;
  return true;
}

inline const lowbit::model::LlamaModel& stories_model() {
  static const lowbit::model::LlamaModel m(
      lowbit::model::load_llama_weights(kStoriesDir + "/stories260K.bin"));
  return m;
}

inline double sentence_perplexity(const lowbit::model::LlamaModel& m, const std::vector<int>& ids) {
  const lowbit::RowMatrixXf logits = m.forward(ids);
  return std::exp(lowbit::model::sequence_nll(logits, ids.data(), static_cast<int>(ids.size())) /
                  static_cast<double>(ids.size() - 1));
}

}  // namespace lowbit_test

#define LOWBIT_REQUIRE_STORIES()                                                          \
  do {                                                                                    \
    if (!lowbit_test::have_stories()) {                                                   \
      WARN("skipped: " << lowbit_test::kStoriesDir << " is missing (shared test data)"); \
      SUCCEED();                                                                          \
      return;                                                                             \
    }                                                                                     \
  } while (0)
