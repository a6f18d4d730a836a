// The sparse fusion loss against hand-computed divergences and against a dense [B, T, V] reference built
// here with plain LibTorch autograd (values and gradients w.r.t. the logits, in double).
#include <gtest/gtest.h>

#include <cmath>

#include <torch/nn/functional.h>

#include "fusellm/fusion/fusion.hpp"

using namespace fusellm::fusion;
namespace F = torch::nn::functional;

namespace {

// q = softmax([0, ln 2, 0]) = [1/4, 1/2, 1/4]; target p = {0: 1/2, 1: 1/2}.
struct HandCase {
  at::Tensor logits = at::tensor({0.0, std::log(2.0), 0.0}, at::kDouble).reshape({1, 1, 3});
  SparseDist target{at::tensor({0, 1, -1}, at::kLong).reshape({1, 1, 3}),
                    at::tensor({0.5, 0.5, 0.0}, at::kDouble).reshape({1, 1, 3})};
  double divergence(Divergence d) {
    return sparse_divergence(logits, logits.logsumexp(-1), target, d).item<double>();
  }
};

// Dense target [B, T, V] from a sparse one (duplicates add up).
at::Tensor densify(const SparseDist& d, int64_t vocab) {
  auto valid = d.ids.ge(0);
  auto probs = at::where(valid, d.probs, at::zeros_like(d.probs));
  return at::zeros({d.ids.size(0), d.ids.size(1), vocab}, at::kDouble).scatter_add(-1, d.ids.clamp_min(0), probs);
}

at::Tensor safe_log(const at::Tensor& x, const at::Tensor& use) {
  return at::where(use, at::where(use, x, at::ones_like(x)).log(), at::zeros_like(x));
}

// Dense per-position divergence [B, T] written from the definitions, independent of the sparse code.
at::Tensor dense_divergence(const at::Tensor& logits, const at::Tensor& P, Divergence d) {
  auto log_q = logits.log_softmax(-1);
  auto support = P.gt(0);
  auto zero = at::zeros_like(P);
  auto ce = -(P * log_q).sum(-1);
  if (d == Divergence::CE) return ce;
  if (d == Divergence::KL) return at::where(support, P * (safe_log(P, support) - log_q), zero).sum(-1);
  auto mass = P.sum(-1, true);
  auto has = mass.gt(0);
  auto p = P / at::where(has, mass, at::ones_like(mass));
  auto q_on = at::where(support, log_q.exp(), zero);
  auto q_mass = q_on.sum(-1, true);
  auto q = q_on / at::where(has, q_mass, at::ones_like(q_mass));
  at::Tensor v;
  if (d == Divergence::ReverseKL) v = at::where(support, q * (safe_log(q, support) - safe_log(p, support)), zero).sum(-1);
  if (d == Divergence::TVD) v = 0.5 * at::where(support, (p - q).abs(), zero).sum(-1);
  if (d == Divergence::JS) {
    auto m = 0.5 * (p + q);
    auto lm = safe_log(m, support);
    v = 0.5 * at::where(support, p * (safe_log(p, support) - lm) + q * (safe_log(q, support) - lm), zero).sum(-1);
  }
  return at::where(has.squeeze(-1), v, at::zeros_like(v));
}

// Random sources with empty slots, duplicate ids within a row and across sources, and all-empty rows.
std::vector<SourceBatch> random_sources(int64_t B, int64_t T, int64_t V, int64_t K, int64_t k) {
  std::vector<SourceBatch> out;
  for (int64_t s = 0; s < K; ++s) {
    auto ids = at::randint(0, V, {B, T, k}, at::kLong);
    ids.select(2, 1).copy_(ids.select(2, 0));  // a duplicate id inside each row
    ids = at::where(at::rand({B, T, k}).lt(0.2), at::full_like(ids, -1), ids);
    ids.select(1, 1).fill_(-1);  // position 1 empty in every source
    out.push_back({ids, at::randn({B, T, k}, at::kDouble) * 2, at::rand({B}, at::kDouble) * 3,
                   at::rand({B, T}, at::kDouble) * 3});
  }
  return out;
}

}  // namespace

