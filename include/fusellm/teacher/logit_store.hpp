#pragma once
// The logit store: what `fusellm infer` keeps of one source model's predictions over a chunk dataset. Per
// position: the input token id, the log-prob of the actual next token, and the top-k ids and log-probs; per
// chunk: the mean cross-entropy. Stored compactly (u16 ids when the vocabulary allows, fp16/bf16 log-probs),
// written resumably by one writer per rank and read back through mmap. On-disk format:
// docs/formats.md.
#include <cstddef>
#include <cstdint>
#include <fstream>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <unordered_map>
#include <vector>

#include "fusellm/util/block_digest.hpp"
#include "fusellm/util/fs.hpp"

namespace fusellm::teacher {

enum class IdDtype { U16, U32 };
enum class LogprobDtype { F16, BF16 };

const char* to_string(IdDtype dtype);
const char* to_string(LogprobDtype dtype);
LogprobDtype parse_logprob_dtype(const std::string& name);  // "f16" | "bf16"; throws Error otherwise

// What a store was made from; written into every progress file and the manifest, checked on resume and merge.
struct StoreInfo {
  std::string model_name;
  std::string model_path;
  std::string model_type;
  std::string tokenizer_hash;
  std::string chunk_dataset_hash;
  uint32_t vocab_size = 0;
  uint32_t k = 10;
  LogprobDtype logprob_dtype = LogprobDtype::F16;
  bool add_bos = false;
  bool add_eos = false;

  // u16 when every id fits (vocab_size <= 65536), else u32.
  IdDtype id_dtype() const { return vocab_size <= 65536u ? IdDtype::U16 : IdDtype::U32; }
  void validate() const;  // throws Error when k or vocab_size is unusable
};

// One chunk's predictions as the model produced them (fp32, row-major [T, k] for the top-k arrays).
struct ChunkRecord {
  uint64_t chunk_id = 0;
  std::vector<int32_t> input_ids;          // [T]
  std::vector<float> next_token_logprob;   // [T]; position T-1 has no next token (its value is ignored; read as NaN)
  std::vector<int32_t> topk_ids;           // [T*k]
  std::vector<float> topk_logprobs;        // [T*k]

  size_t num_positions() const { return input_ids.size(); }
};

// Mean of -next_token_logprob over positions 0..T-2 (the ones with a next token); 0 when T == 1. Computed in
// double, in position order, so it is the same on every machine.
float mean_cross_entropy(const std::vector<float>& next_token_logprob);

// One committed shard as recorded in a progress file, a part file and the manifest.
struct ShardEntry {
  uint32_t shard_index = 0;
  std::string file;  // relative to the store directory
  uint64_t records = 0;
  uint64_t tokens = 0;
  uint64_t bytes = 0;
  std::string xxh3_64;  // 16 lowercase hex digits over the whole file
  uint64_t first_chunk_id = 0;  // smallest chunk id in the shard (UINT64_MAX when empty)
  BlockDigest blocks;           // per-block XXH3-64, to say where a corrupt shard is damaged
};

// Writes one rank's shards into a store directory. Shard j holds whatever chunks the caller adds between
// begin_shard(j) and finish_shard(); the caller decides which shards a rank owns (each shard index must be
// written by exactly one rank). Resumable: shard_complete(j) says whether an earlier run already committed it.
class LogitStoreWriter {
 public:
  LogitStoreWriter(const fs::path& dir, StoreInfo info, uint32_t rank, uint32_t world_size, uint64_t shard_records);
  ~LogitStoreWriter();  // an open shard is abandoned (its temp file removed); nothing else happens
  LogitStoreWriter(const LogitStoreWriter&) = delete;
  LogitStoreWriter& operator=(const LogitStoreWriter&) = delete;

  // True when this rank's progress file lists shard j and the file on disk has its size and checksum.
  bool shard_complete(uint32_t shard_index) const;

  void begin_shard(uint32_t shard_index);  // discards any earlier (partial or committed) version of shard j
  void add(const ChunkRecord& record);     // validates shapes and id ranges; throws Error naming the chunk
  void finish_shard();                     // temp -> fsync -> rename, then the progress file, atomically

  // Writes this rank's part file (its final shard list). Call once every owned shard is complete.
  void finish();

  const StoreInfo& info() const { return info_; }
  uint64_t shard_records() const { return shard_records_; }
  static std::string shard_file_name(uint32_t shard_index);  // "shard-00007.bin"

 private:
  struct OpenShard;
  void write_progress() const;
  void abandon_open_shard() noexcept;

  fs::path dir_;
  StoreInfo info_;
  uint32_t rank_;
  uint32_t world_size_;
  uint64_t shard_records_;
  std::map<uint32_t, ShardEntry> committed_;  // by shard index
  std::unique_ptr<OpenShard> open_;
};

// Once every rank's part file exists, writes manifest.json (atomically) listing all shards sorted by
// (first chunk id, file name). Checks that the parts agree on StoreInfo, that shard files exist with their
// recorded sizes and footers, and that no chunk id appears twice. Removes leftover temp files of the store.
void merge_manifests(const fs::path& dir, uint32_t world_size);

// What a reader insists on; unset fields are not checked.
struct StoreExpectations {
  std::optional<std::string> tokenizer_hash;
  std::optional<std::string> chunk_dataset_hash;
  std::optional<uint32_t> k;
};

struct ReaderOptions {
  bool verify_checksums = true;  // hash every shard on open (structure is always checked)
};

// A view of one stored chunk: spans into the mmapped shard plus accessors converting to float/int.
class RecordView {
 public:
  uint64_t chunk_id() const { return chunk_id_; }
  uint32_t num_positions() const { return positions_; }
  uint32_t k() const { return k_; }
  float mean_ce() const { return mean_ce_; }
  IdDtype id_dtype() const { return id_dtype_; }
  LogprobDtype logprob_dtype() const { return lp_dtype_; }

