// bench_eval: the eval scheduler on stories260K, one intra-op thread, medians of `rounds` runs.
//   - ARC-Easy log-likelihood requests/s: shared-context scheduling (one context pass per document, its
//     continuations batched on a KV cache) against lm-eval's way (one forward per (context, continuation)
//     pair, right-padded to the longest in its batch), same batch token budget;
//   - BBH generation tokens/s (greedy, KV cache), one prompt at a time and 16 together.
// Usage: bench_eval [arc_docs=400] [rounds=3] [bbh_prompts=16]
#include <ATen/Parallel.h>

#include <algorithm>
#include <cmath>
#include <chrono>
#include <cstdio>

#include "bench_args.hpp"
#include "fusellm/eval/evaluator.hpp"
#include "fusellm/eval/model_runner.hpp"
#include "fusellm/util/allocator.hpp"
#include "fusellm/util/log.hpp"

using namespace fusellm;

namespace {

double median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  return v[v.size() / 2];
}

double seconds_since(std::chrono::steady_clock::time_point t) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - t).count();
}

// lm-eval's _loglikelihood_tokens as it runs: pairs sorted longest first, right-padded batches, logits and
// log_softmax at every position of the batch, then the continuation's slice. Returns the summed
// log-likelihoods (checked against the runner's).
std::vector<double> lm_eval_way(model::CausalLM& model, const std::vector<eval::EncodedPair>& pairs,
                                int64_t batch_tokens, int64_t max_length) {
  at::NoGradGuard no_grad;
  std::vector<std::vector<int64_t>> inputs;
  for (const auto& p : pairs) {
    std::vector<int64_t> full = p.context;
    full.insert(full.end(), p.continuation.begin(), p.continuation.end());
    if (int64_t(full.size()) > max_length + 1) full.erase(full.begin(), full.end() - (max_length + 1));
    full.pop_back();
    inputs.push_back(std::move(full));
  }
  std::vector<size_t> order(pairs.size());
  for (size_t i = 0; i < order.size(); ++i) order[i] = i;
  std::stable_sort(order.begin(), order.end(), [&](size_t a, size_t b) { return inputs[a].size() > inputs[b].size(); });
  std::vector<double> out(pairs.size());
  for (size_t begin = 0; begin < order.size();) {
    const size_t width = inputs[order[begin]].size();
    size_t end = begin + 1;
    while (end < order.size() && (end - begin + 1) * width <= size_t(batch_tokens)) ++end;
    std::vector<int64_t> ids((end - begin) * width, 0);
    for (size_t r = begin; r < end; ++r)
      std::copy(inputs[order[r]].begin(), inputs[order[r]].end(), ids.begin() + int64_t((r - begin) * width));
    model::ForwardArgs args;
    args.input_ids = at::tensor(ids, at::kLong).reshape({int64_t(end - begin), int64_t(width)});
    const at::Tensor logp = model.forward(args).log_softmax(-1);
    for (size_t r = begin; r < end; ++r) {
      const auto& cont = pairs[order[r]].continuation;
      const int64_t len = int64_t(inputs[order[r]].size()), n = int64_t(cont.size());
      const at::Tensor rows = logp[int64_t(r - begin)].narrow(0, len - n, n);
      out[order[r]] = rows.gather(1, at::tensor(cont, at::kLong).unsqueeze(1)).sum().item<double>();
    }
    begin = end;
  }
  return out;
}

}  // namespace

