#pragma once
// The LoRC factors (LowRank) and options, without the SVDs that compute them (algo/lorc.hpp):
// what a checkpoint reader or a layer holding factors needs, at the cost of Eigen/Core only
// ("Compile time" in docs/design.md).
#include <cstdint>
#include <vector>

#include "lowbit/config.hpp"

namespace lowbit {

enum class lorc_storage : std::uint8_t { f32, f16, int8 };

enum class svd_method : std::uint8_t {
  automatic,   // exact when min(out, in) <= LorcOptions::exact_max_dim, randomized otherwise
  exact,       // Eigen::BDCSVD of the whole error
  randomized,  // range finder + power iterations
};

struct LorcOptions {
  lorc_storage storage = lorc_storage::f16;
  svd_method method = svd_method::automatic;
  std::int64_t exact_max_dim = 512;
  int oversampling = 16;       // extra columns of the random sketch
  int power_iterations = 6;    // passes of (E E^T): quantization error has a flat spectrum,
                               // which needs more of them than the textbook 2
  std::uint64_t seed = 0x10c5;
};

struct LowRank {
  RowMatrixXf u;  // [out, r] effective values
  RowMatrixXf v;  // [r, in] effective values
  lorc_storage storage = lorc_storage::f32;
  // int8 storage only: codes and per-row scales, u = u_codes * u_scales (per row), same for v.
  RowMatrixXi8 u_codes, v_codes;
  std::vector<float> u_scales, v_scales;

  int rank() const noexcept { return static_cast<int>(u.cols()); }
  // u * v, the compensation added to W_hat. A template only so that Eigen's matrix product is
  // compiled where it is called ("Compile time" in docs/design.md).
  template <class Deferred = void>
  RowMatrixXf product() const { return u * v; }
  // Storage the factors add, in bits (scales counted at 32 bits).
  std::int64_t storage_bits() const noexcept {
    const std::int64_t n = u.size() + v.size();
    switch (storage) {
      case lorc_storage::f32: return 32 * n;
      case lorc_storage::f16: return 16 * n;
      case lorc_storage::int8: return 8 * n + 32 * (u.rows() + v.rows());
    }
    return 0;
  }
  // The same per weight element of the [out, in] matrix it compensates.
  double bits_per_weight() const noexcept {
    const double elems = double(u.rows()) * double(v.cols());
    return elems > 0 ? double(storage_bits()) / elems : 0.0;
  }
};

}  // namespace lowbit
