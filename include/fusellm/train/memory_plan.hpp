#pragma once
// `fusellm plan`: what one training rank needs, computed from the model's config.json and the train
// settings in well under a second, before anyone launches a job that cannot fit. Per rank: model states
// by ZeRO stage and precision (as train/zero.hpp lays them out), communication buckets, activations
// (Korthikanti et al., arXiv:2205.05198, eq. 1: 34·s·b·h + 5·a·s²·b bytes per layer with 16-bit
// activations; FlashAttention removes the s² term; full activation checkpointing keeps 2·s·b·h per layer
// plus one layer's working set), the logits and fusion loss's working set, a runtime reserve; then
// fits / does not fit for a device size and the largest micro-batch that fits; throughput and wall time
// from a model FLOPs utilization. Also DeepSpeed's and accelerate's estimator formulas, for comparison.
// The formulas and their sources: docs/plan.md.
#include <cstdint>
#include <string>
#include <vector>

#include "fusellm/model/causal_lm.hpp"

namespace fusellm::train {

struct PlanInput {
  model::ModelConfig model;
  int world_size = 8;
  int64_t micro_batch = 1, grad_accum = 1, seq_len = 2048;
  int zero_stage = 2;
  std::string precision = "bf16";     // bf16 | fp32 | fp64 (as train.precision)
  bool activation_checkpointing = true;
  bool flash_attention = true;
  double bucket_mb = 25;
  int fused_sources = 0;              // sources in the aligned store (0 = CLM only)
  int64_t top_k = 10;
  double device_gib = 39.39;          // usable device memory (an A100-40GB reports 39.39 GiB)
  double reserve_gib = 1.0;           // CUDA context, allocator fragmentation, workspace
  double peak_tflops = 312;           // per device, dense bf16
  double mfu = 0.4;
  double tokens = 0;                  // training tokens (0 = no time estimate)
};

struct PlanLine {
  std::string what;
  double bytes;
  std::string formula;
};

struct PlanResult {
  int64_t parameters = 0, largest_layer = 0;
  std::vector<PlanLine> lines;        // per rank
  double total_bytes = 0;
  bool fits = false;
  int64_t largest_fitting_micro_batch = 0;  // 0: not even 1
  double tokens_per_s = 0, wall_hours = 0;
  double store_bytes = 0;             // aligned store on disk for `tokens`
};

// Parameters of a decoder from its config (llama/mistral/qwen2, gpt_neox, mpt); throws for others.
int64_t count_parameters(const model::ModelConfig& cfg);
// The largest leaf module's parameters (embedding, LM head or one weight matrix): what DeepSpeed's
// ZeRO-3 estimate calls the largest layer.
int64_t largest_layer_parameters(const model::ModelConfig& cfg);

PlanResult plan_memory(const PlanInput& input);

// DeepSpeed's estimators (stage_1_and_2.py / stage3.py @ 38327e07), per GPU, bytes, no offload.
double deepspeed_zero2_bytes(int64_t params, int gpus);
double deepspeed_zero3_bytes(int64_t params, int64_t largest_layer, int gpus);
// accelerate estimate-memory: float32 weights of the base model (AutoModel: no LM head) and "Training
// using Adam" (the maximum of its stages: 16 bytes per parameter in float32).
double accelerate_fp32_bytes(const model::ModelConfig& cfg);

std::string format_plan(const PlanInput& input, const PlanResult& result);

}  // namespace fusellm::train
