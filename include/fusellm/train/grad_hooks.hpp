#pragma once
// Hooks that report a parameter's gradient final: a post hook on each parameter's gradient accumulator
// runs right after backward added the gradient into param.grad(). Used to start gradient collectives
// while backward still runs (grad_buckets.hpp, zero.hpp).
#include <torch/csrc/autograd/function.h>

#include <cstdint>
#include <functional>
#include <memory>
#include <vector>

namespace fusellm::train {

class GradientFinalHooks {
 public:
  GradientFinalHooks() = default;
  ~GradientFinalHooks() { remove(); }
  GradientFinalHooks(const GradientFinalHooks&) = delete;
  GradientFinalHooks& operator=(const GradientFinalHooks&) = delete;

  // Calls on_final(i) (on the autograd engine's thread) each time params[i]'s gradient was accumulated.
  // Every parameter must be a leaf requiring grad; replaces hooks installed before.
  void install(const std::vector<at::Tensor>& params, std::function<void(size_t)> on_final);
  void remove();
  bool installed() const { return !accumulators_.empty(); }

 private:
  std::vector<std::shared_ptr<torch::autograd::Node>> accumulators_;  // the variables hold them only weakly
  std::vector<uintptr_t> keys_;
};

}  // namespace fusellm::train
