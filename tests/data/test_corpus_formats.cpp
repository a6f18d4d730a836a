// Every corpus format: JSONL (plain, .zst, .gz), plain text in each TxtMode, on small hand-made files and on
// the real corpora in ../shared/data/corpus.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <fstream>
#include <sstream>

#include "common/test_paths.hpp"
#include "corpus_test_util.hpp"
#include "fusellm/data/corpus.hpp"
#include "fusellm/util/fs.hpp"

using namespace fusellm;
using namespace fusellm::data;
using fusellm::test::ids_of;
using fusellm::test::texts_of;
using fusellm::test::write_bytes;
using ::testing::ElementsAre;
using ::testing::HasSubstr;

namespace {

CorpusOptions txt(TxtMode mode) {
  CorpusOptions o;
  o.txt_mode = mode;
  return o;
}

const std::string kJsonl =
    "{\"text\": \"caf\\u00e9 au lait\", \"meta\": {\"n\": 1}}\n"
    "\n"
    "{\"id\": 7, \"text\": \"line two\\nhas a newline\"}\n"
    "   \n"
    "{\"text\": \"\\ud83d\\ude00 emoji\", \"content\": \"other\"}";  // no final newline

}  // namespace

TEST(CorpusJsonl, ReadsTextFieldWithLineNumberIds) {
  auto dir = test::scratch_dir("jsonl_basic");
  write_bytes(dir / "a.jsonl", kJsonl);
  CorpusStats stats;
  auto docs = read_corpus({(dir / "a.jsonl").string()}, {}, {}, &stats);
  EXPECT_THAT(texts_of(docs), ElementsAre("caf\xC3\xA9 au lait", "line two\nhas a newline", "\xF0\x9F\x98\x80 emoji"));
  EXPECT_THAT(ids_of(docs), ElementsAre("a.jsonl:1", "a.jsonl:3", "a.jsonl:5"));
  EXPECT_EQ(docs[2].ordinal, 2u);
  EXPECT_EQ(docs[1].line, 3u);
  EXPECT_EQ(stats.documents, 3u);
  EXPECT_EQ(stats.blank_lines, 2u);
  EXPECT_EQ(stats.bad_lines, 0u);
  EXPECT_EQ(stats.input_bytes, kJsonl.size());
}

TEST(CorpusJsonl, CustomTextField) {
  auto dir = test::scratch_dir("jsonl_field");
  write_bytes(dir / "a.ndjson", "{\"content\": \"x1\"}\n{\"content\": \"x2\", \"text\": 5}\n");
  CorpusOptions o;
  o.text_field = "content";
  auto docs = read_corpus({(dir / "a.ndjson").string()}, o);
  EXPECT_THAT(texts_of(docs), ElementsAre("x1", "x2"));
}

TEST(CorpusJsonl, ZstdAndGzipReadLikePlain) {
  auto dir = test::scratch_dir("jsonl_compressed");
  write_bytes(dir / "plain" / "c.jsonl", kJsonl);
  write_bytes(dir / "zst" / "c.jsonl.zst", test::zstd_compress(kJsonl));
  write_bytes(dir / "gz" / "c.jsonl.gz", test::gzip_compress(kJsonl));
  auto plain = read_corpus({(dir / "plain").string()}, {});
  auto zst = read_corpus({(dir / "zst").string()}, {});
  auto gz = read_corpus({(dir / "gz").string()}, {});
  EXPECT_EQ(texts_of(zst), texts_of(plain));
  EXPECT_EQ(texts_of(gz), texts_of(plain));
  EXPECT_THAT(ids_of(zst), ElementsAre("c.jsonl.zst:1", "c.jsonl.zst:3", "c.jsonl.zst:5"));
  EXPECT_THAT(ids_of(gz), ElementsAre("c.jsonl.gz:1", "c.jsonl.gz:3", "c.jsonl.gz:5"));
}

