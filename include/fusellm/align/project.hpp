#pragma once
// Projection of the source model's per-position top-k onto target (base) vocabulary ids, for one aligned
// sequence pair (FuseLLM's transform_step_logits).
//
// mode official — bit-for-bit transform_step_logits: for target position i with aligned source positions J:
//   |J| ≠ 1 → one-hot on the CURRENT target token i, logit 1.0;
//   |J| = 1 (j) and the tokens match (hard: equal strings after the source marker becomes the target marker;
//   soft: or map[source] = target) → walk source top-k of step j, keep tokens that are target tokens (hard)
//   or map them with the MinED map (soft), duplicates keep the first; the list may be empty;
//   otherwise → one-hot as above. At i = 0 with a byte-level BPE source (MPT / GPT-NeoX / GPT-2) the source
//   string gets a "▁" prefix when the target token has one and it has not (Llama's dummy prefix).
// mode fusellm — the same walk, with these differences:
//   * the fallback is a one-hot on the NEXT target token (target_ids[i+1]), the token step i actually has to
//     predict (FuseAI issue #27); at the last position there is no next token and the list is empty
//     (no source supervision there);
//   * duplicates keep the first (default) or sum probabilities: logit = log(exp(a) + exp(b));
//   * optional byte-aware canonical comparison (canonical.hpp): tokens match when they stand for the same
//     bytes (<0x0A> = Ċ, ▁▁▁ = three literal spaces, </s> = <|endoftext|>); top-k tokens whose bytes are a
//     target token map to it exactly (hard and soft), soft falls back to the MinED map otherwise.
#include <cstdint>
#include <optional>
#include <string>
#include <unordered_map>
#include <vector>

#include "fusellm/align/alignment.hpp"
#include "fusellm/align/canonical.hpp"
#include "fusellm/align/vocab_map.hpp"

namespace fusellm::align {

enum class VocabAlignType { soft, hard };
enum class ProjectionMode { official, fusellm };
enum class DuplicatePolicy { keep_first, sum };

struct ProjectionOptions {
  VocabAlignType type = VocabAlignType::soft;
  ProjectionMode mode = ProjectionMode::fusellm;
  DuplicatePolicy duplicates = DuplicatePolicy::keep_first;  // fusellm mode only (official: keep first)
  bool canonical = false;                                    // fusellm mode only
  // The source tokenizer is byte-level BPE (GPTNeoXTokenizerFast / GPT2TokenizerFast in the official code):
  // enables the first-position "▁" prefix rule. Defaults from the source marker.
  std::optional<bool> source_byte_level;
  SpecialIds source_specials, target_specials;  // for canonical comparison (EOS ↔ EOS)
};

// Per target position: ids[offsets[i] .. offsets[i+1]) with their logits.
struct ProjectedSequence {
  std::vector<uint32_t> offsets{0};
  std::vector<int32_t> ids;
  std::vector<float> logits;
  size_t positions() const { return offsets.size() - 1; }
};

struct ProjectionStats {
  size_t positions = 0;
  size_t one_to_one = 0;   // |J| = 1 and that source position aligns only to this target position
  size_t used_topk = 0;    // the source top-k was walked (official branch "M")
  size_t fallback = 0;     // one-hot (or empty at the last position in fusellm mode)
  size_t empty_lists = 0;  // lists with no entry
  double one_to_one_rate() const { return positions ? double(one_to_one) / positions : 0.0; }
  double fallback_rate() const { return positions ? double(fallback) / positions : 0.0; }
  ProjectionStats& operator+=(const ProjectionStats& o);
};

class Projector {
 public:
  // `mined` is the MinED (or exact) map source → target, needed for soft projection. Nothing is referenced
  // after construction.
  Projector(const Vocabulary& source, const Vocabulary& target, const VocabMap& mined, ProjectionOptions options);

  // topk_ids / topk_logits: source_ids.size() rows of k entries (source ids, highest logit first).
  ProjectedSequence project(const std::vector<int32_t>& target_ids, const std::vector<int32_t>& source_ids,
                            const TokenAlignment& alignment, const int32_t* topk_ids, const float* topk_logits,
                            size_t k, ProjectionStats* stats = nullptr) const;

  // Whether a target token and the single source token aligned to it match (then the source top-k is used).
  bool tokens_match(int32_t target_id, int32_t source_id, bool first_position) const;

 private:
  int32_t project_token(int32_t source_id) const;  // target id a top-k token contributes, or -1

  ProjectionOptions options_;
  std::vector<std::string> replaced_;  // per source id: marker replaced by the target marker
  std::vector<std::string> target_tokens_;
  std::string target_marker_;
  bool byte_level_prefix_ = false;
  std::vector<int32_t> exact_;  // per source id: target id of the marker-replaced string, or -1
  std::vector<int32_t> soft_;   // per source id: map[replaced string] (dict semantics), or -1
  std::unordered_map<std::string, int32_t> replaced_owner_;  // replaced source string → last source id
  std::unordered_map<std::string, int32_t> target_index_;    // target string → first id
  std::vector<std::string> canon_source_, canon_target_;
  std::vector<int32_t> canon_exact_;  // per source id: target id with the same canonical bytes, or -1
};

}  // namespace fusellm::align
