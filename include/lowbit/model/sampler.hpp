#pragma once
// Sampler: picks the next token from a row of logits.
//
//   temperature 0        greedy: the highest logit (the lowest id on ties)
//   temperature T > 0    softmax(logits / T) restricted to
//                          - the top_k highest logits (top_k = 0: all), then
//                          - the smallest prefix of those, by decreasing probability, whose
//                            probability reaches top_p (top_p = 1: all),
//                        renormalized, and drawn with a seeded generator.
// The generator is std::mt19937_64 (its sequence is fixed by the C++ standard) and the
// uniform draw is built from its top 53 bits by hand (std::uniform_real_distribution is
// implementation-defined), so a seed gives the same tokens on every platform and compiler.
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <numeric>
#include <random>
#include <string>
#include <vector>

#include "lowbit/error.hpp"

namespace lowbit::model {

struct SamplerOptions {
  float temperature = 0.8f;  // 0: greedy
  int top_k = 40;            // 0: no limit
  float top_p = 0.95f;       // in (0, 1]; 1: no limit
  std::uint64_t seed = 0;

  // Out-of-range values are errors (never silently clamped).
  void validate() const {
    if (!std::isfinite(temperature) || temperature < 0.0f)
      lowbit::detail::fail("temperature must be a finite number >= 0 (0 = greedy), got " + lowbit::detail::show_number(temperature));
    if (top_k < 0) lowbit::detail::fail("top-k must be >= 0 (0 = no limit), got " + std::to_string(top_k));
    if (!(top_p > 0.0f && top_p <= 1.0f))
      lowbit::detail::fail("top-p must be in (0, 1], got " + lowbit::detail::show_number(top_p));
  }
};

// A class template only so that its members compile where they are used ("Compile time" in
// docs/design.md); Sampler below is its one instantiation.
template <class Deferred = void>
class BasicSampler {
 public:
  explicit BasicSampler(const SamplerOptions& o) : o_(o), rng_(o.seed) { o_.validate(); }

  // Index of the chosen token in logits[0, n). Non-finite logits are an error.
  int sample(const float* logits, int n) {
    if (n <= 0) lowbit::detail::fail("Sampler: empty logits");
    for (int i = 0; i < n; ++i)
      if (!std::isfinite(logits[i]))
        lowbit::detail::fail("Sampler: logit " + std::to_string(i) + " is " + lowbit::detail::show_number(logits[i]) +
                             " (the model produced a non-finite value)");
    if (o_.temperature == 0.0f) return argmax(logits, n);

    // Candidates sorted by decreasing logit (ties: lower id first), cut to top_k.
    idx_.resize(static_cast<std::size_t>(n));
    std::iota(idx_.begin(), idx_.end(), 0);
    const auto by_logit = [&](int a, int b) { return logits[a] > logits[b] || (logits[a] == logits[b] && a < b); };
    const int k = (o_.top_k > 0 && o_.top_k < n) ? o_.top_k : n;
    std::partial_sort(idx_.begin(), idx_.begin() + k, idx_.end(), by_logit);
    idx_.resize(static_cast<std::size_t>(k));

    // Softmax over the candidates in double, relative to the largest logit.
    prob_.resize(static_cast<std::size_t>(k));
    const double mx = logits[idx_[0]];
    double sum = 0.0;
    for (int i = 0; i < k; ++i) sum += prob_[static_cast<std::size_t>(i)] = std::exp((logits[idx_[static_cast<std::size_t>(i)]] - mx) / o_.temperature);
    // Nucleus: keep the shortest prefix whose mass reaches top_p (at least one token).
    int keep = k;
    if (o_.top_p < 1.0f) {
      double acc = 0.0;
      for (int i = 0; i < k; ++i) {
        acc += prob_[static_cast<std::size_t>(i)] / sum;
        if (acc >= o_.top_p) {
          keep = i + 1;
          break;
        }
      }
    }
    double kept = 0.0;
    for (int i = 0; i < keep; ++i) kept += prob_[static_cast<std::size_t>(i)];
    const double r = uniform() * kept;
    double acc = 0.0;
    for (int i = 0; i < keep; ++i) {
      acc += prob_[static_cast<std::size_t>(i)];
      if (r < acc) return idx_[static_cast<std::size_t>(i)];
    }
    return idx_[static_cast<std::size_t>(keep - 1)];  // rounding at the very end of the range
  }

  static int argmax(const float* logits, int n) {
    int best = 0;
    for (int i = 1; i < n; ++i)
      if (logits[i] > logits[best]) best = i;
    return best;
  }

  const SamplerOptions& options() const noexcept { return o_; }

 private:
  double uniform() { return static_cast<double>(rng_() >> 11) * 0x1.0p-53; }  // [0, 1)

  SamplerOptions o_;
  std::mt19937_64 rng_;
  std::vector<int> idx_;
  std::vector<double> prob_;
};
using Sampler = BasicSampler<void>;

}  // namespace lowbit::model