TEST(CorpusJsonl, MultiFrameZstdMultiMemberGzipAndLongLines) {
  // Two frames / members back to back, and one record longer than the reader's 1 MiB buffer, so lines
  // cross buffer refills and frame boundaries.
  std::string long_text(3'000'000, 'x');
  for (size_t i = 0; i < long_text.size(); i += 997) long_text[i] = 'a' + char(i % 26);
  std::string part1 = "{\"text\": \"first\"}\n{\"text\": \"" + long_text + "\"}\n";
  std::string part2 = "{\"text\": \"last\"}\n";
  auto dir = test::scratch_dir("jsonl_frames");
  write_bytes(dir / "m.jsonl.zst", test::zstd_compress(part1, 1) + test::zstd_compress(part2, 19));
  write_bytes(dir / "m.jsonl.gz", test::gzip_compress(part1) + test::gzip_compress(part2));
  for (const char* name : {"m.jsonl.zst", "m.jsonl.gz"}) {
    auto docs = read_corpus({(dir / name).string()}, {});
    ASSERT_EQ(docs.size(), 3u) << name;
    EXPECT_EQ(docs[0].text, "first");
    EXPECT_EQ(docs[1].text, long_text) << name;
    EXPECT_EQ(docs[2].text, "last");
    EXPECT_EQ(docs[2].line, 3u);
  }
}

TEST(CorpusJsonl, CorruptCompressedFilesNameTheFile) {
  auto dir = test::scratch_dir("jsonl_corrupt");
  std::string payload;
  for (int i = 0; i < 2000; ++i) payload += "{\"text\": \"record number " + std::to_string(i) + "\"}\n";
  std::string zst = test::zstd_compress(payload);
  write_bytes(dir / "cut.jsonl.zst", zst.substr(0, zst.size() / 2));
  std::string gz = test::gzip_compress(payload);
  write_bytes(dir / "cut.jsonl.gz", gz.substr(0, gz.size() / 2));
  write_bytes(dir / "garbage.jsonl.zst", "this is not zstd at all\n");
  write_bytes(dir / "garbage.jsonl.gz", "{\"text\": \"not gzip\"}\n");
  auto message_of = [&](const char* name) {
    try {
      read_corpus({(dir / name).string()}, {});
    } catch (const Error& e) {
      return std::string(e.what());
    }
    return std::string("no error");
  };
  EXPECT_EQ(message_of("cut.jsonl.zst"), (dir / "cut.jsonl.zst").string() + ": truncated zstd data (file ends inside a frame)");
  EXPECT_EQ(message_of("cut.jsonl.gz"), (dir / "cut.jsonl.gz").string() + ": truncated gzip data (unexpected end of file)");
  EXPECT_EQ(message_of("garbage.jsonl.gz"), (dir / "garbage.jsonl.gz").string() + ": not gzip data (no gzip header)");
  EXPECT_THAT(message_of("garbage.jsonl.zst"), HasSubstr((dir / "garbage.jsonl.zst").string() + ": corrupt zstd data: "));
}

TEST(CorpusText, EachModeOnOneFile) {
  auto dir = test::scratch_dir("txt_modes");
  // BOM, CRLF line ends, blank lines of spaces, a separator line with trailing spaces.
  const std::string text =
      "\xEF\xBB\xBF" "alpha one\r\n"   // 1
      "alpha two\r\n"                  // 2
      "\r\n"                           // 3
      "   \n"                          // 4
      "beta\n"                         // 5
      "<|endoftext|>  \n"              // 6
      "\n"                             // 7
      "gamma one\n"                    // 8
      "\n"                             // 9
      "gamma two";                     // 10, no final newline
  write_bytes(dir / "t.txt", text);
  std::string spec = (dir / "t.txt").string();

  auto whole = read_corpus({spec}, txt(TxtMode::Document));
  ASSERT_EQ(whole.size(), 1u);
  EXPECT_EQ(whole[0].text, text.substr(3));  // byte for byte, minus the BOM
  EXPECT_EQ(whole[0].id, "t.txt:1");

  auto lines = read_corpus({spec}, txt(TxtMode::Line));
  EXPECT_THAT(texts_of(lines), ElementsAre("alpha one", "alpha two", "beta", "<|endoftext|>  ", "gamma one", "gamma two"));
  EXPECT_THAT(ids_of(lines), ElementsAre("t.txt:1", "t.txt:2", "t.txt:5", "t.txt:6", "t.txt:8", "t.txt:10"));

  auto paragraphs = read_corpus({spec}, txt(TxtMode::Paragraph));
  EXPECT_THAT(texts_of(paragraphs), ElementsAre("alpha one\nalpha two", "beta\n<|endoftext|>  ", "gamma one", "gamma two"));
  EXPECT_THAT(ids_of(paragraphs), ElementsAre("t.txt:1", "t.txt:5", "t.txt:8", "t.txt:10"));

  auto stories = read_corpus({spec}, txt(TxtMode::Separator));
  EXPECT_THAT(texts_of(stories), ElementsAre("alpha one\nalpha two\n\n\nbeta", "gamma one\n\ngamma two"));
  EXPECT_THAT(ids_of(stories), ElementsAre("t.txt:1", "t.txt:8"));

  CorpusOptions custom = txt(TxtMode::Separator);
  custom.txt_separator = "beta";
  EXPECT_THAT(texts_of(read_corpus({spec}, custom)),
              ElementsAre("alpha one\nalpha two", "<|endoftext|>  \n\ngamma one\n\ngamma two"));
}

