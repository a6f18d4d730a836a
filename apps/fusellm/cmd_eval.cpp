// `fusellm eval --model DIR --tasks cs,bbh,me --out DIR`: Common Sense (lm-eval 0.3.x), BBH (open-instruct),
// MultiPL-E (bigcode-evaluation-harness, programs run in a sandbox) and bits per byte, with lm-eval-shaped results.json, per-sample JSONL, a resumable request cache and
// rank parallelism under torchrun/SLURM. docs/eval.md describes every task's protocol.
#include <xxhash.h>

#include <algorithm>
#include <cstdlib>
#include <fstream>
#include <iostream>
#include <optional>
#include <sstream>

#include "cli_common.hpp"
#include "command.hpp"
#include "fusellm/eval/code_exec.hpp"
#include "fusellm/eval/evaluator.hpp"
#include "fusellm/model/causal_lm.hpp"
#include "fusellm/train/checkpoint.hpp"
#include "fusellm/train/train_run.hpp"
#include "fusellm/util/dist_env.hpp"
#include "fusellm/util/experiment_config.hpp"
#include "fusellm/util/error.hpp"
#include "fusellm/util/log.hpp"

namespace {

using namespace fusellm;

struct EvalFlags {
  std::string model, config, tokenizer, tasks, out, shared, dtype = "fp32", device = "cpu";
  std::vector<std::string> data;
  int64_t limit = 0, batch_tokens = 8192, generate_batch = 16, max_length = 0;
  bool separate_encoding = false, context_bos = false, no_progress = false, pairwise = false;
  // MultiPL-E (code generation): sampling, execution and the harness compatibility mode.
  std::string preset = "harness", compat;
  std::optional<int64_t> n_samples, top_k, seed, max_length_generation;
  std::optional<double> temperature, top_p;
  int64_t exec_workers = 0;
  bool check_toolchains = false;
};

// The code tasks' settings: a preset, then the flags given. "harness" = bigcode-evaluation-harness's
// defaults (one sample at temperature 0.2, top-p 0.95); "paper" = the n = 20 FuseLLM's numbers imply
// (eval-protocol.md §1.4); "greedy" = one greedy sample.
json code_task_options(const EvalFlags& f) {
  json o;
  if (f.preset == "harness") o = {{"n_samples", 1}, {"temperature", 0.2}, {"top_p", 0.95}};
  else if (f.preset == "paper") o = {{"n_samples", 20}, {"temperature", 0.2}, {"top_p", 0.95}};
  else if (f.preset == "greedy") o = {{"n_samples", 1}, {"temperature", 0.0}, {"top_p", 1.0}};
  else fail("--preset: expected harness, paper or greedy, got '{}'", f.preset);
  o["top_k"] = 0;
  o["seed"] = 0;
  o["max_length_generation"] = 512;
  if (f.n_samples) o["n_samples"] = *f.n_samples;
  if (f.temperature) o["temperature"] = *f.temperature;
  if (f.top_p) o["top_p"] = *f.top_p;
  if (f.top_k) o["top_k"] = *f.top_k;
  if (f.seed) o["seed"] = *f.seed;
  if (f.max_length_generation) o["max_length_generation"] = *f.max_length_generation;
  o["exec_workers"] = f.exec_workers;
  FUSELLM_CHECK(f.compat.empty() || f.compat == "bigcode-2023", "--compat: expected 'bigcode-2023', got '{}'", f.compat);
  if (!f.compat.empty()) o["compat"] = f.compat;
  return o;
}

// `--check-toolchains`: each language's compiler/runtime as it runs inside the sandbox, or why not.
int check_toolchains() {
  if (auto why = eval::sandbox_unavailable()) std::cout << "sandbox: " << *why << "\n";
  int missing = 0;
  for (const auto& s : eval::check_toolchains()) {
    const auto& language = eval::code_language(s.language);
    std::cout << fmt::format("{:<5} {:<11} {}\n", s.language, language.name,
                             s.available ? s.version : "MISSING: " + s.problem);
    missing += !s.available;
  }
  std::cout << fmt::format("{} of {} languages can run\n", eval::code_languages().size() - size_t(missing),
                           eval::code_languages().size());
  return missing == 0 ? 0 : 1;
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

// One model: documents first (bad rows fail before weights load), then the run. Returns the results.
json evaluate(const EvalFlags& f, const std::string& model_dir, eval::EvalOptions options) {
  const std::vector<eval::LoadedTask> tasks = eval::load_tasks(options);  // before the model: bad rows fail fast
  auto tokenizer = cli::open_tokenizer(model_dir, f.tokenizer, /*required=*/true);
  auto model = model::load_model(model_dir, cli::load_options(f.dtype, f.device));
  eval::RunnerOptions ro;
  ro.joint_encoding = !f.separate_encoding;
  ro.context_bos = f.context_bos;
  ro.batch_tokens = f.batch_tokens;
  ro.generate_batch = f.generate_batch;
  ro.max_length = f.max_length;
  ro.share_context = !f.pairwise;
  eval::ModelRunner runner(*model, *tokenizer, ro);
  options.config = {{"model", model_dir}, {"model_args", {{"dtype", f.dtype}, {"tokenizer", f.tokenizer}}},
                    {"num_fewshot", 0}, {"batch_size", nullptr}, {"device", f.device},
                    {"no_cache", false}, {"limit", options.limit > 0 ? json(options.limit) : json()},
                    {"bootstrap_iters", 0}, {"description_dict", json::object()},
                    {"encoding", f.separate_encoding ? "separate (v0.3.0 tag)" : "joint (_encode_pair)"},
                    {"context_bos", f.context_bos}, {"max_length", runner.max_length()}};
  // The cache's identity: the weights and every setting that changes an answer (a rerun with other
  // settings must not reuse answers).
  const std::string settings = fmt::format("{}|{}|{}|{}|{}", model_fingerprint(model_dir), f.dtype, ro.joint_encoding,
                                           ro.context_bos, runner.max_length());
  const std::string fingerprint =
      fmt::format("{:016x}", static_cast<unsigned long long>(XXH3_64bits(settings.data(), settings.size())));
  const eval::EvalSummary summary = run_eval(options, tasks, runner, fingerprint);
  if (options.rank != 0) return json();
  std::cerr << fmt::format("eval: {} requests: {} computed now, {} from the cache\n", summary.requests,
                           summary.computed, summary.from_cache);
  std::cout << eval::results_table(summary.results);
  std::cout << "results: " << (options.out_dir / "results.json").string() << "\n";
  return summary.results;
}

// The experiment config's `eval` section: {"tasks": "cs,bbh" | [...], "limit": N, "data": {task: path},
// "out_dir": path, "models": "target" | "trained" | "both"} (paths relative to the config file). "trained" is
// the latest checkpoint of train.output_dir.
struct ConfigEval {
  std::vector<std::string> tasks;
  int64_t limit = 0;
  std::map<std::string, fs::path> data;
  fs::path out_dir;
  std::vector<std::pair<std::string, fs::path>> models;  // (label, model directory)
};

ConfigEval read_eval_section(const fs::path& config_path) {
  const ExperimentConfig config = load_experiment_config(config_path);
  const std::string where = config_path.string();
  auto it = config.reserved_sections.find("eval");
  const json section = it == config.reserved_sections.end() ? json::object() : it->second;
  FUSELLM_CHECK(section.is_object(), "{}: eval: expected an object", where);
  const std::vector<std::string> known = {"tasks", "limit", "data", "out_dir", "models"};
  for (const auto& [key, value] : section.items()) {
    if (std::find(known.begin(), known.end(), key) != known.end()) continue;
    const std::string guess = closest_key(key, known);
    fail("{}: eval.{}: unknown key{}", where, key, guess.empty() ? "" : fmt::format(" (did you mean '{}'?)", guess));
  }
  ConfigEval c;
  const json tasks = section.value("tasks", json("cs"));
  if (tasks.is_string()) c.tasks = cli::split_commas(tasks.get<std::string>());
  else if (tasks.is_array())
    for (const auto& t : tasks) {
      FUSELLM_CHECK(t.is_string(), "{}: eval.tasks: expected task names", where);
      c.tasks.push_back(t.get<std::string>());
    }
  else fail("{}: eval.tasks: expected a string or a list of task names", where);
  const json limit = section.value("limit", json(0));
  FUSELLM_CHECK(limit.is_number_integer() && limit.get<int64_t>() >= 0, "{}: eval.limit: expected an integer >= 0", where);
  c.limit = limit.get<int64_t>();
  const json data = section.value("data", json::object());
  FUSELLM_CHECK(data.is_object(), "{}: eval.data: expected an object {{task: path}}", where);
  for (const auto& [task, path] : data.items()) {
    FUSELLM_CHECK(path.is_string(), "{}: eval.data.{}: expected a path", where, task);
    eval::make_task(task);
    c.data[task] = config.config_dir / path.get<std::string>();
  }
  const json out = section.value("out_dir", json());
  FUSELLM_CHECK(out.is_null() || out.is_string(), "{}: eval.out_dir: expected a path", where);
  c.out_dir = out.is_string() ? config.config_dir / out.get<std::string>()
                              : config.config_dir / "out" / config.config_path.stem() / "eval";
  const std::string which = section.value("models", std::string("both"));
  FUSELLM_CHECK(which == "target" || which == "trained" || which == "both",
                "{}: eval.models: expected 'target', 'trained' or 'both', got '{}'", where, which);
  if (which != "trained") c.models.emplace_back("target", config.target().path);
  if (which != "target") {
    const fs::path train_out = train::train_config_of(config).output_dir;
    const auto latest = train::latest_checkpoint(train_out);
    FUSELLM_CHECK(latest.has_value(), "{}: eval.models '{}': no checkpoint in {} (run `fusellm train --config` first)",
                  where, which, train_out.string());
    c.models.emplace_back("trained", *latest);
  }
  return c;
}

int run(const EvalFlags& f) {
  if (f.check_toolchains) return check_toolchains();
  FUSELLM_CHECK(f.model.empty() != f.config.empty(), "eval: give --model DIR or --config C");
  eval::EvalOptions options;
  options.task_options = code_task_options(f);
  // --shared, else $FUSELLM_SHARED_DIR, else ../shared beside the source checkout.
  const char* env = std::getenv("FUSELLM_SHARED_DIR");
  const fs::path shared = !f.shared.empty() ? fs::path(f.shared) : env && *env ? fs::path(env)
                                                                              : fs::path(FUSELLM_SHARED_DEFAULT);
  options.shared_data = shared / "data";
  options.progress = !f.no_progress;
  const RankInfo rank = rank_info_from_env();
  options.rank = rank.rank;
  options.world_size = rank.world_size;
  std::vector<std::pair<std::string, fs::path>> models;
  if (!f.config.empty()) {  // the config's eval section; command-line flags override it
    ConfigEval c = read_eval_section(f.config);
    options.tasks = c.tasks;
    options.limit = c.limit;
    options.data = c.data;
    options.out_dir = c.out_dir;
    models = c.models;
  } else {
    FUSELLM_CHECK(!f.tasks.empty() && !f.out.empty(), "eval: --model needs --tasks and --out");
    models.emplace_back("", f.model);
  }
  if (!f.tasks.empty()) options.tasks = cli::split_commas(f.tasks);
  if (!f.out.empty()) options.out_dir = f.out;
  if (f.limit > 0) options.limit = f.limit;
  FUSELLM_CHECK(!options.tasks.empty(), "--tasks: give at least one task (e.g. cs, bbh, arc_easy)");
  for (const auto& name : eval::expand_task_list(options.tasks)) eval::make_task(name);  // unknown names first
  for (const auto& d : f.data) {
    const size_t eq = d.find('=');
    FUSELLM_CHECK(eq != std::string::npos && eq > 0, "--data: expected TASK=PATH, got '{}'", d);
    eval::make_task(d.substr(0, eq));
    options.data[d.substr(0, eq)] = d.substr(eq + 1);
  }
  const fs::path out_root = options.out_dir;
  std::vector<std::pair<std::string, json>> all;
  for (const auto& [label, dir] : models) {
    eval::EvalOptions o = options;
    if (!label.empty()) o.out_dir = out_root / label;
    if (!label.empty() && rank.rank == 0) std::cout << fmt::format("== {} model: {}\n", label, dir.string());
    all.emplace_back(label, evaluate(f, dir.string(), o));
  }
  if (all.size() == 2 && rank.rank == 0) {  // before and after training, side by side
    std::cout << fmt::format("{:<44} {:<12} {:>8} {:>8} {:>8}\n", "task", "metric", "target", "trained", "change");
    for (const auto& [task, metrics] : all[0].second["results"].items())
      for (const auto& [metric, value] : metrics.items()) {
        if (metric.find("_stderr") != std::string::npos) continue;
        const double a = value.get<double>(), b = all[1].second["results"][task].value(metric, 0.0);
        std::cout << fmt::format("{:<44} {:<12} {:>8.4f} {:>8.4f} {:>+8.4f}\n", task, metric, a, b, b - a);
      }
  }
  return 0;
}

cli::Action setup(CLI::App& app) {
  auto f = std::make_shared<EvalFlags>();
  app.add_option("--model", f->model, "HF model directory");
  app.add_option("--config", f->config,
                 "experiment config: its eval section, for the target before and/or after training");
  app.add_option("--tasks", f->tasks, "comma-separated tasks or groups: cs, bbh, bpb, arc_easy, bbh_snarks, ...");
  app.add_option("--out", f->out, "output directory (results.json, samples/, cache/)");
  app.add_option("--data", f->data, "TASK=PATH: read a task's documents from PATH (repeatable)");
  app.add_option("--shared", f->shared, "the shared test-material folder (default: ../shared beside the checkout)");
  app.add_option("--tokenizer", f->tokenizer, "tokenizer directory or file (default: the model's)");
  app.add_option("--limit", f->limit, "only the first N documents of each task")->check(CLI::NonNegativeNumber);
  app.add_option("--batch-tokens", f->batch_tokens, "padded tokens per forward")->check(CLI::PositiveNumber)
      ->capture_default_str();
  app.add_option("--generate-batch", f->generate_batch, "prompts generated together (1 = one at a time)")
      ->check(CLI::PositiveNumber)->capture_default_str();
  app.add_option("--max-length", f->max_length, "context length (default: the model's)")->check(CLI::NonNegativeNumber);
  app.add_flag("--separate-encoding", f->separate_encoding,
               "encode context and continuation separately (lm-eval's v0.3.0 tag) instead of jointly");
  app.add_flag("--context-bos", f->context_bos, "prepend BOS to log-likelihood contexts (lm-eval does not)");
  app.add_flag("--pairwise", f->pairwise, "one forward per (context, continuation), as lm-eval runs them");
  app.add_option("--dtype", f->dtype, "fp32, bf16, fp16, auto (as stored)")->capture_default_str();
  app.add_option("--device", f->device, "cpu, cuda, cuda:N")->capture_default_str();
  app.add_flag("--no-progress", f->no_progress, "log lines instead of a progress bar");
  app.add_option("--preset", f->preset, "code tasks' sampling: harness (n=1, T=0.2, top-p 0.95), paper (n=20), greedy")
      ->capture_default_str();
  app.add_option("--n-samples", f->n_samples, "code tasks: samples per problem")->check(CLI::PositiveNumber);
  app.add_option("--temperature", f->temperature, "code tasks: sampling temperature (0 = greedy)")
      ->check(CLI::NonNegativeNumber);
  app.add_option("--top-p", f->top_p, "code tasks: nucleus sampling's p")->check(CLI::Range(1e-6, 1.0));
  app.add_option("--top-k", f->top_k, "code tasks: top-k (0 = off)")->check(CLI::NonNegativeNumber);
  app.add_option("--seed", f->seed, "code tasks: sampling seed")->check(CLI::NonNegativeNumber);
  app.add_option("--max-length-generation", f->max_length_generation, "code tasks: prompt + generation tokens (512)")
      ->check(CLI::Range(int64_t(2), int64_t(1) << 20));
  app.add_option("--exec-workers", f->exec_workers, "code tasks: programs run in parallel (0 = one per CPU)")
      ->check(CLI::NonNegativeNumber);
  app.add_option("--compat", f->compat,
                 "bigcode-2023: reproduce the 2023 harness's defects (Go passes when it builds; stale averages)");
  app.add_flag("--check-toolchains", f->check_toolchains,
               "report each MultiPL-E language's compiler/runtime inside the sandbox, or why it is missing");
  return [f] { return run(*f); };
}

}  // namespace

FUSELLM_COMMAND(eval, "evaluate a model on Common Sense, BBH, MultiPL-E or bits per byte", setup);
