#pragma once
// Writing GGUF v3 files, atomically and tensor by tensor.
//
// GGUF puts every tensor's offset in the header, in front of the data, so the header can only
// be written once every tensor's type and shape are known. The writer therefore works in two
// phases, as llama.cpp's own writer does:
//   GgufWriter w(path);
//   w.set("general.architecture", std::string("llama"));   // metadata, any value type
//   w.add_tensor_info("blk.0.attn_q.weight", gguf_type::q8_0, {cols, rows});  // every tensor
//   w.write_tensor_data("blk.0.attn_q.weight", bytes, n);  // then the data, in the same order
//   w.finish();
// The header goes out on the first write_tensor_data (or at finish); from then on metadata
// and tensor infos are frozen. Tensor data is placed at offsets that are multiples of
// general.alignment (written into the metadata when it is not the default 32), zero padded.
//
// Atomic: nothing appears under the final name before finish() has written, fsynced and
// renamed the file; an exception, or destruction without finish(), removes the temporary.
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <memory>
#include <string>
#include <type_traits>
#include <unordered_map>
#include <utility>
#include <vector>

#include "lowbit/error.hpp"
#include "lowbit/io/detail/atomic_file.hpp"
#include "lowbit/io/gguf.hpp"

namespace lowbit {

class GgufWriter {
 public:
  explicit GgufWriter(const std::string& path, std::uint32_t alignment = detail::gguf_default_alignment)
      : file_(std::make_unique<detail::atomic_output_file>(path)), alignment_(alignment) {
    if (alignment == 0 || (alignment & (alignment - 1)) != 0)
      detail::fail("GGUF '" + path + "': alignment " + std::to_string(alignment) + " is not a power of two");
    if (alignment != detail::gguf_default_alignment) set("general.alignment", alignment);
  }

  const std::string& path() const noexcept { return file_->final_path(); }

  // Sets (or replaces) a metadata value; keys keep the order of their first set.
  void set(const std::string& key, GgufValue v) {
    check_header_open(key);
    if (key.empty() || key.size() > 65535) fail("key '" + key.substr(0, 80) + "': a key must have 1 to 65535 bytes");
    if (v.is_array() && v.elem_type == gguf_value_type::array) fail("key '" + key + "': nested arrays are not supported");
    // The data layout follows the constructor's alignment; a different value here would
    // make readers look for every tensor in the wrong place.
    if (key == "general.alignment" &&
        (v.is_array() || v.type != gguf_value_type::u32 || std::memcmp(v.raw.data(), &alignment_, 4) != 0))
      fail("key 'general.alignment': must be the UINT32 " + std::to_string(alignment_) +
           " given to the constructor (which sets it)");
    const auto it = kv_index_.find(key);
    if (it != kv_index_.end()) {
      kv_[it->second].second = std::move(v);
      return;
    }
    kv_index_.emplace(key, kv_.size());
    kv_.emplace_back(key, std::move(v));
  }
  template <class T, class = std::enable_if_t<std::is_arithmetic_v<T>>>
  void set(const std::string& key, T v) { set(key, GgufValue::scalar(v)); }
  void set(const std::string& key, std::string v) { set(key, GgufValue::string(std::move(v))); }
  void set(const std::string& key, const char* v) { set(key, GgufValue::string(v)); }
  template <class T>
  void set(const std::string& key, const std::vector<T>& v) { set(key, GgufValue::array(v)); }
  void set(const std::string& key, std::vector<std::string> v) { set(key, GgufValue::string_array(std::move(v))); }

  // Declares a tensor: name, ggml type and dimensions innermost first ({cols, rows} for a
  // row-major matrix). Its data must follow through write_tensor_data in declaration order.
  void add_tensor_info(const std::string& name, gguf_type type, const std::vector<std::uint64_t>& ne) {
    check_header_open(name);
    const std::string what = "tensor '" + name + "'";
    if (name.empty() || name.size() > detail::gguf_max_tensor_name)
      fail(what + ": a tensor name must have 1 to 63 bytes");
    if (ne.size() > detail::gguf_max_dims) fail(what + ": more than 4 dimensions");
    const gguf_block_geometry g = gguf_geometry(static_cast<std::uint32_t>(type));
    if (g.block_elems == 0) fail(what + ": unknown ggml type " + std::to_string(static_cast<std::uint32_t>(type)));
    std::uint64_t numel = 1;
    for (const auto d : ne)
      if (d > static_cast<std::uint64_t>(INT64_MAX) || !detail::checked_mul(numel, d, numel)) fail(what + ": invalid shape");
    const std::uint64_t row = ne.empty() ? 1 : ne[0];
    if (row % g.block_elems != 0)
      fail(what + ": rows of " + std::to_string(row) + " elements are not a whole number of " +
           gguf_type_name(type) + " blocks of " + std::to_string(g.block_elems));
    std::uint64_t nbytes = 0;
    if (!detail::checked_mul(numel / g.block_elems, g.block_bytes, nbytes)) fail(what + ": byte size overflows");
    if (!names_.emplace(name, infos_.size()).second) fail(what + ": a tensor with this name was already added");
    infos_.push_back({name, type, ne, data_size_, nbytes});
    data_size_ = align(data_size_ + nbytes);
  }

