// λ·CLM + (1−λ)·D(fused ‖ model) on sparse targets (see docs/fusion.md, "Loss").
#include <limits>

#include "fusellm/fusion/fusion.hpp"
#include "fusellm/util/error.hpp"

namespace fusellm::fusion {

namespace {

// log(x) where `use`, 0 elsewhere, without the 0·(−inf) = NaN gradient a plain where(use, log x, 0) gives.
at::Tensor safe_log(const at::Tensor& x, const at::Tensor& use) {
  return at::where(use, at::where(use, x, at::ones_like(x)).log(), at::zeros_like(x));
}

at::Tensor masked_sum(const at::Tensor& x, const at::Tensor& use) {
  return at::where(use, x, at::zeros_like(x)).sum(-1);
}

// lse = logsumexp(logits) and logits gathered at `index`, with one hand-written backward: the gradient
// softmax(logits)·g_lse + scatter(g_gathered) is built in a single [B, T, V] tensor, where autograd would
// allocate one for the logsumexp and another (zeroed) one per gather.
class LseGather : public torch::autograd::Function<LseGather> {
 public:
  static torch::autograd::variable_list forward(torch::autograd::AutogradContext* ctx, const at::Tensor& logits,
                                                const at::Tensor& index) {
    auto lse = logits.logsumexp(-1);
    auto gathered = logits.gather(-1, index);
    ctx->save_for_backward({logits, lse, index});
    return {lse, gathered};
  }
  static torch::autograd::variable_list backward(torch::autograd::AutogradContext* ctx,
                                                 torch::autograd::variable_list grads) {
    auto saved = ctx->get_saved_variables();
    const auto &logits = saved[0], &lse = saved[1], &index = saved[2];
    at::Tensor grad = grads[0].defined()
                          ? (logits - lse.unsqueeze(-1)).exp_().mul_(grads[0].unsqueeze(-1))
                          : at::zeros_like(logits);
    if (grads[1].defined()) grad.scatter_add_(-1, index, grads[1]);
    return {grad, at::Tensor()};
  }
};

void check_target(const at::Tensor& logits, const SparseDist& target) {
  FUSELLM_CHECK(target.ids.dim() == 3 && target.ids.size(0) == logits.size(0) && target.ids.size(1) == logits.size(1),
                "fusion target: ids must be [B, T, W] matching logits [B, T, V] = [{}, {}, {}]", logits.size(0),
                logits.size(1), logits.size(2));
  FUSELLM_CHECK(target.probs.sizes() == target.ids.sizes(), "fusion target: probs must have the shape of ids");
  FUSELLM_CHECK(target.ids.numel() == 0 || target.ids.max().item<int64_t>() < logits.size(2),
                "fusion target: an id is >= the target vocabulary size {}", logits.size(2));
}

// The divergence from the logits gathered at the target's ids (z [B, T, W]) and lse [B, T].
at::Tensor divergence_from_gathered(const at::Tensor& z, const at::Tensor& lse, const SparseDist& target,
                                    Divergence divergence) {
  auto valid = target.ids.ge(0).logical_and(target.probs.gt(0));
  auto p = at::where(valid, target.probs.to(z.scalar_type()), at::zeros({}, z.options()));
  auto mass = p.sum(-1);
  // Soft-label CE: −Σ p (z − lse) = lse·Σp − Σ p z; the KL adds the (constant) Σ p log p.
  auto ce = lse * mass - masked_sum(p * z, valid);
  if (divergence == Divergence::CE) return ce;
  if (divergence == Divergence::KL) return ce + masked_sum(p * safe_log(p, valid), valid);

  // reverse_kl / js / tvd compare p̃ = p / Σp with q̃ = q restricted to the support and renormalized,
  // i.e. a softmax of the gathered logits over the valid slots (lse is not needed).
  auto has_mass = valid.any(-1);
  auto p_tilde = p / at::where(has_mass, mass, at::ones_like(mass)).unsqueeze(-1);
  const double floor = z.scalar_type() == at::kDouble ? -1e300 : -1e30;
  auto log_q = at::where(valid, z, at::full({}, floor, z.options())).log_softmax(-1);
  auto q_tilde = log_q.exp();
  auto log_p = safe_log(p_tilde, valid);
  auto log_q_safe = at::where(valid, log_q, at::zeros_like(log_q));
  at::Tensor value;
  switch (divergence) {
    case Divergence::ReverseKL:
      value = masked_sum(q_tilde * (log_q_safe - log_p), valid);
      break;
    case Divergence::JS: {
      auto log_m = safe_log(0.5 * (p_tilde + q_tilde), valid);
      value = 0.5 * masked_sum(p_tilde * (log_p - log_m) + q_tilde * (log_q_safe - log_m), valid);
      break;
    }
    case Divergence::TVD:
      value = 0.5 * masked_sum((p_tilde - q_tilde).abs(), valid);
      break;
    default:
      fail("fusion: unhandled divergence {}", to_string(divergence));
  }
  return at::where(has_mass, value, at::zeros_like(value));
}

}  // namespace

at::Tensor sparse_divergence(const at::Tensor& logits, const at::Tensor& lse, const SparseDist& target,
                             Divergence divergence) {
  check_target(logits, target);
  return divergence_from_gathered(logits.gather(-1, target.ids.clamp_min(0)), lse, target, divergence);
}

LossTerms fusion_loss(const at::Tensor& logits, const at::Tensor& labels, const at::Tensor& attention_mask,
                      const SparseDist& target, const LossOptions& options) {
  FUSELLM_CHECK(logits.dim() == 3, "fusion loss: logits must be [B, T, V]");
  FUSELLM_CHECK(labels.dim() == 2 && labels.size(0) == logits.size(0) && labels.size(1) == logits.size(1),
                "fusion loss: labels must be [B, T] = [{}, {}]", logits.size(0), logits.size(1));
  FUSELLM_CHECK(options.lm_weight >= 0 && options.lm_weight <= 1, "fusion.lm_weight: must be in [0, 1], got {}",
                options.lm_weight);
  const int64_t length = logits.size(1);
  const bool with_target = target.ids.defined();
  if (with_target) check_target(logits, target);
  // One pass over [B, T, V]: lse (shared by both terms) and the logits at the next label and at the
  // target's ids. Slot 0 holds the next label (position T−1 has none: id 0, masked below).
  auto next = labels.narrow(1, 1, std::max<int64_t>(length - 1, 0));
  auto next_index = at::cat({next.clamp_min(0), at::zeros({labels.size(0), 1}, labels.options())}, 1)
                        .narrow(1, 0, length).unsqueeze(-1);
  auto index = with_target ? at::cat({next_index, target.ids.clamp_min(0)}, -1) : next_index;
  auto lse_and_gathered = LseGather::apply(logits, index);
  const auto& lse = lse_and_gathered[0];
  const auto& gathered = lse_and_gathered[1];

  // CLM: logits[t] predicts labels[t+1]; mean over labels ≠ −100 (0 when there are none).
  auto clm_positions = next.ne(-100);
  auto z_next = gathered.select(-1, 0).narrow(1, 0, next.size(1));
  auto nll = lse.narrow(1, 0, next.size(1)) - z_next;
  auto zero = at::zeros({}, logits.options());
  auto clm = at::where(clm_positions, nll, zero).sum() / clm_positions.sum().clamp_min(1).to(logits.scalar_type());

  at::Tensor fusion = zero;
  if (with_target) {
    at::Tensor positions;
    if (options.positions == FusionPositions::Attention) {
      positions = attention_mask.defined() ? attention_mask.ne(0) : at::ones_like(labels, at::kBool);
      FUSELLM_CHECK(positions.sizes() == labels.sizes(), "fusion loss: attention_mask must be [B, T]");
    } else {
      positions = at::cat({clm_positions, at::zeros({labels.size(0), 1}, clm_positions.options())}, 1)
                      .narrow(1, 0, length);
    }
    auto z = gathered.narrow(-1, 1, target.ids.size(-1));
    auto per_position = divergence_from_gathered(z, lse, target, options.divergence);
    fusion = at::where(positions, per_position, zero).sum() / positions.sum().clamp_min(1).to(logits.scalar_type());
  }
  auto loss = options.lm_weight * clm + (1.0 - options.lm_weight) * fusion;
  return {loss, clm, fusion};
}

}  // namespace fusellm::fusion
