#pragma once
// The per-call workspace of the integer-activation family: the activations quantized per
// token to int8, laid out group by group with each group padded to the kernel's k step (the
// padding is zero, so it adds nothing), the per-token scales, and the per-(token, group)
// corrections weight_bias * sum(a) that remove the weights' storage bias (pack/int_packing.hpp).
#include <cstdint>
#include <vector>

#include "lowbit/detail/aligned_buffer.hpp"
#include "lowbit/kernels/kernel.hpp"

namespace lowbit::detail {

struct int_workspace : workspace_header {  // family int_act
  std::int64_t m = 0;         // tokens
  std::int64_t a_stride = 0;  // bytes per token row, a multiple of 64
  std::int64_t a_rows = 0;    // rows of a: m, or m rounded up to whole AMX tiles
  aligned_buffer<std::int8_t> a;
  std::vector<float> a_scale;       // per token
  aligned_buffer<std::int32_t> comp;  // m x groups
};

}  // namespace lowbit::detail
