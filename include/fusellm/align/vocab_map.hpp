#pragma once
// Vocabulary mapping between two token-string vocabularies (FuseLLM's vocab_mapping.py, type "default"):
// each source token, with its space marker replaced by the target's (all occurrences), maps to itself when
// that string is a target token (exact hit), else (method `mined`) to the target token at minimum unit-cost
// Levenshtein distance over code points, ties to the lowest target id — identical to the official brute
// force, but searched by length buckets with the running best as a bound and a SIMD bit-parallel kernel.
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "fusellm/util/fs.hpp"

namespace fusellm::tok {
class Tokenizer;
}

namespace fusellm::align {

enum class VocabMapMethod { exact, mined };
std::string_view to_string(VocabMapMethod method);
VocabMapMethod parse_vocab_map_method(std::string_view name);  // throws Error on an unknown name

// Token strings in id order (Hugging Face convert_ids_to_tokens) and the marker a word-initial space
// becomes ("▁" SentencePiece, "Ġ" byte-level BPE).
struct Vocabulary {
  std::vector<std::string> tokens;
  std::string marker;
};
// id_to_token for ids 0..vocab_size()-1 and space_marker().
Vocabulary vocabulary_of(const tok::Tokenizer& tokenizer);

struct VocabMap {
  VocabMapMethod method = VocabMapMethod::mined;
  std::vector<int32_t> target_id;  // per source id; -1 = no mapping (only with method exact)
  std::vector<uint8_t> exact_hit;  // per source id: 1 when the marker-replaced token is a target token
};

// Python str.replace(from, to) (all occurrences; an empty `from` changes nothing).
std::string replace_all(std::string_view text, std::string_view from, std::string_view to);

// threads = 0: hardware concurrency. The result does not depend on the thread count.
VocabMap build_vocab_map(const Vocabulary& source, const Vocabulary& target, VocabMapMethod method, int threads = 0);

// The JSON the official script writes (json.dump: ASCII-escaped, ", " and ": " separators), keyed by the
// marker-replaced source token in source id order, valued by the target token; unmapped ids are left out.
std::string vocab_map_official_json(const VocabMap& map, const Vocabulary& source, const Vocabulary& target);
// Python json.dumps of one string with ensure_ascii=True.
std::string python_json_string(std::string_view utf8);

// Disk cache (format: docs/formats.md). The cache key is both tokenizer hashes, both vocabulary
// sizes and the method; a file whose key differs is ignored with a warning and rebuilt, a corrupt one
// (bad magic/checksum) likewise.
struct VocabMapKey {
  std::string source_hash, target_hash;
  VocabMapMethod method = VocabMapMethod::mined;
  uint32_t source_size = 0, target_size = 0;
};
void write_vocab_map_cache(const fs::path& path, const VocabMapKey& key, const VocabMap& map);
// Returns false (and logs why) when the file is missing, corrupt or was built for another key.
bool read_vocab_map_cache(const fs::path& path, const VocabMapKey& key, VocabMap& map);
// Reads the cache when it matches, else builds the map and writes the cache.
VocabMap cached_vocab_map(const fs::path& path, const VocabMapKey& key, const Vocabulary& source,
                          const Vocabulary& target, int threads = 0);
// A file name for the cache of one key: vocab_map-<source_hash>-<target_hash>-<method>.bin
std::string vocab_map_cache_name(const VocabMapKey& key);

}  // namespace fusellm::align
