// Resolving corpus specs: directories, globs, sorted order, stable ids, missing and empty corpora, hashes.
#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <unistd.h>
#include <xxhash.h>

#include "common/error_of.hpp"
#include "common/test_paths.hpp"
#include "corpus_test_util.hpp"
#include "fusellm/data/corpus.hpp"

using namespace fusellm;
using namespace fusellm::data;
using fusellm::test::ids_of;
using fusellm::test::texts_of;
using fusellm::test::write_bytes;
using ::testing::ElementsAre;

namespace {

std::vector<std::string> names_of(const std::vector<CorpusFile>& files) {
  std::vector<std::string> names;
  for (const auto& f : files) names.push_back(f.name);
  return names;
}

using test::error_of;

// A small tree: files created out of order, a hidden folder and a file of another type.
fs::path make_tree(const std::string& name) {
  auto dir = test::scratch_dir(name);
  write_bytes(dir / "b" / "2.txt", "b-one\n\nb-two\n");
  write_bytes(dir / "c.txt.gz", test::gzip_compress("c-one\n"));
  write_bytes(dir / "a" / "1.jsonl", "{\"text\": \"a-one\"}\n{\"text\": \"a-two\"}\n");
  write_bytes(dir / "a" / "0.jsonl.zst", test::zstd_compress("{\"text\": \"a-zero\"}\n"));
  write_bytes(dir / ".hidden" / "x.txt", "hidden\n");
  write_bytes(dir / "notes.md", "# not a corpus file\n");
  return dir;
}

}  // namespace

TEST(CorpusFiles, DirectoryIsSearchedRecursivelyInSortedOrder) {
  auto dir = make_tree("tree_dir");
  auto files = resolve_corpus({dir.string()});
  EXPECT_THAT(names_of(files), ElementsAre("a/0.jsonl.zst", "a/1.jsonl", "b/2.txt", "c.txt.gz"));
  EXPECT_EQ(files[0].format, FileFormat::Jsonl);
  EXPECT_EQ(files[0].compression, Compression::Zstd);
  EXPECT_EQ(files[3].format, FileFormat::Text);
  EXPECT_EQ(files[3].compression, Compression::Gzip);
  EXPECT_EQ(files[2].size_bytes, 13u);
  EXPECT_TRUE(files[0].path.is_absolute());

  auto docs = read_corpus({dir.string()}, {});
  EXPECT_THAT(texts_of(docs), ElementsAre("a-zero", "a-one", "a-two", "b-one", "b-two", "c-one"));
  EXPECT_THAT(ids_of(docs), ElementsAre("a/0.jsonl.zst:1", "a/1.jsonl:1", "a/1.jsonl:2", "b/2.txt:1", "b/2.txt:3",
                                        "c.txt.gz:1"));
}

TEST(CorpusFiles, GlobsAndListsAreSortedAndDeduplicated) {
  auto dir = make_tree("tree_glob");
  EXPECT_THAT(names_of(resolve_corpus({(dir / "a" / "*.jsonl*").string()})), ElementsAre("0.jsonl.zst", "1.jsonl"));
  EXPECT_THAT(names_of(resolve_corpus({(dir / "{b,a}").string()})),
              ElementsAre("a/0.jsonl.zst", "a/1.jsonl", "b/2.txt"));
  // Given in reverse order and overlapping: the same sorted list, each file once.
  auto files = resolve_corpus({(dir / "c.txt.gz").string(), (dir / "b" / "2.txt").string(), dir.string(),
                               (dir / "a" / "1.jsonl").string()});
  EXPECT_THAT(names_of(files), ElementsAre("a/0.jsonl.zst", "a/1.jsonl", "b/2.txt", "c.txt.gz"));
  // Relative specs resolve against base_dir.
  EXPECT_THAT(names_of(resolve_corpus({"b/*.txt", "c.txt.gz"}, dir)), ElementsAre("b/2.txt", "c.txt.gz"));

  EXPECT_EQ(error_of([&] { resolve_corpus({(dir / "*.parquet").string()}); }),
            (dir / "*.parquet").string() + ": no file matches this pattern");
  EXPECT_EQ(error_of([&] { resolve_corpus({(dir / "*.md").string()}); }),
            (dir / "notes.md").string() +
                ": unsupported corpus file type (expected .jsonl, .ndjson, .txt, each optionally followed by .gz or .zst, or .parquet)");
}

TEST(CorpusFiles, IdsAreStableAcrossReadsAndLocations) {
  auto dir = make_tree("tree_stable");
  auto first = read_corpus({dir.string()}, {});
  auto second = read_corpus({dir.string()}, {});
  EXPECT_EQ(ids_of(first), ids_of(second));
  EXPECT_EQ(texts_of(first), texts_of(second));
  // The whole corpus moved elsewhere keeps its ids; numeric keys follow the string ids.
  auto moved = test::scratch_dir("tree_stable_moved") / "deeper";
  fs::create_directories(moved);
  fs::copy(dir, moved, fs::copy_options::recursive);
  auto third = read_corpus({moved.string()}, {});
  EXPECT_EQ(ids_of(third), ids_of(first));
  for (size_t i = 0; i < first.size(); ++i) {
    EXPECT_EQ(document_key(third[i].id), document_key(first[i].id));
    EXPECT_EQ(document_key(first[i].id), XXH3_64bits(first[i].id.data(), first[i].id.size()));
    EXPECT_EQ(third[i].ordinal, i);
  }
}

