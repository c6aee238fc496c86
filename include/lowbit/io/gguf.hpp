#pragma once
// Reading GGUF v3 files (llama.cpp / ggml): memory-mapped, zero-copy tensor views, validated
// before any byte is trusted, with the safetensors reader's discipline.
//
// Layout (docs/gguf.md of ggml, little-endian):
//   "GGUF" u32 version=3, u64 tensor_count, u64 kv_count,
//   kv_count x { string key, u32 value_type, value },
//   tensor_count x { string name, u32 n_dims, u64 ne[n_dims], u32 ggml_type, u64 offset },
//   zero padding to `general.alignment` (u32, a power of two, default 32), tensor data.
// A string is a u64 byte length and that many bytes (no terminator); an array is a u32 element
// type, a u64 element count and the elements. ne[0] is the innermost (contiguous) dimension:
// a [rows, cols] weight matrix has ne = {cols, rows}. Offsets are relative to the data section
// and multiples of the alignment.
//
// Every malformed input (short file, bad magic or version, counts larger than the file can
// hold, string lengths past the end, unknown value or tensor types, nested arrays, bools that
// are not 0/1, a bad general.alignment, duplicate keys or tensor names, rows that are not a
// whole number of blocks, tensor data misaligned, out of bounds or overlapping) raises
// lowbit::error "<file>: [key '<k>': | tensor '<t>': ]<problem>". Nothing is allocated from
// a count before the count is checked against the bytes that remain.
#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <type_traits>
#include <unordered_map>
#include <utility>
#include <vector>

#include "lowbit/error.hpp"
#include "lowbit/io/detail/mapped_file.hpp"
#include "lowbit/io/dtype.hpp"
#include "lowbit/io/safetensors.hpp"  // detail::checked_mul

