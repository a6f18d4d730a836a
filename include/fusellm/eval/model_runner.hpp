#pragma once
// Answers requests with any model fusellm loads. Log-likelihoods follow lm-eval 0.3.x exactly: context and
// continuation tokenized jointly (_encode_pair: encode(context + continuation), the continuation being what
// follows encode(context)'s tokens; trailing context spaces moved to the continuation) or, as at the v0.3.0
// tag, separately; no BOS unless asked; an empty context is [EOS]; the input is the last max_length + 1
// tokens of context + continuation minus the final one (left truncation); the score is the summed
// log-softmax of the continuation tokens and whether each was the argmax.
//
// Speed: continuations of one context (the 4 ARC choices, BoolQ's yes/no) share one context pass — the
// contexts of several documents run as one left-padded batch into a KV cache, each cache row is repeated
// for its continuations, and all continuations run as one right-padded batch on top. Mathematically the
// same logits as lm-eval's one forward per (context, continuation); `share_context = false` runs that
// way instead (the benchmark's baseline and the tests' reference).
#include <memory>
#include <vector>

#include "fusellm/eval/request.hpp"
#include "fusellm/model/causal_lm.hpp"
#include "fusellm/tokenizer/tokenizer.hpp"

namespace fusellm::eval {

struct RunnerOptions {
  bool joint_encoding = true;  // lm-eval master's _encode_pair (FuseLLM's 0.3.x line); false = v0.3.0 tag
  bool context_bos = false;    // prepend BOS to loglikelihood contexts
  int64_t max_length = 0;      // 0 = the model's context (max_position_embeddings)
  int64_t batch_tokens = 8192; // padded tokens per forward
  int64_t generate_batch = 16; // prompts generated together (each row stops on its own)
  bool share_context = true;
};

struct EncodedPair {
  std::vector<int64_t> context, continuation;
};

class ModelRunner {
 public:
  ModelRunner(model::CausalLM& model, const tok::Tokenizer& tokenizer, RunnerOptions options);

  // Tokenization of a loglikelihood request, as lm-eval does it (see above).
  EncodedPair encode_pair(const Request& request) const;
  // All loglikelihood requests; results in request order.
  std::vector<Result> loglikelihood(const std::vector<const Request*>& requests);
  // Greedy continuation of request.context until a stop (open-instruct: the last ≤ 2 token ids of each
  // stop string's encoding ended the output), EOS or max_new_tokens; the completion is
  // decode(prompt + output)[len(decode(prompt)):] with special tokens skipped, cut before the stop.
  // Many prompts: batches of similar lengths, left-padded, each row stopping on its own (see
  // model_runner_generate.cpp); results in request order, each as generate_until(request) would give it.
  Result generate_until(const Request& request);
  std::vector<Result> generate_until(const std::vector<const Request*>& requests);
  // Sum of log-probabilities of every token of request.context (lm-eval's rolling disjoint windows of
  // max_length tokens, the first predicted from EOS).
  Result loglikelihood_rolling(const Request& request);

  int64_t max_length() const { return max_length_; }
  const tok::Tokenizer& tokenizer() const { return tokenizer_; }
  // Forward passes and padded tokens so far (what the benchmark compares).
  int64_t forwards() const { return forwards_; }
  int64_t padded_tokens() const { return padded_tokens_; }

 private:
  struct Scored {
    size_t request;  // index into the caller's list
    EncodedPair pair;
  };
  void score_pairs(std::vector<Scored>& items, std::vector<Result>& out);      // one forward per pair
  void score_shared(std::vector<Scored>& items, std::vector<Result>& out);     // grouped by context
  at::Tensor run(const at::Tensor& ids, const at::Tensor& mask, const at::Tensor& positions,
                 model::KVCache* cache, int64_t logits_to_keep);

  model::CausalLM& model_;
  const tok::Tokenizer& tokenizer_;
  RunnerOptions options_;
  int64_t max_length_ = 0;
  int64_t eos_ = 0;
  int64_t forwards_ = 0, padded_tokens_ = 0;
};

}  // namespace fusellm::eval
