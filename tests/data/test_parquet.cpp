// The Parquet reader against files pyarrow wrote (tests/data/fixtures/parquet, made by
// tools/parquet-reference/make_fixtures.py): five codec / encoding / page-version / row-group variants
// of one 230-row table (strings with nulls, empty and multi-page ones, int64, int32 with nulls, double
// with nulls, bool) read back exactly as pyarrow reads them; an unsupported codec, a nested column, a
// missing column, a truncated file, wrong magic, a corrupt footer and corrupt pages are one-line errors
// naming the file.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <fstream>
#include <functional>

#include "common/error_of.hpp"
#include "common/test_paths.hpp"
#include "fusellm/data/corpus.hpp"
#include "fusellm/data/parquet.hpp"
#include "fusellm/util/error.hpp"

namespace fusellm::data {
namespace {

using testing::HasSubstr;

const fs::path kDir = fs::path(FUSELLM_SOURCE_DIR) / "tests/data/fixtures/parquet";

using test::error_of;

fs::path write_bytes(const std::string& name, const std::string& bytes) {
  const fs::path p = test::scratch_dir("parquet") / name;
  std::ofstream(p, std::ios::binary) << bytes;
  return p;
}

TEST(Parquet, PyarrowFilesReadBackExactly) {
  const json expected = parse_json_file(kDir / "expected.json");
  const json& columns = expected["columns"];
  for (const auto& [name, groups] : expected["row_groups"].items()) {
    if (name == "brotli.parquet") continue;
    SCOPED_TRACE(name);
    ParquetFile f(kDir / name);
    EXPECT_EQ(f.num_rows(), expected["rows"].get<int64_t>());
    ASSERT_EQ(f.num_row_groups(), groups.get<size_t>());
    ASSERT_EQ(f.columns().size(), columns.size());
    for (const auto& c : f.columns()) {
      json all = json::array();
      for (size_t g = 0; g < f.num_row_groups(); ++g)
        for (auto& v : f.read_column(g, c.name)) all.push_back(v);
      EXPECT_EQ(all, columns[c.name]) << c.name;
    }
    // The corpus reader's path: strings and which rows have one.
    size_t k = 0;
    for (size_t g = 0; g < f.num_row_groups(); ++g) {
      std::vector<bool> present;
      const auto strings = f.read_strings(g, "text", present);
      size_t s = 0;
      for (bool here : present) {
        const json& want = columns["text"][k++];
        if (here) EXPECT_EQ(strings[s++], want.get<std::string>());
        else EXPECT_TRUE(want.is_null());
      }
    }
    const auto rows = f.read_rows(0);
    EXPECT_EQ(rows[5]["text"], columns["text"][5]);
    EXPECT_EQ(rows[3]["id"], columns["id"][3]);
  }
}

TEST(Parquet, BadFilesAreOneLineErrors) {
  EXPECT_THAT(error_of([] { ParquetFile f(kDir / "brotli.parquet"); f.read_column(0, "text"); }),
              HasSubstr("brotli.parquet: row group 0, column 'text': compression codec BROTLI is not supported"));
  EXPECT_THAT(error_of([] { ParquetFile f(kDir / "nested.parquet"); f.read_column(0, "tags"); }),
              HasSubstr("column 'tags' is nested"));
  {
    ParquetFile nested(kDir / "nested.parquet");  // the flat column of a file with a nested one still reads
    EXPECT_EQ(nested.read_column(0, "text"), std::vector<json>({"a", "b"}));
    EXPECT_EQ(nested.read_rows(0)[1], json({{"text", "b"}}));
  }
  EXPECT_THAT(error_of([] { ParquetFile f(kDir / "plain_none_v1.parquet"); f.read_column(0, "txt"); }),
              HasSubstr("no column 'txt' (columns: id, text, score, flag, small)"));
  EXPECT_THAT(error_of([] { ParquetFile f(kDir / "plain_none_v1.parquet"); std::vector<bool> present; f.read_strings(0, "id", present); }),
              HasSubstr("column 'id' holds no strings"));

  const std::string good = read_file(kDir / "dict_snappy_v1.parquet");
  const fs::path truncated = write_bytes("truncated.parquet", good.substr(0, good.size() - 100));
  EXPECT_THAT(error_of([&] { ParquetFile f(truncated); }), HasSubstr(truncated.string() + ": not a Parquet file"));
  std::string magic = good;
  magic[0] = 'X';
  const fs::path wrong = write_bytes("magic.parquet", magic);
  EXPECT_THAT(error_of([&] { ParquetFile f(wrong); }), HasSubstr("no PAR1 magic"));
  std::string long_footer = good;
  long_footer[good.size() - 5] = char(0x7f);  // footer length's high byte: far beyond the file
  const fs::path footer = write_bytes("footer.parquet", long_footer);
  EXPECT_THAT(error_of([&] { ParquetFile f(footer); }), HasSubstr("corrupt footer"));
  std::string garbled = good;
  const uint32_t len = uint32_t(uint8_t(good[good.size() - 8])) | uint32_t(uint8_t(good[good.size() - 7])) << 8 |
                       uint32_t(uint8_t(good[good.size() - 6])) << 16;
  for (size_t i = good.size() - 8 - len; i < good.size() - 8; ++i) garbled[i] = char(0xff);
  const fs::path meta = write_bytes("meta.parquet", garbled);
  EXPECT_THAT(error_of([&] { ParquetFile f(meta); }), HasSubstr("corrupt footer"));
  EXPECT_THAT(error_of([] { ParquetFile f("/nonexistent/x.parquet"); }), HasSubstr("/nonexistent/x.parquet: cannot read"));
  EXPECT_THAT(error_of([&] { ParquetFile f(write_bytes("short.parquet", "PAR1")); }), HasSubstr("too short"));

  // Corrupt page data anywhere in the column chunks: an Error naming the file, never a crash.
  for (const char* name : {"dict_snappy_v1.parquet", "plain_gzip_v1.parquet", "dict_zstd_v2.parquet", "plain_none_v1.parquet"}) {
    const std::string bytes = read_file(kDir / name);
    int errors = 0;
    for (size_t at = 4; at + 8 + 400 < bytes.size(); at += 97) {
      std::string bad = bytes;
      for (size_t k = 0; k < 8; ++k) bad[at + k] = char(bad[at + k] ^ 0x5a);
      const fs::path p = write_bytes("page.parquet", bad);
      const std::string e = error_of([&] {
        ParquetFile f(p);
        for (size_t g = 0; g < f.num_row_groups(); ++g) f.read_rows(g);
      });
      if (e != test::kNoError) {
        EXPECT_THAT(e, HasSubstr(p.string())) << name << " at " << at;
        ++errors;
      }
    }
    EXPECT_GT(errors, 0) << name;
  }
}

// `prepare`'s corpus reader takes .parquet files: the text field's column, nulls and empty strings
// skipped as empty documents, ids "<file>:<row>" with 1-based rows, across row groups.
TEST(Parquet, CorpusReaderReadsTheTextColumn) {
  const json expected = parse_json_file(kDir / "expected.json");
  CorpusStats stats;
  const auto docs = read_corpus({(kDir / "dict_zstd_v2.parquet").string()}, CorpusOptions{}, {}, &stats);
  std::vector<std::pair<std::string, std::string>> want;
  size_t empty = 0;
  for (size_t r = 0; r < expected["columns"]["text"].size(); ++r) {
    const json& t = expected["columns"]["text"][r];
    if (t.is_null() || t.get<std::string>().find_first_not_of(" \t\r\n") == std::string::npos) {
      ++empty;
      continue;
    }
    want.emplace_back(fmt::format("dict_zstd_v2.parquet:{}", r + 1), t.get<std::string>());
  }
  ASSERT_EQ(docs.size(), want.size());
  for (size_t i = 0; i < docs.size(); ++i) {
    EXPECT_EQ(docs[i].id, want[i].first);
    EXPECT_EQ(docs[i].text, want[i].second);
  }
  EXPECT_EQ(stats.empty_documents, empty);
  CorpusOptions other;
  other.text_field = "body";
  EXPECT_THAT(error_of([&] { read_corpus({(kDir / "plain_gzip_v1.parquet").string()}, other); }),
              HasSubstr("no column 'body'"));
}

}  // namespace
}  // namespace fusellm::data