namespace lowbit {

// ggml tensor types (the numbers are the file format's). Only the ones lowbit knows the block
// geometry of are listed; any other number is an "unknown ggml type" error.
enum class gguf_type : std::uint32_t {
  f32 = 0, f16 = 1, q4_0 = 2, q4_1 = 3, q5_0 = 6, q5_1 = 7, q8_0 = 8, q8_1 = 9,
  q2_k = 10, q3_k = 11, q4_k = 12, q5_k = 13, q6_k = 14, q8_k = 15,
  i8 = 24, i16 = 25, i32 = 26, i64 = 27, f64 = 28, bf16 = 30, mxfp4 = 39,
};

// Elements per block and bytes per block of a ggml type.
struct gguf_block_geometry {
  std::uint32_t block_elems = 0;  // 0: not a known type
  std::uint32_t block_bytes = 0;
};

constexpr gguf_block_geometry gguf_geometry(std::uint32_t t) noexcept {
  switch (t) {
    case 0: return {1, 4};      // F32
    case 1: return {1, 2};      // F16
    case 2: return {32, 18};    // Q4_0: fp16 d, 16 bytes of nibbles
    case 3: return {32, 20};    // Q4_1: fp16 d, fp16 m, 16 bytes
    case 6: return {32, 22};    // Q5_0: d, 4 bytes high bits, 16 bytes
    case 7: return {32, 24};    // Q5_1
    case 8: return {32, 34};    // Q8_0: fp16 d, 32 int8
    case 9: return {32, 36};    // Q8_1: fp16 d, fp16 s, 32 int8
    case 10: return {256, 84};  // Q2_K
    case 11: return {256, 110}; // Q3_K
    case 12: return {256, 144}; // Q4_K: fp16 d, fp16 dmin, 12 bytes scales, 128 bytes
    case 13: return {256, 176}; // Q5_K
    case 14: return {256, 210}; // Q6_K: 128 ql, 64 qh, 16 int8 scales, fp16 d
    case 15: return {256, 292}; // Q8_K: f32 d, 256 int8, 16 int16 bsums
    case 24: return {1, 1};     // I8
    case 25: return {1, 2};     // I16
    case 26: return {1, 4};     // I32
    case 27: return {1, 8};     // I64
    case 28: return {1, 8};     // F64
    case 30: return {1, 2};     // BF16
    case 39: return {32, 17};   // MXFP4: E8M0 e, 16 bytes of E2M1 nibbles
    default: return {};
  }
}

// The name ggml gives a type number ("Q4_K", "IQ2_XXS", ...), also for types lowbit cannot
// read, so errors name them; "type N" when even ggml has no such type.
inline std::string gguf_type_name(std::uint32_t t) {
  static const char* const names[] = {
      "F32",     "F16",    "Q4_0",    "Q4_1",   "Q4_2",   "Q4_3",   "Q5_0",      "Q5_1",      "Q8_0",
      "Q8_1",    "Q2_K",   "Q3_K",    "Q4_K",   "Q5_K",   "Q6_K",   "Q8_K",      "IQ2_XXS",   "IQ2_XS",
      "IQ3_XXS", "IQ1_S",  "IQ4_NL",  "IQ3_S",  "IQ2_S",  "IQ4_XS", "I8",        "I16",       "I32",
      "I64",     "F64",    "IQ1_M",   "BF16",   "Q4_0_4_4", "Q4_0_4_8", "Q4_0_8_8", "TQ1_0", "TQ2_0",
      "IQ4_NL_4_4", "IQ4_NL_4_8", "IQ4_NL_8_8", "MXFP4", "NVFP4", "Q1_0", "Q2_0"};
  if (t < sizeof(names) / sizeof(names[0])) return names[t];
  return "type " + std::to_string(t);
}
inline std::string gguf_type_name(gguf_type t) { return gguf_type_name(static_cast<std::uint32_t>(t)); }

// Metadata value types (the numbers are the file format's).
enum class gguf_value_type : std::uint32_t {
  u8 = 0, i8 = 1, u16 = 2, i16 = 3, u32 = 4, i32 = 5, f32 = 6, boolean = 7, string = 8, array = 9,
  u64 = 10, i64 = 11, f64 = 12,
};

constexpr std::string_view gguf_value_type_name(gguf_value_type t) noexcept {
  switch (t) {
    case gguf_value_type::u8: return "UINT8";
    case gguf_value_type::i8: return "INT8";
    case gguf_value_type::u16: return "UINT16";
    case gguf_value_type::i16: return "INT16";
    case gguf_value_type::u32: return "UINT32";
    case gguf_value_type::i32: return "INT32";
    case gguf_value_type::f32: return "FLOAT32";
    case gguf_value_type::boolean: return "BOOL";
    case gguf_value_type::string: return "STRING";
    case gguf_value_type::array: return "ARRAY";
    case gguf_value_type::u64: return "UINT64";
    case gguf_value_type::i64: return "INT64";
    case gguf_value_type::f64: return "FLOAT64";
  }
  return "?";
}
// Bytes of one scalar of the type; 0 for string and array.
constexpr std::size_t gguf_scalar_size(gguf_value_type t) noexcept {
  switch (t) {
    case gguf_value_type::u8: case gguf_value_type::i8: case gguf_value_type::boolean: return 1;
    case gguf_value_type::u16: case gguf_value_type::i16: return 2;
    case gguf_value_type::u32: case gguf_value_type::i32: case gguf_value_type::f32: return 4;
    case gguf_value_type::u64: case gguf_value_type::i64: case gguf_value_type::f64: return 8;
    default: return 0;
  }
}
constexpr bool gguf_value_type_valid(std::uint32_t t) noexcept { return t <= 12; }

// The scalar type that stores a C++ type (for typed access and the writer).
template <class T>
constexpr gguf_value_type gguf_value_type_of() noexcept {
  if constexpr (std::is_same_v<T, bool>) return gguf_value_type::boolean;
  else if constexpr (std::is_same_v<T, std::uint8_t>) return gguf_value_type::u8;
  else if constexpr (std::is_same_v<T, std::int8_t>) return gguf_value_type::i8;
  else if constexpr (std::is_same_v<T, std::uint16_t>) return gguf_value_type::u16;
  else if constexpr (std::is_same_v<T, std::int16_t>) return gguf_value_type::i16;
  else if constexpr (std::is_same_v<T, std::uint32_t>) return gguf_value_type::u32;
  else if constexpr (std::is_same_v<T, std::int32_t>) return gguf_value_type::i32;
  else if constexpr (std::is_same_v<T, float>) return gguf_value_type::f32;
  else if constexpr (std::is_same_v<T, std::uint64_t>) return gguf_value_type::u64;
  else if constexpr (std::is_same_v<T, std::int64_t>) return gguf_value_type::i64;
  else if constexpr (std::is_same_v<T, double>) return gguf_value_type::f64;
  else static_assert(!sizeof(T), "not a GGUF scalar type");
}

// One metadata value. Scalars keep their little-endian bytes in `raw` (so every value
// round-trips bit for bit, NaN payloads included); numeric arrays keep their elements'
// bytes in `raw`; strings and string arrays are decoded into `strings`.
struct GgufValue {
  gguf_value_type type = gguf_value_type::u8;
  gguf_value_type elem_type = gguf_value_type::u8;  // arrays only
  std::uint64_t count = 1;                          // array element count (1 for scalars)
  std::vector<std::uint8_t> raw;
  std::vector<std::string> strings;                 // string: one; string array: count

