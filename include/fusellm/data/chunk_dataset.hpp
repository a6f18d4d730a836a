#pragma once
// The chunk dataset: what `fusellm prepare` makes of a corpus and what every later stage reads. A directory
// of JSONL shards (one chunk per line: id, document id, part, number of parts, text) and manifest.json,
// written last and atomically: without it the directory is an unfinished dataset. The manifest records the
// settings the chunks depend on (corpus content hashes, tokenizer hashes and budgets, max_length, margin),
// per-shard XXH3-64 checksums and the dataset hash later stages record. Format: docs/formats.md.
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "fusellm/util/block_digest.hpp"
#include "fusellm/data/chunker.hpp"
#include "fusellm/data/corpus.hpp"
#include "fusellm/util/fs.hpp"
#include "fusellm/util/json.hpp"

namespace fusellm::data {

inline constexpr const char* kChunkDatasetFormat = "fusellm.chunk_dataset";
inline constexpr int kChunkDatasetVersion = 1;
inline constexpr const char* kChunkManifestName = "manifest.json";

// One model's tokenizer as the dataset was cut for it.
struct ChunkDatasetModel {
  std::string name;
  std::string role;            // "source" | "target"
  std::string tokenizer_path;  // informational (not hashed)
  std::string tokenizer_hash;
  bool add_bos = false, add_eos = false;
  int64_t budget = 0;          // chunk_token_budget(max_length, margin, add_bos, add_eos)
};

struct ChunkDatasetShard {
  std::string file;  // relative to the dataset directory
  uint64_t first_id = 0;
  uint64_t chunks = 0;
  uint64_t bytes = 0;
  std::string xxh3_64;  // 16 lowercase hex digits over the whole file
  BlockDigest blocks;   // per-block XXH3-64, to say where a corrupt shard is damaged
};

struct ChunkDatasetTotals {
  uint64_t documents = 0, chunks = 0, skipped_documents = 0, forced_cuts = 0, text_bytes = 0;
  // Largest chunk (text alone, no specials) per tokenizer hash.
  std::vector<std::pair<std::string, int64_t>> max_tokens;
};

struct ChunkManifest {
  // The settings the chunks depend on, as stored (content only: no paths); equal settings = same chunks.
  json settings;
  std::vector<ChunkDatasetModel> models;
  std::vector<std::string> corpus_paths;  // informational
  ChunkDatasetTotals totals;
  std::vector<ChunkDatasetShard> shards;
  std::string dataset_hash;

  json to_json() const;
  static ChunkManifest from_json(const json& doc, const std::string& source);  // throws Error naming source
  // XXH3-64 (hex) over the canonical settings and each shard's file name and checksum.
  std::string compute_hash() const;
  bool has_tokenizer(const std::string& tokenizer_hash) const;
};

// Everything a chunk dataset is made from; settings_json() is what the manifest's `settings` holds.
struct ChunkDatasetSpec {
  std::vector<CorpusFile> corpus_files;
  CorpusOptions corpus_options;
  int64_t max_length = 2048;
  int64_t margin = 0;
  std::vector<ChunkDatasetModel> models;
  uint64_t shard_chunks = 16384;  // chunks per shard file

  // Hashes every corpus file (reads them all).
  json settings_json() const;
};

// A description of how two settings objects differ ("max_length: 128 vs 256"), empty when equal.
std::string describe_settings_difference(const json& existing, const json& wanted);

struct Chunk {
  uint64_t id = 0;
  std::string doc;     // the corpus document id ("file:line")
  uint32_t part = 0;   // index of the chunk within its document
  uint32_t parts = 0;  // number of chunks of the document
  std::string text;

  bool ends_document() const { return part + 1 == parts; }
};

// Writes a chunk dataset. The constructor removes a previous manifest and every shard or temp file of a
// previous run (nothing else); shards are streamed to temp files and renamed into place; finish() writes
// the manifest last.
class ChunkDatasetWriter {
 public:
  ChunkDatasetWriter(const fs::path& dir, json settings, uint64_t shard_chunks);
  ~ChunkDatasetWriter();  // an unfinished shard's temp file is removed
  ChunkDatasetWriter(const ChunkDatasetWriter&) = delete;
  ChunkDatasetWriter& operator=(const ChunkDatasetWriter&) = delete;

