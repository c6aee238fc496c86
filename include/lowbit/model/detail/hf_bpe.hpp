#pragma once
// The BPE model of tokenizer.json, as Hugging Face tokenizers runs it (models/bpe): a word
// becomes one symbol per character (a vocabulary token, else its <0xXX> byte tokens with
// byte_fallback, else unk_token, fused when fuse_unk), then the adjacent pair with the lowest
// merge rank is merged, leftmost first, until none is left. The priority queue and its
// stale-entry rule are those of tokenizers' Word::merge_all, so ties resolve identically.
// Only compiled when LOWBIT_HAVE_HF_TOKENIZER is set.
#include <algorithm>
#include <array>
#include <cstdint>
#include <cstring>
#include <functional>
#include <mutex>
#include <nlohmann/json.hpp>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "lowbit/error.hpp"
#include "lowbit/model/detail/hf_text.hpp"

namespace lowbit::model::detail::hf {

// Open-addressing string -> id table: lookups take a string_view, so the hot path (one
// lookup per character and per word) never builds a std::string.
class StringIdMap {
 public:
  void reserve(std::size_t n) {
    std::size_t cap = 16;
    while (cap < 2 * n + 2) cap <<= 1;
    slots_.assign(cap, -1);
    keys_.reserve(n);
    values_.reserve(n);
  }
  // false when the key is already present (the first value stays).
  bool insert(std::string key, int value) {
    if (slots_.empty() || 2 * (keys_.size() + 1) > slots_.size()) grow();
    std::size_t i = hash(key) & (slots_.size() - 1);
    while (slots_[i] >= 0) {
      if (keys_[static_cast<std::size_t>(slots_[i])] == key) return false;
      i = (i + 1) & (slots_.size() - 1);
    }
    slots_[i] = static_cast<std::int32_t>(keys_.size());
    keys_.push_back(std::move(key));
    values_.push_back(value);
    return true;
  }
  int find(std::string_view key) const {
    if (slots_.empty()) return -1;
    std::size_t i = hash(key) & (slots_.size() - 1);
    while (slots_[i] >= 0) {
      const auto k = static_cast<std::size_t>(slots_[i]);
      if (keys_[k] == key) return values_[k];
      i = (i + 1) & (slots_.size() - 1);
    }
    return -1;
  }
  std::size_t size() const { return keys_.size(); }

 private:
  static std::size_t hash(std::string_view s) { return std::hash<std::string_view>{}(s); }
  void grow() {
    std::vector<std::int32_t> old;
    old.swap(slots_);
    slots_.assign(std::max<std::size_t>(16, old.size() * 2), -1);
    for (std::size_t k = 0; k < keys_.size(); ++k) {
      std::size_t i = hash(keys_[k]) & (slots_.size() - 1);
      while (slots_[i] >= 0) i = (i + 1) & (slots_.size() - 1);
      slots_[i] = static_cast<std::int32_t>(k);
    }
  }
  std::vector<std::int32_t> slots_;
  std::vector<std::string> keys_;
  std::vector<int> values_;
};

// Open-addressing (left id, right id) -> (rank, merged id) table: the merge loop looks a pair
// up two or three times per merge, so this is BPE's hottest lookup.
class PairMap {
 public:
  struct Value {
    int rank, id;
  };
  void reserve(std::size_t n) {
    std::size_t cap = 16;
    while (cap < 2 * n + 2) cap <<= 1;
    slots_.assign(cap, Slot{});
  }
  // A later duplicate replaces an earlier one, as tokenizers' HashMap collect does.
  void set(std::uint64_t key, Value v) {
    if (slots_.empty() || 2 * (count_ + 1) > slots_.size()) grow();
    std::size_t i = index(key);
    while (slots_[i].used && slots_[i].key != key) i = (i + 1) & (slots_.size() - 1);
    if (!slots_[i].used) ++count_;
    slots_[i] = {key, v, true};
  }
  const Value* find(std::uint64_t key) const {
    if (slots_.empty()) return nullptr;
    for (std::size_t i = index(key);; i = (i + 1) & (slots_.size() - 1)) {
      const Slot& s = slots_[i];
      if (!s.used) return nullptr;
      if (s.key == key) return &s.value;
    }
  }