  bool is_array() const noexcept { return type == gguf_value_type::array; }
  gguf_value_type scalar_type() const noexcept { return is_array() ? elem_type : type; }

  template <class T>
  static GgufValue scalar(T v) {
    GgufValue g;
    g.type = gguf_value_type_of<T>();
    g.raw.resize(sizeof(T));
    std::memcpy(g.raw.data(), &v, sizeof(T));
    return g;
  }
  static GgufValue string(std::string s) {
    GgufValue g;
    g.type = gguf_value_type::string;
    g.strings.push_back(std::move(s));
    return g;
  }
  template <class T>
  static GgufValue array(const std::vector<T>& v) {
    GgufValue g;
    g.type = gguf_value_type::array;
    g.elem_type = gguf_value_type_of<T>();
    g.count = v.size();
    g.raw.resize(v.size() * sizeof(T));
    for (std::size_t i = 0; i < v.size(); ++i) {
      const T x = v[i];  // vector<bool> has no data()
      std::memcpy(g.raw.data() + i * sizeof(T), &x, sizeof(T));
    }
    return g;
  }
  static GgufValue string_array(std::vector<std::string> v) {
    GgufValue g;
    g.type = gguf_value_type::array;
    g.elem_type = gguf_value_type::string;
    g.count = v.size();
    g.strings = std::move(v);
    return g;
  }
};

// One tensor: a view into the mapped bytes, valid while the GgufFile is alive.
struct GgufTensor {
  std::string name;
  std::uint32_t type = 0;           // a ggml type number (gguf_type for the known ones)
  std::vector<std::uint64_t> ne;    // dimensions, innermost first (as the file stores them)
  const std::byte* data = nullptr;  // aligned to the file's alignment relative to the data section
  std::size_t nbytes = 0;
  std::uint64_t offset = 0;         // relative to the data section

  gguf_type ggml_type() const noexcept { return static_cast<gguf_type>(type); }
  std::uint64_t numel() const noexcept {
    std::uint64_t n = 1;
    for (const auto d : ne) n *= d;  // checked when the file was indexed
    return n;
  }
  // The tensor as a row-major [rows, cols] matrix: cols = ne[0], rows = the other dims' product.
  std::int64_t cols() const noexcept { return ne.empty() ? 1 : static_cast<std::int64_t>(ne[0]); }
  std::int64_t rows() const noexcept {
    return cols() == 0 ? 0 : static_cast<std::int64_t>(numel() / static_cast<std::uint64_t>(cols()));
  }
};

namespace detail {
constexpr std::uint32_t gguf_default_alignment = 32;
constexpr std::uint32_t gguf_max_dims = 4;            // GGML_MAX_DIMS
constexpr std::size_t gguf_max_tensor_name = 63;      // GGML_MAX_NAME - 1
constexpr std::uint64_t gguf_max_string = 1ull << 30; // as ggml's reader

// A bounds-checked little-endian cursor over the header bytes.
class gguf_cursor {
 public:
  gguf_cursor(const std::byte* p, std::size_t n) : p_(p), n_(n) {}
  std::size_t pos() const noexcept { return pos_; }
  std::size_t remaining() const noexcept { return n_ - pos_; }
  // Reads `size` bytes; false (and nothing read) when fewer remain.
  bool take(void* out, std::size_t size) noexcept {
    if (size > remaining()) return false;
    std::memcpy(out, p_ + pos_, size);
    pos_ += size;
    return true;
  }
  const std::byte* skip(std::size_t size) noexcept {
    if (size > remaining()) return nullptr;
    const std::byte* at = p_ + pos_;
    pos_ += size;
    return at;
  }

