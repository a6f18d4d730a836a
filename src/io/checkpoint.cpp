// open_checkpoint: one reader over whichever weight files an HF checkpoint directory ships.
#include "fusellm/io/checkpoint.hpp"

#include <algorithm>
#include <set>

#include "fusellm/io/safetensors.hpp"
#include "fusellm/util/error.hpp"
#include "fusellm/util/json.hpp"

namespace fusellm::io {
namespace {

constexpr const char* kSafetensorsFile = "model.safetensors";
constexpr const char* kSafetensorsIndex = "model.safetensors.index.json";
constexpr const char* kBinFile = "pytorch_model.bin";
constexpr const char* kBinIndex = "pytorch_model.bin.index.json";

// Reads an HF index file: {"metadata": {...}, "weight_map": {tensor: shard file}}.
std::map<std::string, std::string> read_weight_map(const fs::path& index_path) {
  const json index = parse_json_file(index_path);
  const std::string file = index_path.string();
  FUSELLM_CHECK(index.is_object() && index.contains("weight_map") && index["weight_map"].is_object(),
                "{}: index lacks a 'weight_map' object", file);
  std::map<std::string, std::string> weight_map;
  for (auto it = index["weight_map"].begin(); it != index["weight_map"].end(); ++it) {
    FUSELLM_CHECK(it->is_string(), "{}: weight_map entry '{}' is not a file name", file, it.key());
    const std::string shard = it->get<std::string>();
    FUSELLM_CHECK(!shard.empty() && shard.find('/') == std::string::npos && shard != "." && shard != "..",
                  "{}: weight_map entry '{}' names '{}', not a file beside the index", file, it.key(), shard);
    weight_map.emplace(it.key(), shard);
  }
  FUSELLM_CHECK(!weight_map.empty(), "{}: weight_map is empty", file);
  const fs::path dir = index_path.parent_path();
  std::set<std::string> shards;
  for (const auto& kv : weight_map) shards.insert(kv.second);
  for (const std::string& shard : shards)
    FUSELLM_CHECK(fs::is_regular_file(dir / shard), "{}: shard '{}' named in the index does not exist", file,
                  (dir / shard).string());
  return weight_map;
}

// model.safetensors, or the shards of model.safetensors.index.json.
class SafetensorsReader final : public CheckpointReader {
 public:
  explicit SafetensorsReader(const fs::path& single) : description_(single.filename().string()) {
    files_.emplace_back(single);
    for (const TensorInfo& t : files_[0].tensors()) where_.emplace(t.name, 0);
    description_ += fmt::format(" ({} tensors)", where_.size());
  }

  SafetensorsReader(const fs::path& index_path, const std::map<std::string, std::string>& weight_map) {
    std::map<std::string, size_t> shard_of_file;
    for (const auto& [name, shard] : weight_map) {
      auto [it, added] = shard_of_file.emplace(shard, files_.size());
      if (added) files_.emplace_back(index_path.parent_path() / shard);
      FUSELLM_CHECK(files_[it->second].contains(name), "{}: tensor '{}' is mapped to {}, which does not hold it",
                    index_path.string(), name, shard);
      where_.emplace(name, it->second);
    }
    description_ = fmt::format("{} ({} shards, {} tensors)", index_path.filename().string(), files_.size(),
                               where_.size());
  }

  std::vector<std::string> names() const override {
    std::vector<std::string> out;
    for (const auto& kv : where_) out.push_back(kv.first);
    return out;
  }
  bool contains(const std::string& name) const override { return where_.count(name) > 0; }
  std::vector<int64_t> shape(const std::string& name) const override { return info(name).shape; }
  at::ScalarType dtype(const std::string& name) const override { return info(name).dtype; }
  at::Tensor load(const std::string& name, const LoadOptions& options) const override {
    const SafetensorsFile& f = file_of(name);
    return f.load(name, options.dtype, options.device);  // every safetensors dtype we accept is floating
  }
  std::string describe() const override { return description_; }

