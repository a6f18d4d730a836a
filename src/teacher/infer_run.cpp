// infer_logit_store: one model over a chunk dataset into a logit store. The compute loop (this thread) batches
// each owned shard's chunks by length and runs the model; a writer thread turns finished batches into records
// and commits shards, so disk writes overlap the next forward pass. Ranks coordinate through files only.
#include <algorithm>
#include <chrono>
#include <csignal>
#include <exception>
#include <thread>

#include "fusellm/teacher/infer.hpp"
#include "fusellm/util/error.hpp"
#include "fusellm/util/log.hpp"
#include "fusellm/util/progress.hpp"
#include "infer_queue.hpp"
#include "logit_store_format.hpp"

namespace fusellm::teacher {

namespace {

using format::first_difference;
using format::info_to_json;

// What the writer thread is handed, in order: begin a shard, the batches of that shard, finish it.
struct WriteItem {
  enum class Kind { BeginShard, Batch, FinishShard } kind = Kind::Batch;
  uint32_t shard = 0;
  std::vector<uint64_t> chunk_ids;               // per row of the batch
  std::vector<std::vector<int32_t>> input_ids;   // per row
  BatchTopK topk;
};

// Describes a stored setting that differs from what this run would write, with a hint for the two that mean
// "the inputs changed".
std::string describe_mismatch(const fs::path& file, const json& stored, const json& wanted) {
  // The inputs first: they say why the rest (paths, vocabulary) differs too.
  std::string key = first_difference(stored, wanted);
  for (const char* input : {"chunk_dataset_hash", "tokenizer_hash"})
    if (stored.value(input, json()) != wanted.value(input, json())) key = input;
  auto value = [&](const json& j) {
    const json* v = &j;
    size_t start = 0;
    for (size_t dot; (dot = key.find('.', start)) != std::string::npos; start = dot + 1) {
      if (!v->contains(key.substr(start, dot - start))) return std::string("(none)");
      v = &(*v)[key.substr(start, dot - start)];
    }
    const std::string last = key.substr(start);
    return v->contains(last) ? (*v)[last].dump() : std::string("(none)");
  };
  std::string what;
  if (key == "tokenizer_hash")
    what = "was made with another tokenizer";
  else if (key == "chunk_dataset_hash")
    what = "was made from another chunk dataset (corpus or prepare settings changed)";
  else
    what = fmt::format("was made with a different '{}'", key);
  return fmt::format("{}: the logit store {}: {} {} stored, {} now; remove it or choose another infer.store_dir",
                     file.string(), what, key, value(stored), value(wanted));
}

void raise_kill(const char* what, uint64_t count) {
  spdlog::warn("infer: test hook: SIGKILL after {} {}", count, what);
  std::fflush(nullptr);
  std::raise(SIGKILL);
}

}  // namespace

bool check_existing_store(const fs::path& dir, const StoreInfo& info, uint64_t expected_records) {
  if (!fs::exists(dir)) return false;
  const json wanted = info_to_json(info);
  // Every file that records the settings: the manifest (keys at top level) and each rank's progress/part.
  std::vector<fs::path> rank_files;
  std::error_code ec;
  for (fs::directory_iterator it(dir, ec), end; !ec && it != end; it.increment(ec)) {
    const std::string name = it->path().filename().string();
    const bool rank_file = (name.rfind("progress.rank", 0) == 0 || name.rfind("part.rank", 0) == 0) &&
                           name.size() > 5 && name.compare(name.size() - 5, 5, ".json") == 0;
    if (rank_file) rank_files.push_back(it->path());
  }
  std::sort(rank_files.begin(), rank_files.end());
  for (const fs::path& file : rank_files) {
    const json j = parse_json_file(file);
    FUSELLM_CHECK(j.is_object() && j.contains("store") && j["store"].is_object(),
                  "{}: not a logit store progress/part file (no 'store')", file.string());
    const json& stored = j["store"];
    FUSELLM_CHECK(first_difference(stored, wanted).empty(), "{}", describe_mismatch(file, stored, wanted));
  }
  const fs::path manifest = dir / format::kManifestName;
  if (!fs::exists(manifest)) return false;
  const json m = parse_json_file(manifest);
  FUSELLM_CHECK(m.is_object() && m.value("format", "") == format::kStoreFormat, "{}: not a logit store manifest",
                manifest.string());
  json stored = json::object();
  for (const auto& [key, value] : wanted.items()) {
    if (m.contains(key)) stored[key] = m[key];
  }
  FUSELLM_CHECK(first_difference(stored, wanted).empty(), "{}", describe_mismatch(manifest, stored, wanted));
  // Settings agree: is it whole? A store that does not open or lacks chunks is redone shard by shard.
  try {
    LogitStoreReader reader(dir, StoreExpectations{info.tokenizer_hash, info.chunk_dataset_hash, info.k},
                            ReaderOptions{/*verify_checksums=*/true});
    return reader.num_records() == expected_records;
  } catch (const Error& e) {
    spdlog::warn("{}: finished store does not check out ({}); redoing what is missing", dir.string(), e.what());
    return false;
  }
}

InferResult infer_logit_store(model::CausalLM& model, const tok::Tokenizer& tokenizer,
                              const data::ChunkDataset& dataset, const std::string& model_name,
                              const fs::path& model_path, const fs::path& store_dir, const InferSettings& settings,
                              const RankInfo& rank) {
  FUSELLM_CHECK(settings.shard_records >= 1, "infer.shard_records: must be at least 1");
  FUSELLM_CHECK(rank.world_size >= 1 && rank.rank >= 0 && rank.rank < rank.world_size,
                "infer: rank {} outside world size {}", rank.rank, rank.world_size);
  const data::ChunkManifest& chunks = dataset.manifest();
  FUSELLM_CHECK(chunks.has_tokenizer(tokenizer.hash()),
                "{}: the chunk dataset was not prepared for model '{}' (its tokenizer {} has hash {}); rerun "
                "`fusellm prepare` with this model in the config",
                dataset.dir().string(), model_name, tokenizer.source(), tokenizer.hash());
  const int64_t max_length = chunks.settings.value("max_length", int64_t{0});
  const int64_t context = model.config().max_context;

  StoreInfo info;
  info.model_name = model_name;
  info.model_path = model_path.string();
  info.model_type = model.config().model_type;
  info.tokenizer_hash = tokenizer.hash();
  info.chunk_dataset_hash = dataset.hash();
  info.vocab_size = static_cast<uint32_t>(model.config().vocab_size);
  info.k = settings.top_k;
  info.logprob_dtype = settings.logprob_dtype;
  info.add_bos = settings.add_bos.value_or(tokenizer.special_tokens().add_bos);
  info.add_eos = settings.add_eos;
  FUSELLM_CHECK(static_cast<int64_t>(tokenizer.vocab_size()) <= model.config().vocab_size,
                "{}: the tokenizer has {} tokens but model '{}' only {} logits", tokenizer.source(),
                tokenizer.vocab_size(), model_name, model.config().vocab_size);

  const tok::SpecialTokens& special = tokenizer.special_tokens();
  FUSELLM_CHECK(!info.add_bos || special.bos.has_value(), "{}: BOS is to be prepended (infer.add_bos) but the "
                "tokenizer has no BOS token", tokenizer.source());
  FUSELLM_CHECK(!info.add_eos || special.eos.has_value(), "{}: EOS is to be appended (infer.add_eos) but the "
                "tokenizer has no EOS token", tokenizer.source());
  const int32_t bos_id = special.bos.value_or(0), eos_id = special.eos.value_or(0);

  InferResult result;
  result.store_dir = store_dir;
  const uint64_t total_chunks = dataset.size();
  if (check_existing_store(store_dir, info, total_chunks)) {
    result.already_complete = true;
    spdlog::info("{}: logit store of '{}' is complete ({} chunks); nothing to do", store_dir.string(), model_name,
                 total_chunks);
    return result;
  }

  const auto world = static_cast<uint32_t>(rank.world_size), me = static_cast<uint32_t>(rank.rank);
  LogitStoreWriter writer(store_dir, info, me, world, settings.shard_records);
  const uint64_t shard_count = (total_chunks + settings.shard_records - 1) / settings.shard_records;
  auto shard_range = [&](uint32_t j) {
    const uint64_t begin = uint64_t(j) * settings.shard_records;
    return std::make_pair(begin, std::min(total_chunks, begin + settings.shard_records));
  };
  std::vector<uint32_t> todo;
  uint64_t owned_chunks = 0, resumed_chunks = 0;
  for (uint64_t j = me; j < shard_count; j += world) {
    const auto [begin, end] = shard_range(static_cast<uint32_t>(j));
    owned_chunks += end - begin;
    ++result.shards_owned;
    if (writer.shard_complete(static_cast<uint32_t>(j))) {
      ++result.shards_resumed;
      resumed_chunks += end - begin;
    } else {
      todo.push_back(static_cast<uint32_t>(j));
    }
  }
  spdlog::info("infer '{}' rank {}/{}: {} of {} shards to compute ({} already committed) into {}", model_name, me,
               world, todo.size(), result.shards_owned, result.shards_resumed, store_dir.string());

  std::unique_ptr<Progress> progress;
  if (settings.progress) {
    progress = std::make_unique<Progress>("infer " + model_name, owned_chunks, "chunks", "tok");
    progress->set_done(resumed_chunks);
  }

  // The writer thread: records in the order the batches come, shards committed as they end.
  detail::BoundedQueue<WriteItem> queue(settings.queue_batches);
  std::exception_ptr writer_error;
  uint64_t records_added = 0;
  std::thread writer_thread([&] {
    try {
      while (auto item = queue.pop()) {
        if (item->kind == WriteItem::Kind::BeginShard) {
          writer.begin_shard(item->shard);
        } else if (item->kind == WriteItem::Kind::FinishShard) {
          writer.finish_shard();
          ++result.shards_written;
          if (settings.kill_after_shards > 0 && result.shards_written == settings.kill_after_shards)
            raise_kill("shards", result.shards_written);
        } else {
          BatchTopK& batch = item->topk;
          if (batch.wait) batch.wait();
          const int64_t k = batch.topk_ids.size(1);
          const float* lp = batch.topk_logprobs.data_ptr<float>();
          const int32_t* ids = batch.topk_ids.data_ptr<int32_t>();
          const float* next = batch.next_logprobs.data_ptr<float>();
          uint64_t batch_tokens = 0;
          ChunkRecord record;
          for (size_t r = 0; r < item->chunk_ids.size(); ++r) {
            const auto T = static_cast<int64_t>(item->input_ids[r].size());
            record.chunk_id = item->chunk_ids[r];
            record.input_ids = std::move(item->input_ids[r]);
            record.next_token_logprob.assign(next, next + T);
            record.topk_ids.assign(ids, ids + T * k);
            record.topk_logprobs.assign(lp, lp + T * k);
            writer.add(record);
            next += T, ids += T * k, lp += T * k;
            batch_tokens += static_cast<uint64_t>(T);
            ++records_added;
            if (settings.kill_after_records > 0 && records_added == settings.kill_after_records)
              raise_kill("records", records_added);
          }
          if (progress) progress->add(item->chunk_ids.size(), batch_tokens);
        }
      }
    } catch (...) {
      writer_error = std::current_exception();
      queue.close();  // the compute loop's next push fails and it stops
    }
  });
  auto push = [&](WriteItem item) {
    if (!queue.push(std::move(item))) throw Error("infer: the writer thread stopped");
  };

  const auto start = std::chrono::steady_clock::now();
  try {
    for (uint32_t j : todo) {
      const auto [begin, end] = shard_range(j);
      // Tokenize the shard: text only, then BOS/EOS as the store says.
      std::vector<std::string> texts;
      texts.reserve(end - begin);
      for (uint64_t id = begin; id < end; ++id) texts.push_back(dataset.at(id).text);
      std::vector<tok::Encoding> encodings = tokenizer.encode_batch(texts, /*add_special_tokens=*/false);
      std::vector<std::vector<int32_t>> rows(texts.size());
      std::vector<size_t> lengths(texts.size());
      for (size_t i = 0; i < texts.size(); ++i) {
        std::vector<int32_t>& row = rows[i];
        if (info.add_bos) row.push_back(bos_id);
        row.insert(row.end(), encodings[i].ids.begin(), encodings[i].ids.end());
        if (info.add_eos) row.push_back(eos_id);
        lengths[i] = row.size();
        // prepare guaranteed the fit; a longer chunk means the dataset and this tokenizer disagree.
        FUSELLM_CHECK(row.size() >= 1 && (max_length <= 0 || static_cast<int64_t>(row.size()) <= max_length),
                      "{}: chunk {} is {} tokens for model '{}' (with BOS/EOS), over the dataset's max_length {}; "
                      "the chunk dataset was cut for other tokenizer settings: rerun `fusellm prepare`",
                      dataset.dir().string(), begin + i, row.size(), model_name, max_length);
        FUSELLM_CHECK(context <= 0 || static_cast<int64_t>(row.size()) <= context,
                      "{}: chunk {} is {} tokens, over model '{}''s context length {}; lower data.max_length",
                      dataset.dir().string(), begin + i, row.size(), model_name, context);
      }
      texts.clear();
      encodings.clear();

      WriteItem begin_item;
      begin_item.kind = WriteItem::Kind::BeginShard;
      begin_item.shard = j;
      push(std::move(begin_item));
      for (const std::vector<size_t>& batch : plan_length_batches(lengths, settings.batch_tokens)) {
        WriteItem item;
        std::vector<std::vector<int32_t>> batch_rows;
        for (size_t i : batch) {
          item.chunk_ids.push_back(begin + i);
          batch_rows.push_back(std::move(rows[i]));
        }
        item.topk = compute_batch_topk(model, batch_rows, info.k);
        item.input_ids = std::move(batch_rows);
        result.chunks += batch.size();
        for (const auto& row : item.input_ids) result.tokens += row.size();
        push(std::move(item));
      }
      WriteItem finish_item;
      finish_item.kind = WriteItem::Kind::FinishShard;
      finish_item.shard = j;
      push(std::move(finish_item));
    }
  } catch (...) {
    queue.close();
    writer_thread.join();
    if (writer_error) std::rethrow_exception(writer_error);  // the root cause, not "writer stopped"
    throw;
  }
  queue.close();
  writer_thread.join();
  if (writer_error) std::rethrow_exception(writer_error);
  result.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  if (progress) progress->finish();

  writer.finish();
  if (me != 0) {
    spdlog::info("infer '{}' rank {}: done; rank 0 merges the manifest", model_name, me);
    return result;
  }
  // Rank 0: every rank's part file marks that rank done; poll for them, then merge.
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::duration<double>(settings.merge_timeout_seconds);
  for (uint32_t r = 1; r < world; ++r) {
    const fs::path part = store_dir / format::part_name(r);
    while (!fs::exists(part)) {
      FUSELLM_CHECK(std::chrono::steady_clock::now() < deadline,
                    "{}: rank {} of {} did not finish within {:.0f} s (its part file is missing); is every rank "
                    "running `fusellm infer` with WORLD_SIZE={} on this store?",
                    part.string(), r, world, settings.merge_timeout_seconds, world);
      std::this_thread::sleep_for(std::chrono::milliseconds(200));
    }
  }
  merge_manifests(store_dir, world);
  LogitStoreReader reader(store_dir, StoreExpectations{info.tokenizer_hash, info.chunk_dataset_hash, info.k},
                          ReaderOptions{/*verify_checksums=*/false});
  FUSELLM_CHECK(reader.num_records() == total_chunks,
                "{}: merged store holds {} records but the chunk dataset has {} chunks (a rank ran with other "
                "settings?)",
                store_dir.string(), reader.num_records(), total_chunks);
  result.merged = true;
  spdlog::info("{}: logit store of '{}' complete: {} records, {} tokens, {} bytes", store_dir.string(), model_name,
               reader.num_records(), reader.num_tokens(), reader.shard_bytes());
  return result;
}

}  // namespace fusellm::teacher
