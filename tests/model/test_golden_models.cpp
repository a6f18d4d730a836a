// Every family against the float64 golden vectors in ../shared/golden/models (see its README): logits,
// sums, loss, argmax on right-padded batches, full-position logits, greedy continuation with and without
// the KV cache, and padded-batch incremental decoding through the cache.
#include <gtest/gtest.h>

#include "common/test_paths.hpp"
#include "fusellm/io/safetensors.hpp"
#include "fusellm/model/causal_lm.hpp"
#include "model_test_util.hpp"

namespace fusellm::test {
namespace {

// README tolerances: each logit abs 1e-4 + 1e-5·|ref|; sums 2e-3 (double accumulation); loss 2e-5.
constexpr double kLogitAbs = 1e-4, kLogitRel = 1e-5, kSumAbs = 2e-3, kLossAbs = 2e-5;

class GoldenModel : public ::testing::TestWithParam<std::string> {
 protected:
  void SetUp() override {
    FUSELLM_REQUIRE_SHARED();
    dir_ = shared_dir() / "golden" / "models" / GetParam();
    golden_ = parse_json_file(dir_ / "golden.json");
    model_ = model::load_model(dir_);
  }

  std::vector<int64_t> lengths(const json& c) const { return c["lengths"].get<std::vector<int64_t>>(); }

  at::Tensor full_forward(const json& c) {
    at::NoGradGuard no_grad;
    model::ForwardArgs args;
    args.input_ids = int_matrix(c["input_ids"]);
    args.attention_mask = int_matrix(c["attention_mask"]);
    return model_->forward(args);
  }

