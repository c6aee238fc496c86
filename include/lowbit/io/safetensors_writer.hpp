#pragma once
// Writing safetensors files tensor by tensor, atomically.
//
// Streaming: add() appends each tensor's bytes to the temporary file at once, so a whole
// model never has to sit in memory. The JSON header, which lists every tensor, is only
// known at finish(); the writer therefore leaves `header_reserve` bytes in front of the
// data and fills them with the header padded with spaces (the format allows trailing
// whitespace, and keeps the data 8-byte aligned). A header that outgrows the room is
// handled by copying the data once into a second temporary file behind a full-size header.
//
// Atomic: nothing appears under the final name before finish() has written the file, read
// it back with the safetensors reader (plus the validator, when one is set), fsynced and
// renamed it; an exception, or destruction without finish(), removes the temporary.
#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <nlohmann/json.hpp>
#include <set>
#include <string>
#include <vector>

#include "lowbit/error.hpp"
#include "lowbit/io/detail/atomic_file.hpp"
#include "lowbit/io/detail/mapped_file.hpp"
#include "lowbit/io/dtype.hpp"
#include "lowbit/io/safetensors.hpp"

namespace lowbit {

struct SafetensorsWriterOptions {
  // Bytes kept before the data for the JSON header (rounded up to 8). Roughly 100 bytes
  // per tensor plus the metadata; a larger header still works, at the cost of one copy.
  std::size_t header_reserve = 64 * 1024;
  // Called after each tensor's data is written (name, data bytes so far). A progress hook;
  // an exception thrown from it aborts the write like any other error.
  std::function<void(const std::string& tensor, std::uint64_t data_bytes)> on_tensor_written;
};

// A class template only so that its members compile where they are used ("Compile time" in
// docs/design.md); SafetensorsWriter below is its one instantiation.
template <class DeferredClass = void>
class BasicSafetensorsWriter {
 public:
  explicit BasicSafetensorsWriter(const std::string& path, SafetensorsWriterOptions options = {})
      : options_(std::move(options)), file_(std::make_unique<detail::atomic_output_file>(path)) {
    reserve_ = (options_.header_reserve + 7) / 8 * 8;
    if (reserve_ < 8) reserve_ = 8;
    // A padded header over the readers' limit would make the file unreadable.
    reserve_ = std::min<std::size_t>(reserve_, detail::safetensors_max_header_bytes / 8 * 8);
  }

  const std::string& path() const noexcept { return file_->final_path(); }

  // Appends one tensor; `nbytes` must equal the shape's element count times the dtype size.
  void add(const std::string& name, tensor_dtype dtype, const std::vector<std::int64_t>& shape, const void* data,
           std::size_t nbytes) {
    check_open();
    if (name == "__metadata__") fail_tensor(name, "the name __metadata__ is reserved");
    if (!names_.insert(name).second) fail_tensor(name, "a tensor with this name was already written");
    std::uint64_t numel = 1;
    for (const auto d : shape) {
      if (d < 0 || !detail::checked_mul(numel, static_cast<std::uint64_t>(d), numel))
        fail_tensor(name, "invalid shape");
    }
    std::uint64_t expected = 0;
    if (!detail::checked_mul(numel, dtype_size(dtype), expected) || expected != nbytes)
      fail_tensor(name, "shape needs " + std::to_string(expected) + " bytes of " + std::string(dtype_name(dtype)) +
                            " but " + std::to_string(nbytes) + " were given");
    if (nbytes > 0) file_->write_at(data, nbytes, 8 + reserve_ + data_bytes_);
    entries_.push_back({name, dtype, shape, data_bytes_, data_bytes_ + nbytes});
    data_bytes_ += nbytes;
    if (options_.on_tensor_written) options_.on_tensor_written(name, data_bytes_);
  }
  template <class T>
  void add(const std::string& name, tensor_dtype dtype, const std::vector<std::int64_t>& shape,
           const std::vector<T>& values) {
    add(name, dtype, shape, values.data(), values.size() * sizeof(T));
  }
  // Copies a tensor from a file being read (same dtype, shape and bytes).
  void add(const TensorView& t) { add(t.name, t.dtype, t.shape, t.data, t.nbytes); }

  // A check of the finished file, run by finish() on the complete temporary (read back
  // through SafetensorsFile, so with every reader rule) before it is committed: a file that
  // its reader would reject is never written. begin_checkpoint() installs the checkpoint
  // reader's rules; an exception from it abandons the file.
  void set_validator(std::function<void(const SafetensorsFile&)> validate) {
    check_open();
    validator_ = std::move(validate);
  }

