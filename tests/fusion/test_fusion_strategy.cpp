// Source distributions, duplicate merging and the minCE / avgCE / token_minCE strategies against
// hand-computed values.
#include <gtest/gtest.h>

#include <cmath>

#include "fusellm/fusion/fusion.hpp"
#include "fusellm/util/error.hpp"

using namespace fusellm::fusion;

namespace {

at::Tensor longs(std::vector<int64_t> v, std::vector<int64_t> shape) {
  return at::tensor(v, at::kLong).reshape(shape);
}
at::Tensor doubles(std::vector<double> v, std::vector<int64_t> shape) {
  return at::tensor(v, at::kDouble).reshape(shape);
}

// Mass on `id` in row (b, t) of a sparse distribution (sums duplicates, so it checks merging too).
double mass_on(const SparseDist& d, int64_t b, int64_t t, int64_t id) {
  auto ids = d.ids[b][t], probs = d.probs[b][t];
  return probs.masked_select(ids.eq(id)).sum().item<double>();
}

}  // namespace

TEST(FusionSource, SoftmaxOverKeptEntriesWithTemperature) {
  SourceBatch s{longs({5, 3, -1, 7, -1, -1}, {1, 2, 3}), doubles({2, 1, 9, 1.0, 4, 4}, {1, 2, 3}),
                doubles({0.0}, {1}), {}};
  auto d = source_distribution(s, 1.0);
  const double e2 = std::exp(2.0), e1 = std::exp(1.0);
  EXPECT_NEAR(d.probs[0][0][0].item<double>(), e2 / (e2 + e1), 1e-12);
  EXPECT_NEAR(d.probs[0][0][1].item<double>(), e1 / (e2 + e1), 1e-12);
  EXPECT_EQ(d.probs[0][0][2].item<double>(), 0.0);  // the empty slot's value (9) is ignored
  // A one-hot row (logit 1.0 on one entry) is probability 1 whatever the temperature.
  EXPECT_NEAR(d.probs[0][1][0].item<double>(), 1.0, 1e-12);
  EXPECT_NEAR(source_distribution(s, 0.3).probs[0][1][0].item<double>(), 1.0, 1e-12);
  auto hot = source_distribution(s, 2.0);
  EXPECT_NEAR(hot.probs[0][0][0].item<double>(), 1.0 / (1.0 + std::exp(-0.5)), 1e-12);
  // Higher temperature → flatter; lower → sharper.
  EXPECT_LT(hot.probs[0][0][0].item<double>(), d.probs[0][0][0].item<double>());
  EXPECT_NEAR(source_distribution(s, 0.25).probs[0][0][0].item<double>(), 1.0 / (1.0 + std::exp(-4.0)), 1e-12);
  EXPECT_THROW(source_distribution(s, 0.0), fusellm::Error);
}

TEST(FusionSource, AllEmptyRowHasNoMassAndNoNaN) {
  SourceBatch s{longs({-1, -1}, {1, 1, 2}), doubles({0, 0}, {1, 1, 2}), doubles({0.0}, {1}), {}};
  auto d = source_distribution(s, 1.0);
  EXPECT_EQ(d.probs.sum().item<double>(), 0.0);
  EXPECT_FALSE(d.probs.isnan().any().item<bool>());
}

TEST(FusionMerge, SumsDuplicateIdsAndCompacts) {
  SparseDist d{longs({4, 2, 4, -1, 9}, {1, 1, 5}), doubles({0.1, 0.3, 0.2, 0.7, 0.0}, {1, 1, 5})};
  auto m = merge_duplicate_ids(d);
  EXPECT_TRUE(m.ids.equal(longs({2, 4, -1, -1, -1}, {1, 1, 5}))) << m.ids;
  EXPECT_NEAR(m.probs[0][0][0].item<double>(), 0.3, 1e-15);
  EXPECT_NEAR(m.probs[0][0][1].item<double>(), 0.3, 1e-15);
  EXPECT_EQ(m.probs[0][0].narrow(0, 2, 3).abs().sum().item<double>(), 0.0);  // −1's 0.7 and id 9's 0 dropped
}

TEST(FusionStrategy, MinCEPicksLowestSequenceCEFirstOnTies) {
  // Batch 0: source 1 has the lower CE. Batch 1: a tie → source 0.
  SourceBatch a{longs({1, 2, 1, 2}, {2, 1, 2}), doubles({0, 0, 0, 0}, {2, 1, 2}), doubles({1.0, 0.7}, {2}), {}};
  SourceBatch b{longs({3, -1, 3, -1}, {2, 1, 2}), doubles({0, 0, 0, 0}, {2, 1, 2}), doubles({0.5, 0.7}, {2}), {}};
  auto w = strategy_weights({a, b}, Strategy::MinCE);
  EXPECT_TRUE(w.equal(doubles({0, 1, 1, 0}, {2, 1, 2}))) << w;
  auto f = fuse({a, b}, Strategy::MinCE, 1.0);
  EXPECT_NEAR(mass_on(f, 0, 0, 3), 1.0, 1e-12);
  EXPECT_NEAR(mass_on(f, 1, 0, 1), 0.5, 1e-12);
  EXPECT_NEAR(mass_on(f, 1, 0, 2), 0.5, 1e-12);
  EXPECT_NEAR(mass_on(f, 1, 0, 3), 0.0, 1e-12);
}

