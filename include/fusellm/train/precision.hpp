#pragma once
// In what precision training computes. The precision (train.precision): fp32, or bf16 autocast around forward and loss with
// fp32 master weights (parameters, gradients and optimizer state stay fp32; matmuls run in bf16 on
// autocast's bf16 copies of the weights), or fp64: weights, gradients, optimizer state and checkpoints in
// float64. fp64 is for numerics checks: summation order moves its results by ~1e-16 instead of ~1e-7, so
// runs that sum in different orders (ranks, accumulation, threads) can be compared tightly on any CPU.
#include <string>

#include "fusellm/util/torch_pch.hpp"

namespace fusellm::train {

enum class Precision { Fp32, Bf16, Fp64 };
const char* to_string(Precision p);
// "fp32" | "bf16" | "fp64" | "auto" (bf16 on CUDA, fp32 elsewhere) for training on `device`.
Precision resolve_precision(const std::string& setting, const at::Device& device);
// The dtype of master weights, gradients and optimizer state: float64 for fp64, float32 otherwise.
at::ScalarType master_dtype(Precision p);

// Enables autocast to bf16 for `device` while alive (with Precision::Fp32: does nothing) and restores
// the previous autocast state after; clears autocast's cache of cast weights on the way out, since the
// weights change between steps.
class AutocastScope {
 public:
  AutocastScope(Precision precision, const at::Device& device);
  ~AutocastScope();
  AutocastScope(const AutocastScope&) = delete;
  AutocastScope& operator=(const AutocastScope&) = delete;

 private:
  bool active_ = false;
  at::DeviceType device_type_ = at::kCPU;
  bool was_enabled_ = false;
  at::ScalarType previous_dtype_ = at::kBFloat16;
};

// The autocast switches in force on this thread, for re-running forward code later under the same ones
// (activation checkpointing recomputes blocks during backward, where the trainer's autocast is off).
struct AutocastState {
  bool cpu = false, cuda = false;
  at::ScalarType cpu_dtype = at::kBFloat16, cuda_dtype = at::kHalf;
};
AutocastState current_autocast_state();

// Applies `state` while alive, then restores the previous one; drops the cache of cast weights when
// leaving the outermost autocast region (as AutocastScope does), so no stale cast outlives a step.
class AutocastReplay {
 public:
  explicit AutocastReplay(const AutocastState& state);
  ~AutocastReplay();
  AutocastReplay(const AutocastReplay&) = delete;
  AutocastReplay& operator=(const AutocastReplay&) = delete;

 private:
  AutocastState previous_;
  bool nested_ = false;
};

}  // namespace fusellm::train
