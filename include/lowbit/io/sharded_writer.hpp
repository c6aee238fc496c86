#pragma once
// ShardedSafetensorsWriter: a safetensors model written tensor by tensor either as one file or
// as a Hugging Face style directory of shards plus model.safetensors.index.json (the layout
// open_safetensors_model() reads).
//
//   directory mode: DIR/model-0000k-of-0000n.safetensors (a new shard starts when the next
//   group of tensors would take the current one above max_shard_bytes; a group bigger than
//   the limit gets a shard of its own), DIR/model.safetensors.index.json with
//   {"metadata": {...every shard's metadata...}, "weight_map": {tensor: shard}}, and any
//   extra files (config.json, tokenizer.json) given to add_file(). With one shard the file is
//   DIR/model.safetensors and there is no index, as transformers writes it.
//
// Atomic as a whole: every file is a temporary (io/detail/atomic_file.hpp) until finish(),
// which names the shards once their count is known and commits them, then the extra files,
// then the index last. The directory itself is created only by finish() when it did not
// exist (the temporaries live in its parent meanwhile), so an error or an interrupted run
// before finish() leaves nothing behind.
//
// File-level metadata (set_metadata) goes into every shard; metadata a caller sets on the
// current shard (writer(), e.g. a quantized layer's entry) stays in that shard, and the
// index's "metadata" holds the union, so a reader of the index sees all of it.
#include <sys/stat.h>

#include <cerrno>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <map>
#include <memory>
#include <nlohmann/json.hpp>
#include <string>
#include <utility>
#include <vector>

#include "lowbit/error.hpp"
#include "lowbit/io/detail/atomic_file.hpp"
#include "lowbit/io/safetensors_writer.hpp"

namespace lowbit {

struct ShardedWriterOptions {
  bool directory = false;                        // false: one file at `path`
  std::uint64_t max_shard_bytes = 4ull << 30;    // directory mode: data bytes per shard
  std::size_t header_reserve = 64 * 1024;        // per shard (SafetensorsWriterOptions)
};

class ShardedSafetensorsWriter {
 public:
  ShardedSafetensorsWriter(std::string path, ShardedWriterOptions options) : path_(std::move(path)), options_(options) {
    if (path_.size() > 1 && path_.back() == '/') path_.pop_back();
    if (options_.directory) {
      if (options_.max_shard_bytes == 0) detail::fail("--max-shard-size must be > 0");
      struct stat st {};
      if (::stat(path_.c_str(), &st) == 0) {
        if (!S_ISDIR(st.st_mode)) detail::fail("output '" + path_ + "' exists and is not a directory");
        staging_ = path_;
      } else {
        staging_ = detail::parent_directory(path_);  // the directory appears in finish()
        create_dir_ = true;
      }
    } else {
      staging_ = detail::parent_directory(path_);
    }
    start_shard();
  }

  // The writer of the current shard, after starting a new one when `upcoming_bytes` more data
  // would take the current shard above the limit (and it already holds something).
  SafetensorsWriter& writer(std::uint64_t upcoming_bytes = 0) {
    check_open();
    if (options_.directory && shards_.back()->data_bytes() > 0 &&
        shards_.back()->data_bytes() + upcoming_bytes > options_.max_shard_bytes)
      start_shard();
    return *shards_.back();
  }

  // File-level metadata: every shard (those started later too) and the index.
  void set_metadata(const std::string& key, const std::string& value) {
    check_open();
    metadata_[key] = value;
    for (auto& s : shards_) s->set_metadata(key, value);
  }

  // A file copied into the directory at finish() (directory mode only), e.g. config.json.
  void add_file(const std::string& name, const std::string& contents) {
    check_open();
    if (!options_.directory) detail::fail("add_file('" + name + "'): the output is a single file, not a directory");
    files_.emplace_back(name, contents);
  }

