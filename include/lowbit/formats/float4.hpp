#pragma once
// FP4 E2M1 (OCP MX, NVFP4 element): values 0, 0.5, 1, 1.5, 2, 3, 4, 6 and their negatives.
#include "lowbit/formats/exmy.hpp"

namespace lowbit {
// S EE M, bias 1, max 6, no Inf or NaN.
using float4_e2m1fn = minifloat<exmy_desc<2, 1, 1, nonfinite_policy::finite_only>>;
}  // namespace lowbit
