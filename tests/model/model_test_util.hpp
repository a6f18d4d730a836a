#pragma once
// Helpers for the model tests: JSON → tensors, tolerance checks reporting the worst element, HF-style
// shifted cross-entropy, and a greedy decode loop written here (independent of the library's generate).
#include <gtest/gtest.h>

#include <cmath>
#include <string>
#include <vector>

#include "fusellm/model/causal_lm.hpp"
#include "fusellm/util/json.hpp"

namespace fusellm::test {

inline at::Tensor int_matrix(const json& rows) {
  std::vector<int64_t> flat;
  for (const auto& row : rows)
    for (const auto& v : row) flat.push_back(v.get<int64_t>());
  return at::tensor(flat, at::kLong).view({static_cast<int64_t>(rows.size()), -1});
}

inline std::vector<double> doubles(const json& values) {
  std::vector<double> out;
  for (const auto& v : values) out.push_back(v.get<double>());
  return out;
}

// Checks |actual − ref| <= abs_tol + rel_tol·|ref| element-wise; on failure names the worst element.
inline ::testing::AssertionResult all_close(const at::Tensor& actual, const std::vector<double>& ref,
                                            double abs_tol, double rel_tol = 0.0) {
  auto values = actual.to(at::kDouble).contiguous().view({-1});
  if (values.numel() != static_cast<int64_t>(ref.size()))
    return ::testing::AssertionFailure() << "size " << values.numel() << " vs reference " << ref.size();
  const double* data = values.data_ptr<double>();
  double worst_excess = 0.0;
  int64_t worst = -1;
  for (size_t i = 0; i < ref.size(); ++i) {
    const double excess = std::abs(data[i] - ref[i]) - (abs_tol + rel_tol * std::abs(ref[i]));
    if (!(excess <= worst_excess)) {  // also catches NaN
      worst_excess = std::isnan(excess) ? INFINITY : excess;
      worst = static_cast<int64_t>(i);
    }
  }
  if (worst < 0) return ::testing::AssertionSuccess();
  return ::testing::AssertionFailure() << "element " << worst << ": got " << data[worst] << ", reference "
                                       << ref[worst] << " (|diff| " << std::abs(data[worst] - ref[worst]) << ")";
}

// Mean next-token cross-entropy over pairs (t → t+1) with t+1 < lengths[b], computed in double, as HF's
// ForCausalLM(labels = ids with -100 at pads) does. Returns {loss over all rows, loss per row}.
inline std::pair<double, std::vector<double>> shifted_cross_entropy(const at::Tensor& logits,
                                                                    const at::Tensor& input_ids,
                                                                    const std::vector<int64_t>& lengths) {
  auto log_probs = at::log_softmax(logits.to(at::kDouble), -1);
  double total = 0.0;
  int64_t count = 0;
  std::vector<double> per_row;
  for (int64_t b = 0; b < static_cast<int64_t>(lengths.size()); ++b) {
    double row_total = 0.0;
    for (int64_t t = 0; t + 1 < lengths[b]; ++t)
      row_total -= log_probs[b][t][input_ids[b][t + 1].item<int64_t>()].item<double>();
    per_row.push_back(row_total / static_cast<double>(lengths[b] - 1));
    total += row_total;
    count += lengths[b] - 1;
  }
  return {total / static_cast<double>(count), per_row};
}

struct GreedyRun {
  std::vector<int64_t> tokens;
  std::vector<at::Tensor> step_logits;  // [vocab] float32 of each step
};

// Greedy decode of `max_new` tokens for a batch-1 prompt: with the cache, prefill then one token per
// step; without, a full recompute of the growing sequence at every step.
inline GreedyRun greedy(model::CausalLM& lm, const std::vector<int64_t>& prompt, int64_t max_new, bool use_cache) {
  at::NoGradGuard no_grad;
  GreedyRun run;
  std::vector<int64_t> sequence = prompt;
  model::KVCache cache;
  model::ForwardArgs args;
  args.input_ids = at::tensor(prompt, at::kLong).view({1, -1});
  if (use_cache) args.cache = &cache;
  for (int64_t step = 0; step < max_new; ++step) {
    at::Tensor last = lm.forward(args)[0][-1];
    run.step_logits.push_back(last);
    const int64_t next = last.argmax().item<int64_t>();
    run.tokens.push_back(next);
    sequence.push_back(next);
    if (use_cache) {
      EXPECT_EQ(cache.length(), static_cast<int64_t>(sequence.size()) - 1);
      args.input_ids = at::tensor(std::vector<int64_t>{next}, at::kLong).view({1, 1});
    } else {
      args.input_ids = at::tensor(sequence, at::kLong).view({1, -1});
    }
  }
  return run;
}

}  // namespace fusellm::test