int run(int argc, char** argv) {
  fusellm::tune_allocator_for_tensors();
  fusellm::bench::check_arg_count("bench_eval", argc, 3, "[arc_docs=400] [rounds=3] [bbh_prompts=16]");
  const int64_t docs = fusellm::bench::int_arg(argc, argv, 1, "ARC-Easy documents", 400, 1);
  const int rounds = int(fusellm::bench::int_arg(argc, argv, 2, "rounds", 3, 1));
  const int64_t prompts = fusellm::bench::int_arg(argc, argv, 3, "BBH prompts", 16, 0);
  const fs::path shared = fs::path(FUSELLM_SOURCE_DIR).parent_path() / "shared";
  if (!fs::exists(shared / "data")) {
    std::printf("bench_eval: skipped: ../shared (test material beside the checkout) not found\n");
    return 0;
  }
  spdlog::set_level(spdlog::level::warn);
  at::set_num_threads(1);
  const fs::path model_dir = shared / "data/models/stories260K-hf";
  auto model = model::load_model(model_dir);
  auto tokenizer = tok::load_tokenizer(model_dir);

  eval::EvalOptions o;
  o.shared_data = shared / "data";
  o.limit = docs;
  const auto arc = eval::load_task_docs(*eval::make_task("arc_easy"), o);
  std::vector<const eval::Request*> requests;
  for (const auto& d : arc)
    for (const auto& r : d.requests) requests.push_back(&r);
  std::printf("stories260K, 1 intra-op thread; ARC-Easy: %zu documents, %zu requests; %d rounds (median)\n", arc.size(),
              requests.size(), rounds);
  {
    // The least any scheduler must run: every context once and every continuation token but the last, vs
    // every (context, continuation) pair in full.
    eval::ModelRunner probe(*model, *tokenizer, eval::RunnerOptions{});
    int64_t shared_min = 0, pairs = 0;
    std::string last_context;
    for (const auto& d : arc)
      for (size_t i = 0; i < d.requests.size(); ++i) {
        const auto p = probe.encode_pair(d.requests[i]);
        if (i == 0) shared_min += int64_t(p.context.size());
        shared_min += int64_t(p.continuation.size()) - 1;
        pairs += int64_t(p.context.size() + p.continuation.size()) - 1;
      }
    std::printf("  tokens without padding: %lld with one context pass per document, %lld pairwise (%.2fx)\n",
                (long long)shared_min, (long long)pairs, double(pairs) / double(shared_min));
  }
  double shared_rate = 0, pair_rate = 0;
  for (bool share : {true, false}) {
    eval::RunnerOptions ro;
    ro.share_context = share;
    std::vector<double> times;
    int64_t forwards = 0, padded = 0;
    for (int r = 0; r < rounds; ++r) {
      eval::ModelRunner runner(*model, *tokenizer, ro);
      const auto t0 = std::chrono::steady_clock::now();
      runner.loglikelihood(requests);
      times.push_back(seconds_since(t0));
      forwards = runner.forwards();
      padded = runner.padded_tokens();
    }
    const double rate = double(requests.size()) / median(times);
    (share ? shared_rate : pair_rate) = rate;
    std::printf("  %-34s %8.1f requests/s  (%.3f s; %lld forwards, %lld padded tokens)\n",
                share ? "shared context (fusellm)" : "one forward per pair (lm-eval)", rate, median(times),
                (long long)forwards, (long long)padded);
  }
  {
    eval::ModelRunner probe(*model, *tokenizer, eval::RunnerOptions{});
    std::vector<eval::EncodedPair> pairs;
    for (const auto* r : requests) pairs.push_back(probe.encode_pair(*r));
    const auto check = probe.loglikelihood(requests);
    std::vector<double> times;
    double worst = 0;
    for (int r = 0; r < rounds; ++r) {
      const auto t0 = std::chrono::steady_clock::now();
      const auto got = lm_eval_way(*model, pairs, eval::RunnerOptions{}.batch_tokens, probe.max_length());
      times.push_back(seconds_since(t0));
      for (size_t i = 0; i < got.size(); ++i) worst = std::max(worst, std::abs(got[i] - check[i].logprob));
    }
    const double rate = double(requests.size()) / median(times);
    std::printf("  %-34s %8.1f requests/s  (%.3f s; max |logprob diff| vs fusellm %.1e)\n",
                "lm-eval's way (log_softmax everywhere)", rate, median(times), worst);
    std::printf("  speed-up %.2fx over one forward per pair, %.2fx over lm-eval's way\n", shared_rate / pair_rate,
                shared_rate / rate);
  }

  if (prompts > 0) {
    // BBH: the same prompts one at a time and in batches (rows stopping on their own).
    o.limit = prompts;
    const auto bbh = eval::load_task_docs(*eval::make_task("bbh_sports_understanding"), o);
    std::vector<eval::Request> reqs;
    for (const auto& d : bbh) {
      reqs.push_back(d.requests[0]);
      reqs.back().max_new_tokens = 128;
    }
    std::vector<const eval::Request*> pointers;
    for (const auto& r : reqs) pointers.push_back(&r);
    std::vector<std::vector<eval::Result>> outputs;
    double single_rate = 0;
    for (int64_t batch : {int64_t(1), int64_t(16)}) {
      eval::RunnerOptions ro;
      ro.generate_batch = batch;
      eval::ModelRunner runner(*model, *tokenizer, ro);
      std::vector<double> rates;
      for (int r = 0; r < rounds; ++r) {
        const auto t0 = std::chrono::steady_clock::now();
        const auto results = runner.generate_until(pointers);
        int64_t tokens = 0;
        for (const auto& res : results) tokens += res.tokens;
        rates.push_back(double(tokens) / seconds_since(t0));
        if (r == 0) outputs.push_back(results);
      }
      const double rate = median(rates);
      if (batch == 1) single_rate = rate;
      std::printf("BBH sports_understanding generation, %lld prompts, up to 128 new tokens, batch %lld: %.1f tokens/s "
                  "(prefill included)%s\n", (long long)bbh.size(), (long long)batch, rate,
                  batch == 1 ? "" : fmt::format(", {:.2f}x", rate / single_rate).c_str());
    }
    size_t same = 0;
    for (size_t i = 0; i < reqs.size(); ++i) same += outputs[0][i].text == outputs[1][i].text;
    std::printf("  batched and one-at-a-time completions identical: %zu of %zu (float32)\n", same, reqs.size());
  }
  return 0;
}

int main(int argc, char** argv) {
  return fusellm::bench::guarded_main("bench_eval", [&] { return run(argc, argv); });
}
