#pragma once
// A small pickle virtual machine for the data.pkl inside torch.save archives (private to src/io).
//
// Why not LibTorch's unpickler: in LibTorch 1.13 it turns collections.OrderedDict into None (it expects
// OrderedDicts only as empty backward-hook tables), so the OrderedDict that torch.save(model.state_dict())
// writes cannot be read with it. This reader understands the opcodes of pickle protocols 2-5 and only the
// globals that tensor state dicts use; anything else becomes an opaque value that is skipped.
#include <cstddef>
#include <cstdint>
#include <functional>
#include <map>
#include <string>

#include "fusellm/util/torch_pch.hpp"

namespace fusellm::io::detail {

// Returns the flat (1-D, `numel` elements of `dtype`) CPU tensor holding storage `key` (record data/<key>).
using StorageLoader = std::function<at::Tensor(const std::string& key, at::ScalarType dtype, int64_t numel)>;

// Unpickles a state dict: a dict or OrderedDict of name → tensor. Entries that are not tensors are skipped.
// Tensors sharing a storage share memory in the result. Errors are fusellm::Error naming `what`.
std::map<std::string, at::Tensor> unpickle_state_dict(const uint8_t* data, size_t size, const StorageLoader& load,
                                                      const std::string& what);

}  // namespace fusellm::io::detail
