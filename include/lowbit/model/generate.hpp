#pragma once
// generate(): text generation with a LlamaModel, token ids in and out.
//
//   1. prefill: the whole prompt in one forward pass (every linear layer sees a
//      [prompt, in] matrix, so the many-token kernels run), logits of the last token only;
//   2. decode: sample a token, run it alone at the next position (1-token kernels, keys and
//      values of earlier positions from the KV cache), repeat;
//   3. stop at a stop token (not included in the output), after max_new_tokens, when the
//      context (max_seq_len) is full, or when should_stop() says so (Ctrl-C).
// A prompt that does not leave room for one new token is an error, not truncated: cutting
// a prompt silently changes what the model answers.
#include <algorithm>
#include <chrono>
#include <functional>
#include <string>
#include <vector>

#include "lowbit/model/kv_cache.hpp"
#include "lowbit/model/llama.hpp"
#include "lowbit/model/sampler.hpp"

namespace lowbit::model {

enum class stop_reason { stop_token, max_tokens, context_full, interrupted };

inline const char* to_string(stop_reason r) noexcept {
  switch (r) {
    case stop_reason::stop_token: return "stop token";
    case stop_reason::max_tokens: return "max new tokens";
    case stop_reason::context_full: return "context full";
    case stop_reason::interrupted: return "interrupted";
  }
  return "?";
}

struct GenerateOptions {
  int max_new_tokens = 128;
  SamplerOptions sampling;
  kv_cache_type kv_cache = kv_cache_type::f32;
  std::vector<int> stop_ids;             // e.g. EOS; generation ends when one is sampled
  std::function<void(int)> on_token;     // called with every generated token as it is chosen
  std::function<bool()> should_stop;     // polled before every forward pass
};

struct GenerateResult {
  std::vector<int> prompt_ids, generated_ids;
  stop_reason reason = stop_reason::max_tokens;
  // Wall time as the user waits for it. prefill: the prompt's forward pass. decode: the whole
  // loop, i.e. the one-token forward passes plus sampling and on_token (e.g. streaming the
  // text), so a streamed generation reads a little below `lowbit bench`'s tg, which times
  // forward passes only (stories260K, 400 tokens: 13.0k tokens/s streamed, 14.2k not).
  double prefill_seconds = 0, decode_seconds = 0;
  int decode_steps = 0;  // one-token forward passes
  double prefill_tokens_per_second() const {
    return prefill_seconds > 0 ? static_cast<double>(prompt_ids.size()) / prefill_seconds : 0.0;
  }
  double decode_tokens_per_second() const {
    return decode_seconds > 0 ? decode_steps / decode_seconds : 0.0;
  }
};

inline void check_prompt(const LlamaConfig& c, const std::vector<int>& prompt) {
  if (prompt.empty()) lowbit::detail::fail("generate: the prompt has no tokens");
  if (static_cast<long>(prompt.size()) >= c.max_seq_len)
    lowbit::detail::fail("generate: the prompt has " + std::to_string(prompt.size()) +
                         " tokens but the context holds " + std::to_string(c.max_seq_len) +
                         " (max_seq_len); shorten it to at most " + std::to_string(c.max_seq_len - 1) +
                         " tokens to leave room for an answer");
  for (std::size_t i = 0; i < prompt.size(); ++i)
    if (prompt[i] < 0 || prompt[i] >= c.vocab_size)
      lowbit::detail::fail("generate: prompt token " + std::to_string(i) + " is id " + std::to_string(prompt[i]) +
                           ", outside the vocabulary [0, " + std::to_string(c.vocab_size) + ")");
}

template <class Deferred = void>  // see "Compile time" in docs/design.md
GenerateResult generate(const LlamaModel& model, const std::vector<int>& prompt, const GenerateOptions& o) {
  const LlamaConfig& c = model.config();
  if (o.max_new_tokens < 0) lowbit::detail::fail("generate: max_new_tokens must be >= 0");
  check_prompt(c, prompt);
  Sampler sampler(o.sampling);
  GenerateResult r;
  r.prompt_ids = prompt;
  if (o.max_new_tokens == 0) return r;
  const auto stopped = [&] { return o.should_stop && o.should_stop(); };
  if (stopped()) {
    r.reason = stop_reason::interrupted;
    return r;
  }

  KvCache cache(c, o.kv_cache);
  ForwardWorkspace ws;
  RowMatrixXf logits;
  using clock = std::chrono::steady_clock;
  auto t0 = clock::now();
  model.forward(prompt.data(), static_cast<int>(prompt.size()), cache, logits, ws, nullptr, /*last_only=*/true);
  r.prefill_seconds = std::chrono::duration<double>(clock::now() - t0).count();

  t0 = clock::now();
  for (;;) {
    const int next = sampler.sample(logits.row(logits.rows() - 1).data(), c.vocab_size);
    if (std::find(o.stop_ids.begin(), o.stop_ids.end(), next) != o.stop_ids.end()) {
      r.reason = stop_reason::stop_token;
      break;
    }
    r.generated_ids.push_back(next);
    if (o.on_token) o.on_token(next);
    if (static_cast<int>(r.generated_ids.size()) >= o.max_new_tokens) {
      r.reason = stop_reason::max_tokens;
      break;
    }
    if (cache.length >= c.max_seq_len) {
      r.reason = stop_reason::context_full;
      break;
    }
    if (stopped()) {
      r.reason = stop_reason::interrupted;
      break;
    }
    model.forward(&next, 1, cache, logits, ws);
    ++r.decode_steps;
  }
  r.decode_seconds = std::chrono::duration<double>(clock::now() - t0).count();
  return r;
}

}  // namespace lowbit::model