  void set_metadata(const std::string& key, const std::string& value) {
    check_open();
    metadata_[key] = value;
  }

  std::uint64_t data_bytes() const noexcept { return data_bytes_; }
  const std::map<std::string, std::string>& metadata() const noexcept { return metadata_; }
  // Names of the tensors written so far, in order.
  std::vector<std::string> tensor_names() const {
    std::vector<std::string> out;
    for (const auto& e : entries_) out.push_back(e.name);
    return out;
  }
  // The name finish() gives the file (see atomic_output_file::set_final_path).
  void set_final_path(const std::string& path) {
    check_open();
    file_->set_final_path(path);
  }

  // Writes the header, then fsync + rename + directory fsync. The file is complete and
  // visible under its name only after this returns.
  template <class Deferred = void>  // see "Compile time" in docs/design.md
  void finish() {
    check_open();
    std::string header = header_json();
    if (header.size() > detail::safetensors_max_header_bytes)
      detail::fail(file_->final_path() + ": the header would take " + std::to_string(header.size()) +
                   " bytes, over the 100 MiB limit of safetensors readers (tensor names or metadata too long); "
                   "nothing was written");
    const std::size_t padded = (header.size() + 7) / 8 * 8;
    if (padded <= reserve_) {
      header.resize(reserve_, ' ');
      write_prefix(*file_, header);
    } else {
      // The header outgrew its room: copy the data behind a header of the right size.
      auto moved = std::make_unique<detail::atomic_output_file>(file_->final_path());
      header.resize(padded, ' ');
      write_prefix(*moved, header);
      std::vector<char> buf(std::size_t{4} << 20);
      for (std::uint64_t done = 0; done < data_bytes_;) {
        const auto n = static_cast<std::size_t>(std::min<std::uint64_t>(buf.size(), data_bytes_ - done));
        file_->read_at(buf.data(), n, 8 + reserve_ + done);
        moved->write_at(buf.data(), n, 8 + padded + done);
        done += n;
      }
      file_->abandon();
      file_ = std::move(moved);
    }
    {
      // Read the file back with the reader before anyone can see it.
      const detail::mapped_file written(file_->fd(), file_->final_path());
      const SafetensorsFile f = SafetensorsFile::parse(written.data(), written.size(), file_->final_path() + " (not committed)");
      if (validator_) validator_(f);
    }
    file_->commit();
    finished_ = true;
  }
  bool finished() const noexcept { return finished_; }

 private:
  struct entry {
    std::string name;
    tensor_dtype dtype;
    std::vector<std::int64_t> shape;
    std::uint64_t begin, end;
  };

  [[noreturn]] void fail_tensor(const std::string& name, const std::string& problem) const {
    detail::fail(file_->final_path() + ": tensor '" + name + "': " + problem);
  }
  void check_open() const {
    if (finished_) detail::fail(file_->final_path() + ": the writer has already finished");
  }

  template <class Deferred = void>  // see "Compile time" in docs/design.md
  std::string header_json() const {
    // Spelled dependent (deferred_t): ordered_json is only instantiated where a writer finishes.
    using ojson = deferred_t<Deferred, nlohmann::ordered_json>;
    ojson h = ojson::object();
    if (!metadata_.empty()) {
      auto& m = h["__metadata__"];
      m = ojson::object();
      for (const auto& [k, v] : metadata_) m[k] = v;
    }
    for (const auto& e : entries_) {
      ojson t;
      t["dtype"] = std::string(dtype_name(e.dtype));
      t["shape"] = e.shape;
      t["data_offsets"] = {e.begin, e.end};
      h[e.name] = std::move(t);
    }
    return h.dump();
  }

  static void write_prefix(detail::atomic_output_file& f, const std::string& header) {
    unsigned char len[8];
    std::uint64_t n = header.size();
    for (int i = 0; i < 8; ++i, n >>= 8) len[i] = static_cast<unsigned char>(n & 0xFF);
    f.write_at(len, 8, 0);
    f.write_at(header.data(), header.size(), 8);
  }

  SafetensorsWriterOptions options_;
  std::unique_ptr<detail::atomic_output_file> file_;
  std::size_t reserve_ = 0;
  std::uint64_t data_bytes_ = 0;
  std::vector<entry> entries_;
  std::set<std::string> names_;
  std::map<std::string, std::string> metadata_;
  std::function<void(const SafetensorsFile&)> validator_;
  bool finished_ = false;
};
using SafetensorsWriter = BasicSafetensorsWriter<void>;

}  // namespace lowbit
