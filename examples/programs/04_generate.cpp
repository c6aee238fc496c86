// Example 4: load a quantized checkpoint and generate text.
//
//   04_generate CHECKPOINT [PROMPT [TOKENIZER]]
// CHECKPOINT is what `lowbit quantize` writes (a .safetensors file or an output directory)
// or an fp32 model; load_llama_model() builds the model from the stored quantized layers
// without quantizing again, packed for this CPU. The tokenizer is found beside it unless
// TOKENIZER names one (a lone .safetensors file carries none). The text streams to stdout as
// it is generated.
#include <lowbit/model.hpp>
#include <lowbit/model/text_tokenizer.hpp>

#include <cstdio>
#include <string>

int main(int argc, char** argv) {
  using namespace lowbit::model;
  if (argc < 2) {
    std::fprintf(stderr, "usage: %s CHECKPOINT [PROMPT [TOKENIZER]]\n", argv[0]);
    return 2;
  }
  try {
    const LlamaModel model = load_llama_model(argv[1]);
    const int vocab = model.config().vocab_size;
    const TextTokenizer tok = argc > 3 ? TextTokenizer::load(argv[3], vocab)
                                       : TextTokenizer::for_model(argv[1], vocab, "give it as the third argument");
    const std::string prompt = argc > 2 ? argv[2] : "Once upon a time";

    GenerateOptions o;
    o.max_new_tokens = 48;
    o.sampling.temperature = 0.0f;  // greedy: the same text every run
    o.stop_ids = tok.stop_ids(eos_ids_beside(argv[1]));
    o.kv_cache = kv_cache_type::fp8;  // keys and values stored as E4M3 with per-head scales
    // Print each token's text as it is generated. DecodeStream holds back a character split
    // over several tokens until it is complete, and decodes only a short window per token.
    DecodeStream stream(tok);
    std::printf("%s", prompt.c_str());
    o.on_token = [&](int id) {
      std::fputs(stream.push(id).c_str(), stdout);
      std::fflush(stdout);
    };
    const GenerateResult r = generate(model, tok.encode(prompt), o);
    std::printf("%s\n", stream.finish().c_str());
    std::printf("[%zu prompt tokens at %.0f tokens/s, %zu generated at %.0f tokens/s; layers: %s]\n",
                r.prompt_ids.size(), r.prefill_tokens_per_second(), r.generated_ids.size(),
                r.decode_tokens_per_second(), model.linear(0, linear_slot::wq).describe().c_str());
  } catch (const lowbit::error& e) {
    std::fprintf(stderr, "error: %s\n", e.what());
    return 1;
  }
  return 0;
}
