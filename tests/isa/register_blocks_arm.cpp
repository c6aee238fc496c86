// Compiled (not linked) by tests/isa.cmake on AArch64: the NEON integer kernels, whose inner
// step runs over register blocks held in arrays (acc[MR][NV], acc[NP]). See
// register_blocks_x86.cpp and docs/design.md, "Register blocks are unrolled by pragma".
#include "lowbit/kernels/arm/neon_i8mm_int.hpp"
#include "lowbit/kernels/arm/neon_int.hpp"

namespace lowbit::detail {
template void run_int_neondot<gemm_scheme::w4a8_int4>(const int_packed&, const int_workspace&, float*, std::int64_t,
                                                      std::int64_t, std::int64_t);
template void run_int_neoni8mm<gemm_scheme::w4a8_int4>(const int_packed&, const int_workspace&, float*, std::int64_t,
                                                       std::int64_t, std::int64_t);
}  // namespace lowbit::detail
