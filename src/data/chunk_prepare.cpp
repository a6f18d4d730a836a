// prepare_chunk_dataset: corpus -> chunks -> dataset directory, reusing a finished dataset made with the
// same settings. Documents are split in parallel in batches and written in corpus order, so the output does
// not depend on the number of threads.
#include <algorithm>
#include <atomic>
#include <exception>
#include <map>
#include <mutex>
#include <optional>
#include <thread>

#include "fusellm/data/chunk_dataset.hpp"
#include "fusellm/util/error.hpp"
#include "fusellm/util/log.hpp"
#include "fusellm/util/progress.hpp"

namespace fusellm::data {

namespace {

// Runs fn(i) for i in [0, n) on up to `threads` threads; rethrows the first exception.
template <typename Fn>
void parallel_for(size_t n, size_t threads, Fn&& fn) {
  threads = std::min(threads, n);
  if (threads <= 1) {
    for (size_t i = 0; i < n; ++i) fn(i);
    return;
  }
  std::atomic<size_t> next{0};
  std::exception_ptr error;
  std::mutex error_mutex;
  std::vector<std::thread> pool;
  for (size_t t = 0; t < threads; ++t)
    pool.emplace_back([&] {
      for (size_t i; (i = next.fetch_add(1)) < n;) {
        try {
          fn(i);
        } catch (...) {
          std::lock_guard<std::mutex> lock(error_mutex);
          if (!error) error = std::current_exception();
          next = n;
        }
      }
    });
  for (auto& t : pool) t.join();
  if (error) std::rethrow_exception(error);
}

// A finished dataset already in the directory: reused when its settings equal `settings`.
std::optional<ChunkManifest> reuse_existing(const fs::path& dir, const json& settings, bool force) {
  if (!ChunkDataset::is_complete(dir)) return std::nullopt;
  const fs::path manifest_path = dir / kChunkManifestName;
  json existing;
  try {
    existing = parse_json_file(manifest_path);
  } catch (const Error& e) {
    if (force) return std::nullopt;
    fail("{} (use --force to rebuild the chunk dataset)", e.what());
  }
  const json old_settings = existing.is_object() ? existing.value("settings", json()) : json();
  if (old_settings != settings) {
    if (force) {
      spdlog::info("{}: rebuilding the chunk dataset (--force): {}", dir.string(),
                   describe_settings_difference(old_settings, settings));
      return std::nullopt;
    }
    fail("{}: a chunk dataset made with other settings is there ({}); use --force to rebuild it or choose another "
         "data.chunk_dir",
         dir.string(), describe_settings_difference(old_settings, settings));
  }
  if (force) return std::nullopt;
  try {
    return ChunkDataset::open(dir, /*verify_checksums=*/true).manifest();
  } catch (const Error& e) {
    fail("{} (use --force to rebuild the chunk dataset)", e.what());
  }
}

}  // namespace

PrepareOptions prepare_options_from_config(const ExperimentConfig& config,
                                           const std::vector<const tok::Tokenizer*>& tokenizers) {
  FUSELLM_CHECK(tokenizers.size() == config.models.size(), "{}: {} models but {} tokenizers",
                config.config_path.string(), config.models.size(), tokenizers.size());
  PrepareOptions o;
  o.corpus = config.data.corpus;
  o.corpus_base_dir = config.config_dir;
  o.corpus_options = CorpusOptions::from_config(config.data);
  o.out_dir = config.data.chunk_dir;
  o.max_length = config.data.max_length;
  o.margin = config.data.margin;
  for (size_t i = 0; i < config.models.size(); ++i) {
    const ModelEntry& entry = config.models[i];
    const tok::Tokenizer& tokenizer = *tokenizers[i];
    PrepareModel model;
    model.tokenizer = &tokenizer;
    model.info.name = entry.name;
    model.info.role = to_string(entry.role);
    model.info.tokenizer_path = tokenizer.source().empty() ? entry.path.string() : tokenizer.source();
    model.info.tokenizer_hash = tokenizer.hash();
    model.info.add_bos = config.infer.add_bos.value_or(tokenizer.special_tokens().add_bos);
    model.info.add_eos = config.infer.add_eos;
    o.models.push_back(std::move(model));
  }
  return o;
}

PrepareResult prepare_chunk_dataset(const PrepareOptions& options) {
  FUSELLM_CHECK(!options.models.empty(), "{}: no models: nothing to cut the corpus for", options.out_dir.string());
  FUSELLM_CHECK(options.max_length >= 2, "data.max_length: must be at least 2, got {}", options.max_length);
  FUSELLM_CHECK(options.margin >= 0 && options.margin < options.max_length,
                "data.margin: must be in [0, max_length), got {}", options.margin);

  ChunkDatasetSpec spec;
  spec.corpus_files = resolve_corpus(options.corpus, options.corpus_base_dir);
  spec.corpus_options = options.corpus_options;
  spec.max_length = options.max_length;
  spec.margin = options.margin;
  spec.shard_chunks = options.shard_chunks;
  std::map<std::string, std::pair<const tok::Tokenizer*, std::vector<size_t>>> by_hash;  // hash -> tokenizer, models
  for (size_t i = 0; i < options.models.size(); ++i) {
    const PrepareModel& m = options.models[i];
    FUSELLM_CHECK(m.tokenizer != nullptr, "model '{}': tokenizer not loaded", m.info.name);
    ChunkDatasetModel info = m.info;
    if (info.tokenizer_hash.empty()) info.tokenizer_hash = m.tokenizer->hash();
    info.budget = chunk_token_budget(options.max_length, options.margin, info.add_bos, info.add_eos);
    auto& slot = by_hash[info.tokenizer_hash];
    slot.first = m.tokenizer;
    slot.second.push_back(i);
    spec.models.push_back(std::move(info));
  }
  const json settings = spec.settings_json();

  // The chunker's tokenizers: one per distinct hash, in the settings' (hash) order, at the smallest budget.
  std::vector<ChunkTokenizer> chunk_tokenizers;
  PrepareResult result;
  for (const auto& [hash, slot] : by_hash) {
    ChunkTokenizer t;
    t.tokenizer = slot.first;
    t.budget = INT64_MAX;
    for (size_t i : slot.second) {
      t.name += (t.name.empty() ? "" : ",") + spec.models[i].name;
      t.budget = std::min(t.budget, spec.models[i].budget);
    }
    result.tokenizer_names.push_back(t.name);
    chunk_tokenizers.push_back(std::move(t));
  }

  if (auto existing = reuse_existing(options.out_dir, settings, options.force)) {
    result.reused = true;
    result.manifest = std::move(*existing);
    return result;
  }

  const Chunker chunker(std::move(chunk_tokenizers), options.chunker);
  CorpusReader reader(spec.corpus_files, options.corpus_options);
  ChunkDatasetWriter writer(options.out_dir, settings, options.shard_chunks);
  const size_t threads =
      options.threads > 0 ? static_cast<size_t>(options.threads) : std::max(1u, std::thread::hardware_concurrency());
  std::unique_ptr<Progress> progress;
  if (options.progress) progress = std::make_unique<Progress>("prepare", 0, "documents", "chunks");

  // Batches big enough to keep every thread busy, small enough to bound memory.
  constexpr size_t kBatchDocuments = 256, kBatchBytes = size_t{8} << 20;
  std::vector<Document> batch;
  std::vector<std::vector<ChunkSpan>> spans;
  std::vector<ChunkerStats> batch_stats;
  ChunkerStats& stats = result.stats;
  for (bool more = true; more;) {
    batch.clear();
    size_t bytes = 0;
    while (batch.size() < kBatchDocuments && bytes < kBatchBytes) {
      Document doc;
      if (!(more = reader.next(doc))) break;
      bytes += doc.text.size();
      batch.push_back(std::move(doc));
    }
    spans.assign(batch.size(), {});
    batch_stats.assign(batch.size(), {});
    parallel_for(batch.size(), threads,
                 [&](size_t i) { spans[i] = chunker.split(batch[i].text, batch_stats[i], batch[i].id); });
    uint64_t batch_chunks = 0;
    for (size_t i = 0; i < batch.size(); ++i) {
      stats.merge(batch_stats[i]);
      const auto parts = static_cast<uint32_t>(spans[i].size());
      for (uint32_t p = 0; p < parts; ++p) {
        const ChunkSpan& span = spans[i][p];
        writer.add(batch[i].id, p, parts, std::string_view(batch[i].text).substr(span.begin, span.end - span.begin));
      }
      batch_chunks += parts;
    }
    if (progress) progress->add(batch.size(), batch_chunks);
  }
  if (progress) progress->finish();
  result.corpus_stats = reader.stats();

  ChunkDatasetTotals totals;
  totals.documents = stats.documents;
  totals.chunks = stats.chunks;
  totals.skipped_documents = stats.skipped_documents + result.corpus_stats.empty_documents;
  totals.forced_cuts = stats.forced_cuts;
  totals.text_bytes = stats.text_bytes;
  stats.max_tokens.resize(by_hash.size(), 0);  // all zero when no document was split
  size_t t = 0;
  for (const auto& entry : by_hash) totals.max_tokens.emplace_back(entry.first, stats.max_tokens[t++]);
  std::vector<std::string> corpus_paths;
  for (const auto& f : spec.corpus_files) corpus_paths.push_back(f.path.string());
  result.manifest = writer.finish(spec.models, std::move(corpus_paths), std::move(totals));
  return result;
}

}  // namespace fusellm::data
