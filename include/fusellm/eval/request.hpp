#pragma once
// The three request kinds every model answers, as in EleutherAI lm-evaluation-harness: a task turns its
// documents into requests, a model runner answers them, the task turns the answers into metrics.
#include <cstdint>
#include <string>
#include <vector>

#include "fusellm/util/json.hpp"

namespace fusellm::eval {

enum class RequestKind { loglikelihood, generate_until, loglikelihood_rolling };
const char* to_string(RequestKind kind);

struct Request {
  RequestKind kind = RequestKind::loglikelihood;
  // loglikelihood: log p(continuation | context); generate_until: context is the prompt;
  // loglikelihood_rolling: context is the whole text.
  std::string context, continuation;
  std::vector<std::string> stops;  // generate_until: stop at the first of these in the decoded text
  int max_new_tokens = 0;          // generate_until
  bool add_bos = false;            // generate_until: prompt tokenized with the tokenizer's BOS (open-instruct)
  // generate_until: how stops are matched. false = open-instruct's way (BBH): generation stops when the
  // last ≤ 2 token ids of a stop string's own encoding appear. true = lm-eval's `until`: a stop string
  // anywhere in the decoded continuation stops it, and the text is cut before the first one — needed where
  // a tokenizer merges the stop into longer tokens (a metaspace BPE's "]\nprint(").
  bool stop_on_text = false;
  // generate_until: sampling instead of greedy decoding (bigcode-evaluation-harness: do_sample with
  // temperature, top-k then top-p, as HF's warpers apply them). temperature 0 = greedy. Each sample of a
  // prompt is its own request (`sample` = 0..n−1) drawn from its own generator, seeded from `seed`, the
  // prompt and `sample`: a sample does not depend on what it was batched with, and a resumed eval draws it
  // again identically.
  double temperature = 0;
  double top_p = 1;
  int top_k = 0;
  uint64_t seed = 0;
  int sample = 0;
  // generate_until: the harness's max_length_generation — prompt + generation in tokens (the prompt is
  // left-truncated to it, generation stops when it is reached); 0 = only max_new_tokens and the context.
  int max_length = 0;

  // A stable identity for the on-disk cache: kind, strings and settings, hashed (hex).
  std::string key() const;
  // The seed of this request's sampling generator (see temperature).
  uint64_t sampling_seed() const;
  json to_json() const;
};

struct Result {
  double logprob = 0;        // loglikelihood(_rolling): summed log-probability of the scored tokens
  bool is_greedy = false;    // loglikelihood: every continuation token was the argmax
  int64_t tokens = 0;        // scored (or generated) tokens
  std::string text;          // generate_until: the completion, cut before the first stop string
  bool truncated = false;    // the input was longer than the model's context and was left-truncated

  json to_json() const;
  static Result from_json(const json& j);
};

}  // namespace fusellm::eval
