// ZeRO-1/2 end to end as Gloo ranks of `fusellm train`: sharded runs equal replicated ones with the same
// global batch (float64, with gradient accumulation and clipping active), hold about 1/N of the optimizer
// state and gradients, resume bit for bit after SIGKILL, resume at another world size (and as one
// replicated process), and detect a corrupt shard.
//
// Tolerances. ZeRO sums the same gradients in another order than ZeRO-0 (each micro-batch reduced on its
// own and the averages summed, instead of summed locally and reduced once), so float32 runs drift apart
// by rounding that depends on the CPU's kernels. The comparisons therefore run in float64, where a
// reordered sum moves a gradient by ~1e-16 relative and Adam's update by at most lr × 1e-16 / eps =
// 1e-3 × 1e-16 / 1e-8 = 1e-11 per step: 1e-9 over a few steps holds on any CPU and is still six orders
// of magnitude below what a dropped or doubly counted gradient does (~lr = 1e-3 in the first step).
// In float32 the losses of a few steps stay within 1e-5 (O(1) values, float32's unit roundoff ~6e-8
// times the few hundred terms a reordered sum reorders).
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <signal.h>

#include <cmath>
#include <cstdio>

#include "common/run_cli.hpp"
#include "common/test_paths.hpp"
#include "common/train_cli_util.hpp"
#include "fusellm/train/checkpoint.hpp"

