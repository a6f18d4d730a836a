// `fusellm eval --model DIR --tasks cs,bbh --out DIR`: Common Sense (lm-eval 0.3.x), BBH (open-instruct)
// and bits per byte, with lm-eval-shaped results.json, per-sample JSONL, a resumable request cache and
// rank parallelism under torchrun/SLURM. docs/eval.md describes every task's protocol.
#include <xxhash.h>

#include <algorithm>
#include <cstdlib>
#include <fstream>
#include <iostream>
#include <sstream>

#include "cli_common.hpp"
#include "command.hpp"
#include "fusellm/eval/evaluator.hpp"
#include "fusellm/model/causal_lm.hpp"
#include "fusellm/util/dist_env.hpp"
#include "fusellm/util/error.hpp"
#include "fusellm/util/log.hpp"

namespace {

using namespace fusellm;

struct EvalFlags {
  std::string model, tokenizer, tasks, out, shared, dtype = "fp32", device = "cpu";
  std::vector<std::string> data;
  int64_t limit = 0, batch_tokens = 8192, max_length = 0;
  bool separate_encoding = false, context_bos = false, no_progress = false, pairwise = false;
};

std::vector<std::string> split_list(const std::string& text) {
  std::vector<std::string> out;
  std::stringstream in(text);
  for (std::string item; std::getline(in, item, ',');) {
    item.erase(0, item.find_first_not_of(' '));
    item.erase(item.find_last_not_of(' ') + 1);
    if (!item.empty()) out.push_back(item);
  }
  return out;
}

// A cheap identity of the weights: config.json, and each weight file's size with its first and last MiB.
std::string model_fingerprint(const fs::path& dir) {
  std::string material = read_file(dir / "config.json");
  std::vector<fs::path> files;
  for (const auto& e : fs::directory_iterator(dir))
    if (e.is_regular_file() && (e.path().extension() == ".safetensors" || e.path().extension() == ".bin"))
      files.push_back(e.path());
  std::sort(files.begin(), files.end());
  for (const auto& f : files) {
    const auto size = fs::file_size(f);
    std::ifstream in(f, std::ios::binary);
    std::string head(std::min<uintmax_t>(size, 1 << 20), '\0'), tail(head.size(), '\0');
    in.read(head.data(), std::streamsize(head.size()));
    in.seekg(std::streamoff(size - tail.size()));
    in.read(tail.data(), std::streamsize(tail.size()));
    material += f.filename().string() + std::to_string(size) + head + tail;
  }
  return fmt::format("{:016x}", static_cast<unsigned long long>(XXH3_64bits(material.data(), material.size())));
}

int run(const EvalFlags& f) {
  eval::EvalOptions options;
  options.tasks = split_list(f.tasks);
  FUSELLM_CHECK(!options.tasks.empty(), "--tasks: give at least one task (e.g. cs, bbh, arc_easy)");
  for (const auto& name : eval::expand_task_list(options.tasks)) eval::make_task(name);  // unknown names first
  for (const auto& d : f.data) {
    const size_t eq = d.find('=');
    FUSELLM_CHECK(eq != std::string::npos && eq > 0, "--data: expected TASK=PATH, got '{}'", d);
    eval::make_task(d.substr(0, eq));
    options.data[d.substr(0, eq)] = d.substr(eq + 1);
  }
  // --shared, else $FUSELLM_SHARED_DIR, else ../shared beside the source checkout.
  const char* env = std::getenv("FUSELLM_SHARED_DIR");
  const fs::path shared = !f.shared.empty() ? fs::path(f.shared) : env && *env ? fs::path(env)
                                                                              : fs::path(FUSELLM_SHARED_DEFAULT);
  options.shared_data = shared / "data";
  options.out_dir = f.out;
  options.limit = f.limit;
  options.progress = !f.no_progress;
  const RankInfo rank = rank_info_from_env();
  options.rank = rank.rank;
  options.world_size = rank.world_size;
  // Documents before the model: a malformed row or a missing file is reported without loading weights.
  for (const auto& name : eval::expand_task_list(options.tasks)) eval::load_task_docs(*eval::make_task(name), options);

  auto tokenizer = cli::open_tokenizer(f.model, f.tokenizer, /*required=*/true);
  auto model = model::load_model(f.model, cli::load_options(f.dtype, f.device));
  eval::RunnerOptions ro;
  ro.joint_encoding = !f.separate_encoding;
  ro.context_bos = f.context_bos;
  ro.batch_tokens = f.batch_tokens;
  ro.max_length = f.max_length;
  ro.share_context = !f.pairwise;
  eval::ModelRunner runner(*model, *tokenizer, ro);
  options.config = {{"model", f.model}, {"model_args", {{"dtype", f.dtype}, {"tokenizer", f.tokenizer}}},
                    {"num_fewshot", 0}, {"batch_size", nullptr}, {"device", f.device},
                    {"no_cache", false}, {"limit", f.limit > 0 ? json(f.limit) : json()}, {"bootstrap_iters", 0},
                    {"description_dict", json::object()},
                    {"encoding", f.separate_encoding ? "separate (v0.3.0 tag)" : "joint (_encode_pair)"},
                    {"context_bos", f.context_bos}, {"max_length", runner.max_length()}};
  const eval::EvalSummary summary = run_eval(options, runner, model_fingerprint(f.model));
  if (rank.rank != 0) return 0;
  std::cerr << fmt::format("eval: {} requests: {} computed now, {} from the cache\n", summary.requests,
                           summary.computed, summary.from_cache);
  std::cout << eval::results_table(summary.results);
  std::cout << "results: " << (options.out_dir / "results.json").string() << "\n";
  return 0;
}

cli::Action setup(CLI::App& app) {
  auto f = std::make_shared<EvalFlags>();
  app.add_option("--model", f->model, "HF model directory")->required();
  app.add_option("--tasks", f->tasks, "comma-separated tasks or groups: cs, bbh, arc_easy, boolq, bbh_snarks, ...")
      ->required();
  app.add_option("--out", f->out, "output directory (results.json, samples/, cache/)")->required();
  app.add_option("--data", f->data, "TASK=PATH: read a task's documents from PATH (repeatable)");
  app.add_option("--shared", f->shared, "the shared test-material folder (default: ../shared beside the checkout)");
  app.add_option("--tokenizer", f->tokenizer, "tokenizer directory or file (default: the model's)");
  app.add_option("--limit", f->limit, "only the first N documents of each task")->check(CLI::NonNegativeNumber);
  app.add_option("--batch-tokens", f->batch_tokens, "padded tokens per forward")->check(CLI::PositiveNumber)
      ->capture_default_str();
  app.add_option("--max-length", f->max_length, "context length (default: the model's)")->check(CLI::NonNegativeNumber);
  app.add_flag("--separate-encoding", f->separate_encoding,
               "encode context and continuation separately (lm-eval's v0.3.0 tag) instead of jointly");
  app.add_flag("--context-bos", f->context_bos, "prepend BOS to log-likelihood contexts (lm-eval does not)");
  app.add_flag("--pairwise", f->pairwise, "one forward per (context, continuation), as lm-eval runs them");
  app.add_option("--dtype", f->dtype, "fp32, bf16, fp16, auto (as stored)")->capture_default_str();
  app.add_option("--device", f->device, "cpu, cuda, cuda:N")->capture_default_str();
  app.add_flag("--no-progress", f->no_progress, "log lines instead of a progress bar");
  return [f] { return run(*f); };
}

}  // namespace

FUSELLM_COMMAND(eval, "evaluate a model on Common Sense, BBH or bits per byte", setup);
