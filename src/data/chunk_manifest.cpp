// The chunk dataset's manifest.json: settings (what the chunks depend on), models, totals, shards, and the
// dataset hash over settings and shard checksums.
#include <xxhash.h>

#include <algorithm>
#include <map>

#include "fusellm/data/chunk_dataset.hpp"
#include "fusellm/util/error.hpp"
#include "fusellm/util/json.hpp"
#include "fusellm/util/fs.hpp"

namespace fusellm::data {

namespace {

// Bumped whenever the chunker would cut the same input differently: the settings then differ.
constexpr int kChunkerVersion = 1;

std::string hex64(uint64_t v) { return fmt::format("{:016x}", v); }

}  // namespace

json ChunkDatasetSpec::settings_json() const {
  json files = json::array();
  for (const auto& f : corpus_files)
    files.push_back({{"name", f.name}, {"bytes", f.size_bytes}, {"xxh3_64", content_hash(f.path)}});
  // One entry per distinct tokenizer; models sharing one are cut for the smallest budget among them.
  std::map<std::string, int64_t> budgets;
  for (const auto& m : models) {
    auto [it, inserted] = budgets.emplace(m.tokenizer_hash, m.budget);
    if (!inserted) it->second = std::min(it->second, m.budget);
  }
  json tokenizers = json::array();
  for (const auto& [hash, budget] : budgets) tokenizers.push_back({{"hash", hash}, {"budget", budget}});
  return {
      {"chunker", kChunkerVersion},
      {"max_length", max_length},
      {"margin", margin},
      {"tokenizers", tokenizers},
      {"shard_chunks", shard_chunks},
      {"corpus",
       {{"files", files},
        {"text_field", corpus_options.text_field},
        {"txt_mode", to_string(corpus_options.txt_mode)},
        {"txt_separator", corpus_options.txt_separator},
        {"on_bad_line", to_string(corpus_options.on_bad_line)}}},
  };
}

std::string describe_settings_difference(const json& existing, const json& wanted) {
  if (existing == wanted) return "";
  std::vector<std::string> parts;
  // Top-level keys first (with the corpus file list summarized), so the message stays one readable line.
  std::vector<std::string> keys;
  for (const auto& [k, v] : existing.items()) keys.push_back(k);
  for (const auto& [k, v] : wanted.items())
    if (!existing.contains(k)) keys.push_back(k);
  for (const auto& key : keys) {
    const json a = existing.value(key, json()), b = wanted.value(key, json());
    if (a == b) continue;
    if (key == "corpus" && a.is_object() && b.is_object()) {
      for (const auto& [k, v] : b.items())
        if (a.value(k, json()) != v)
          parts.push_back(k == "files" ? "corpus files or their contents" : fmt::format("corpus.{}: {} vs {}", k, a.value(k, json()).dump(), v.dump()));
    } else if (key == "tokenizers") {
      parts.push_back("tokenizers or their token budgets");
    } else {
      parts.push_back(fmt::format("{}: {} vs {}", key, a.dump(), b.dump()));
    }
  }
  if (parts.empty()) parts.push_back("settings");
  std::string out;
  for (const auto& p : parts) out += (out.empty() ? "" : "; ") + p;
  return out;
}

std::string ChunkManifest::compute_hash() const {
  std::string canonical = settings.dump();
  canonical += '\n';
  for (const auto& s : shards) canonical += fmt::format("{}\t{}\t{}\t{}\n", s.file, s.first_id, s.chunks, s.xxh3_64);
  return hex64(XXH3_64bits(canonical.data(), canonical.size()));
}

bool ChunkManifest::has_tokenizer(const std::string& tokenizer_hash) const {
  if (!settings.contains("tokenizers")) return false;
  for (const auto& t : settings["tokenizers"])
    if (t.value("hash", "") == tokenizer_hash) return true;
  return false;
}

json ChunkManifest::to_json() const {
  json models_json = json::array();
  for (const auto& m : models)
    models_json.push_back({{"name", m.name},
                           {"role", m.role},
                           {"tokenizer_path", m.tokenizer_path},
                           {"tokenizer_hash", m.tokenizer_hash},
                           {"add_bos", m.add_bos},
                           {"add_eos", m.add_eos},
                           {"budget", m.budget}});
  json max_tokens = json::object();
  for (const auto& [hash, n] : totals.max_tokens) max_tokens[hash] = n;
  json shards_json = json::array();
  for (const auto& s : shards) {
    json entry = {{"file", s.file}, {"first_id", s.first_id}, {"chunks", s.chunks}, {"bytes", s.bytes},
                  {"xxh3_64", s.xxh3_64}};
    s.blocks.to_json(entry);
    shards_json.push_back(std::move(entry));
  }
  return {{"format", kChunkDatasetFormat},
          {"version", kChunkDatasetVersion},
          {"settings", settings},
          {"models", models_json},
          {"corpus_paths", corpus_paths},
          {"totals",
           {{"documents", totals.documents},
            {"chunks", totals.chunks},
            {"skipped_documents", totals.skipped_documents},
            {"forced_cuts", totals.forced_cuts},
            {"text_bytes", totals.text_bytes},
            {"max_tokens", max_tokens}}},
          {"shards", shards_json},
          {"dataset_hash", dataset_hash}};
}

static ChunkManifest parse_chunk_manifest(const json& doc, const std::string& source) {
  FUSELLM_CHECK(doc.is_object(), "{}: expected a JSON object", source);
  JsonView root(doc, source);
  const auto format = root.get<std::string>("format");
  FUSELLM_CHECK(format == kChunkDatasetFormat, "{}: format '{}' is not a chunk dataset ('{}')", source, format,
                kChunkDatasetFormat);
  const auto version = root.get<int>("version");
  FUSELLM_CHECK(version == kChunkDatasetVersion, "{}: chunk dataset version {} is not supported (this build reads {})",
                source, version, kChunkDatasetVersion);
  ChunkManifest m;
  FUSELLM_CHECK(doc.contains("settings") && doc["settings"].is_object(), "{}: missing object 'settings'", source);
  m.settings = doc["settings"];
  m.dataset_hash = root.get<std::string>("dataset_hash");
  FUSELLM_CHECK(doc.contains("models") && doc["models"].is_array(), "{}: missing array 'models'", source);
  for (size_t i = 0; i < doc["models"].size(); ++i) {
    JsonView v(doc["models"][i], source, fmt::format("models[{}]", i));
    m.models.push_back({v.get<std::string>("name"), v.get<std::string>("role"), v.get<std::string>("tokenizer_path"),
                        v.get<std::string>("tokenizer_hash"), v.get<bool>("add_bos"), v.get<bool>("add_eos"),
                        v.get<int64_t>("budget")});
  }
  if (doc.contains("corpus_paths") && doc["corpus_paths"].is_array())
    for (const auto& p : doc["corpus_paths"]) m.corpus_paths.push_back(p.get<std::string>());
  JsonView totals = root.child("totals");
  m.totals.documents = totals.get<uint64_t>("documents");
  m.totals.chunks = totals.get<uint64_t>("chunks");
  m.totals.skipped_documents = totals.get<uint64_t>("skipped_documents");
  m.totals.forced_cuts = totals.get<uint64_t>("forced_cuts");
  m.totals.text_bytes = totals.get<uint64_t>("text_bytes");
  if (totals.has("max_tokens") && totals.raw()["max_tokens"].is_object())
    for (const auto& [hash, n] : totals.raw()["max_tokens"].items()) m.totals.max_tokens.emplace_back(hash, require_integer<int64_t>(n, source + ": totals.max_tokens"));
  FUSELLM_CHECK(doc.contains("shards") && doc["shards"].is_array(), "{}: missing array 'shards'", source);
  for (size_t i = 0; i < doc["shards"].size(); ++i) {
    JsonView v(doc["shards"][i], source, fmt::format("shards[{}]", i));
    ChunkDatasetShard s{v.get<std::string>("file"), v.get<uint64_t>("first_id"), v.get<uint64_t>("chunks"),
                        v.get<uint64_t>("bytes"), v.get<std::string>("xxh3_64"),
                        BlockDigest::from_json(doc["shards"][i], source)};
    FUSELLM_CHECK(is_plain_file_name(s.file), "{}: shards[{}].file '{}' must be a plain file name", source, i, s.file);
    m.shards.push_back(std::move(s));
  }
  return m;
}

ChunkManifest ChunkManifest::from_json(const json& doc, const std::string& source) {
  return with_json_errors(source, [&] { return parse_chunk_manifest(doc, source); });
}

}  // namespace fusellm::data
