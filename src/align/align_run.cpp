// The align stage driver (see align_run.hpp): settings, per-chunk alignment of every source onto the target,
// shard loop with resume, rank split and merge.
#include "fusellm/align/align_run.hpp"

#include <algorithm>
#include <atomic>
#include <cmath>
#include <limits>
#include <thread>

#include "fusellm/align/alignment.hpp"
#include "fusellm/align/canonical.hpp"
#include "fusellm/data/chunk_dataset.hpp"
#include "fusellm/teacher/logit_store.hpp"
#include "fusellm/tokenizer/tokenizer.hpp"
#include "fusellm/util/error.hpp"
#include "fusellm/util/experiment_config.hpp"
#include "fusellm/util/log.hpp"
#include "fusellm/util/progress.hpp"

namespace fusellm::align {
namespace {

const char* method_name(AlignMethod m) { return m == AlignMethod::dtw ? "dtw" : "offsets"; }
const char* compat_name(ProjectionMode m) { return m == ProjectionMode::official ? "official" : "fusellm"; }
const char* duplicates_name(DuplicatePolicy p) { return p == DuplicatePolicy::sum ? "sum" : "keep_first"; }

// Everything needed to align one source (immutable while aligning; shared by the worker threads).
struct SourceContext {
  const AlignSourceInput* input = nullptr;
  teacher::LogitStoreReader store;
  Vocabulary vocab;
  std::unique_ptr<Projector> projector;  // null for the target (identity)
  explicit SourceContext(teacher::LogitStoreReader s) : store(std::move(s)) {}
};

struct TargetContext {
  const teacher::LogitStoreReader* store = nullptr;
  const tok::Tokenizer* tokenizer = nullptr;
  Vocabulary vocab;
};

// Byte spans of a stored tokenization: the chunk text re-encoded without specials, with the bytes each token
// really covers (untrimmed offsets), plus empty spans for the BOS/EOS the store added; the ids must be the
// stored ones (else the store was made from other text/settings).
std::vector<ByteSpan> spans_of(const tok::Tokenizer& tokenizer, const teacher::StoreInfo& info, const std::string& text,
                               const std::vector<int32_t>& stored_ids, const std::string& store_name,
                               uint64_t chunk_id) {
  const tok::Encoding enc = tokenizer.encode_untrimmed(text, false);
  std::vector<int32_t> ids;
  std::vector<ByteSpan> spans;
  if (info.add_bos && tokenizer.special_tokens().bos) {
    ids.push_back(*tokenizer.special_tokens().bos);
    spans.emplace_back(0, 0);
  }
  ids.insert(ids.end(), enc.ids.begin(), enc.ids.end());
  spans.insert(spans.end(), enc.offsets.begin(), enc.offsets.end());
  if (info.add_eos && tokenizer.special_tokens().eos) {
    ids.push_back(*tokenizer.special_tokens().eos);
    spans.emplace_back(uint32_t(text.size()), uint32_t(text.size()));
  }
  FUSELLM_CHECK(ids == stored_ids, "{}: chunk {}: the stored input ids are not the tokenization of the chunk text",
                store_name, chunk_id);
  return spans;
}

AlignedChunk align_target_chunk(const teacher::RecordView& rec, uint32_t k_out, uint32_t empty_id) {
  const uint32_t T = rec.num_positions(), k = rec.k();
  AlignedChunk out;
  out.chunk_id = rec.chunk_id();
  out.target_ids.resize(T);
  rec.input_ids(out.target_ids.data());
  out.topk_ids.assign(size_t(T) * k_out, int32_t(empty_id));
  out.topk_values.assign(size_t(T) * k_out, -std::numeric_limits<float>::infinity());
  out.position_ce.assign(T, 0.0f);
  for (uint32_t t = 0; t < T; ++t) {
    for (uint32_t i = 0; i < k; ++i) {
      out.topk_ids[size_t(t) * k_out + i] = rec.topk_id(t, i);
      out.topk_values[size_t(t) * k_out + i] = rec.topk_logprob(t, i);
    }
    if (t + 1 < T) out.position_ce[t] = -rec.next_token_logprob(t);
  }
  out.chunk_ce = rec.mean_ce();
  out.stats.positions = out.stats.one_to_one = out.stats.used_topk = T;
  return out;
}

AlignedChunk align_source_chunk(const TargetContext& target, const SourceContext& source, const AlignSettings& settings,
                                const data::ChunkDataset& dataset, uint64_t chunk_id, uint32_t k_out,
                                DtwAligner& aligner) {
  const teacher::RecordView trec = target.store->record(chunk_id);
  const teacher::RecordView srec = source.store.record(chunk_id);
  AlignedChunk out;
  out.chunk_id = chunk_id;
  const uint32_t T = trec.num_positions(), S = srec.num_positions(), k = srec.k();
  out.target_ids.resize(T);
  trec.input_ids(out.target_ids.data());
  std::vector<int32_t> source_ids(S), topk_ids(size_t(S) * k);
  std::vector<float> topk_lp(size_t(S) * k);
  srec.input_ids(source_ids.data());
  srec.topk_ids(topk_ids.data());
  srec.topk_logprobs(topk_lp.data());

  TokenAlignment alignment;
  if (settings.method == AlignMethod::dtw) {
    std::vector<std::string> ts(T), ss(S);
    for (uint32_t t = 0; t < T; ++t) ts[t] = target.vocab.tokens.at(out.target_ids[t]);
    for (uint32_t s = 0; s < S; ++s) ss[s] = source.vocab.tokens.at(source_ids[s]);
    alignment = aligner.align(ss, source.vocab.marker, ts, target.vocab.marker);
  } else {
    const std::string text = dataset.at(chunk_id).text;
    alignment = align_by_offsets(spans_of(*source.input->tokenizer, source.store.info(), text, source_ids,
                                          source.store.dir().string(), chunk_id),
                                 spans_of(*target.tokenizer, target.store->info(), text, out.target_ids,
                                          target.store->dir().string(), chunk_id));
  }
  const ProjectedSequence projected = source.projector->project(out.target_ids, source_ids, alignment, topk_ids.data(),
                                                                topk_lp.data(), k, &out.stats);
  out.topk_ids.assign(size_t(T) * k_out, int32_t(target.vocab.tokens.size()));
  out.topk_values.assign(size_t(T) * k_out, -std::numeric_limits<float>::infinity());
  for (uint32_t t = 0; t < T; ++t) {
    const uint32_t begin = projected.offsets[t], n = projected.offsets[t + 1] - begin;
    FUSELLM_CHECK(n <= k_out, "{}: chunk {}: {} projected entries at position {} exceed k = {}",
                  source.store.dir().string(), chunk_id, n, t, k_out);
    for (uint32_t i = 0; i < n; ++i) {
      out.topk_ids[size_t(t) * k_out + i] = projected.ids[begin + i];
      out.topk_values[size_t(t) * k_out + i] = projected.logits[begin + i];
    }
  }
  // Per-position CE: mean CE of the aligned source positions that have a next token; a target position with
  // none (an empty group, or only the source's last position) takes the source's chunk CE.
  out.chunk_ce = srec.mean_ce();
  out.position_ce.assign(T, out.chunk_ce);
  for (uint32_t t = 0; t < T; ++t) {
    const Span span = alignment.target_to_source[t];
    double sum = 0;
    int count = 0;
    for (int32_t j = span.begin; j < span.end; ++j) {
      if (uint32_t(j) + 1 >= S) continue;
      sum += -double(srec.next_token_logprob(uint32_t(j)));
      ++count;
    }
    if (count > 0) out.position_ce[t] = float(sum / count);
  }
  return out;
}

}  // namespace

json AlignSettings::to_json() const {
  json j = {{"method", method_name(method)},
            {"compat", compat_name(compat)},
            {"vocab", std::string(to_string(vocab))},
            {"canonicalize", canonicalize},
            {"duplicates", duplicates_name(duplicates)}};
  // Offsets alignment once ran on HF's trimmed offsets; a store made that way must not be resumed or reused
  // as if it were made on the bytes tokens cover.
  if (method == AlignMethod::offsets) j["spans"] = "untrimmed";
  return j;
}

AlignSettings align_settings_from_json(const json& section, const std::string& source, const fs::path& config_dir,
                                       const fs::path& store_dir) {
  AlignSettings s;
  s.out_dir = store_dir.parent_path() / "aligned";
  if (section.is_null()) return s;
  FUSELLM_CHECK(section.is_object(), "{}: align: expected an object", source);
  static const std::vector<std::string> known = {"method", "compat", "vocab", "canonicalize",
                                                 "duplicates", "out_dir", "shard_records", "threads"};
  for (auto it = section.begin(); it != section.end(); ++it) {
    if (std::find(known.begin(), known.end(), it.key()) != known.end()) continue;
    const std::string hint = closest_key(it.key(), known);
    fail("{}: align.{}: unknown key{}", source, it.key(), hint.empty() ? "" : " (did you mean '" + hint + "'?)");
  }
  const JsonView view(section, source, "align");
  auto choice = [&](const char* key, std::initializer_list<const char*> allowed) -> std::optional<std::string> {
    if (!view.has(key)) return std::nullopt;
    const std::string value = view.get<std::string>(key);
    for (const char* a : allowed)
      if (value == a) return value;
    std::string list;
    for (const char* a : allowed) list += std::string(list.empty() ? "" : ", ") + a;
    fail("{}: {}: unknown value '{}' (expected one of {})", source, view.key_path(key), value, list);
  };
  if (auto m = choice("method", {"dtw", "offsets"})) s.method = *m == "dtw" ? AlignMethod::dtw : AlignMethod::offsets;
  if (auto c = choice("compat", {"official", "fusellm"}))
    s.compat = *c == "official" ? ProjectionMode::official : ProjectionMode::fusellm;
  if (auto v = choice("vocab", {"mined", "exact"})) s.vocab = parse_vocab_map_method(*v);
  if (auto d = choice("duplicates", {"keep_first", "sum"}))
    s.duplicates = *d == "sum" ? DuplicatePolicy::sum : DuplicatePolicy::keep_first;
  s.canonicalize = view.get_or<bool>("canonicalize", false);
  if (view.has("out_dir")) {
    fs::path p = view.get<std::string>("out_dir");
    s.out_dir = p.is_absolute() ? p : config_dir / p;
  }
  const int64_t shard_records = view.get_or<int64_t>("shard_records", 4096);
  FUSELLM_CHECK(shard_records > 0, "{}: align.shard_records: must be positive, got {}", source, shard_records);
  s.shard_records = uint64_t(shard_records);
  s.threads = view.get_or<int>("threads", 0);
  FUSELLM_CHECK(s.threads >= 0, "{}: align.threads: must be >= 0", source);
  return s;
}

AlignResult run_align(const AlignJob& job) {
  FUSELLM_CHECK(job.dataset != nullptr, "align: no chunk dataset");
  const data::ChunkDataset& dataset = *job.dataset;
  const AlignSettings& settings = job.settings;
  const std::string dataset_hash = dataset.hash();

  // Open every store and check it belongs to this dataset and tokenizer.
  std::vector<std::unique_ptr<SourceContext>> sources;
  const SourceContext* target_source = nullptr;
  for (const auto& in : job.sources) {
    FUSELLM_CHECK(in.tokenizer != nullptr, "align: source '{}' has no tokenizer", in.name);
    FUSELLM_CHECK(fs::exists(in.logit_store / "manifest.json"),
                  "{}: logit store of model '{}' is missing or unfinished (run fusellm infer first)",
                  in.logit_store.string(), in.name);
    auto ctx = std::make_unique<SourceContext>(teacher::LogitStoreReader(in.logit_store));
    const teacher::StoreInfo& info = ctx->store.info();
    FUSELLM_CHECK(info.chunk_dataset_hash == dataset_hash,
                  "{}: logit store of model '{}' was made for chunk dataset {}, but {} has hash {}",
                  in.logit_store.string(), in.name, info.chunk_dataset_hash, dataset.dir().string(), dataset_hash);
    FUSELLM_CHECK(info.tokenizer_hash == in.tokenizer->hash(),
                  "{}: logit store of model '{}' was made with tokenizer {}, the model's tokenizer is {}",
                  in.logit_store.string(), in.name, info.tokenizer_hash, in.tokenizer->hash());
    FUSELLM_CHECK(ctx->store.num_records() == dataset.size(), "{}: logit store of model '{}' holds {} of {} chunks",
                  in.logit_store.string(), in.name, ctx->store.num_records(), dataset.size());
    ctx->input = &in;
    ctx->vocab = vocabulary_of(*in.tokenizer);
    if (in.is_target) {
      FUSELLM_CHECK(target_source == nullptr, "align: more than one target");
      target_source = ctx.get();
    }
    sources.push_back(std::move(ctx));
  }
  FUSELLM_CHECK(target_source != nullptr, "align: no target model");
  TargetContext target{&target_source->store, target_source->input->tokenizer, target_source->vocab};
  const uint32_t target_vocab = uint32_t(target.vocab.tokens.size());

  uint32_t k_out = 0;
  for (const auto& s : sources) k_out = std::max(k_out, s->store.info().k);
  const json settings_json = settings.to_json();
  const fs::path out = settings.out_dir;

  // Vocabulary maps (cached under the output directory) and projectors.
  for (auto& s : sources) {
    if (s->input->is_target) continue;
    const VocabMapKey key{s->input->tokenizer->hash(), target.tokenizer->hash(), settings.vocab,
                          uint32_t(s->vocab.tokens.size()), target_vocab};
    const VocabMap map = cached_vocab_map(out / "vocab_maps" / vocab_map_cache_name(key), key, s->vocab, target.vocab,
                                          settings.threads);
    ProjectionOptions options;
    options.mode = settings.compat;
    options.duplicates = settings.duplicates;
    options.canonical = settings.canonicalize;
    options.source_specials = special_ids_of(*s->input->tokenizer);
    options.target_specials = special_ids_of(*target.tokenizer);
    s->projector = std::make_unique<Projector>(s->vocab, target.vocab, map, options);
  }

  std::vector<std::unique_ptr<AlignedSourceWriter>> writers;
  for (const auto& s : sources) {
    teacher::StoreInfo base;
    base.model_name = s->input->name;
    base.model_path = s->input->logit_store.string();
    base.model_type = "aligned " + settings_json.dump();  // a settings change makes resume refuse the directory
    base.tokenizer_hash = target.tokenizer->hash();
    base.chunk_dataset_hash = dataset_hash;
    writers.push_back(std::make_unique<AlignedSourceWriter>(out, s->input->name, base, target_vocab, k_out, job.rank,
                                                            job.world_size, settings.shard_records));
  }

  const uint64_t N = dataset.size(), R = settings.shard_records;
  const uint32_t num_shards = uint32_t((N + R - 1) / R);
  uint64_t owned_chunks = 0;
  for (uint32_t j = job.rank; j < num_shards; j += job.world_size) owned_chunks += std::min(R, N - uint64_t(j) * R);
  std::unique_ptr<Progress> progress;
  if (job.progress) progress = std::make_unique<Progress>("align", owned_chunks * sources.size(), "chunk-sources");
  const unsigned threads = settings.threads > 0 ? unsigned(settings.threads)
                                                : std::max(1u, std::thread::hardware_concurrency());

  AlignResult result;
  result.stats.resize(sources.size());
  for (uint32_t j = job.rank; j < num_shards; j += job.world_size) {
    const uint64_t first = uint64_t(j) * R, count = std::min(R, N - first);
    for (size_t si = 0; si < sources.size(); ++si) {
      AlignedSourceWriter& writer = *writers[si];
      if (writer.shard_complete(j)) {
        ++result.shards_skipped;
        if (progress) progress->add(count);
        continue;
      }
      const SourceContext& source = *sources[si];
      std::vector<AlignedChunk> chunks(count);
      std::atomic<uint64_t> next{0};
      std::vector<std::exception_ptr> errors(threads);
      auto work = [&](unsigned w) {
        try {
          DtwAligner aligner;
          for (uint64_t i = next++; i < count; i = next++) {
            const uint64_t id = first + i;
            chunks[i] = source.input->is_target
                            ? align_target_chunk(source.store.record(id), k_out, target_vocab)
                            : align_source_chunk(target, source, settings, dataset, id, k_out, aligner);
            if (progress) progress->add(1, chunks[i].target_ids.size());
          }
        } catch (...) {
          errors[w] = std::current_exception();
          next = count;
        }
      };
      std::vector<std::thread> pool;
      for (unsigned w = 1; w < std::min<uint64_t>(threads, count); ++w) pool.emplace_back(work, w);
      work(0);
      for (auto& t : pool) t.join();
      for (auto& e : errors)
        if (e) std::rethrow_exception(e);
      writer.begin_shard(j);
      for (const auto& c : chunks) {
        writer.add(c);
        result.stats[si].chunks += 1;
        result.stats[si].projection += c.stats;
      }
      writer.finish_shard();
      result.chunks_aligned += count;
    }
  }
  for (auto& w : writers) w->finish();
  if (progress) progress->finish();

  // The last rank to finish (every part file present) merges.
  for (const auto& s : sources)
    for (uint32_t r = 0; r < job.world_size; ++r)
      if (!fs::exists(aligned_source_dir(out, s->input->name) / ("part.rank" + std::to_string(r) + ".json"))) {
        spdlog::info("align: rank {} done; the merge waits for rank {}", job.rank, r);
        return result;
      }
  AlignedStoreManifest manifest;
  manifest.chunk_dataset_hash = dataset_hash;
  manifest.target_name = target_source->input->name;
  manifest.target_tokenizer_hash = target.tokenizer->hash();
  manifest.target_vocab = target_vocab;
  manifest.k = k_out;
  manifest.settings = settings_json;
  for (const auto& s : sources)
    manifest.sources.push_back({s->input->name, s->input->is_target, s->input->tokenizer->hash(),
                                s->input->logit_store.string(), {}});
  merge_aligned_store(out, manifest, job.world_size);
  result.merged = true;
  return result;
}

AlignResult align_from_config(const ExperimentConfig& config, uint32_t rank, uint32_t world_size, int threads,
                              bool progress) {
  auto it = config.reserved_sections.find("align");
  const json section = it == config.reserved_sections.end() ? json() : it->second;
  AlignJob job;
  job.settings = align_settings_from_json(section, config.config_path.string(), config.config_dir,
                                          config.infer.store_dir);
  if (threads > 0) job.settings.threads = threads;
  const data::ChunkDataset dataset = data::ChunkDataset::open(config.data.chunk_dir);
  job.dataset = &dataset;
  job.rank = rank;
  job.world_size = world_size;
  job.progress = progress;
  std::vector<std::unique_ptr<tok::Tokenizer>> tokenizers;
  std::vector<const ModelEntry*> models = {&config.target()};
  for (const ModelEntry* m : config.sources()) models.push_back(m);
  for (const ModelEntry* m : models) {
    tokenizers.push_back(tok::load_tokenizer(m->path));
    job.sources.push_back({m->name, m == &config.target(), config.infer.store_dir / m->name, tokenizers.back().get()});
  }
  return run_align(job);
}

}  // namespace fusellm::align
