#pragma once
// The two OCP FP8 formats.
#include "lowbit/formats/exmy.hpp"

namespace lowbit {
// S EEEE MMM, bias 7, max 448, no Inf, NaN = S.1111.111 (OCP E4M3, ml_dtypes float8_e4m3fn).
using float8_e4m3fn = minifloat<exmy_desc<4, 3, 7, nonfinite_policy::nan_only>>;
// S EEEEE MM, bias 15, max 57344, IEEE-like Inf and NaN (OCP E5M2, ml_dtypes float8_e5m2).
using float8_e5m2 = minifloat<exmy_desc<5, 2, 15, nonfinite_policy::ieee>>;
}  // namespace lowbit