 private:
  struct Slot {
    std::uint64_t key = 0;
    Value value{0, 0};
    bool used = false;
  };
  std::size_t index(std::uint64_t key) const {
    return static_cast<std::size_t>((key * 0x9E3779B97F4A7C15ull) >> 20) & (slots_.size() - 1);
  }
  void grow() {
    std::vector<Slot> old;
    old.swap(slots_);
    slots_.assign(std::max<std::size_t>(16, old.size() * 2), Slot{});
    for (const Slot& s : old) {
      if (!s.used) continue;
      std::size_t i = index(s.key);
      while (slots_[i].used) i = (i + 1) & (slots_.size() - 1);
      slots_[i] = s;
    }
  }
  std::vector<Slot> slots_;
  std::size_t count_ = 0;
};

struct BpeModel {
  StringIdMap vocab;
  std::vector<std::string> tokens;  // by id ("" and has_token false for gaps)
  std::vector<bool> has_token;
  // (left id, right id) -> (rank, merged id); a later duplicate merge replaces an earlier one,
  // as tokenizers' HashMap collect does.
  PairMap merges;
  std::string unk_token;  // empty: none
  bool has_unk = false, fuse_unk = false, byte_fallback = false, ignore_merges = false;
  std::array<int, 256> byte_ids{};   // id of "<0xXX>" or -1
  std::array<int, 128> ascii_ids{};  // id of a one-ASCII-character token or -1

