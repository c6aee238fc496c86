// Compiled (not linked) by tests/isa.cmake: the float family's kernels on x86-64. Their
// one-token quad path (acc[8], p[8]) and the AVX2 tier's decode (v[4] per k-row) keep arrays
// of vector registers; with a loop over one left rolled, the array stays on the stack. The
// test counts their vector loads and stores on the stack at -O2 and -O3 (docs/design.md,
// "Register blocks are unrolled by pragma").
#include "lowbit/kernels/x86/avx2_float.hpp"
#include "lowbit/kernels/x86/avx512_float.hpp"

namespace lowbit::detail {
template void run_float_avx2<void>(const float_packed&, const float_workspace&, RowMatrixRef, std::int64_t,
                                   std::int64_t);
template void run_float_avx512<void>(const float_packed&, const float_workspace&, RowMatrixRef, std::int64_t,
                                     std::int64_t);
}  // namespace lowbit::detail
