#pragma once
// Perplexity over a token stream, in two modes.
//  - Per document, following ../shared/data/stories260k/README.md: the stream is split into
//    documents at each BOS (or given as spans); every document (at most max_seq_len tokens;
//    longer ones are cut there and counted in `truncated_documents`) runs causally from
//    position 0 as one [tokens, dim] batch; the negative log-likelihood of tokens 1 .. len-1
//    given their prefix is summed in double; perplexity = exp(total / predicted).
//  - Fixed context (evaluate_perplexity_windows): llama.cpp's perplexity tool's windows.
// Sequences are independent, so `threads` workers take them round-robin; per-sequence sums
// are added in order, so the result does not depend on the thread count. Nothing to score
// (an empty stream, only 1-token documents, max_docs 0) is an error, not a NaN.
#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdint>
#include <exception>
#include <functional>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "lowbit/threads.hpp"
#include "lowbit/model/detail/read_file.hpp"
#include "lowbit/model/llama.hpp"

namespace lowbit::model {

// Reads a stream of uint16 little-endian token ids.
inline std::vector<int> read_u16_tokens(const std::string& path) {
  const auto bytes = detail::read_file_bytes(path);
  if (bytes.size() % 2 != 0)
    lowbit::detail::fail(path + ": " + std::to_string(bytes.size()) +
                         " bytes is not a whole number of uint16 token ids");
  std::vector<int> tokens(bytes.size() / 2);
  for (std::size_t i = 0; i < tokens.size(); ++i)
    tokens[i] = bytes[2 * i] | (bytes[2 * i + 1] << 8);
  return tokens;
}

struct DocumentSpan {
  std::size_t begin = 0, length = 0;
};

// Splits at every occurrence of `bos`; tokens before the first BOS form a document too.
inline std::vector<DocumentSpan> split_documents(const std::vector<int>& tokens, int bos = 1) {
  std::vector<DocumentSpan> docs;
  for (std::size_t i = 0; i < tokens.size(); ++i) {
    if (i == 0 || tokens[i] == bos) docs.push_back({i, 0});
    ++docs.back().length;
  }
  return docs;
}

struct PerplexityOptions {
  long max_docs = -1;  // evaluate only the first N documents (all when < 0)
  int threads = 1;
  int bos = 1;         // the id documents start with (the model's bos_token_id)
  // Keys/values are stored this way and read back by attention, within a document too, so
  // the perplexity shows what a quantized KV cache costs (model/kv_cache.hpp).
  kv_cache_type kv_cache = kv_cache_type::f32;
  // Called after each document or window with (done, total), from worker threads but never
  // concurrently (progress reports on stderr).
  std::function<void(std::int64_t, std::int64_t)> progress;
};

struct PerplexityResult {
  double total_nll = 0.0;
  double total_nll_sq = 0.0;          // sum of squared per-token NLL (standard error)
  std::int64_t predicted_tokens = 0;  // tokens scored (len - 1 per document)
  std::int64_t tokens = 0;            // tokens run through the model
  std::int64_t documents = 0;         // documents, or windows in --ctx mode
  std::int64_t truncated_documents = 0;
  double seconds = 0.0;
  double mean_nll() const { return predicted_tokens > 0 ? total_nll / static_cast<double>(predicted_tokens) : NAN; }
  double perplexity() const { return std::exp(mean_nll()); }
  // Sample standard deviation of the per-token NLL.
  double nll_stddev() const {
    if (predicted_tokens < 2) return NAN;
    const double n = static_cast<double>(predicted_tokens), m = mean_nll();
    return std::sqrt(std::max(0.0, (total_nll_sq - n * m * m) / (n - 1)));
  }
  // Standard error of the perplexity by the delta method on the mean NLL:
  // se(exp(mean)) = exp(mean) * sd(nll) / sqrt(n). (llama.cpp prints the same quantity with
  // the population variance over n - 1.) Tokens of one document are not independent, so
  // this understates the spread across documents; it is a resolution guide, not a CI.
  double perplexity_stderr() const {
    return perplexity() * nll_stddev() / std::sqrt(static_cast<double>(predicted_tokens));
  }
  double tokens_per_second() const { return seconds > 0 ? static_cast<double>(tokens) / seconds : 0.0; }
};

struct NllSum {
  double sum = 0.0, sum_sq = 0.0;
};

// -log p(tokens[t+1] | tokens[0..t]) for t = first .. n-2, from logits [n, vocab]: sum and
// sum of squares.
template <class Deferred = void>  // see "Compile time" in docs/design.md
NllSum sequence_nll_sum(const deferred_t<Deferred, RowMatrixXf>& logits, const int* tokens, int n, int first = 0) {
  NllSum s;
  for (int t = first; t + 1 < n; ++t) {
    auto row = logits.row(t);
    const float mx = row.maxCoeff();
    const double lse = static_cast<double>(mx) + std::log(static_cast<double>((row.array() - mx).exp().sum()));
    const double nll = lse - static_cast<double>(row(tokens[t + 1]));
    s.sum += nll;
    s.sum_sq += nll * nll;
  }
  return s;
}
template <class Deferred = void>  // see "Compile time" in docs/design.md
double sequence_nll(const deferred_t<Deferred, RowMatrixXf>& logits, const int* tokens, int n) {
  return sequence_nll_sum<Deferred>(logits, tokens, n).sum;
}

// One scored sequence of the stream: tokens [begin, begin + length) run from position 0,
// predictions of tokens score_from+1 .. length-1 counted; when first_token >= 0 it replaces
// the sequence's first token (llama.cpp puts BOS at the start of every window).
struct ScoredSpan {
  std::size_t begin = 0, length = 0;
  int score_from = 0;
  int first_token = -1;
};

// Evaluates the spans (each causal from position 0, at most max_seq_len long) on `threads`
// workers; sums are added in span order, so the result does not depend on the thread count.
template <class Deferred = void>  // see "Compile time" in docs/design.md
PerplexityResult evaluate_spans(const deferred_t<Deferred, LlamaModel>& model, const std::vector<int>& tokens,
                                       const std::vector<ScoredSpan>& spans, const PerplexityOptions& opt = {}) {
  PerplexityResult r;
  for (const ScoredSpan& s : spans) {
    if (s.begin + s.length > tokens.size() || s.length > static_cast<std::size_t>(model.config().max_seq_len))
      lowbit::detail::fail("perplexity: a span leaves the token stream or exceeds max_seq_len");
    r.tokens += static_cast<std::int64_t>(s.length);
    if (static_cast<std::int64_t>(s.length) > s.score_from + 1)
      r.predicted_tokens += static_cast<std::int64_t>(s.length) - 1 - s.score_from;
  }
  r.documents = static_cast<std::int64_t>(spans.size());
  if (spans.empty()) lowbit::detail::fail("perplexity: no documents to evaluate (empty token stream or --max-docs 0)");
  if (r.predicted_tokens == 0)
    lowbit::detail::fail("perplexity: no token to predict: every document has fewer than 2 tokens (" +
                         std::to_string(r.tokens) + " tokens in " + std::to_string(r.documents) + " documents)");

  std::vector<NllSum> nll(spans.size());
  const auto start = std::chrono::steady_clock::now();
  const int threads = std::max(1, std::min<int>(opt.threads, static_cast<int>(spans.size())));
  std::vector<std::string> errors(static_cast<std::size_t>(threads));
  std::mutex progress_mutex;
  std::int64_t done = 0;
  auto worker = [&](int w) {
    try {
      deferred_t<Deferred, KvCache> cache(model.config(), opt.kv_cache);
      deferred_t<Deferred, ForwardWorkspace> ws;
      deferred_t<Deferred, RowMatrixXf> logits;
      std::vector<int> seq;
      for (std::size_t i = static_cast<std::size_t>(w); i < spans.size(); i += static_cast<std::size_t>(threads)) {
        const ScoredSpan& s = spans[i];
        seq.assign(tokens.begin() + static_cast<std::ptrdiff_t>(s.begin),
                   tokens.begin() + static_cast<std::ptrdiff_t>(s.begin + s.length));
        if (s.first_token >= 0) seq[0] = s.first_token;
        const int n = static_cast<int>(s.length);
        cache.clear();
        model.forward(seq.data(), n, cache, logits, ws);
        nll[i] = sequence_nll_sum<Deferred>(logits, seq.data(), n, s.score_from);
        if (opt.progress) {
          std::lock_guard<std::mutex> lock(progress_mutex);
          opt.progress(++done, static_cast<std::int64_t>(spans.size()));
        }
      }
    } catch (const std::exception& e) {
      errors[static_cast<std::size_t>(w)] = e.what();
    }
  };
  if (threads == 1) {
    worker(0);
  } else {
    // The library's pool: a thread that cannot be created leaves its share to the others
    // (detail/threads.hpp) instead of std::terminate from a joinable std::thread.
    lowbit::parallel_for(threads, threads, {}, [&](std::int64_t w) { worker(static_cast<int>(w)); });
  }
  for (const auto& e : errors)
    if (!e.empty()) lowbit::detail::fail(e);
  r.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  for (const NllSum& v : nll) {
    r.total_nll += v.sum;
    r.total_nll_sq += v.sum_sq;
  }
  return r;
}

// Per-document perplexity of given documents: each (cut at max_seq_len, counted in
// truncated_documents) runs from position 0 and every token after its first is scored.
template <class Deferred = void>  // see "Compile time" in docs/design.md
PerplexityResult evaluate_documents(const deferred_t<Deferred, LlamaModel>& model, const std::vector<int>& tokens,
                                           std::vector<DocumentSpan> docs, const PerplexityOptions& opt = {}) {
  if (opt.max_docs >= 0 && static_cast<std::size_t>(opt.max_docs) < docs.size())
    docs.resize(static_cast<std::size_t>(opt.max_docs));
  const std::size_t max_len = static_cast<std::size_t>(model.config().max_seq_len);
  std::vector<ScoredSpan> spans;
  std::int64_t truncated = 0;
  for (const DocumentSpan& d : docs) {
    if (d.length == 0) continue;
    if (d.length > max_len) ++truncated;
    spans.push_back({d.begin, std::min(d.length, max_len), 0, -1});
  }
  PerplexityResult r = evaluate_spans<Deferred>(model, tokens, spans, opt);
  r.truncated_documents = truncated;
  return r;
}

// Per-document perplexity of a stream split at every opt.bos.
template <class Deferred = void>  // see "Compile time" in docs/design.md
PerplexityResult evaluate_perplexity(const deferred_t<Deferred, LlamaModel>& model, const std::vector<int>& tokens,
                                            const PerplexityOptions& opt = {}) {
  return evaluate_documents<Deferred>(model, tokens, split_documents(tokens, opt.bos), opt);
}

// Fixed-context perplexity of the concatenated stream, as llama.cpp's perplexity tool does
// it: non-overlapping windows of `ctx` tokens (a shorter tail is dropped), each run from
// position 0. `score_from` = 0 scores every token of the window after its first; llama.cpp
// scores only the second half (score_from = ctx / 2) and, when the model adds BOS, puts
// BOS in place of each window's first token (first_token = bos; -1 keeps the stream's token).
// opt.max_docs limits the number of windows.
template <class Deferred = void>  // see "Compile time" in docs/design.md
PerplexityResult evaluate_perplexity_windows(const deferred_t<Deferred, LlamaModel>& model, const std::vector<int>& tokens, int ctx,
                                                    int score_from = 0, int first_token = -1,
                                                    const PerplexityOptions& opt = {}) {
  if (ctx < 2 || ctx > model.config().max_seq_len)
    lowbit::detail::fail("perplexity: --ctx " + std::to_string(ctx) + " must be in [2, max_seq_len " +
                         std::to_string(model.config().max_seq_len) + "]");
  if (score_from < 0 || score_from > ctx - 2)
    lowbit::detail::fail("perplexity: scoring from position " + std::to_string(score_from) + " leaves nothing to score in a window of " + std::to_string(ctx));
  std::size_t windows = tokens.size() / static_cast<std::size_t>(ctx);
  if (opt.max_docs >= 0) windows = std::min(windows, static_cast<std::size_t>(opt.max_docs));
  if (windows == 0)
    lowbit::detail::fail("perplexity: the stream has " + std::to_string(tokens.size()) +
                         " tokens, fewer than one window of --ctx " + std::to_string(ctx));
  std::vector<ScoredSpan> spans;
  for (std::size_t w = 0; w < windows; ++w) spans.push_back({w * static_cast<std::size_t>(ctx), static_cast<std::size_t>(ctx), score_from, first_token});
  return evaluate_spans<Deferred>(model, tokens, spans, opt);
}

}  // namespace lowbit::model