  static std::uint64_t pair_key(int a, int b) {
    return (static_cast<std::uint64_t>(static_cast<std::uint32_t>(a)) << 32) |
           static_cast<std::uint32_t>(b);
  }
  const PairMap::Value* find_merge(int a, int b) const { return merges.find(pair_key(a, b)); }
};

// Parses {"type": "BPE", "vocab": {...}, "merges": [...], ...}. fail(msg) throws with the
// source named.
template <class Fail>
BpeModel parse_bpe(const nlohmann::json& m, Fail&& fail) {
  BpeModel bpe;
  const auto opt_string = [&](const char* key) -> std::string {
    const auto it = m.find(key);
    if (it == m.end() || it->is_null()) return {};
    if (!it->is_string()) fail(std::string("model.") + key + " must be a string or null");
    return it->get<std::string>();
  };
  const auto opt_bool = [&](const char* key) {
    const auto it = m.find(key);
    if (it == m.end() || it->is_null()) return false;
    if (!it->is_boolean()) fail(std::string("model.") + key + " must be true or false");
    return it->get<bool>();
  };
  if (const auto it = m.find("dropout"); it != m.end() && !it->is_null()) {
    if (!it->is_number()) fail("model.dropout must be a number or null");
    if (it->get<double>() != 0.0) fail("model.dropout (BPE dropout, random at encode time) is not supported");
  }
  if (!opt_string("continuing_subword_prefix").empty())
    fail("model.continuing_subword_prefix is not supported (only null or \"\")");
  if (!opt_string("end_of_word_suffix").empty())
    fail("model.end_of_word_suffix is not supported (only null or \"\")");
  bpe.unk_token = opt_string("unk_token");
  bpe.has_unk = m.contains("unk_token") && !m["unk_token"].is_null();
  bpe.fuse_unk = opt_bool("fuse_unk");
  bpe.byte_fallback = opt_bool("byte_fallback");
  bpe.ignore_merges = opt_bool("ignore_merges");

  const auto vit = m.find("vocab");
  if (vit == m.end() || !vit->is_object()) fail("model.vocab must be an object of token -> id");
  bpe.vocab.reserve(vit->size());
  constexpr std::int64_t kMaxId = (1 << 24) - 1;  // far above any real vocabulary
  for (auto it = vit->begin(); it != vit->end(); ++it) {
    if (!it.value().is_number_integer())
      fail("model.vocab['" + it.key() + "']: the id must be an integer");
    const auto id = it.value().get<std::int64_t>();
    if (id < 0 || id > kMaxId)
      fail("model.vocab['" + it.key() + "']: id " + std::to_string(id) + " is out of range");
    const auto uid = static_cast<std::size_t>(id);
    if (uid >= bpe.tokens.size()) {
      bpe.tokens.resize(uid + 1);
      bpe.has_token.resize(uid + 1, false);
    }
    if (bpe.has_token[uid])
      fail("model.vocab: id " + std::to_string(id) + " is given to both '" + bpe.tokens[uid] +
           "' and '" + it.key() + "'");
    bpe.tokens[uid] = it.key();
    bpe.has_token[uid] = true;
    bpe.vocab.insert(it.key(), static_cast<int>(id));  // object keys are unique
  }
  for (int b = 0; b < 256; ++b) {
    char name[8];
    static const char* hex = "0123456789ABCDEF";
    name[0] = '<'; name[1] = '0'; name[2] = 'x';
    name[3] = hex[b >> 4]; name[4] = hex[b & 15]; name[5] = '>';
    bpe.byte_ids[static_cast<std::size_t>(b)] = bpe.vocab.find(std::string_view(name, 6));
  }
  for (int c = 0; c < 128; ++c) {
    const char ch = static_cast<char>(c);
    bpe.ascii_ids[static_cast<std::size_t>(c)] = bpe.vocab.find(std::string_view(&ch, 1));
  }

  const auto mit = m.find("merges");
  if (mit == m.end() || mit->is_null()) return bpe;
  if (!mit->is_array()) fail("model.merges must be an array");
  bpe.merges.reserve(mit->size());
  int rank = 0;
  for (std::size_t i = 0; i < mit->size(); ++i) {
    const auto& e = (*mit)[i];
    std::string a, b;
    const std::string where = "model.merges[" + std::to_string(i) + "]";
    if (e.is_string()) {
      const std::string s = e.get<std::string>();
      if (s.rfind("#version", 0) == 0) continue;  // a merges.txt header line carried over
      const auto sp = s.find(' ');
      if (sp == std::string::npos || s.find(' ', sp + 1) != std::string::npos)
        fail(where + ": '" + s + "' is not two tokens separated by one space");
      a = s.substr(0, sp);
      b = s.substr(sp + 1);
    } else if (e.is_array() && e.size() == 2 && e[0].is_string() && e[1].is_string()) {
      a = e[0].get<std::string>();
      b = e[1].get<std::string>();
    } else {
      fail(where + ": a merge must be \"a b\" or [\"a\", \"b\"]");
    }
    const int ia = bpe.vocab.find(a), ib = bpe.vocab.find(b), im = bpe.vocab.find(a + b);
    if (ia < 0 || ib < 0 || im < 0)
      fail(where + ": broken merge '" + a + "' + '" + b + "': '" +
           (ia < 0 ? a : ib < 0 ? b : a + b) + "' is not in the vocabulary");
    bpe.merges.set(BpeModel::pair_key(ia, ib), {rank, im});
    ++rank;
  }
  return bpe;
}

// Scratch space for one encode() call (no allocation per word once warm).
struct BpeWork {
  struct Symbol {
    int id, prev, next, len;
  };
  struct Merge {
    int rank, pos, new_id;
  };
  std::vector<Symbol> symbols;
  std::vector<Merge> heap;
};

// Word::merge_word + merge_all: appends the ids of `word` (non-empty) to out.
inline void bpe_tokenize(const BpeModel& bpe, std::string_view word, BpeWork& w,
                         std::vector<int>& out) {
  if (bpe.ignore_merges) {
    const int id = bpe.vocab.find(word);
    if (id >= 0) {
      out.push_back(id);
      return;
    }
  }
  auto& sym = w.symbols;
  sym.clear();
  const auto add = [&](int id, int len) {
    const int n = static_cast<int>(sym.size());
    sym.push_back({id, n - 1, n + 1, len});
  };
  bool unk_pending = false;
  int unk_len = 0, unk_id = -1;
  const auto get_unk_id = [&]() {
    if (unk_id < 0) {
      unk_id = bpe.vocab.find(bpe.unk_token);
      if (unk_id < 0)
        lowbit::detail::fail("tokenizer: model.unk_token '" + bpe.unk_token +
                             "' is needed but is not in the vocabulary");
    }
    return unk_id;
  };
  for (std::size_t i = 0; i < word.size();) {
    const unsigned char c = static_cast<unsigned char>(word[i]);
    const std::size_t n = c < 0x80 ? 1 : utf8_len(word, i);
    const int id = c < 0x80 ? bpe.ascii_ids[c] : bpe.vocab.find(word.substr(i, n));
    const int len = static_cast<int>(n);
    if (id >= 0) {
      if (unk_pending) {
        add(get_unk_id(), unk_len);
        unk_pending = false;
      }
      add(id, len);
    } else {
      bool done = false;
      if (bpe.byte_fallback) {
        done = true;
        for (std::size_t k = 0; k < n; ++k)
          if (bpe.byte_ids[static_cast<unsigned char>(word[i + k])] < 0) done = false;
        // As tokenizers does, a pending unk is not flushed first (it lands after these).
        if (done)
          for (std::size_t k = 0; k < n; ++k) add(bpe.byte_ids[static_cast<unsigned char>(word[i + k])], 1);
      }
      if (!done && bpe.has_unk) {
        if (unk_pending && bpe.fuse_unk) {
          unk_len += len;
        } else {
          if (unk_pending) add(get_unk_id(), unk_len);
          get_unk_id();
          unk_pending = true;
          unk_len = len;
        }
      }
    }
    i += n;
  }
  if (unk_pending) add(get_unk_id(), unk_len);
  if (sym.empty()) return;
  sym.back().next = -1;

  // merge_all: a min-heap on (rank, pos); entries whose pair changed since are skipped.
  auto& heap = w.heap;
  heap.clear();
  const auto later = [](const BpeWork::Merge& a, const BpeWork::Merge& b) {
    return a.rank != b.rank ? a.rank > b.rank : a.pos > b.pos;
  };
  for (std::size_t i = 0; i + 1 < sym.size(); ++i)
    if (const auto* m = bpe.find_merge(sym[i].id, sym[i + 1].id))
      heap.push_back({m->rank, static_cast<int>(i), m->id});
  std::make_heap(heap.begin(), heap.end(), later);
  while (!heap.empty()) {
    std::pop_heap(heap.begin(), heap.end(), later);
    const BpeWork::Merge top = heap.back();
    heap.pop_back();
    auto& cur = sym[static_cast<std::size_t>(top.pos)];
    if (cur.len == 0 || cur.next == -1) continue;
    const int next_pos = cur.next;
    const BpeWork::Symbol right = sym[static_cast<std::size_t>(next_pos)];
    const auto* m = bpe.find_merge(cur.id, right.id);
    if (m == nullptr || m->id != top.new_id) continue;
    cur.id = top.new_id;
    cur.len += right.len;
    cur.next = right.next;
    sym[static_cast<std::size_t>(next_pos)].len = 0;
    if (right.next >= 0) sym[static_cast<std::size_t>(right.next)].prev = top.pos;
    if (cur.prev >= 0) {
      if (const auto* pm = bpe.find_merge(sym[static_cast<std::size_t>(cur.prev)].id, cur.id)) {
        heap.push_back({pm->rank, cur.prev, pm->id});
        std::push_heap(heap.begin(), heap.end(), later);
      }
    }
    if (cur.next >= 0) {
      if (const auto* nm = bpe.find_merge(cur.id, sym[static_cast<std::size_t>(cur.next)].id)) {
        heap.push_back({nm->rank, top.pos, nm->id});
        std::push_heap(heap.begin(), heap.end(), later);
      }
    }
  }
  for (const auto& s : sym)
    if (s.len != 0) out.push_back(s.id);
}

// Word -> ids cache shared by every encode() on one tokenizer (pre-tokenized words repeat a
// lot). Open addressing over flat arrays, looked up with a string_view: no allocation per
// word. Bounded; once full it only serves lookups, like tokenizers' own cache.
class WordCache {
 public:
  static constexpr std::size_t kCapacity = 1 << 16, kMaxWordBytes = 64;