 private:
  const std::byte* p_;
  std::size_t n_;
  std::size_t pos_ = 0;
};
}  // namespace detail

class GgufFile {
 public:
  GgufFile() = default;

  // Memory-maps `path` (read-only) and validates it.
  template <class Deferred = void>  // see "Compile time" in docs/design.md
  static GgufFile open(const std::string& path) {
    GgufFile f;
    f.map_ = detail::mapped_file(path);
    f.index(f.map_.data(), f.map_.size(), path);
    return f;
  }
  // Validates `size` bytes at `bytes` (kept by the caller while this object is used); the
  // fuzzer's entry point.
  template <class Deferred = void>  // see "Compile time" in docs/design.md
  static GgufFile parse(const void* bytes, std::size_t size, const std::string& source = "<memory>") {
    GgufFile f;
    f.index(static_cast<const std::byte*>(bytes), size, source);
    return f;
  }

  const std::string& source() const noexcept { return source_; }
  std::uint32_t version() const noexcept { return version_; }
  std::uint32_t alignment() const noexcept { return alignment_; }
  std::size_t data_offset() const noexcept { return data_offset_; }  // of the data section, in the file
  std::size_t file_size() const noexcept { return file_size_; }
  // Metadata in file order.
  const std::vector<std::pair<std::string, GgufValue>>& metadata() const noexcept { return kv_; }
  const std::vector<GgufTensor>& tensors() const noexcept { return tensors_; }

  const GgufValue* find_value(const std::string& key) const noexcept {
    const auto it = kv_index_.find(key);
    return it == kv_index_.end() ? nullptr : &kv_[it->second].second;
  }
  const GgufTensor* find(const std::string& name) const noexcept {
    const auto it = by_name_.find(name);
    return it == by_name_.end() ? nullptr : &tensors_[it->second];
  }
  const GgufTensor& at(const std::string& name) const {
    const GgufTensor* t = find(name);
    if (t == nullptr) detail::fail(source_ + ": no tensor named '" + name + "'");
    return *t;
  }

  // Typed metadata access: fails naming the key when it is missing or of another type.
  template <class T>
  T get(const std::string& key) const {
    const GgufValue& v = value_of(key, gguf_value_type_of<T>(), false);
    T out;
    std::memcpy(&out, v.raw.data(), sizeof(T));
    return out;
  }
  const std::string& get_string(const std::string& key) const {
    return value_of(key, gguf_value_type::string, false).strings[0];
  }
  template <class T>
  std::vector<T> get_array(const std::string& key) const {
    const GgufValue& v = value_of(key, gguf_value_type_of<T>(), true);
    std::vector<T> out(static_cast<std::size_t>(v.count));
    for (std::size_t i = 0; i < out.size(); ++i) {
      T x;
      std::memcpy(&x, v.raw.data() + i * sizeof(T), sizeof(T));
      out[i] = x;
    }
    return out;
  }
  const std::vector<std::string>& get_string_array(const std::string& key) const {
    return value_of(key, gguf_value_type::string, true).strings;
  }

  void release(const GgufTensor& t) const noexcept { map_.release(t.data, t.nbytes); }

 private:
  [[noreturn]] void fail_at(const std::string& what, const std::string& problem) const {
    detail::fail(source_ + ": " + (what.empty() ? std::string() : what + ": ") + problem);
  }

  const GgufValue& value_of(const std::string& key, gguf_value_type want, bool array) const {
    const GgufValue* v = find_value(key);
    if (v == nullptr) fail_at("", "no metadata key '" + key + "'");
    if (v->is_array() != array || v->scalar_type() != want)
      fail_at("key '" + key + "'", "expected " + std::string(array ? "an array of " : "") +
                                       std::string(gguf_value_type_name(want)) + " but the file has " + describe(*v));
    return *v;
  }
  static std::string describe(const GgufValue& v) {
    if (!v.is_array()) return std::string(gguf_value_type_name(v.type));
    return "an array of " + std::string(gguf_value_type_name(v.elem_type));
  }

  template <class T>
  T read(detail::gguf_cursor& c, const std::string& what, const char* field) const {
    T v;
    if (!c.take(&v, sizeof(T)))
      fail_at(what, std::string("the file ends inside the ") + field + " (at byte " + std::to_string(c.pos()) + ")");
    return v;  // the format is little-endian; lowbit runs on little-endian targets only
  }

