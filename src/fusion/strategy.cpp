// Turning K aligned sources into one sparse target distribution (see docs/fusion.md, "Strategies").
#include <algorithm>
#include <limits>

#include "fusellm/fusion/fusion.hpp"
#include "fusellm/util/error.hpp"

namespace fusellm::fusion {

Strategy parse_strategy(const std::string& name, const std::string& what) {
  if (name == "minCE" || name == "min_ce") return Strategy::MinCE;
  if (name == "avgCE" || name == "avg_ce") return Strategy::AvgCE;
  if (name == "token_minCE" || name == "token_min_ce") return Strategy::TokenMinCE;
  fail("{}: unknown fusion strategy '{}' (expected minCE, avgCE or token_minCE)", what, name);
}

Divergence parse_divergence(const std::string& name, const std::string& what) {
  if (name == "ce") return Divergence::CE;
  if (name == "kl") return Divergence::KL;
  if (name == "reverse_kl") return Divergence::ReverseKL;
  if (name == "js") return Divergence::JS;
  if (name == "tvd") return Divergence::TVD;
  fail("{}: unknown divergence '{}' (expected ce, kl, reverse_kl, js or tvd)", what, name);
}

std::string to_string(Strategy strategy) {
  switch (strategy) {
    case Strategy::MinCE: return "minCE";
    case Strategy::AvgCE: return "avgCE";
    case Strategy::TokenMinCE: return "token_minCE";
  }
  return "?";
}

std::string to_string(Divergence divergence) {
  switch (divergence) {
    case Divergence::CE: return "ce";
    case Divergence::KL: return "kl";
    case Divergence::ReverseKL: return "reverse_kl";
    case Divergence::JS: return "js";
    case Divergence::TVD: return "tvd";
  }
  return "?";
}

namespace {

void check_source(const SourceBatch& s, size_t index, bool need_token_ce) {
  FUSELLM_CHECK(s.ids.defined() && s.ids.dim() == 3, "fusion source {}: ids must be [B, T, k]", index);
  FUSELLM_CHECK(s.ids.scalar_type() == at::kLong, "fusion source {}: ids must be int64", index);
  FUSELLM_CHECK(s.vals.defined() && s.vals.sizes() == s.ids.sizes() && s.vals.is_floating_point(),
                "fusion source {}: vals must be floating with the shape of ids", index);
  FUSELLM_CHECK(s.seq_ce.defined() && s.seq_ce.size(0) == s.ids.size(0) &&
                    (s.seq_ce.dim() == 1 || (s.seq_ce.dim() == 2 && s.seq_ce.size(1) == s.ids.size(1))),
                "fusion source {}: seq_ce must be [B] or [B, T] with [B, T] = [{}, {}]", index, s.ids.size(0),
                s.ids.size(1));
  if (need_token_ce)
    FUSELLM_CHECK(s.token_ce.defined() && s.token_ce.dim() == 2 && s.token_ce.size(0) == s.ids.size(0) &&
                      s.token_ce.size(1) == s.ids.size(1),
                  "fusion source {}: token_minCE needs token_ce [B, T] = [{}, {}]", index, s.ids.size(0),
                  s.ids.size(1));
}

// One-hot [.., K] of the first minimum along the last dimension (ties → lowest index, explicitly,
// rather than relying on argmin's tie rule).
at::Tensor first_min_one_hot(const at::Tensor& ce, const char* what) {
  FUSELLM_CHECK(!ce.isnan().any().item<bool>(), "fusion: {} contains NaN (filter such sequences first)", what);
  auto is_min = ce.eq(std::get<0>(ce.min(-1, /*keepdim=*/true)));
  auto first = is_min.logical_and(is_min.to(at::kLong).cumsum(-1).eq(1));
  return first.to(ce.scalar_type());
}

at::Tensor pad_slots(const at::Tensor& t, int64_t width, double fill) {
  const int64_t k = t.size(-1);
  if (k == width) return t;
  return at::cat({t, at::full({t.size(0), t.size(1), width - k}, fill, t.options())}, -1);
}

}  // namespace

SparseDist source_distribution(const SourceBatch& source, double temperature) {
  FUSELLM_CHECK(temperature > 0, "fusion.temperature: must be > 0, got {}", temperature);
  auto valid = source.ids.ge(0);
  // Half-precision logits (teacher stores) are widened: the softmax and the fill value need float range.
  auto scaled = (source.vals.scalar_type() == at::kDouble ? source.vals : source.vals.to(at::kFloat)) / temperature;
  // An all-empty row would give softmax(-inf...) = NaN; fill with a finite floor and zero afterwards.
  const double floor_value = scaled.scalar_type() == at::kDouble ? -1e300 : -1e30;
  auto floor = at::full({}, floor_value, scaled.options());
  auto probs = at::where(valid, scaled, floor).softmax(-1);
  probs = at::where(valid, probs, at::zeros_like(probs));
  return {at::where(valid, source.ids, at::full_like(source.ids, -1)), probs};
}

SparseDist merge_duplicate_ids(const SparseDist& dist) {
  auto live = dist.ids.ge(0).logical_and(dist.probs.gt(0));
  // Empty slots sort last (as the largest id) so the merged entries are compacted to the front.
  const int64_t empty = std::numeric_limits<int64_t>::max();
  auto ids = at::where(live, dist.ids, at::full_like(dist.ids, empty));
  auto probs = at::where(live, dist.probs, at::zeros_like(dist.probs));
  auto [sorted_ids, order] = ids.sort(-1);
  auto sorted_probs = probs.gather(-1, order);
  // group = index of the run of equal ids each sorted slot belongs to; runs are compacted to the front.
  auto starts = at::ones_like(sorted_ids, at::kBool);
  if (sorted_ids.size(-1) > 1)
    starts.narrow(-1, 1, sorted_ids.size(-1) - 1)
        .copy_(sorted_ids.narrow(-1, 1, sorted_ids.size(-1) - 1)
                   .ne(sorted_ids.narrow(-1, 0, sorted_ids.size(-1) - 1)));
  auto group = starts.to(at::kLong).cumsum(-1) - 1;
  auto merged_probs = at::zeros_like(probs).scatter_add(-1, group, sorted_probs);
  auto merged_ids = at::full_like(ids, -1).scatter(-1, group, sorted_ids);
  auto keep = merged_ids.ge(0).logical_and(merged_ids.ne(empty)).logical_and(merged_probs.gt(0));
  return {at::where(keep, merged_ids, at::full_like(merged_ids, -1)),
          at::where(keep, merged_probs, at::zeros_like(merged_probs))};
}

at::Tensor strategy_weights(const std::vector<SourceBatch>& sources, Strategy strategy) {
  FUSELLM_CHECK(!sources.empty(), "fusion: no source distributions given");
  for (size_t s = 0; s < sources.size(); ++s) check_source(sources[s], s, strategy == Strategy::TokenMinCE);
  const int64_t batch = sources[0].ids.size(0), length = sources[0].ids.size(1);
  for (size_t s = 1; s < sources.size(); ++s)
    FUSELLM_CHECK(sources[s].ids.size(0) == batch && sources[s].ids.size(1) == length,
                  "fusion source {}: [B, T] = [{}, {}] differs from source 0's [{}, {}]", s,
                  sources[s].ids.size(0), sources[s].ids.size(1), batch, length);
  std::vector<at::Tensor> parts;
  if (strategy == Strategy::TokenMinCE) {
    for (const auto& s : sources) parts.push_back(s.token_ce);
    return first_min_one_hot(at::stack(parts, -1), "token_ce");  // [B, T, K]
  }
  // seq_ce [B] (one CE per sequence) or [B, T] (packed sequences: the CE of the chunk each position belongs
  // to). With any [B, T] source the choice is made per position, [B] sources broadcast over T.
  bool per_position = false;
  for (const auto& s : sources) per_position = per_position || s.seq_ce.dim() == 2;
  for (const auto& s : sources)
    parts.push_back(per_position && s.seq_ce.dim() == 1 ? s.seq_ce.unsqueeze(1).expand({batch, length}) : s.seq_ce);
  auto ce = at::stack(parts, -1);  // [B, K] or [B, T, K]
  at::Tensor weights;
  if (strategy == Strategy::MinCE) {
    weights = first_min_one_hot(ce, "seq_ce");
  } else {
    // Official distill_weighted_as_gt: reward = 1 / exp(CE), weights = softmax over the rewards.
    FUSELLM_CHECK(!ce.isnan().any().item<bool>(), "fusion: seq_ce contains NaN (filter such sequences first)");
    weights = at::exp(-ce).softmax(-1);
  }
  if (per_position) return weights;
  return weights.unsqueeze(1).expand({batch, length, static_cast<int64_t>(sources.size())});
}

SparseDist fuse(const std::vector<SourceBatch>& sources, Strategy strategy, double temperature) {
  auto weights = strategy_weights(sources, strategy);  // validates the sources
  int64_t width = 0;
  for (const auto& s : sources) width = std::max(width, s.ids.size(-1));
  std::vector<at::Tensor> ids, probs;
  for (const auto& s : sources) {
    auto d = source_distribution(s, temperature);
    ids.push_back(pad_slots(d.ids, width, -1));
    probs.push_back(pad_slots(d.probs, width, 0));
  }
  if (strategy == Strategy::AvgCE) {
    for (size_t s = 0; s < probs.size(); ++s)
      probs[s] = probs[s] * weights.select(-1, static_cast<int64_t>(s)).unsqueeze(-1).to(probs[s].scalar_type());
    return merge_duplicate_ids({at::cat(ids, -1), at::cat(probs, -1)});
  }
  // One-hot weights: take the chosen source's row instead of carrying K·k mostly-empty slots.
  auto chosen = weights.argmax(-1).unsqueeze(-1).unsqueeze(-1);  // [B, T, 1, 1]
  auto stacked_ids = at::stack(ids, 2), stacked_probs = at::stack(probs, 2);  // [B, T, K, k]
  auto index = chosen.expand({stacked_ids.size(0), stacked_ids.size(1), 1, width});
  return merge_duplicate_ids({stacked_ids.gather(2, index).squeeze(2), stacked_probs.gather(2, index).squeeze(2)});
}

}  // namespace fusellm::fusion
