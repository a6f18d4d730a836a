// Post hooks on gradient accumulators.
#include "fusellm/train/grad_hooks.hpp"

#include <torch/csrc/autograd/function_hook.h>
#include <torch/csrc/autograd/variable.h>

#include "fusellm/util/error.hpp"

namespace fusellm::train {

namespace {

// The hook class is our own (torch's LambdaPostHook changed its signature between 1.13 and 2.x); the
// signature of FunctionPostHook::operator() is the same in both.
class GradientFinalHook : public torch::autograd::FunctionPostHook {
 public:
  explicit GradientFinalHook(std::function<void()> on_final) : on_final_(std::move(on_final)) {}
  torch::autograd::variable_list operator()(const torch::autograd::variable_list& outputs,
                                            const torch::autograd::variable_list& /*inputs*/) override {
    on_final_();
    return outputs;
  }

 private:
  std::function<void()> on_final_;
};

}  // namespace

void GradientFinalHooks::install(const std::vector<at::Tensor>& params, std::function<void(size_t)> on_final) {
  remove();
  auto callback = std::make_shared<std::function<void(size_t)>>(std::move(on_final));
  for (size_t i = 0; i < params.size(); ++i) {
    FUSELLM_CHECK(params[i].is_leaf() && params[i].requires_grad(),
                  "gradient hooks: parameter {} is not a leaf tensor requiring grad", i);
    auto accumulator = torch::autograd::impl::grad_accumulator(params[i]);
    keys_.push_back(accumulator->add_post_hook(std::make_unique<GradientFinalHook>([callback, i] { (*callback)(i); })));
    accumulators_.push_back(std::move(accumulator));
  }
}

void GradientFinalHooks::remove() {
  for (size_t i = 0; i < accumulators_.size(); ++i) accumulators_[i]->del_post_hook(keys_[i]);
  accumulators_.clear();
  keys_.clear();
}

}  // namespace fusellm::train
