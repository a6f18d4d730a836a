#pragma once
// Training on an aligned store: one training sequence per aligned chunk (the target ids of the chunk, which
// already fit train.max_length), micro-batches right-padded, and per batch the sources' aligned top-k as
// fusion::SourceBatch tensors so the loss can add the fusion term (docs/fusion.md).
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "fusellm/align/aligned_store.hpp"
#include "fusellm/fusion/fusion.hpp"
#include "fusellm/train/trainer.hpp"
#include "fusellm/util/json.hpp"

namespace fusellm::train {

// The `fusion` section of an experiment config.
struct FusionSettings {
  fusion::Strategy strategy = fusion::Strategy::MinCE;
  fusion::Divergence divergence = fusion::Divergence::CE;
  double temperature = 1.0;
  double lambda = 0.9;  // loss = λ·CLM + (1−λ)·fusion
};

// Reads strategy / divergence / temperature / lambda; any other key fails naming its key path.
FusionSettings fusion_settings_of(const JsonView& section);

// Chunk c of the store is sequence c. Orders the sequences per epoch with the same seeded permutation
// scheme as PackedSequenceSource; a trailing partial batch of an epoch is skipped.
class AlignedBatchSource : public TrainBatchSource {
 public:
  // Fails when a chunk is longer than `max_length` or the store holds no chunk.
  AlignedBatchSource(std::shared_ptr<const align::AlignedStoreReader> store, int64_t max_length, uint64_t seed);
  int64_t num_sequences() const override { return num_sequences_; }
  std::vector<int64_t> next_global_batch(int64_t global_batch) override;
  // input_ids right-padded with 0, labels −100 on the padding; T = the longest chunk of the batch.
  TrainBatch make_batch(const std::vector<int64_t>& sequence_ids) const override;
  int64_t epoch() const override { return order_.epoch(); }
  json position() const override { return order_.position(); }
  void restore(const json& position) override { order_.restore(position); }
  const std::shared_ptr<const align::AlignedStoreReader>& store() const { return store_; }

 private:
  std::shared_ptr<const align::AlignedStoreReader> store_;
  int64_t num_sequences_ = 0, max_length_;
  EpochOrder order_;
};

// Per source of the store, the aligned top-k of `batch`'s sequences padded to the batch's length:
// ids [B, T, k] (empty slots and padding −1), vals [B, T, k] (0 where empty), seq_ce [B] (the chunk CE),
// token_ce [B, T] (the mapped position CE; 0 at the last position and on padding).
std::vector<fusion::SourceBatch> aligned_source_batches(const align::AlignedStoreReader& store,
                                                        const TrainBatch& batch);

// The fusion term for make_loss: fuses the batch's sources and returns the divergence (over the CLM
// positions) as LossParts::total. Combine with make_loss(settings.lambda, ...).
LossFn make_fusion_term(std::shared_ptr<const align::AlignedStoreReader> store, const FusionSettings& settings);

}  // namespace fusellm::train
