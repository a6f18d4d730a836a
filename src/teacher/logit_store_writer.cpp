// LogitStoreWriter: one rank's shards, written through temp files and recorded in the rank's progress file,
// so a rerun after a crash redoes exactly the shards that were not committed.
#include <xxhash.h>

#include <algorithm>
#include <cmath>
#include <limits>
#include <unordered_set>

#include "fusellm/teacher/half_float.hpp"
#include "fusellm/teacher/logit_store.hpp"
#include "fusellm/util/log.hpp"
#include "fusellm/util/error.hpp"
#include "logit_store_format.hpp"

namespace fusellm::teacher {

using namespace format;

struct LogitStoreWriter::OpenShard {
  uint32_t shard_index = 0;
  fs::path temp;
  fs::path target;
  std::ofstream out;
  XXH3_state_t* hash = nullptr;
  uint64_t offset = 0;
  uint64_t tokens = 0;
  std::vector<IndexEntry> index;
  std::unordered_set<uint64_t> chunk_ids;
  std::vector<uint8_t> buffer;

  ~OpenShard() {
    if (hash != nullptr) XXH3_freeState(hash);
  }
  void append(const uint8_t* data, size_t size) {
    out.write(reinterpret_cast<const char*>(data), static_cast<std::streamsize>(size));
    XXH3_64bits_update(hash, data, size);
    offset += size;
  }
};

std::string LogitStoreWriter::shard_file_name(uint32_t shard_index) {
  return fmt::format("shard-{:05d}.bin", shard_index);
}

LogitStoreWriter::LogitStoreWriter(const fs::path& dir, StoreInfo info, uint32_t rank, uint32_t world_size,
                                   uint64_t shard_records)
    : dir_(dir), info_(std::move(info)), rank_(rank), world_size_(world_size), shard_records_(shard_records) {
  info_.validate();
  FUSELLM_CHECK(world_size_ > 0 && rank_ < world_size_, "logit store {}: rank {} outside world size {}",
                dir_.string(), rank_, world_size_);
  std::error_code ec;
  fs::create_directories(dir_, ec);
  FUSELLM_CHECK(!ec, "{}: cannot create store directory: {}", dir_.string(), ec.message());
  remove_temp_files(dir_, progress_name(rank_));
  remove_temp_files(dir_, part_name(rank_));

  const fs::path progress = dir_ / progress_name(rank_);
  if (!fs::exists(progress)) return;
  // Resuming: the earlier run must have used the same settings, or its shards would not fit this store.
  const json j = parse_json_file(progress);
  const JsonView view(j, progress.string());
  FUSELLM_CHECK(view.get<std::string>("format") == kProgressFormat, "{}: not a logit store progress file",
                progress.string());
  const json expected = info_to_json(info_);
  const std::string diff = first_difference(j.at("store"), expected);
  FUSELLM_CHECK(diff.empty(), "{}: the store in {} was started with a different '{}'; use a fresh directory",
                progress.string(), dir_.string(), diff);
  FUSELLM_CHECK(view.get<uint32_t>("world_size") == world_size_ && view.get<uint32_t>("rank") == rank_ &&
                    view.get<uint64_t>("shard_records") == shard_records_,
                "{}: the store was started with a different world size or shard size; use a fresh directory",
                progress.string());
  if (!view.has("shards")) return;
  for (size_t i = 0; i < j["shards"].size(); ++i) {
    ShardEntry entry = shard_from_json(JsonView(j["shards"][i], progress.string(), fmt::format("shards[{}]", i)));
    committed_[entry.shard_index] = std::move(entry);
  }
}

LogitStoreWriter::~LogitStoreWriter() { abandon_open_shard(); }

void LogitStoreWriter::abandon_open_shard() noexcept {
  if (!open_) return;
  try {
    open_->out.close();
    std::error_code ec;
    fs::remove(open_->temp, ec);
  } catch (...) {
  }
  open_.reset();
}

bool LogitStoreWriter::shard_complete(uint32_t shard_index) const {
  auto it = committed_.find(shard_index);
  if (it == committed_.end()) return false;
  const fs::path path = dir_ / it->second.file;
  std::error_code ec;
  const uintmax_t size = fs::file_size(path, ec);
  if (ec || size != it->second.bytes) return false;
  try {
    MappedFile file(path);
    const std::string actual = xxh3_hex(file.data(), file.size());
    if (actual == it->second.xxh3_64) return true;
    // Damaged since it was committed (the size still matches): say where, then the caller computes it again.
    spdlog::warn("{}: checksum mismatch{} (xxh3_64 {}, progress file says {}): the shard is corrupt; computing it "
                 "again", path.string(), it->second.blocks.locate_damage(file.data(), file.size()), actual,
                 it->second.xxh3_64);
    return false;
  } catch (const Error&) {
    return false;
  }
}

void LogitStoreWriter::begin_shard(uint32_t shard_index) {
  FUSELLM_CHECK(!open_, "logit store {}: begin_shard({}) while shard {} is still open", dir_.string(), shard_index,
                open_->shard_index);
  // The store is being changed: it is no longer finished, and neither is this rank.
  std::error_code ec;
  fs::remove(dir_ / kManifestName, ec);
  fs::remove(dir_ / part_name(rank_), ec);
  if (committed_.erase(shard_index) != 0) write_progress();

  auto shard = std::make_unique<OpenShard>();
  shard->shard_index = shard_index;
  shard->target = dir_ / shard_file_name(shard_index);
  remove_temp_files(dir_, shard->target.filename().string());  // an earlier crashed attempt at this shard
  shard->temp = temp_path_for(shard->target);
  shard->out.open(shard->temp, std::ios::binary | std::ios::trunc);
  FUSELLM_CHECK(shard->out.is_open(), "{}: cannot create shard file", shard->temp.string());
  shard->hash = XXH3_createState();
  XXH3_64bits_reset(shard->hash);

  ShardHeader header;
  header.k = info_.k;
  header.id_bytes = static_cast<uint8_t>(id_bytes(info_.id_dtype()));
  header.logprob_code = logprob_code(info_.logprob_dtype);
  header.shard_index = shard_index;
  uint8_t bytes[kHeaderBytes];
  encode_header(header, bytes);
  shard->append(bytes, kHeaderBytes);
  open_ = std::move(shard);
}

namespace {

template <typename Id>
void put_ids(uint8_t* out, const int32_t* ids, size_t n) {
  for (size_t i = 0; i < n; ++i) store<Id>(out + i * sizeof(Id), static_cast<Id>(ids[i]));
}

}  // namespace

void LogitStoreWriter::add(const ChunkRecord& record) {
  FUSELLM_CHECK(open_, "logit store {}: add() without begin_shard()", dir_.string());
  const uint64_t T = record.input_ids.size();
  const uint32_t k = info_.k;
  const std::string where = fmt::format("logit store {}: chunk {}", dir_.string(), record.chunk_id);
  FUSELLM_CHECK(T > 0 && T <= std::numeric_limits<uint32_t>::max(), "{}: {} positions", where, T);
  FUSELLM_CHECK(record.next_token_logprob.size() == T, "{}: {} next-token log-probs for {} positions", where,
                record.next_token_logprob.size(), T);
  FUSELLM_CHECK(record.topk_ids.size() == T * k && record.topk_logprobs.size() == T * k,
                "{}: top-k arrays have {} ids and {} log-probs, expected {} x k={} = {}", where,
                record.topk_ids.size(), record.topk_logprobs.size(), T, k, T * k);
  FUSELLM_CHECK(open_->chunk_ids.count(record.chunk_id) == 0, "{}: added twice to shard {}", where,
                open_->shard_index);
  const int64_t vocab = info_.vocab_size;
  for (uint64_t t = 0; t < T; ++t) {
    FUSELLM_CHECK(record.input_ids[t] >= 0 && record.input_ids[t] < vocab, "{}: input id {} at position {} outside "
                  "vocabulary of {}", where, record.input_ids[t], t, vocab);
    FUSELLM_CHECK(t + 1 == T || !std::isnan(record.next_token_logprob[t]), "{}: next-token log-prob at position {} "
                  "is NaN", where, t);
  }
  for (uint64_t i = 0; i < T * k; ++i) {
    FUSELLM_CHECK(record.topk_ids[i] >= 0 && record.topk_ids[i] < vocab, "{}: top-k id {} at position {} outside "
                  "vocabulary of {}", where, record.topk_ids[i], i / k, vocab);
    FUSELLM_CHECK(!std::isnan(record.topk_logprobs[i]), "{}: top-k log-prob at position {} is NaN", where, i / k);
  }

  // Layout: input ids [T], top-k ids [T*k], next-token log-probs [T], top-k log-probs [T*k], zero padding.
  const IdDtype id_dtype = info_.id_dtype();
  const size_t idb = id_bytes(id_dtype);
  const uint64_t payload = record_payload_bytes(T, k, id_dtype);
  std::vector<uint8_t>& buf = open_->buffer;
  buf.assign(padded(payload), 0);
  uint8_t* input_ids = buf.data();
  uint8_t* topk_ids = input_ids + T * idb;
  uint8_t* next_lp = topk_ids + T * k * idb;
  uint8_t* topk_lp = next_lp + T * 2;
  const auto encode = info_.logprob_dtype == LogprobDtype::F16 ? fp32_to_fp16 : fp32_to_bf16;

  if (id_dtype == IdDtype::U16) put_ids<uint16_t>(input_ids, record.input_ids.data(), T);
  else put_ids<uint32_t>(input_ids, record.input_ids.data(), T);
  for (uint64_t t = 0; t < T; ++t) {
    const float lp = t + 1 == T ? std::numeric_limits<float>::quiet_NaN() : record.next_token_logprob[t];
    store<uint16_t>(next_lp + t * 2, encode(lp));
  }
  // Top-k sorted by log-prob descending, ties by id ascending, so the bytes do not depend on how the
  // producer broke ties. fp32 -> 16-bit rounding is monotone, so the stored rows stay sorted.
  std::vector<uint32_t> order(k);
  std::vector<int32_t> sorted_ids(k);
  for (uint64_t t = 0; t < T; ++t) {
    const int32_t* ids = record.topk_ids.data() + t * k;
    const float* lps = record.topk_logprobs.data() + t * k;
    for (uint32_t i = 0; i < k; ++i) order[i] = i;
    std::sort(order.begin(), order.end(), [&](uint32_t a, uint32_t b) {
      return lps[a] != lps[b] ? lps[a] > lps[b] : ids[a] < ids[b];
    });
    for (uint32_t i = 0; i < k; ++i) {
      sorted_ids[i] = ids[order[i]];
      store<uint16_t>(topk_lp + (t * k + i) * 2, encode(lps[order[i]]));
    }
    if (id_dtype == IdDtype::U16) put_ids<uint16_t>(topk_ids + t * k * idb, sorted_ids.data(), k);
    else put_ids<uint32_t>(topk_ids + t * k * idb, sorted_ids.data(), k);
  }

  open_->chunk_ids.insert(record.chunk_id);  // only now: a rejected record may be corrected and re-added
  open_->index.push_back(IndexEntry{record.chunk_id, open_->offset, static_cast<uint32_t>(T),
                                    mean_cross_entropy(record.next_token_logprob)});
  open_->tokens += T;
  open_->append(buf.data(), buf.size());
  FUSELLM_CHECK(open_->out.good(), "{}: write failed (disk full?)", open_->temp.string());
}

void LogitStoreWriter::finish_shard() {
  FUSELLM_CHECK(open_, "logit store {}: finish_shard() without begin_shard()", dir_.string());
  OpenShard& shard = *open_;
  const uint64_t index_offset = shard.offset;
  uint8_t entry[kIndexEntryBytes];
  for (const IndexEntry& e : shard.index) {
    encode_index_entry(e, entry);
    shard.append(entry, kIndexEntryBytes);
  }
  uint8_t footer[kFooterBytes];
  encode_footer(index_offset, shard.index.size(), footer);
  shard.append(footer, kFooterBytes);
  shard.out.flush();
  FUSELLM_CHECK(shard.out.good(), "{}: write failed (disk full?)", shard.temp.string());
  shard.out.close();
  FUSELLM_CHECK(!shard.out.fail(), "{}: close failed", shard.temp.string());

  ShardEntry committed;
  committed.shard_index = shard.shard_index;
  committed.file = shard.target.filename().string();
  committed.records = shard.index.size();
  committed.tokens = shard.tokens;
  committed.bytes = shard.offset;
  committed.xxh3_64 = fmt::format("{:016x}", static_cast<uint64_t>(XXH3_64bits_digest(shard.hash)));
  committed.first_chunk_id = std::numeric_limits<uint64_t>::max();
  for (const IndexEntry& e : shard.index) committed.first_chunk_id = std::min(committed.first_chunk_id, e.chunk_id);
  committed.blocks = BlockDigest::of_file(shard.temp);

  commit_temp_file(shard.temp, shard.target);
  open_.reset();
  committed_[committed.shard_index] = std::move(committed);
  write_progress();
}

static json rank_file_json(const char* format_name, uint32_t rank, uint32_t world_size, uint64_t shard_records,
                           const StoreInfo& info, const std::map<uint32_t, ShardEntry>& shards) {
  json list = json::array();
  for (const auto& [index, entry] : shards) list.push_back(shard_to_json(entry));
  return json{{"format", format_name},         {"version", kFormatVersion}, {"rank", rank},
              {"world_size", world_size},      {"shard_records", shard_records},
              {"store", info_to_json(info)},   {"shards", std::move(list)}};
}

void LogitStoreWriter::write_progress() const {
  const json j = rank_file_json(kProgressFormat, rank_, world_size_, shard_records_, info_, committed_);
  write_file_atomic(dir_ / progress_name(rank_), j.dump(2) + "\n");
}

void LogitStoreWriter::finish() {
  FUSELLM_CHECK(!open_, "logit store {}: finish() while shard {} is still open", dir_.string(), open_->shard_index);
  for (const auto& [index, entry] : committed_) {
    std::error_code ec;
    const uintmax_t size = fs::file_size(dir_ / entry.file, ec);
    FUSELLM_CHECK(!ec && size == entry.bytes, "{}: shard changed or vanished before the rank finished ({} bytes "
                  "recorded)", (dir_ / entry.file).string(), entry.bytes);
  }
  const json j = rank_file_json(kPartFormat, rank_, world_size_, shard_records_, info_, committed_);
  write_file_atomic(dir_ / part_name(rank_), j.dump(2) + "\n");
}

}  // namespace fusellm::teacher
