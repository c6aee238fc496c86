#pragma once
// Reading safetensors files: memory-mapped, zero-copy tensor views, validated before any
// byte is trusted. Format: an 8-byte little-endian header length N, N bytes of UTF-8 JSON
// {"name": {"dtype", "shape", "data_offsets": [begin, end]}, "__metadata__": {str: str}},
// then the data; offsets are relative to the data and must tile it exactly.
//
// Every malformed input (short file, header length past the end, bad JSON, unknown dtype,
// duplicate names, offsets out of bounds / overlapping / leaving holes, shape that does not
// match the byte size) raises lowbit::error "<file>: tensor '<name>': <problem>".
#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <map>
#include <nlohmann/json.hpp>
#include <set>
#include <string>
#include <unordered_map>
#include <utility>
#include <vector>

#include "lowbit/config.hpp"
#include "lowbit/error.hpp"
#include "lowbit/io/detail/mapped_file.hpp"
#include "lowbit/io/dtype.hpp"

namespace lowbit {

// One tensor inside a safetensors file: a view (pointer + dtype + shape) into the mapped
// bytes, valid while the SafetensorsFile that produced it is alive.
struct TensorView {
  std::string name;
  tensor_dtype dtype = tensor_dtype::f32;
  std::vector<std::int64_t> shape;
  const std::byte* data = nullptr;  // any alignment (safetensors does not align tensors)
  std::size_t nbytes = 0;
  std::size_t offset = 0;           // begin, relative to the data section

  std::int64_t numel() const noexcept { return static_cast<std::int64_t>(nbytes / dtype_size(dtype)); }
  std::size_t rank() const noexcept { return shape.size(); }

  // The data as float*, without a copy, when it is F32 and 4-byte aligned; else nullptr.
  const float* f32_data() const noexcept {
    if (dtype != tensor_dtype::f32 || reinterpret_cast<std::uintptr_t>(data) % alignof(float) != 0) return nullptr;
    return reinterpret_cast<const float*>(data);
  }
  // Converts to float into out[0, numel()).
  void to_float(float* out) const {
    if (!dtype_to_float(dtype, data, out, static_cast<std::size_t>(numel())))
      detail::fail("tensor '" + name + "': dtype " + std::string(dtype_name(dtype)) + " does not convert to float");
  }
  std::vector<float> to_float_vector() const {
    std::vector<float> v(static_cast<std::size_t>(numel()));
    to_float(v.data());
    return v;
  }
  // A rank-2 tensor as [rows, cols]; rank 1 as one row; other ranks are an error.
  RowMatrixXf to_matrix() const {
    if (rank() != 1 && rank() != 2)
      detail::fail("tensor '" + name + "': expected a rank-1 or rank-2 tensor, got rank " + std::to_string(rank()));
    const Eigen::Index r = rank() == 2 ? static_cast<Eigen::Index>(shape[0]) : 1;
    const Eigen::Index c = static_cast<Eigen::Index>(rank() == 2 ? shape[1] : shape[0]);
    RowMatrixXf m(r, c);
    to_float(m.data());
    return m;
  }
};

namespace detail {

// a * b and a + b for sizes, failing instead of wrapping.
inline bool checked_mul(std::uint64_t a, std::uint64_t b, std::uint64_t& out) noexcept {
  if (a != 0 && b > UINT64_MAX / a) return false;
  out = a * b;
  return true;
}

constexpr std::uint64_t safetensors_max_header_bytes = 100ull << 20;  // as the reference reader

inline std::uint64_t read_le64(const std::byte* p) noexcept {
  std::uint64_t v = 0;
  for (int i = 7; i >= 0; --i) v = (v << 8) | static_cast<std::uint8_t>(p[i]);
  return v;
}

}  // namespace detail

class SafetensorsFile {
 public:
  SafetensorsFile() = default;

  // Memory-maps `path` (read-only) and validates its header.
  template <class Deferred = void>  // see "Compile time" in docs/design.md
  static SafetensorsFile open(const std::string& path) {
    SafetensorsFile f;
    f.map_ = detail::mapped_file(path);
    f.index(f.map_.data(), f.map_.size(), path);
    return f;
  }
  // Validates `size` bytes at `bytes` (kept by the caller while this object is used);
  // `source` names them in error messages. This is the fuzzer's entry point.
  template <class Deferred = void>  // see "Compile time" in docs/design.md
  static SafetensorsFile parse(const void* bytes, std::size_t size, const std::string& source = "<memory>") {
    SafetensorsFile f;
    f.index(static_cast<const std::byte*>(bytes), size, source);
    return f;
  }

