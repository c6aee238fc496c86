#pragma once
// Llama-architecture model evaluation: weights (llama2.c .bin, Meta-name safetensors), the
// batched fp32/quantized forward pass, the llama2.c and tokenizer.json tokenizers and perplexity.
#include "lowbit/model/calibration.hpp"
#include "lowbit/model/hf_tokenizer.hpp"
#include "lowbit/model/llama.hpp"
#include "lowbit/model/load.hpp"
#include "lowbit/model/perplexity.hpp"
#include "lowbit/model/quantized_layers.hpp"
#include "lowbit/model/tokenizer.hpp"
