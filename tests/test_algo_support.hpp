#pragma once
// Shared helpers of the algorithm tests: deterministic random matrices.
#include <Eigen/Core>
#include <cstdint>
#include <random>

#include "lowbit/config.hpp"

namespace lowbit_test {

// A rows x cols matrix of N(0, sd^2) samples from a fixed seed (same on every platform
// that shares libstdc++'s normal_distribution).
inline lowbit::RowMatrixXf gaussian(Eigen::Index rows, Eigen::Index cols, std::uint64_t seed,
                                    float sd = 1.0f) {
  std::mt19937_64 rng(seed);
  std::normal_distribution<float> d(0.0f, sd);
  lowbit::RowMatrixXf m(rows, cols);
  for (Eigen::Index i = 0; i < m.size(); ++i) m.data()[i] = d(rng);
  return m;
}

}  // namespace lowbit_test
