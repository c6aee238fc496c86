// Compiled (not linked) by tests/isa.cmake: kernels whose inner step runs over a register
// block held in an array (acc[MR][NV], wv[R]...). Each such loop carries `#pragma GCC unroll`:
// without it GCC 12 at -O2 keeps the arrays in memory and the kernels run 1.6-3x slower than
// at -O3 (docs/design.md, "Register blocks are unrolled by pragma"). The tests count the
// block's instructions in one function of this object at -O2 and -O3.
#include "lowbit/kernels/wide16.hpp"
#include "lowbit/kernels/x86/avx512_int.hpp"

namespace lowbit::detail {
template void run_int_avx512vnni<gemm_scheme::w4a8_int4>(const int_packed&, const int_workspace&, float*, std::int64_t,
                                                         std::int64_t, std::int64_t);
template void wide16_rows<wide16_type::bf16, true>(const Wide16View&, ConstRowMatrixRef, RowMatrixRef, std::int64_t,
                                                   std::int64_t);
}  // namespace lowbit::detail
