// The aligned store: per source a logit store over the target vocabulary + 1 (the last id marks an empty slot)
// plus per-shard side files (chunk CEs, statistics) and a top-level manifest written last.
#include "fusellm/align/aligned_store.hpp"

#include <cmath>
#include <limits>

#include "fusellm/util/error.hpp"
#include "fusellm/util/fs.hpp"

namespace fusellm::align {
namespace {

constexpr char kSideFormat[] = "fusellm.aligned_store.side";
constexpr char kManifestName[] = "manifest.json";

std::string side_file_name(uint32_t shard_index) {
  return fmt::format("side-{:05d}.json", shard_index);
}

json projection_to_json(const ProjectionStats& s) {
  return {{"positions", s.positions}, {"one_to_one", s.one_to_one}, {"used_topk", s.used_topk},
          {"fallback", s.fallback},   {"empty_lists", s.empty_lists}, {"one_to_one_rate", s.one_to_one_rate()},
          {"fallback_rate", s.fallback_rate()}};
}

}  // namespace

json AlignedSourceStats::to_json() const {
  json j = projection_to_json(projection);
  j["chunks"] = chunks;
  return j;
}

AlignedSourceStats AlignedSourceStats::from_json(const JsonView& view) {
  AlignedSourceStats s;
  s.chunks = view.get<uint64_t>("chunks");
  s.projection.positions = view.get<size_t>("positions");
  s.projection.one_to_one = view.get<size_t>("one_to_one");
  s.projection.used_topk = view.get<size_t>("used_topk");
  s.projection.fallback = view.get<size_t>("fallback");
  s.projection.empty_lists = view.get<size_t>("empty_lists");
  return s;
}

AlignedSourceStats& AlignedSourceStats::operator+=(const AlignedSourceStats& o) {
  chunks += o.chunks;
  projection += o.projection;
  return *this;
}

fs::path aligned_source_dir(const fs::path& store_dir, const std::string& source_name) {
  return store_dir / "sources" / source_name;
}

namespace {
teacher::StoreInfo aligned_info(teacher::StoreInfo base, uint32_t target_vocab, uint32_t k) {
  base.vocab_size = target_vocab + 1;  // + the empty id
  base.k = k;
  base.logprob_dtype = teacher::LogprobDtype::F16;
  return base;
}
}  // namespace

AlignedSourceWriter::AlignedSourceWriter(const fs::path& store_dir, const std::string& source_name,
                                         const teacher::StoreInfo& base, uint32_t target_vocab, uint32_t k,
                                         uint32_t rank, uint32_t world_size, uint64_t shard_records)
    : dir_(aligned_source_dir(store_dir, source_name)),
      empty_id_(target_vocab),
      k_(k),
      writer_(dir_, aligned_info(base, target_vocab, k), rank, world_size, shard_records) {}

bool AlignedSourceWriter::shard_complete(uint32_t shard_index) const {
  return writer_.shard_complete(shard_index) && fs::exists(dir_ / side_file_name(shard_index));
}

void AlignedSourceWriter::begin_shard(uint32_t shard_index) {
  // A side file of an earlier version of the shard goes first, so it can never pass for the new shard's.
  std::error_code ec;
  fs::remove(dir_ / side_file_name(shard_index), ec);
  writer_.begin_shard(shard_index);
  shard_ = shard_index;
  chunk_ce_.clear();
  stats_ = {};
}

void AlignedSourceWriter::add(const AlignedChunk& chunk) {
  const size_t T = chunk.target_ids.size();
  FUSELLM_CHECK(chunk.position_ce.size() == T && chunk.topk_ids.size() == T * k_ && chunk.topk_values.size() == T * k_,
                "aligned store {}: chunk {} has inconsistent array sizes", dir_.string(), chunk.chunk_id);
  teacher::ChunkRecord record;
  record.chunk_id = chunk.chunk_id;
  record.input_ids = chunk.target_ids;
  record.next_token_logprob.resize(T);
  for (size_t t = 0; t < T; ++t) record.next_token_logprob[t] = -chunk.position_ce[t];
  record.topk_ids = chunk.topk_ids;
  record.topk_logprobs = chunk.topk_values;
  writer_.add(record);
  chunk_ce_.emplace_back(chunk.chunk_id, chunk.chunk_ce);
  stats_.chunks += 1;
  stats_.projection += chunk.stats;
}

void AlignedSourceWriter::finish_shard() {
  json ce = json::array();
  for (auto& [id, value] : chunk_ce_) ce.push_back({id, value});
  const json side = {{"format", kSideFormat}, {"shard", shard_}, {"chunk_ce", ce}, {"stats", stats_.to_json()}};
  write_file_atomic(dir_ / side_file_name(shard_), side.dump());
  writer_.finish_shard();
}

void AlignedSourceWriter::finish() { writer_.finish(); }

json AlignedStoreManifest::to_json() const {
  json sources_json = json::array();
  for (const auto& s : sources) {
    sources_json.push_back({{"name", s.name},
                            {"is_target", s.is_target},
                            {"tokenizer_hash", s.tokenizer_hash},
                            {"logit_store", s.logit_store},
                            {"dir", "sources/" + s.name},
                            {"stats", s.stats.to_json()}});
  }
  return {{"format", kAlignedStoreFormat},
          {"version", kAlignedStoreVersion},
          {"chunk_dataset_hash", chunk_dataset_hash},
          {"target", {{"name", target_name}, {"tokenizer_hash", target_tokenizer_hash}, {"vocab_size", target_vocab}}},
          {"empty_id", target_vocab},
          {"k", k},
          {"settings", settings},
          {"sources", sources_json}};
}

AlignedStoreManifest AlignedStoreManifest::from_json(const json& doc, const std::string& where) {
  const JsonView view(doc, where);
  FUSELLM_CHECK(view.get<std::string>("format") == kAlignedStoreFormat, "{}: not an aligned store manifest", where);
  FUSELLM_CHECK(view.get<int>("version") == kAlignedStoreVersion, "{}: unsupported aligned store version {}", where,
                view.get<int>("version"));
  AlignedStoreManifest m;
  m.chunk_dataset_hash = view.get<std::string>("chunk_dataset_hash");
  const JsonView target = view.child("target");
  m.target_name = target.get<std::string>("name");
  m.target_tokenizer_hash = target.get<std::string>("tokenizer_hash");
  m.target_vocab = target.get<uint32_t>("vocab_size");
  m.k = view.get<uint32_t>("k");
  m.settings = doc.at("settings");
  for (const json& s : doc.at("sources")) {
    const JsonView sv(s, where, "sources");
    AlignedSourceEntry e;
    e.name = sv.get<std::string>("name");
    // The name is a directory under sources/: never a path that could leave the store.
    FUSELLM_CHECK(is_plain_file_name(e.name), "{}: source name '{}' is not a plain directory name", where, e.name);
    e.is_target = sv.get<bool>("is_target");
    e.tokenizer_hash = sv.get<std::string>("tokenizer_hash");
    e.logit_store = sv.get<std::string>("logit_store");
    e.stats = AlignedSourceStats::from_json(sv.child("stats"));
    m.sources.push_back(std::move(e));
  }
  return m;
}

namespace {
// Reads one side file; the caller checks it belongs to a shard of the merged store.
json read_side(const fs::path& path) {
  FUSELLM_CHECK(fs::exists(path), "{}: side file missing (the shard was not committed by align)", path.string());
  json side = parse_json_file(path);
  FUSELLM_CHECK(side.value("format", "") == kSideFormat, "{}: not an aligned store side file", path.string());
  return side;
}
}  // namespace

void merge_aligned_store(const fs::path& store_dir, AlignedStoreManifest manifest, uint32_t world_size) {
  for (auto& source : manifest.sources) {
    const fs::path dir = aligned_source_dir(store_dir, source.name);
    teacher::merge_manifests(dir, world_size);
    teacher::LogitStoreReader reader(dir, {}, teacher::ReaderOptions{false});
    source.stats = {};
    for (const auto& shard : reader.shards()) {
      const json side = read_side(dir / side_file_name(shard.shard_index));
      source.stats += AlignedSourceStats::from_json(JsonView(side.at("stats"), (dir / side_file_name(shard.shard_index)).string()));
    }
    FUSELLM_CHECK(source.stats.chunks == reader.num_records(), "{}: side files count {} chunks, the store {}",
                  dir.string(), source.stats.chunks, reader.num_records());
  }
  write_file_atomic(store_dir / kManifestName, manifest.to_json().dump(2) + "\n");
}

bool is_aligned_store(const fs::path& dir) {
  const fs::path path = dir / kManifestName;
  if (!fs::exists(path)) return false;
  try {
    return parse_json_file(path).value("format", "") == kAlignedStoreFormat;
  } catch (const std::exception&) {
    return false;
  }
}

AlignedStoreReader::AlignedStoreReader(const fs::path& dir, std::optional<std::string> chunk_dataset_hash,
                                       bool verify_checksums)
    : dir_(dir) {
  const fs::path path = dir / kManifestName;
  FUSELLM_CHECK(fs::exists(path), "{}: no aligned store manifest (align did not finish)", path.string());
  manifest_ = with_json_errors(path.string(),
                               [&] { return AlignedStoreManifest::from_json(parse_json_file(path), path.string()); });
  if (chunk_dataset_hash)
    FUSELLM_CHECK(manifest_.chunk_dataset_hash == *chunk_dataset_hash,
                  "{}: aligned store made for chunk dataset {}, not {}", dir.string(), manifest_.chunk_dataset_hash,
                  *chunk_dataset_hash);
  for (const auto& source : manifest_.sources) {
    const fs::path sdir = aligned_source_dir(dir, source.name);
    teacher::StoreExpectations expect;
    expect.chunk_dataset_hash = manifest_.chunk_dataset_hash;
    expect.k = manifest_.k;
    readers_.emplace_back(sdir, expect, teacher::ReaderOptions{verify_checksums});
    FUSELLM_CHECK(readers_.back().info().vocab_size == manifest_.target_vocab + 1,
                  "{}: vocabulary size {} does not fit target vocabulary {}", sdir.string(),
                  readers_.back().info().vocab_size, manifest_.target_vocab);
    std::map<uint64_t, float> ce;
    for (const auto& shard : readers_.back().shards()) {
      const fs::path side_path = sdir / side_file_name(shard.shard_index);
      const json side = read_side(side_path);
      with_json_errors(side_path.string(), [&] {
        for (const json& pair : side.at("chunk_ce"))
          ce[require_integer<uint64_t>(pair.at(0), side_path.string() + ": chunk_ce id")] = pair.at(1).get<float>();
      });
    }
    FUSELLM_CHECK(ce.size() == readers_.back().num_records(), "{}: side files hold {} chunk CEs for {} records",
                  sdir.string(), ce.size(), readers_.back().num_records());
    chunk_ce_.push_back(std::move(ce));
  }
}

size_t AlignedStoreReader::num_records() const { return readers_.empty() ? 0 : readers_.front().num_records(); }

AlignedRecordView AlignedStoreReader::record(size_t source, uint64_t chunk_id) const {
  FUSELLM_CHECK(source < readers_.size(), "{}: no source {}", dir_.string(), source);
  AlignedRecordView view{readers_[source].record(chunk_id), 0.0f, manifest_.target_vocab};
  // The side files' ids are checked in number only at open: one may name a chunk the shards do not hold.
  const auto ce = chunk_ce_[source].find(chunk_id);
  FUSELLM_CHECK(ce != chunk_ce_[source].end(), "{}: the side files hold no chunk CE for chunk {}",
                aligned_source_dir(dir_, manifest_.sources[source].name).string(), chunk_id);
  view.chunk_ce = ce->second;
  return view;
}

}  // namespace fusellm::align
