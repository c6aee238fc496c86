// Compiled (not linked) by tests/isa.cmake: the forward pass's fp32 product
// (model/detail/forward_ops.hpp), whose tiles keep c0[R], c1[R] in vector registers; with a
// loop over them left rolled, the arrays stay on the stack. The test counts vector loads and
// stores on the stack at -O2 and -O3 (docs/design.md, "Register blocks are unrolled by
// pragma").
#include "lowbit/model/detail/forward_ops.hpp"

void probe_forward_gemm(int m, int n, int k, const float* a, const float* b, float* c) {
  lowbit::model::detail::avx512::gemm_f32(m, n, k, a, k, b, n, c, n);
  lowbit::model::detail::avx2::gemm_f32(m, n, k, a, k, b, n, c, n);
}