  int32_t input_id(uint32_t t) const { return load_id(input_ids_, t); }
  float next_token_logprob(uint32_t t) const { return decode(next_lp_[t]); }  // NaN at t = T-1
  int32_t topk_id(uint32_t t, uint32_t i) const { return load_id(topk_ids_, size_t(t) * k_ + i); }
  float topk_logprob(uint32_t t, uint32_t i) const { return decode(topk_lp_[size_t(t) * k_ + i]); }

  // Bulk conversions into caller-provided arrays of T or T*k elements.
  void input_ids(int32_t* out) const;
  void next_token_logprobs(float* out) const;
  void topk_ids(int32_t* out) const;
  void topk_logprobs(float* out) const;
  ChunkRecord to_record() const;

  // The raw stored arrays: ids are uint16_t or uint32_t (id_dtype), log-probs are fp16/bf16 bit patterns.
  const void* raw_input_ids() const { return input_ids_; }
  const void* raw_topk_ids() const { return topk_ids_; }
  const uint16_t* raw_next_token_logprobs() const { return next_lp_; }
  const uint16_t* raw_topk_logprobs() const { return topk_lp_; }

 private:
  friend class LogitStoreReader;
  int32_t load_id(const void* base, size_t i) const {
    return id_dtype_ == IdDtype::U16 ? static_cast<int32_t>(static_cast<const uint16_t*>(base)[i])
                                     : static_cast<int32_t>(static_cast<const uint32_t*>(base)[i]);
  }
  float decode(uint16_t bits) const;

  uint64_t chunk_id_ = 0;
  uint32_t positions_ = 0;
  uint32_t k_ = 0;
  float mean_ce_ = 0;
  IdDtype id_dtype_ = IdDtype::U16;
  LogprobDtype lp_dtype_ = LogprobDtype::F16;
  const void* input_ids_ = nullptr;
  const void* topk_ids_ = nullptr;
  const uint16_t* next_lp_ = nullptr;
  const uint16_t* topk_lp_ = nullptr;
};

// Opens a finished store (manifest.json plus shards). Every check failure throws Error naming the file.
class LogitStoreReader {
 public:
  explicit LogitStoreReader(const fs::path& dir, const StoreExpectations& expect = {}, ReaderOptions options = {});
  ~LogitStoreReader();
  LogitStoreReader(LogitStoreReader&&) noexcept;
  LogitStoreReader& operator=(LogitStoreReader&&) noexcept;

  const StoreInfo& info() const { return info_; }
  const fs::path& dir() const { return dir_; }
  uint32_t world_size() const { return world_size_; }
  const std::vector<ShardEntry>& shards() const { return shards_; }
  size_t num_records() const { return records_.size(); }
  uint64_t num_tokens() const { return total_tokens_; }
  uint64_t shard_bytes() const { return total_bytes_; }

  bool contains(uint64_t chunk_id) const { return by_chunk_.count(chunk_id) != 0; }
  std::optional<RecordView> find(uint64_t chunk_id) const;
  RecordView record(uint64_t chunk_id) const;  // throws Error when the store has no such chunk
  RecordView record_at(size_t i) const;        // i-th record in chunk-id order

  class Iterator {
   public:
    Iterator(const LogitStoreReader* reader, size_t i) : reader_(reader), i_(i) {}
    RecordView operator*() const { return reader_->record_at(i_); }
    Iterator& operator++() { ++i_; return *this; }
    bool operator!=(const Iterator& other) const { return i_ != other.i_; }
    bool operator==(const Iterator& other) const { return i_ == other.i_; }
   private:
    const LogitStoreReader* reader_;
    size_t i_;
  };
  Iterator begin() const { return Iterator(this, 0); }  // chunk-id order
  Iterator end() const { return Iterator(this, records_.size()); }

 private:
  struct Location {
    uint64_t chunk_id;
    uint64_t offset;
    uint32_t shard;
    uint32_t positions;
    float mean_ce;
  };
  void open_shard(size_t s, const ReaderOptions& options);

  fs::path dir_;
  StoreInfo info_;
  uint32_t world_size_ = 1;
  std::vector<ShardEntry> shards_;
  std::vector<MappedFile> maps_;
  std::vector<Location> records_;                    // sorted by chunk id
  std::unordered_map<uint64_t, size_t> by_chunk_;    // chunk id -> index into records_
  uint64_t total_tokens_ = 0;
  uint64_t total_bytes_ = 0;
};

// Summary for `fusellm inspect STORE`.
struct StoreStats {
  uint64_t records = 0;
  uint64_t tokens = 0;
  uint64_t predicted_tokens = 0;  // positions with a next token (tokens - records)
  uint64_t bytes = 0;             // shard files + manifest.json
  double bytes_per_token = 0;
  double mean_ce = 0;             // token-weighted: mean over all predicted positions
  double mean_chunk_ce = 0;       // unweighted mean of the per-chunk values
  double mean_topk_mass = 0;      // mean over all positions of sum_i exp(top-k logprob i)
  uint32_t k = 0;
};

StoreStats compute_store_stats(const LogitStoreReader& reader);

}  // namespace fusellm::teacher