  std::uint64_t data_bytes() const noexcept {
    std::uint64_t n = 0;
    for (const auto& s : shards_) n += s->data_bytes();
    return n;
  }
  bool directory() const noexcept { return options_.directory; }
  const std::string& path() const noexcept { return path_; }
  // Final file names (relative to the directory in directory mode), valid after finish().
  const std::vector<std::string>& shard_files() const noexcept { return names_; }

  void finish() {
    check_open();
    if (!options_.directory) {
      shards_[0]->finish();
      names_ = {path_};
      finished_ = true;
      return;
    }
    const std::size_t n = shards_.size();
    for (std::size_t k = 0; k < n; ++k) names_.push_back(n == 1 ? "model.safetensors" : shard_name(k + 1, n));
    // Everything (except the index) is complete in temporaries before anything becomes visible.
    std::vector<std::unique_ptr<detail::atomic_output_file>> extra;
    for (const auto& [name, contents] : files_) {
      extra.push_back(std::make_unique<detail::atomic_output_file>(staging_ + "/.lowbit-" + name));
      extra.back()->write_at(contents.data(), contents.size(), 0);
    }
    std::unique_ptr<detail::atomic_output_file> index;
    if (n > 1) {
      nlohmann::ordered_json j;
      nlohmann::ordered_json md = nlohmann::ordered_json::object();
      std::map<std::string, std::string> all;
      for (const auto& s : shards_)
        for (const auto& [k, v] : s->metadata()) all[k] = v;
      for (const auto& [k, v] : all) md[k] = v;
      md["total_size"] = data_bytes();
      j["metadata"] = md;
      nlohmann::ordered_json wm = nlohmann::ordered_json::object();
      for (std::size_t k = 0; k < n; ++k)
        for (const auto& t : shards_[k]->tensor_names()) wm[t] = names_[k];
      j["weight_map"] = wm;
      const std::string text = j.dump(2) + "\n";
      index = std::make_unique<detail::atomic_output_file>(staging_ + "/.lowbit-model.safetensors.index.json");
      index->write_at(text.data(), text.size(), 0);
    }
    if (create_dir_ && ::mkdir(path_.c_str(), 0755) != 0 && errno != EEXIST)
      detail::fail("cannot create the output directory '" + path_ + "': " + std::strerror(errno));
    for (std::size_t k = 0; k < n; ++k) {
      shards_[k]->set_final_path(path_ + "/" + names_[k]);
      shards_[k]->finish();
    }
    for (std::size_t i = 0; i < extra.size(); ++i) {
      extra[i]->set_final_path(path_ + "/" + files_[i].first);
      extra[i]->commit();
    }
    if (index) {
      index->set_final_path(path_ + "/model.safetensors.index.json");
      index->commit();
    }
    finished_ = true;
  }

  static std::string shard_name(std::size_t k, std::size_t n) {
    char buf[64];
    std::snprintf(buf, sizeof buf, "model-%05zu-of-%05zu.safetensors", k, n);
    return buf;
  }

 private:
  void check_open() const {
    if (finished_) detail::fail(path_ + ": the writer has already finished");
  }
  void start_shard() {
    SafetensorsWriterOptions wo;
    wo.header_reserve = options_.header_reserve;
    // A placeholder name in the staging directory; finish() gives the real one.
    const std::string name = options_.directory
                                 ? staging_ + "/." + detail::base_name(path_) + ".shard-" + std::to_string(shards_.size() + 1)
                                 : path_;
    shards_.push_back(std::make_unique<SafetensorsWriter>(name, wo));
    for (const auto& [k, v] : metadata_) shards_.back()->set_metadata(k, v);
  }

  std::string path_, staging_;
  ShardedWriterOptions options_;
  bool create_dir_ = false;
  bool finished_ = false;
  std::vector<std::unique_ptr<SafetensorsWriter>> shards_;
  std::map<std::string, std::string> metadata_;
  std::vector<std::pair<std::string, std::string>> files_;
  std::vector<std::string> names_;
};

}  // namespace lowbit
