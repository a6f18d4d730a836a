#pragma once
// Autoregressive decoding over any CausalLM: greedy by default, or temperature / top-k / top-p sampling
// with a seeded generator. With the KV cache the prompt is prefilled once and each step feeds one token;
// without it every step recomputes the whole sequence (the reference the cache is tested against).
#include <cstdint>
#include <optional>
#include <vector>

#include "fusellm/model/causal_lm.hpp"

namespace fusellm::model {

struct SamplingOptions {
  int max_new_tokens = 32;
  double temperature = 0.0;  // 0 = greedy
  int top_k = 0;             // 0 = off
  double top_p = 1.0;        // 1 = off
  uint64_t seed = 0;
  std::optional<int64_t> stop_token;  // usually eos; not stopped on when unset
  bool use_cache = true;
};

struct GenerationResult {
  std::vector<int64_t> tokens;  // new tokens only
  double prefill_seconds = 0;
  double decode_seconds = 0;
};

// Picks the next token from logits [vocab] (float32).
int64_t pick_next_token(const at::Tensor& logits, const SamplingOptions& options, at::Generator& generator);

GenerationResult generate(CausalLM& model, const std::vector<int64_t>& prompt, const SamplingOptions& options);

}  // namespace fusellm::model
