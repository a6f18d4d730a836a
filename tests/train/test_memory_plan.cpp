// `fusellm plan`'s arithmetic against independent numbers: Llama-2 7B's published parameter count,
// DeepSpeed's ZeRO-2/3 estimators and accelerate's estimate-memory as computed by their own code
// (../shared/docs/zero-notes.md §1.3, §4), the parameter count of a real checkpoint as loaded, and the
// fit verdicts of the paper's setup.
#include <gtest/gtest.h>

#include "common/test_paths.hpp"
#include "teacher/infer_test_util.hpp"
#include "fusellm/model/causal_lm.hpp"
#include "fusellm/train/memory_plan.hpp"

namespace fusellm::train {
namespace {

constexpr double kGiB = 1024.0 * 1024.0 * 1024.0;

model::ModelConfig llama2_7b() {
  return model::read_model_config(fs::path(FUSELLM_SOURCE_DIR) / "configs" / "models" / "llama-2-7b");
}

TEST(MemoryPlan, Llama2SevenBMatchesTheEstimatorsOfDeepSpeedAndAccelerate) {
  const model::ModelConfig cfg = llama2_7b();
  EXPECT_EQ(count_parameters(cfg), 6738415616);
  EXPECT_EQ(largest_layer_parameters(cfg), 131072000);  // embed_tokens / lm_head: 32000 × 4096
  // The upstream functions' outputs (GiB), reproduced within 2 % as the issue asks; the formulas are the
  // same, so in fact to their printed precision.
  EXPECT_NEAR(deepspeed_zero2_bytes(6738415616, 8) / kGiB, 26.67, 0.02 * 26.67);
  EXPECT_NEAR(deepspeed_zero3_bytes(6738415616, 131072000, 8) / kGiB, 14.61, 0.02 * 14.61);
  EXPECT_NEAR(deepspeed_zero2_bytes(6738415616, 8) / kGiB, 26.67, 0.005);
  EXPECT_NEAR(deepspeed_zero3_bytes(6738415616, 131072000, 8) / kGiB, 14.61, 0.005);
  EXPECT_NEAR(accelerate_fp32_bytes(cfg) / kGiB, 24.61, 0.005);
  EXPECT_NEAR(4 * accelerate_fp32_bytes(cfg) / kGiB, 98.46, 0.005);
}

TEST(MemoryPlan, PaperSetupFitsWithZeroTwoAndNotWithZeroZero) {
  PlanInput in;
  in.model = llama2_7b();
  in.world_size = 8;
  in.micro_batch = 2;
  in.seq_len = 2048;
  in.precision = "bf16";
  in.activation_checkpointing = true;
  in.fused_sources = 3;
  in.device_gib = 39.39;  // A100-40GB as PyTorch reports it
  in.zero_stage = 2;
  const PlanResult z2 = plan_memory(in);
  EXPECT_TRUE(z2.fits);
  // Model states: 2P + (4 + 8 + 4)P/N, the layout train/zero.hpp keeps.
  double states = 0;
  for (const auto& l : z2.lines)
    if (l.what.find("weights") != std::string::npos || l.what.find("moments") != std::string::npos ||
        l.what.find("partition") != std::string::npos)
      states += l.bytes;
  EXPECT_NEAR(states, 2.0 * 6738415616 + 16.0 * 6738415616 / 8, 1.0);
  EXPECT_GE(z2.largest_fitting_micro_batch, 2);
  in.zero_stage = 0;
  const PlanResult z0 = plan_memory(in);
  EXPECT_FALSE(z0.fits);
  EXPECT_EQ(z0.largest_fitting_micro_batch, 0);
  EXPECT_GT(z0.total_bytes / kGiB, 100.0);  // 16 bytes per parameter before anything else
  EXPECT_NE(format_plan(in, z0).find("does not fit on a 39.39 GiB device"), std::string::npos);
}

TEST(MemoryPlan, ParameterCountEqualsALoadedCheckpoint) {
  FUSELLM_REQUIRE_SHARED();
  const auto model = model::load_model(test::stories_model_dir(), {});
  EXPECT_EQ(count_parameters(model->config()), model->num_parameters());
}

}  // namespace
}  // namespace fusellm::train