 private:
  const SafetensorsFile& file_of(const std::string& name) const {
    auto it = where_.find(name);
    if (it == where_.end()) fail("{}: no tensor '{}'", description_, name);
    return files_[it->second];
  }
  const TensorInfo& info(const std::string& name) const { return file_of(name).info(name); }

  std::vector<SafetensorsFile> files_;
  std::map<std::string, size_t> where_;  // tensor → index into files_
  std::string description_;
};

// pytorch_model.bin, or the shards of pytorch_model.bin.index.json. torch.save archives cannot be read
// lazily tensor by tensor, so every shard is read at open.
class TorchBinReader final : public CheckpointReader {
 public:
  explicit TorchBinReader(const fs::path& single) {
    tensors_ = load_torch_bin(single);
    description_ = fmt::format("{} ({} tensors)", single.filename().string(), tensors_.size());
  }

  TorchBinReader(const fs::path& index_path, const std::map<std::string, std::string>& weight_map) {
    std::set<std::string> shards;
    for (const auto& kv : weight_map) shards.insert(kv.second);
    for (const std::string& shard : shards) {
      for (auto& [name, tensor] : load_torch_bin(index_path.parent_path() / shard)) {
        auto mapped = weight_map.find(name);
        if (mapped == weight_map.end() || mapped->second != shard) continue;  // the index decides
        tensors_.emplace(name, std::move(tensor));
      }
    }
    for (const auto& [name, shard] : weight_map)
      FUSELLM_CHECK(tensors_.count(name), "{}: tensor '{}' is mapped to {}, which does not hold it",
                    index_path.string(), name, shard);
    description_ =
        fmt::format("{} ({} shards, {} tensors)", index_path.filename().string(), shards.size(), tensors_.size());
  }

  std::vector<std::string> names() const override {
    std::vector<std::string> out;
    for (const auto& kv : tensors_) out.push_back(kv.first);
    return out;
  }
  bool contains(const std::string& name) const override { return tensors_.count(name) > 0; }
  std::vector<int64_t> shape(const std::string& name) const override { return stored(name).sizes().vec(); }
  at::ScalarType dtype(const std::string& name) const override { return stored(name).scalar_type(); }
  // An owned copy, so callers may modify it without touching the reader's (or a shared storage's) data.
  at::Tensor load(const std::string& name, const LoadOptions& options) const override {
    const at::Tensor& t = stored(name);
    const at::ScalarType target =
        options.dtype && at::isFloatingType(t.scalar_type()) ? *options.dtype : t.scalar_type();
    // One copy straight into a fresh contiguous tensor (to(copy=true) would keep a view's strides).
    return at::empty(t.sizes(), t.options().dtype(target).device(options.device)).copy_(t);
  }
  std::string describe() const override { return description_; }

 private:
  const at::Tensor& stored(const std::string& name) const {
    auto it = tensors_.find(name);
    if (it == tensors_.end()) fail("{}: no tensor '{}'", description_, name);
    return it->second;
  }

  std::map<std::string, at::Tensor> tensors_;
  std::string description_;
};

}  // namespace

std::unique_ptr<CheckpointReader> open_checkpoint(const fs::path& dir) {
  FUSELLM_CHECK(fs::is_directory(dir), "{}: not a directory", dir.string());
  if (fs::is_regular_file(dir / kSafetensorsFile)) return std::make_unique<SafetensorsReader>(dir / kSafetensorsFile);
  if (fs::is_regular_file(dir / kSafetensorsIndex))
    return std::make_unique<SafetensorsReader>(dir / kSafetensorsIndex, read_weight_map(dir / kSafetensorsIndex));
  if (fs::is_regular_file(dir / kBinFile)) return std::make_unique<TorchBinReader>(dir / kBinFile);
  if (fs::is_regular_file(dir / kBinIndex))
    return std::make_unique<TorchBinReader>(dir / kBinIndex, read_weight_map(dir / kBinIndex));
  fail("{}: no model weights found (looked for {}, {}, {}, {})", dir.string(), kSafetensorsFile, kSafetensorsIndex,
       kBinFile, kBinIndex);
}

}  // namespace fusellm::io