  fs::path dir_;
  json golden_;
  std::unique_ptr<model::CausalLM> model_;
};

TEST_P(GoldenModel, ConfigAndParameters) {
  EXPECT_EQ(model_->config().model_type, golden_["meta"]["model_type"].get<std::string>());
  EXPECT_EQ(model_->dtype(), at::kFloat);
  EXPECT_EQ(model_->config().head_dim, golden_["meta"]["derived"]["head_dim"].get<int64_t>());
}

TEST_P(GoldenModel, PaddedBatchLogitsSumsAndLoss) {
  for (const auto& c : golden_["cases"]) {
    SCOPED_TRACE(c["name"].get<std::string>());
    const auto len = lengths(c);
    at::Tensor logits = full_forward(c);
    ASSERT_EQ(logits.scalar_type(), at::kFloat);
    ASSERT_EQ(logits.dim(), 3);
    for (size_t b = 0; b < len.size(); ++b) {
      at::Tensor last = logits[b][len[b] - 1];
      EXPECT_TRUE(all_close(last, doubles(c["logits_last"][b]), kLogitAbs, kLogitRel)) << "logits_last row " << b;
      EXPECT_EQ(last.argmax().item<int64_t>(), c["argmax_last"][b].get<int64_t>()) << "argmax_last row " << b;
    }
    for (const auto& sample : c["logits_sample"]) {
      at::Tensor values = logits[sample["seq"].get<int64_t>()][sample["pos"].get<int64_t>()].narrow(0, 0, 8);
      EXPECT_TRUE(all_close(values, doubles(sample["values"]), kLogitAbs, kLogitRel)) << sample["name"];
    }
    double total = 0.0;
    for (size_t b = 0; b < len.size(); ++b) {
      const double row = logits[b].narrow(0, 0, len[b]).to(at::kDouble).sum().item<double>();
      EXPECT_NEAR(row, c["logits_sum_per_seq"][b].get<double>(), kSumAbs) << "logits_sum_per_seq row " << b;
      total += row;
    }
    EXPECT_NEAR(total, c["logits_sum"].get<double>(), kSumAbs);

    auto [loss, per_row] = shifted_cross_entropy(logits, int_matrix(c["input_ids"]), len);
    EXPECT_NEAR(loss, c["loss"].get<double>(), kLossAbs);
    for (size_t b = 0; b < len.size(); ++b)
      EXPECT_NEAR(per_row[b], c["loss_per_seq"][b].get<double>(), kLossAbs) << "loss_per_seq row " << b;
  }
}

TEST_P(GoldenModel, LogitsAtEveryRealPosition) {
  if (!fs::exists(dir_ / "logits_full.safetensors")) GTEST_SKIP() << "no logits_full.safetensors";
  io::SafetensorsFile full(dir_ / "logits_full.safetensors");
  for (size_t ci = 0; ci < golden_["cases"].size(); ++ci) {
    const auto& c = golden_["cases"][ci];
    const auto len = lengths(c);
    at::Tensor logits = full_forward(c);
    for (size_t b = 0; b < len.size(); ++b) {
      at::Tensor ref = full.load("case" + std::to_string(ci) + ".seq" + std::to_string(b)).to(at::kDouble);
      ASSERT_EQ(ref.size(0), len[b]);
      std::vector<double> ref_values(ref.data_ptr<double>(), ref.data_ptr<double>() + ref.numel());
      EXPECT_TRUE(all_close(logits[b].narrow(0, 0, len[b]), ref_values, kLogitAbs, kLogitRel))
          << "case " << ci << " row " << b;
    }
  }
}

TEST_P(GoldenModel, GreedyContinuationWithAndWithoutCache) {
  const auto& g = golden_["cases"][0]["greedy_continuation"];
  const auto prompt = g["prompt_ids"].get<std::vector<int64_t>>();
  const auto expected = g["tokens"].get<std::vector<int64_t>>();
  const int64_t steps = g["max_new_tokens"].get<int64_t>();
  for (bool use_cache : {true, false}) {
    SCOPED_TRACE(use_cache ? "with KV cache" : "full recompute");
    GreedyRun run = greedy(*model_, prompt, steps, use_cache);
    EXPECT_EQ(run.tokens, expected);
    EXPECT_TRUE(all_close(run.step_logits.front().narrow(0, 0, 8), doubles(g["first_step_logits_first8"]), kLogitAbs,
                          kLogitRel));
    EXPECT_TRUE(all_close(run.step_logits.back().narrow(0, 0, 8), doubles(g["last_step_logits_first8"]), kLogitAbs,
                          kLogitRel));
  }
}

// Prefill a right-padded batch partly, then feed one column per step through the cache (the cache keeps
// the padding mask): every real position must match the full forward's reference logits.
TEST_P(GoldenModel, PaddedBatchIncrementalDecodeMatchesFullForward) {
  if (!fs::exists(dir_ / "logits_full.safetensors")) GTEST_SKIP() << "no logits_full.safetensors";
  io::SafetensorsFile full(dir_ / "logits_full.safetensors");
  at::NoGradGuard no_grad;
  const auto& c = golden_["cases"][1];
  const auto len = lengths(c);
  at::Tensor ids = int_matrix(c["input_ids"]), mask = int_matrix(c["attention_mask"]);
  const int64_t total = ids.size(1), prefill = 5;
  model::KVCache cache;
  std::vector<at::Tensor> pieces;
  for (int64_t start = 0; start < total;) {
    const int64_t chunk = start == 0 ? prefill : 1;
    model::ForwardArgs args;
    args.input_ids = ids.narrow(1, start, chunk);
    args.attention_mask = mask.narrow(1, start, chunk);
    args.cache = &cache;
    pieces.push_back(model_->forward(args));
    start += chunk;
    ASSERT_EQ(cache.length(), start);
    ASSERT_EQ(cache.attention_mask.size(1), start);
  }
  at::Tensor logits = at::cat(pieces, 1);
  for (size_t b = 0; b < len.size(); ++b) {
    at::Tensor ref = full.load("case1.seq" + std::to_string(b)).to(at::kDouble);
    std::vector<double> ref_values(ref.data_ptr<double>(), ref.data_ptr<double>() + ref.numel());
    EXPECT_TRUE(all_close(logits[b].narrow(0, 0, len[b]), ref_values, kLogitAbs, kLogitRel)) << "row " << b;
  }
}

// Only the last N positions' logits, and the same numbers as the full forward.
TEST_P(GoldenModel, LogitsToKeep) {
  at::NoGradGuard no_grad;
  const auto& c = golden_["cases"][0];
  model::ForwardArgs args;
  args.input_ids = int_matrix(c["input_ids"]);
  args.attention_mask = int_matrix(c["attention_mask"]);
  at::Tensor all = model_->forward(args);
  args.logits_to_keep = 1;
  at::Tensor last = model_->forward(args);
  ASSERT_EQ(last.size(1), 1);
  EXPECT_TRUE(at::allclose(last.select(1, 0), all.select(1, -1), 1e-6, 1e-6));
}

INSTANTIATE_TEST_SUITE_P(Models, GoldenModel,
                         ::testing::Values("mpt-tiny", "mpt-clip-h6", "gpt_neox-tiny", "mistral-swa8", "qwen2-tiny",
                                           "llama-rope-linear"),
                         [](const ::testing::TestParamInfo<std::string>& info) {
                           std::string name = info.param;
                           for (char& ch : name)
                             if (!isalnum(static_cast<unsigned char>(ch))) ch = '_';
                           return name;
                         });

}  // namespace
}  // namespace fusellm::test
