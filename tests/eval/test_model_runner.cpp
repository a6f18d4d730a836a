// The model runner on the real stories260K: shared-context scoring equals lm-eval's one forward per
// (context, continuation) pair (compared in float64, where only rounding order differs: 1e-9), and both
// equal a direct full-sequence forward; joint vs separate tokenization; left truncation; rolling windows;
// greedy generation with open-instruct's stop rule, batched or one prompt at a time.
#include <gtest/gtest.h>

#include <cmath>
#include <fstream>
#include <set>

#include "common/test_paths.hpp"
#include "fusellm/eval/evaluator.hpp"
#include "fusellm/eval/model_runner.hpp"
#include "fusellm/model/generate.hpp"

namespace fusellm::eval {
namespace {

struct Stories {
  std::unique_ptr<model::CausalLM> model;
  std::unique_ptr<tok::Tokenizer> tokenizer;
  explicit Stories(at::ScalarType dtype) {
    const fs::path dir = test::shared_dir() / "data/models/stories260K-hf";
    io::LoadOptions load;
    load.dtype = dtype;
    model = model::load_model(dir, load);
    tokenizer = tok::load_tokenizer(dir);
  }
};

// log p(continuation | context) by one plain forward over context + continuation (no padding, no cache).
double direct_logprob(model::CausalLM& m, const EncodedPair& p) {
  at::NoGradGuard no_grad;
  std::vector<int64_t> full = p.context;
  full.insert(full.end(), p.continuation.begin(), p.continuation.end());
  model::ForwardArgs args;
  args.input_ids = at::tensor(full, at::kLong).reshape({1, -1});
  const at::Tensor logp = m.forward(args)[0].to(at::kDouble).log_softmax(-1);
  double sum = 0;
  for (size_t i = 0; i < p.continuation.size(); ++i)
    sum += logp[int64_t(p.context.size() + i) - 1][p.continuation[i]].item<double>();
  return sum;
}

std::vector<Request> cs_requests(size_t docs_per_task) {
  EvalOptions o;
  o.shared_data = test::shared_dir() / "data";
  o.limit = int64_t(docs_per_task);
  std::vector<Request> out;
  for (const char* t : {"arc_easy", "boolq", "winogrande", "hellaswag", "piqa"})
    for (const auto& d : load_task_docs(*make_task(t), o))
      for (const auto& r : d.requests) out.push_back(r);
  return out;
}

TEST(ModelRunner, SharedContextEqualsPairwiseAndDirectForward) {
  FUSELLM_REQUIRE_SHARED();
  Stories s(at::kDouble);
  const auto requests = cs_requests(12);
  std::vector<const Request*> ptrs;
  for (const auto& r : requests) ptrs.push_back(&r);
  RunnerOptions shared_opts, pair_opts;
  pair_opts.share_context = false;
  shared_opts.batch_tokens = pair_opts.batch_tokens = 2048;  // several batches
  ModelRunner shared(*s.model, *s.tokenizer, shared_opts), pairwise(*s.model, *s.tokenizer, pair_opts);
  const auto a = shared.loglikelihood(ptrs), b = pairwise.loglikelihood(ptrs);
  ASSERT_EQ(a.size(), requests.size());
  double worst = 0;
  size_t truncated = 0;
  for (size_t i = 0; i < a.size(); ++i) {
    EXPECT_NEAR(a[i].logprob, b[i].logprob, 1e-9) << i;
    EXPECT_EQ(a[i].is_greedy, b[i].is_greedy) << i;
    EXPECT_EQ(a[i].tokens, b[i].tokens) << i;
    EXPECT_EQ(a[i].truncated, b[i].truncated) << i;  // BoolQ passages exceed stories260K's 512 tokens
    truncated += a[i].truncated;
    worst = std::max(worst, std::abs(a[i].logprob - b[i].logprob));
    if (i % 7 == 0 && !a[i].truncated) EXPECT_NEAR(a[i].logprob, direct_logprob(*s.model, shared.encode_pair(requests[i])), 1e-9) << i;
  }
  EXPECT_GT(truncated, 0u);
  EXPECT_LT(truncated, a.size() / 2);
  std::printf("[ runner   ] %zu requests (%zu left-truncated): shared-context vs pairwise max |diff| %.2g (float64); "
              "forwards %lld vs %lld, padded tokens %lld vs %lld\n", a.size(), truncated, worst, (long long)shared.forwards(), (long long)pairwise.forwards(),
              (long long)shared.padded_tokens(), (long long)pairwise.padded_tokens());
  EXPECT_LT(shared.padded_tokens(), pairwise.padded_tokens());
}

TEST(ModelRunner, EncodingJointOrSeparateAndLeftTruncation) {
  FUSELLM_REQUIRE_SHARED();
  Stories s(at::kFloat);
  Request r;
  r.context = "Question: Is the sky blue?\nAnswer:";
  r.continuation = " yes";
  RunnerOptions joint, separate;
  separate.joint_encoding = false;
  // Llama-2's SentencePiece keeps whitespace (tok512 removes leading spaces, hiding the difference).
  const auto llama = tok::load_tokenizer(test::shared_dir() / "data/tokenizers/llama2/tokenizer.model");
  const EncodedPair lj = ModelRunner(*s.model, *llama, joint).encode_pair(r);
  const EncodedPair ls = ModelRunner(*s.model, *llama, separate).encode_pair(r);
  EXPECT_EQ(ls.context, lj.context);
  EXPECT_NE(ls.continuation, lj.continuation);  // " yes" alone gets a dummy-prefix space (PR #531)
  const EncodedPair j = ModelRunner(*s.model, *s.tokenizer, joint).encode_pair(r);
  const EncodedPair sep = ModelRunner(*s.model, *s.tokenizer, separate).encode_pair(r);
  auto whole = s.tokenizer->encode_ids(r.context + r.continuation, false);
  EXPECT_EQ(j.context, std::vector<int64_t>(whole.begin(), whole.begin() + int64_t(j.context.size())));
  EXPECT_EQ(j.continuation, std::vector<int64_t>(whole.begin() + int64_t(j.context.size()), whole.end()));
  EXPECT_EQ(sep.context, j.context);
  // Trailing context spaces move to the continuation; an empty context is [EOS].
  Request spaced = r;
  spaced.context += " ";
  spaced.continuation = "yes";
  EXPECT_EQ(ModelRunner(*s.model, *s.tokenizer, joint).encode_pair(spaced).continuation, j.continuation);
  Request empty = r;
  empty.context.clear();
  EXPECT_EQ(ModelRunner(*s.model, *s.tokenizer, joint).encode_pair(empty).context,
            std::vector<int64_t>{*s.tokenizer->special_tokens().eos});
  // max_length 8: the input is the last 9 tokens minus the final one, flagged as truncated.
  RunnerOptions short_ctx;
  short_ctx.max_length = 8;
  ModelRunner truncating(*s.model, *s.tokenizer, short_ctx);
  const auto res = truncating.loglikelihood({&r});
  EXPECT_TRUE(res[0].truncated);
  EncodedPair tail;
  std::vector<int64_t> full = j.context;
  full.insert(full.end(), j.continuation.begin(), j.continuation.end());
  tail.continuation = j.continuation;
  tail.context.assign(full.end() - 9, full.end() - int64_t(j.continuation.size()));
  EXPECT_NEAR(res[0].logprob, direct_logprob(*s.model, tail), 1e-4);  // float32: one forward vs another
}

TEST(ModelRunner, RollingWindowsCoverEveryToken) {
  FUSELLM_REQUIRE_SHARED();
  Stories s(at::kDouble);
  Request r;
  r.kind = RequestKind::loglikelihood_rolling;
  r.context = "Once upon a time there was a little girl named Lily. She loved to play outside in the sun.";
  const auto tokens = s.tokenizer->encode_ids(r.context, false);
  RunnerOptions whole, windows;
  windows.max_length = 8;
  const Result one = ModelRunner(*s.model, *s.tokenizer, whole).loglikelihood_rolling(r);
  const Result many = ModelRunner(*s.model, *s.tokenizer, windows).loglikelihood_rolling(r);
  EXPECT_EQ(one.tokens, int64_t(tokens.size()));
  EncodedPair all;
  all.context = {*s.tokenizer->special_tokens().eos};
  all.continuation.assign(tokens.begin(), tokens.end());
  EXPECT_NEAR(one.logprob, direct_logprob(*s.model, all), 1e-9);
  // Windows of 8: each window predicts 8 tokens from the 8 before them (the first from EOS).
  double want = 0;
  for (size_t begin = 0; begin < tokens.size(); begin += 8) {
    const size_t end = std::min(tokens.size(), begin + 8);
    EncodedPair w;
    if (begin == 0) w.context = {*s.tokenizer->special_tokens().eos};
    else w.context.assign(tokens.begin() + int64_t(end) - 9, tokens.begin() + int64_t(begin));
    w.continuation.assign(tokens.begin() + int64_t(begin), tokens.begin() + int64_t(end));
    if (begin == 0) w.continuation.assign(tokens.begin(), tokens.begin() + int64_t(end));
    want += direct_logprob(*s.model, w);
  }
  EXPECT_NEAR(many.logprob, want, 1e-9);
}

// The bpb task over a small paragraph corpus: corpus-level bits per byte and perplexities from the
// per-document rolling log-likelihoods, weighted by bytes and words (lm-eval's weighted_perplexity).
TEST(ModelRunner, BitsPerByteOfACorpus) {
  FUSELLM_REQUIRE_SHARED();
  Stories s(at::kDouble);
  const fs::path dir = test::scratch_dir("eval_bpb");
  const std::vector<std::string> paragraphs = {"Once upon a time there was a cat.", "The dog ran  to the park.\nIt was happy.",
                                               "Lily and Tom played all day."};
  {
    std::ofstream out(dir / "corpus.txt");
    for (size_t i = 0; i < paragraphs.size(); ++i) out << (i ? "\n\n" : "") << paragraphs[i];
    out << "\n";
  }
  EvalOptions o;
  o.tasks = {"bpb"};
  o.data["bpb"] = dir / "corpus.txt";
  o.out_dir = dir / "out";
  o.progress = false;
  RunnerOptions ro;
  ro.max_length = 8;  // several windows per document
  ModelRunner runner(*s.model, *s.tokenizer, ro);
  const auto docs = load_task_docs(*make_task("bpb"), o);
  ASSERT_EQ(docs.size(), paragraphs.size());
  double ll = 0, bytes = 0, words = 0;
  for (const auto& d : docs) {
    ll += runner.loglikelihood_rolling(d.requests[0]).logprob;
    bytes += double(d.requests[0].context.size());
    words += d.fields["words"].get<double>();
  }
  EXPECT_EQ(docs[1].fields["words"].get<double>(), 9.0);  // re.split(r"\s+"): 9 pieces
  const json r = run_eval(o, runner, "bpb-test").results["results"]["bpb"];
  EXPECT_NEAR(r["bits_per_byte"].get<double>(), -ll / bytes / std::log(2.0), 1e-12);
  EXPECT_NEAR(r["byte_perplexity"].get<double>(), std::exp(-ll / bytes), 1e-12);
  EXPECT_NEAR(r["word_perplexity"].get<double>(), std::exp(-ll / words), 1e-9);
}

// A 60-token greedy generation from a story opening, with the tokenizer's BOS.
Request once_upon_a_time() {
  Request r;
  r.kind = RequestKind::generate_until;
  r.context = "Once upon a time";
  r.max_new_tokens = 60;
  r.add_bos = true;
  return r;
}

TEST(ModelRunner, GreedyGenerationStopsAsOpenInstruct) {
  FUSELLM_REQUIRE_SHARED();
  Stories s(at::kFloat);
  Request r = once_upon_a_time();
  ModelRunner runner(*s.model, *s.tokenizer, RunnerOptions{});
  const Result free_run = runner.generate_until(r);
  // The same greedy tokens as model::generate.
  model::SamplingOptions so;
  so.max_new_tokens = 60;
  so.stop_token = *s.tokenizer->special_tokens().eos;
  auto prompt = s.tokenizer->encode_ids(r.context, true);
  const auto reference = model::generate(*s.model, std::vector<int64_t>(prompt.begin(), prompt.end()), so);
  EXPECT_EQ(free_run.tokens, int64_t(reference.tokens.size()));
  std::vector<int32_t> full(prompt.begin(), prompt.end()), ref_ids(reference.tokens.begin(), reference.tokens.end());
  full.insert(full.end(), ref_ids.begin(), ref_ids.end());
  const std::string ref_text = s.tokenizer->decode(full, true).substr(s.tokenizer->decode({prompt.begin(), prompt.end()}, true).size());
  // EOS (special, skipped when decoding) may end the reference.
  EXPECT_EQ(free_run.text, ref_text);
  // A stop string whose last two token ids occur in that output cuts it before their first occurrence.
  const std::vector<int64_t>& ids = reference.tokens;
  for (size_t p = 1; p + 2 < ids.size(); ++p) {
    const std::string stop = s.tokenizer->decode({int32_t(ids[p]), int32_t(ids[p + 1])}, true);
    auto enc = s.tokenizer->encode_ids(stop, false);
    if (enc.size() < 2 || enc[enc.size() - 2] != ids[p] || enc.back() != ids[p + 1]) continue;
    size_t first = p;
    for (size_t q = 0; q < p; ++q)
      if (ids[q] == ids[p] && ids[q + 1] == ids[p + 1]) first = std::min(first, q);
    r.stops = {stop};
    const Result stopped = runner.generate_until(r);
    std::vector<int32_t> cut(prompt.begin(), prompt.end());
    cut.insert(cut.end(), ids.begin(), ids.begin() + int64_t(first));
    EXPECT_EQ(stopped.text, s.tokenizer->decode(cut, true).substr(s.tokenizer->decode({prompt.begin(), prompt.end()}, true).size()))
        << "stop " << json(stop).dump();
    EXPECT_EQ(stopped.tokens, int64_t(first + 2));  // generation ended when the stop ids were first output
    return;
  }
  FAIL() << "no two-token stop string found in " << free_run.text;
}

// lm-eval's `until` (stop_on_text): a stop string anywhere in the decoded continuation ends generation and
// cuts the text, even inside a longer token; every stop string tried gives the free run's text cut before
// the stop's first occurrence, and generation ends at the first token whose text completes it.
TEST(ModelRunner, TextStopsCutTheDecodedContinuation) {
  FUSELLM_REQUIRE_SHARED();
  Stories s(at::kFloat);
  Request r = once_upon_a_time();
  r.stop_on_text = true;
  ModelRunner runner(*s.model, *s.tokenizer, RunnerOptions{});
  const Result free_run = runner.generate_until(r);
  ASSERT_GT(free_run.text.size(), 20u);
  size_t tried = 0;
  // Stops that start mid-token ("e" inside "the"), span tokens ("ne"), or never occur ("#").
  for (const std::string stop : {"e", "ne", ".", "d t", "#", "\n"}) {
    r.stops = {stop};
    const Result stopped = runner.generate_until(r);
    const size_t at = free_run.text.find(stop);
    EXPECT_EQ(stopped.text, free_run.text.substr(0, at)) << json(stop).dump();
    if (at != std::string::npos) {
      EXPECT_LT(stopped.tokens, free_run.tokens) << json(stop).dump();
      ++tried;
    }
  }
  EXPECT_GE(tried, 3u);
  // Several stops: the earliest wins.
  r.stops = {"#", ".", "e"};
  EXPECT_EQ(runner.generate_until(r).text, free_run.text.substr(0, std::min(free_run.text.find('.'), free_run.text.find('e'))));
}

// Batched generation (left-padded prompts of different lengths, rows stopping at different steps: EOS, a
// stop string, their own max_new_tokens, the context's end) gives every row what it gets alone. float64:
// the batched matmuls round differently from batch-of-one ones, and a float32 near-tie could flip an argmax.
TEST(ModelRunner, BatchedGenerationEqualsOneAtATime) {
  FUSELLM_REQUIRE_SHARED();
  Stories s(at::kDouble);
  std::vector<Request> requests;
  const std::vector<std::string> prompts = {"Once upon a time", "Lily and Ben went to the park. They saw a big",
                                            "The cat", "One day, a little bird", "Tom had a red ball. He",
                                            "Sue was sad because"};
  for (size_t i = 0; i < prompts.size(); ++i) {
    Request r;
    r.kind = RequestKind::generate_until;
    r.context = prompts[i];
    r.add_bos = true;
    r.max_new_tokens = int(10 + 17 * i);                 // rows end at different steps
    if (i % 2 == 1) r.stops = {".", "\n\n"};            // some stop at a sentence end
    requests.push_back(r);
  }
  Request filler;  // a prompt that fills the context: truncated, and stopped by the context's end
  filler.kind = RequestKind::generate_until;
  for (int i = 0; i < 120; ++i) filler.context += "The dog ran and ran. ";
  filler.max_new_tokens = 200;
  requests.push_back(filler);
  std::vector<const Request*> all;
  for (const auto& r : requests) all.push_back(&r);
  RunnerOptions batched;
  batched.generate_batch = 4;
  ModelRunner runner(*s.model, *s.tokenizer, batched);
  const auto together = runner.generate_until(all);
  const int64_t forwards_batched = runner.forwards();
  ModelRunner alone_runner(*s.model, *s.tokenizer, RunnerOptions{});
  std::set<int64_t> lengths;
  for (size_t i = 0; i < all.size(); ++i) {
    const Result alone = alone_runner.generate_until(*all[i]);
    EXPECT_EQ(together[i].text, alone.text) << i;
    EXPECT_EQ(together[i].tokens, alone.tokens) << i;
    EXPECT_EQ(together[i].truncated, alone.truncated) << i;
    lengths.insert(alone.tokens);
  }
  EXPECT_GE(lengths.size(), 4u);  // the rows really stopped at different steps
  EXPECT_TRUE(together.back().truncated);
  EXPECT_LT(forwards_batched, alone_runner.forwards());
  std::printf("[ generate ] %zu prompts: %lld forwards batched (4 per batch) vs %lld one at a time\n", all.size(),
              (long long)forwards_batched, (long long)alone_runner.forwards());
}

}  // namespace
}  // namespace fusellm::eval
