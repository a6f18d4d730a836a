// The `train` section: defaults, every problem reported with its key path, typo suggestions, and
// settings that cannot fit the model refused before any work.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "fusellm/model/causal_lm.hpp"
#include "fusellm/train/train_config.hpp"
#include "fusellm/train/trainer.hpp"
#include "fusellm/util/experiment_config.hpp"
#include "train/train_test_util.hpp"

namespace fusellm::train {
namespace {

using testing::HasSubstr;

TEST(TrainConfig, ParsesKeysAndDefaults) {
  json j = json::parse(R"({"lr": 2e-5, "betas": [0.9, 0.95], "schedule": "linear", "warmup_steps": 7,
                           "micro_batch": 3, "grad_accum": 4, "output_dir": "runs/a"})");
  TrainConfig c = parse_train_config(j, "exp.json", "/cfg", "exp");
  EXPECT_DOUBLE_EQ(c.lr, 2e-5);
  EXPECT_DOUBLE_EQ(c.beta2, 0.95);
  EXPECT_EQ(c.schedule, Schedule::Linear);
  EXPECT_EQ(c.warmup_steps, 7);
  EXPECT_EQ(c.global_batch(2), 24);
  EXPECT_EQ(c.output_dir, fs::path("/cfg/runs/a"));
  EXPECT_EQ(parse_train_config(json(), "exp.json", "/cfg", "exp").output_dir, fs::path("/cfg/out/exp/train"));
}

TEST(TrainConfig, ReportsEveryProblemWithKeyPath) {
  json j = json::parse(R"({"warmup_ratoi": 0.1, "lr": "fast", "schedule": "step", "betas": [0.9], "micro_batch": 0})");
  try {
    parse_train_config(j, "exp.json", "/cfg", "exp");
    FAIL() << "no error";
  } catch (const ConfigError& e) {
    EXPECT_EQ(e.problems().size(), 5u) << e.what();
    const std::string all = e.what();
    EXPECT_THAT(all, HasSubstr("exp.json: train.warmup_ratoi: unknown key (did you mean 'warmup_ratio'?)"));
    EXPECT_THAT(all, HasSubstr("train.lr: expected a number > 0, got \"fast\""));
    EXPECT_THAT(all, HasSubstr("train.schedule: expected one of 'cosine', 'linear', 'constant'"));
    EXPECT_THAT(all, HasSubstr("train.betas"));
    EXPECT_THAT(all, HasSubstr("train.micro_batch: expected an integer > 0, got 0"));
  }
}

TEST(TrainConfig, MaxLengthBeyondContextIsRefused) {
  FUSELLM_REQUIRE_SHARED();
  model::ModelConfig mc = model::read_model_config(test::stories_dir());
  TrainConfig c;
  c.max_length = 1024;
  try {
    check_fits(c, mc, 100, 1, "exp.json");
    FAIL() << "no error";
  } catch (const Error& e) {
    EXPECT_THAT(e.what(), HasSubstr("train.max_length 1024 exceeds the target model's context of 512"));
  }
  c.max_length = 64;
  c.micro_batch = 8;
  EXPECT_THROW(check_fits(c, mc, 7, 1, "exp.json"), Error);
  EXPECT_NO_THROW(check_fits(c, mc, 8, 1, "exp.json"));
}

}  // namespace
}  // namespace fusellm::train