TEST(FusionDivergence, HandComputedValues) {
  HandCase c;
  const double ce = -(0.5 * std::log(0.25) + 0.5 * std::log(0.5));
  EXPECT_NEAR(c.divergence(Divergence::CE), ce, 1e-12);
  EXPECT_NEAR(c.divergence(Divergence::KL), ce - std::log(2.0), 1e-12);
  // On the support {0, 1}: q̃ = [1/3, 2/3], p̃ = [1/2, 1/2], m = [5/12, 7/12].
  EXPECT_NEAR(c.divergence(Divergence::ReverseKL), std::log(2.0 / 3.0) / 3 + 2 * std::log(4.0 / 3.0) / 3, 1e-12);
  EXPECT_NEAR(c.divergence(Divergence::TVD), 1.0 / 6.0, 1e-12);
  const double js = 0.5 * (0.5 * std::log(1.2) + 0.5 * std::log(6.0 / 7.0)) +
                    0.5 * (std::log(0.8) / 3 + 2 * std::log(8.0 / 7.0) / 3);
  EXPECT_NEAR(c.divergence(Divergence::JS), js, 1e-12);
}

TEST(FusionDivergence, ZeroWhenModelMatchesTargetOnSupport) {
  HandCase c;
  c.logits = at::tensor({1.5, 1.5, -40.0}, at::kDouble).reshape({1, 1, 3});
  for (auto d : {Divergence::ReverseKL, Divergence::JS, Divergence::TVD})
    EXPECT_NEAR(c.divergence(d), 0.0, 1e-12) << to_string(d);
  EXPECT_NEAR(c.divergence(Divergence::KL), 0.0, 1e-15 + 1e-12);
}

TEST(FusionLoss, SparseEqualsDenseReferenceWithGradients) {
  torch::manual_seed(7);
  const int64_t B = 3, T = 7, V = 13, K = 3, k = 4;
  auto sources = random_sources(B, T, V, K, k);
  auto labels = at::randint(0, V, {B, T}, at::kLong);
  auto attention = at::ones({B, T}, at::kLong);
  attention[1].narrow(0, 5, 2).zero_();  // right padding
  attention[2].narrow(0, 3, 4).zero_();
  labels = at::where(attention.eq(0), at::full_like(labels, -100), labels);
  for (auto strategy : {Strategy::MinCE, Strategy::AvgCE, Strategy::TokenMinCE}) {
    const double temperature = 1.7;
    auto fused = fuse(sources, strategy, temperature);
    // Dense fused target written from the definition: Σ_s w_s · softmax over kept slots of vals_s / τ.
    auto weights = strategy_weights(sources, strategy);
    auto P = at::zeros({B, T, V}, at::kDouble);
    for (int64_t s = 0; s < K; ++s) {
      const auto& src = sources[s];
      auto kept = src.ids.ge(0);
      auto e = at::where(kept, (src.vals / temperature).exp(), at::zeros_like(src.vals));
      auto denom = e.sum(-1, true);
      auto p = e / at::where(denom.gt(0), denom, at::ones_like(denom));
      P += densify({src.ids, p * weights.select(-1, s).unsqueeze(-1)}, V);
    }
    ASSERT_TRUE(densify(fused, V).allclose(P, 1e-12, 1e-14)) << to_string(strategy);
    EXPECT_LE(fused.ids.ge(0).sum(-1).max().item<int64_t>(), K * k);
    for (auto divergence : {Divergence::CE, Divergence::KL, Divergence::ReverseKL, Divergence::JS, Divergence::TVD}) {
      for (auto positions : {FusionPositions::Attention, FusionPositions::Clm}) {
        SCOPED_TRACE(to_string(strategy) + "/" + to_string(divergence));
        LossOptions options{0.3, divergence, positions};
        auto logits = at::randn({B, T, V}, at::kDouble).mul_(3).requires_grad_(true);
        auto sparse = fusion_loss(logits, labels, attention, fused, options);
        auto g_sparse = torch::autograd::grad({sparse.loss}, {logits})[0];

        auto dense_logits = logits.detach().clone().requires_grad_(true);
        auto clm = F::cross_entropy(dense_logits.narrow(1, 0, T - 1).reshape({-1, V}),
                                    labels.narrow(1, 1, T - 1).reshape({-1}),
                                    F::CrossEntropyFuncOptions().ignore_index(-100));
        auto mask = positions == FusionPositions::Attention
                        ? attention.to(at::kDouble)
                        : at::cat({labels.narrow(1, 1, T - 1).ne(-100), at::zeros({B, 1}, at::kBool)}, 1).to(at::kDouble);
        auto fusion = (dense_divergence(dense_logits, P, divergence) * mask).sum() / mask.sum();
        auto dense = 0.3 * clm + 0.7 * fusion;
        auto g_dense = torch::autograd::grad({dense}, {dense_logits})[0];
        EXPECT_NEAR(sparse.loss.item<double>(), dense.item<double>(), 1e-9);
        EXPECT_NEAR(sparse.clm.item<double>(), clm.item<double>(), 1e-9);
        EXPECT_NEAR(sparse.fusion.item<double>(), fusion.item<double>(), 1e-9);
        EXPECT_FALSE(g_sparse.isnan().any().item<bool>());
        EXPECT_LT((g_sparse - g_dense).abs().max().item<double>(), 1e-9);
      }
    }
  }
}

