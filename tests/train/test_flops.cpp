// MFU's FLOP count: the PaLM formula on Llama-2 7B's published shape, and the matmul parameter count of a
// real checkpoint computed by hand from its config.
#include <gtest/gtest.h>

#include "fusellm/train/flops.hpp"
#include "train/train_test_util.hpp"

namespace fusellm::train {
namespace {

TEST(Flops, PalmFormulaOnLlama2_7B) {
  // Llama-2 7B: 32 layers, d = 4096, 32 heads × 128; 6,738,415,616 parameters of which the 32000 × 4096
  // input embedding is a lookup.
  model::ModelConfig c;
  c.num_layers = 32;
  c.hidden_size = 4096;
  c.num_heads = 32;
  c.head_dim = 128;
  const int64_t n = 6738415616LL - 32000LL * 4096;
  const double per_token = training_flops_per_token(n, c, 2048);
  EXPECT_DOUBLE_EQ(per_token, 6.0 * 6607343616.0 + 12.0 * 32 * 4096 * 2048);
  // ≈ 4.29e10 FLOPs per token: 128 × 2048 tokens per step is ≈ 1.12e16 FLOPs.
  EXPECT_NEAR(per_token * 128 * 2048 / 1e16, 1.126, 0.01);
  EXPECT_FALSE(peak_flops(at::kCPU, 0).has_value());
  EXPECT_DOUBLE_EQ(*peak_flops(at::kCPU, 0.15), 0.15e12);
}

TEST(Flops, MatmulParametersOfStories260K) {
  FUSELLM_REQUIRE_SHARED();
  auto model = model::load_model(test::stories_dir());
  // Tied embeddings: the table is the LM head, counted once; per layer q (64·64), k and v (32·64 each:
  // 4 kv heads × 8), o (64·64), gate/up/down (3 · 172·64), two norms (2·64); final norm 64.
  const int64_t per_layer = 64 * 64 + 2 * 32 * 64 + 64 * 64 + 3 * 172 * 64 + 2 * 64;
  EXPECT_EQ(matmul_parameters(*model), 512 * 64 + 5 * per_layer + 64);
}

}  // namespace
}  // namespace fusellm::train
