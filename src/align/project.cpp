// transform_step_logits (official mode) and fusellm's corrected projection (see project.hpp).
#include "fusellm/align/project.hpp"

#include <algorithm>
#include <cmath>

#include "fusellm/util/error.hpp"

namespace fusellm::align {

ProjectionStats& ProjectionStats::operator+=(const ProjectionStats& o) {
  positions += o.positions;
  one_to_one += o.one_to_one;
  used_topk += o.used_topk;
  fallback += o.fallback;
  empty_lists += o.empty_lists;
  return *this;
}

namespace {

bool is_byte_piece(std::string_view t) { return t.size() == 6 && t.substr(0, 3) == "<0x" && t[5] == '>'; }

bool starts_with(std::string_view s, std::string_view prefix) { return s.substr(0, prefix.size()) == prefix; }

float log_add_exp(float a, float b) {
  const float hi = std::max(a, b), lo = std::min(a, b);
  return hi + std::log1p(std::exp(lo - hi));
}

}  // namespace

Projector::Projector(const Vocabulary& source, const Vocabulary& target, const VocabMap& mined,
                     ProjectionOptions options)
    : options_(std::move(options)), target_tokens_(target.tokens), target_marker_(target.marker) {
  FUSELLM_CHECK(mined.target_id.size() == source.tokens.size(),
                "projection: vocabulary map has {} entries for {} source tokens", mined.target_id.size(),
                source.tokens.size());
  if (options_.mode == ProjectionMode::official) {
    options_.canonical = false;
    options_.duplicates = DuplicatePolicy::keep_first;
  }
  byte_level_prefix_ = options_.source_byte_level.value_or(style_for_marker(source.marker) == TokenStyle::byte_level);
  target_index_.reserve(target.tokens.size() * 2);
  for (size_t id = 0; id < target.tokens.size(); ++id)
    target_index_.emplace(target.tokens[id], static_cast<int32_t>(id));

  const size_t n = source.tokens.size();
  replaced_.resize(n);
  exact_.assign(n, -1);
  soft_.assign(n, -1);
  replaced_owner_.reserve(n * 2);
  for (size_t s = 0; s < n; ++s) {
    replaced_[s] = replace_all(source.tokens[s], source.marker, target.marker);
    if (auto it = target_index_.find(replaced_[s]); it != target_index_.end()) exact_[s] = it->second;
    replaced_owner_[replaced_[s]] = static_cast<int32_t>(s);  // a Python dict keeps the last value
  }
  for (size_t s = 0; s < n; ++s) soft_[s] = mined.target_id[replaced_owner_.at(replaced_[s])];

  if (options_.canonical) {
    canon_source_ = canonical_vocabulary(source.tokens, style_for_marker(source.marker), options_.source_specials);
    canon_target_ = canonical_vocabulary(target.tokens, style_for_marker(target.marker), options_.target_specials);
    // Several target tokens can stand for the same bytes (Llama "▁" and "<0x20>"): prefer a normal piece,
    // then the lowest id — the one the target tokenizer itself produces.
    std::unordered_map<std::string_view, int32_t> by_bytes;
    by_bytes.reserve(canon_target_.size() * 2);
    for (size_t t = 0; t < canon_target_.size(); ++t) {
      auto [it, inserted] = by_bytes.emplace(canon_target_[t], static_cast<int32_t>(t));
      if (!inserted && is_byte_piece(target.tokens[it->second]) && !is_byte_piece(target.tokens[t]))
        it->second = static_cast<int32_t>(t);
    }
    canon_exact_.assign(n, -1);
    for (size_t s = 0; s < n; ++s)
      if (auto it = by_bytes.find(canon_source_[s]); it != by_bytes.end()) canon_exact_[s] = it->second;
  }
}

int32_t Projector::project_token(int32_t s) const {
  if (options_.canonical) {
    if (options_.type == VocabAlignType::hard || canon_exact_[s] >= 0) return canon_exact_[s];
    return soft_[s];
  }
  return options_.type == VocabAlignType::hard ? exact_[s] : soft_[s];
}

bool Projector::tokens_match(int32_t b, int32_t s, bool first_position) const {
  const std::string& base = target_tokens_[b];
  if (options_.canonical) {
    std::string_view cs = canon_source_[s];
    const std::string& ct = canon_target_[b];
    std::string prefixed;
    if (first_position && byte_level_prefix_ && starts_with(ct, " ") && !starts_with(cs, " ") &&
        !starts_with(cs, std::string_view("\0", 1))) {
      prefixed = " " + std::string(cs);
      cs = prefixed;
    }
    if (cs == ct) return true;
    if (options_.type == VocabAlignType::hard) return false;
    const int32_t t = project_token(s);
    return t >= 0 && target_tokens_[t] == base;
  }
  if (first_position && byte_level_prefix_ && starts_with(base, target_marker_) &&
      !starts_with(replaced_[s], target_marker_)) {
    // The official MPT case: blending_token = "▁" + blending_token, then looked up by string.
    const std::string blending = target_marker_ + replaced_[s];
    if (base == blending) return true;
    if (options_.type == VocabAlignType::hard) return false;
    auto owner = replaced_owner_.find(blending);
    if (owner == replaced_owner_.end()) return false;
    const int32_t t = soft_[owner->second];
    return t >= 0 && target_tokens_[t] == base;
  }
  if (exact_[s] >= 0 && target_tokens_[exact_[s]] == base) return true;
  if (options_.type == VocabAlignType::hard) return false;
  return soft_[s] >= 0 && target_tokens_[soft_[s]] == base;
}

ProjectedSequence Projector::project(const std::vector<int32_t>& target_ids, const std::vector<int32_t>& source_ids,
                                     const TokenAlignment& alignment, const int32_t* topk_ids, const float* topk_logits,
                                     size_t k, ProjectionStats* stats) const {
  const size_t m = target_ids.size();
  FUSELLM_CHECK(alignment.target_to_source.size() == m && alignment.source_to_target.size() == source_ids.size(),
                "projection: alignment covers {} x {} positions, sequences have {} x {}",
                alignment.target_to_source.size(), alignment.source_to_target.size(), m, source_ids.size());
  const auto vocab_t = static_cast<int32_t>(target_tokens_.size()), vocab_s = static_cast<int32_t>(replaced_.size());
  ProjectedSequence out;
  out.offsets.reserve(m + 1);
  out.ids.reserve(m * k);
  out.logits.reserve(m * k);
  ProjectionStats local;
  local.positions = m;
  for (size_t i = 0; i < m; ++i) {
    const int32_t b = target_ids[i];
    FUSELLM_CHECK(b >= 0 && b < vocab_t, "projection: target id {} at position {} out of range", b, i);
    const Span J = alignment.target_to_source[i];
    if (J.size() == 1 && alignment.source_to_target[J.begin].size() == 1) ++local.one_to_one;
    bool used = false;
    if (J.size() == 1) {
      const int32_t s = source_ids[J.begin];
      FUSELLM_CHECK(s >= 0 && s < vocab_s, "projection: source id {} at position {} out of range", s, J.begin);
      if (tokens_match(b, s, i == 0)) {
        used = true;
        const size_t first = out.ids.size();
        for (size_t r = 0; r < k; ++r) {
          const int32_t src = topk_ids[J.begin * k + r];
          FUSELLM_CHECK(src >= 0 && src < vocab_s, "projection: top-k id {} at source position {} out of range", src,
                        J.begin);
          const int32_t t = project_token(src);
          if (t < 0) continue;
          const float logit = topk_logits[J.begin * k + r];
          auto dup = std::find(out.ids.begin() + first, out.ids.end(), t);
          if (dup == out.ids.end()) {
            out.ids.push_back(t);
            out.logits.push_back(logit);
          } else if (options_.duplicates == DuplicatePolicy::sum) {
            float& l = out.logits[dup - out.ids.begin()];
            l = log_add_exp(l, logit);
          }
        }
      }
    }
    if (used) {
      ++local.used_topk;
    } else {
      ++local.fallback;
      if (options_.mode == ProjectionMode::official) {
        out.ids.push_back(target_index_.at(target_tokens_[b]));  // base_model_vocab[base_tokens[i]]
        out.logits.push_back(1.0f);
      } else if (i + 1 < m) {
        out.ids.push_back(target_ids[i + 1]);  // the token step i predicts
        out.logits.push_back(1.0f);
      }
    }
    if (out.ids.size() == out.offsets.back()) ++local.empty_lists;
    out.offsets.push_back(static_cast<uint32_t>(out.ids.size()));
  }
  if (stats) *stats += local;
  return out;
}

}  // namespace fusellm::align
