#pragma once
// A minimal, bounds-checked reader for F32 safetensors files, used by the model loader.
// Layout: u64 little-endian header length N, N bytes of JSON
// {"name": {"dtype": "F32", "shape": [...], "data_offsets": [begin, end]}, "__metadata__": {...}},
// then the data region (offsets are relative to its start).
// (The general reader with memory mapping and every dtype is io/safetensors.hpp.)
#include <cstdint>
#include <limits>
#include <map>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "lowbit/model/detail/read_file.hpp"

namespace lowbit::model::detail {

struct F32TensorInfo {
  std::vector<std::int64_t> shape;
  std::size_t begin = 0, end = 0;  // byte offsets into the data region
};

class F32Safetensors {
 public:
  F32Safetensors(std::vector<std::uint8_t> bytes, std::string source)
      : bytes_(std::move(bytes)), source_(std::move(source)) {
    parse();
  }

  const std::string& source() const { return source_; }
  const std::map<std::string, F32TensorInfo>& tensors() const { return tensors_; }
  const nlohmann::json& metadata() const { return metadata_; }
  bool contains(const std::string& name) const { return tensors_.count(name) != 0; }

  const F32TensorInfo& info(const std::string& name) const {
    auto it = tensors_.find(name);
    if (it == tensors_.end()) lowbit::detail::fail(source_ + ": missing tensor " + name);
    return it->second;
  }

  // Copies the tensor's values (row-major, in file order).
  std::vector<float> values(const std::string& name) const {
    const F32TensorInfo& t = info(name);
    std::vector<float> out((t.end - t.begin) / 4);
    const std::uint8_t* p = bytes_.data() + data_start_ + t.begin;
    for (std::size_t i = 0; i < out.size(); ++i) out[i] = load_f32(p + 4 * i);
    return out;
  }

 private:
  [[noreturn]] void fail(const std::string& what) const { lowbit::detail::fail(source_ + ": " + what); }

  void parse() {
    if (bytes_.size() < 8) fail("file is " + std::to_string(bytes_.size()) + " bytes, too short for a safetensors header");
    const std::uint64_t n = load_u64(bytes_.data());
    if (n > bytes_.size() - 8)
      fail("header length " + std::to_string(n) + " exceeds the file size " +
           std::to_string(bytes_.size()));
    data_start_ = 8 + static_cast<std::size_t>(n);
    const std::size_t data_size = bytes_.size() - data_start_;
    nlohmann::json header;
    try {
      header = nlohmann::json::parse(bytes_.begin() + 8, bytes_.begin() + static_cast<std::ptrdiff_t>(data_start_));
    } catch (const nlohmann::json::exception& e) {
      fail(std::string("header is not valid JSON: ") + e.what());
    }
    if (!header.is_object()) fail("header is not a JSON object");
    for (auto it = header.begin(); it != header.end(); ++it) {
      const std::string& name = it.key();
      if (name == "__metadata__") {
        metadata_ = it.value();
        continue;
      }
      const nlohmann::json& t = it.value();
      if (!t.is_object() || !t.contains("dtype") || !t.contains("shape") || !t.contains("data_offsets"))
        fail("tensor " + name + ": entry needs dtype, shape and data_offsets");
      if (!t["dtype"].is_string()) fail("tensor " + name + ": dtype is not a string");
      const std::string dtype = t["dtype"].get<std::string>();
      if (dtype != "F32")
        fail("tensor " + name + ": dtype " + dtype + " is not supported by the model loader (F32 only)");
      F32TensorInfo info;
      std::uint64_t elements = 1;
      if (!t["shape"].is_array()) fail("tensor " + name + ": shape is not an array");
      for (const auto& d : t["shape"]) {
        if (!d.is_number_unsigned()) fail("tensor " + name + ": shape has a non-integer or negative dimension");
        const std::uint64_t v = d.get<std::uint64_t>();
        if (v != 0 && elements > std::numeric_limits<std::uint64_t>::max() / 8 / v)
          fail("tensor " + name + ": shape is too large");
        elements *= v;
        info.shape.push_back(static_cast<std::int64_t>(v));
      }
      const auto& off = t["data_offsets"];
      if (!off.is_array() || off.size() != 2 || !off[0].is_number_unsigned() || !off[1].is_number_unsigned())
        fail("tensor " + name + ": data_offsets must be two non-negative integers");
      const std::uint64_t b = off[0].get<std::uint64_t>(), e = off[1].get<std::uint64_t>();
      if (b > e || e > data_size)
        fail("tensor " + name + ": data_offsets [" + std::to_string(b) + ", " + std::to_string(e) +
             "] are outside the data region of " + std::to_string(data_size) + " bytes");
      if (e - b != elements * 4)
        fail("tensor " + name + ": shape holds " + std::to_string(elements) + " F32 values (" +
             std::to_string(elements * 4) + " bytes) but data_offsets span " + std::to_string(e - b) +
             " bytes");
      info.begin = static_cast<std::size_t>(b);
      info.end = static_cast<std::size_t>(e);
      tensors_.emplace(name, std::move(info));
    }
  }

  std::vector<std::uint8_t> bytes_;
  std::string source_;
  std::size_t data_start_ = 0;
  std::map<std::string, F32TensorInfo> tensors_;
  nlohmann::json metadata_;
};

}  // namespace lowbit::model::detail
