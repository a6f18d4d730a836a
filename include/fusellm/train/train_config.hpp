#pragma once
// The `train` section of the experiment config: optimizer, schedule, batch geometry, checkpointing.
// Parsing reports every problem at once with its key path ("train.warmup_ratio: …") and suggests the
// nearest known key for an unknown one (a likely typo). Reference: docs/formats.md.
#include <cstdint>
#include <string>

#include "fusellm/util/fs.hpp"
#include "fusellm/util/json.hpp"

namespace fusellm::train {

// WarmupDecay: DeepSpeed's WarmupDecayLR (what the official FuseLLM run's zero_stage2_config.json used):
// log-shaped warm-up, then linear decay to the floor at the last step.
enum class Schedule { Cosine, Linear, Constant, WarmupDecay };
const char* to_string(Schedule s);

struct TrainConfig {
  double lr = 1e-5;
  double beta1 = 0.9, beta2 = 0.999;
  double eps = 1e-8;
  double weight_decay = 0.0;
  Schedule schedule = Schedule::Cosine;
  double warmup_ratio = 0.0;   // fraction of total steps; warmup_steps wins when given
  int64_t warmup_steps = -1;   // -1 = use warmup_ratio
  double min_lr_ratio = 0.0;   // cosine/linear decay floor as a fraction of lr
  double clip = 1.0;           // global gradient-norm clip; 0 = off
  int64_t epochs = 1;
  int64_t max_steps = -1;      // -1 = epochs × steps per epoch
  int64_t micro_batch = 1;     // sequences per forward pass per process
  int64_t grad_accum = 1;      // micro-batches per optimizer step
  int64_t max_length = 2048;   // tokens per packed sequence
  bool restart_positions = false;  // position ids restart at each document start inside a packed sequence
  bool document_mask = false;      // no attention across document boundaries inside a packed sequence
  bool pack_chunks = true;         // fusion training: pack runs of consecutive aligned chunks up to max_length
  uint64_t seed = 42;
  int64_t save_every = 0;      // 0 = only at the end
  int64_t keep_last = 2;       // checkpoints kept (0 = all)
  int64_t log_every = 10;
  fs::path output_dir;         // default <config dir>/out/<config stem>/train
  bool activation_checkpointing = false;
  int64_t max_chunks = 0;      // use only the first N chunks of the dataset (0 = all); for quick runs
  int64_t dist_timeout_s = 300;
  double peak_tflops = 0;      // the device's peak for MFU; 0 = known GPUs by name, else MFU not reported
  double bucket_mb = 25;       // data parallel: gradients per all-reduce, in MiB
  bool overlap_comm = true;    // data parallel: all-reduce gradient buckets while backward still runs
  // ZeRO (train/zero.hpp): 0 = every rank holds all optimizer state and gradients; 1 = optimizer state
  // sharded over the ranks; 2 = gradients too (what the paper's DeepSpeed run used).
  int64_t zero_stage = 0;
  // How Gloo (which has no reduce-scatter) emulates it for ZeRO: "reduce" (one reduce per owner) or
  // "allreduce" (all-reduce, keep the owned slice). NCCL uses its own.
  std::string reduce_scatter = "reduce";
  // "fp32" | "bf16" (autocast, fp32 master weights) | "fp64" (numerics checks) | "auto" (bf16 on CUDA)
  std::string precision = "auto";

  // Sequences in one optimizer step over all processes.
  int64_t global_batch(int world_size) const { return micro_batch * grad_accum * world_size; }
  json to_json() const;
};

// Parses a `train` section (`source` names the file, `config_dir` and `config_stem` give the default
// output_dir). Throws ConfigError listing every problem.
TrainConfig parse_train_config(const json& section, const std::string& source, const fs::path& config_dir,
                               const std::string& config_stem);

}  // namespace fusellm::train
