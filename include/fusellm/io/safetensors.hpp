#pragma once
// safetensors: 8-byte little-endian header length N, N bytes of JSON header
// {"name": {"dtype": "F32", "shape": [..], "data_offsets": [begin, end]}, "__metadata__": {str: str}},
// then the data buffer. Offsets are relative to the buffer start. F32, F16 and BF16 are supported.
#include <map>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "fusellm/util/error.hpp"
#include "fusellm/util/fs.hpp"
#include "fusellm/util/torch_pch.hpp"

namespace fusellm::io {

struct TensorInfo {
  std::string name;
  at::ScalarType dtype;
  std::vector<int64_t> shape;
  uint64_t begin = 0;  // byte offsets into the data buffer
  uint64_t end = 0;
};

// A validated, memory-mapped safetensors file. Construction checks the header length bounds (≤ 100 MB),
// JSON, dtype names, shape × dtype size == end − begin, offsets inside the file and not overlapping;
// every failure is a one-line Error naming the file (and the tensor).
class SafetensorsFile {
 public:
  explicit SafetensorsFile(const fs::path& path);

  const fs::path& path() const;
  const std::vector<TensorInfo>& tensors() const;  // in data-offset order
  bool contains(const std::string& name) const;
  const TensorInfo& info(const std::string& name) const;  // throws Error naming file and tensor
  const std::map<std::string, std::string>& metadata() const;

  // A CPU tensor over the mapped bytes (the mapping stays alive while the tensor does). The mapping is
  // read-only: writing into the view crashes, so use load() for anything that is modified. Data not
  // aligned to its element size (unpadded headers) is copied instead.
  at::Tensor view(const std::string& name) const;
  // An owned copy, converted to `dtype` (if given) and moved to `device`.
  at::Tensor load(const std::string& name, std::optional<at::ScalarType> dtype = std::nullopt,
                  at::Device device = at::kCPU) const;

 private:
  struct State;
  std::shared_ptr<State> state_;
};

using NamedTensors = std::vector<std::pair<std::string, at::Tensor>>;

// Writes one safetensors file atomically (temp file + rename). Tensors are written contiguous, in the
// given order; the header is space-padded to a multiple of 8 as HF writes it.
void save_safetensors(const fs::path& path, const NamedTensors& tensors,
                      const std::map<std::string, std::string>& metadata = {{"format", "pt"}});

// Writes a checkpoint directory as HF save_pretrained does: `model.safetensors` when everything fits
// in one shard, else `model-0000i-of-0000N.safetensors` shards of at most `max_shard_bytes` each plus
// `model.safetensors.index.json` ({"metadata": {"total_size": …}, "weight_map": {name: shard}}).
// The index is written last. Returns the shard file names.
std::vector<std::string> save_sharded_safetensors(const fs::path& dir, const NamedTensors& tensors,
                                                  uint64_t max_shard_bytes = 5ull << 30);

// The safetensors name of a dtype: "F32", "F16", "BF16", "F64" (loadable), "I64", "I32", "I16", "I8", "U8",
// "BOOL" (names only; .bin checkpoints may hold such buffers); PyTorch's name for anything else.
std::string dtype_name(at::ScalarType t);

}  // namespace fusellm::io