  template <class Deferred = void>  // see "Compile time" in docs/design.md
  std::string read_string(detail::gguf_cursor& c, const std::string& what, const char* field,
                          std::uint64_t max_len) const {
    const auto len = read<std::uint64_t>(c, what, field);
    if (len > max_len)
      fail_at(what, std::string(field) + " length " + std::to_string(len) + " exceeds the limit of " +
                        std::to_string(max_len) + " bytes");
    const std::byte* p = c.skip(len > c.remaining() ? SIZE_MAX : static_cast<std::size_t>(len));
    if (p == nullptr)
      fail_at(what, std::string(field) + " length " + std::to_string(len) + " runs past the end of the file (" +
                        std::to_string(c.remaining()) + " bytes left)");
    return std::string(reinterpret_cast<const char*>(p), static_cast<std::size_t>(len));
  }

  gguf_value_type read_value_type(detail::gguf_cursor& c, const std::string& what) const {
    const auto t = read<std::uint32_t>(c, what, "value type");
    if (!gguf_value_type_valid(t)) fail_at(what, "unknown value type " + std::to_string(t));
    return static_cast<gguf_value_type>(t);
  }

  template <class Deferred = void>  // see "Compile time" in docs/design.md
  GgufValue read_value(detail::gguf_cursor& c, const std::string& what) const {
    GgufValue v;
    v.type = read_value_type(c, what);
    gguf_value_type elem = v.type;
    std::uint64_t count = 1;
    if (v.is_array()) {
      elem = read_value_type(c, what);
      if (elem == gguf_value_type::array) fail_at(what, "nested arrays are not supported (nor read by llama.cpp)");
      v.elem_type = elem;
      count = read<std::uint64_t>(c, what, "array length");
      // Each element takes at least 1 byte (8 for a string's length), so a count the rest of
      // the file cannot hold is rejected before anything is allocated from it.
      const std::uint64_t min_size = elem == gguf_value_type::string ? 8 : gguf_scalar_size(elem);
      if (count > c.remaining() / min_size)
        fail_at(what, "array of " + std::to_string(count) + " " + std::string(gguf_value_type_name(elem)) +
                          " elements does not fit in the " + std::to_string(c.remaining()) + " bytes left");
      v.count = count;
    }
    if (elem == gguf_value_type::string) {
      v.strings.reserve(static_cast<std::size_t>(count));
      for (std::uint64_t i = 0; i < count; ++i) v.strings.push_back(read_string(c, what, "string", detail::gguf_max_string));
      return v;
    }
    const std::size_t bytes = static_cast<std::size_t>(count) * gguf_scalar_size(elem);
    const std::byte* p = c.skip(bytes);
    if (p == nullptr) fail_at(what, "the file ends inside the value");
    v.raw.assign(reinterpret_cast<const std::uint8_t*>(p), reinterpret_cast<const std::uint8_t*>(p) + bytes);
    if (elem == gguf_value_type::boolean)
      for (const auto b : v.raw)
        if (b > 1) fail_at(what, "bool value " + std::to_string(b) + " is neither 0 nor 1");
    return v;
  }

