// The whole FuseLLM pipeline through the CLI, as a user runs it: three source models of three families
// and three real tokenizers — stories260K (llama, its 512-token SentencePiece), a tiny GPT-NeoX with the
// GPT-NeoX-20B tokenizer, a tiny MPT with the GPT-2 BPE — and stories260K as the target:
// prepare → infer (each model) → align → train with λ·CLM + (1−λ)·fusion. The NeoX and MPT models are
// freshly initialized (model::write_random_model), so MinCE mostly picks stories260K: the pipeline's
// mechanics are under test here, the fusion math is tested in tests/fusion against dense references.
// Checks: the loss falls; a run killed with SIGKILL and resumed logs the same per-step losses bit for bit
// and ends with identical weights; two Gloo ranks equal one process; a store for another target and a
// chunk longer than train.max_length are clear errors before any training.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <signal.h>

#include <cmath>
#include <cstdio>
#include <fstream>

#include "common/run_cli.hpp"
#include "common/tiny_sources.hpp"
#include "common/test_paths.hpp"
#include "common/train_cli_util.hpp"
#include "fusellm/model/random_init.hpp"
#include "fusellm/tokenizer/tokenizer.hpp"
#include "teacher/infer_test_util.hpp"

namespace fusellm {
namespace {

using testing::HasSubstr;
using test::Exit;

class FusionPipeline : public testing::Test {
 protected:
  static fs::path dir_;
  static std::string setup_error_;

  static void SetUpTestSuite() {
    if (!fs::exists(test::shared_dir()) || !fs::exists(test::cli_path())) return;
    dir_ = test::scratch_dir("fusion_pipeline");
    fs::create_directories(dir_);
    try {
      test::make_neox_source(dir_ / "neox-tiny");
      test::make_mpt_source(dir_ / "mpt-gpt2");
    } catch (const std::exception& e) {
      setup_error_ = e.what();
      return;
    }
    const fs::path corpus = test::write_small_corpus(dir_, 6000);
    const std::string config = write_config("pipeline", base_train(), base_fusion());
    for (const std::string stage : {"prepare", "infer", "align"}) {
      std::vector<std::string> args = {stage, "--config", config};
      if (stage != "prepare") args.push_back("--no-progress");
      Exit e = test::run_cli_env(args, {}, dir_ / (stage + ".log"));
      if (e.code != 0) {
        setup_error_ = stage + " failed: " + e.output;
        return;
      }
    }
    (void)corpus;
  }

  static json base_train() {
    return {{"lr", 3e-3}, {"warmup_steps", 2}, {"max_steps", 12}, {"micro_batch", 2}, {"grad_accum", 2},
            {"max_length", 64}, {"save_every", 4}, {"keep_last", 2}, {"log_every", 4}, {"weight_decay", 0.01}};
  }
  static json base_fusion() { return {{"strategy", "minCE"}, {"divergence", "ce"}, {"lambda", 0.9}}; }

  // An experiment config in the scratch dir; train.output_dir = dir/<name>. `target` names the target model.
  static std::string write_config(const std::string& name, json train, const json& fusion,
                                  const std::string& target = "stories") {
    train["output_dir"] = (dir_ / name).string();
    const std::string stories = test::stories_model_dir().string();
    json models = json::array();
    models.push_back({{"name", "stories-target"}, {"path", stories}, {"role", target == "stories" ? "target" : "source"}});
    models.push_back({{"name", "stories-source"}, {"path", stories}, {"role", "source"}});
    models.push_back({{"name", "neox-tiny"}, {"path", (dir_ / "neox-tiny").string()},
                      {"role", target == "neox" ? "target" : "source"}});
    models.push_back({{"name", "mpt-gpt2"}, {"path", (dir_ / "mpt-gpt2").string()}, {"role", "source"}});
    json c = {{"models", models},
              {"data", {{"corpus", (dir_ / "corpus.txt").string()}, {"txt_mode", "separator"},
                        {"chunk_dir", (dir_ / "chunks").string()}, {"max_length", 64}}},
              {"infer", {{"store_dir", (dir_ / "store").string()}, {"top_k", 10}, {"batch_tokens", 1024},
                         {"dtype", "fp32"}}},
              {"align", {{"out_dir", (dir_ / "aligned").string()}}},
              {"fusion", fusion},
              {"train", train}};
    const fs::path file = dir_ / (name + ".json");
    std::ofstream(file) << c.dump(2) << "\n";
    return file.string();
  }