TEST(FusionStrategy, AvgCEIsSoftmaxOfExpNegativeCE) {
  SourceBatch a{longs({1, 2}, {1, 1, 2}), doubles({1.0, 0.0}, {1, 1, 2}), doubles({1.0}, {1}), {}};
  SourceBatch b{longs({2, 3}, {1, 1, 2}), doubles({0.0, 2.0}, {1, 1, 2}), doubles({2.0}, {1}), {}};
  // Official: reward_s = 1 / exp(ce_s); weights = softmax(rewards).
  const double r0 = 1.0 / std::exp(1.0), r1 = 1.0 / std::exp(2.0);
  const double w0 = std::exp(r0) / (std::exp(r0) + std::exp(r1)), w1 = 1.0 - w0;
  auto w = strategy_weights({a, b}, Strategy::AvgCE);
  EXPECT_NEAR(w[0][0][0].item<double>(), w0, 1e-12);
  EXPECT_NEAR(w[0][0][1].item<double>(), w1, 1e-12);
  const double pa1 = std::exp(1.0) / (std::exp(1.0) + 1.0), pb3 = std::exp(2.0) / (std::exp(2.0) + 1.0);
  auto f = fuse({a, b}, Strategy::AvgCE, 1.0);
  EXPECT_NEAR(mass_on(f, 0, 0, 1), w0 * pa1, 1e-12);
  EXPECT_NEAR(mass_on(f, 0, 0, 2), w0 * (1 - pa1) + w1 * (1 - pb3), 1e-12);
  EXPECT_NEAR(mass_on(f, 0, 0, 3), w1 * pb3, 1e-12);
  EXPECT_EQ(f.ids[0][0].eq(2).sum().item<int64_t>(), 1);  // id 2 from both sources merged into one slot
  EXPECT_NEAR(f.probs.sum().item<double>(), 1.0, 1e-12);
}

TEST(FusionStrategy, TokenMinCEChoosesPerPosition) {
  SourceBatch a{longs({1, 1, 1}, {1, 3, 1}), doubles({1, 1, 1}, {1, 3, 1}), doubles({9.0}, {1}),
                doubles({0.1, 2.0, 0.5}, {1, 3})};
  SourceBatch b{longs({2, 2, 2}, {1, 3, 1}), doubles({1, 1, 1}, {1, 3, 1}), doubles({0.0}, {1}),
                doubles({0.3, 1.0, 0.5}, {1, 3})};
  auto f = fuse({a, b}, Strategy::TokenMinCE, 1.0);
  EXPECT_TRUE(f.ids.equal(longs({1, 2, 1}, {1, 3, 1}))) << f.ids;  // position 2 is a tie → source 0
  // Without token_ce the strategy is a clear error.
  b.token_ce = at::Tensor();
  EXPECT_THROW(fuse({a, b}, Strategy::TokenMinCE, 1.0), fusellm::Error);
}

TEST(FusionStrategy, ParsesNamesAndRejectsUnknown) {
  EXPECT_EQ(parse_strategy("minCE"), Strategy::MinCE);
  EXPECT_EQ(parse_strategy("avgCE"), Strategy::AvgCE);
  EXPECT_EQ(parse_strategy("token_minCE"), Strategy::TokenMinCE);
  EXPECT_EQ(parse_divergence("reverse_kl"), Divergence::ReverseKL);
  EXPECT_THROW(parse_strategy("maxCE"), fusellm::Error);
  EXPECT_THROW(parse_divergence("hellinger"), fusellm::Error);
}

TEST(FusionSource, HalfPrecisionLogitsAreWidened) {
  // fp16 logits (as a teacher store may hold) must not overflow the empty-slot fill value.
  SourceBatch s{longs({5, 3, -1}, {1, 1, 3}), doubles({2, 1, 0}, {1, 1, 3}).to(at::kHalf), doubles({0.0}, {1}), {}};
  auto d = source_distribution(s, 1.0);
  EXPECT_EQ(d.probs.scalar_type(), at::kFloat);
  EXPECT_NEAR(d.probs[0][0][0].item<double>(), 1.0 / (1.0 + std::exp(-1.0)), 1e-6);
  EXPECT_EQ(d.probs[0][0][2].item<double>(), 0.0);
}
