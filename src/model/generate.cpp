#include "fusellm/model/generate.hpp"

#include <chrono>

#include "fusellm/util/error.hpp"

namespace fusellm::model {

namespace {
double seconds_since(std::chrono::steady_clock::time_point t0) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
}
}  // namespace

int64_t pick_next_token(const at::Tensor& logits, const SamplingOptions& options, at::Generator& generator) {
  at::Tensor z = logits.to(at::kFloat).reshape({-1});
  if (options.temperature <= 0.0) return z.argmax().item<int64_t>();
  z = z / options.temperature;
  if (options.top_k > 0 && options.top_k < z.size(0)) {
    auto kth = std::get<0>(z.topk(options.top_k)).min();
    z = z.masked_fill(z < kth, -std::numeric_limits<float>::infinity());
  }
  if (options.top_p < 1.0) {
    // Keep the smallest set of most likely tokens whose probability reaches top_p (always at least one).
    auto [sorted, order] = z.sort(/*dim=*/-1, /*descending=*/true);
    auto cumulative = sorted.softmax(-1).cumsum(-1);
    auto drop_sorted = (cumulative - sorted.softmax(-1)) >= options.top_p;
    auto drop = at::zeros_like(drop_sorted).scatter(0, order, drop_sorted);
    z = z.masked_fill(drop, -std::numeric_limits<float>::infinity());
  }
  auto probs = z.softmax(-1);
  return at::multinomial(probs, 1, /*replacement=*/false, generator).item<int64_t>();
}

GenerationResult generate(CausalLM& model, const std::vector<int64_t>& prompt, const SamplingOptions& options) {
  FUSELLM_CHECK(!prompt.empty(), "generate: the prompt is empty (give at least one token, e.g. BOS)");
  const int64_t max_context = model.config().max_context;
  FUSELLM_CHECK(max_context <= 0 || static_cast<int64_t>(prompt.size()) + options.max_new_tokens <= max_context,
                "generate: prompt ({} tokens) + max_new_tokens ({}) exceeds the model's context length {}",
                prompt.size(), options.max_new_tokens, max_context);
  at::NoGradGuard no_grad;
  at::Generator generator = at::make_generator<at::CPUGeneratorImpl>(options.seed);
  const auto device = model.device();
  auto as_tensor = [&](const std::vector<int64_t>& ids) {
    return at::tensor(ids, at::kLong).reshape({1, -1}).to(device);
  };

  GenerationResult result;
  std::vector<int64_t> sequence = prompt;
  KVCache cache;
  cache.reserve(options.max_new_tokens);  // decoding appends in place
  auto t0 = std::chrono::steady_clock::now();
  ForwardArgs args;
  args.input_ids = as_tensor(prompt);
  if (options.use_cache) args.cache = &cache;
  at::Tensor logits = model.forward(args);
  result.prefill_seconds = seconds_since(t0);

  t0 = std::chrono::steady_clock::now();
  for (int step = 0; step < options.max_new_tokens; ++step) {
    int64_t next = pick_next_token(logits[0][-1].to(at::kCPU), options, generator);
    result.tokens.push_back(next);
    sequence.push_back(next);
    if (options.stop_token && next == *options.stop_token) break;
    if (step + 1 == options.max_new_tokens) break;
    ForwardArgs step_args;
    if (options.use_cache) {
      step_args.input_ids = as_tensor({next});
      step_args.cache = &cache;
    } else {
      step_args.input_ids = as_tensor(sequence);
    }
    logits = model.forward(step_args);
  }
  result.decode_seconds = seconds_since(t0);
  return result;
}

}  // namespace fusellm::model
