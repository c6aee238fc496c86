#pragma once
// A model stored as one safetensors file or as shards listed by a Hugging Face style
// index (model.safetensors.index.json: {"metadata": {...}, "weight_map": {tensor: file}}).
// open_safetensors_model() accepts a .safetensors file, an index file, or a directory
// holding either model.safetensors.index.json or model.safetensors.
#include <sys/stat.h>

#include <fstream>
#include <map>
#include <memory>
#include <nlohmann/json.hpp>
#include <sstream>
#include <string>
#include <unordered_map>
#include <vector>

#include "lowbit/error.hpp"
#include "lowbit/io/detail/atomic_file.hpp"
#include "lowbit/io/detail/file_checks.hpp"
#include "lowbit/io/safetensors.hpp"

namespace lowbit {

class SafetensorsModel {
 public:
  template <class Deferred = void>  // see "Compile time" in docs/design.md
  static SafetensorsModel open(const std::string& path) {
    struct stat st {};
    if (::stat(path.c_str(), &st) != 0) detail::fail("cannot open '" + path + "': no such file or directory");
    SafetensorsModel m;
    if (S_ISDIR(st.st_mode)) {
      const std::string index = path + "/model.safetensors.index.json";
      if (::stat(index.c_str(), &st) == 0) {
        m.load_index(index);
      } else if (::stat((path + "/model.safetensors").c_str(), &st) == 0) {
        m.add_shard(path + "/model.safetensors");
      } else {
        detail::fail("'" + path + "' holds neither model.safetensors.index.json nor model.safetensors");
      }
    } else if (ends_with(path, ".index.json")) {
      m.load_index(path);
    } else {
      m.add_shard(path);
    }
    return m;
  }

  const std::string& source() const noexcept { return source_; }
  // Every tensor, shard by shard in the order the shards were listed.
  const std::vector<const TensorView*>& tensors() const noexcept { return order_; }
  const std::vector<std::unique_ptr<SafetensorsFile>>& shards() const noexcept { return shards_; }
  // Metadata: the index's "metadata" when sharded, else the file's __metadata__.
  const std::map<std::string, std::string>& metadata() const noexcept { return metadata_; }

  const TensorView* find(const std::string& name) const noexcept {
    const auto it = by_name_.find(name);
    return it == by_name_.end() ? nullptr : it->second.view;
  }
  const TensorView& at(const std::string& name) const {
    const TensorView* t = find(name);
    if (t == nullptr) detail::fail(source_ + ": no tensor named '" + name + "'");
    return *t;
  }
  // Every file this model was read from: the index (when sharded), then the shards. What
  // a program that writes files passes to check_outputs() (io/paths.hpp) as inputs.
  std::vector<std::string> files() const {
    std::vector<std::string> out;
    if (!index_path_.empty()) out.push_back(index_path_);
    for (const auto& s : shards_) out.push_back(s->source());
    return out;
  }
  // Total bytes of all shard files.
  std::size_t total_file_bytes() const noexcept {
    std::size_t n = 0;
    for (const auto& s : shards_) n += s->file_size();
    return n;
  }
  void release(const TensorView& t) const noexcept {
    const auto it = by_name_.find(t.name);
    if (it != by_name_.end()) shards_[it->second.shard]->release(t);
  }

 private:
  struct location {
    const TensorView* view;
    std::size_t shard;
  };

  static bool ends_with(const std::string& s, const std::string& suffix) {
    return s.size() >= suffix.size() && s.compare(s.size() - suffix.size(), suffix.size(), suffix) == 0;
  }

  template <class Deferred = void>  // see "Compile time" in docs/design.md
  std::size_t add_shard(const std::string& file) {
    if (source_.empty()) source_ = file;
    shards_.push_back(std::make_unique<SafetensorsFile>(SafetensorsFile::open(file)));
    const std::size_t k = shards_.size() - 1;
    if (shards_.size() == 1 && metadata_.empty()) metadata_ = shards_[0]->metadata();
    for (const auto& t : shards_[k]->tensors()) {
      if (!by_name_.emplace(t.name, location{&t, k}).second)
        detail::fail(file + ": tensor '" + t.name + "': duplicate name (also in another shard)");
      order_.push_back(&t);
    }
    return k;
  }

  template <class Deferred = void>  // see "Compile time" in docs/design.md
  void load_index(const std::string& index_path) {
  using json_t = deferred_t<Deferred, nlohmann::json>;
    source_ = index_path;
    index_path_ = index_path;
    detail::require_regular_input(index_path, "index");
    std::ifstream in(index_path, std::ios::binary);
    if (!in) detail::fail("cannot open '" + index_path + "'");
    std::stringstream ss;
    ss << in.rdbuf();
    const json_t j = json_t::parse(ss.str(), nullptr, /*allow_exceptions=*/false);
    if (j.is_discarded() || !j.is_object()) detail::fail(index_path + ": not a JSON object");
    const auto wm = j.find("weight_map");
    if (wm == j.end() || !wm->is_object()) detail::fail(index_path + ": no \"weight_map\" object");
    const auto md = j.find("metadata");
    if (md != j.end() && md->is_object())
      for (const auto& [k, v] : md->items()) metadata_[k] = v.is_string() ? v.template get<std::string>() : v.dump();
    const std::string dir = detail::parent_directory(index_path);
    std::map<std::string, std::size_t> shard_of_file;
    for (const auto& [name, file] : wm->items()) {
      if (!file.is_string()) detail::fail(index_path + ": tensor '" + name + "': shard file name is not a string");
      const std::string f = file.template get<std::string>();
      if (f.empty() || f[0] == '/' || f.find("..") != std::string::npos)
        detail::fail(index_path + ": tensor '" + name + "': shard file '" + f + "' must be a relative name inside the directory");
      if (shard_of_file.find(f) == shard_of_file.end()) shard_of_file[f] = add_shard(dir + "/" + f);
    }
    source_ = index_path;
    for (const auto& [name, file] : wm->items()) {
      const auto it = by_name_.find(name);
      if (it == by_name_.end() || it->second.shard != shard_of_file[file.template get<std::string>()])
        detail::fail(index_path + ": tensor '" + name + "' is not in its listed shard '" + file.template get<std::string>() + "'");
    }
    if (by_name_.size() != wm->size())
      detail::fail(index_path + ": the shards hold tensors that the weight_map does not list");
  }

  std::string source_;
  std::string index_path_;
  std::vector<std::unique_ptr<SafetensorsFile>> shards_;
  std::vector<const TensorView*> order_;
  std::unordered_map<std::string, location> by_name_;
  std::map<std::string, std::string> metadata_;
};

template <class Deferred = void>  // see "Compile time" in docs/design.md
inline SafetensorsModel open_safetensors_model(const std::string& path) { return SafetensorsModel::open(path); }

}  // namespace lowbit