namespace fusellm {
namespace {

using testing::HasSubstr;
using test::Exit;
using Fixture = test::TrainFixture;

constexpr double kFp64Tolerance = 1e-9;
constexpr double kFp32LossTolerance = 1e-5;

// 1 sequence × 2 micro-batches per rank, several gradient buckets, clipping that bites on every step.
json zero_train(int stage, int steps = 6) {
  return {{"lr", 1e-3}, {"warmup_steps", 1}, {"max_steps", steps}, {"micro_batch", 1}, {"grad_accum", 2},
          {"max_length", 32}, {"save_every", 0}, {"log_every", 100}, {"weight_decay", 0.01}, {"clip", 0.05},
          {"precision", "fp64"}, {"bucket_mb", 0.1}, {"zero_stage", stage}, {"dist_timeout_s", 60}};
}

void run_ok(const Fixture& fx, const std::string& name, const json& train, int world, bool resume = false,
            const std::vector<std::string>& env = {}) {
  const auto exits = test::run_ranks(fx.config(name, train), world, fx.dir, name, resume, env);
  for (size_t r = 0; r < exits.size(); ++r)
    ASSERT_EQ(exits[r].code, 0) << name << " rank " << r << ": " << exits[r].output;
}

fs::path final_checkpoint(const Fixture& fx, const std::string& name, int step) {
  return fx.dir / name / "checkpoints" / train::checkpoint_name(step);
}

// Largest per-step loss difference; fails when the step counts differ.
double max_loss_diff(const fs::path& a, const fs::path& b) {
  const auto x = test::step_losses(a), y = test::step_losses(b);
  EXPECT_EQ(x.size(), y.size());
  double worst = 0;
  for (size_t i = 0; i < std::min(x.size(), y.size()); ++i) worst = std::max(worst, std::abs(x[i].second - y[i].second));
  return worst;
}

TEST(ZeroCli, ShardedRunsEqualReplicatedOnTwoAndThreeRanks) {
  FUSELLM_REQUIRE_SHARED();
  Fixture fx("zero_cli_equal");
  for (int world : {2, 3}) {
    SCOPED_TRACE("world " + std::to_string(world));
    const std::string tag = std::to_string(world);
    run_ok(fx, "zero0_" + tag, zero_train(0), world);
    run_ok(fx, "zero2_" + tag, zero_train(2), world);
    json no_overlap = zero_train(2);
    no_overlap["overlap_comm"] = false;
    run_ok(fx, "zero2_plain_" + tag, no_overlap, world);
    json emulated = zero_train(2);
    emulated["reduce_scatter"] = "allreduce";
    run_ok(fx, "zero2_allreduce_" + tag, emulated, world);
    run_ok(fx, "zero1_" + tag, zero_train(1), world);
    if (testing::Test::HasFatalFailure()) return;

    const fs::path ref = fx.dir / ("zero0_" + tag);
    for (const json& line : test::metric_lines(ref)) EXPECT_GT(line["grad_norm"].get<double>(), 0.05);  // clipped
    for (const std::string name : {"zero2_", "zero2_plain_", "zero2_allreduce_", "zero1_"}) {
      const fs::path run = fx.dir / (name + tag);
      const double loss_diff = max_loss_diff(ref, run);
      const auto [tensor, weight_diff] = test::max_weight_diff(final_checkpoint(fx, "zero0_" + tag, 6),
                                                               final_checkpoint(fx, name + tag, 6));
      std::printf("[ fp64     ] %s%d vs ZeRO-0: max loss difference %.3g, max weight difference %.3g (%s)\n",
                  name.c_str(), world, loss_diff, weight_diff, tensor.c_str());
      EXPECT_LE(loss_diff, kFp64Tolerance) << name;
      EXPECT_LE(weight_diff, kFp64Tolerance) << name << tensor;
    }

    // What each rank holds: optimizer state and gradients about 1/N of ZeRO-0's (padding to a multiple of
    // N per bucket is the only excess), measured from the tensors the optimizer keeps.
    const json z0 = test::metric_lines(ref).back(), z2 = test::metric_lines(fx.dir / ("zero2_" + tag)).back(),
               z1 = test::metric_lines(fx.dir / ("zero1_" + tag)).back();
    const double opt_ratio = z2["optimizer_bytes"].get<double>() / z0["optimizer_bytes"].get<double>();
    const double grad_ratio = z2["gradient_bytes"].get<double>() / z0["gradient_bytes"].get<double>();
    std::printf("[ memory   ] %d ranks, rank 0: ZeRO-0 optimizer %.0f B, gradients %.0f B, peak RSS %.1f MiB; "
                "ZeRO-2 optimizer %.0f B (%.4f×), gradients %.0f B (%.4f×), reduce buffers peak %.0f B, peak RSS "
                "%.1f MiB; ZeRO-1 optimizer %.4f×\n",
                world, z0["optimizer_bytes"].get<double>(), z0["gradient_bytes"].get<double>(),
                z0["peak_rss_bytes"].get<double>() / (1 << 20), z2["optimizer_bytes"].get<double>(), opt_ratio,
                z2["gradient_bytes"].get<double>(), grad_ratio, z2["comm_peak_bytes"].get<double>(),
                z2["peak_rss_bytes"].get<double>() / (1 << 20),
                z1["optimizer_bytes"].get<double>() / z0["optimizer_bytes"].get<double>());
    EXPECT_NEAR(opt_ratio, 1.0 / world, 0.01);
    EXPECT_NEAR(grad_ratio, 1.0 / world, 0.01);
    EXPECT_NEAR(z1["optimizer_bytes"].get<double>() / z0["optimizer_bytes"].get<double>(), 1.0 / world, 0.01);
  }

  // float32: the losses of a few steps agree within rounding.
  json z0 = zero_train(0, 3), z2 = zero_train(2, 3);
  z0["precision"] = z2["precision"] = "fp32";
  run_ok(fx, "zero0_fp32", z0, 2);
  run_ok(fx, "zero2_fp32", z2, 2);
  if (testing::Test::HasFatalFailure()) return;
  const double diff = max_loss_diff(fx.dir / "zero0_fp32", fx.dir / "zero2_fp32");
  std::printf("[ fp32     ] ZeRO-2 vs ZeRO-0 on 2 ranks: max loss difference %.3g\n", diff);
  EXPECT_LE(diff, kFp32LossTolerance);
}

TEST(ZeroCli, KilledShardedRunResumesBitIdentically) {
  FUSELLM_REQUIRE_SHARED();
  Fixture fx("zero_cli_resume");
  json t = zero_train(2, 10);
  t["precision"] = "fp32";
  t["save_every"] = 4;
  run_ok(fx, "ref", t, 2);
  const auto exits = test::run_ranks(fx.config("killed", t), 2, fx.dir, "killed", false,
                                     {"FUSELLM_TRAIN_KILL_AT_STEP=7"});
  for (const Exit& e : exits) ASSERT_TRUE(e.killed) << e.output;
  EXPECT_EQ(read_file(fx.dir / "killed" / "checkpoints" / "latest"), train::checkpoint_name(4) + "\n");
  run_ok(fx, "killed", t, 2, /*resume=*/true);
  if (testing::Test::HasFatalFailure()) return;
  const auto want = test::step_losses(fx.dir / "ref"), got = test::step_losses(fx.dir / "killed");
  ASSERT_EQ(got.size(), want.size());
  for (size_t i = 0; i < got.size(); ++i) EXPECT_EQ(got[i].second, want[i].second) << "step " << got[i].first;
  EXPECT_TRUE(test::bytes_of(final_checkpoint(fx, "ref", 10) / "model.safetensors") ==
              test::bytes_of(final_checkpoint(fx, "killed", 10) / "model.safetensors"));
  for (int r = 0; r < 2; ++r)  // the sharded optimizer state too
    EXPECT_TRUE(test::bytes_of(final_checkpoint(fx, "ref", 10) / "trainer_state" / "zero" /
                               ("rank-0000" + std::to_string(r) + "-of-00002.safetensors")) ==
                test::bytes_of(final_checkpoint(fx, "killed", 10) / "trainer_state" / "zero" /
                               ("rank-0000" + std::to_string(r) + "-of-00002.safetensors")));
}

TEST(ZeroCli, ResumesAtAnotherWorldSize) {
  FUSELLM_REQUIRE_SHARED();
  Fixture fx("zero_cli_reshard");
  json three = zero_train(2, 8);  // 3 ranks × 1 × 2 = 6 sequences per step
  three["save_every"] = 4;
  three["keep_last"] = 0;
  run_ok(fx, "three", three, 3);
  const auto killed = test::run_ranks(fx.config("resharded", three), 3, fx.dir, "resharded", false,
                                      {"FUSELLM_TRAIN_KILL_AT_STEP=5"});
  for (const Exit& e : killed) ASSERT_TRUE(e.killed) << e.output;
  // The same global batch on 2 ranks (1 × 3), and as one replicated process (6 × 1, ZeRO-0).
  json two = three;
  two["grad_accum"] = 3;
  for (const char* dir : {"as_one"}) fs::copy(fx.dir / "resharded", fx.dir / dir, fs::copy_options::recursive);
  run_ok(fx, "resharded", two, 2, /*resume=*/true);
  json one = three;
  one["zero_stage"] = 0;
  one["micro_batch"] = 6;
  one["grad_accum"] = 1;
  Exit single = test::run_cli_env(test::train_args(fx.config("as_one", one), true), {}, fx.dir / "as_one.log");
  ASSERT_EQ(single.code, 0) << single.output;
  if (testing::Test::HasFatalFailure()) return;
  EXPECT_THAT(read_file(fx.dir / "resharded_rank0.log"), HasSubstr("at step 4/8"));
  EXPECT_THAT(single.output, HasSubstr("at step 4/8"));
  for (const std::string name : {"resharded", "as_one"}) {
    const double loss_diff = max_loss_diff(fx.dir / "three", fx.dir / name);
    const auto [tensor, weight_diff] =
        test::max_weight_diff(final_checkpoint(fx, "three", 8), final_checkpoint(fx, name, 8));
    std::printf("[ reshard  ] saved at 3 ranks, resumed as %s: max loss difference %.3g, max weight difference %.3g\n",
                name.c_str(), loss_diff, weight_diff);
    EXPECT_LE(loss_diff, kFp64Tolerance) << name;
    EXPECT_LE(weight_diff, kFp64Tolerance) << name << tensor;
  }

  // One flipped byte in a shard: found on read, the shard named.
  const fs::path shard = final_checkpoint(fx, "three", 8) / "trainer_state" / "zero" / "rank-00001-of-00003.safetensors";
  std::string bytes = read_file(shard);
  bytes[bytes.size() - 3] ^= 0x10;
  write_file_atomic(shard, bytes);
  json more = three;
  more["max_steps"] = 8;
  const auto exits = test::run_ranks(fx.config("three", more), 3, fx.dir, "corrupt", true);
  bool named = false;
  for (const Exit& e : exits) {
    EXPECT_NE(e.code, 0);
    named = named || e.output.find("rank-00001-of-00003.safetensors: checksum mismatch") != std::string::npos;
  }
  EXPECT_TRUE(named) << exits[1].output;
}

// `fusellm plan` on the paper's config (Llama-2 7B's config.json shipped in configs/models): fits on
// 8 × A100-40GB with ZeRO-2, does not with ZeRO-0; a model type without a formula is one clear line.
TEST(ZeroCli, PlanSaysWhetherThePaperSetupFits) {
  const std::string config = (fs::path(FUSELLM_SOURCE_DIR) / "configs" / "fusellm-paper.json").string();
  const std::string model = (fs::path(FUSELLM_SOURCE_DIR) / "configs" / "models" / "llama-2-7b").string();
  const auto z2 = test::run_cli("plan --config " + config + " --model " + model + " --tokens 1.8e9");
  ASSERT_EQ(z2.status, 0) << z2.output;
  EXPECT_THAT(z2.output, HasSubstr("P = 6738415616"));
  EXPECT_THAT(z2.output, HasSubstr("ZeRO-2"));
  EXPECT_THAT(z2.output, HasSubstr("fits on a 39.39 GiB device"));
  EXPECT_THAT(z2.output, HasSubstr("DeepSpeed estimate_zero2 (2P + 18P/N):          26.67 GiB"));
  const auto z0 = test::run_cli("plan --config " + config + " --model " + model + " --zero-stage 0");
  ASSERT_EQ(z0.status, 0) << z0.output;
  EXPECT_THAT(z0.output, HasSubstr("does not fit on a 39.39 GiB device"));
  const auto missing = test::run_cli("plan --config " + config);
  EXPECT_EQ(missing.status, 1);
  EXPECT_THAT(missing.output, HasSubstr("no config.json"));
}

}  // namespace
}  // namespace fusellm