  void SetUp() override {
    FUSELLM_REQUIRE_SHARED();
    if (!fs::exists(test::cli_path())) GTEST_SKIP() << test::cli_path() << " not built";
    ASSERT_TRUE(setup_error_.empty()) << setup_error_;
  }
};

fs::path FusionPipeline::dir_;
std::string FusionPipeline::setup_error_;

TEST_F(FusionPipeline, ThreeSourcesTrainAndResumeAfterKillIsBitIdentical) {
  // The aligned store holds the three sources and the target, all over the target's vocabulary.
  Exit inspect = test::run_cli_env({"inspect", (dir_ / "aligned").string()}, {}, dir_ / "inspect.log");
  ASSERT_EQ(inspect.code, 0) << inspect.output;
  for (const char* name : {"stories-source", "neox-tiny", "mpt-gpt2"}) EXPECT_THAT(inspect.output, HasSubstr(name));

  const std::string ref_config = write_config("ref", base_train(), base_fusion());
  Exit ref = test::run_cli_env(test::train_args(ref_config), {}, dir_ / "ref.log");
  ASSERT_EQ(ref.code, 0) << ref.output;
  EXPECT_THAT(ref.output, HasSubstr("aligned store"));
  const auto lines = test::metric_lines(dir_ / "ref");
  ASSERT_EQ(lines.size(), 12u);
  for (const json& m : lines) {
    const double loss = m["loss"], clm = m["clm"], fusion = m["fusion"];
    EXPECT_GT(fusion, 0.0) << m.dump();
    EXPECT_NEAR(loss, 0.9 * clm + 0.1 * fusion, 1e-4 * loss) << m.dump();
    EXPECT_GT(m["tflops"].get<double>(), 0.0) << m.dump();
    EXPECT_TRUE(m["mfu"].is_null()) << "a CPU has no known peak without train.peak_tflops: " << m.dump();
  }
  auto mean = [&](size_t from, size_t to, const char* key) {
    double s = 0;
    for (size_t i = from; i < to; ++i) s += lines[i][key].get<double>();
    return s / double(to - from);
  };
  // The fusion term need not fall here: its MinCE pick is mostly stories260K, the target's own initial
  // distribution, which CLM training on this corpus moves away from.
  EXPECT_LT(mean(9, 12, "loss"), mean(0, 3, "loss"));
  EXPECT_LT(mean(9, 12, "clm"), mean(0, 3, "clm"));

  // Killed after step 6 (checkpoint at 4), resumed: the same losses bit for bit and the same weights.
  const std::string config = write_config("killed", base_train(), base_fusion());
  Exit killed = test::run_cli_env(test::train_args(config), {"FUSELLM_TRAIN_KILL_AT_STEP=6"}, dir_ / "killed.log");
  ASSERT_TRUE(killed.killed) << killed.output;
  EXPECT_EQ(killed.code, SIGKILL);
  Exit resumed = test::run_cli_env(test::train_args(config, true), {}, dir_ / "resumed.log");
  ASSERT_EQ(resumed.code, 0) << resumed.output;
  EXPECT_THAT(resumed.output, HasSubstr("resumed from"));
  const auto want = test::step_losses(dir_ / "ref"), got = test::step_losses(dir_ / "killed");
  ASSERT_EQ(got.size(), want.size());
  for (size_t i = 0; i < got.size(); ++i) EXPECT_EQ(got[i].second, want[i].second) << "step " << got[i].first;
  const fs::path last = fs::path("checkpoints") / "step-00000012" / "model.safetensors";
  EXPECT_TRUE(test::bytes_of(dir_ / "ref" / last) == test::bytes_of(dir_ / "killed" / last));

  // The trained HF directory scores text with the CLI (config, weights and tokenizer files all there).
  Exit score = test::run_cli_env({"score", "--model", (dir_ / "ref" / "checkpoints" / "step-00000012").string(), "--text",
                                  "Once upon a time"}, {}, dir_ / "score.log");
  EXPECT_EQ(score.code, 0) << score.output;
}

// Two ranks equal one process with fusion: compared in float64, where a different summation order moves
// weights by < 1e-9 after a few AdamW steps on any CPU (the derivation is in test_train_cli.cpp's
// TwoGlooRanksEqualOneProcess; float32 drifted by up to 1.85e-5 on AMD EPYC), and in float32 on the first
// step only, before any update can amplify rounding.
TEST_F(FusionPipeline, TwoGlooRanksEqualOneProcess) {
  json one = base_train();
  one["max_steps"] = 4;
  one["micro_batch"] = 4;
  one["grad_accum"] = 1;
  one["save_every"] = 0;
  one["lr"] = 1e-3;
  one["precision"] = "fp64";
  json two = one;
  two["micro_batch"] = 2;  // × 2 ranks: the same global batch of 4
  json one32 = one, two32 = two;
  one32["precision"] = two32["precision"] = "fp32";
  one32["max_steps"] = two32["max_steps"] = 1;
  for (const auto& [name, train] : {std::pair<std::string, json>{"one", one}, {"one32", one32}}) {
    Exit single = test::run_cli_env(test::train_args(write_config(name, train, base_fusion())), {}, dir_ / (name + ".log"));
    ASSERT_EQ(single.code, 0) << single.output;
  }
  for (const auto& [name, train] : {std::pair<std::string, json>{"two", two}, {"two32", two32}})
    for (const Exit& e : test::run_ranks(write_config(name, train, base_fusion()), 2, dir_, name))
      ASSERT_EQ(e.code, 0) << e.output;
  const auto a = test::metric_lines(dir_ / "one"), b = test::metric_lines(dir_ / "two");
  ASSERT_EQ(a.size(), 4u);
  ASSERT_EQ(b.size(), 4u);
  for (size_t i = 0; i < a.size(); ++i)
    for (const char* key : {"loss", "clm", "fusion"})
      EXPECT_NEAR(a[i][key].get<double>(), b[i][key].get<double>(), 1e-12) << key << " step " << i + 1;
  const fs::path last = fs::path("checkpoints") / "step-00000004";
  const auto [tensor, diff] = test::max_weight_diff(dir_ / "one" / last, dir_ / "two" / last);
  std::printf("[ fp64     ] fusion, two ranks vs one process: max weight difference %.3g (%s); tolerance 1e-9\n",
              diff, tensor.c_str());
  EXPECT_LE(diff, 1e-9) << tensor;
  // float32, first step: relative 1e-5 (100× float32's roundoff times the log2 of the terms summed).
  const auto a32 = test::metric_lines(dir_ / "one32"), b32 = test::metric_lines(dir_ / "two32");
  ASSERT_EQ(a32.size(), 1u);
  ASSERT_EQ(b32.size(), 1u);
  for (const char* key : {"loss", "clm", "fusion", "grad_norm"}) {
    const double x = a32[0][key].get<double>(), y = b32[0][key].get<double>();
    EXPECT_LE(std::abs(x - y), 1e-5 * std::abs(x)) << key;
  }
}

TEST_F(FusionPipeline, MismatchesAreClearErrorsBeforeTraining) {
  // The store was aligned onto stories260K's vocabulary; a config whose target is the NeoX model must not
  // train on it.
  Exit other = test::run_cli_env(test::train_args(write_config("other_target", base_train(), base_fusion(), "neox")),
                                 {}, dir_ / "other_target.log");
  EXPECT_EQ(other.code, 1) << other.output;
  EXPECT_THAT(other.output, HasSubstr("aligned store made for target 'stories-target'"));
  EXPECT_FALSE(fs::exists(dir_ / "other_target" / "metrics.jsonl"));

  // Chunks of up to 64 tokens do not fit sequences of 32.
  json short_train = base_train();
  short_train["max_length"] = 32;
  Exit too_long = test::run_cli_env(test::train_args(write_config("too_long", short_train, base_fusion())), {},
                                    dir_ / "too_long.log");
  EXPECT_EQ(too_long.code, 1) << too_long.output;
  EXPECT_THAT(too_long.output, HasSubstr("more than train.max_length 32"));

  // A typo in the fusion section names the key and the likely intended one.
  json typo = base_fusion();
  typo["stratgy"] = "avgCE";
  Exit bad_key = test::run_cli_env(test::train_args(write_config("typo", base_train(), typo)), {}, dir_ / "typo.log");
  EXPECT_EQ(bad_key.code, 1) << bad_key.output;
  EXPECT_THAT(bad_key.output, HasSubstr("fusion.stratgy: unknown key (did you mean 'strategy'?)"));

  // A missing aligned store points at the stage to run.
  json elsewhere = base_fusion();
  elsewhere["aligned_store"] = (dir_ / "no-such-store").string();
  Exit missing = test::run_cli_env(test::train_args(write_config("missing", base_train(), elsewhere)), {},
                                   dir_ / "missing.log");
  EXPECT_EQ(missing.code, 1) << missing.output;
  EXPECT_THAT(missing.output, HasSubstr("run `fusellm align"));
}

}  // namespace
}  // namespace fusellm