TEST(FusionLoss, LambdaOneIsPlainCausalLM) {
  torch::manual_seed(3);
  const int64_t B = 2, T = 9, V = 17;
  auto sources = random_sources(B, T, V, 2, 3);
  auto fused = fuse(sources, Strategy::AvgCE, 1.0);
  auto labels = at::randint(0, V, {B, T}, at::kLong);
  labels[0].narrow(0, 6, 3).fill_(-100);
  auto logits = at::randn({B, T, V}, at::kDouble).requires_grad_(true);
  auto terms = fusion_loss(logits, labels, at::Tensor(), fused, {1.0, Divergence::CE, FusionPositions::Attention});
  auto g = torch::autograd::grad({terms.loss}, {logits})[0];
  auto ref_logits = logits.detach().clone().requires_grad_(true);
  auto ref = F::cross_entropy(ref_logits.narrow(1, 0, T - 1).reshape({-1, V}), labels.narrow(1, 1, T - 1).reshape({-1}),
                              F::CrossEntropyFuncOptions().ignore_index(-100));
  auto g_ref = torch::autograd::grad({ref}, {ref_logits})[0];
  EXPECT_NEAR(terms.loss.item<double>(), ref.item<double>(), 1e-12);
  EXPECT_LT((g - g_ref).abs().max().item<double>(), 1e-12);
  EXPECT_GT(terms.fusion.item<double>(), 0.0);  // still reported for metrics
  // Without a target the fusion term is 0 and the loss is still the CLM.
  auto plain = fusion_loss(logits, labels, at::Tensor(), SparseDist{}, {0.5, Divergence::CE, FusionPositions::Attention});
  EXPECT_NEAR(plain.clm.item<double>(), ref.item<double>(), 1e-12);
  EXPECT_EQ(plain.fusion.item<double>(), 0.0);
}

TEST(FusionLoss, FloatLogitsMatchDouble) {
  torch::manual_seed(5);
  auto sources = random_sources(2, 5, 11, 2, 3);
  auto fused = fuse(sources, Strategy::MinCE, 1.0);
  auto labels = at::randint(0, 11, {2, 5}, at::kLong);
  auto logits = at::randn({2, 5, 11}, at::kDouble);
  for (auto d : {Divergence::CE, Divergence::KL, Divergence::ReverseKL, Divergence::JS, Divergence::TVD}) {
    LossOptions options{0.5, d, FusionPositions::Attention};
    auto a = fusion_loss(logits, labels, at::Tensor(), fused, options).loss.item<double>();
    auto b = fusion_loss(logits.to(at::kFloat), labels, at::Tensor(), fused, options).loss.item<double>();
    EXPECT_NEAR(a, b, 1e-5) << to_string(d);
  }
}
