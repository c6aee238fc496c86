#pragma once
// lowbit: header-only quantization formats, methods and CPU kernels for LLMs.
// The umbrella header; include the layer headers directly to compile less.
#include "lowbit/config.hpp"
#include "lowbit/dispatch/cpu_features.hpp"
#include "lowbit/error.hpp"
#include "lowbit/formats.hpp"
#include "lowbit/version.hpp"