  template <class Deferred = void>  // see "Compile time" in docs/design.md
  void index(const std::byte* bytes, std::size_t size, const std::string& source) {
    source_ = source;
    file_size_ = size;
    detail::gguf_cursor c(bytes, size);
    if (size < 4 || std::memcmp(bytes, "GGUF", 4) != 0) fail_at("", "not a GGUF file (the magic 'GGUF' is missing)");
    c.skip(4);
    version_ = read<std::uint32_t>(c, "", "header");
    if (version_ != 2 && version_ != 3)
      fail_at("", "GGUF version " + std::to_string(version_) + " is not supported (only 2 and 3)");
    const auto n_tensors = read<std::uint64_t>(c, "", "header");
    const auto n_kv = read<std::uint64_t>(c, "", "header");
    // A kv takes at least 8 + 4 + 1 bytes, a tensor info at least 8 + 4 + 4 + 8.
    if (n_kv > c.remaining() / 13)
      fail_at("", "metadata count " + std::to_string(n_kv) + " is larger than the file can hold");
    if (n_tensors > c.remaining() / 24)
      fail_at("", "tensor count " + std::to_string(n_tensors) + " is larger than the file can hold");

    for (std::uint64_t i = 0; i < n_kv; ++i) {
      const std::string where = "metadata entry " + std::to_string(i);
      std::string key = read_string(c, where, "key", 65535);
      if (key.empty()) fail_at(where, "empty key");
      const std::string what = "key '" + key + "'";
      GgufValue v = read_value(c, what);
      if (!kv_index_.emplace(key, kv_.size()).second) fail_at(what, "duplicate metadata key");
      kv_.emplace_back(std::move(key), std::move(v));
    }

    alignment_ = detail::gguf_default_alignment;
    if (const GgufValue* a = find_value("general.alignment")) {
      if (a->is_array() || a->type != gguf_value_type::u32)
        fail_at("key 'general.alignment'", "must be UINT32 but is " + describe(*a));
      std::memcpy(&alignment_, a->raw.data(), 4);
      if (alignment_ == 0 || (alignment_ & (alignment_ - 1)) != 0)
        fail_at("key 'general.alignment'", "alignment " + std::to_string(alignment_) + " is not a power of two");
    }

    tensors_.reserve(static_cast<std::size_t>(n_tensors));
    for (std::uint64_t i = 0; i < n_tensors; ++i) {
      const std::string where = "tensor info " + std::to_string(i);
      GgufTensor t;
      t.name = read_string(c, where, "tensor name", UINT64_MAX);
      if (t.name.size() > detail::gguf_max_tensor_name)
        fail_at("tensor '" + t.name.substr(0, 80) + "'", "name of " + std::to_string(t.name.size()) +
                                                            " bytes exceeds ggml's limit of 63");
      const std::string what = "tensor '" + t.name + "'";
      const auto n_dims = read<std::uint32_t>(c, what, "dimension count");
      if (n_dims > detail::gguf_max_dims)
        fail_at(what, std::to_string(n_dims) + " dimensions exceed ggml's limit of 4");
      std::uint64_t numel = 1;
      for (std::uint32_t d = 0; d < n_dims; ++d) {
        const auto v = read<std::uint64_t>(c, what, "dimensions");
        if (v > static_cast<std::uint64_t>(INT64_MAX) || !detail::checked_mul(numel, v, numel) ||
            numel > static_cast<std::uint64_t>(INT64_MAX))
          fail_at(what, "element count overflows");
        t.ne.push_back(v);
      }
      t.type = read<std::uint32_t>(c, what, "type");
      t.offset = read<std::uint64_t>(c, what, "offset");
      const gguf_block_geometry g = gguf_geometry(t.type);
      if (g.block_elems == 0) fail_at(what, "unknown or unsupported ggml type " + gguf_type_name(t.type) +
                                                " (" + std::to_string(t.type) + ")");
      const std::uint64_t row = t.ne.empty() ? 1 : t.ne[0];
      if (row % g.block_elems != 0)
        fail_at(what, "rows of " + std::to_string(row) + " elements are not a whole number of " +
                          gguf_type_name(t.type) + " blocks of " + std::to_string(g.block_elems));
      std::uint64_t nbytes = 0;
      if (!detail::checked_mul(numel / g.block_elems, g.block_bytes, nbytes)) fail_at(what, "byte size overflows");
      t.nbytes = static_cast<std::size_t>(nbytes);
      if (!by_name_.emplace(t.name, tensors_.size()).second) fail_at(what, "duplicate tensor name");
      tensors_.push_back(std::move(t));
    }

    // The data section starts at the next multiple of the alignment (ggml pads with zeros).
    const std::uint64_t end_of_infos = c.pos();
    const std::uint64_t data_begin = (end_of_infos + alignment_ - 1) / alignment_ * alignment_;
    if (data_begin > size && !tensors_.empty())
      fail_at("", "the file ends before its data section (at byte " + std::to_string(data_begin) + ")");
    data_offset_ = static_cast<std::size_t>(std::min<std::uint64_t>(data_begin, size));
    const std::uint64_t data_size = size - data_offset_;

    for (GgufTensor& t : tensors_) {
      const std::string what = "tensor '" + t.name + "'";
      if (t.offset % alignment_ != 0)
        fail_at(what, "data offset " + std::to_string(t.offset) + " is not a multiple of the alignment " +
                          std::to_string(alignment_));
      if (t.offset > data_size || t.nbytes > data_size - t.offset)
        fail_at(what, "data [" + std::to_string(t.offset) + ", +" + std::to_string(t.nbytes) +
                          ") runs past the end of the file (the data section has " + std::to_string(data_size) +
                          " bytes)");
      t.data = bytes + data_offset_ + t.offset;
    }
    // Tensors must not overlap (ggml itself also wants them packed in order; lowbit only
    // needs them disjoint).
    std::vector<std::size_t> order(tensors_.size());
    for (std::size_t i = 0; i < order.size(); ++i) order[i] = i;
    std::sort(order.begin(), order.end(), [&](std::size_t a, std::size_t b) {
      return tensors_[a].offset < tensors_[b].offset ||
             (tensors_[a].offset == tensors_[b].offset && tensors_[a].nbytes < tensors_[b].nbytes);
    });
    std::uint64_t covered = 0;  // end of the data seen so far, and whose it is
    const GgufTensor* owner = nullptr;
    for (const std::size_t k : order) {
      const GgufTensor& t = tensors_[k];
      if (t.nbytes == 0) continue;
      if (owner != nullptr && t.offset < covered)
        fail_at("tensor '" + t.name + "'", "data at offset " + std::to_string(t.offset) + " overlaps tensor '" +
                                               owner->name + "'");
      covered = t.offset + t.nbytes;
      owner = &t;
    }
  }

