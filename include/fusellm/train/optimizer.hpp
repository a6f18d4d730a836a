#pragma once
// AdamW (decoupled weight decay, Loshchilov & Hutter) over named parameters, with its whole state as
// named tensors so checkpoints hold it exactly; the learning-rate schedule with warmup.
#include <cstdint>
#include <string>
#include <vector>

#include "fusellm/io/safetensors.hpp"
#include "fusellm/train/train_config.hpp"
#include "fusellm/util/torch_pch.hpp"

namespace fusellm::train {

class AdamW {
 public:
  // Parameters with dim < 2 (norm weights, biases) get no weight decay.
  AdamW(std::vector<std::pair<std::string, at::Tensor>> params, double beta1, double beta2, double eps,
        double weight_decay);
  void zero_grad();
  void step(double lr);  // one update of every parameter that has a gradient
  int64_t steps() const { return step_; }
  bool decays(size_t i) const { return decay_[i]; }

  io::NamedTensors state_tensors() const;  // "exp_avg.<name>", "exp_avg_sq.<name>"
  void load_state(const io::NamedTensors& tensors, int64_t steps, const std::string& source);

 private:
  std::vector<std::pair<std::string, at::Tensor>> params_;
  std::vector<at::Tensor> exp_avg_, exp_avg_sq_;
  std::vector<bool> decay_;
  double beta1_, beta2_, eps_, weight_decay_;
  int64_t step_ = 0;
};

// The learning rate at optimizer step `step` (0-based) of `total`.
double scheduled_lr(const TrainConfig& cfg, int64_t step, int64_t total);
int64_t warmup_steps(const TrainConfig& cfg, int64_t total);

// Scales gradients so their global L2 norm is at most max_norm (0 = no clipping); returns the norm before.
double clip_grad_norm(const std::vector<at::Tensor>& params, double max_norm);

}  // namespace fusellm::train
