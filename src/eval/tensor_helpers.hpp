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

// Rows of token ids left-padded to `width` (the longest row) as one batch: ids (0 where padded), the
// attention mask and each row's own positions 0..len−1, all [rows, width].
struct LeftPadded {
  at::Tensor ids, mask, positions;
};

inline LeftPadded left_pad(const std::vector<const std::vector<int64_t>*>& rows, int64_t width) {
  const int64_t n = int64_t(rows.size());
  std::vector<int64_t> ids(size_t(n * width), 0), mask(ids.size(), 0), pos(ids.size(), 0);
  for (int64_t r = 0; r < n; ++r) {
    const auto& row = *rows[size_t(r)];
    const int64_t pad = width - int64_t(row.size());
    for (int64_t t = 0; t < int64_t(row.size()); ++t) {
      ids[size_t(r * width + pad + t)] = row[size_t(t)];
      mask[size_t(r * width + pad + t)] = 1;
      pos[size_t(r * width + pad + t)] = t;
    }
  }
  return {long_tensor(ids, {n, width}), long_tensor(mask, {n, width}), long_tensor(pos, {n, width})};
}

}  // namespace fusellm::eval::detail
