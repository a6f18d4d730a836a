#pragma once
// Fusion of K aligned source distributions into one sparse target distribution per position, and the
// training loss λ·CLM + (1−λ)·D(fused ‖ target) computed without ever building a dense [B, T, V] target.
// Formulas, the official-code equivalences and every edge case are in docs/fusion.md.
#include <string>
#include <vector>

#include "fusellm/util/torch_pch.hpp"

namespace fusellm::fusion {

// One source model's aligned top-k for a batch of target positions. Position t holds the source's
// distribution over the target vocabulary for the token at t+1 (the same convention as logits[t]).
struct SourceBatch {
  at::Tensor ids;       // [B, T, k] int64 target-vocabulary ids, −1 = empty slot
  at::Tensor vals;      // [B, T, k] floating: raw logits over the kept entries (softmax applied here)
  at::Tensor seq_ce;    // [B] the source's per-sequence CE (MinCE / AvgCE), or [B, T] for packed sequences: at
                        // each position the CE of the chunk that position belongs to (the choice is then made
                        // per position; constant within a chunk, so each chunk is fused as if it were alone)
  at::Tensor token_ce;  // [B, T] the source's CE of predicting token t+1 from t (token_minCE); optional
};

// A sparse distribution: probs[b, t, j] is the mass on ids[b, t, j]; ids −1 (probs 0) are empty slots.
struct SparseDist {
  at::Tensor ids;    // [B, T, W] int64
  at::Tensor probs;  // [B, T, W] floating
};

enum class Strategy { MinCE, AvgCE, TokenMinCE };
enum class Divergence { CE, KL, ReverseKL, JS, TVD };

// "minCE" / "avgCE" / "token_minCE" and "ce" / "kl" / "reverse_kl" / "js" / "tvd"; anything else fails
// naming `what` (the config key) and the accepted values.
Strategy parse_strategy(const std::string& name, const std::string& what = "fusion.strategy");
Divergence parse_divergence(const std::string& name, const std::string& what = "fusion.divergence");
std::string to_string(Strategy strategy);
std::string to_string(Divergence divergence);

// softmax(vals / temperature) over the non-empty slots of each row (official: softmax over the kept
// entries); an all-empty row gets all-zero probabilities.
SparseDist source_distribution(const SourceBatch& source, double temperature);

// Sums the mass of equal ids within a row: the first slot of each id keeps the total, the other copies
// become empty (−1, 0). Slots with zero mass become empty too. Width unchanged.
SparseDist merge_duplicate_ids(const SparseDist& dist);

// Per-source weights [B, T, K] of a strategy (rows sum to 1):
//   MinCE: one-hot of argmin_s seq_ce (ties → lowest source index), broadcast over T;
//   AvgCE: softmax_s(exp(−seq_ce_s)) (the official `distill_weighted_as_gt`), broadcast over T;
//   (with a [B, T] seq_ce both are taken per position, a [B] seq_ce of another source broadcast over T;)
//   TokenMinCE: one-hot of argmin_s token_ce[b, t] (ties → lowest index).
at::Tensor strategy_weights(const std::vector<SourceBatch>& sources, Strategy strategy);

// The fused distribution: Σ_s w_s · softmax(vals_s / τ) with duplicate ids merged. MinCE / token_minCE
// select one source's row (width k); AvgCE concatenates all (width K·k).
SparseDist fuse(const std::vector<SourceBatch>& sources, Strategy strategy, double temperature);

// Per-position divergence [B, T] between the sparse target p and the model q = softmax(logits);
// `lse` = logsumexp(logits, −1) [B, T] (shared with the CLM term). Rows without mass give 0.
at::Tensor sparse_divergence(const at::Tensor& logits, const at::Tensor& lse, const SparseDist& target,
                             Divergence divergence);

enum class FusionPositions {
  Attention,  // every position with attention_mask = 1 (official FuseLLM)
  Clm,        // only positions whose next label is not −100 (the CLM term's positions)
};

struct LossOptions {
  double lm_weight = 0.9;  // λ: loss = λ·CLM + (1−λ)·fusion
  Divergence divergence = Divergence::CE;
  FusionPositions positions = FusionPositions::Attention;
};

struct LossTerms {
  at::Tensor loss;    // scalar, differentiable
  at::Tensor clm;     // scalar mean next-token CE over labels ≠ −100 (differentiable)
  at::Tensor fusion;  // scalar mean divergence over the fusion positions (differentiable; 0 when undefined)
};

// logits [B, T, V] float; labels [B, T] int64 unshifted (−100 = ignore), logits[t] predicts labels[t+1];
// attention_mask [B, T] (undefined = all real); target [B, T, W] (undefined ids = no fusion term).
LossTerms fusion_loss(const at::Tensor& logits, const at::Tensor& labels, const at::Tensor& attention_mask,
                      const SparseDist& target, const LossOptions& options);

}  // namespace fusellm::fusion
