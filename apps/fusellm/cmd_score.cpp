// `fusellm score`: log-probability of each actual next token under a model, total NLL and perplexity.
#include <chrono>
#include <cmath>
#include <iostream>

#include "cli_common.hpp"
#include "command.hpp"
#include "fusellm/model/causal_lm.hpp"
#include "fusellm/util/error.hpp"
#include "fusellm/util/json.hpp"

namespace {

using namespace fusellm;

struct ScoreFlags {
  std::string model, tokenizer, ids, text, dtype = "fp32", device = "cpu";
  bool as_json = false;
};

int run(const ScoreFlags& f) {
  auto tokenizer = cli::open_tokenizer(f.model, f.tokenizer, /*required=*/false);
  std::vector<int64_t> ids = cli::input_ids(f.ids, f.text, tokenizer.get(), "--text");
  FUSELLM_CHECK(ids.size() >= 2, "score: need at least 2 tokens to score a next token (got {})", ids.size());
  auto model = model::load_model(f.model, cli::load_options(f.dtype, f.device));
  const int64_t vocab = model->config().vocab_size;
  for (int64_t id : ids) FUSELLM_CHECK(id < vocab, "--ids: token id {} is outside the vocabulary ({} tokens)", id, vocab);
  const int64_t ctx = model->config().max_context;
  FUSELLM_CHECK(ctx <= 0 || static_cast<int64_t>(ids.size()) <= ctx,
                "score: {} tokens exceed the model's context length {}", ids.size(), ctx);

  at::NoGradGuard no_grad;
  model::ForwardArgs args;
  args.input_ids = at::tensor(ids, at::kLong).reshape({1, -1}).to(model->device());
  auto logprobs = model->forward(args)[0].to(at::kCPU).to(at::kDouble).log_softmax(-1);
  auto targets = at::tensor(std::vector<int64_t>(ids.begin() + 1, ids.end()), at::kLong);
  auto picked = logprobs.slice(0, 0, static_cast<int64_t>(ids.size()) - 1).gather(1, targets.unsqueeze(1)).squeeze(1);
  auto lp = picked.accessor<double, 1>();
  double nll = 0;
  for (int64_t i = 0; i < lp.size(0); ++i) nll -= lp[i];
  const double mean = nll / static_cast<double>(lp.size(0));

  auto token_str = [&](int64_t id) { return tokenizer ? tokenizer->id_to_token(static_cast<int32_t>(id)) : std::string(); };
  if (f.as_json) {
    json tokens = json::array();
    for (int64_t i = 0; i < lp.size(0); ++i) {
      json t = {{"position", i + 1}, {"id", ids[i + 1]}, {"logprob", lp[i]}};
      if (tokenizer) t["token"] = token_str(ids[i + 1]);
      tokens.push_back(t);
    }
    json out = {{"model", f.model}, {"num_tokens", ids.size()}, {"num_scored", lp.size(0)}, {"tokens", tokens},
                {"total_nll", nll}, {"mean_nll", mean}, {"perplexity", std::exp(mean)}};
    std::cout << out.dump(2, ' ', false, json::error_handler_t::replace) << "\n";
    return 0;
  }
  std::cout << fmt::format("{:>5} {:>7} {:>12}  {}\n", "pos", "id", "logprob", tokenizer ? "token" : "");
  for (int64_t i = 0; i < lp.size(0); ++i) {
    std::cout << fmt::format("{:>5} {:>7} {:>12.6f}  {}\n", i + 1, ids[i + 1], lp[i],
                             tokenizer ? cli::json_escape_token(token_str(ids[i + 1])) : "");
  }
  std::cout << fmt::format("tokens scored {}  total NLL {:.6f}  mean NLL {:.6f}  perplexity {:.4f}\n", lp.size(0),
                           nll, mean, std::exp(mean));
  return 0;
}

cli::Action setup(CLI::App& app) {
  auto f = std::make_shared<ScoreFlags>();
  app.add_option("--model", f->model, "HF model directory")->required();
  auto ids = app.add_option("--ids", f->ids, "comma-separated token ids");
  auto text = app.add_option("--text", f->text, "text, tokenized with the model's tokenizer");
  ids->excludes(text);
  app.add_option("--tokenizer", f->tokenizer, "tokenizer directory or file (default: the model's)");
  app.add_option("--dtype", f->dtype, "fp32, bf16, fp16, auto (as stored)")->capture_default_str();
  app.add_option("--device", f->device, "cpu, cuda, cuda:N")->capture_default_str();
  app.add_flag("--json", f->as_json, "print JSON");
  return [f, ids, text] {
    if (ids->count() == 0 && text->count() == 0) fail("score: give --ids or --text");
    return run(*f);
  };
}

}  // namespace
FUSELLM_COMMAND(score, "Log-prob of each next token, NLL and perplexity", setup);
