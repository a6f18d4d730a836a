// ChunkDatasetWriter: JSONL shards streamed to temp files, checksummed while written, renamed into place;
// manifest.json last.
#include <xxhash.h>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <regex>

#include "fusellm/data/chunk_dataset.hpp"
#include "fusellm/util/error.hpp"

namespace fusellm::data {

namespace {

std::string shard_name(size_t index) { return fmt::format("chunks-{:05}.jsonl", index); }

// Files a writer (or an interrupted one) leaves in a dataset directory: shards, the manifest, their temps.
bool is_dataset_file(const std::string& name) {
  static const std::regex pattern(R"((chunks-\d+\.jsonl|manifest\.json)(\.tmp\.\d+\.\d+)?)");
  return std::regex_match(name, pattern);
}

}  // namespace

struct ChunkDatasetWriter::State {
  fs::path dir;
  json settings;
  uint64_t shard_chunks = 0;
  uint64_t next_id = 0;
  std::vector<ChunkDatasetShard> shards;
  // The open shard.
  std::FILE* file = nullptr;
  fs::path temp_path;
  ChunkDatasetShard current;
  XXH3_state_t* hash = nullptr;
  std::string line;

  void open_shard() {
    current = {};
    current.file = shard_name(shards.size());
    current.first_id = next_id;
    temp_path = temp_path_for(dir / current.file);
    file = std::fopen(temp_path.c_str(), "wb");
    if (!file) fail("{}: cannot create: {}", temp_path.string(), std::strerror(errno));
    XXH3_64bits_reset(hash);
  }

  void write(const std::string& bytes) {
    if (std::fwrite(bytes.data(), 1, bytes.size(), file) != bytes.size())
      fail("{}: write failed: {}", temp_path.string(), std::strerror(errno));
    XXH3_64bits_update(hash, bytes.data(), bytes.size());
    current.bytes += bytes.size();
  }

  void close_shard() {
    const bool ok = std::fflush(file) == 0;
    const bool closed = std::fclose(file) == 0;
    file = nullptr;
    if (!ok || !closed) fail("{}: write failed (disk full?)", temp_path.string());
    current.xxh3_64 = fmt::format("{:016x}", XXH3_64bits_digest(hash));
    current.blocks = BlockDigest::of_file(temp_path);
    commit_temp_file(temp_path, dir / current.file);
    temp_path.clear();
    shards.push_back(current);
  }
};

ChunkDatasetWriter::ChunkDatasetWriter(const fs::path& dir, json settings, uint64_t shard_chunks)
    : state_(std::make_unique<State>()) {
  FUSELLM_CHECK(shard_chunks >= 1, "{}: shard size must be at least 1 chunk", dir.string());
  state_->dir = dir;
  state_->settings = std::move(settings);
  state_->shard_chunks = shard_chunks;
  state_->hash = XXH3_createState();
  std::error_code ec;
  fs::create_directories(dir, ec);
  if (ec) fail("{}: cannot create directory: {}", dir.string(), ec.message());
  // The manifest goes first: from here on the directory is an unfinished dataset.
  fs::remove(dir / kChunkManifestName, ec);
  if (ec) fail("{}: cannot remove: {}", (dir / kChunkManifestName).string(), ec.message());
  for (const auto& entry : fs::directory_iterator(dir)) {
    if (!is_dataset_file(entry.path().filename().string())) continue;
    fs::remove(entry.path(), ec);
    if (ec) fail("{}: cannot remove: {}", entry.path().string(), ec.message());
  }
}

ChunkDatasetWriter::~ChunkDatasetWriter() {
  if (!state_) return;
  if (state_->file) {
    std::fclose(state_->file);
    std::error_code ec;
    fs::remove(state_->temp_path, ec);
  }
  if (state_->hash) XXH3_freeState(state_->hash);
}

uint64_t ChunkDatasetWriter::add(std::string_view doc, uint32_t part, uint32_t parts, std::string_view text) {
  State& s = *state_;
  if (!s.file) s.open_shard();
  const uint64_t id = s.next_id++;
  s.line = fmt::format(R"({{"id":{},"doc":{},"part":{},"parts":{},"text":{}}})", id, json(std::string(doc)).dump(),
                       part, parts, json(std::string(text)).dump());
  s.line += '\n';
  s.write(s.line);
  if (++s.current.chunks == s.shard_chunks) s.close_shard();
  return id;
}

ChunkManifest ChunkDatasetWriter::finish(std::vector<ChunkDatasetModel> models, std::vector<std::string> corpus_paths,
                                         ChunkDatasetTotals totals) {
  State& s = *state_;
  if (s.file) s.close_shard();
  FUSELLM_CHECK(totals.chunks == s.next_id, "{}: totals say {} chunks but {} were written", s.dir.string(),
                totals.chunks, s.next_id);
  ChunkManifest m;
  m.settings = s.settings;
  m.models = std::move(models);
  m.corpus_paths = std::move(corpus_paths);
  m.totals = std::move(totals);
  m.shards = s.shards;
  m.dataset_hash = m.compute_hash();
  write_file_atomic(s.dir / kChunkManifestName, m.to_json().dump(2) + "\n");
  return m;
}

}  // namespace fusellm::data
