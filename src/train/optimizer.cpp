// AdamW as in torch.optim.AdamW (decoupled decay applied before the moment update), the learning-rate
// schedules and global-norm clipping.
#include "fusellm/train/optimizer.hpp"

#include <cmath>

#include "fusellm/util/error.hpp"

namespace fusellm::train {

AdamW::AdamW(std::vector<std::pair<std::string, at::Tensor>> params, double beta1, double beta2, double eps,
             double weight_decay)
    : params_(std::move(params)), beta1_(beta1), beta2_(beta2), eps_(eps), weight_decay_(weight_decay) {
  for (const auto& [name, p] : params_) {
    exp_avg_.push_back(at::zeros_like(p, at::MemoryFormat::Contiguous));
    exp_avg_sq_.push_back(at::zeros_like(p, at::MemoryFormat::Contiguous));
    decay_.push_back(p.dim() >= 2 && name.find("norm") == std::string::npos);
  }
}

void AdamW::zero_grad() {
  for (auto& [name, p] : params_)
    if (p.grad().defined()) p.mutable_grad() = at::Tensor();
}

void AdamW::step(double lr) {
  at::NoGradGuard no_grad;
  ++step_;
  const double bias1 = 1 - std::pow(beta1_, static_cast<double>(step_));
  const double bias2 = 1 - std::pow(beta2_, static_cast<double>(step_));
  for (size_t i = 0; i < params_.size(); ++i) {
    at::Tensor& p = params_[i].second;
    if (!p.grad().defined()) continue;
    at::Tensor g = p.grad();
    if (decay_[i] && weight_decay_ != 0) p.mul_(1 - lr * weight_decay_);
    exp_avg_[i].mul_(beta1_).add_(g, 1 - beta1_);
    exp_avg_sq_[i].mul_(beta2_).addcmul_(g, g, 1 - beta2_);
    at::Tensor denom = (exp_avg_sq_[i].sqrt() / std::sqrt(bias2)).add_(eps_);
    p.addcdiv_(exp_avg_[i], denom, -lr / bias1);
  }
}

io::NamedTensors AdamW::state_tensors() const {
  io::NamedTensors out;
  for (size_t i = 0; i < params_.size(); ++i) {
    out.emplace_back("exp_avg." + params_[i].first, exp_avg_[i]);
    out.emplace_back("exp_avg_sq." + params_[i].first, exp_avg_sq_[i]);
  }
  return out;
}

void AdamW::load_state(const io::NamedTensors& tensors, int64_t steps, const std::string& source) {
  std::map<std::string, at::Tensor> by_name(tensors.begin(), tensors.end());
  auto take = [&](const std::string& name, at::Tensor& dst) {
    auto it = by_name.find(name);
    if (it == by_name.end()) fail("{}: optimizer state lacks tensor '{}'", source, name);
    if (it->second.sizes() != dst.sizes())
      fail("{}: optimizer tensor '{}' has shape {}, the parameter {}", source, name, c10::str(it->second.sizes()),
           c10::str(dst.sizes()));
    dst.copy_(it->second);
  };
  for (size_t i = 0; i < params_.size(); ++i) {
    take("exp_avg." + params_[i].first, exp_avg_[i]);
    take("exp_avg_sq." + params_[i].first, exp_avg_sq_[i]);
  }
  step_ = steps;
}

int64_t warmup_steps(const TrainConfig& cfg, int64_t total) {
  if (cfg.warmup_steps >= 0) return cfg.warmup_steps;
  return static_cast<int64_t>(std::ceil(cfg.warmup_ratio * static_cast<double>(total)));
}

double scheduled_lr(const TrainConfig& cfg, int64_t step, int64_t total) {
  const int64_t warm = warmup_steps(cfg, total);
  if (cfg.schedule == Schedule::WarmupDecay) {
    // DeepSpeed WarmupDecayLR as its engine steps it: the scheduler starts at iteration −1 (the floor) and
    // steps after each optimizer step, so optimizer step s (0-based) runs at iteration i = s − 1:
    // gamma = log(i + 1) / log(W) for i < W = max(2, warmup) (the first two steps run at the floor), then
    // (total − i) / max(1, total − W) down to 0; lr = floor + (lr − floor)·gamma.
    const double floor = cfg.lr * cfg.min_lr_ratio;
    const int64_t i = step - 1, w = std::max<int64_t>(2, warm);
    if (i < 0) return floor;
    const double gamma = i < w ? std::log(double(i + 1)) / std::log(double(w))
                               : std::max(0.0, double(total - i) / double(std::max<int64_t>(1, total - w)));
    return floor + (cfg.lr - floor) * gamma;
  }
  if (step < warm) return cfg.lr * static_cast<double>(step + 1) / static_cast<double>(warm);
  if (cfg.schedule == Schedule::Constant) return cfg.lr;
  const double span = std::max<int64_t>(1, total - warm);
  const double progress = std::min(1.0, static_cast<double>(step - warm) / span);
  const double floor = cfg.lr * cfg.min_lr_ratio;
  if (cfg.schedule == Schedule::Linear) return floor + (cfg.lr - floor) * (1 - progress);
  return floor + (cfg.lr - floor) * 0.5 * (1 + std::cos(M_PI * progress));
}

double clip_grad_norm(const std::vector<at::Tensor>& params, double max_norm) {
  at::NoGradGuard no_grad;
  double sq = 0;
  for (const auto& p : params)
    if (p.grad().defined()) sq += p.grad().to(at::kDouble).pow(2).sum().item<double>();
  const double norm = std::sqrt(sq);
  if (max_norm > 0 && norm > max_norm) {
    const double scale = max_norm / (norm + 1e-6);
    for (const auto& p : params)
      if (p.grad().defined()) p.grad().mul_(scale);
  }
  return norm;
}

}  // namespace fusellm::train
