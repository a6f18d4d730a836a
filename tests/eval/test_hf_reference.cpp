// fusellm eval against an independent reference (tests/eval/fixtures/hf_reference.json, made by
// tools/eval-reference/make_reference.py with HF transformers 5 / torch 2.11 in float64 and libsentencepiece):
// the first 18 documents of each Common Sense task give the same request strings, per-request
// log-likelihoods within 1e-4 (both float64; measured 1.3e-5: RoPE tables are float32 in both, rounded
// differently), the same greedy flags, truncation and
// acc/acc_norm; 30 BBH prompts of 3 tasks give HF generate's greedy continuations token for token.
#include <gtest/gtest.h>

#include <map>

#include "common/test_paths.hpp"
#include "fusellm/eval/evaluator.hpp"
#include "fusellm/eval/model_runner.hpp"
#include "bbh_reference_requests.hpp"

namespace fusellm::eval {
namespace {

const json& reference() {
  static const json j = parse_json_file(fs::path(FUSELLM_SOURCE_DIR) / "tests/eval/fixtures/hf_reference.json");
  return j;
}

struct Stories64 {
  std::unique_ptr<model::CausalLM> model;
  std::unique_ptr<tok::Tokenizer> tokenizer;
  Stories64() {
    const fs::path dir = test::shared_dir() / "data/models/stories260K-hf";
    io::LoadOptions load;
    load.dtype = at::kDouble;
    model = model::load_model(dir, load);
    tokenizer = tok::load_tokenizer(dir);
  }
};

TEST(EvalHfReference, CommonSenseRequestsAndLogLikelihoods) {
  FUSELLM_REQUIRE_SHARED();
  const json& ref = reference();
  std::map<std::string, std::vector<const json*>> by_task;
  for (const auto& r : ref["loglikelihood"]) by_task[r["task"].get<std::string>()].push_back(&r);
  ASSERT_GE(ref["loglikelihood"].size(), 300u);
  Stories64 s;
  ModelRunner runner(*s.model, *s.tokenizer, RunnerOptions{});
  EvalOptions o;
  o.shared_data = test::shared_dir() / "data";
  o.limit = ref["docs_per_task"].get<int64_t>();
  double worst = 0;
  size_t compared = 0, docs_compared = 0;
  for (const auto& [name, expected] : by_task) {
    SCOPED_TRACE(name);
    const auto task = make_task(name);
    const auto docs = load_task_docs(*task, o);
    std::vector<const Request*> requests;
    for (const auto& d : docs)
      for (const auto& r : d.requests) requests.push_back(&r);
    ASSERT_EQ(requests.size(), expected.size());
    for (size_t i = 0; i < requests.size(); ++i) {
      EXPECT_EQ(requests[i]->context, (*expected[i])["context"].get<std::string>()) << i;
      EXPECT_EQ(requests[i]->continuation, (*expected[i])["continuation"].get<std::string>()) << i;
    }
    const auto results = runner.loglikelihood(requests);
    for (size_t i = 0; i < results.size(); ++i) {
      const double want = (*expected[i])["logprob"].get<double>();
      EXPECT_NEAR(results[i].logprob, want, 1e-4) << i;
      EXPECT_EQ(results[i].is_greedy, (*expected[i])["is_greedy"].get<bool>()) << i;
      EXPECT_EQ(results[i].truncated, (*expected[i])["truncated"].get<bool>()) << i;
      worst = std::max(worst, std::abs(results[i].logprob - want));
      ++compared;
    }
    // The same document scores (acc, acc_norm) from the reference's numbers and from fusellm's.
    size_t at = 0;
    for (const auto& d : docs) {
      std::vector<Result> ours, theirs;
      for (size_t k = 0; k < d.requests.size(); ++k, ++at) {
        ours.push_back(results[at]);
        Result r;
        r.logprob = (*expected[at])["logprob"].get<double>();
        theirs.push_back(r);
      }
      json p1, p2;
      EXPECT_EQ(task->score(d, ours, p1), task->score(d, theirs, p2)) << "document " << d.index;
      ++docs_compared;
    }
  }
  std::printf("[ hf ref   ] %zu log-likelihood requests of %zu documents, 7 tasks: max |fusellm - HF| %.2g\n",
              compared, docs_compared, worst);
}

TEST(EvalHfReference, BbhGreedyContinuationsMatchHfGenerate) {
  FUSELLM_REQUIRE_SHARED();
  const json& ref = reference();
  ASSERT_GE(ref["generate"].size(), 30u);
  Stories64 s;
  ModelRunner runner(*s.model, *s.tokenizer, RunnerOptions{});
  size_t same = 0;
  // Every prompt once in batches (left-padded, rows stopping on their own) and once alone: both equal HF.
  const std::vector<Request> all = bbh_reference_requests(ref["generate"], test::shared_dir() / "data");
  std::vector<const Request*> pointers;
  for (const auto& r : all) pointers.push_back(&r);
  const std::vector<Result> batched = runner.generate_until(pointers);
  size_t k = 0;
  for (const auto& g : ref["generate"]) {
    const std::string task = "bbh_" + g["task"].get<std::string>();
    const Request& r = all[k];
    const Result got = batched.at(k++);
    EXPECT_EQ(got.text, runner.generate_until(r).text) << "one at a time vs batched";
    // The reference's text by open-instruct's decode rule, on the same (left-truncated) prompt.
    auto prompt = s.tokenizer->encode_ids(r.context, true);
    ASSERT_EQ(int64_t(prompt.size()) > g["prompt_tokens"].get<int64_t>(), got.truncated);
    prompt.erase(prompt.begin(), prompt.end() - g["prompt_tokens"].get<int64_t>());
    std::vector<int32_t> full = prompt;
    for (const auto& t : g["tokens"]) full.push_back(t.get<int32_t>());
    const std::string prompt_text = s.tokenizer->decode(prompt, true), full_text = s.tokenizer->decode(full, true);
    EXPECT_EQ(got.tokens, int64_t(g["tokens"].size())) << task << " " << g["doc"];
    EXPECT_EQ(got.text, full_text.substr(prompt_text.size())) << task << " " << g["doc"];
    same += got.text == full_text.substr(prompt_text.size());
  }
  std::printf("[ hf ref   ] BBH: %zu of %zu greedy continuations identical to HF generate\n", same,
              ref["generate"].size());
}

}  // namespace
}  // namespace fusellm::eval
