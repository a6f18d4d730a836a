#pragma once
// The aligned store: what `fusellm align` makes of the logit stores. For every chunk and every source (the
// target counted as its own source, its top-k mapped through the identity) the source's top-k projected onto
// target ids at each target position, the per-position cross-entropy mapped onto target positions and the
// source's chunk CE; per source the alignment statistics. Each source is kept as a logit store over the
// target vocabulary plus one (so the logit store's writer, resume, rank parts, merge and reader are reused)
// with a JSON side file per shard holding the chunk CEs and statistics. Format: docs/formats.md.
#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "fusellm/align/project.hpp"
#include "fusellm/teacher/logit_store.hpp"
#include "fusellm/util/fs.hpp"
#include "fusellm/util/json.hpp"

namespace fusellm::align {

inline constexpr const char* kAlignedStoreFormat = "fusellm.aligned_store";
inline constexpr int kAlignedStoreVersion = 1;

// Alignment statistics of one source summed over chunks.
struct AlignedSourceStats {
  uint64_t chunks = 0;
  ProjectionStats projection;
  json to_json() const;
  static AlignedSourceStats from_json(const JsonView& view);
  AlignedSourceStats& operator+=(const AlignedSourceStats& o);
};

// One chunk of one source as the align driver produces it.
struct AlignedChunk {
  uint64_t chunk_id = 0;
  std::vector<int32_t> target_ids;   // [T]
  std::vector<int32_t> topk_ids;     // [T*k]: target ids, unused slots = the empty id
  std::vector<float> topk_values;    // [T*k]: projected values, unused slots = -inf
  std::vector<float> position_ce;    // [T]: mapped per-position CE (value at T-1 is not stored)
  float chunk_ce = 0;                // the source's own chunk CE (its logit store's mean CE)
  ProjectionStats stats;
};

// The directory of one source inside an aligned store.
fs::path aligned_source_dir(const fs::path& store_dir, const std::string& source_name);

// Writes one source's shards for one rank (a thin layer over teacher::LogitStoreWriter plus side files).
class AlignedSourceWriter {
 public:
  // `target_vocab`: the target vocabulary size (the empty id); `k`: slots per position.
  AlignedSourceWriter(const fs::path& store_dir, const std::string& source_name, const teacher::StoreInfo& base,
                      uint32_t target_vocab, uint32_t k, uint32_t rank, uint32_t world_size, uint64_t shard_records);
  bool shard_complete(uint32_t shard_index) const;  // shard committed and its side file present
  void begin_shard(uint32_t shard_index);
  void add(const AlignedChunk& chunk);
  void finish_shard();  // side file first (atomic), then the shard commit: a shard never lacks its side file
  void finish();        // this rank's part file

 private:
  fs::path dir_;
  uint32_t empty_id_, k_;
  teacher::LogitStoreWriter writer_;
  uint32_t shard_ = 0;
  std::vector<std::pair<uint64_t, float>> chunk_ce_;
  AlignedSourceStats stats_;
};

// What the top-level manifest says of one source.
struct AlignedSourceEntry {
  std::string name;
  bool is_target = false;
  std::string tokenizer_hash;   // of the source model
  std::string logit_store;      // the logit store it was aligned from (informational)
  AlignedSourceStats stats;
};

struct AlignedStoreManifest {
  std::string chunk_dataset_hash;
  std::string target_name, target_tokenizer_hash;
  uint32_t target_vocab = 0;  // also the empty id
  uint32_t k = 0;
  json settings;              // the align settings it was made with
  std::vector<AlignedSourceEntry> sources;
  json to_json() const;
  static AlignedStoreManifest from_json(const json& doc, const std::string& where);
};

// After every rank finished: merges each source's logit store, sums the side files' statistics into the
// entries and writes manifest.json last (atomically). `manifest.sources[i].stats` is filled in here.
void merge_aligned_store(const fs::path& store_dir, AlignedStoreManifest manifest, uint32_t world_size);

// Whether `dir` holds an aligned store manifest.
bool is_aligned_store(const fs::path& dir);

// A view of one source's aligned chunk.
struct AlignedRecordView {
  teacher::RecordView record;  // input ids = target ids; top-k = aligned top-k; next-token log-prob = -position CE
  float chunk_ce = 0;
  uint32_t empty_id = 0;
  bool slot_empty(uint32_t t, uint32_t i) const { return uint32_t(record.topk_id(t, i)) == empty_id; }
  float position_ce(uint32_t t) const { return -record.next_token_logprob(t); }
};

class AlignedStoreReader {
 public:
  explicit AlignedStoreReader(const fs::path& dir, std::optional<std::string> chunk_dataset_hash = std::nullopt,
                              bool verify_checksums = true);
  const AlignedStoreManifest& manifest() const { return manifest_; }
  size_t num_sources() const { return manifest_.sources.size(); }
  size_t num_records() const;
  AlignedRecordView record(size_t source, uint64_t chunk_id) const;  // throws Error when missing

 private:
  fs::path dir_;
  AlignedStoreManifest manifest_;
  std::vector<teacher::LogitStoreReader> readers_;
  std::vector<std::map<uint64_t, float>> chunk_ce_;
};

}  // namespace fusellm::align
