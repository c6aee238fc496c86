#pragma once
// lowbit: header-only quantization formats, methods and CPU kernels for LLMs.
// The umbrella header for the core: formats, quantizers, algorithms and the packed GEMM.
// The checkpoint reader/writer (lowbit/io.hpp, needs nlohmann_json) and the Llama model
// (lowbit/model.hpp) are included separately. Include layer headers directly to compile less.
#include "lowbit/config.hpp"
#include "lowbit/dispatch/cpu_features.hpp"
#include "lowbit/error.hpp"
#include "lowbit/algo.hpp"
#include "lowbit/formats.hpp"
#include "lowbit/gemm.hpp"
#include "lowbit/quant.hpp"
#include "lowbit/threads.hpp"
#include "lowbit/version.hpp"
