#pragma once
// Model FLOPs utilization (MFU) as the PaLM paper defines it: the FLOPs a step needs for its tokens
// (6·N per token for forward + backward over the N weights that multiply activations, plus 12·L·d·T for
// attention scores and values over a sequence of T) divided by the hardware's peak over the step's time.
// Recomputation (activation checkpointing) is not counted: MFU measures useful work.
#include <cstdint>
#include <optional>

#include "fusellm/model/causal_lm.hpp"

namespace fusellm::train {

// N = parameters that take part in matrix products: all of them except the input embedding table
// (a lookup), which counts once more when it is tied to the LM head.
int64_t matmul_parameters(const model::CausalLM& model);

// 6·N + 12·layers·hidden·seq_len.
double training_flops_per_token(int64_t matmul_params, const model::ModelConfig& config, int64_t seq_len);

// Peak dense bf16 FLOP/s of one device: `configured_tflops` (train.peak_tflops) when > 0, else known
// CUDA GPUs by name (A100 312, H100/H200 989 TFLOP/s), else nullopt (MFU not reported, e.g. on a CPU).
std::optional<double> peak_flops(const at::Device& device, double configured_tflops);

}  // namespace fusellm::train
