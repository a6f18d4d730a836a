// Aligned chunks as training sequences and their sources' top-k as fusion inputs.
#include "fusellm/train/aligned_source.hpp"

#include <algorithm>
#include <random>

#include "fusellm/util/error.hpp"
#include "fusellm/util/experiment_config.hpp"

namespace fusellm::train {

FusionSettings fusion_settings_of(const JsonView& section, const fs::path& config_dir) {
  FusionSettings s;
  const json& raw = section.raw();
  FUSELLM_CHECK(raw.is_object(), "{}: the fusion section must be an object", section.source());
  for (auto it = raw.begin(); it != raw.end(); ++it) {
    const std::string& key = it.key();
    static const std::vector<std::string> known = {"strategy", "divergence", "temperature", "lambda",
                                                   "aligned_store"};
    if (std::find(known.begin(), known.end(), key) == known.end()) {
      const std::string hint = closest_key(key, known);
      fail("{}: {}: unknown key{} (known: strategy, divergence, temperature, lambda, aligned_store)",
           section.source(), section.key_path(key), hint.empty() ? "" : " (did you mean '" + hint + "'?)");
    }
  }
  if (section.has("strategy"))
    s.strategy = fusion::parse_strategy(section.get<std::string>("strategy"), section.key_path("strategy"));
  if (section.has("divergence"))
    s.divergence = fusion::parse_divergence(section.get<std::string>("divergence"), section.key_path("divergence"));
  s.temperature = section.get_or<double>("temperature", s.temperature);
  s.lambda = section.get_or<double>("lambda", s.lambda);
  if (section.has("aligned_store")) {
    const fs::path p = section.get<std::string>("aligned_store");
    s.aligned_store = p.is_absolute() || config_dir.empty() ? p : (config_dir / p).lexically_normal();
  }
  FUSELLM_CHECK(s.temperature > 0, "{}: {} must be > 0, got {}", section.source(), section.key_path("temperature"),
                s.temperature);
  FUSELLM_CHECK(s.lambda >= 0 && s.lambda <= 1, "{}: {} must be in [0, 1], got {}", section.source(),
                section.key_path("lambda"), s.lambda);
  return s;
}

AlignedBatchSource::AlignedBatchSource(std::shared_ptr<const align::AlignedStoreReader> store,
                                       const AlignedSourceOptions& options)
    : store_(std::move(store)), options_(options), order_(options.pack ? "aligned_packed" : "aligned", options.seed) {
  FUSELLM_CHECK(store_ && store_->num_sources() > 0, "aligned store: no sources");
  const int64_t chunks = static_cast<int64_t>(store_->num_records());
  FUSELLM_CHECK(chunks > 0, "aligned store: no chunks");
  FUSELLM_CHECK(options_.max_length > 0, "train.max_length must be positive, got {}", options_.max_length);
  chunk_length_.reserve(size_t(chunks));
  for (int64_t c = 0; c < chunks; ++c) {
    const int64_t t = store_->record(0, uint64_t(c)).record.num_positions();
    FUSELLM_CHECK(t <= options_.max_length, "aligned store: chunk {} has {} tokens, more than train.max_length {}",
                  c, t, options_.max_length);
    chunk_length_.push_back(t);
  }
  // Greedy runs in chunk-id order: a function of the store and max_length only, so every process (whatever
  // the world size) and every epoch sees the same sequences; only their order is shuffled.
  int64_t used = 0;
  for (int64_t c = 0; c < chunks; ++c) {
    if (c == 0 || !options_.pack || used + chunk_length_[size_t(c)] > options_.max_length) {
      sequence_begin_.push_back(c);
      used = 0;
    }
    used += chunk_length_[size_t(c)];
  }
  sequence_begin_.push_back(chunks);
  order_.reset(num_sequences());
}

std::vector<int64_t> AlignedBatchSource::chunks_of(int64_t sequence) const {
  FUSELLM_CHECK(sequence >= 0 && sequence < num_sequences(), "aligned source: no sequence {} (of {})", sequence,
                num_sequences());
  std::vector<int64_t> ids;
  for (int64_t c = sequence_begin_[size_t(sequence)]; c < sequence_begin_[size_t(sequence) + 1]; ++c) ids.push_back(c);
  return ids;
}

std::vector<int64_t> AlignedBatchSource::next_global_batch(int64_t global_batch) {
  return order_.next(global_batch);
}

TrainBatch AlignedBatchSource::make_batch(const std::vector<int64_t>& sequence_ids) const {
  const int64_t b = static_cast<int64_t>(sequence_ids.size());
  std::vector<std::vector<int64_t>> rows;
  int64_t t = 1;
  for (int64_t id : sequence_ids) {
    rows.push_back(chunks_of(id));
    int64_t length = 0;
    for (int64_t c : rows.back()) length += chunk_length_[size_t(c)];
    t = std::max(t, length);
  }
  at::Tensor ids = at::zeros({b, t}, at::kLong);
  at::Tensor labels = at::full({b, t}, -100, at::kLong);
  at::Tensor positions = at::empty({b, t}, at::kLong);
  at::Tensor segments = at::empty({b, t}, at::kLong);
  auto* ip = ids.data_ptr<int64_t>();
  auto* lp = labels.data_ptr<int64_t>();
  auto* pp = positions.data_ptr<int64_t>();
  auto* sp = segments.data_ptr<int64_t>();
  for (int64_t r = 0; r < b; ++r) {
    int64_t offset = 0, chunk_start = 0, segment = 0;
    for (size_t j = 0; j < rows[size_t(r)].size(); ++j) {
      const align::AlignedRecordView view = store_->record(0, uint64_t(rows[size_t(r)][j]));
      const auto& rec = view.record;
      segment = int64_t(j);
      chunk_start = offset;
      for (uint32_t c = 0; c < rec.num_positions(); ++c, ++offset) {
        // Plain concatenation: the label of a chunk's first token stays, so the previous chunk's last position
        // learns to predict it (usually BOS), as the official FuseLLM and PackedSequenceSource do.
        ip[r * t + offset] = lp[r * t + offset] = rec.input_id(c);
        pp[r * t + offset] = int64_t(c);
        sp[r * t + offset] = segment;
      }
    }
    for (; offset < t; ++offset) {  // padding continues the last chunk
      pp[r * t + offset] = offset - chunk_start;
      sp[r * t + offset] = segment;
    }
  }
  TrainBatch batch;
  batch.input_ids = ids;
  batch.labels = labels;
  if (options_.restart_positions) batch.position_ids = positions;
  if (options_.document_mask) batch.segment_ids = segments;
  batch.sequence_ids = sequence_ids;
  if (options_.pack) batch.chunk_ids = std::move(rows);
  return batch;
}

namespace {

// Where chunk `chunk` of a batch row lies.
struct ChunkSpan {
  int64_t chunk = 0, offset = 0, length = 0;
};

// Per row of `batch`, its chunks and their offsets (lengths from the store's target records).
std::vector<std::vector<ChunkSpan>> row_layout(const align::AlignedStoreReader& store, const TrainBatch& batch) {
  const int64_t b = batch.input_ids.size(0), t = batch.input_ids.size(1);
  const bool listed = !batch.chunk_ids.empty();
  FUSELLM_CHECK(int64_t(listed ? batch.chunk_ids.size() : batch.sequence_ids.size()) == b,
                "aligned batch: {} rows but {} chunk lists / {} sequence ids", b, batch.chunk_ids.size(),
                batch.sequence_ids.size());
  std::vector<std::vector<ChunkSpan>> rows(static_cast<size_t>(b));
  for (int64_t r = 0; r < b; ++r) {
    const std::vector<int64_t> single = {listed ? 0 : batch.sequence_ids[size_t(r)]};
    int64_t offset = 0;
    for (int64_t c : listed ? batch.chunk_ids[size_t(r)] : single) {
      const int64_t n = store.record(0, uint64_t(c)).record.num_positions();
      rows[size_t(r)].push_back({c, offset, n});
      offset += n;
    }
    FUSELLM_CHECK(offset <= t, "aligned batch: row {} holds {} positions of chunks, the batch only {}", r, offset, t);
  }
  return rows;
}

}  // namespace

std::vector<fusion::SourceBatch> aligned_source_batches(const align::AlignedStoreReader& store,
                                                        const TrainBatch& batch) {
  const int64_t b = batch.input_ids.size(0), t = batch.input_ids.size(1);
  const int64_t k = store.manifest().k;
  const bool per_position_ce = !batch.chunk_ids.empty();
  const auto rows = row_layout(store, batch);
  std::vector<fusion::SourceBatch> out;
  for (size_t s = 0; s < store.num_sources(); ++s) {
    fusion::SourceBatch sb;
    sb.ids = at::full({b, t, k}, -1, at::kLong);
    sb.vals = at::zeros({b, t, k}, at::kFloat);
    sb.seq_ce = per_position_ce ? at::zeros({b, t}, at::kFloat) : at::zeros({b}, at::kFloat);
    sb.token_ce = at::zeros({b, t}, at::kFloat);
    auto* idp = sb.ids.data_ptr<int64_t>();
    auto* vp = sb.vals.data_ptr<float>();
    auto* sp = sb.seq_ce.data_ptr<float>();
    auto* tp = sb.token_ce.data_ptr<float>();
    for (int64_t r = 0; r < b; ++r) {
      for (const ChunkSpan& span : rows[size_t(r)]) {
        const auto view = store.record(s, uint64_t(span.chunk));
        const uint32_t n = view.record.num_positions();
        FUSELLM_CHECK(int64_t(n) == span.length && view.record.k() == uint32_t(k),
                      "aligned store: source {} chunk {} does not match the target ({} positions, k {}; expected {}, "
                      "k {})", store.manifest().sources[s].name, span.chunk, n, view.record.k(), span.length, k);
        if (per_position_ce) {
          // Padding after the row's last chunk carries that chunk's CE (it is never a fusion position).
          const int64_t end = &span == &rows[size_t(r)].back() ? t : span.offset + span.length;
          for (int64_t c = span.offset; c < end; ++c) sp[r * t + c] = view.chunk_ce;
        } else {
          sp[r] = view.chunk_ce;
        }
        // The chunk's last position predicts a token outside the chunk: no top-k and no CE there.
        for (uint32_t c = 0; c + 1 < n; ++c) {
          const int64_t row_pos = r * t + span.offset + c;
          tp[row_pos] = view.position_ce(c);
          for (uint32_t i = 0; i < uint32_t(k); ++i) {
            if (view.slot_empty(c, i)) continue;
            idp[row_pos * k + i] = view.record.topk_id(c, i);
            vp[row_pos * k + i] = view.record.topk_logprob(c, i);
          }
        }
      }
    }
    out.push_back(std::move(sb));
  }
  return out;
}

at::Tensor fusion_positions(const align::AlignedStoreReader& store, const TrainBatch& batch) {
  const int64_t b = batch.input_ids.size(0), t = batch.input_ids.size(1);
  const at::Tensor labels = batch.labels.to(at::kCPU).contiguous();
  const auto* lp = labels.data_ptr<int64_t>();
  at::Tensor mask = at::zeros({b, t}, at::kBool);
  auto* mp = mask.data_ptr<bool>();
  const auto rows = row_layout(store, batch);
  for (int64_t r = 0; r < b; ++r)
    for (const ChunkSpan& span : rows[size_t(r)])
      for (int64_t c = span.offset; c + 1 < span.offset + span.length; ++c) mp[r * t + c] = lp[r * t + c + 1] != -100;
  return mask;
}

LossFn make_fusion_loss(std::shared_ptr<const align::AlignedStoreReader> store, const FusionSettings& settings) {
  return [store, settings](model::CausalLM& model, const at::Tensor& hidden, const TrainBatch& batch) {
    const auto sources = aligned_source_batches(*store, batch);
    const at::Device device = hidden.device();
    std::vector<fusion::SourceBatch> on_device;
    for (const auto& s : sources)
      on_device.push_back({s.ids.to(device), s.vals.to(device), s.seq_ce.to(device), s.token_ce.to(device)});
    const fusion::SparseDist target = fusion::fuse(on_device, settings.strategy, settings.temperature);
    const at::Tensor logits = model.logits_from_hidden(hidden);
    fusion::LossOptions options;
    options.lm_weight = settings.lambda;
    options.divergence = settings.divergence;
    // The CLM positions less each chunk's last one (a packed row's chunk boundaries have no fused target).
    options.positions = fusion::FusionPositions::Attention;
    const at::Tensor labels = batch.labels.to(device);
    const at::Tensor positions = fusion_positions(*store, batch).to(device);
    const fusion::LossTerms terms = fusion::fusion_loss(logits, labels, positions, target, options);
    LossParts parts;
    parts.total = terms.loss;
    parts.clm = terms.clm.item<double>();
    parts.fusion = terms.fusion.item<double>();
    return parts;
  };
}

}  // namespace fusellm::train
