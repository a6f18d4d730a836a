// Activation checkpointing as a custom autograd function (reentrant scheme, like PyTorch's
// torch.utils.checkpoint with use_reentrant=True):
//  forward:  runs the block with grad disabled, so none of its intermediates are kept; saves the input.
//  backward: re-runs the block with grad enabled on a detached copy of the saved input, then runs a
//            nested backward from the recomputed output with the incoming gradient. That nested backward
//            accumulates the parameters' .grad directly and leaves the input gradient in the copy's .grad,
//            which is returned to the outer graph.
#include "fusellm/train/activation_checkpoint.hpp"

#include <torch/csrc/autograd/custom_function.h>

#include "fusellm/train/precision.hpp"

#include <utility>

namespace fusellm::train {
namespace {

// The block closure travels from forward to backward in the autograd context. saved_data only holds
// IValues; a capsule (an IValue around an intrusive_ptr<CustomClassHolder>) carries an arbitrary C++
// object and exists unchanged in LibTorch 1.13 and 2.x.
struct BlockHolder : torch::CustomClassHolder {
  explicit BlockHolder(model::BlockFn fn) : block(std::move(fn)), autocast(current_autocast_state()) {}
  model::BlockFn block;
  AutocastState autocast;  // the recompute runs under forward's autocast (bf16 training), as torch's does
};

struct CheckpointedBlock : torch::autograd::Function<CheckpointedBlock> {
  // `anchor` is an empty tensor requiring grad. Function<> wires its output into the graph only when a
  // tensor input requires grad, and the parameters the block uses are not inputs (the closure reads
  // them). Without the anchor a block whose input needs no grad (e.g. frozen embeddings) would cut its
  // parameters off from backward.
  static at::Tensor forward(torch::autograd::AutogradContext* ctx, const at::Tensor& hidden,
                            const at::Tensor& anchor, const model::BlockFn& block) {
    (void)anchor;
    at::Tensor out;
    {
      at::NoGradGuard no_grad;  // Function::apply already disables grad; kept explicit as it is the point
      out = block(hidden);
    }
    ctx->save_for_backward({hidden});
    ctx->saved_data["block"] = at::IValue::make_capsule(c10::make_intrusive<BlockHolder>(block));
    return out;
  }

  static torch::autograd::variable_list backward(torch::autograd::AutogradContext* ctx,
                                                 torch::autograd::variable_list grads) {
    const at::Tensor saved = ctx->get_saved_variables().at(0);
    const auto holder = c10::static_intrusive_pointer_cast<BlockHolder>(ctx->saved_data.at("block").toCapsule());
    const bool input_needs_grad = ctx->needs_input_grad(0);
    // A fresh leaf: the nested backward stops at it and leaves the input gradient in its .grad.
    at::Tensor input = saved.detach().requires_grad_(input_needs_grad);
    at::Tensor recomputed;
    {
      at::AutoGradMode enable_grad(true);  // the engine runs backward with grad disabled
      AutocastReplay autocast(holder->autocast);
      recomputed = holder->block(input);
    }
    if (recomputed.requires_grad()) torch::autograd::backward({recomputed}, {grads.at(0)});
    at::Tensor input_grad = input_needs_grad ? input.grad() : at::Tensor();
    return {input_grad, at::Tensor(), at::Tensor()};  // one per forward argument (anchor, block: none)
  }
};

}  // namespace

model::BlockRunner checkpointing_block_runner() {
  return [](int64_t /*layer*/, const model::BlockFn& block, const at::Tensor& hidden) -> at::Tensor {
    if (!at::GradMode::is_enabled()) return block(hidden);  // nothing to save memory on
    at::Tensor anchor = at::empty({0}, hidden.options().dtype(at::kFloat)).requires_grad_(true);
    return CheckpointedBlock::apply(hidden, anchor, block);
  };
}

}  // namespace fusellm::train
