#pragma once
// The BPE model of tokenizer.json (and GPT-2 vocab.json + merges.txt): a word's characters are looked
// up in the vocabulary (byte fallback / unk for unknown ones), then the lowest-ranked applicable merge is
// applied repeatedly, driven by a priority queue over merge ranks (O(n log n) per word). Results are
// cached per word in a sharded, mutex-protected cache, so one model serves many threads.
#include <array>
#include <cstdint>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

namespace fusellm::tok::hf {

struct BpeOptions {
  std::optional<std::string> unk_token;
  bool byte_fallback = false;  // unknown characters become "<0xXX>" byte tokens
  bool fuse_unk = false;       // consecutive unknown characters become one unk token
  bool ignore_merges = false;  // a word that is itself in the vocabulary is one token
  std::string continuing_subword_prefix;
  std::string end_of_word_suffix;
};

// One token of a word: its id and the byte range [begin, end) of the word it covers.
struct BpeToken {
  int32_t id;
  uint32_t begin, end;
};

class BpeModel {
 public:
  // `vocab` maps token strings to ids; `merges` are in rank order. `source` names errors (the file).
  BpeModel(const std::vector<std::pair<std::string, int32_t>>& vocab,
           const std::vector<std::pair<std::string, std::string>>& merges, BpeOptions options,
           const std::string& source);

  // Appends the tokens of one pre-tokenized word.
  void tokenize(std::string_view word, std::vector<BpeToken>& out) const;

  std::optional<int32_t> token_to_id(std::string_view token) const;
  const std::string* id_to_token(int32_t id) const;  // nullptr when the model has no such id
  size_t id_limit() const { return id_to_token_.size(); }  // 1 + the largest id
  const BpeOptions& options() const { return options_; }

 private:
  struct Merge {
    uint32_t rank;
    int32_t new_id;
  };
  static uint64_t pair_key(int32_t a, int32_t b) {
    return (static_cast<uint64_t>(static_cast<uint32_t>(a)) << 32) | static_cast<uint32_t>(b);
  }
  void tokenize_uncached(std::string_view word, std::vector<BpeToken>& out) const;

  std::vector<std::string> id_to_token_;
  std::vector<bool> has_id_;
  std::unordered_map<std::string_view, int32_t> vocab_;  // keys view id_to_token_
  std::unordered_map<uint64_t, Merge> merges_;
  std::array<int32_t, 256> byte_tokens_{};  // "<0xXX>" ids, -1 when absent
  std::optional<int32_t> unk_id_;
  BpeOptions options_;

  // Word cache: open addressing (one probe sequence, keys stored inline) in shards that each have a
  // mutex, so threads rarely contend. A full shard is emptied: the cache is only an optimization.
  static constexpr size_t kShards = 16, kShardSlots = 8192, kMaxCachedWordBytes = 256;
  struct Slot {
    uint64_t hash = 0;  // 0: empty
    std::string word;
    std::vector<BpeToken> tokens;
  };
  struct Shard {
    std::mutex mutex;
    std::vector<Slot> slots;
    size_t used = 0;
  };
  mutable std::array<Shard, kShards> cache_;
};

}  // namespace fusellm::tok::hf
