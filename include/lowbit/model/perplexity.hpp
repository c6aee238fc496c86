#pragma once
// Perplexity over a token stream, following ../shared/data/stories260k/README.md:
// the stream is split into documents at each BOS; every document (at most max_seq_len
// tokens; longer ones are cut there and counted in `truncated_documents`) runs causally
// from position 0 as one [tokens, dim] batch; the negative log-likelihood of tokens
// 1 .. len-1 given their prefix is summed in double; perplexity = exp(total / predicted).
// Documents are independent, so `threads` workers take them round-robin; per-document
// sums are added in document order, so the result does not depend on the thread count.
#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdint>
#include <exception>
#include <string>
#include <thread>
#include <vector>

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
  int bos = 1;
  // Keys/values are stored this way and read back by attention, within a document too, so
  // the perplexity shows what a quantized KV cache costs (model/kv_cache.hpp).
  kv_cache_type kv_cache = kv_cache_type::f32;
};

struct PerplexityResult {
  double total_nll = 0.0;
  std::int64_t predicted_tokens = 0;  // tokens scored (len - 1 per document)
  std::int64_t tokens = 0;            // tokens run through the model
  std::int64_t documents = 0;
  std::int64_t truncated_documents = 0;
  double seconds = 0.0;
  double perplexity() const {
    return predicted_tokens > 0 ? std::exp(total_nll / static_cast<double>(predicted_tokens)) : NAN;
  }
  double tokens_per_second() const { return seconds > 0 ? static_cast<double>(tokens) / seconds : 0.0; }
};

// Sum of -log p(tokens[t+1] | tokens[0..t]) for t = 0 .. n-2, from logits [n, vocab].
inline double sequence_nll(const RowMatrixXf& logits, const int* tokens, int n) {
  double nll = 0.0;
  for (int t = 0; t + 1 < n; ++t) {
    auto row = logits.row(t);
    const float mx = row.maxCoeff();
    const double lse = static_cast<double>(mx) +
                       std::log(static_cast<double>((row.array() - mx).exp().sum()));
    nll += lse - static_cast<double>(row(tokens[t + 1]));
  }
  return nll;
}

inline PerplexityResult evaluate_perplexity(const LlamaModel& model, const std::vector<int>& tokens,
                                            const PerplexityOptions& opt = {}) {
  std::vector<DocumentSpan> docs = split_documents(tokens, opt.bos);
  if (opt.max_docs >= 0 && static_cast<std::size_t>(opt.max_docs) < docs.size())
    docs.resize(static_cast<std::size_t>(opt.max_docs));
  const int max_len = model.config().max_seq_len;
  PerplexityResult r;
  for (auto& d : docs) {
    if (d.length > static_cast<std::size_t>(max_len)) {
      d.length = static_cast<std::size_t>(max_len);
      ++r.truncated_documents;
    }
    r.tokens += static_cast<std::int64_t>(d.length);
    r.predicted_tokens += static_cast<std::int64_t>(d.length) - 1;
  }
  r.documents = static_cast<std::int64_t>(docs.size());

  std::vector<double> doc_nll(docs.size(), 0.0);
  const auto start = std::chrono::steady_clock::now();
  const int threads = std::max(1, std::min<int>(opt.threads, static_cast<int>(docs.size())));
  std::vector<std::string> errors(static_cast<std::size_t>(threads));
  auto worker = [&](int w) {
    try {
      KvCache cache(model.config(), opt.kv_cache);
      ForwardWorkspace ws;
      RowMatrixXf logits;
      for (std::size_t i = static_cast<std::size_t>(w); i < docs.size(); i += static_cast<std::size_t>(threads)) {
        const int* doc = tokens.data() + docs[i].begin;
        const int n = static_cast<int>(docs[i].length);
        cache.clear();
        model.forward(doc, n, cache, logits, ws);
        doc_nll[i] = sequence_nll(logits, doc, n);
      }
    } catch (const std::exception& e) {
      errors[static_cast<std::size_t>(w)] = e.what();
    }
  };
  if (threads == 1) {
    worker(0);
  } else {
    std::vector<std::thread> pool;
    for (int w = 0; w < threads; ++w) pool.emplace_back(worker, w);
    for (auto& t : pool) t.join();
  }
  for (const auto& e : errors)
    if (!e.empty()) lowbit::detail::fail(e);
  r.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  for (double v : doc_nll) r.total_nll += v;
  return r;
}

}  // namespace lowbit::model
