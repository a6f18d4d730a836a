// BPE model (see hf_bpe.hpp). Semantics follow the Rust `tokenizers` crate's BPE::merge_word.
#include "hf_bpe.hpp"

#include <queue>

#include "fusellm/util/error.hpp"
#include "hf_unicode.hpp"

namespace fusellm::tok::hf {

BpeModel::BpeModel(const std::vector<std::pair<std::string, int32_t>>& vocab,
                   const std::vector<std::pair<std::string, std::string>>& merges, BpeOptions options,
                   const std::string& source)
    : options_(std::move(options)) {
  int32_t max_id = -1;
  for (const auto& [token, id] : vocab) {
    if (id < 0) fail("{}: vocabulary token '{}' has a negative id {}", source, token, id);
    max_id = std::max(max_id, id);
  }
  // Ids index a table: one far beyond the vocabulary's size (a corrupt or hostile file) would allocate
  // gigabytes for nothing. Real vocabularies are dense; a few holes are allowed.
  if (int64_t(max_id) >= int64_t(vocab.size()) + (int64_t{1} << 20))
    fail("{}: vocabulary id {} is far beyond its {} entries (corrupt vocabulary?)", source, max_id, vocab.size());
  id_to_token_.resize(static_cast<size_t>(max_id + 1));
  has_id_.assign(id_to_token_.size(), false);
  for (const auto& [token, id] : vocab) {
    if (has_id_[id]) fail("{}: vocabulary id {} is given to both '{}' and '{}'", source, id, id_to_token_[id], token);
    id_to_token_[id] = token;
    has_id_[id] = true;
  }
  vocab_.reserve(vocab.size());
  for (size_t id = 0; id < id_to_token_.size(); ++id)
    if (has_id_[id]) vocab_.emplace(id_to_token_[id], static_cast<int32_t>(id));

  const std::string& prefix = options_.continuing_subword_prefix;
  merges_.reserve(merges.size());
  for (size_t rank = 0; rank < merges.size(); ++rank) {
    const auto& [a, b] = merges[rank];
    auto ia = token_to_id(a), ib = token_to_id(b);
    if (!ia) fail("{}: merge {} ('{} {}') names '{}', which is not in the vocabulary", source, rank, a, b, a);
    if (!ib) fail("{}: merge {} ('{} {}') names '{}', which is not in the vocabulary", source, rank, a, b, b);
    std::string merged = a + (!prefix.empty() && b.compare(0, prefix.size(), prefix) == 0 ? b.substr(prefix.size()) : b);
    auto im = token_to_id(merged);
    if (!im) fail("{}: merge {} ('{} {}') makes '{}', which is not in the vocabulary", source, rank, a, b, merged);
    merges_[pair_key(*ia, *ib)] = Merge{static_cast<uint32_t>(rank), *im};  // a later duplicate wins, as in Rust
  }

  for (int byte = 0; byte < 256; ++byte) {
    char name[8];
    std::snprintf(name, sizeof(name), "<0x%02X>", byte);
    auto id = token_to_id(name);
    byte_tokens_[byte] = id ? *id : -1;
  }
  if (options_.unk_token) {
    unk_id_ = token_to_id(*options_.unk_token);
    if (!unk_id_) fail("{}: unk_token '{}' is not in the vocabulary", source, *options_.unk_token);
  }
}

std::optional<int32_t> BpeModel::token_to_id(std::string_view token) const {
  auto it = vocab_.find(token);
  if (it == vocab_.end()) return std::nullopt;
  return it->second;
}

const std::string* BpeModel::id_to_token(int32_t id) const {
  if (id < 0 || static_cast<size_t>(id) >= id_to_token_.size() || !has_id_[id]) return nullptr;
  return &id_to_token_[id];
}

void BpeModel::tokenize(std::string_view word, std::vector<BpeToken>& out) const {
  if (word.empty()) return;
  if (word.size() > kMaxCachedWordBytes) {
    tokenize_uncached(word, out);
    return;
  }
  uint64_t hash = std::hash<std::string_view>()(word) | 1;  // never 0 (the empty mark)
  Shard& shard = cache_[(hash >> 1) % kShards];
  constexpr size_t mask = kShardSlots - 1;
  {
    std::lock_guard<std::mutex> lock(shard.mutex);
    if (!shard.slots.empty()) {
      for (size_t i = (hash >> 5) & mask;; i = (i + 1) & mask) {
        const Slot& slot = shard.slots[i];
        if (slot.hash == 0) break;
        if (slot.hash == hash && slot.word == word) {
          out.insert(out.end(), slot.tokens.begin(), slot.tokens.end());
          return;
        }
      }
    }
  }
  size_t first = out.size();
  tokenize_uncached(word, out);
  std::lock_guard<std::mutex> lock(shard.mutex);
  if (shard.slots.empty() || shard.used >= kShardSlots * 3 / 4) {
    shard.slots.assign(kShardSlots, Slot());
    shard.used = 0;
  }
  for (size_t i = (hash >> 5) & mask;; i = (i + 1) & mask) {
    Slot& slot = shard.slots[i];
    if (slot.hash == hash && slot.word == word) return;  // another thread cached it meanwhile
    if (slot.hash != 0) continue;
    slot.hash = hash;
    slot.word.assign(word);
    slot.tokens.assign(out.begin() + static_cast<long>(first), out.end());
    ++shard.used;
    return;
  }
}

void BpeModel::tokenize_uncached(std::string_view word, std::vector<BpeToken>& out) const {
  if (options_.ignore_merges) {
    if (auto id = token_to_id(word)) {
      out.push_back({*id, 0, static_cast<uint32_t>(word.size())});
      return;
    }
  }
  struct Symbol {
    int32_t id;
    int32_t prev, next;
    uint32_t begin, end;  // bytes of the word; end == begin marks a symbol merged away
  };
  std::vector<Symbol> symbols;
  symbols.reserve(word.size());
  auto add = [&](int32_t id, uint32_t begin, uint32_t end) {
    int32_t index = static_cast<int32_t>(symbols.size());
    symbols.push_back({id, index - 1, -1, begin, end});
    if (index > 0) symbols[index - 1].next = index;
  };

  // Initial symbols: one per character (with prefix/suffix decorations), byte tokens or unk.
  // An unk symbol not yet added (fuse_unk extends it over following unknown characters).
  bool unk_pending = false;
  uint32_t unk_begin = 0, unk_end = 0;
  auto flush_unk = [&] {
    if (unk_pending) add(*unk_id_, unk_begin, unk_end);
    unk_pending = false;
  };
  std::string decorated;
  for (size_t i = 0; i < word.size();) {
    size_t n = unicode::sequence_length(static_cast<unsigned char>(word[i]));
    n = std::min(n, word.size() - i);
    auto begin = static_cast<uint32_t>(i), end = static_cast<uint32_t>(i + n);
    std::string_view ch = word.substr(i, n);
    std::optional<int32_t> id;
    if (options_.continuing_subword_prefix.empty() && options_.end_of_word_suffix.empty()) {
      id = token_to_id(ch);
    } else {
      decorated.assign(i > 0 ? options_.continuing_subword_prefix : std::string());
      decorated.append(ch);
      if (i + n == word.size()) decorated += options_.end_of_word_suffix;
      id = token_to_id(decorated);
    }
    i += n;
    if (id) {
      flush_unk();
      add(*id, begin, end);
      continue;
    }
    if (options_.byte_fallback) {
      bool all = true;
      for (char c : ch) all = all && byte_tokens_[static_cast<unsigned char>(c)] >= 0;
      if (all) {
        for (uint32_t k = begin; k < end; ++k) add(byte_tokens_[static_cast<unsigned char>(word[k])], k, k + 1);
        continue;
      }
    }
    if (unk_id_) {
      if (unk_pending && options_.fuse_unk) {
        unk_end = end;
      } else {
        flush_unk();
        unk_pending = true;
        unk_begin = begin;
        unk_end = end;
      }
    }
  }
  flush_unk();
  if (symbols.empty()) return;

  // Merges, lowest rank first (ties: leftmost), skipping queue entries made stale by earlier merges.
  struct Candidate {
    uint32_t rank;
    int32_t pos;
    int32_t new_id;
    bool operator>(const Candidate& o) const { return rank != o.rank ? rank > o.rank : pos > o.pos; }
  };
  std::priority_queue<Candidate, std::vector<Candidate>, std::greater<Candidate>> queue;
  auto consider = [&](int32_t left) {
    if (left < 0) return;
    int32_t right = symbols[left].next;
    if (right < 0) return;
    auto it = merges_.find(pair_key(symbols[left].id, symbols[right].id));
    if (it != merges_.end()) queue.push({it->second.rank, left, it->second.new_id});
  };
  for (int32_t i = 0; i + 1 < static_cast<int32_t>(symbols.size()); ++i) consider(i);
  while (!queue.empty()) {
    Candidate top = queue.top();
    queue.pop();
    Symbol& left = symbols[top.pos];
    if (left.end == left.begin || left.next < 0) continue;
    Symbol& right = symbols[left.next];
    auto it = merges_.find(pair_key(left.id, right.id));
    if (it == merges_.end() || it->second.new_id != top.new_id) continue;
    left.id = top.new_id;
    left.end = right.end;
    right.end = right.begin;  // merged away
    left.next = right.next;
    if (left.next >= 0) symbols[left.next].prev = top.pos;
    consider(left.prev);
    consider(top.pos);
  }
  for (int32_t i = 0; i >= 0; i = symbols[i].next) out.push_back({symbols[i].id, symbols[i].begin, symbols[i].end});
}

}  // namespace fusellm::tok::hf
