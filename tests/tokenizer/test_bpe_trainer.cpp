// train_bpe (fusellm train-tokenizer) against HF `tokenizers`: both styles, plain and with their number /
// script rules (byte-level --split-digits, metaspace --spm-rules), trained on the first 4000 lines
// of tiny Shakespeare write exactly the tokenizer.json the fixture was made from (its sha256), and
// fusellm's encoder gives, on 1251 texts (wikitext, TinyStories, held-out Shakespeare, hand-written
// Unicode / whitespace cases), the ids PyPI `tokenizers` gave (tests/tokenizer/fixtures/trained_bpe_reference.json, made by
// tools/tokenizer-reference/check_trained_bpe.py). Plus the trainer's own invariants on a tiny corpus.
#include <gtest/gtest.h>

#include <unistd.h>

#include <cstdlib>
#include <fstream>
#include <map>

#include "common/sha256.hpp"
#include "common/test_paths.hpp"
#include "fusellm/tokenizer/bpe_trainer.hpp"
#include "fusellm/tokenizer/tokenizer.hpp"
#include "fusellm/util/fs.hpp"

namespace fusellm::tok {
namespace {

std::vector<std::string> lines_of(const fs::path& file, size_t limit, bool skip_blank) {
  std::ifstream in(file);
  std::vector<std::string> out;
  for (std::string line; out.size() < limit && std::getline(in, line);)
    // Blank as Python's `not line.strip()` sees it (ASCII whitespace; the corpora have no other).
    if (!skip_blank || line.find_first_not_of(" \t\r\n\f\v") != std::string::npos) out.push_back(line);
  return out;
}

std::string join_ids(const std::vector<int32_t>& ids) {
  std::string s;
  for (size_t i = 0; i < ids.size(); ++i) s += (i ? "," : "") + std::to_string(ids[i]);
  return s;
}

fs::path write_trained(const BpeTrainResult& r, const std::string& name) {
  const fs::path dir = fs::temp_directory_path() / ("fusellm-bpe-" + name + "-" + std::to_string(::getpid()));
  fs::create_directories(dir);
  write_file_atomic(dir / "tokenizer_config.json", r.tokenizer_config.dump(2) + "\n");
  write_file_atomic(dir / "tokenizer.json", r.tokenizer_json.dump(2) + "\n");
  return dir;
}

TEST(BpeTrainer, EncodesAsHfTokenizersOnOverAThousandTexts) {
  FUSELLM_REQUIRE_SHARED();
  const fs::path corpus = test::shared_dir() / "data/corpus";
  // --txt-mode line: every non-blank line is a document.
  const std::vector<std::string> training = lines_of(corpus / "tinyshakespeare.txt", 4000, false);
  std::vector<std::string> train_docs;
  for (const auto& l : training)
    if (l.find_first_not_of(" \t\r\n\f\v") != std::string::npos) train_docs.push_back(l);
  std::vector<std::string> texts = lines_of(corpus / "wikitext-2-test.txt", 600, true);
  const auto stories = lines_of(corpus / "tinystories_sample.txt", 600, true);
  texts.insert(texts.end(), stories.begin(), stories.end());
  auto shakespeare = lines_of(corpus / "tinyshakespeare.txt", 4000 + 600 + 400, false);  // after the training lines
  shakespeare.erase(shakespeare.begin(), shakespeare.begin() + 4000);
  size_t held_out = 0;
  for (const auto& l : shakespeare)
    if (held_out < 600 && l.find_first_not_of(" \t\r\n\f\v") != std::string::npos) {
      texts.push_back(l);
      ++held_out;
    }
  std::map<std::string, std::pair<BpeTrainResult, fs::path>> trained;
  // Each style, and each with its number / script rules (--split-digits, --spm-rules).
  for (const std::string style : {"byte-level", "metaspace", "byte-level-digits", "metaspace-spm"}) {
    BpeTrainOptions o;
    o.style = style.rfind("byte-level", 0) == 0 ? BpeStyle::byte_level : BpeStyle::metaspace;
    o.split_digits = style == "byte-level-digits";
    o.sentencepiece_rules = style == "metaspace-spm";
    o.vocab_size = 1000;
    const BpeTrainResult r = train_bpe(train_docs, o);
    const fs::path dir = write_trained(r, style);
    // FUSELLM_KEEP_TRAINED_BPE=DIR keeps a copy for the fixture's script (DIR/<style>).
    if (const char* keep = std::getenv("FUSELLM_KEEP_TRAINED_BPE")) {
      fs::create_directories(fs::path(keep) / style);
      for (const char* f : {"tokenizer.json", "tokenizer_config.json"})
        fs::copy_file(dir / f, fs::path(keep) / style / f, fs::copy_options::overwrite_existing);
    }
    trained[style] = {r, dir};
  }
  const json ref = parse_json_file(fs::path(FUSELLM_SOURCE_DIR) / "tests/tokenizer/fixtures/trained_bpe_reference.json");
  for (const auto& e : ref["extra"]) texts.push_back(e.get<std::string>());
  ASSERT_EQ(texts.size(), ref["texts"].get<size_t>());
  ASSERT_GE(texts.size(), 1000u);
  for (const auto& [style, result_dir] : trained) {
    SCOPED_TRACE(style);
    const auto& [r, dir] = result_dir;
    const json& want = ref["tokenizers"][style];
    ASSERT_EQ(test::sha256_hex(read_file(dir / "tokenizer.json")), want["tokenizer_json_sha256"].get<std::string>())
        << "the trainer now learns another tokenizer: regenerate the fixture (see the tool's docstring)";
    const auto tokenizer = load_tokenizer(dir);
    size_t same = 0;
    for (size_t i = 0; i < texts.size(); ++i) {
      const auto ids = tokenizer->encode_ids(texts[i], true);
      if (i < want["ids"].size()) EXPECT_EQ(ids, want["ids"][i].get<std::vector<int32_t>>()) << json(texts[i]).dump();
      const bool equal = test::sha256_hex(join_ids(ids)).substr(0, 16) == want["hashes"][i].get<std::string>();
      EXPECT_TRUE(equal) << json(texts[i]).dump() << " -> " << join_ids(ids);
      same += equal;
    }
    std::printf("[ bpe      ] %s (vocab %lld, %lld merges): %zu of %zu texts encode as HF tokenizers %s\n", style.c_str(),
                (long long)tokenizer->vocab_size(), (long long)r.merges, same, texts.size(),
                ref["tokenizers_version"].get<std::string>().c_str());
    fs::remove_all(dir);
  }
}

TEST(BpeTrainer, MergesFrequentPairsDeterministicallyAndFallsBackToBytes) {
  const std::vector<std::string> texts = {"low lower lowest", "low low low", "newer newest wider", "lowlow"};
  BpeTrainOptions o;
  o.style = BpeStyle::metaspace;
  o.vocab_size = 3 + 256 + 40;
  o.limit_alphabet = 12;  // fewer than the corpus has: the rarest characters fall back to bytes
  const BpeTrainResult a = train_bpe(texts, o), b = train_bpe(texts, o);
  EXPECT_EQ(a.tokenizer_json.dump(), b.tokenizer_json.dump());
  const json& merges = a.tokenizer_json["model"]["merges"];
  ASSERT_FALSE(merges.empty());
  EXPECT_EQ(merges[0], json::array({"l", "o"}));  // "lo": the most frequent pair (9 times)
  const fs::path dir = write_trained(a, "tiny");
  const auto tokenizer = load_tokenizer(dir);
  // "z" never occurred: byte fallback <0x7A>; BOS in front; decoding restores the text.
  const auto ids = tokenizer->encode_ids("low z", true);
  EXPECT_EQ(ids.front(), 1);
  EXPECT_EQ(tokenizer->decode(ids, true), "low z");
  bool byte_token = false;
  for (int32_t id : ids) byte_token = byte_token || id == 3 + 0x7A;
  EXPECT_TRUE(byte_token);
  fs::remove_all(dir);
  o.vocab_size = 100;
  EXPECT_THROW(train_bpe(texts, o), Error);  // no room beyond the base vocabulary
  EXPECT_THROW(train_bpe({}, o), Error);
}

}  // namespace
}  // namespace fusellm::tok
