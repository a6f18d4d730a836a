#pragma once
// `fusellm train --config C`: the experiment config's target model trained one process or data parallel
// (from the launcher's environment) on
//   - with a `fusion` section: the aligned store (align's output) — the target's token ids of every chunk
//     plus each source's aligned top-k — with λ·CLM + (1−λ)·fusion;
//   - without one: the chunk dataset tokenized with the target tokenizer, packed into train.max_length
//     sequences, CLM only.
#include <memory>
#include <vector>

#include "fusellm/train/aligned_source.hpp"
#include "fusellm/train/trainer.hpp"
#include "fusellm/util/experiment_config.hpp"

namespace fusellm::train {

struct TrainRunOptions {
  bool resume = false;
  bool quiet = false;
  std::shared_ptr<GradientReducer> reducer;  // null = one process
  std::string device;                        // --device; empty = cuda:LOCAL_RANK when CUDA is available, else cpu
  // Documents to train on instead of the chunk dataset, CLM only (tests, custom sources).
  std::optional<std::vector<std::vector<int64_t>>> documents;
};

struct TrainRunResult {
  std::vector<StepMetrics> steps;
  fs::path output_dir;
  int64_t total_steps = 0;
};

// Validates the `train` section (throws ConfigError listing every problem).
TrainConfig train_config_of(const ExperimentConfig& config);
// The `fusion` section's settings (nullopt when the config has none: CLM-only training); the aligned store
// defaults to the align stage's output directory.
std::optional<FusionSettings> fusion_settings_of(const ExperimentConfig& config);

// Every chunk of the dataset at data.chunk_dir (the first max_chunks when > 0), tokenized with the
// tokenizer in `model_dir` (its special-token settings apply).
std::vector<std::vector<int64_t>> tokenize_chunk_dataset(const fs::path& chunk_dir, const fs::path& model_dir,
                                                         int64_t max_chunks);

TrainRunResult train_from_config(const ExperimentConfig& config, const TrainRunOptions& options);

}  // namespace fusellm::train
