// Bad JSONL lines: skipped and counted (with file:line warnings) or fatal, never dropped silently.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "common/test_paths.hpp"
#include "corpus_test_util.hpp"
#include "fusellm/data/corpus.hpp"

using namespace fusellm;
using namespace fusellm::data;
using fusellm::test::texts_of;
using fusellm::test::write_bytes;
using ::testing::ElementsAre;
using ::testing::StartsWith;

namespace {

const std::string kMixed =
    "{\"text\": \"good one\"}\n"          // 1
    "{\"text\": \"cut short\n"            // 2: unterminated string
    "[\"an\", \"array\"]\n"               // 3
    "{\"title\": \"no text\"}\n"          // 4
    "{\"text\": 42}\n"                    // 5
    "{\"text\": null}\n"                  // 6
    "{\"text\": \"good two\"}\n"          // 7
    "{\"text\": \"bad \\ud800 escape\"}\n"  // 8: lone surrogate escape
    "not json at all\n";                  // 9

}  // namespace

TEST(CorpusBadLines, SkipCountsAndReportsEachWithFileAndLine) {
  auto dir = test::scratch_dir("bad_skip");
  write_bytes(dir / "mixed.jsonl", kMixed);
  const std::string path = (dir / "mixed.jsonl").string();
  CorpusOptions o;
  o.on_bad_line = BadLinePolicy::Skip;
  o.max_warnings = 4;
  CorpusStats stats;
  auto docs = read_corpus({path}, o, {}, &stats);
  EXPECT_THAT(texts_of(docs), ElementsAre("good one", "good two"));
  EXPECT_EQ(stats.bad_lines, 7u);
  ASSERT_EQ(stats.bad_line_examples.size(), 4u) << "only the first max_warnings are kept one by one";
  EXPECT_THAT(stats.bad_line_examples[0], StartsWith(path + ":2: invalid JSON: column "));
  EXPECT_EQ(stats.bad_line_examples[1], path + ":3: expected a JSON object, got array");
  EXPECT_EQ(stats.bad_line_examples[2], path + ":4: missing text field 'text'");
  EXPECT_EQ(stats.bad_line_examples[3], path + ":5: text field 'text' must be a string, got number");
  EXPECT_EQ(stats.summary(), "2 documents (16 bytes of text) from 1 files, 7 bad lines skipped");
}

TEST(CorpusBadLines, FailStopsAtTheFirstWithFileAndLine) {
  auto dir = test::scratch_dir("bad_fail");
  const std::string path = (dir / "mixed.jsonl").string();
  auto message_for = [&](const std::string& content) {
    write_bytes(dir / "mixed.jsonl", content);
    try {
      read_corpus({path}, {});  // on_bad_line defaults to fail
    } catch (const Error& e) {
      return std::string(e.what());
    }
    return std::string("no error");
  };
  const std::string hint = " (data.on_bad_line = \"skip\" skips such lines)";
  EXPECT_THAT(message_for(kMixed), StartsWith(path + ":2: invalid JSON: column 20: syntax error while parsing value - invalid string: missing closing quote"));
  EXPECT_EQ(message_for("{\"text\": \"ok\"}\n{\"title\": \"no text\"}\n"), path + ":2: missing text field 'text'" + hint);
  EXPECT_EQ(message_for("\n\n{\"text\": [1]}\n"), path + ":3: text field 'text' must be a string, got array" + hint);
  EXPECT_EQ(message_for("{\"text\": \"ok\"}\n\"just a string\"\n"), path + ":2: expected a JSON object, got string" + hint);
  EXPECT_EQ(message_for("{\"text\": \"ok\"}\n{\"text\": null}"), path + ":2: text field 'text' must be a string, got null" + hint);
}

TEST(CorpusBadLines, ZstdFileReportsDecompressedLineNumbers) {
  auto dir = test::scratch_dir("bad_zst");
  std::string content;
  for (int i = 1; i <= 500; ++i) content += i == 321 ? "{oops}\n" : "{\"text\": \"line " + std::to_string(i) + "\"}\n";
  write_bytes(dir / "big.jsonl.zst", test::zstd_compress(content));
  try {
    read_corpus({(dir / "big.jsonl.zst").string()}, {});
    FAIL() << "expected an error";
  } catch (const Error& e) {
    EXPECT_THAT(e.what(), StartsWith((dir / "big.jsonl.zst").string() + ":321: invalid JSON: "));
  }
  CorpusOptions skip;
  skip.on_bad_line = BadLinePolicy::Skip;
  CorpusStats stats;
  auto docs = read_corpus({(dir / "big.jsonl.zst").string()}, skip, {}, &stats);
  EXPECT_EQ(docs.size(), 499u);
  EXPECT_EQ(stats.bad_lines, 1u);
  EXPECT_EQ(docs[320].id, "big.jsonl.zst:322");
}
