// `fusellm infer --config C [--model NAME ...] [--all]`: each model's top-k distributions over the chunk
// dataset into infer.store_dir/<model name>. Resumable; data-parallel when launched with RANK/WORLD_SIZE.
#include <cstdlib>
#include <iostream>

#include "command.hpp"
#include "fusellm/teacher/infer.hpp"
#include "fusellm/util/dist_env.hpp"
#include "fusellm/util/error.hpp"
#include "fusellm/util/experiment_config.hpp"

namespace {

using namespace fusellm;

struct InferFlags {
  std::string config;
  std::vector<std::string> models;
  bool all = false;
  std::string device;
  bool no_progress = false;
  double merge_timeout = 24 * 3600.0;
};

// Test hooks: a process that kills itself at a chosen point (crash/resume tests).
uint64_t env_count(const char* name) {
  const char* v = std::getenv(name);
  if (v == nullptr || *v == '\0') return 0;
  char* end = nullptr;
  const unsigned long long n = std::strtoull(v, &end, 10);
  FUSELLM_CHECK(*end == '\0', "environment variable {}='{}' is not a count", name, v);
  return n;
}

int run(const InferFlags& f) {
  const ExperimentConfig config = load_experiment_config(f.config);
  std::vector<std::string> names = f.models;
  FUSELLM_CHECK(!(f.all && !names.empty()), "infer: give --model or --all, not both");
  if (names.empty())
    for (const auto& m : config.models) names.push_back(m.name);
  for (const auto& name : names)
    FUSELLM_CHECK(config.find_model(name) != nullptr, "{}: --model {}: no such model in the config",
                  config.config_path.string(), name);

  teacher::InferRunOptions options;
  options.device = f.device;
  options.rank = rank_info_from_env();
  options.progress = !f.no_progress;
  options.merge_timeout_seconds = f.merge_timeout;
  options.kill_after_shards = env_count("FUSELLM_TEST_KILL_AFTER_SHARDS");
  options.kill_after_records = env_count("FUSELLM_TEST_KILL_AFTER_RECORDS");

  const data::ChunkDataset dataset = teacher::open_chunk_dataset_for_infer(config);
  for (const auto& name : names) {
    const teacher::InferResult r = teacher::infer_model_from_config(config, dataset, name, options);
    if (r.already_complete) {
      std::cout << fmt::format("{}: store {} already complete\n", name, r.store_dir.string());
      continue;
    }
    std::cout << fmt::format("{}: rank {}/{}: {} chunks, {} tokens in {:.2f} s ({:.0f} tok/s); shards: {} owned, "
                             "{} resumed, {} written{}; store {}\n",
                             name, options.rank.rank, options.rank.world_size, r.chunks, r.tokens, r.seconds,
                             r.seconds > 0 ? r.tokens / r.seconds : 0.0, r.shards_owned, r.shards_resumed,
                             r.shards_written, r.merged ? "; manifest merged" : "", r.store_dir.string());
  }
  return 0;
}

cli::Action setup(CLI::App& app) {
  auto f = std::make_shared<InferFlags>();
  app.add_option("--config", f->config, "experiment config (JSON)")->required();
  app.add_option("--model", f->models, "model name from the config (repeatable; default: all models)");
  app.add_flag("--all", f->all, "every model of the config in turn (the default)");
  app.add_option("--device", f->device, "cpu, cuda, cuda:N (default: cuda:LOCAL_RANK when available, else cpu)");
  app.add_flag("--no-progress", f->no_progress, "no progress bar / progress log lines");
  app.add_option("--merge-timeout", f->merge_timeout, "rank 0: seconds to wait for the other ranks")
      ->capture_default_str();
  return [f] { return run(*f); };
}

}  // namespace
FUSELLM_COMMAND(infer, "Run source models over the chunk dataset into logit stores", setup);
