// `fusellm inspect STORE [--json] [--dump CHUNK_ID]`: what a logit store holds.
#include "inspect_store.hpp"

#include <cmath>
#include <iostream>
#include <memory>

#include "cli_common.hpp"
#include "fusellm/teacher/logit_store.hpp"
#include "fusellm/tokenizer/tokenizer.hpp"
#include "fusellm/util/error.hpp"
#include "fusellm/util/json.hpp"
#include "fusellm/util/log.hpp"

namespace fusellm::cli {

namespace {

// The tokenizer the store was made with, when its model directory is still there and unchanged; token
// strings are left out otherwise (the ids are what the store holds).
std::unique_ptr<tok::Tokenizer> store_tokenizer(const teacher::StoreInfo& info) {
  if (info.model_path.empty() || !fs::exists(info.model_path)) {
    spdlog::warn("{}: model directory not found; token strings left out", info.model_path);
    return nullptr;
  }
  try {
    auto tokenizer = tok::load_tokenizer(info.model_path);
    if (tokenizer->hash() != info.tokenizer_hash) {
      spdlog::warn("{}: tokenizer changed since the store was made (hash {} vs {}); token strings left out",
                   info.model_path, tokenizer->hash(), info.tokenizer_hash);
      return nullptr;
    }
    return tokenizer;
  } catch (const Error& e) {
    spdlog::warn("{}; token strings left out", e.what());
    return nullptr;
  }
}

json nullable(float v) { return std::isfinite(v) ? json(v) : json(nullptr); }

int dump_record(const teacher::LogitStoreReader& reader, uint64_t chunk_id, bool as_json) {
  const teacher::RecordView record = reader.record(chunk_id);
  auto tokenizer = store_tokenizer(reader.info());
  auto token = [&](int32_t id) { return tokenizer ? tokenizer->id_to_token(id) : std::string(); };
  const uint32_t T = record.num_positions(), k = record.k();
  if (as_json) {
    json positions = json::array();
    for (uint32_t t = 0; t < T; ++t) {
      json topk = json::array();
      for (uint32_t i = 0; i < k; ++i) {
        json entry = {{"id", record.topk_id(t, i)}, {"logprob", record.topk_logprob(t, i)}};
        if (tokenizer) entry["token"] = token(record.topk_id(t, i));
        topk.push_back(std::move(entry));
      }
      json p = {{"position", t}, {"id", record.input_id(t)},
                {"next_token_logprob", t + 1 < T ? nullable(record.next_token_logprob(t)) : json(nullptr)},
                {"topk", std::move(topk)}};
      if (tokenizer) p["token"] = token(record.input_id(t));
      positions.push_back(std::move(p));
    }
    json out = {{"store", reader.dir().string()}, {"model", reader.info().model_name}, {"chunk_id", chunk_id},
                {"positions", T}, {"k", k}, {"mean_ce", record.mean_ce()}, {"tokens", std::move(positions)}};
    std::cout << out.dump(2, ' ', false, json::error_handler_t::replace) << "\n";
    return 0;
  }
  std::cout << fmt::format("chunk {}: {} positions, mean CE {:.4f} (model {})\n", chunk_id, T, record.mean_ce(),
                           reader.info().model_name);
  for (uint32_t t = 0; t < T; ++t) {
    std::string line = fmt::format("{:>5} {:>7} {:<14} next {:>9}  top:", t, record.input_id(t),
                                   tokenizer ? json_escape_token(token(record.input_id(t))) : "",
                                   t + 1 < T ? fmt::format("{:.4f}", record.next_token_logprob(t)) : "-");
    for (uint32_t i = 0; i < k; ++i) {
      const int32_t id = record.topk_id(t, i);
      line += fmt::format(" {}{}{:.3f}", id, tokenizer ? "=" + json_escape_token(token(id)) + ":" : ":",
                          record.topk_logprob(t, i));
    }
    std::cout << line << "\n";
  }
  return 0;
}

}  // namespace

bool is_logit_store(const fs::path& dir) {
  const fs::path manifest = dir / "manifest.json";
  if (!fs::is_regular_file(manifest)) return false;
  try {
    const json j = parse_json_file(manifest);
    return j.is_object() && j.value("format", "") == "fusellm.logit_store";
  } catch (const Error&) {
    return false;
  }
}

int inspect_logit_store(const fs::path& dir, bool as_json, std::optional<uint64_t> dump_chunk) {
  const teacher::LogitStoreReader reader(dir);
  if (dump_chunk) return dump_record(reader, *dump_chunk, as_json);
  const teacher::StoreStats stats = teacher::compute_store_stats(reader);
  const teacher::StoreInfo& info = reader.info();
  if (as_json) {
    json out = {{"path", dir.string()},
                {"model", {{"name", info.model_name}, {"path", info.model_path}, {"model_type", info.model_type}}},
                {"tokenizer_hash", info.tokenizer_hash},
                {"chunk_dataset_hash", info.chunk_dataset_hash},
                {"vocab_size", info.vocab_size},
                {"k", info.k},
                {"id_dtype", teacher::to_string(info.id_dtype())},
                {"logprob_dtype", teacher::to_string(info.logprob_dtype)},
                {"add_bos", info.add_bos},
                {"add_eos", info.add_eos},
                {"world_size", reader.world_size()},
                {"shards", reader.shards().size()},
                {"records", stats.records},
                {"tokens", stats.tokens},
                {"predicted_tokens", stats.predicted_tokens},
                {"bytes", stats.bytes},
                {"bytes_per_token", stats.bytes_per_token},
                {"mean_ce", stats.mean_ce},
                {"mean_chunk_ce", stats.mean_chunk_ce},
                {"mean_topk_mass", stats.mean_topk_mass}};
    std::cout << out.dump(2) << "\n";
    return 0;
  }
  std::cout << "logit store  " << dir.string() << "\n"
            << "model        " << info.model_name << " (" << info.model_type << ", " << info.model_path << ")\n"
            << "hashes       tokenizer " << info.tokenizer_hash << ", chunk dataset " << info.chunk_dataset_hash << "\n"
            << fmt::format("layout       k {}, vocab {}, ids {}, log-probs {}, BOS {}, EOS {}\n", info.k,
                           info.vocab_size, teacher::to_string(info.id_dtype()),
                           teacher::to_string(info.logprob_dtype), info.add_bos ? "yes" : "no",
                           info.add_eos ? "yes" : "no")
            << fmt::format("shards       {} (written by {} rank{})\n", reader.shards().size(), reader.world_size(),
                           reader.world_size() == 1 ? "" : "s")
            << fmt::format("records      {}\n", stats.records)
            << fmt::format("tokens       {} ({} predicted)\n", stats.tokens, stats.predicted_tokens)
            << fmt::format("bytes        {} ({:.2f} bytes/token)\n", stats.bytes, stats.bytes_per_token)
            << fmt::format("mean CE      {:.4f} nats/token (mean over chunks {:.4f})\n", stats.mean_ce,
                           stats.mean_chunk_ce)
            << fmt::format("top-{} mass  {:.4f}\n", stats.k, stats.mean_topk_mass);
  return 0;
}

}  // namespace fusellm::cli
