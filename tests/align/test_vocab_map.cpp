// Vocabulary maps against the official MinED output (../shared/golden/align) and brute force.
#include <gtest/gtest.h>

#include <chrono>
#include <random>

#include "fusellm/align/levenshtein.hpp"
#include "fusellm/align/vocab_map.hpp"
#include "fusellm/tokenizer/tokenizer.hpp"
#include "fusellm/util/fs.hpp"
#include "golden.hpp"

namespace fusellm::align {
namespace {

using test::golden_align_dir;
using test::shared_dir;

// Official semantics written the slow way: every target in id order, first minimum wins.
int32_t brute_force(const std::string& source, const Vocabulary& s, const Vocabulary& t) {
  const std::string replaced = replace_all(source, s.marker, t.marker);
  for (size_t id = 0; id < t.tokens.size(); ++id)
    if (t.tokens[id] == replaced) return static_cast<int32_t>(id);
  const CodePoints a = to_code_points(replaced);
  int best = 1 << 30;
  int32_t best_id = -1;
  for (size_t id = 0; id < t.tokens.size(); ++id) {
    const int d = levenshtein_dp(a, to_code_points(t.tokens[id]));
    if (d < best) best = d, best_id = static_cast<int32_t>(id);
  }
  return best_id;
}

TEST(VocabMap, TiesGoToLowestTargetIdAndMarkersAreReplaced) {
  const Vocabulary target{{"<unk>", "ab", "ba", "\xE2\x96\x81x", "abc"}, "\xE2\x96\x81"};
  const Vocabulary source{{"\xC4\xA0x", "aa", "bb", "abcd", "", "\xC4\xA0\xC4\xA0y", "\xE2\x96\x81x"}, "\xC4\xA0"};
  const VocabMap map = build_vocab_map(source, target, VocabMapMethod::mined, 2);
  for (size_t id = 0; id < source.tokens.size(); ++id)
    EXPECT_EQ(map.target_id[id], brute_force(source.tokens[id], source, target)) << source.tokens[id];
  EXPECT_EQ(map.target_id[0], 3);  // Ġx -> ▁x exact
  EXPECT_EQ(map.exact_hit[0], 1);
  EXPECT_EQ(map.target_id[1], 1);  // "aa": ab and ba both at 1, ab has the lower id
  EXPECT_EQ(map.target_id[4], 1);  // "": the shortest targets (length 2) at distance 2, lowest id
  EXPECT_EQ(map.exact_hit[6], 1);  // a literal ▁ in a source token is kept
  const VocabMap exact = build_vocab_map(source, target, VocabMapMethod::exact);
  EXPECT_EQ(exact.target_id[1], -1);
  // Exact: only hits are exported, keyed by the replaced source token.
  EXPECT_EQ(vocab_map_official_json(exact, source, target), "{\"\\u2581x\": \"\\u2581x\"}");
}

TEST(VocabMap, PythonJsonEscaping) {
  EXPECT_EQ(python_json_string("a\"\\\n\t\x01\x7F\xC3\xA9\xF0\x9F\x98\x80"),
            "\"a\\\"\\\\\\n\\t\\u0001\\u007f\\u00e9\\ud83d\\ude00\"");
  // Duplicate keys after marker replacement: first position, last value (Python dict).
  const Vocabulary target{{"x", "y"}, "\xE2\x96\x81"};
  const Vocabulary source{{"\xC4\xA0", "q", "\xE2\x96\x81"}, "\xC4\xA0"};
  VocabMap map;
  map.target_id = {0, 1, 1};
  map.exact_hit = {0, 0, 0};
  EXPECT_EQ(vocab_map_official_json(map, source, target), "{\"\\u2581\": \"y\", \"q\": \"y\"}");
}

TEST(VocabMap, MatchesBruteForceOnRandomVocabularies) {
  std::mt19937 rng(3);
  const std::vector<std::string> pieces = {"a", "b", "\xE2\x96\x81", "\xC4\xA0", "\xC3\xA9", "c", "\xE4\xB8\xAD"};
  auto random_vocab = [&](size_t n, size_t max_len) {
    std::vector<std::string> v;
    std::uniform_int_distribution<size_t> len(0, max_len), pick(0, pieces.size() - 1);
    for (size_t i = 0; i < n; ++i) {
      std::string s;
      for (size_t k = len(rng); k > 0; --k) s += pieces[pick(rng)];
      v.push_back(s);
    }
    return v;
  };
  for (int trial = 0; trial < 5; ++trial) {
    const Vocabulary target{random_vocab(300, 8), "\xE2\x96\x81"};
    Vocabulary source{random_vocab(200, 12), "\xC4\xA0"};
    source.tokens.push_back(std::string(20, 'a') + "b");  // > 16 code points: scalar path
    source.tokens.push_back(std::string(70, 'c'));        // > 64 code points: DP path
    const VocabMap map = build_vocab_map(source, target, VocabMapMethod::mined, 1 + trial % 2);
    for (size_t id = 0; id < source.tokens.size(); ++id)
      ASSERT_EQ(map.target_id[id], brute_force(source.tokens[id], source, target)) << "token " << id;
  }
}

TEST(VocabMap, CacheRoundTripAndKeyMismatch) {
  const Vocabulary target{{"ab", "ba", "c"}, "\xE2\x96\x81"};
  const Vocabulary source{{"aa", "c", "zz"}, "\xC4\xA0"};
  const auto dir = test::scratch_dir("vocab_map_cache");
  VocabMapKey key{"s1", "t1", VocabMapMethod::mined, 3, 3};
  const fs::path path = dir / vocab_map_cache_name(key);
  const VocabMap built = cached_vocab_map(path, key, source, target);
  ASSERT_TRUE(fs::exists(path));
  VocabMap read;
  ASSERT_TRUE(read_vocab_map_cache(path, key, read));
  EXPECT_EQ(read.target_id, built.target_id);
  EXPECT_EQ(read.exact_hit, built.exact_hit);
  VocabMapKey other = key;
  other.target_hash = "t2";
  EXPECT_FALSE(read_vocab_map_cache(path, other, read));  // another tokenizer: ignored (warning)
  std::string bytes = read_file(path);
  bytes[12] ^= 1;
  write_file_atomic(path, bytes);
  EXPECT_FALSE(read_vocab_map_cache(path, key, read));                                // corrupt: ignored
  EXPECT_EQ(cached_vocab_map(path, key, source, target).target_id, built.target_id);  // rebuilt
  EXPECT_TRUE(read_vocab_map_cache(path, key, read));
}

struct GoldenPair {
  const char* source;
  const char* target;
  const char* stem;
};

fs::path tokenizer_path(const std::string& name) {
  if (name == "llama2") return shared_dir() / "data/tokenizers/llama2/tokenizer.model";
  if (name == "neox") return shared_dir() / "data/tokenizers/gpt-neox-20b/20B_tokenizer.json";
  return shared_dir() / "data/models/stories260K/tok512.model";
}

void check_golden(const GoldenPair& pair) {
  const auto source_tok = tok::load_tokenizer(tokenizer_path(pair.source));
  const auto target_tok = tok::load_tokenizer(tokenizer_path(pair.target));
  const Vocabulary source = vocabulary_of(*source_tok), target = vocabulary_of(*target_tok);
  const auto start = std::chrono::steady_clock::now();
  const VocabMap map = build_vocab_map(source, target, VocabMapMethod::mined);
  const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  std::printf("[ MinED    ] %s -> %s: %zu x %zu tokens in %.2f s\n", pair.source, pair.target, source.tokens.size(),
              target.tokens.size(), seconds);

  const json ids = parse_json_file(golden_align_dir() / (std::string(pair.stem) + ".ids.json"));
  const auto expected_ids = ids.at("base_id_for_source_id").get<std::vector<int32_t>>();
  const auto expected_exact = ids.at("exact_hit").get<std::vector<int>>();
  ASSERT_EQ(map.target_id.size(), expected_ids.size());
  size_t wrong = 0;
  for (size_t id = 0; id < expected_ids.size(); ++id) {
    if (map.target_id[id] != expected_ids[id] || map.exact_hit[id] != expected_exact[id]) {
      if (++wrong <= 10)
        ADD_FAILURE() << "source id " << id << " '" << source.tokens[id] << "': got " << map.target_id[id]
                      << " expected " << expected_ids[id];
    }
  }
  EXPECT_EQ(wrong, 0u);
  // The JSON file: semantically (same keys, order and values), and byte for byte.
  const std::string ours = vocab_map_official_json(map, source, target);
  const std::string theirs = read_file(golden_align_dir() / (std::string(pair.stem) + ".json"));
  const json a = json::parse(ours), b = json::parse(theirs);
  EXPECT_EQ(a, b);
  EXPECT_TRUE(ours == theirs) << "JSON differs byte-wise";
}

TEST(VocabMapGolden, NeoxToLlama2) {
  FUSELLM_REQUIRE_SHARED();
  check_golden({"neox", "llama2", "vocab_map_neox_to_llama2"});
}
TEST(VocabMapGolden, Tok512ToLlama2) {
  FUSELLM_REQUIRE_SHARED();
  check_golden({"tok512", "llama2", "vocab_map_tok512_to_llama2"});
}
TEST(VocabMapGolden, Llama2ToTok512) {
  FUSELLM_REQUIRE_SHARED();
  check_golden({"llama2", "tok512", "vocab_map_llama2_to_tok512"});
}

}  // namespace
}  // namespace fusellm::align
