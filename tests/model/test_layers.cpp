// Shared layers against the values the golden README and golden.json "derived" sections state
// (slopes, inv_freq, ALiBi bias rows, the sliding-window rule), plus training hooks on a real model.
#include <gtest/gtest.h>

#include <limits>

#include "common/test_paths.hpp"
#include "fusellm/model/causal_lm.hpp"
#include "fusellm/model/layers.hpp"
#include "model_test_util.hpp"

namespace fusellm::test {
namespace {

json derived(const std::string& variant) {
  return parse_json_file(shared_dir() / "golden" / "models" / variant / "golden.json")["meta"]["derived"];
}

TEST(ModelLayers, AlibiSlopesPowerOfTwoAndNot) {
  // README: H = 4 → [1/4, 1/16, 1/64, 1/256]; H = 6 → [1/4, 1/16, 1/64, 1/256, 1/2, 1/8].
  EXPECT_EQ(model::alibi_slopes(4), (std::vector<double>{0.25, 0.0625, 0.015625, 0.00390625}));
  EXPECT_EQ(model::alibi_slopes(6), (std::vector<double>{0.25, 0.0625, 0.015625, 0.00390625, 0.5, 0.125}));
  EXPECT_EQ(model::alibi_slopes(8), (std::vector<double>{0.5, 0.25, 0.125, 0.0625, 0.03125, 0.015625, 0.0078125,
                                                         0.00390625}));
}

TEST(ModelLayers, AlibiSlopesMatchGoldenDerived) {
  FUSELLM_REQUIRE_SHARED();
  EXPECT_EQ(model::alibi_slopes(6, 8.0), derived("mpt-clip-h6")["alibi_slopes"].get<std::vector<double>>());
}

TEST(ModelLayers, AlibiBiasRowRelativeToLastKey) {
  FUSELLM_REQUIRE_SHARED();
  // One query at absolute index 4 over 5 keys (4 cached): head 0's row is slope · (j − 4).
  model::AttentionMasks masks(at::Tensor(), 1, 1, 4, at::kFloat, at::kCPU, model::alibi_slopes(6));
  at::Tensor row = masks.get().select(1, 0).view({-1});
  EXPECT_TRUE(all_close(row, derived("mpt-clip-h6")["alibi_bias_row_for_key_len_5_head0"].get<std::vector<double>>(),
                        1e-7));
}

TEST(ModelLayers, CausalSlidingWindowAndPaddingMask) {
  // Window 8: query 9 sees keys 2..9 (W keys including itself); key 11 is padding.
  at::Tensor padding = at::ones({1, 12}, at::kLong);
  padding[0][11] = 0;
  model::AttentionMasks masks(padding, 1, 12, 0, at::kFloat, at::kCPU);
  at::Tensor windowed = masks.get(8)[0][0];
  const float lowest = std::numeric_limits<float>::lowest();
  for (int64_t j = 0; j < 12; ++j) {
    const bool visible = j >= 2 && j <= 9;
    EXPECT_EQ(windowed[9][j].item<float>(), visible ? 0.0f : lowest) << "key " << j;
  }
  at::Tensor causal = masks.get(0)[0][0];
  EXPECT_EQ(causal[11][10].item<float>(), 0.0f);
  EXPECT_EQ(causal[11][11].item<float>(), lowest);  // padding key, masked with finfo.min, not -inf
  EXPECT_EQ(causal[3][4].item<float>(), lowest);    // future key
  EXPECT_EQ(model::lowest_value(at::kBFloat16), static_cast<double>(std::numeric_limits<c10::BFloat16>::lowest()));
}

TEST(ModelLayers, RopeInverseFrequencies) {
  FUSELLM_REQUIRE_SHARED();
  // gpt_neox-tiny: rotary on 6 of 24 dims, exponent over the rotary dimension.
  model::RopeSpec neox{6, 10000.0, 1.0};
  EXPECT_TRUE(all_close(model::rope_inv_freq(neox), derived("gpt_neox-tiny")["inv_freq"].get<std::vector<double>>(),
                        1e-7, 1e-6));
  // llama-rope-linear: rope_scaling read from its config.json (both "type" and "rope_type" present).
  auto config = parse_json_file(shared_dir() / "golden" / "models" / "llama-rope-linear" / "config.json");
  auto spec = model::read_rope_spec(JsonView(config, "config.json"), 8, 10000.0);
  EXPECT_EQ(spec.linear_factor, 2.0);
  EXPECT_TRUE(all_close(model::rope_inv_freq(spec),
                        derived("llama-rope-linear")["inv_freq (after rope scaling)"].get<std::vector<double>>(), 1e-7,
                        1e-6));
}

TEST(ModelLayers, RopeScalingKeys) {
  auto older = json::parse(R"({"rope_scaling": {"type": "linear", "factor": 4.0}})");
  EXPECT_EQ(model::read_rope_spec(JsonView(older, "old/config.json"), 8, 1e4).linear_factor, 4.0);
  auto unsupported = json::parse(R"({"rope_scaling": {"rope_type": "yarn", "factor": 4.0}})");
  try {
    model::read_rope_spec(JsonView(unsupported, "x/config.json"), 8, 1e4);
    FAIL() << "yarn accepted";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("x/config.json"), std::string::npos) << e.what();
    EXPECT_NE(std::string(e.what()).find("yarn"), std::string::npos) << e.what();
  }
}

TEST(ModelLayers, ApplyRopeRotatesOnlyTheRotaryDims) {
  // Position 0 is the identity; the pass-through dims are never touched.
  model::RopeSpec spec{4, 10000.0, 1.0};
  at::Tensor x = at::randn({1, 2, 3, 6});
  auto tables = model::rope_cos_sin(spec, at::arange(3, at::kLong).view({1, 3}), at::kFloat);
  at::Tensor y = model::apply_rope(x, tables.first, tables.second);
  EXPECT_TRUE(at::allclose(y.select(2, 0), x.select(2, 0)));
  EXPECT_TRUE(at::equal(y.narrow(-1, 4, 2), x.narrow(-1, 4, 2)));
  // rotate_half pairs (i, i + rot/2): position 1, dims 0 and 2 rotate by angle inv_freq[0] = 1.
  const double c = std::cos(1.0), s = std::sin(1.0);
  const double x0 = x[0][0][1][0].item<double>(), x2 = x[0][0][1][2].item<double>();
  EXPECT_NEAR(y[0][0][1][0].item<double>(), x0 * c - x2 * s, 1e-6);
  EXPECT_NEAR(y[0][0][1][2].item<double>(), x2 * c + x0 * s, 1e-6);
}

// Training readiness: gradients reach every parameter, and block_runner wraps every block.
TEST(ModelLayers, GradientsAndBlockRunner) {
  FUSELLM_REQUIRE_SHARED();
  for (const char* variant : {"llama-rope-linear", "mpt-tiny", "gpt_neox-tiny"}) {
    SCOPED_TRACE(variant);
    auto lm = model::load_model(shared_dir() / "golden" / "models" / variant);
    for (auto& [name, tensor] : lm->parameters()) tensor.requires_grad_(true);
    model::ForwardArgs args;
    args.input_ids = at::randint(0, lm->config().vocab_size, {2, 7}, at::kLong);
    at::Tensor plain = lm->forward(args);
    int64_t calls = 0;
    args.block_runner = [&](int64_t layer, const model::BlockFn& block, const at::Tensor& h) {
      EXPECT_EQ(layer, calls);
      ++calls;
      return block(h);
    };
    at::Tensor logits = lm->forward(args);
    EXPECT_EQ(calls, lm->config().num_layers);
    EXPECT_TRUE(at::equal(plain, logits));
    at::log_softmax(logits, -1).mean().backward();
    for (const auto& [name, tensor] : lm->parameters()) {
      ASSERT_TRUE(tensor.grad().defined()) << name;
      EXPECT_GT(tensor.grad().abs().sum().item<double>(), 0.0) << name;
    }
  }
}

}  // namespace
}  // namespace fusellm::test
