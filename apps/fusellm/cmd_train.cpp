// `fusellm train --config C [--resume]`: trains the config's target model on λ·CLM + (1−λ)·fusion,
// writing HF-format checkpoints to train.output_dir. Data parallel when launched by torchrun (RANK,
// WORLD_SIZE, MASTER_ADDR, MASTER_PORT): Gloo on CPU, NCCL on GPUs (LibTorch with CUDA).
#include <iostream>

#include "command.hpp"
#include "fusellm/train/gloo_reducer.hpp"
#include "fusellm/train/precision.hpp"
#include "fusellm/train/train_run.hpp"
#include "fusellm/util/device.hpp"
#include "fusellm/util/dist_env.hpp"
#include "fusellm/util/error.hpp"
#include "fusellm/util/experiment_config.hpp"
#include "fusellm/util/log.hpp"

namespace {

using namespace fusellm;

struct TrainFlags {
  std::string config;
  bool resume = false;
  bool no_progress = false;
  std::string device;
};

int run(const TrainFlags& f) {
  const ExperimentConfig config = load_experiment_config(f.config);
  const train::TrainConfig cfg = train::train_config_of(config);  // config errors before joining any group
  train::TrainRunOptions options;
  options.resume = f.resume;
  options.quiet = f.no_progress;
  const RankInfo rank = rank_info_from_env();
  options.device = f.device;
  const at::Device device = device_for_rank(f.device, rank.local_rank);
  if (rank.world_size > 1) {
    train::ReducerOptions reducer;
    reducer.timeout = std::chrono::seconds(cfg.dist_timeout_s);
    reducer.bucket_bytes = static_cast<size_t>(cfg.bucket_mb * (1 << 20));
    reducer.overlap = cfg.overlap_comm;
    reducer.device = device;  // NCCL when the model goes to a GPU
    reducer.reduce_scatter = train::parse_reduce_scatter_emulation(cfg.reduce_scatter, "train.reduce_scatter");
    options.reducer = train::make_process_group_reducer(rank, reducer);
    if (!rank.is_main()) spdlog::set_level(spdlog::level::warn);
  }
  const train::TrainRunResult r = train::train_from_config(config, options);
  if (rank.is_main()) {
    const auto& last = r.steps.empty() ? train::StepMetrics{} : r.steps.back();
    std::cout << fmt::format("trained {} steps ({} this run), final loss {:.4f}; checkpoints in {}\n", r.total_steps,
                             r.steps.size(), last.loss, (r.output_dir / "checkpoints").string());
  }
  return 0;
}

cli::Action setup(CLI::App& app) {
  auto f = std::make_shared<TrainFlags>();
  app.add_option("--config", f->config, "experiment config (JSON) with a `train` section")->required();
  app.add_flag("--resume", f->resume, "continue from the latest checkpoint in train.output_dir");
  app.add_flag("--no-progress", f->no_progress, "no progress bar / progress log lines");
  app.add_option("--device", f->device, "cpu, cuda, cuda:N (default: cuda:LOCAL_RANK when available, else cpu)");
  return [f] { return run(*f); };
}

}  // namespace
FUSELLM_COMMAND(train, "Train the target model (CLM + fusion loss), with checkpoints and resume", setup);
