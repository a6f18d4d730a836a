// `fusellm train` end to end as child processes: a run killed (SIGKILL) after a step or in the middle of
// writing a checkpoint and then resumed logs the same per-step losses, bit for bit, and ends with the same
// weights as an uninterrupted run; two Gloo ranks equal one process with the same global batch, with the
// gradient all-reduce during or after backward; a rank whose peer never comes fails with a clear message;
// config errors are one clear line before any work.
#include <algorithm>
#include <chrono>
#include <optional>
#include <thread>

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <fcntl.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmath>
#include <cstdio>
#include <fstream>

#include "common/run_cli.hpp"
#include "common/test_paths.hpp"
#include "common/train_cli_util.hpp"
#include "fusellm/io/safetensors.hpp"
#include "teacher/infer_test_util.hpp"

namespace fusellm {
namespace {

using testing::HasSubstr;
using testing::Not;

using test::Exit;
const auto run_cli = test::run_cli_env;

using Fixture = test::TrainFixture;

json base_train() {
  return {{"lr", 3e-3}, {"warmup_steps", 2}, {"max_steps", 12}, {"micro_batch", 2}, {"grad_accum", 2},
          {"max_length", 32}, {"save_every", 4}, {"keep_last", 2}, {"log_every", 4}, {"weight_decay", 0.01}};
}

using test::free_port;
using test::train_args;
const auto losses = test::step_losses;

TEST(TrainCli, KilledRunsResumeBitIdentically) {
  FUSELLM_REQUIRE_SHARED();
  Fixture fx("train_cli_resume");
  Exit ref = run_cli(train_args(fx.config("ref", base_train())), {}, fx.dir / "ref.log");
  ASSERT_EQ(ref.code, 0) << ref.output;
  const auto want = losses(fx.dir / "ref");
  ASSERT_EQ(want.size(), 12u);
  const std::string final_weights = test::bytes_of(fx.dir / "ref" / "checkpoints" / "step-00000012" / "model.safetensors");

  struct Kill { std::string name, env; std::string latest_after; };
  for (const Kill& k : {Kill{"after_step", "FUSELLM_TRAIN_KILL_AT_STEP=10", "step-00000008"},
                        Kill{"in_save", "FUSELLM_TRAIN_KILL_IN_SAVE=8", "step-00000004"}}) {
    SCOPED_TRACE(k.name);
    const std::string config = fx.config(k.name, base_train());
    Exit killed = run_cli(train_args(config), {k.env}, fx.dir / (k.name + ".log"));
    ASSERT_TRUE(killed.killed) << killed.output;
    EXPECT_EQ(killed.code, SIGKILL);
    EXPECT_EQ(read_file(fx.dir / k.name / "checkpoints" / "latest"), k.latest_after + "\n");
    Exit resumed = run_cli(train_args(config, true), {}, fx.dir / (k.name + "_resume.log"));
    ASSERT_EQ(resumed.code, 0) << resumed.output;
    EXPECT_THAT(resumed.output, HasSubstr("resumed from"));
    const auto got = losses(fx.dir / k.name);
    ASSERT_EQ(got.size(), want.size());
    for (size_t i = 0; i < got.size(); ++i) {
      EXPECT_EQ(got[i].first, want[i].first);
      EXPECT_EQ(got[i].second, want[i].second) << "step " << got[i].first;  // bit for bit
    }
    EXPECT_TRUE(test::bytes_of(fx.dir / k.name / "checkpoints" / "step-00000012" / "model.safetensors") ==
                final_weights);
    EXPECT_FALSE(fs::exists(fx.dir / k.name / "checkpoints" / "step-00000004"));  // keep_last = 2
  }
  // The loss fell over the run.
  EXPECT_LT(want.back().second, want.front().second);
  // Without --resume an existing run is not overwritten.
  Exit again = run_cli(train_args(fx.config("ref", base_train())), {}, fx.dir / "again.log");
  EXPECT_EQ(again.code, 1);
  EXPECT_THAT(again.output, HasSubstr("pass --resume"));
}

// Runs `config` as two Gloo ranks (torchrun's environment) and waits for both.
void run_two_ranks(const Fixture& fx, const std::string& name, const json& train) {
  const auto exits = test::run_ranks(fx.config(name, train), 2, fx.dir, name);
  for (size_t r = 0; r < exits.size(); ++r) ASSERT_EQ(exits[r].code, 0) << name << " rank " << r << ": " << exits[r].output;
}

// Two ranks equal one process with the same global batch; all-reducing gradient buckets during backward
// (train.overlap_comm, several buckets) gives the same losses and weights, bit for bit, as all-reducing
// after backward, also with gradient accumulation.
//
// Tolerances. Two ranks (and accumulation) sum the same gradients in another order. In float32 that moves a
// gradient by ~6e-8 × the sum of the magnitudes it adds up; AdamW's m/√v turns such a difference into an
// lr-sized weight change wherever the gradient itself is that small, so fp32 weights after a few steps differ
// by an amount that depends on the CPU's BLAS kernels (1.8e-5 to 7e-5 seen on AMD EPYC, < 1e-5 on Xeon).
// So the comparison runs in float64 (train.precision fp64): there a gradient moves by ~1e-16 × its summed
// magnitudes, and Adam's update by at most lr × that / eps (eps = 1e-8 where the gradient is below eps,
// relatively ~1e-16 elsewhere): ≤ 1e-3 × 1e-16 / 1e-8 = 1e-11 per step for terms of order 1, so 6 steps stay
// below 1e-9 on any CPU, four orders of magnitude under the float32 drift this test must not confuse with a
// bug (a wrongly averaged or dropped gradient moves weights by ~lr = 1e-3 in the first step).
// float32 keeps the checks that do not drift: the first step's loss and gradient norm (one forward and
// backward from the same weights; only summation order differs: relative 1e-5 is over 100× float32's unit
// roundoff times the log2 of the ~10^3 terms a loss or norm adds up).
constexpr double kFp64WeightTolerance = 1e-9;
constexpr double kFp64LossTolerance = 1e-12;  // losses are O(1) sums of O(10^3) terms: ~1e-13 in float64
constexpr double kFp32FirstStepRelTolerance = 1e-5;

TEST(TrainCli, TwoGlooRanksEqualOneProcess) {
  FUSELLM_REQUIRE_SHARED();
  Fixture fx("train_cli_gloo");
  json one = base_train();
  one["max_steps"] = 6;
  one["micro_batch"] = 4;
  one["grad_accum"] = 1;
  one["save_every"] = 0;
  one["lr"] = 1e-3;
  one["precision"] = "fp64";
  Exit single = run_cli(train_args(fx.config("one", one)), {}, fx.dir / "one.log");
  ASSERT_EQ(single.code, 0) << single.output;

  json two = one;
  two["micro_batch"] = 2;  // × 2 ranks: the same global batch of 4
  two["overlap_comm"] = false;
  json overlapped = two;
  overlapped["overlap_comm"] = true;
  overlapped["bucket_mb"] = 0.1;  // stories260K's ~2 MB of float64 gradients in about twenty buckets
  json accum = one;  // 2 ranks × 1 sequence × 2 micro-batches, all-reduced after or during the second
  accum["micro_batch"] = 1;
  accum["grad_accum"] = 2;
  accum["overlap_comm"] = false;
  json accum_overlapped = accum;
  accum_overlapped["overlap_comm"] = true;
  accum_overlapped["bucket_mb"] = 0.1;
  for (const auto& [name, train] : {std::pair<std::string, json>{"two", two}, {"two_overlap", overlapped},
                                    {"two_accum", accum}, {"two_accum_overlap", accum_overlapped}}) {
    run_two_ranks(fx, name, train);
    if (testing::Test::HasFatalFailure()) return;
  }
  const fs::path last = fs::path("checkpoints") / "step-00000006";
  EXPECT_EQ(io::SafetensorsFile(fx.dir / "one" / last / "model.safetensors").tensors().front().dtype, at::kDouble);
  const auto a = losses(fx.dir / "one");
  ASSERT_EQ(a.size(), 6u);
  for (const std::string name : {"two", "two_overlap", "two_accum", "two_accum_overlap"}) {
    SCOPED_TRACE(name);
    const auto b = losses(fx.dir / name);
    ASSERT_EQ(b.size(), 6u);
    double loss_diff = 0;
    for (size_t i = 0; i < a.size(); ++i) {
      EXPECT_NEAR(a[i].second, b[i].second, kFp64LossTolerance) << "step " << a[i].first;
      loss_diff = std::max(loss_diff, std::abs(a[i].second - b[i].second));
    }
    const auto [tensor, diff] = test::max_weight_diff(fx.dir / "one" / last, fx.dir / name / last);
    std::printf("[ fp64     ] %s vs one process: max loss difference %.3g, max weight difference %.3g (%s); "
                "tolerance %.0e\n", name.c_str(), loss_diff, diff, tensor.c_str(), kFp64WeightTolerance);
    EXPECT_LE(diff, kFp64WeightTolerance) << tensor;
  }
  // Overlap changes when the all-reduces run, not what they sum: bit for bit.
  for (const auto& [plain_run, overlap_run] : {std::pair<std::string, std::string>{"two", "two_overlap"},
                                               {"two_accum", "two_accum_overlap"}}) {
    SCOPED_TRACE(overlap_run);
    const auto plain = losses(fx.dir / plain_run), overlap = losses(fx.dir / overlap_run);
    ASSERT_EQ(plain.size(), overlap.size());
    for (size_t i = 0; i < plain.size(); ++i) EXPECT_EQ(plain[i].second, overlap[i].second) << "step " << i + 1;
    EXPECT_TRUE(test::bytes_of(fx.dir / plain_run / last / "model.safetensors") ==
                test::bytes_of(fx.dir / overlap_run / last / "model.safetensors"));
  }

  // float32: the first step agrees (see the tolerances above), and overlap is still bit for bit.
  json one32 = one, two32 = two, overlap32 = overlapped;
  for (json* j : {&one32, &two32, &overlap32}) {
    (*j)["precision"] = "fp32";
    (*j)["max_steps"] = 2;
  }
  ASSERT_EQ(run_cli(train_args(fx.config("one32", one32)), {}, fx.dir / "one32.log").code, 0);
  run_two_ranks(fx, "two32", two32);
  run_two_ranks(fx, "two32_overlap", overlap32);
  if (testing::Test::HasFatalFailure()) return;
  const auto m1 = test::metric_lines(fx.dir / "one32"), m2 = test::metric_lines(fx.dir / "two32");
  ASSERT_EQ(m1.size(), 2u);
  ASSERT_EQ(m2.size(), 2u);
  for (const char* key : {"loss", "grad_norm"}) {
    const double x = m1[0][key].get<double>(), y = m2[0][key].get<double>();
    std::printf("[ fp32     ] step 1 %s: one process %.9g, two ranks %.9g (relative %.2g)\n", key, x, y,
                std::abs(x - y) / std::abs(x));
    EXPECT_LE(std::abs(x - y), kFp32FirstStepRelTolerance * std::abs(x)) << key;
  }
  const fs::path last32 = fs::path("checkpoints") / "step-00000002";
  EXPECT_TRUE(test::bytes_of(fx.dir / "two32" / last32 / "model.safetensors") ==
              test::bytes_of(fx.dir / "two32_overlap" / last32 / "model.safetensors"));
}

TEST(TrainCli, MissingPeerTimesOutWithClearMessage) {
  FUSELLM_REQUIRE_SHARED();
  Fixture fx("train_cli_dead_peer");
  json t = base_train();
  t["dist_timeout_s"] = 3;
  Exit e = run_cli(train_args(fx.config("alone", t)),
                   {"RANK=0", "WORLD_SIZE=2", "MASTER_ADDR=127.0.0.1", "MASTER_PORT=" + std::to_string(free_port())},
                   fx.dir / "alone.log");
  EXPECT_EQ(e.code, 1) << e.output;
  EXPECT_THAT(e.output, HasSubstr("data parallel: rank 0/2"));
}

// A rank SIGKILLed in the middle of a step, of rank 0's checkpoint save, or of the gradient all-reduce:
// every other rank exits (non-zero) well within train.dist_timeout_s with one line naming the dead rank,
// and `--resume` on all ranks continues from the last complete checkpoint to the uninterrupted result.
TEST(TrainCli, DeadRankIsNamedAndResumeRecovers) {
  FUSELLM_REQUIRE_SHARED();
  Fixture fx("train_cli_dead_rank");
  json t = base_train();
  t["max_steps"] = 8;
  t["save_every"] = 2;
  t["dist_timeout_s"] = 60;
  const auto ref = test::run_ranks(fx.config("ref", t), 3, fx.dir, "ref");
  for (const Exit& e : ref) ASSERT_EQ(e.code, 0) << e.output;
  // ZeRO stage 2 reduces gradients with reduce-scatters and gathers parameters: collectives of its own.
  json t_zero = t;
  t_zero["zero_stage"] = 2;
  const auto ref_zero = test::run_ranks(fx.config("ref_zero", t_zero), 3, fx.dir, "ref_zero");
  for (const Exit& e : ref_zero) ASSERT_EQ(e.code, 0) << e.output;
  const auto final_weights = [&](const std::string& run) {
    return test::bytes_of(fx.dir / run / "checkpoints" / "step-00000008" / "model.safetensors");
  };
  struct Case { std::string name, env; int rank; std::string named; bool zero; };
  for (const Case& c : {Case{"in_step", "FUSELLM_TRAIN_KILL_IN_STEP=6", 2, "rank 2 stopped responding", false},
                        Case{"in_save", "FUSELLM_TRAIN_KILL_IN_SAVE=4", 0, "rank 0 (which serves the TCPStore) is gone", false},
                        Case{"in_collective", "FUSELLM_TRAIN_KILL_IN_COLLECTIVE=7", 1, "rank 1 stopped responding", false},
                        Case{"in_zero_collective", "FUSELLM_TRAIN_KILL_IN_COLLECTIVE=7", 1, "rank 1 stopped responding", true}}) {
    SCOPED_TRACE(c.name);
    const std::string config = fx.config(c.name, c.zero ? t_zero : t);
    const std::vector<pid_t> pids =
        test::spawn_ranks(config, 3, fx.dir, c.name, false, {c.env, "FUSELLM_KILL_RANK=" + std::to_string(c.rank)});
    // Exit times, measured from the moment the killed rank is reaped.
    std::vector<double> exited(3, -1);
    std::vector<int> status(3, 0);
    const auto start = std::chrono::steady_clock::now();
    std::optional<std::chrono::steady_clock::time_point> death;
    while (std::count(exited.begin(), exited.end(), -1.0) > 0 &&
           std::chrono::steady_clock::now() - start < std::chrono::seconds(300)) {
      for (int r = 0; r < 3; ++r) {
        if (exited[size_t(r)] >= 0 || ::waitpid(pids[size_t(r)], &status[size_t(r)], WNOHANG) != pids[size_t(r)]) continue;
        const auto now = std::chrono::steady_clock::now();
        if (r == c.rank) death = now;
        exited[size_t(r)] = std::chrono::duration<double>(now - start).count();
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(20));
    }
    ASSERT_TRUE(death) << "the killed rank did not end";
    EXPECT_TRUE(WIFSIGNALED(status[size_t(c.rank)]) && WTERMSIG(status[size_t(c.rank)]) == SIGKILL);
    const double died_at = std::chrono::duration<double>(*death - start).count();
    for (int r = 0; r < 3; ++r) {
      if (r == c.rank) continue;
      const std::string log = read_file(fx.dir / (c.name + "_rank" + std::to_string(r) + ".log"));
      ASSERT_GE(exited[size_t(r)], 0) << "rank " << r << " still running: " << log;
      EXPECT_TRUE(WIFEXITED(status[size_t(r)]) && WEXITSTATUS(status[size_t(r)]) == 1) << log;
      EXPECT_THAT(log, HasSubstr(c.named)) << "rank " << r;
      EXPECT_THAT(log, Not(HasSubstr("Exception raised from"))) << "a LibTorch trace escaped on rank " << r;
      const double after = exited[size_t(r)] - died_at;
      std::printf("[ dead rank ] %s: rank %d killed, rank %d exited %.2f s later\n", c.name.c_str(), c.rank, r, after);
      EXPECT_LT(after, 60.0) << "not within dist_timeout_s";
    }
    const auto resumed = test::run_ranks(config, 3, fx.dir, c.name + "_resume", /*resume=*/true);
    for (const Exit& e : resumed) ASSERT_EQ(e.code, 0) << e.output;
    EXPECT_THAT(resumed[0].output, HasSubstr("resumed from"));
    EXPECT_TRUE(final_weights(c.name) == final_weights(c.zero ? "ref_zero" : "ref"));
  }
}

TEST(TrainCli, ConfigErrorsAreClearAndEarly) {
  FUSELLM_REQUIRE_SHARED();
  Fixture fx("train_cli_config");
  json typo = base_train();
  typo["warmup_ratoi"] = 0.1;
  Exit e = run_cli(train_args(fx.config("typo", typo)), {}, fx.dir / "typo.log");
  EXPECT_EQ(e.code, 1);
  EXPECT_THAT(e.output, HasSubstr("train.warmup_ratoi: unknown key (did you mean 'warmup_ratio'?)"));
  json bad_type = base_train();
  bad_type["micro_batch"] = "two";
  e = run_cli(train_args(fx.config("bad_type", bad_type)), {}, fx.dir / "bad_type.log");
  EXPECT_EQ(e.code, 1);
  EXPECT_THAT(e.output, HasSubstr("train.micro_batch: expected an integer > 0"));
  json too_long = base_train();
  too_long["max_length"] = 1024;
  e = run_cli(train_args(fx.config("too_long", too_long)), {}, fx.dir / "too_long.log");
  EXPECT_EQ(e.code, 1);
  EXPECT_THAT(e.output, HasSubstr("train.max_length 1024 exceeds the target model's context of 512"));
  EXPECT_FALSE(fs::exists(fx.dir / "too_long"));  // refused before any work
}

}  // namespace
}  // namespace fusellm
