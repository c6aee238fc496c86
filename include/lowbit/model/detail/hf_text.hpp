#pragma once
// Text helpers for the tokenizer.json implementation (hf_tokenizer.hpp): UTF-8 decoding and
// validation, Rust's from_utf8_lossy, the few Unicode properties the added-token rules need,
// GPT-2's byte <-> character table, and Unicode normalization / lowercasing through utf8proc
// (never hand-written tables). Only compiled when LOWBIT_HAVE_HF_TOKENIZER is set.
#include <utf8proc.h>

#include <array>
#include <cstdint>
#include <cstdlib>
#include <memory>
#include <string>
#include <string_view>

#include "lowbit/error.hpp"

namespace lowbit::model::detail::hf {

// Length of the UTF-8 sequence starting at s[i] when it is well formed (shortest form, no
// surrogates, <= U+10FFFF), else 0. *cp receives the code point.
inline std::size_t utf8_sequence(std::string_view s, std::size_t i, char32_t* cp) {
  const auto b = [&](std::size_t k) { return static_cast<unsigned char>(s[i + k]); };
  const std::size_t left = s.size() - i;
  const unsigned c0 = b(0);
  if (c0 < 0x80) {
    *cp = c0;
    return 1;
  }
  const auto cont = [&](std::size_t k) { return k < left && (b(k) & 0xC0) == 0x80; };
  if (c0 >= 0xC2 && c0 <= 0xDF) {
    if (!cont(1)) return 0;
    *cp = ((c0 & 0x1Fu) << 6) | (b(1) & 0x3Fu);
    return 2;
  }
  if (c0 >= 0xE0 && c0 <= 0xEF) {
    if (!cont(1) || !cont(2)) return 0;
    const unsigned c1 = b(1);
    if ((c0 == 0xE0 && c1 < 0xA0) || (c0 == 0xED && c1 >= 0xA0)) return 0;  // overlong, surrogate
    *cp = ((c0 & 0x0Fu) << 12) | ((c1 & 0x3Fu) << 6) | (b(2) & 0x3Fu);
    return 3;
  }
  if (c0 >= 0xF0 && c0 <= 0xF4) {
    if (!cont(1) || !cont(2) || !cont(3)) return 0;
    const unsigned c1 = b(1);
    if ((c0 == 0xF0 && c1 < 0x90) || (c0 == 0xF4 && c1 >= 0x90)) return 0;  // overlong, > U+10FFFF
    *cp = ((c0 & 0x07u) << 18) | ((c1 & 0x3Fu) << 12) | ((b(2) & 0x3Fu) << 6) | (b(3) & 0x3Fu);
    return 4;
  }
  return 0;
}

// Byte offset of the first invalid sequence, or npos when s is valid UTF-8.
inline std::size_t utf8_invalid_at(std::string_view s) {
  char32_t cp;
  for (std::size_t i = 0; i < s.size();) {
    if (static_cast<unsigned char>(s[i]) < 0x80) {
      ++i;
      continue;
    }
    const std::size_t n = utf8_sequence(s, i, &cp);
    if (n == 0) return i;
    i += n;
  }
  return std::string_view::npos;
}

// Length of the character at s[i] in valid UTF-8 (the lead byte says it).
inline std::size_t utf8_len(std::string_view s, std::size_t i) {
  const unsigned c = static_cast<unsigned char>(s[i]);
  return c < 0x80 ? 1 : c < 0xE0 ? 2 : c < 0xF0 ? 3 : 4;
}

inline void append_utf8(std::string& out, char32_t cp) {
  if (cp < 0x80) {
    out += static_cast<char>(cp);
  } else if (cp < 0x800) {
    out += static_cast<char>(0xC0 | (cp >> 6));
    out += static_cast<char>(0x80 | (cp & 0x3F));
  } else if (cp < 0x10000) {
    out += static_cast<char>(0xE0 | (cp >> 12));
    out += static_cast<char>(0x80 | ((cp >> 6) & 0x3F));
    out += static_cast<char>(0x80 | (cp & 0x3F));
  } else {
    out += static_cast<char>(0xF0 | (cp >> 18));
    out += static_cast<char>(0x80 | ((cp >> 12) & 0x3F));
    out += static_cast<char>(0x80 | ((cp >> 6) & 0x3F));
    out += static_cast<char>(0x80 | (cp & 0x3F));
  }
}

inline char32_t first_code_point(std::string_view s) {
  char32_t cp = 0;
  if (!s.empty()) utf8_sequence(s, 0, &cp);
  return cp;
}

// Rust's String::from_utf8_lossy: each maximal invalid subpart becomes one U+FFFD (the
// WHATWG / Unicode "substitution of maximal subparts" rule the decoders follow).
inline std::string utf8_lossy(std::string_view s) {
  std::string out;
  out.reserve(s.size());
  char32_t cp;
  for (std::size_t i = 0; i < s.size();) {
    const std::size_t n = utf8_sequence(s, i, &cp);
    if (n > 0) {
      out.append(s.data() + i, n);
      i += n;
      continue;
    }
    // Skip the longest prefix of a valid sequence (at least one byte).
    const unsigned c0 = static_cast<unsigned char>(s[i]);
    std::size_t skip = 1;
    if (c0 >= 0xC2 && c0 <= 0xF4) {
      const unsigned lo = c0 == 0xE0 ? 0xA0 : c0 == 0xF0 ? 0x90 : 0x80;
      const unsigned hi = c0 == 0xED ? 0x9F : c0 == 0xF4 ? 0x8F : 0xBF;
      const std::size_t need = c0 < 0xE0 ? 2 : c0 < 0xF0 ? 3 : 4;
      if (i + 1 < s.size()) {
        const unsigned c1 = static_cast<unsigned char>(s[i + 1]);
        if (c1 >= lo && c1 <= hi) {
          skip = 2;
          while (skip < need && i + skip < s.size() &&
                 (static_cast<unsigned char>(s[i + skip]) & 0xC0) == 0x80)
            ++skip;
        }
      }
    }
    out += "\xEF\xBF\xBD";
    i += skip;
  }
  return out;
}

// Rust's char::is_whitespace (the Unicode White_Space property: a fixed list of 25 code
// points), used by added tokens' lstrip / rstrip.
inline bool is_white_space(char32_t c) {
  return (c >= 0x09 && c <= 0x0D) || c == 0x20 || c == 0x85 || c == 0xA0 || c == 0x1680 ||
         (c >= 0x2000 && c <= 0x200A) || c == 0x2028 || c == 0x2029 || c == 0x202F ||
         c == 0x205F || c == 0x3000;
}

// A regex word character (\w in Unicode mode): letters, marks, numbers, connector
// punctuation; used by added tokens' single_word.
inline bool is_word_char(char32_t c) {
  switch (utf8proc_category(static_cast<utf8proc_int32_t>(c))) {
    case UTF8PROC_CATEGORY_LU: case UTF8PROC_CATEGORY_LL: case UTF8PROC_CATEGORY_LT:
    case UTF8PROC_CATEGORY_LM: case UTF8PROC_CATEGORY_LO: case UTF8PROC_CATEGORY_MN:
    case UTF8PROC_CATEGORY_MC: case UTF8PROC_CATEGORY_ME: case UTF8PROC_CATEGORY_ND:
    case UTF8PROC_CATEGORY_NL: case UTF8PROC_CATEGORY_NO: case UTF8PROC_CATEGORY_PC:
      return true;
    default:
      return c == 0x200C || c == 0x200D;  // Join_Control
  }
}

// Rust's char::is_numeric (categories Nd, Nl, No).
inline bool is_numeric_char(char32_t c) {
  const auto cat = utf8proc_category(static_cast<utf8proc_int32_t>(c));
  return cat == UTF8PROC_CATEGORY_ND || cat == UTF8PROC_CATEGORY_NL || cat == UTF8PROC_CATEGORY_NO;
}

inline bool is_ascii(std::string_view s) {
  for (char c : s)
    if (static_cast<unsigned char>(c) >= 0x80) return false;
  return true;
}

inline std::string utf8proc_normalize(std::string_view s, bool compat) {
  utf8proc_uint8_t* out = nullptr;
  int options = UTF8PROC_STABLE | UTF8PROC_COMPOSE;
  if (compat) options |= UTF8PROC_COMPAT;
  const utf8proc_ssize_t n = utf8proc_map(reinterpret_cast<const utf8proc_uint8_t*>(s.data()),
                                          static_cast<utf8proc_ssize_t>(s.size()), &out,
                                          static_cast<utf8proc_option_t>(options));
  std::unique_ptr<utf8proc_uint8_t, void (*)(void*)> owned(out, std::free);
  if (n < 0)
    lowbit::detail::fail(std::string("tokenizer: Unicode normalization failed: ") +
                         utf8proc_errmsg(n));
  return std::string(reinterpret_cast<const char*>(out), static_cast<std::size_t>(n));
}

// NFC / NFKC of valid UTF-8 through utf8proc. Only the non-ASCII runs go through utf8proc,
// each with the ASCII character before it: ASCII characters are starters that compose with
// nothing ASCII, so they can only change by composing with a following combining mark, and
// a (compatibility) decomposition never reaches past its own run. Text that is mostly ASCII
// is normalized at memcpy speed.
inline std::string unicode_normalize(std::string_view s, bool compat) {
  std::string out;
  out.reserve(s.size());
  std::size_t i = 0;
  while (i < s.size()) {
    std::size_t j = i;
    while (j < s.size() && static_cast<unsigned char>(s[j]) < 0x80) ++j;
    if (j == s.size()) {
      out.append(s.data() + i, j - i);
      break;
    }
    const std::size_t run_start = j > i ? j - 1 : j;  // the ASCII starter before the run
    out.append(s.data() + i, run_start - i);
    std::size_t k = j;
    while (k < s.size() && static_cast<unsigned char>(s[k]) >= 0x80) ++k;
    out += utf8proc_normalize(s.substr(run_start, k - run_start), compat);
    i = k;
  }
  return out;
}

// Rust's str::to_lowercase per character (as tokenizers' Lowercase normalizer applies it):
// the simple lowercase mapping, except U+0130 whose full mapping is "i" + U+0307.
inline std::string unicode_lowercase(std::string_view s) {
  std::string out;
  out.reserve(s.size());
  char32_t cp;
  for (std::size_t i = 0; i < s.size();) {
    const unsigned char c = static_cast<unsigned char>(s[i]);
    if (c < 0x80) {
      out += static_cast<char>(c >= 'A' && c <= 'Z' ? c + 32 : c);
      ++i;
      continue;
    }
    const std::size_t n = utf8_sequence(s, i, &cp);
    if (n == 0) lowbit::detail::fail("tokenizer: Lowercase: invalid UTF-8");
    i += n;
    if (cp == 0x130) {
      out += "i\xCC\x87";
      continue;
    }
    append_utf8(out, static_cast<char32_t>(utf8proc_tolower(static_cast<utf8proc_int32_t>(cp))));
  }
  return out;
}

// GPT-2's bytes_to_unicode: printable bytes stand for themselves, the other 68 bytes map to
// U+0100.. in byte order, so every byte is a visible character in byte-level vocabularies.
struct ByteLevelTable {
  std::array<std::string, 256> encode;  // byte -> UTF-8 of its character
  std::array<int, 0x144> decode;        // code point (< 0x144) -> byte, or -1

  ByteLevelTable() {
    decode.fill(-1);
    int n = 0;
    for (int b = 0; b < 256; ++b) {
      const bool printable = (b >= 33 && b <= 126) || (b >= 161 && b <= 172) || b >= 174;
      const char32_t cp = printable ? static_cast<char32_t>(b) : static_cast<char32_t>(256 + n++);
      append_utf8(encode[static_cast<std::size_t>(b)], cp);
      decode[cp] = b;
    }
  }
  static const ByteLevelTable& get() {
    static const ByteLevelTable table;
    return table;
  }
};

}  // namespace lowbit::model::detail::hf
