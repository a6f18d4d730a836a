#pragma once
// Small conversions the model runner's translation units share (internal to src/eval).
#include <ATen/ATen.h>

#include <cstdint>
#include <vector>

namespace fusellm::eval::detail {

inline std::vector<int64_t> widen(const std::vector<int32_t>& ids) { return {ids.begin(), ids.end()}; }

inline at::Tensor long_tensor(const std::vector<int64_t>& values, std::vector<int64_t> shape) {
  return at::tensor(values, at::kLong).reshape(shape);
}

}  // namespace fusellm::eval::detail
