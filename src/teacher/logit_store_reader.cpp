// LogitStoreReader: opens a finished store, checks it against its manifest (and the caller's expectations),
// and serves records straight from the mmapped shards.
#include <algorithm>
#include <cmath>

#include "fusellm/teacher/half_float.hpp"
#include "fusellm/teacher/logit_store.hpp"
#include "fusellm/util/error.hpp"
#include "logit_store_format.hpp"

namespace fusellm::teacher {

using namespace format;

float RecordView::decode(uint16_t bits) const {
  return lp_dtype_ == LogprobDtype::F16 ? fp16_to_fp32(bits) : bf16_to_fp32(bits);
}

void RecordView::input_ids(int32_t* out) const {
  for (uint32_t t = 0; t < positions_; ++t) out[t] = load_id(input_ids_, t);
}

void RecordView::next_token_logprobs(float* out) const {
  for (uint32_t t = 0; t < positions_; ++t) out[t] = decode(next_lp_[t]);
}

void RecordView::topk_ids(int32_t* out) const {
  const size_t n = size_t(positions_) * k_;
  if (id_dtype_ == IdDtype::U16) {
    const auto* ids = static_cast<const uint16_t*>(topk_ids_);
    for (size_t i = 0; i < n; ++i) out[i] = ids[i];
  } else {
    const auto* ids = static_cast<const uint32_t*>(topk_ids_);
    for (size_t i = 0; i < n; ++i) out[i] = static_cast<int32_t>(ids[i]);
  }
}

void RecordView::topk_logprobs(float* out) const {
  const size_t n = size_t(positions_) * k_;
  if (lp_dtype_ == LogprobDtype::F16) {
    for (size_t i = 0; i < n; ++i) out[i] = fp16_to_fp32(topk_lp_[i]);
  } else {
    for (size_t i = 0; i < n; ++i) out[i] = bf16_to_fp32(topk_lp_[i]);
  }
}

ChunkRecord RecordView::to_record() const {
  ChunkRecord record;
  record.chunk_id = chunk_id_;
  record.input_ids.resize(positions_);
  record.next_token_logprob.resize(positions_);
  record.topk_ids.resize(size_t(positions_) * k_);
  record.topk_logprobs.resize(size_t(positions_) * k_);
  input_ids(record.input_ids.data());
  next_token_logprobs(record.next_token_logprob.data());
  topk_ids(record.topk_ids.data());
  topk_logprobs(record.topk_logprobs.data());
  return record;
}

LogitStoreReader::LogitStoreReader(const fs::path& dir, const StoreExpectations& expect, ReaderOptions options)
    : dir_(dir) {
  const fs::path manifest_path = dir_ / kManifestName;
  const std::string manifest_name = manifest_path.string();
  FUSELLM_CHECK(fs::is_directory(dir_), "{}: logit store directory not found", dir_.string());
  FUSELLM_CHECK(fs::exists(manifest_path), "{}: missing (the store is unfinished: rerun infer to complete it)",
                manifest_name);
  const json j = parse_json_file(manifest_path);
  FUSELLM_CHECK(j.is_object(), "{}: corrupt manifest (not a JSON object)", manifest_name);
  const JsonView view(j, manifest_name);
  FUSELLM_CHECK(view.get<std::string>("format") == kStoreFormat, "{}: format '{}', expected '{}'", manifest_name,
                view.get<std::string>("format"), kStoreFormat);
  FUSELLM_CHECK(view.get<int>("version") == kFormatVersion, "{}: format version {} (this build reads {})",
                manifest_name, view.get<int>("version"), kFormatVersion);
  info_ = info_from_json(view);
  world_size_ = view.get<uint32_t>("world_size");

  if (expect.tokenizer_hash && *expect.tokenizer_hash != info_.tokenizer_hash)
    fail("{}: store was made with tokenizer hash {}, expected {} (another tokenizer)", manifest_name,
         info_.tokenizer_hash, *expect.tokenizer_hash);
  if (expect.chunk_dataset_hash && *expect.chunk_dataset_hash != info_.chunk_dataset_hash)
    fail("{}: store was made from chunk dataset {}, expected {} (another dataset)", manifest_name,
         info_.chunk_dataset_hash, *expect.chunk_dataset_hash);
  if (expect.k && *expect.k != info_.k)
    fail("{}: store keeps top-{} per position, expected top-{}", manifest_name, info_.k, *expect.k);

  FUSELLM_CHECK(j.contains("shards") && j["shards"].is_array(), "{}: missing key 'shards'", manifest_name);
  for (size_t i = 0; i < j["shards"].size(); ++i)
    shards_.push_back(shard_from_json(JsonView(j["shards"][i], manifest_name, fmt::format("shards[{}]", i))));
  maps_.reserve(shards_.size());
  for (size_t s = 0; s < shards_.size(); ++s) open_shard(s, options);

  const JsonView totals = view.child("totals");
  FUSELLM_CHECK(totals.get<uint64_t>("records") == records_.size() && totals.get<uint64_t>("tokens") == total_tokens_ &&
                    totals.get<uint64_t>("bytes") == total_bytes_,
                "{}: totals do not match the shards ({} records, {} tokens, {} bytes found)", manifest_name,
                records_.size(), total_tokens_, total_bytes_);

  std::sort(records_.begin(), records_.end(),
            [](const Location& a, const Location& b) { return a.chunk_id < b.chunk_id; });
  by_chunk_.reserve(records_.size());
  for (size_t i = 0; i < records_.size(); ++i) {
    auto [it, inserted] = by_chunk_.emplace(records_[i].chunk_id, i);
    FUSELLM_CHECK(inserted, "{}: chunk {} stored twice (in {} and {})", manifest_name, records_[i].chunk_id,
                  shards_[records_[it->second].shard].file, shards_[records_[i].shard].file);
  }
}

void LogitStoreReader::open_shard(size_t s, const ReaderOptions& options) {
  const ShardEntry& entry = shards_[s];
  const fs::path path = dir_ / entry.file;
  const std::string name = path.string();
  FUSELLM_CHECK(fs::exists(path), "{}: missing shard listed in manifest.json", name);
  MappedFile file(path);
  FUSELLM_CHECK(file.size() >= entry.bytes, "{}: truncated shard: {} bytes, manifest says {}", name, file.size(),
                entry.bytes);
  FUSELLM_CHECK(file.size() == entry.bytes, "{}: shard has {} bytes, manifest says {}", name, file.size(),
                entry.bytes);
  if (options.verify_checksums) {
    const std::string actual = xxh3_hex(file.data(), file.size());
    FUSELLM_CHECK(actual == entry.xxh3_64, "{}: checksum mismatch{} (xxh3_64 {}, manifest says {}): the shard is "
                  "corrupt", name, entry.blocks.locate_damage(file.data(), file.size()), actual, entry.xxh3_64);
  }
  const ParsedShard parsed = parse_shard(file.data(), file.size(), name, info_.id_dtype(), info_.logprob_dtype,
                                         info_.k);
  FUSELLM_CHECK(parsed.record_count == entry.records, "{}: {} records, manifest says {}", name, parsed.record_count,
                entry.records);
  uint64_t tokens = 0;
  for (uint64_t i = 0; i < parsed.record_count; ++i) {
    const IndexEntry e = parsed.entry(i);
    records_.push_back(Location{e.chunk_id, e.offset, static_cast<uint32_t>(s), e.positions, e.mean_ce});
    tokens += e.positions;
  }
  FUSELLM_CHECK(tokens == entry.tokens, "{}: {} tokens, manifest says {}", name, tokens, entry.tokens);
  total_tokens_ += tokens;
  total_bytes_ += entry.bytes;
  maps_.push_back(std::move(file));
}

LogitStoreReader::~LogitStoreReader() = default;
LogitStoreReader::LogitStoreReader(LogitStoreReader&&) noexcept = default;
LogitStoreReader& LogitStoreReader::operator=(LogitStoreReader&&) noexcept = default;

RecordView LogitStoreReader::record_at(size_t i) const {
  FUSELLM_CHECK(i < records_.size(), "{}: record {} out of range ({} records)", dir_.string(), i, records_.size());
  const Location& loc = records_[i];
  const size_t idb = id_bytes(info_.id_dtype());
  const uint64_t T = loc.positions;
  const uint8_t* base = maps_[loc.shard].data() + loc.offset;
  RecordView view;
  view.chunk_id_ = loc.chunk_id;
  view.positions_ = loc.positions;
  view.k_ = info_.k;
  view.mean_ce_ = loc.mean_ce;
  view.id_dtype_ = info_.id_dtype();
  view.lp_dtype_ = info_.logprob_dtype;
  view.input_ids_ = base;
  view.topk_ids_ = base + T * idb;
  view.next_lp_ = reinterpret_cast<const uint16_t*>(base + T * (info_.k + 1) * idb);
  view.topk_lp_ = view.next_lp_ + T;
  return view;
}

std::optional<RecordView> LogitStoreReader::find(uint64_t chunk_id) const {
  auto it = by_chunk_.find(chunk_id);
  if (it == by_chunk_.end()) return std::nullopt;
  return record_at(it->second);
}

RecordView LogitStoreReader::record(uint64_t chunk_id) const {
  auto it = by_chunk_.find(chunk_id);
  FUSELLM_CHECK(it != by_chunk_.end(), "{}: no chunk {} in this store", dir_.string(), chunk_id);
  return record_at(it->second);
}

StoreStats compute_store_stats(const LogitStoreReader& reader) {
  StoreStats stats;
  stats.k = reader.info().k;
  stats.records = reader.num_records();
  stats.tokens = reader.num_tokens();
  std::error_code ec;
  const uintmax_t manifest_bytes = fs::file_size(reader.dir() / kManifestName, ec);
  stats.bytes = reader.shard_bytes() + (ec ? 0 : manifest_bytes);
  stats.bytes_per_token = stats.tokens ? double(stats.bytes) / double(stats.tokens) : 0.0;
  double ce_sum = 0, chunk_ce_sum = 0, mass_sum = 0;
  std::vector<float> lps;
  for (const RecordView record : reader) {
    const uint32_t T = record.num_positions();
    stats.predicted_tokens += T - 1;
    ce_sum += double(record.mean_ce()) * (T - 1);
    chunk_ce_sum += record.mean_ce();
    lps.resize(size_t(T) * record.k());
    record.topk_logprobs(lps.data());
    for (float lp : lps) mass_sum += std::exp(double(lp));
  }
  stats.mean_ce = stats.predicted_tokens ? ce_sum / double(stats.predicted_tokens) : 0.0;
  stats.mean_chunk_ce = stats.records ? chunk_ce_sum / double(stats.records) : 0.0;
  stats.mean_topk_mass = stats.tokens ? mass_sum / double(stats.tokens) : 0.0;
  return stats;
}

}  // namespace fusellm::teacher