  // Appends a chunk; returns its id (0, 1, 2, …).
  uint64_t add(std::string_view doc, uint32_t part, uint32_t parts, std::string_view text);
  // Closes the last shard and writes manifest.json; returns the manifest written.
  ChunkManifest finish(std::vector<ChunkDatasetModel> models, std::vector<std::string> corpus_paths,
                       ChunkDatasetTotals totals);

 private:
  struct State;
  std::unique_ptr<State> state_;
};

// A finished chunk dataset, read through memory maps. open() checks the manifest (format, version, its
// dataset hash) and every shard (size, line count and, with verify_checksums, XXH3-64); every error names
// the file. Random access by chunk id and iteration in id order.
class ChunkDataset {
 public:
  static ChunkDataset open(const fs::path& dir, bool verify_checksums = true);
  // True when dir holds a manifest (a dataset whose writing finished); says nothing about its integrity.
  static bool is_complete(const fs::path& dir);

  ChunkDataset(ChunkDataset&&) noexcept;
  ChunkDataset& operator=(ChunkDataset&&) noexcept;
  ~ChunkDataset();

  uint64_t size() const;  // number of chunks
  Chunk at(uint64_t id) const;  // throws Error for an id out of range or a malformed line (naming file:line)
  const ChunkManifest& manifest() const;
  const std::string& hash() const { return manifest().dataset_hash; }
  const fs::path& dir() const;

  class iterator {
   public:
    iterator(const ChunkDataset* ds, uint64_t id) : ds_(ds), id_(id) {}
    Chunk operator*() const { return ds_->at(id_); }
    iterator& operator++() { ++id_; return *this; }
    bool operator!=(const iterator& other) const { return id_ != other.id_; }
    bool operator==(const iterator& other) const { return id_ == other.id_; }

   private:
    const ChunkDataset* ds_;
    uint64_t id_;
  };
  iterator begin() const { return iterator(this, 0); }
  iterator end() const { return iterator(this, size()); }

 private:
  ChunkDataset();
  struct State;
  std::unique_ptr<State> state_;
};

// ---- prepare: corpus -> chunk dataset ----

struct PrepareModel {
  ChunkDatasetModel info;  // name, role, tokenizer path/hash, add_bos/add_eos (budget filled in by prepare)
  const tok::Tokenizer* tokenizer = nullptr;
};

struct PrepareOptions {
  std::vector<std::string> corpus;  // files, directories, globs
  fs::path corpus_base_dir;         // relative corpus entries are resolved against it
  CorpusOptions corpus_options;
  fs::path out_dir;
  int64_t max_length = 2048;
  int64_t margin = 0;
  std::vector<PrepareModel> models;
  uint64_t shard_chunks = 16384;
  bool force = false;       // rebuild a complete dataset made with other settings
  int threads = 0;          // 0 = hardware concurrency
  bool progress = true;     // show a Progress bar
  ChunkerOptions chunker;
};

struct PrepareResult {
  bool reused = false;      // a complete dataset with the same settings was already there
  ChunkManifest manifest;
  ChunkerStats stats;       // empty when reused
  std::vector<std::string> tokenizer_names;  // per distinct tokenizer (stats.max_tokens order): model names
  CorpusStats corpus_stats;
};

// Runs corpus -> chunks -> dataset. A complete dataset in out_dir with the same settings is reused (and
// verified); with other settings it is an error naming what differs, unless force. An unfinished one (no
// manifest) is redone.
PrepareResult prepare_chunk_dataset(const PrepareOptions& options);

// The PrepareOptions a config asks for, given each model's loaded tokenizer (parallel to config.models).
PrepareOptions prepare_options_from_config(const ExperimentConfig& config,
                                           const std::vector<const tok::Tokenizer*>& tokenizers);

}  // namespace fusellm::data
