#pragma once
// Internal: the logit store's binary shard layout and JSON pieces shared by the writer, merge and reader.
// The layout is documented in docs/formats.md; keep the two in step.
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <string>

#include "fusellm/teacher/logit_store.hpp"
#include "fusellm/util/json.hpp"

#if !defined(__BYTE_ORDER__) || __BYTE_ORDER__ != __ORDER_LITTLE_ENDIAN__
#error "the logit store format is little-endian and is read by memory map; a big-endian port needs byte swaps"
#endif

namespace fusellm::teacher::format {

constexpr char kStoreFormat[] = "fusellm.logit_store";
constexpr char kProgressFormat[] = "fusellm.logit_store.progress";
constexpr char kPartFormat[] = "fusellm.logit_store.part";
constexpr int kFormatVersion = 1;

constexpr char kShardMagic[8] = {'F', 'L', 'L', 'O', 'G', 'I', 'T', 'S'};
constexpr char kFooterMagic[8] = {'F', 'L', 'L', 'G', 'T', 'E', 'N', 'D'};
constexpr uint32_t kShardVersion = 1;
constexpr size_t kHeaderBytes = 32;
constexpr size_t kIndexEntryBytes = 24;
constexpr size_t kFooterBytes = 24;
constexpr size_t kRecordAlignment = 8;

constexpr uint8_t kLogprobCodeF16 = 1;
constexpr uint8_t kLogprobCodeBF16 = 2;

constexpr char kManifestName[] = "manifest.json";
inline std::string progress_name(uint32_t rank) { return "progress.rank" + std::to_string(rank) + ".json"; }
inline std::string part_name(uint32_t rank) { return "part.rank" + std::to_string(rank) + ".json"; }

inline size_t id_bytes(IdDtype dtype) { return dtype == IdDtype::U16 ? 2 : 4; }
inline uint8_t logprob_code(LogprobDtype dtype) {
  return dtype == LogprobDtype::F16 ? kLogprobCodeF16 : kLogprobCodeBF16;
}

// Bytes of one record's four arrays before padding: ids [T] + top-k ids [T*k], then log-probs [T] + [T*k].
// Ids come first so u32 arrays stay 4-byte aligned whatever T is.
inline uint64_t record_payload_bytes(uint64_t positions, uint32_t k, IdDtype dtype) {
  return positions * (uint64_t(k) + 1) * (id_bytes(dtype) + 2);
}
inline uint64_t padded(uint64_t bytes) { return (bytes + kRecordAlignment - 1) / kRecordAlignment * kRecordAlignment; }

template <typename T>
T load(const uint8_t* p) {
  T v;
  std::memcpy(&v, p, sizeof v);
  return v;
}
template <typename T>
void store(uint8_t* p, T v) {
  std::memcpy(p, &v, sizeof v);
}

struct ShardHeader {
  uint32_t version = kShardVersion;
  uint32_t k = 0;
  uint8_t id_bytes = 0;
  uint8_t logprob_code = 0;
  uint32_t shard_index = 0;
};

struct IndexEntry {
  uint64_t chunk_id = 0;
  uint64_t offset = 0;
  uint32_t positions = 0;
  float mean_ce = 0;
};

void encode_header(const ShardHeader& header, uint8_t out[kHeaderBytes]);
void encode_index_entry(const IndexEntry& entry, uint8_t out[kIndexEntryBytes]);
void encode_footer(uint64_t index_offset, uint64_t record_count, uint8_t out[kFooterBytes]);

// A shard's structure, checked against the bytes: header and footer magic, version, that the index lies
// between the records and the footer, and that every record lies inside the record area. Errors name `name`.
struct ParsedShard {
  ShardHeader header;
  uint64_t index_offset = 0;
  uint64_t record_count = 0;
  const uint8_t* index = nullptr;  // record_count entries of kIndexEntryBytes
  IndexEntry entry(uint64_t i) const;
};
ParsedShard parse_shard(const uint8_t* data, size_t size, const std::string& name, IdDtype expect_ids,
                        LogprobDtype expect_logprobs, uint32_t expect_k);

// xxh3_64 of a file as 16 lowercase hex digits (util's xxh3_hex of its bytes).
std::string xxh3_hex_of_file(const fs::path& path);

json info_to_json(const StoreInfo& info);
StoreInfo info_from_json(const JsonView& view);
json shard_to_json(const ShardEntry& entry);
ShardEntry shard_from_json(const JsonView& view);

// The first key whose value differs between two JSON objects ("" when equal), for resume/merge errors.
std::string first_difference(const json& a, const json& b);

// Removes files in `dir` whose name starts with `prefix` and contains ".tmp." (leftovers of a crash).
void remove_temp_files(const fs::path& dir, const std::string& prefix);

}  // namespace fusellm::teacher::format