  const std::string& source() const noexcept { return source_; }
  // Tensors in the order the header lists them.
  const std::vector<TensorView>& tensors() const noexcept { return tensors_; }
  const std::map<std::string, std::string>& metadata() const noexcept { return metadata_; }
  std::size_t file_size() const noexcept { return file_size_; }
  std::size_t header_size() const noexcept { return header_size_; }  // the JSON, without the 8-byte length

  const TensorView* find(const std::string& name) const noexcept {
    const auto it = by_name_.find(name);
    return it == by_name_.end() ? nullptr : &tensors_[it->second];
  }
  const TensorView& at(const std::string& name) const {
    const TensorView* t = find(name);
    if (t == nullptr) detail::fail(source_ + ": no tensor named '" + name + "'");
    return *t;
  }
  // Hands the tensor's resident pages back to the kernel (streaming); the view stays usable.
  void release(const TensorView& t) const noexcept { map_.release(t.data, t.nbytes); }

 private:
  [[noreturn]] void fail_at(const std::string& tensor, const std::string& problem) const {
    detail::fail(source_ + ": " + (tensor.empty() ? std::string() : "tensor '" + tensor + "': ") + problem);
  }

  template <class Deferred = void>  // see "Compile time" in docs/design.md
  void index(const std::byte* bytes, std::size_t size, const std::string& source) {
    source_ = source;
    file_size_ = size;
    if (size < 8) fail_at("", "file of " + std::to_string(size) + " bytes is too short for the 8-byte header length");
    const std::uint64_t n = detail::read_le64(bytes);
    if (n > detail::safetensors_max_header_bytes)
      fail_at("", "header length " + std::to_string(n) + " exceeds the 100 MiB limit");
    if (n > size - 8)
      fail_at("", "header length " + std::to_string(n) + " exceeds the file size " + std::to_string(size));
    if (n < 2) fail_at("", "header of " + std::to_string(n) + " bytes cannot hold a JSON object");
    header_size_ = static_cast<std::size_t>(n);
    const char* json_begin = reinterpret_cast<const char*>(bytes + 8);
    const std::byte* data = bytes + 8 + n;
    // Spelled dependent (deferred_t): ordered_json is only instantiated where a file is read.
    using ojson = deferred_t<Deferred, nlohmann::ordered_json>;
    const std::uint64_t data_size = size - 8 - n;

    ojson header;
    std::string duplicate;
    bool duplicate_is_tensor = false;
    {
      // nlohmann keeps the last of two equal keys; the callback sees every key, so
      // duplicates (a sign of a corrupt or malicious header) are caught here.
      std::vector<std::set<std::string>> open_objects;
      auto on_event = [&](int, typename ojson::parse_event_t ev, ojson& value) {
        using ev_t = typename ojson::parse_event_t;
        if (ev == ev_t::object_start) {
          open_objects.emplace_back();
        } else if (ev == ev_t::object_end) {
          if (!open_objects.empty()) open_objects.pop_back();
        } else if (ev == ev_t::key && !open_objects.empty() && value.is_string()) {
          if (!open_objects.back().insert(value.template get_ref<const std::string&>()).second && duplicate.empty()) {
            duplicate = value.template get<std::string>();
            duplicate_is_tensor = open_objects.size() == 1;
          }
        }
        return true;
      };
      try {
        header = ojson::parse(json_begin, json_begin + n, on_event);
      } catch (const nlohmann::json::exception& e) {
        fail_at("", std::string("header is not valid JSON: ") + e.what());
      }
    }
    if (!duplicate.empty()) {
      if (duplicate_is_tensor) fail_at(duplicate, "duplicate tensor name in the header");
      fail_at("", "duplicate key '" + duplicate + "' inside a header entry");
    }
    if (!header.is_object()) fail_at("", "header is not a JSON object");

    for (const auto& [name, entry] : header.items()) {
      if (name == "__metadata__") {
        if (!entry.is_object()) fail_at("", "__metadata__ is not an object");
        for (const auto& [k, v] : entry.items()) {
          if (!v.is_string()) fail_at("", "__metadata__ value of '" + k + "' is not a string");
          metadata_[k] = v.template get<std::string>();
        }
        continue;
      }
      tensors_.push_back(parse_entry<Deferred>(name, entry, data, data_size));
    }

    // The tensors must tile [0, data_size) exactly: sorted by begin, each starting where the
    // previous ended (a smaller begin overlaps, a larger one leaves a hole).
    std::vector<std::size_t> order(tensors_.size());
    for (std::size_t i = 0; i < order.size(); ++i) order[i] = i;
    std::stable_sort(order.begin(), order.end(), [&](std::size_t a, std::size_t b) {
      return tensors_[a].offset < tensors_[b].offset ||
             (tensors_[a].offset == tensors_[b].offset && tensors_[a].nbytes < tensors_[b].nbytes);
    });
    std::uint64_t covered = 0;
    const TensorView* previous = nullptr;
    for (std::size_t i : order) {
      const TensorView& t = tensors_[i];
      if (t.offset < covered)
        fail_at(t.name, "data_offsets [" + std::to_string(t.offset) + ", " + std::to_string(t.offset + t.nbytes) +
                            ") overlap tensor '" + (previous ? previous->name : std::string()) + "'");
      if (t.offset > covered)
        fail_at(t.name, "data_offsets leave a hole: bytes [" + std::to_string(covered) + ", " +
                            std::to_string(t.offset) + ") belong to no tensor");
      covered = t.offset + t.nbytes;
      previous = &t;
    }
    if (covered != data_size)
      fail_at("", "the data section has " + std::to_string(data_size) + " bytes but the tensors cover only " +
                      std::to_string(covered));
    for (std::size_t i = 0; i < tensors_.size(); ++i) by_name_.emplace(tensors_[i].name, i);
  }