TEST(CorpusText, CompressedTextFiles) {
  auto dir = test::scratch_dir("txt_compressed");
  const std::string text = "one\n\ntwo\nthree\n";
  write_bytes(dir / "a.txt.zst", test::zstd_compress(text));
  write_bytes(dir / "b.txt.gz", test::gzip_compress(text));
  auto docs = read_corpus({dir.string()}, txt(TxtMode::Paragraph));
  EXPECT_THAT(texts_of(docs), ElementsAre("one", "two\nthree", "one", "two\nthree"));
  EXPECT_THAT(ids_of(docs), ElementsAre("a.txt.zst:1", "a.txt.zst:3", "b.txt.gz:1", "b.txt.gz:3"));
}

TEST(CorpusText, InvalidUtf8IsABadLine) {
  auto dir = test::scratch_dir("txt_utf8");
  write_bytes(dir / "u.txt", "good\nbad \xC3\x28 byte\nalso good\n\nsecond \xED\xA0\x80 para\n\nfine\n");
  const std::string path = (dir / "u.txt").string();
  CorpusOptions o = txt(TxtMode::Line);
  o.on_bad_line = BadLinePolicy::Skip;
  CorpusStats stats;
  auto docs = read_corpus({path}, o, {}, &stats);
  EXPECT_THAT(texts_of(docs), ElementsAre("good", "also good", "fine"));
  EXPECT_EQ(stats.bad_lines, 2u);
  EXPECT_THAT(stats.bad_line_examples, ElementsAre(path + ":2: invalid UTF-8", path + ":5: invalid UTF-8"));

  // A paragraph holding a bad line is skipped whole; the report names the offending line.
  o.txt_mode = TxtMode::Paragraph;
  docs = read_corpus({path}, o, {}, &stats);
  EXPECT_THAT(texts_of(docs), ElementsAre("fine"));
  EXPECT_THAT(stats.bad_line_examples, ElementsAre(path + ":2: invalid UTF-8", path + ":5: invalid UTF-8"));

  o.on_bad_line = BadLinePolicy::Fail;
  for (TxtMode mode : {TxtMode::Document, TxtMode::Line, TxtMode::Paragraph, TxtMode::Separator}) {
    o.txt_mode = mode;
    try {
      read_corpus({path}, o);
      ADD_FAILURE() << "expected an error in mode " << to_string(mode);
    } catch (const Error& e) {
      EXPECT_EQ(std::string(e.what()), path + ":2: invalid UTF-8 (data.on_bad_line = \"skip\" skips such lines)");
    }
  }
}

TEST(Utf8, Validation) {
  EXPECT_TRUE(is_valid_utf8(""));
  EXPECT_TRUE(is_valid_utf8("plain ascii text, longer than eight bytes"));
  EXPECT_TRUE(is_valid_utf8("caf\xC3\xA9 \xE2\x82\xAC \xF0\x9F\x98\x80 \xF4\x8F\xBF\xBF"));
  EXPECT_FALSE(is_valid_utf8("\x80"));                  // lone continuation byte
  EXPECT_FALSE(is_valid_utf8("\xC0\xAF"));              // overlong '/'
  EXPECT_FALSE(is_valid_utf8("\xE0\x80\xAF"));          // overlong, three bytes
  EXPECT_FALSE(is_valid_utf8("\xED\xA0\x80"));          // UTF-16 surrogate
  EXPECT_FALSE(is_valid_utf8("\xF4\x90\x80\x80"));      // above U+10FFFF
  EXPECT_FALSE(is_valid_utf8("abc\xE2\x82"));           // truncated at the end
  EXPECT_FALSE(is_valid_utf8("\xFF"));
}

