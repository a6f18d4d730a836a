// AdamW against LibTorch's torch::optim::AdamW (an independent implementation), the schedules against
// hand-computed values, clipping against a direct norm.
#include <gtest/gtest.h>
#include <torch/optim/adamw.h>

#include <cmath>

#include "common/test_paths.hpp"
#include "fusellm/train/optimizer.hpp"

namespace fusellm::train {
namespace {

TEST(AdamW, MatchesLibTorchAdamW) {
  at::manual_seed(3);
  at::Tensor w0 = at::randn({4, 3}), b0 = at::randn({3});
  at::Tensor w = w0.clone().requires_grad_(true), b = b0.clone().requires_grad_(true);
  at::Tensor rw = w0.clone().requires_grad_(true), rb = b0.clone().requires_grad_(true);
  AdamW ours({{"layer.weight", w}, {"layer.bias", b}}, 0.9, 0.95, 1e-8, 0.1);
  // Reference: two groups, as our rule gives (no decay on the 1-D bias).
  std::vector<torch::optim::OptimizerParamGroup> groups;
  groups.emplace_back(std::vector<at::Tensor>{rw}, std::make_unique<torch::optim::AdamWOptions>(
                                                       torch::optim::AdamWOptions(1e-2).betas({0.9, 0.95}).eps(1e-8).weight_decay(0.1)));
  groups.emplace_back(std::vector<at::Tensor>{rb}, std::make_unique<torch::optim::AdamWOptions>(
                                                       torch::optim::AdamWOptions(1e-2).betas({0.9, 0.95}).eps(1e-8).weight_decay(0)));
  torch::optim::AdamW ref(groups, torch::optim::AdamWOptions(1e-2));
  for (int step = 0; step < 5; ++step) {
    at::Tensor x = at::randn({2, 4});
    ((x.matmul(w) + b).pow(2).sum()).backward();
    ((x.matmul(rw) + rb).pow(2).sum()).backward();
    ours.step(1e-2);
    ours.zero_grad();
    ref.step();
    ref.zero_grad();
  }
  EXPECT_TRUE(at::allclose(w, rw, 1e-6, 1e-7)) << (w - rw).abs().max();
  EXPECT_TRUE(at::allclose(b, rb, 1e-6, 1e-7)) << (b - rb).abs().max();
  EXPECT_FALSE(ours.decays(1));
  EXPECT_TRUE(ours.decays(0));
}

TEST(Schedule, WarmupThenDecay) {
  TrainConfig c;
  c.lr = 1.0;
  c.warmup_steps = 2;
  c.schedule = Schedule::Cosine;
  EXPECT_DOUBLE_EQ(scheduled_lr(c, 0, 10), 0.5);
  EXPECT_DOUBLE_EQ(scheduled_lr(c, 1, 10), 1.0);
  EXPECT_DOUBLE_EQ(scheduled_lr(c, 2, 10), 1.0);
  EXPECT_NEAR(scheduled_lr(c, 6, 10), 0.5, 1e-12);  // half-way through the 8 decay steps: cos(pi/2)
  c.schedule = Schedule::Linear;
  EXPECT_NEAR(scheduled_lr(c, 4, 10), 0.75, 1e-12);
  c.schedule = Schedule::Constant;
  EXPECT_DOUBLE_EQ(scheduled_lr(c, 9, 10), 1.0);
  c.warmup_steps = -1;
  c.warmup_ratio = 0.25;
  EXPECT_EQ(warmup_steps(c, 10), 3);
}

// "warmup_decay" against DeepSpeed 0.19.8's WarmupDecayLR stepped as its engine steps it (fixture from
// tools/deepspeed-reference/warmup_decay_lr.py): every optimizer step's rate, log warm-up (W = 1 is
// raised to 2 as DeepSpeed does) and linear decay to the floor. Both compute in double the same
// formula; 1e-15 relative covers a log() rounded differently by another libm.
TEST(Schedule, WarmupDecayIsDeepSpeedsWarmupDecayLR) {
  const json ref = parse_json_file(test::source_dir() / "tests/train/fixtures/deepspeed_warmup_decay.json");
  ASSERT_EQ(ref["cases"].size(), 3u);
  for (const auto& c : ref["cases"]) {
    TrainConfig cfg;
    cfg.schedule = Schedule::WarmupDecay;
    cfg.lr = c["max_lr"].get<double>();
    cfg.min_lr_ratio = c["min_lr"].get<double>() / cfg.lr;
    cfg.warmup_steps = c["warmup"].get<int64_t>();
    const int64_t total = c["total"].get<int64_t>();
    const auto lrs = c["lrs"].get<std::vector<double>>();
    for (int64_t s = 0; s < total; ++s)
      EXPECT_NEAR(scheduled_lr(cfg, s, total), lrs[size_t(s)], 1e-15 * cfg.lr + 1e-300) << "total " << total << " step " << s;
  }
}

TEST(Clip, ScalesToMaxNorm) {
  at::Tensor a = at::zeros({2}).requires_grad_(true), b = at::zeros({1}).requires_grad_(true);
  a.mutable_grad() = at::tensor({3.0f, 0.0f});
  b.mutable_grad() = at::tensor({4.0f});
  EXPECT_NEAR(clip_grad_norm({a, b}, 1.0), 5.0, 1e-9);
  EXPECT_NEAR(a.grad()[0].item<double>(), 0.6, 1e-6);
  EXPECT_NEAR(b.grad()[0].item<double>(), 0.8, 1e-6);
  EXPECT_NEAR(clip_grad_norm({a, b}, 0.0), 1.0, 1e-5);  // no clipping: norm reported only
}

}  // namespace
}  // namespace fusellm::train