TEST(CorpusFiles, StreamingReaderMatchesFilesAndStats) {
  auto dir = make_tree("tree_stream");
  CorpusReader reader({dir.string()}, {});
  ASSERT_EQ(reader.files().size(), 4u);
  Document doc;
  std::vector<size_t> file_indices;
  while (reader.next(doc)) file_indices.push_back(doc.file_index);
  EXPECT_THAT(file_indices, ElementsAre(0, 1, 1, 2, 2, 3));
  EXPECT_FALSE(reader.next(doc)) << "the end stays the end";
  EXPECT_EQ(reader.stats().files_read, 4u);
  EXPECT_EQ(reader.stats().documents, 6u);
  EXPECT_EQ(reader.stats().text_bytes, std::string("a-zeroa-onea-twob-oneb-twoc-one").size());
  EXPECT_EQ(reader.stats().summary(), "6 documents (31 bytes of text) from 4 files");
}

TEST(CorpusFiles, MissingUnreadableAndUnsupported) {
  auto dir = test::scratch_dir("missing");
  EXPECT_EQ(error_of([&] { CorpusReader r({(dir / "nope.jsonl").string()}, {}); }),
            (dir / "nope.jsonl").string() + ": corpus file not found");
  EXPECT_EQ(error_of([&] { read_corpus({"nope.txt"}, {}, dir); }), (dir / "nope.txt").string() + ": corpus file not found");
  write_bytes(dir / "data.csv", "a,b\n");
  EXPECT_EQ(error_of([&] { resolve_corpus({(dir / "data.csv").string()}); }),
            (dir / "data.csv").string() +
                ": unsupported corpus file type (expected .jsonl, .ndjson, .txt, each optionally followed by .gz or .zst, or .parquet)");
  EXPECT_EQ(error_of([&] { resolve_corpus({dir.string()}); }),
            dir.string() +
                ": directory holds no corpus files (.jsonl, .ndjson, .txt, each optionally followed by .gz or .zst, or .parquet); "
                "1 other files ignored");
  EXPECT_EQ(error_of([&] { resolve_corpus({}); }), "corpus: no files, directories or patterns given");
  if (::geteuid() != 0) {  // root reads everything
    write_bytes(dir / "locked.txt", "secret\n");
    fs::permissions(dir / "locked.txt", fs::perms::none);
    EXPECT_EQ(error_of([&] { resolve_corpus({(dir / "locked.txt").string()}); }),
              (dir / "locked.txt").string() + ": cannot read: Permission denied");
  }
}

TEST(CorpusFiles, EmptyCorpusIsAnError) {
  auto dir = test::scratch_dir("empty");
  write_bytes(dir / "empty.txt", "");
  EXPECT_EQ(error_of([&] { read_corpus({(dir / "empty.txt").string()}, {}); }),
            (dir / "empty.txt").string() + ": corpus has no documents (0 documents (0 bytes of text) from 1 files)");
  write_bytes(dir / "blank" / "a.jsonl", "{\"text\": \"\"}\n\n{\"text\": \"  \\n \"}\n");
  write_bytes(dir / "blank" / "b.txt", "\n   \n\n");
  EXPECT_EQ(error_of([&] { read_corpus({(dir / "blank").string()}, {}); }),
            (dir / "blank" / "a.jsonl").string() +
                " and 1 more files: corpus has no documents (0 documents (0 bytes of text) from 2 files, "
                "2 empty documents skipped)");
}

TEST(CorpusFiles, ContentHashIsXxh3OfTheBytesOnDisk) {
  auto dir = test::scratch_dir("hash");
  write_bytes(dir / "empty.txt", "");
  // XXH3-64 of empty input, the published test vector.
  EXPECT_EQ(content_hash(dir / "empty.txt"), "2d06800538d394c2");
  // More than the 1 MiB read buffer, against the one-shot API.
  std::string big(3 * 1024 * 1024 + 17, '\0');
  for (size_t i = 0; i < big.size(); ++i) big[i] = char((i * 2654435761u) >> 13);
  write_bytes(dir / "big.bin", big);
  EXPECT_EQ(content_hash(dir / "big.bin"), fmt::format("{:016x}", XXH3_64bits(big.data(), big.size())));
  EXPECT_THROW(content_hash(dir / "absent"), Error);
}

TEST(CorpusFiles, RealCorpusDirectoryGlob) {
  FUSELLM_REQUIRE_SHARED();
  auto corpus = test::shared_dir() / "data" / "corpus";
  auto files = resolve_corpus({(corpus / "tiny*.txt").string()});
  EXPECT_THAT(names_of(files), ElementsAre("tinyshakespeare.txt", "tinystories_sample.txt"));
  EXPECT_EQ(files[1].size_bytes, 3794u);  // SOURCES.md
}
