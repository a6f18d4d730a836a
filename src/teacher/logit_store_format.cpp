// The logit store's shard encoding and JSON pieces (see logit_store_format.hpp).
#include "logit_store_format.hpp"

#include <xxhash.h>

#include <cmath>
#include <vector>

#include "fusellm/util/error.hpp"
#include "fusellm/util/fs.hpp"

namespace fusellm::teacher {

const char* to_string(IdDtype dtype) { return dtype == IdDtype::U16 ? "u16" : "u32"; }
const char* to_string(LogprobDtype dtype) { return dtype == LogprobDtype::F16 ? "f16" : "bf16"; }

LogprobDtype parse_logprob_dtype(const std::string& name) {
  if (name == "f16" || name == "fp16" || name == "float16") return LogprobDtype::F16;
  if (name == "bf16" || name == "bfloat16") return LogprobDtype::BF16;
  fail("logprob dtype '{}': expected f16 or bf16", name);
}

void StoreInfo::validate() const {
  FUSELLM_CHECK(vocab_size > 0, "logit store: vocab_size must be positive");
  FUSELLM_CHECK(k > 0, "logit store: k must be positive");
  FUSELLM_CHECK(k <= vocab_size, "logit store: k = {} exceeds vocab_size = {}", k, vocab_size);
}

float mean_cross_entropy(const std::vector<float>& next_token_logprob) {
  if (next_token_logprob.size() < 2) return 0.0f;
  double sum = 0;
  for (size_t t = 0; t + 1 < next_token_logprob.size(); ++t) sum -= static_cast<double>(next_token_logprob[t]);
  return static_cast<float>(sum / static_cast<double>(next_token_logprob.size() - 1));
}

namespace format {

void encode_header(const ShardHeader& header, uint8_t out[kHeaderBytes]) {
  std::memset(out, 0, kHeaderBytes);
  std::memcpy(out, kShardMagic, 8);
  store<uint32_t>(out + 8, header.version);
  store<uint32_t>(out + 12, header.k);
  out[16] = header.id_bytes;
  out[17] = header.logprob_code;
  store<uint32_t>(out + 20, header.shard_index);
}

void encode_index_entry(const IndexEntry& entry, uint8_t out[kIndexEntryBytes]) {
  store<uint64_t>(out, entry.chunk_id);
  store<uint64_t>(out + 8, entry.offset);
  store<uint32_t>(out + 16, entry.positions);
  store<float>(out + 20, entry.mean_ce);
}

void encode_footer(uint64_t index_offset, uint64_t record_count, uint8_t out[kFooterBytes]) {
  store<uint64_t>(out, index_offset);
  store<uint64_t>(out + 8, record_count);
  std::memcpy(out + 16, kFooterMagic, 8);
}

IndexEntry ParsedShard::entry(uint64_t i) const {
  const uint8_t* p = index + i * kIndexEntryBytes;
  return IndexEntry{load<uint64_t>(p), load<uint64_t>(p + 8), load<uint32_t>(p + 16), load<float>(p + 20)};
}

ParsedShard parse_shard(const uint8_t* data, size_t size, const std::string& name, IdDtype expect_ids,
                        LogprobDtype expect_logprobs, uint32_t expect_k) {
  FUSELLM_CHECK(size >= kHeaderBytes + kFooterBytes, "{}: truncated shard ({} bytes, smaller than header + footer)",
                name, size);
  FUSELLM_CHECK(std::memcmp(data, kShardMagic, 8) == 0, "{}: not a logit store shard (bad magic)", name);
  const uint8_t* footer = data + size - kFooterBytes;
  FUSELLM_CHECK(std::memcmp(footer + 16, kFooterMagic, 8) == 0, "{}: truncated shard (footer magic missing)", name);
  ParsedShard shard;
  shard.header.version = load<uint32_t>(data + 8);
  shard.header.k = load<uint32_t>(data + 12);
  shard.header.id_bytes = data[16];
  shard.header.logprob_code = data[17];
  shard.header.shard_index = load<uint32_t>(data + 20);
  FUSELLM_CHECK(shard.header.version == kShardVersion, "{}: shard version {} (this build reads {})", name,
                shard.header.version, kShardVersion);
  FUSELLM_CHECK(shard.header.k == expect_k, "{}: shard has k = {}, manifest says {}", name, shard.header.k, expect_k);
  FUSELLM_CHECK(shard.header.id_bytes == id_bytes(expect_ids), "{}: shard stores {}-byte ids, manifest says {}",
                name, shard.header.id_bytes, to_string(expect_ids));
  FUSELLM_CHECK(shard.header.logprob_code == logprob_code(expect_logprobs),
                "{}: shard log-prob dtype code {}, manifest says {}", name, shard.header.logprob_code,
                to_string(expect_logprobs));
  shard.index_offset = load<uint64_t>(footer);
  shard.record_count = load<uint64_t>(footer + 8);
  const uint64_t index_end = size - kFooterBytes;
  FUSELLM_CHECK(shard.index_offset >= kHeaderBytes && shard.index_offset <= index_end &&
                    (index_end - shard.index_offset) / kIndexEntryBytes == shard.record_count &&
                    (index_end - shard.index_offset) % kIndexEntryBytes == 0,
                "{}: corrupt shard footer (index at {}, {} records, file {} bytes)", name, shard.index_offset,
                shard.record_count, size);
  shard.index = data + shard.index_offset;
  for (uint64_t i = 0; i < shard.record_count; ++i) {
    const IndexEntry e = shard.entry(i);
    const uint64_t bytes = record_payload_bytes(e.positions, shard.header.k, expect_ids);
    FUSELLM_CHECK(e.positions > 0 && e.offset >= kHeaderBytes && e.offset % kRecordAlignment == 0 &&
                      e.offset <= shard.index_offset && bytes <= shard.index_offset - e.offset,
                  "{}: corrupt index entry {} (chunk {}, offset {}, {} positions)", name, i, e.chunk_id, e.offset,
                  e.positions);
  }
  return shard;
}

std::string xxh3_hex_of_file(const fs::path& path) {
  MappedFile file(path);
  return xxh3_hex(file.data(), file.size());
}

json info_to_json(const StoreInfo& info) {
  json model = {{"name", info.model_name}, {"path", info.model_path}, {"model_type", info.model_type}};
  return json{{"model", model},
              {"tokenizer_hash", info.tokenizer_hash},
              {"chunk_dataset_hash", info.chunk_dataset_hash},
              {"vocab_size", info.vocab_size},
              {"k", info.k},
              {"id_dtype", to_string(info.id_dtype())},
              {"logprob_dtype", to_string(info.logprob_dtype)},
              {"add_bos", info.add_bos},
              {"add_eos", info.add_eos}};
}

StoreInfo info_from_json(const JsonView& view) {
  StoreInfo info;
  const JsonView model = view.child("model");
  info.model_name = model.get<std::string>("name");
  info.model_path = model.get_or<std::string>("path", "");
  info.model_type = model.get_or<std::string>("model_type", "");
  info.tokenizer_hash = view.get<std::string>("tokenizer_hash");
  info.chunk_dataset_hash = view.get<std::string>("chunk_dataset_hash");
  info.vocab_size = view.get<uint32_t>("vocab_size");
  info.k = view.get<uint32_t>("k");
  info.logprob_dtype = parse_logprob_dtype(view.get<std::string>("logprob_dtype"));
  info.add_bos = view.get<bool>("add_bos");
  info.add_eos = view.get<bool>("add_eos");
  const std::string ids = view.get<std::string>("id_dtype");
  FUSELLM_CHECK(ids == to_string(info.id_dtype()), "{}: id_dtype '{}' does not fit vocab_size {} (expected {})",
                view.source(), ids, info.vocab_size, to_string(info.id_dtype()));
  try {
    info.validate();
  } catch (const Error& e) {
    fail("{}: {}", view.source(), e.what());
  }
  return info;
}

json shard_to_json(const ShardEntry& entry) {
  json j{{"shard_index", entry.shard_index}, {"file", entry.file},   {"records", entry.records},
         {"tokens", entry.tokens},           {"bytes", entry.bytes}, {"xxh3_64", entry.xxh3_64},
         {"first_chunk_id", entry.first_chunk_id}};
  entry.blocks.to_json(j);
  return j;
}

ShardEntry shard_from_json(const JsonView& view) {
  ShardEntry entry;
  entry.shard_index = view.get<uint32_t>("shard_index");
  entry.file = view.get<std::string>("file");
  entry.records = view.get<uint64_t>("records");
  entry.tokens = view.get<uint64_t>("tokens");
  entry.bytes = view.get<uint64_t>("bytes");
  entry.xxh3_64 = view.get<std::string>("xxh3_64");
  entry.first_chunk_id = view.get<uint64_t>("first_chunk_id");
  entry.blocks = BlockDigest::from_json(view.raw(), view.source());
  // A shard name is a plain file name: never a path that could leave the store directory.
  FUSELLM_CHECK(is_plain_file_name(entry.file), "{}: key '{}': '{}' is not a shard file name", view.source(), view.key_path("file"), entry.file);
  return entry;
}

std::string first_difference(const json& a, const json& b) {
  for (auto it = a.begin(); it != a.end(); ++it) {
    if (!b.contains(it.key())) return it.key();
    if (it.value().is_object() && b[it.key()].is_object()) {
      std::string inner = first_difference(it.value(), b[it.key()]);
      if (!inner.empty()) return it.key() + "." + inner;
    } else if (it.value() != b[it.key()]) {
      return it.key();
    }
  }
  for (auto it = b.begin(); it != b.end(); ++it)
    if (!a.contains(it.key())) return it.key();
  return "";
}

void remove_temp_files(const fs::path& dir, const std::string& prefix) {
  std::vector<fs::path> stale;  // collected first: removing while iterating a directory is unspecified
  std::error_code ec;
  for (fs::directory_iterator it(dir, ec), end; !ec && it != end; it.increment(ec)) {
    const std::string name = it->path().filename().string();
    if (name.compare(0, prefix.size(), prefix) == 0 && name.find(".tmp.", prefix.size()) != std::string::npos)
      stale.push_back(it->path());
  }
  for (const fs::path& path : stale) fs::remove(path, ec);
}

}  // namespace format
}  // namespace fusellm::teacher