  detail::mapped_file map_;
  std::string source_;
  std::uint32_t version_ = 0;
  std::uint32_t alignment_ = detail::gguf_default_alignment;
  std::size_t data_offset_ = 0;
  std::size_t file_size_ = 0;
  std::vector<std::pair<std::string, GgufValue>> kv_;
  std::unordered_map<std::string, std::size_t> kv_index_;
  std::vector<GgufTensor> tensors_;
  std::unordered_map<std::string, std::size_t> by_name_;
};

template <class Deferred = void>  // see "Compile time" in docs/design.md
inline GgufFile open_gguf(const std::string& path) { return GgufFile::open(path); }

namespace detail {

// An integer metadata value of any integer type; nullopt when absent.
template <class Deferred = void>  // see "Compile time" in docs/design.md
inline std::optional<std::int64_t> gguf_meta_int(const GgufFile& f, const std::string& key) {
  const GgufValue* v = f.find_value(key);
  if (v == nullptr) return std::nullopt;
  auto bad = [&]() -> std::int64_t {
    detail::fail(f.source() + ": key '" + key + "' must be an integer, it is " +
                         std::string(v->is_array() ? "an array" : gguf_value_type_name(v->type)));
  };
  if (v->is_array()) return bad();
  const std::uint8_t* p = v->raw.data();
  auto as = [&](auto x) {
    std::memcpy(&x, p, sizeof(x));
    return x;
  };
  switch (v->type) {
    case gguf_value_type::u8: return as(std::uint8_t{});
    case gguf_value_type::i8: return as(std::int8_t{});
    case gguf_value_type::u16: return as(std::uint16_t{});
    case gguf_value_type::i16: return as(std::int16_t{});
    case gguf_value_type::u32: return as(std::uint32_t{});
    case gguf_value_type::i32: return as(std::int32_t{});
    case gguf_value_type::i64: return as(std::int64_t{});
    case gguf_value_type::u64: {
      const std::uint64_t u = as(std::uint64_t{});
      if (u > static_cast<std::uint64_t>(INT64_MAX))
        detail::fail(f.source() + ": key '" + key + "' value " + std::to_string(u) + " out of range");
      return static_cast<std::int64_t>(u);
    }
    default: return bad();
  }
}
template <class Deferred = void>  // see "Compile time" in docs/design.md
inline std::optional<double> gguf_meta_float(const GgufFile& f, const std::string& key) {
  const GgufValue* v = f.find_value(key);
  if (v == nullptr) return std::nullopt;
  if (!v->is_array() && v->type == gguf_value_type::f32) return static_cast<double>(f.get<float>(key));
  if (!v->is_array() && v->type == gguf_value_type::f64) return f.get<double>(key);
  if (const auto i = gguf_meta_int(f, key)) return static_cast<double>(*i);
  return std::nullopt;
}

}  // namespace detail

}  // namespace lowbit
