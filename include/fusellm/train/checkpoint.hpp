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
  io::NamedTensors optimizer;  // AdamW::state_tensors()
  at::Tensor rng_state;      // CPU generator state (uint8)
};

// Saves the checkpoint for state.step and rotates old ones (keep_last > 0 keeps that many).
// `model_source` is the directory config.json and tokenizer files are copied from.
fs::path save_checkpoint(const fs::path& output_dir, const fs::path& model_source,
                         const io::NamedTensors& weights, const TrainState& state, int64_t keep_last);

// The directory `latest` points to, or nullopt when there is no checkpoint.
std::optional<fs::path> latest_checkpoint(const fs::path& output_dir);

// Reads trainer_state/ of a checkpoint directory (the weights load through model::load_model).
TrainState load_train_state(const fs::path& checkpoint_dir);

std::string checkpoint_name(int64_t step);  // "step-00000020"

}  // namespace fusellm::train
