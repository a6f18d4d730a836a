// ChunkDataset: opens and checks a finished chunk dataset (manifest, shard sizes, checksums, line counts)
// and reads chunks by id from memory-mapped shards.
#include <xxhash.h>

#include <algorithm>
#include <cstring>

#include "fusellm/data/chunk_dataset.hpp"
#include "fusellm/util/error.hpp"

namespace fusellm::data {

struct ChunkDataset::State {
  fs::path dir;
  ChunkManifest manifest;
  std::vector<MappedFile> files;                 // per shard
  std::vector<std::vector<uint64_t>> line_starts;  // per shard: byte offset of each line, plus the size
};

ChunkDataset::ChunkDataset() : state_(std::make_unique<State>()) {}
ChunkDataset::ChunkDataset(ChunkDataset&&) noexcept = default;
ChunkDataset& ChunkDataset::operator=(ChunkDataset&&) noexcept = default;
ChunkDataset::~ChunkDataset() = default;

bool ChunkDataset::is_complete(const fs::path& dir) {
  std::error_code ec;
  return fs::is_regular_file(dir / kChunkManifestName, ec);
}

ChunkDataset ChunkDataset::open(const fs::path& dir, bool verify_checksums) {
  const fs::path manifest_path = dir / kChunkManifestName;
  if (!is_complete(dir)) {
    std::error_code ec;
    if (!fs::is_directory(dir, ec)) fail("{}: chunk dataset directory does not exist (run fusellm prepare)", dir.string());
    fail("{}: missing: the chunk dataset is unfinished (run fusellm prepare again)", manifest_path.string());
  }
  ChunkDataset ds;
  State& s = *ds.state_;
  s.dir = dir;
  s.manifest = ChunkManifest::from_json(parse_json_file(manifest_path), manifest_path.string());
  const ChunkManifest& m = s.manifest;
  const std::string expected_hash = m.compute_hash();
  FUSELLM_CHECK(expected_hash == m.dataset_hash, "{}: dataset_hash {} does not match its settings and shards ({}); the manifest was altered",
                manifest_path.string(), m.dataset_hash, expected_hash);

  uint64_t next_id = 0;
  for (const auto& shard : m.shards) {
    const fs::path path = dir / shard.file;
    std::error_code ec;
    if (!fs::is_regular_file(path, ec)) fail("{}: shard listed in {} is missing", path.string(), kChunkManifestName);
    FUSELLM_CHECK(shard.first_id == next_id, "{}: shard {} starts at chunk {}, expected {}", manifest_path.string(),
                  shard.file, shard.first_id, next_id);
    MappedFile file(path);
    FUSELLM_CHECK(file.size() == shard.bytes, "{}: {} bytes, manifest says {} (truncated or altered)", path.string(),
                  file.size(), shard.bytes);
    const char* data = reinterpret_cast<const char*>(file.data());
    if (verify_checksums) {
      const std::string actual = xxh3_hex(data, file.size());
      FUSELLM_CHECK(actual == shard.xxh3_64, "{}: checksum mismatch{} (xxh3_64 {}, manifest says {}): the shard was altered",
                    path.string(), shard.blocks.locate_damage(data, file.size()), actual, shard.xxh3_64);
    }
    std::vector<uint64_t> starts;
    starts.reserve(shard.chunks + 1);
    for (size_t pos = 0; pos < file.size();) {
      starts.push_back(pos);
      const void* nl = std::memchr(data + pos, '\n', file.size() - pos);
      FUSELLM_CHECK(nl != nullptr, "{}: last line has no newline (truncated)", path.string());
      pos = static_cast<const char*>(nl) - data + 1;
    }
    FUSELLM_CHECK(starts.size() == shard.chunks, "{}: {} lines, manifest says {} chunks", path.string(), starts.size(),
                  shard.chunks);
    starts.push_back(file.size());
    next_id += shard.chunks;
    s.files.push_back(std::move(file));
    s.line_starts.push_back(std::move(starts));
  }
  FUSELLM_CHECK(next_id == m.totals.chunks, "{}: shards hold {} chunks, totals say {}", manifest_path.string(), next_id,
                m.totals.chunks);
  return ds;
}

uint64_t ChunkDataset::size() const { return state_->manifest.totals.chunks; }
const ChunkManifest& ChunkDataset::manifest() const { return state_->manifest; }
const fs::path& ChunkDataset::dir() const { return state_->dir; }

Chunk ChunkDataset::at(uint64_t id) const {
  const State& s = *state_;
  FUSELLM_CHECK(id < size(), "{}: chunk id {} out of range (dataset has {} chunks)", s.dir.string(), id, size());
  const auto& shards = s.manifest.shards;
  const auto it = std::upper_bound(shards.begin(), shards.end(), id,
                                   [](uint64_t v, const ChunkDatasetShard& sh) { return v < sh.first_id; });
  const size_t index = static_cast<size_t>(it - shards.begin()) - 1;
  const uint64_t line = id - shards[index].first_id;
  const auto& starts = s.line_starts[index];
  const char* data = reinterpret_cast<const char*>(s.files[index].data());
  const std::string_view text(data + starts[line], starts[line + 1] - starts[line] - 1);
  const std::string where = fmt::format("{}:{}", (s.dir / shards[index].file).string(), line + 1);

  json doc;
  try {
    doc = json::parse(text);
  } catch (const json::exception& e) {
    fail("{}: invalid JSON: {}", where, e.what());
  }
  FUSELLM_CHECK(doc.is_object(), "{}: expected a JSON object", where);
  JsonView v(doc, where);
  Chunk chunk;
  chunk.id = v.get<uint64_t>("id");
  FUSELLM_CHECK(chunk.id == id, "{}: holds chunk {}, expected {}", where, chunk.id, id);
  chunk.doc = v.get<std::string>("doc");
  chunk.part = v.get<uint32_t>("part");
  chunk.parts = v.get<uint32_t>("parts");
  chunk.text = v.get<std::string>("text");
  FUSELLM_CHECK(chunk.part < chunk.parts, "{}: part {} of {}", where, chunk.part, chunk.parts);
  return chunk;
}

}  // namespace fusellm::data