  // Writes the next declared tensor's bytes (exactly its size).
  void write_tensor_data(const std::string& name, const void* data, std::size_t nbytes) {
    check_file_open();
    if (next_ >= infos_.size()) fail("tensor '" + name + "': every declared tensor was already written");
    const info& t = infos_[next_];
    if (t.name != name)
      fail("tensor '" + name + "': data must come in declaration order; the next tensor is '" + t.name + "'");
    if (nbytes != t.nbytes)
      fail("tensor '" + name + "': its " + gguf_type_name(t.type) + " shape needs " + std::to_string(t.nbytes) +
           " bytes but " + std::to_string(nbytes) + " were given");
    if (!header_written_) write_header();
    if (nbytes > 0) file_->write_at(data, nbytes, data_begin_ + t.offset);
    written_end_ = data_begin_ + t.offset + nbytes;
    ++next_;
  }
  template <class T>
  void write_tensor_data(const std::string& name, const std::vector<T>& v) {
    write_tensor_data(name, v.data(), v.size() * sizeof(T));
  }

  // Writes what is missing, pads the file to the alignment, makes it durable and visible.
  void finish() {
    check_file_open();
    if (next_ != infos_.size())
      fail("tensor '" + infos_[next_].name + "': declared but its data was never written");
    if (!header_written_) write_header();
    const std::uint64_t end = data_begin_ + data_size_;
    if (end > written_end_) {  // ggml pads the last tensor too
      const std::vector<char> zeros(static_cast<std::size_t>(end - written_end_), 0);
      file_->write_at(zeros.data(), zeros.size(), written_end_);
    }
    file_->commit();
    file_.reset();
  }

 private:
  struct info {
    std::string name;
    gguf_type type;
    std::vector<std::uint64_t> ne;
    std::uint64_t offset, nbytes;
  };

  [[noreturn]] void fail(const std::string& problem) const {
    detail::fail("GGUF '" + (file_ ? file_->final_path() : std::string("?")) + "': " + problem);
  }
  void check_file_open() const {
    if (!file_) detail::fail("GGUF writer: the file was already finished");
  }
  void check_header_open(const std::string& what) const {
    check_file_open();
    if (header_written_) fail("'" + what + "': the header was already written (metadata and tensor infos come first)");
  }
  std::uint64_t align(std::uint64_t x) const noexcept { return (x + alignment_ - 1) / alignment_ * alignment_; }

  template <class T>
  static void put(std::vector<std::uint8_t>& out, T v) {
    const auto* p = reinterpret_cast<const std::uint8_t*>(&v);
    out.insert(out.end(), p, p + sizeof(T));
  }
  static void put_string(std::vector<std::uint8_t>& out, const std::string& s) {
    put<std::uint64_t>(out, s.size());
    out.insert(out.end(), s.begin(), s.end());
  }
  void put_value(std::vector<std::uint8_t>& out, const std::string& key, const GgufValue& v) const {
    put<std::uint32_t>(out, static_cast<std::uint32_t>(v.type));
    const gguf_value_type elem = v.scalar_type();
    std::uint64_t count = 1;
    if (v.is_array()) {
      put<std::uint32_t>(out, static_cast<std::uint32_t>(elem));
      put<std::uint64_t>(out, v.count);
      count = v.count;
    }
    if (elem == gguf_value_type::string) {
      if (v.strings.size() != count) fail("key '" + key + "': the value holds the wrong number of strings");
      for (const auto& s : v.strings) put_string(out, s);
      return;
    }
    if (!gguf_value_type_valid(static_cast<std::uint32_t>(elem)) || gguf_scalar_size(elem) == 0 ||
        v.raw.size() != count * gguf_scalar_size(elem))
      fail("key '" + key + "': the value holds the wrong number of bytes for its type");
    out.insert(out.end(), v.raw.begin(), v.raw.end());
  }

  void write_header() {
    std::vector<std::uint8_t> h;
    h.insert(h.end(), {'G', 'G', 'U', 'F'});
    put<std::uint32_t>(h, 3);
    put<std::uint64_t>(h, infos_.size());
    put<std::uint64_t>(h, kv_.size());
    for (const auto& [key, v] : kv_) {
      put_string(h, key);
      put_value(h, key, v);
    }
    for (const info& t : infos_) {
      put_string(h, t.name);
      put<std::uint32_t>(h, static_cast<std::uint32_t>(t.ne.size()));
      for (const auto d : t.ne) put<std::uint64_t>(h, d);
      put<std::uint32_t>(h, static_cast<std::uint32_t>(t.type));
      put<std::uint64_t>(h, t.offset);
    }
    h.resize(static_cast<std::size_t>(align(h.size())), 0);
    file_->write_at(h.data(), h.size(), 0);
    data_begin_ = h.size();
    written_end_ = data_begin_;
    header_written_ = true;
  }

  std::unique_ptr<detail::atomic_output_file> file_;
  std::uint32_t alignment_;
  std::vector<std::pair<std::string, GgufValue>> kv_;
  std::unordered_map<std::string, std::size_t> kv_index_;
  std::vector<info> infos_;
  std::unordered_map<std::string, std::size_t> names_;
  std::uint64_t data_size_ = 0;  // aligned size of the data section
  std::uint64_t data_begin_ = 0, written_end_ = 0;
  std::size_t next_ = 0;
  bool header_written_ = false;
};

}  // namespace lowbit
