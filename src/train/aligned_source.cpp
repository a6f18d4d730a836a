// Aligned chunks as training sequences and their sources' top-k as fusion inputs.
#include "fusellm/train/aligned_source.hpp"

#include <random>

#include "fusellm/util/error.hpp"

namespace fusellm::train {

FusionSettings fusion_settings_of(const JsonView& section) {
  FusionSettings s;
  const json& raw = section.raw();
  FUSELLM_CHECK(raw.is_object(), "{}: the fusion section must be an object", section.source());
  for (auto it = raw.begin(); it != raw.end(); ++it) {
    const std::string& key = it.key();
    if (key != "strategy" && key != "divergence" && key != "temperature" && key != "lambda")
      fail("{}: unknown key {} (expected strategy, divergence, temperature, lambda)", section.source(),
           section.key_path(key));
  }
  if (section.has("strategy"))
    s.strategy = fusion::parse_strategy(section.get<std::string>("strategy"), section.key_path("strategy"));
  if (section.has("divergence"))
    s.divergence = fusion::parse_divergence(section.get<std::string>("divergence"), section.key_path("divergence"));
  s.temperature = section.get_or<double>("temperature", s.temperature);
  s.lambda = section.get_or<double>("lambda", s.lambda);
  FUSELLM_CHECK(s.temperature > 0, "{}: {} must be > 0, got {}", section.source(), section.key_path("temperature"),
                s.temperature);
  FUSELLM_CHECK(s.lambda >= 0 && s.lambda <= 1, "{}: {} must be in [0, 1], got {}", section.source(),
                section.key_path("lambda"), s.lambda);
  return s;
}

AlignedBatchSource::AlignedBatchSource(std::shared_ptr<const align::AlignedStoreReader> store, int64_t max_length,
                                       uint64_t seed)
    : store_(std::move(store)), max_length_(max_length), order_("aligned", seed) {
  FUSELLM_CHECK(store_ && store_->num_sources() > 0, "aligned store: no sources");
  num_sequences_ = static_cast<int64_t>(store_->num_records());
  FUSELLM_CHECK(num_sequences_ > 0, "aligned store: no chunks");
  for (int64_t c = 0; c < num_sequences_; ++c) {
    const uint32_t t = store_->record(0, uint64_t(c)).record.num_positions();
    FUSELLM_CHECK(int64_t(t) <= max_length_, "aligned store: chunk {} has {} tokens, more than train.max_length {}",
                  c, t, max_length_);
  }
  order_.reset(num_sequences_);
}

std::vector<int64_t> AlignedBatchSource::next_global_batch(int64_t global_batch) {
  return order_.next(global_batch);
}

TrainBatch AlignedBatchSource::make_batch(const std::vector<int64_t>& sequence_ids) const {
  const int64_t b = static_cast<int64_t>(sequence_ids.size());
  std::vector<align::AlignedRecordView> views;
  int64_t t = 1;
  for (int64_t id : sequence_ids) {
    views.push_back(store_->record(0, uint64_t(id)));
    t = std::max<int64_t>(t, views.back().record.num_positions());
  }
  at::Tensor ids = at::zeros({b, t}, at::kLong);
  at::Tensor labels = at::full({b, t}, -100, at::kLong);
  auto* ip = ids.data_ptr<int64_t>();
  auto* lp = labels.data_ptr<int64_t>();
  for (int64_t r = 0; r < b; ++r) {
    const auto& rec = views[size_t(r)].record;
    for (uint32_t c = 0; c < rec.num_positions(); ++c) ip[r * t + c] = lp[r * t + c] = rec.input_id(c);
  }
  TrainBatch batch;
  batch.input_ids = ids;
  batch.labels = labels;
  batch.sequence_ids = sequence_ids;
  return batch;
}

std::vector<fusion::SourceBatch> aligned_source_batches(const align::AlignedStoreReader& store,
                                                        const TrainBatch& batch) {
  const int64_t b = batch.input_ids.size(0), t = batch.input_ids.size(1);
  const int64_t k = store.manifest().k;
  std::vector<fusion::SourceBatch> out;
  for (size_t s = 0; s < store.num_sources(); ++s) {
    fusion::SourceBatch sb;
    sb.ids = at::full({b, t, k}, -1, at::kLong);
    sb.vals = at::zeros({b, t, k}, at::kFloat);
    sb.seq_ce = at::zeros({b}, at::kFloat);
    sb.token_ce = at::zeros({b, t}, at::kFloat);
    auto* idp = sb.ids.data_ptr<int64_t>();
    auto* vp = sb.vals.data_ptr<float>();
    auto* sp = sb.seq_ce.data_ptr<float>();
    auto* tp = sb.token_ce.data_ptr<float>();
    for (int64_t r = 0; r < b; ++r) {
      const auto view = store.record(s, uint64_t(batch.sequence_ids.at(size_t(r))));
      const uint32_t n = view.record.num_positions();
      FUSELLM_CHECK(int64_t(n) <= t && view.record.k() == uint32_t(k),
                    "aligned store: source {} chunk {} does not match the batch ({} positions, k {})",
                    store.manifest().sources[s].name, batch.sequence_ids[size_t(r)], n, view.record.k());
      sp[r] = view.chunk_ce;
      for (uint32_t c = 0; c < n; ++c) {
        if (c + 1 < n) tp[r * t + c] = view.position_ce(c);  // the last position has no next token
        for (uint32_t i = 0; i < uint32_t(k); ++i) {
          if (view.slot_empty(c, i)) continue;
          const int64_t at = (r * t + c) * k + i;
          idp[at] = view.record.topk_id(c, i);
          vp[at] = view.record.topk_logprob(c, i);
        }
      }
    }
    out.push_back(std::move(sb));
  }
  return out;
}

LossFn make_fusion_term(std::shared_ptr<const align::AlignedStoreReader> store, const FusionSettings& settings) {
  return [store, settings](model::CausalLM& model, const at::Tensor& hidden, const TrainBatch& batch) {
    const auto sources = aligned_source_batches(*store, batch);
    const at::Device device = hidden.device();
    std::vector<fusion::SourceBatch> on_device;
    for (const auto& s : sources)
      on_device.push_back({s.ids.to(device), s.vals.to(device), s.seq_ce.to(device), s.token_ce.to(device)});
    const fusion::SparseDist target = fusion::fuse(on_device, settings.strategy, settings.temperature);
    at::Tensor logits = model.logits_from_hidden(hidden);
    fusion::LossOptions options;
    options.lm_weight = 0;  // the CLM term and λ are applied by make_loss
    options.divergence = settings.divergence;
    options.positions = fusion::FusionPositions::Clm;
    const at::Tensor labels = batch.labels.to(device);
    fusion::LossTerms terms = fusion::fusion_loss(logits, labels, (labels != -100).to(at::kLong), target, options);
    LossParts parts;
    parts.total = terms.fusion;
    parts.fusion = terms.fusion.item<double>();
    return parts;
  };
}

}  // namespace fusellm::train
