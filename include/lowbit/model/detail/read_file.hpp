#pragma once
// Whole-file reads for the model loaders (the models they target are small enough to read;
// large checkpoints go through io/safetensors.hpp's memory map instead).
#include <cstdint>
#include <cstring>
#include <fstream>
#include <string>
#include <vector>

#include "lowbit/error.hpp"
#include "lowbit/io/detail/file_checks.hpp"

namespace lowbit::model::detail {

// Code in lowbit::model calls detail::fail; once this namespace exists that lookup lands
// here, so the error helper is visible here too (include order must not matter).
using lowbit::detail::fail;

inline std::vector<std::uint8_t> read_file_bytes(const std::string& path) {
  // A directory or FIFO is refused before it is opened (a FIFO would block, a directory
  // would fail later with bad_alloc).
  lowbit::detail::require_regular_input(path, "file");
  std::ifstream in(path, std::ios::binary | std::ios::ate);
  if (!in) lowbit::detail::fail(path + ": cannot open file");
  const std::streamoff size = in.tellg();
  if (size < 0) lowbit::detail::fail(path + ": cannot determine the file size");
  std::vector<std::uint8_t> bytes(static_cast<std::size_t>(size));
  in.seekg(0);
  if (size > 0 && !in.read(reinterpret_cast<char*>(bytes.data()), size))
    lowbit::detail::fail(path + ": read failed");
  return bytes;
}

// Little-endian loads (the hosts lowbit targets are little-endian; memcpy keeps it legal
// for unaligned offsets).
inline std::int32_t load_i32(const std::uint8_t* p) {
  std::int32_t v;
  std::memcpy(&v, p, sizeof v);
  return v;
}
inline float load_f32(const std::uint8_t* p) {
  float v;
  std::memcpy(&v, p, sizeof v);
  return v;
}
inline std::uint64_t load_u64(const std::uint8_t* p) {
  std::uint64_t v;
  std::memcpy(&v, p, sizeof v);
  return v;
}

inline std::string directory_of(const std::string& path) {
  const auto slash = path.find_last_of('/');
  return slash == std::string::npos ? std::string(".") : path.substr(0, slash);
}

inline bool ends_with(const std::string& s, const std::string& suffix) {
  return s.size() >= suffix.size() && s.compare(s.size() - suffix.size(), suffix.size(), suffix) == 0;
}

}  // namespace lowbit::model::detail
