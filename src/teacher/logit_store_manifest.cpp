// merge_manifests: turns the ranks' part files into the store's manifest.json, the file whose presence
// marks a finished store. The result depends only on the parts' contents, never on which rank ended first.
#include <algorithm>
#include <set>
#include <unordered_map>

#include "fusellm/teacher/logit_store.hpp"
#include "fusellm/util/error.hpp"
#include "logit_store_format.hpp"

namespace fusellm::teacher {

using namespace format;

void merge_manifests(const fs::path& dir, uint32_t world_size) {
  FUSELLM_CHECK(world_size > 0, "logit store {}: world size must be positive", dir.string());
  json store;  // rank 0's StoreInfo; every other rank must agree
  std::vector<ShardEntry> shards;
  for (uint32_t rank = 0; rank < world_size; ++rank) {
    const fs::path part = dir / part_name(rank);
    FUSELLM_CHECK(fs::exists(part), "{}: missing: rank {} of {} has not finished", part.string(), rank, world_size);
    const json j = parse_json_file(part);
    const JsonView view(j, part.string());
    FUSELLM_CHECK(view.get<std::string>("format") == kPartFormat, "{}: not a logit store part file", part.string());
    FUSELLM_CHECK(view.get<uint32_t>("rank") == rank && view.get<uint32_t>("world_size") == world_size,
                  "{}: written by rank {} of {}, expected rank {} of {}", part.string(), view.get<uint32_t>("rank"),
                  view.get<uint32_t>("world_size"), rank, world_size);
    const json& info = j.at("store");
    info_from_json(JsonView(info, part.string(), "store"));  // validates
    if (rank == 0) {
      store = info;
    } else {
      const std::string diff = first_difference(store, info);
      FUSELLM_CHECK(diff.empty(), "{}: store setting '{}' differs from rank 0's", part.string(), diff);
    }
    const json& list = j.at("shards");
    for (size_t i = 0; i < list.size(); ++i)
      shards.push_back(shard_from_json(JsonView(list[i], part.string(), fmt::format("shards[{}]", i))));
  }

  const StoreInfo info = info_from_json(JsonView(store, (dir / part_name(0)).string(), "store"));
  std::unordered_map<uint64_t, std::string> chunk_owner;
  std::set<std::string> files_seen;
  uint64_t records = 0, tokens = 0, bytes = 0;
  std::sort(shards.begin(), shards.end(), [](const ShardEntry& a, const ShardEntry& b) {
    return a.first_chunk_id != b.first_chunk_id ? a.first_chunk_id < b.first_chunk_id : a.file < b.file;
  });
  for (size_t s = 0; s < shards.size(); ++s) {
    const ShardEntry& entry = shards[s];
    FUSELLM_CHECK(files_seen.insert(entry.file).second, "{}: shard listed twice (by two ranks?)",
                  (dir / entry.file).string());
    const fs::path path = dir / entry.file;
    FUSELLM_CHECK(fs::exists(path), "{}: missing shard listed in a part file", path.string());
    MappedFile file(path);
    FUSELLM_CHECK(file.size() == entry.bytes, "{}: truncated or changed shard: {} bytes, part file says {}",
                  path.string(), file.size(), entry.bytes);
    // Structure only; the checksum is verified by every reader that opens the store.
    const ParsedShard parsed = parse_shard(file.data(), file.size(), path.string(), info.id_dtype(),
                                           info.logprob_dtype, info.k);
    FUSELLM_CHECK(parsed.record_count == entry.records, "{}: {} records, part file says {}", path.string(),
                  parsed.record_count, entry.records);
    for (uint64_t i = 0; i < parsed.record_count; ++i) {
      const uint64_t chunk = parsed.entry(i).chunk_id;
      auto [it, inserted] = chunk_owner.emplace(chunk, entry.file);
      FUSELLM_CHECK(inserted, "{}: chunk {} is also in {}", path.string(), chunk, it->second);
    }
    records += entry.records;
    tokens += entry.tokens;
    bytes += entry.bytes;
  }

  json list = json::array();
  for (const ShardEntry& entry : shards) list.push_back(shard_to_json(entry));
  json manifest = {{"format", kStoreFormat}, {"version", kFormatVersion}};
  for (auto it = store.begin(); it != store.end(); ++it) manifest[it.key()] = it.value();
  manifest["world_size"] = world_size;
  manifest["totals"] = {{"records", records}, {"tokens", tokens}, {"bytes", bytes}};
  manifest["shards"] = std::move(list);
  write_file_atomic(dir / kManifestName, manifest.dump(2) + "\n");

  // Leftovers of crashed attempts (shard temp files whose shard was later redone elsewhere, etc.).
  remove_temp_files(dir, "shard-");
  remove_temp_files(dir, kManifestName);
}

}  // namespace fusellm::teacher
