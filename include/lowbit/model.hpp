#pragma once
// Llama-family model evaluation: model sources (Hugging Face directories, Meta-name
// safetensors, llama2.c .bin, lowbit checkpoints), the batched fp32/quantized forward pass and
// its per-layer API, the KV cache, sampling and generation, streamed decoding (DecodeStream),
// the llama2.c and tokenizer.json tokenizers and perplexity.
#include "lowbit/model/calibration.hpp"
#include "lowbit/model/decode_stream.hpp"
#include "lowbit/model/decoder_layer.hpp"
#include "lowbit/model/generate.hpp"
#include "lowbit/model/hf_tokenizer.hpp"
#include "lowbit/model/kv_cache.hpp"
#include "lowbit/model/llama.hpp"
#include "lowbit/model/load.hpp"
#include "lowbit/model/perplexity.hpp"
#include "lowbit/model/quantized_layers.hpp"
#include "lowbit/model/quantized_model.hpp"
#include "lowbit/model/sampler.hpp"
#include "lowbit/model/tokenizer.hpp"