  bool lookup(std::string_view word, std::size_t h, std::vector<int>& out) const {
    std::lock_guard<std::mutex> lock(mutex_);
    if (slots_.empty()) return false;
    for (std::size_t i = h & (slots_.size() - 1);; i = (i + 1) & (slots_.size() - 1)) {
      const Entry& e = slots_[i];
      if (e.key_len < 0) return false;
      if (e.hash == h && static_cast<std::size_t>(e.key_len) == word.size() &&
          std::memcmp(keys_.data() + e.key_at, word.data(), word.size()) == 0) {
        out.insert(out.end(), ids_.begin() + e.ids_at, ids_.begin() + e.ids_at + e.ids_len);
        return true;
      }
    }
  }
  void insert(std::string_view word, std::size_t h, const int* ids, std::size_t n) {
    std::lock_guard<std::mutex> lock(mutex_);
    if (slots_.empty()) slots_.resize(2 * kCapacity);
    if (count_ >= kCapacity) return;
    std::size_t i = h & (slots_.size() - 1);
    for (; slots_[i].key_len >= 0; i = (i + 1) & (slots_.size() - 1)) {
      const Entry& e = slots_[i];
      if (e.hash == h && static_cast<std::size_t>(e.key_len) == word.size() &&
          std::memcmp(keys_.data() + e.key_at, word.data(), word.size()) == 0)
        return;  // another thread got there first
    }
    slots_[i] = {h, static_cast<std::uint32_t>(keys_.size()), static_cast<std::int32_t>(word.size()),
                 static_cast<std::uint32_t>(ids_.size()), static_cast<std::uint32_t>(n)};
    keys_.append(word.data(), word.size());
    ids_.insert(ids_.end(), ids, ids + n);
    ++count_;
  }
  static std::size_t hash(std::string_view s) { return std::hash<std::string_view>{}(s); }

 private:
  struct Entry {
    std::size_t hash = 0;
    std::uint32_t key_at = 0;
    std::int32_t key_len = -1;  // -1: empty slot
    std::uint32_t ids_at = 0, ids_len = 0;
  };
  mutable std::mutex mutex_;
  std::vector<Entry> slots_;
  std::string keys_;
  std::vector<int> ids_;
  std::size_t count_ = 0;
};

}  // namespace lowbit::model::detail::hf
