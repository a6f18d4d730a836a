// The chunk dataset files: writer and reader round trip, the JSONL line layout (parsed independently),
// random access across shards, and every way a dataset can be damaged being reported with the file's name.
#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <xxhash.h>

#include <fstream>

#include "fusellm/data/chunk_dataset.hpp"
#include "test_chunk_util.hpp"

namespace fusellm::data {
namespace {

using ::testing::HasSubstr;

struct TestChunk {
  std::string doc;
  uint32_t part, parts;
  std::string text;
};

std::vector<TestChunk> sample_chunks() {
  std::vector<TestChunk> chunks;
  for (int d = 0; d < 9; ++d) {
    const uint32_t parts = 1 + d % 3;
    for (uint32_t p = 0; p < parts; ++p)
      chunks.push_back({"file.jsonl:" + std::to_string(d + 1), p, parts,
                        "doc " + std::to_string(d) + " part " + std::to_string(p) + " \"quoted\"\n\ttab \xE6\x97\xA5\xF0\x9F\x99\x82 \\"});
  }
  return chunks;
}

json sample_settings() { return {{"chunker", 1}, {"max_length", 64}, {"margin", 0}, {"tokenizers", json::array()}}; }

ChunkManifest write_sample(const fs::path& dir, uint64_t shard_chunks) {
  ChunkDatasetWriter writer(dir, sample_settings(), shard_chunks);
  const auto chunks = sample_chunks();
  for (size_t i = 0; i < chunks.size(); ++i)
    EXPECT_EQ(writer.add(chunks[i].doc, chunks[i].part, chunks[i].parts, chunks[i].text), i);
  ChunkDatasetTotals totals;
  totals.documents = 9;
  totals.chunks = chunks.size();
  return writer.finish({}, {"/corpus/file.jsonl"}, totals);
}

std::string hex_xxh3(const std::string& bytes) { return fmt::format("{:016x}", XXH3_64bits(bytes.data(), bytes.size())); }

std::string open_error(const fs::path& dir) {
  try {
    ChunkDataset::open(dir);
  } catch (const Error& e) {
    return e.what();
  }
  return "";
}

TEST(ChunkDataset, RoundTripAcrossShardsWithRandomAccess) {
  const fs::path dir = test::scratch_dir("chunk_roundtrip");
  const ChunkManifest written = write_sample(dir, 7);
  const auto expected = sample_chunks();
  ASSERT_EQ(expected.size(), 18u);
  ASSERT_EQ(written.shards.size(), 3u);  // 7 + 7 + 4

  ChunkDataset ds = ChunkDataset::open(dir);
  EXPECT_EQ(ds.size(), expected.size());
  EXPECT_EQ(ds.hash(), written.dataset_hash);
  EXPECT_EQ(ds.manifest().dataset_hash.size(), 16u);
  for (uint64_t id : {17, 0, 7, 6, 13, 14}) {  // random order, across shard edges
    const Chunk c = ds.at(id);
    EXPECT_EQ(c.id, id);
    EXPECT_EQ(c.doc, expected[id].doc);
    EXPECT_EQ(c.part, expected[id].part);
    EXPECT_EQ(c.parts, expected[id].parts);
    EXPECT_EQ(c.text, expected[id].text);
  }
  uint64_t n = 0;
  for (const Chunk& c : ds) {
    EXPECT_EQ(c.id, n);
    EXPECT_EQ(c.ends_document(), expected[n].part + 1 == expected[n].parts);
    ++n;
  }
  EXPECT_EQ(n, expected.size());
  EXPECT_THAT([&] { ds.at(18); }, ::testing::Throws<Error>());

  // The files as documented, read without the reader: JSONL lines and manifest checksums.
  const json manifest = parse_json_file(dir / "manifest.json");
  EXPECT_EQ(manifest["format"], "fusellm.chunk_dataset");
  EXPECT_EQ(manifest["version"], 1);
  uint64_t id = 0;
  for (const auto& shard : manifest["shards"]) {
    const std::string bytes = read_file(dir / shard["file"].get<std::string>());
    EXPECT_EQ(shard["xxh3_64"], hex_xxh3(bytes));
    EXPECT_EQ(shard["bytes"], bytes.size());
    EXPECT_EQ(shard["first_id"], id);
    std::istringstream lines(bytes);
    for (std::string line; std::getline(lines, line); ++id) {
      const json j = json::parse(line);
      EXPECT_EQ(j["id"], id);
      EXPECT_EQ(j["doc"], expected[id].doc);
      EXPECT_EQ(j["part"], expected[id].part);
      EXPECT_EQ(j["parts"], expected[id].parts);
      EXPECT_EQ(j["text"], expected[id].text);
    }
  }
  EXPECT_EQ(id, expected.size());
  EXPECT_TRUE(fs::exists(dir / "chunks-00000.jsonl"));
  EXPECT_TRUE(fs::exists(dir / "chunks-00002.jsonl"));
}

TEST(ChunkDataset, SameChunksGiveIdenticalFilesAndHash) {
  const fs::path a = test::scratch_dir("chunk_same_a"), b = test::scratch_dir("chunk_same_b");
  const auto ma = write_sample(a, 5), mb = write_sample(b, 5);
  EXPECT_EQ(ma.dataset_hash, mb.dataset_hash);
  EXPECT_EQ(read_file(a / "manifest.json"), read_file(b / "manifest.json"));
  for (const auto& s : ma.shards) EXPECT_EQ(read_file(a / s.file), read_file(b / s.file));
  // Another shard size gives other files and so another dataset hash.
  const fs::path c = test::scratch_dir("chunk_same_c");
  EXPECT_NE(write_sample(c, 6).dataset_hash, ma.dataset_hash);
}

TEST(ChunkDataset, CorruptedShardIsAChecksumErrorNamingIt) {
  const fs::path dir = test::scratch_dir("chunk_corrupt");
  write_sample(dir, 7);
  const fs::path shard = dir / "chunks-00001.jsonl";
  std::string bytes = read_file(shard);
  const size_t at = bytes.find("part");
  bytes[at] = 'P';  // same size, other content
  test::write_text_file(shard, bytes);
  const std::string error = open_error(dir);
  EXPECT_THAT(error, HasSubstr(shard.string()));
  EXPECT_THAT(error, HasSubstr("checksum mismatch"));
  // Where: the 4 KiB block (block checksums in the manifest) holding the changed byte.
  const size_t block = at / 4096 * 4096;
  EXPECT_THAT(error, HasSubstr(fmt::format("in bytes {}..{}", block, std::min(block + 4096, bytes.size()) - 1)));
  // Without checksum verification it opens, and the damaged line is reported where it is read.
  ChunkDataset ds = ChunkDataset::open(dir, /*verify_checksums=*/false);
  EXPECT_NO_THROW(ds.at(0));
  try {
    ds.at(7);
    FAIL() << "expected an error";
  } catch (const Error& e) {
    EXPECT_THAT(e.what(), HasSubstr(shard.string() + ":1: missing required key 'part'"));
  }
}

TEST(ChunkDataset, TruncatedMissingAndAlteredFilesAreReported) {
  const fs::path dir = test::scratch_dir("chunk_damage");
  write_sample(dir, 7);
  const fs::path shard = dir / "chunks-00002.jsonl";
  const std::string bytes = read_file(shard);
  test::write_text_file(shard, bytes.substr(0, bytes.size() - 10));
  EXPECT_THAT(open_error(dir), HasSubstr(shard.string()));
  EXPECT_THAT(open_error(dir), HasSubstr("truncated"));
  fs::remove(shard);
  EXPECT_THAT(open_error(dir), HasSubstr(shard.string() + ": shard listed in manifest.json is missing"));
  test::write_text_file(shard, bytes);
  EXPECT_NO_THROW(ChunkDataset::open(dir));

  // A manifest edited by hand no longer matches its dataset hash.
  const std::string manifest = read_file(dir / "manifest.json");
  std::string edited = manifest;
  edited.replace(edited.find("\"max_length\": 64"), 16, "\"max_length\": 65");
  test::write_text_file(dir / "manifest.json", edited);
  EXPECT_THAT(open_error(dir), HasSubstr("dataset_hash"));
  test::write_text_file(dir / "manifest.json", manifest);
  EXPECT_NO_THROW(ChunkDataset::open(dir));
}

TEST(ChunkDataset, WithoutManifestItIsUnfinished) {
  const fs::path dir = test::scratch_dir("chunk_unfinished");
  write_sample(dir, 7);
  EXPECT_TRUE(ChunkDataset::is_complete(dir));
  fs::remove(dir / "manifest.json");
  EXPECT_FALSE(ChunkDataset::is_complete(dir));
  EXPECT_THAT(open_error(dir), HasSubstr("unfinished"));
  EXPECT_THAT(open_error(dir / "nope"), HasSubstr("does not exist"));

  // A new writer clears the leftovers of the previous run (shards and temp files), and nothing else.
  test::write_text_file(dir / "chunks-00000.jsonl.tmp.123.4", "partial");
  test::write_text_file(dir / "notes.txt", "mine");
  {
    ChunkDatasetWriter writer(dir, sample_settings(), 100);
    EXPECT_FALSE(fs::exists(dir / "chunks-00000.jsonl.tmp.123.4"));
    EXPECT_FALSE(fs::exists(dir / "chunks-00001.jsonl"));
    EXPECT_FALSE(fs::exists(dir / "chunks-00002.jsonl"));
    writer.add("d:1", 0, 1, "text");
    // Destroyed without finish(): no manifest, no temp file left.
  }
  EXPECT_FALSE(ChunkDataset::is_complete(dir));
  EXPECT_TRUE(fs::exists(dir / "notes.txt"));
  for (const auto& e : fs::directory_iterator(dir)) EXPECT_THAT(e.path().filename().string(), ::testing::Not(HasSubstr(".tmp.")));
}

}  // namespace
}  // namespace fusellm::data
