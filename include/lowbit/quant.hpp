#pragma once
// Quantization: QuantSpec and its text form, quantize()/dequantize() (runtime spec or the
// templated core), the GPTQ building blocks, dynamic per-token activation quantization and
// error metrics. See docs/design.md (DESIGN.md sections 2, 3 and 5) for the exact semantics.
#include "lowbit/quant/activation.hpp"
#include "lowbit/quant/metrics.hpp"
#include "lowbit/quant/quantized_matrix.hpp"
#include "lowbit/quant/quantizer.hpp"
#include "lowbit/quant/scheme.hpp"
#include "lowbit/quant/spec_text.hpp"