namespace {

// An independent paragraph splitter (std::getline, runs of lines that hold a non-space character).
std::vector<std::string> reference_paragraphs(const std::string& path) {
  std::ifstream in(path);
  std::vector<std::string> out;
  std::string line, current;
  bool open = false;
  while (std::getline(in, line)) {
    bool blank = line.find_first_not_of(" \t\r") == std::string::npos;
    if (blank) {
      if (open) out.push_back(current);
      open = false;
      current.clear();
    } else {
      if (open) current += '\n';
      current += line;
      open = true;
    }
  }
  if (open) out.push_back(current);
  return out;
}

}  // namespace

TEST(CorpusReal, TinyShakespeareParagraphsAndLinesInEveryCompression) {
  FUSELLM_REQUIRE_SHARED();
  const std::string path = (test::shared_dir() / "data/corpus/tinyshakespeare.txt").string();
  auto expected = reference_paragraphs(path);
  ASSERT_GT(expected.size(), 7000u);

  auto docs = read_corpus({path}, txt(TxtMode::Paragraph));
  ASSERT_EQ(docs.size(), expected.size());
  EXPECT_EQ(texts_of(docs), expected);
  EXPECT_EQ(docs.front().text.rfind("First Citizen:\nBefore we proceed any further, hear me speak.", 0), 0u);
  EXPECT_EQ(docs.front().id, "tinyshakespeare.txt:1");

  // The same bytes compressed (by the libraries' one-shot APIs) read back to the same documents.
  auto dir = test::scratch_dir("real_shakespeare");
  std::string bytes = read_file(path);
  write_bytes(dir / "tinyshakespeare.txt.zst", test::zstd_compress(bytes));
  write_bytes(dir / "tinyshakespeare.txt.gz", test::gzip_compress(bytes));
  for (const char* name : {"tinyshakespeare.txt.zst", "tinyshakespeare.txt.gz"}) {
    CorpusStats stats;
    auto again = read_corpus({(dir / name).string()}, txt(TxtMode::Paragraph), {}, &stats);
    EXPECT_EQ(texts_of(again), expected) << name;
    EXPECT_EQ(stats.input_bytes, bytes.size()) << name;
  }

  size_t non_blank_lines = 0;
  std::istringstream in(bytes);
  for (std::string line; std::getline(in, line);) non_blank_lines += line.find_first_not_of(" \t\r") != std::string::npos;
  EXPECT_EQ(read_corpus({path}, txt(TxtMode::Line)).size(), non_blank_lines);
}

TEST(CorpusReal, TinyStoriesSplitAtEndOfText) {
  FUSELLM_REQUIRE_SHARED();
  const std::string path = (test::shared_dir() / "data/corpus/tinystories_sample.txt").string();
  // Reference: split the raw text at every marker and trim each story.
  std::string raw = read_file(path);
  std::vector<std::string> expected;
  size_t pos = 0;
  while (pos <= raw.size()) {
    size_t hit = raw.find("<|endoftext|>", pos);
    std::string piece = raw.substr(pos, hit == std::string::npos ? std::string::npos : hit - pos);
    size_t b = piece.find_first_not_of(" \n"), e = piece.find_last_not_of(" \n");
    if (b != std::string::npos) expected.push_back(piece.substr(b, e - b + 1));
    if (hit == std::string::npos) break;
    pos = hit + std::string("<|endoftext|>").size();
  }
  ASSERT_EQ(expected.size(), 5u);

  auto docs = read_corpus({path}, txt(TxtMode::Separator));
  EXPECT_EQ(texts_of(docs), expected);
  EXPECT_EQ(docs[0].text.rfind("Once upon a time there was a little boy named Ben.", 0), 0u);
  ASSERT_EQ(raw[0], '\n');  // the sample starts with a blank line: the first story starts on line 2
  EXPECT_EQ(docs[0].id, "tinystories_sample.txt:2");
}
