#pragma once
// The accuracy methods: calibration statistics, SmoothQuant(+), LoRC, GPTQ, and
// QuantizedLinear with the named recipes (DESIGN.md section 2).
#include "lowbit/algo/calibration.hpp"
#include "lowbit/algo/fake_quant.hpp"
#include "lowbit/algo/gptq.hpp"
#include "lowbit/algo/linear.hpp"
#include "lowbit/algo/linear_gemm.hpp"
#include "lowbit/algo/lorc.hpp"
#include "lowbit/algo/recipes.hpp"
#include "lowbit/algo/smoothquant.hpp"
