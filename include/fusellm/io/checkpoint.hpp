#pragma once
// One way to read the weights of an HF checkpoint directory, whatever it ships:
// model.safetensors | model.safetensors.index.json + shards | pytorch_model.bin |
// pytorch_model.bin.index.json + shards. Safetensors are preferred when both exist, as HF does.
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "fusellm/util/error.hpp"
#include "fusellm/util/fs.hpp"
#include "fusellm/util/torch_pch.hpp"

namespace fusellm::io {

struct LoadOptions {
  std::optional<at::ScalarType> dtype;  // convert floating tensors to this (e.g. bf16 checkpoint → fp32)
  at::Device device = at::kCPU;
};

class CheckpointReader {
 public:
  virtual ~CheckpointReader() = default;
  virtual std::vector<std::string> names() const = 0;  // sorted
  virtual bool contains(const std::string& name) const = 0;
  virtual std::vector<int64_t> shape(const std::string& name) const = 0;
  virtual at::ScalarType dtype(const std::string& name) const = 0;  // as stored
  // An owned, contiguous copy (never aliasing the file or another tensor); options.dtype applies to
  // floating tensors only (int/bool buffers of .bin checkpoints keep theirs). Unknown names throw Error.
  virtual at::Tensor load(const std::string& name, const LoadOptions& options) const = 0;
  virtual std::string describe() const = 0;  // e.g. "model.safetensors.index.json (2 shards)"
};

// Opens the weights in `dir`; throws Error naming the directory when none are found, or naming the
// index and shard when an index points to a missing file.
std::unique_ptr<CheckpointReader> open_checkpoint(const fs::path& dir);

// Reads a torch.save zip archive (pytorch_model.bin) into name → tensor (CPU, stored dtype). The state
// dict may be a dict or an OrderedDict; tensors sharing a storage (tied weights, views) share memory in
// the result; non-tensor entries are skipped. Bad or corrupt files throw a one-line Error naming the file.
// .bin readers of open_checkpoint read every shard at open (a zip archive has no per-tensor lazy path).
std::map<std::string, at::Tensor> load_torch_bin(const fs::path& path);

// Writes name → tensor with torch.save's zip format (what LibTorch's pickle_save produces), atomically.
void save_torch_bin(const fs::path& path, const std::map<std::string, at::Tensor>& tensors);

}  // namespace fusellm::io
