#pragma once
// Training checkpoints: <output_dir>/checkpoints/step-NNNNNNNN/ is a Hugging Face model directory
// (config.json, sharded safetensors, tokenizer files) plus trainer_state/ (optimizer moments, scheduler
// step, loader position, RNG state). Written into a temp directory, renamed into place, then the `latest`
// pointer file is replaced: a crash at any point leaves the previous checkpoint usable.
// Format: docs/formats.md.
#include <cstdint>
#include <optional>
#include <string>

#include "fusellm/io/safetensors.hpp"
#include "fusellm/util/fs.hpp"
#include "fusellm/util/json.hpp"

namespace fusellm::train {

struct TrainState {
  int64_t step = 0;          // optimizer steps done
  int64_t total_steps = 0;
  json loader_position;
  json config;               // the train config the run used (informational)
  io::NamedTensors optimizer;  // AdamW::state_tensors(); empty when the state is sharded
  json zero;                   // ZeRO: stage, world_size and the shards (sharded_state.hpp); null otherwise
  at::Tensor rng_state;      // CPU generator state (uint8)
};

// Drops what crashed saves left and creates the temp directory of the checkpoint for `step`, into
// which ZeRO ranks write their shards before rank 0 completes it with save_checkpoint.
fs::path begin_checkpoint(const fs::path& output_dir, int64_t step);

// Saves the checkpoint for state.step (into `begun` when begin_checkpoint made it already) and rotates
// old ones (keep_last > 0 keeps that many). `model_source` is the directory config.json and tokenizer
// files are copied from.
fs::path save_checkpoint(const fs::path& output_dir, const fs::path& model_source,
                         const io::NamedTensors& weights, const TrainState& state, int64_t keep_last,
                         const std::optional<fs::path>& begun = std::nullopt);

// The directory `latest` points to, or nullopt when there is no checkpoint.
std::optional<fs::path> latest_checkpoint(const fs::path& output_dir);

// Reads trainer_state/ of a checkpoint directory (the weights load through model::load_model).
TrainState load_train_state(const fs::path& checkpoint_dir);

std::string checkpoint_name(int64_t step);  // "step-00000020"

}  // namespace fusellm::train
