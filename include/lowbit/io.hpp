#pragma once
// Checkpoint I/O: safetensors reading (memory-mapped, validated) and atomic streaming
// writing, sharded checkpoints, and the lowbit quantized-checkpoint format.
// Needs nlohmann_json (CMake: nlohmann_json::nlohmann_json, linked into lowbit::lowbit when
// found). Whole quantized layers (QuantizedLinear) are stored too, so io reads algo's data
// structures (docs/design.md explains this layering).
#include "lowbit/io/checkpoint.hpp"
#include "lowbit/io/dtype.hpp"
#include "lowbit/io/linear_checkpoint.hpp"
#include "lowbit/io/lorc_checkpoint.hpp"
#include "lowbit/io/paths.hpp"
#include "lowbit/io/safetensors.hpp"
#include "lowbit/io/safetensors_writer.hpp"
#include "lowbit/io/sharded.hpp"
