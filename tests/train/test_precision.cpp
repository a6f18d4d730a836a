// train.precision: bf16 autocast with fp32 master weights. On stories260K (CPU autocast), bf16 training
// gives finite losses within a few percent of fp32 training from the same start, differs from fp32 (so
// autocast was on), and leaves every parameter and gradient fp32. AutocastScope turns autocast on only
// while alive and restores what was there before.
#include <gtest/gtest.h>

#include <cmath>

#include "fusellm/model/causal_lm.hpp"
#include "fusellm/train/precision.hpp"
#include "fusellm/train/trainer.hpp"
#include "fusellm/util/device.hpp"
#include "train/train_test_util.hpp"

namespace fusellm::train {
namespace {

TEST(Precision, AutoIsBf16OnCudaOnly) {
  EXPECT_EQ(resolve_precision("auto", at::Device(at::kCPU)), Precision::Fp32);
  EXPECT_EQ(resolve_precision("auto", at::Device(at::kCUDA, 0)), Precision::Bf16);
  EXPECT_EQ(resolve_precision("bf16", at::Device(at::kCPU)), Precision::Bf16);
  EXPECT_EQ(resolve_precision("fp32", at::Device(at::kCUDA, 0)), Precision::Fp32);
  EXPECT_THROW(resolve_precision("fp16", at::Device(at::kCPU)), Error);
  if (!torch::cuda::is_available()) EXPECT_TRUE(device_for_rank("", 0).is_cpu());
}

TEST(Precision, ConfigKeys) {
  TrainConfig defaults = parse_train_config(json::object(), "c.json", "/tmp", "c");
  EXPECT_EQ(defaults.precision, "auto");
  EXPECT_EQ(defaults.bucket_mb, 25.0);
  EXPECT_TRUE(defaults.overlap_comm);
  TrainConfig set = parse_train_config(json{{"precision", "bf16"}, {"bucket_mb", 0.5}, {"overlap_comm", false}},
                                       "c.json", "/tmp", "c");
  EXPECT_EQ(set.precision, "bf16");
  EXPECT_EQ(set.bucket_mb, 0.5);
  EXPECT_FALSE(set.overlap_comm);
  EXPECT_EQ(set.to_json()["precision"], "bf16");
  try {
    parse_train_config(json{{"precision", "fp16"}, {"bucket_mb", 0}}, "c.json", "/tmp", "c");
    ADD_FAILURE() << "no error";
  } catch (const std::exception& e) {
    EXPECT_NE(std::string(e.what()).find("train.precision: expected one of 'fp32', 'bf16', 'fp64', 'auto'"), std::string::npos)
        << e.what();
    EXPECT_NE(std::string(e.what()).find("train.bucket_mb: expected a number > 0"), std::string::npos) << e.what();
  }
}

TEST(Precision, AutocastScopeCastsMatmulsOnlyInside) {
  const at::Tensor a = at::randn({4, 8}), b = at::randn({8, 3});
  {
    AutocastScope fp32(Precision::Fp32, at::kCPU);
    EXPECT_EQ(at::matmul(a, b).scalar_type(), at::kFloat);
  }
  {
    AutocastScope bf16(Precision::Bf16, at::kCPU);
    EXPECT_EQ(at::matmul(a, b).scalar_type(), at::kBFloat16);
    EXPECT_EQ(at::linear(a, b.t()).scalar_type(), at::kBFloat16);
  }
  EXPECT_EQ(at::matmul(a, b).scalar_type(), at::kFloat);
}

std::vector<StepMetrics> train(const std::string& precision, const std::vector<std::vector<int64_t>>& docs,
                               std::unique_ptr<Trainer>* keep, bool checkpointing = false) {
  TrainConfig c = test::small_train_config(test::scratch_dir("precision_" + precision + (checkpointing ? "_ckpt" : "")));
  c.weight_decay = 0;
  c.warmup_steps = 1;
  c.max_steps = 6;
  c.keep_last = 2;
  c.precision = precision;
  c.activation_checkpointing = checkpointing;
  *keep = test::stories_trainer(c, std::make_unique<PackedSequenceSource>(docs, c.max_length, c.seed, false),
                                make_clm_loss());
  return (*keep)->run();
}

TEST(Precision, Bf16TrainingTracksFp32WithFp32MasterWeights) {
  FUSELLM_REQUIRE_SHARED();
  const auto docs = test::shakespeare_documents(6000);
  std::unique_ptr<Trainer> fp32_trainer, bf16_trainer;
  const auto fp32 = train("fp32", docs, &fp32_trainer);
  const auto bf16 = train("bf16", docs, &bf16_trainer);
  ASSERT_EQ(fp32.size(), 6u);
  ASSERT_EQ(bf16.size(), 6u);
  bool any_different = false;
  for (size_t i = 0; i < fp32.size(); ++i) {
    SCOPED_TRACE("step " + std::to_string(i + 1));
    ASSERT_TRUE(std::isfinite(bf16[i].loss));
    ASSERT_TRUE(std::isfinite(bf16[i].grad_norm));
    EXPECT_NEAR(bf16[i].loss, fp32[i].loss, 0.03 * fp32[i].loss);
    any_different = any_different || bf16[i].loss != fp32[i].loss;
  }
  EXPECT_TRUE(any_different) << "bf16 losses equal fp32 bit for bit: autocast was not on";
  EXPECT_LT(bf16.back().loss, bf16.front().loss);  // it still learns
  for (const auto& [name, t] : bf16_trainer->model().parameters()) {
    if (!at::isFloatingType(t.scalar_type())) continue;
    EXPECT_EQ(t.scalar_type(), at::kFloat) << name;
    EXPECT_TRUE(at::isfinite(t).all().item<bool>()) << name;
  }
}

// fp64: weights, gradients and optimizer state in float64 (the equivalence tests' precision). Its first
// step starts from the same weights as fp32, so the losses agree to float32 rounding (relative 1e-5); later
// steps stay close to fp32's.
TEST(Precision, Fp64TrainsInFloat64) {
  FUSELLM_REQUIRE_SHARED();
  const auto docs = test::shakespeare_documents(6000);
  std::unique_ptr<Trainer> fp32_trainer, fp64_trainer;
  const auto fp32 = train("fp32", docs, &fp32_trainer);
  const auto fp64 = train("fp64", docs, &fp64_trainer);
  ASSERT_EQ(fp64.size(), 6u);
  EXPECT_NEAR(fp64[0].loss, fp32[0].loss, 1e-5 * fp32[0].loss);
  EXPECT_NE(fp64[0].loss, fp32[0].loss) << "fp64 loss equals fp32 bit for bit: not computed in float64";
  for (size_t i = 0; i < fp64.size(); ++i) EXPECT_NEAR(fp64[i].loss, fp32[i].loss, 1e-3 * fp32[i].loss) << i + 1;
  EXPECT_LT(fp64.back().loss, fp64.front().loss);
  for (const auto& [name, t] : fp64_trainer->model().parameters())
    if (at::isFloatingType(t.scalar_type())) EXPECT_EQ(t.scalar_type(), at::kDouble) << name;
  EXPECT_EQ(resolve_precision("fp64", at::kCPU), Precision::Fp64);
  EXPECT_EQ(master_dtype(Precision::Fp64), at::kDouble);
  EXPECT_EQ(master_dtype(Precision::Bf16), at::kFloat);
}

TEST(Precision, Bf16WithActivationCheckpointingMatchesWithout) {
  FUSELLM_REQUIRE_SHARED();
  const auto docs = test::shakespeare_documents(6000);
  std::unique_ptr<Trainer> plain_trainer, ckpt_trainer;
  const auto plain = train("bf16", docs, &plain_trainer);
  const auto ckpt = train("bf16", docs, &ckpt_trainer, true);
  ASSERT_EQ(ckpt.size(), plain.size());
  for (size_t i = 0; i < plain.size(); ++i) EXPECT_NEAR(ckpt[i].loss, plain[i].loss, 1e-3) << "step " << i + 1;
}

}  // namespace
}  // namespace fusellm::train
