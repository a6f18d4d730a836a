// The experiment configs shipped in configs/ parse and validate in every section the training stage reads
// (a renamed key would otherwise only surface when a user runs them).
#include <gtest/gtest.h>

#include "common/test_paths.hpp"
#include "fusellm/align/align_run.hpp"
#include "fusellm/train/train_run.hpp"

namespace fusellm::train {
namespace {

TEST(ShippedConfigs, EveryConfigValidates) {
  int checked = 0;
  for (const auto& entry : fs::directory_iterator(test::source_dir() / "configs")) {
    if (entry.path().extension() != ".json") continue;
    SCOPED_TRACE(entry.path().string());
    const ExperimentConfig config = load_experiment_config(entry.path());
    const TrainConfig train = train_config_of(config);
    EXPECT_GT(train.max_length, 0);
    const auto fusion = fusion_settings_of(config);
    if (fusion) EXPECT_FALSE(fusion->aligned_store.empty());
    auto align = config.reserved_sections.find("align");
    EXPECT_NO_THROW(align::align_settings_from_json(align == config.reserved_sections.end() ? json() : align->second,
                                                    entry.path().string(), config.config_dir,
                                                    config.infer.store_dir));
    ++checked;
  }
  EXPECT_GE(checked, 4);
}

TEST(ShippedConfigs, PaperRecipe) {
  const ExperimentConfig config = load_experiment_config(test::source_dir() / "configs" / "fusellm-paper.json");
  const TrainConfig t = train_config_of(config);
  EXPECT_DOUBLE_EQ(t.lr, 1e-5);
  EXPECT_DOUBLE_EQ(t.warmup_ratio, 0.008);
  EXPECT_DOUBLE_EQ(t.beta2, 0.95);
  EXPECT_DOUBLE_EQ(t.weight_decay, 0.1);
  EXPECT_EQ(t.global_batch(8), 128);
  EXPECT_EQ(t.max_length, 2048);
  EXPECT_EQ(t.precision, "bf16");
  EXPECT_TRUE(t.activation_checkpointing);
  const auto f = fusion_settings_of(config);
  ASSERT_TRUE(f.has_value());
  EXPECT_EQ(f->strategy, fusion::Strategy::MinCE);
  EXPECT_DOUBLE_EQ(f->lambda, 0.9);
  EXPECT_EQ(config.sources().size(), 3u);
}

// The official run's variant (docs/paper-configs.md): DeepSpeed's WarmupDecayLR and torch's AdamW betas,
// the rest as the paper's text, the same chunks and source stores.
TEST(ShippedConfigs, OfficialRunVariant) {
  const ExperimentConfig paper = load_experiment_config(test::source_dir() / "configs" / "fusellm-paper.json");
  const ExperimentConfig official = load_experiment_config(test::source_dir() / "configs" / "fusellm-paper-official.json");
  const TrainConfig p = train_config_of(paper), o = train_config_of(official);
  EXPECT_EQ(o.schedule, Schedule::WarmupDecay);
  EXPECT_DOUBLE_EQ(o.beta1, 0.9);
  EXPECT_DOUBLE_EQ(o.beta2, 0.999);
  EXPECT_DOUBLE_EQ(o.eps, 1e-8);
  EXPECT_EQ(p.schedule, Schedule::Cosine);
  EXPECT_DOUBLE_EQ(o.lr, p.lr);
  EXPECT_DOUBLE_EQ(o.warmup_ratio, p.warmup_ratio);
  EXPECT_DOUBLE_EQ(o.weight_decay, p.weight_decay);
  EXPECT_EQ(o.global_batch(8), p.global_batch(8));
  EXPECT_EQ(official.data.chunk_dir, paper.data.chunk_dir);
  EXPECT_EQ(official.infer.store_dir, paper.infer.store_dir);
  EXPECT_NE(o.output_dir, p.output_dir);
}

}  // namespace
}  // namespace fusellm::train
