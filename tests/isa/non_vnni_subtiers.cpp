// Compiled (not linked) by tests/isa.cmake: the entry points of the integer sub-tiers for
// CPUs without VNNI (avx2: VPMADDUBSW, for Haswell to Zen 4; avx512bw: Skylake-SP), for
// every integer scheme. This object holds only their code, so any VNNI instruction in it
// (VPDPBUSD, VPDPWSSD...) would fault on the CPUs those sub-tiers exist for.
#include "lowbit/kernels/x86/avx2_int.hpp"
#include "lowbit/kernels/x86/avx512_int.hpp"

namespace lowbit::detail {
#define LOWBIT_ISA_INSTANTIATE(run, scheme)                                                        \
  template void run<gemm_scheme::scheme>(const int_packed&, const int_workspace&, float*, std::int64_t, \
                                         std::int64_t, std::int64_t);
LOWBIT_ISA_INSTANTIATE(run_int_avx2, w8a8_int8)
LOWBIT_ISA_INSTANTIATE(run_int_avx2, w4a8_int4)
LOWBIT_ISA_INSTANTIATE(run_int_avx2, w4a8_int4_m2)
LOWBIT_ISA_INSTANTIATE(run_int_avx512bw, w8a8_int8)
LOWBIT_ISA_INSTANTIATE(run_int_avx512bw, w4a8_int4)
LOWBIT_ISA_INSTANTIATE(run_int_avx512bw, w4a8_int4_m2)
}  // namespace lowbit::detail