  template <class Deferred = void>  // see "Compile time" in docs/design.md
  TensorView parse_entry(const std::string& name, const deferred_t<Deferred, nlohmann::ordered_json>& entry, const std::byte* data,
                         std::uint64_t data_size) const {
    if (!entry.is_object()) fail_at(name, "header entry is not an object");
    const auto dt = entry.find("dtype");
    const auto sh = entry.find("shape");
    const auto off = entry.find("data_offsets");
    if (dt == entry.end() || sh == entry.end() || off == entry.end())
      fail_at(name, "header entry needs dtype, shape and data_offsets");
    if (!dt->is_string()) fail_at(name, "dtype is not a string");
    const auto dtype = dtype_from_name(dt->template get_ref<const std::string&>());
    if (!dtype) fail_at(name, "unknown dtype '" + dt->template get<std::string>() + "'");
    if (!sh->is_array()) fail_at(name, "shape is not an array");
    TensorView t;
    t.name = name;
    t.dtype = *dtype;
    std::uint64_t numel = 1;
    for (const auto& d : *sh) {
      if (!d.is_number_unsigned()) fail_at(name, "shape has an entry that is not a non-negative integer");
      const auto v = d.template get<std::uint64_t>();
      if (v > static_cast<std::uint64_t>(INT64_MAX) || !detail::checked_mul(numel, v, numel))
        fail_at(name, "shape product overflows");
      t.shape.push_back(static_cast<std::int64_t>(v));
    }
    if (!off->is_array() || off->size() != 2 || !(*off)[0].is_number_unsigned() || !(*off)[1].is_number_unsigned())
      fail_at(name, "data_offsets is not a pair of non-negative integers");
    const auto begin = (*off)[0].template get<std::uint64_t>();
    const auto end = (*off)[1].template get<std::uint64_t>();
    if (begin > end)
      fail_at(name, "data_offsets are not ordered: begin " + std::to_string(begin) + " > end " + std::to_string(end));
    if (end > data_size)
      fail_at(name, "data_offsets end " + std::to_string(end) + " is out of bounds of the " +
                        std::to_string(data_size) + "-byte data section");
    std::uint64_t expected = 0;
    if (!detail::checked_mul(numel, dtype_size(*dtype), expected) || expected != end - begin)
      fail_at(name, "shape holds " + std::to_string(numel) + " " + std::string(dtype_name(*dtype)) +
                        " elements but data_offsets span " + std::to_string(end - begin) + " bytes");
    t.offset = static_cast<std::size_t>(begin);
    t.nbytes = static_cast<std::size_t>(end - begin);
    t.data = data + begin;
    return t;
  }

  detail::mapped_file map_;
  std::string source_;
  std::vector<TensorView> tensors_;
  std::unordered_map<std::string, std::size_t> by_name_;
  std::map<std::string, std::string> metadata_;
  std::size_t file_size_ = 0;
  std::size_t header_size_ = 0;
};

template <class Deferred = void>  // see "Compile time" in docs/design.md
inline SafetensorsFile open_safetensors(const std::string& path) { return SafetensorsFile::open(path); }

}  // namespace lowbit
