// `fusellm generate`: greedy (default) or sampled continuation of a prompt, with tokens/s.
#include <iostream>

#include "cli_common.hpp"
#include "command.hpp"
#include "fusellm/model/generate.hpp"
#include "fusellm/util/error.hpp"
#include "fusellm/util/json.hpp"

namespace {

using namespace fusellm;

struct GenerateFlags {
  std::string model, tokenizer, ids, prompt, dtype = "fp32", device = "cpu";
  model::SamplingOptions sampling;
  bool no_cache = false, ignore_eos = false, as_json = false;
};

int run(GenerateFlags f) {
  auto tokenizer = cli::open_tokenizer(f.model, f.tokenizer, /*required=*/false);
  std::vector<int64_t> prompt = cli::input_ids(f.ids, f.prompt, tokenizer.get(), "--prompt");
  FUSELLM_CHECK(f.sampling.max_new_tokens >= 0, "--max-new-tokens: must be >= 0");
  FUSELLM_CHECK(f.sampling.temperature >= 0, "--temperature: must be >= 0");
  FUSELLM_CHECK(f.sampling.top_p > 0 && f.sampling.top_p <= 1, "--top-p: must be in (0, 1]");
  auto model = model::load_model(f.model, cli::load_options(f.dtype, f.device));
  for (int64_t id : prompt) {
    FUSELLM_CHECK(id < model->config().vocab_size, "--ids: token id {} is outside the vocabulary ({} tokens)", id,
                  model->config().vocab_size);
  }
  f.sampling.use_cache = !f.no_cache;
  if (!f.ignore_eos) {
    if (tokenizer && tokenizer->special_tokens().eos) f.sampling.stop_token = *tokenizer->special_tokens().eos;
    else if (model->config().eos_token_id) f.sampling.stop_token = *model->config().eos_token_id;
  }
  auto result = model::generate(*model, prompt, f.sampling);
  const double tps = result.decode_seconds > 0 ? result.tokens.size() / result.decode_seconds : 0.0;
  std::string text;
  if (tokenizer) {
    std::vector<int32_t> ids32(result.tokens.begin(), result.tokens.end());
    text = tokenizer->decode(ids32);
  }
  if (f.as_json) {
    json out = {{"prompt_ids", prompt}, {"tokens", result.tokens}, {"prefill_seconds", result.prefill_seconds},
                {"decode_seconds", result.decode_seconds}, {"tokens_per_second", tps}};
    if (tokenizer) out["text"] = text;
    std::cout << out.dump(2, ' ', false, json::error_handler_t::replace) << "\n";
    return 0;
  }
  if (tokenizer) std::cout << text << "\n";
  std::cout << "ids:";
  for (int64_t t : result.tokens) std::cout << " " << t;
  // Flushed before the timing line: stdout is buffered and stderr is not, so with both on one terminal or
  // pipe the timing line would otherwise land inside the ids.
  std::cout << std::endl;
  std::cerr << fmt::format("{} tokens in {:.3f} s ({:.1f} tokens/s; prefill {} tokens in {:.3f} s)\n",
                           result.tokens.size(), result.decode_seconds, tps, prompt.size(), result.prefill_seconds);
  return 0;
}

cli::Action setup(CLI::App& app) {
  auto f = std::make_shared<GenerateFlags>();
  app.add_option("--model", f->model, "HF model directory")->required();
  auto ids = app.add_option("--ids", f->ids, "comma-separated prompt token ids");
  auto prompt = app.add_option("--prompt", f->prompt, "prompt text, tokenized with the model's tokenizer");
  ids->excludes(prompt);
  app.add_option("--tokenizer", f->tokenizer, "tokenizer directory or file (default: the model's)");
  app.add_option("--max-new-tokens", f->sampling.max_new_tokens, "tokens to generate")->capture_default_str();
  app.add_option("--temperature", f->sampling.temperature, "0 = greedy")->capture_default_str();
  app.add_option("--top-k", f->sampling.top_k, "sample from the k most likely (0 = off)")->capture_default_str();
  app.add_option("--top-p", f->sampling.top_p, "nucleus sampling mass (1 = off)")->capture_default_str();
  app.add_option("--seed", f->sampling.seed, "sampling seed")->capture_default_str();
  app.add_option("--dtype", f->dtype, "fp32, bf16, fp16, auto")->capture_default_str();
  app.add_option("--device", f->device, "cpu, cuda, cuda:N")->capture_default_str();
  app.add_flag("--no-cache", f->no_cache, "recompute the whole sequence each step (no KV cache)");
  app.add_flag("--ignore-eos", f->ignore_eos, "do not stop at the end-of-sequence token");
  app.add_flag("--json", f->as_json, "print JSON");
  return [f, ids, prompt] {
    if (ids->count() == 0 && prompt->count() == 0) fail("generate: give --ids or --prompt");
    return run(*f);
  };
}

}  // namespace
FUSELLM_COMMAND(generate, "Continue a prompt (greedy by default)", setup);
