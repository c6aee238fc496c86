#pragma once
// The two OCP MX FP6 formats: every code is finite.
#include "lowbit/formats/exmy.hpp"

namespace lowbit {
// S EEE MM, bias 3, max 28.
using float6_e3m2fn = minifloat<exmy_desc<3, 2, 3, nonfinite_policy::finite_only>>;
// S EE MMM, bias 1, max 7.5.
using float6_e2m3fn = minifloat<exmy_desc<2, 3, 1, nonfinite_policy::finite_only>>;
}  // namespace lowbit
