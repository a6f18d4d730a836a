#pragma once
// Training on an aligned store: training sequences made of whole aligned chunks (one chunk each, or runs of
// consecutive chunks packed up to train.max_length), micro-batches right-padded, and per batch the sources'
// aligned top-k as fusion::SourceBatch tensors so the loss can add the fusion term (docs/fusion.md).
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
  fs::path aligned_store;  // empty = the align stage's output directory (align.out_dir or its default)
};

// Reads strategy / divergence / temperature / lambda / aligned_store (relative to `config_dir`); any other
// key fails naming its key path.
FusionSettings fusion_settings_of(const JsonView& section, const fs::path& config_dir = {});

// How aligned chunks become training sequences.
struct AlignedSourceOptions {
  int64_t max_length = 2048;       // train.max_length: no sequence is longer
  uint64_t seed = 42;              // the per-epoch shuffle
  bool pack = true;                // train.pack_chunks: runs of consecutive chunks per sequence (else one chunk)
  bool restart_positions = false;  // position ids restart at 0 at each chunk (else 0..T-1 across the row)
  bool document_mask = false;      // segment_ids = chunk index within the row (attention stays inside a chunk)
};

// Training sequences from an aligned store. Without `pack`, chunk c is sequence c. With `pack`, sequence s is
// the run of consecutive chunks (chunk-id order, whole chunks, greedy: a sequence ends when the next chunk would
// exceed max_length), so the composition depends only on the store and max_length (not on the world size or
// the seed). Sequences (not chunks) are ordered per epoch with the same seeded permutation scheme as
// PackedSequenceSource; a trailing partial batch of an epoch is skipped.
class AlignedBatchSource : public TrainBatchSource {
 public:
  // Fails when a chunk is longer than `max_length` or the store holds no chunk.
  AlignedBatchSource(std::shared_ptr<const align::AlignedStoreReader> store, const AlignedSourceOptions& options);
  int64_t num_sequences() const override { return int64_t(sequence_begin_.size()) - 1; }
  int64_t num_chunks() const { return int64_t(chunk_length_.size()); }
  // The chunk ids sequence `sequence` concatenates, in order.
  std::vector<int64_t> chunks_of(int64_t sequence) const;
  std::vector<int64_t> next_global_batch(int64_t global_batch) override;
  // input_ids = the rows' chunks concatenated, right-padded with 0 to the longest row; labels = input_ids
  // (plain concatenation: the last token of a chunk predicts the next chunk's first token), −100 on the
  // padding; position_ids (restart_positions) restart per chunk; segment_ids (document_mask) = chunk index in
  // the row, padding continuing the last chunk. With `pack`, chunk_ids lists each row's chunks.
  TrainBatch make_batch(const std::vector<int64_t>& sequence_ids) const override;
  int64_t epoch() const override { return order_.epoch(); }
  json position() const override { return order_.position(); }
  void restore(const json& position) override { order_.restore(position); }
  const std::shared_ptr<const align::AlignedStoreReader>& store() const { return store_; }

 private:
  std::shared_ptr<const align::AlignedStoreReader> store_;
  AlignedSourceOptions options_;
  std::vector<int64_t> chunk_length_;    // target positions of chunk c
  std::vector<int64_t> sequence_begin_;  // sequence s = chunks [sequence_begin_[s], sequence_begin_[s + 1])
  EpochOrder order_;
};

// Per source of the store, the aligned top-k of `batch`'s rows laid out like its input_ids (each row's chunks
// at their offsets, batch.chunk_ids; one chunk per row when that is empty): ids [B, T, k] (empty slots and
// padding −1), vals [B, T, k] (0 where empty), token_ce [B, T] (the mapped position CE), seq_ce [B] (the
// chunk CE) for one chunk per row, or [B, T] (each position its chunk's CE, padding the last chunk's) when the
// batch lists chunk_ids. The last position of every chunk is empty with token_ce 0: its next token is not the
// chunk's, so the store's prediction there has nothing in the data to be compared with.
std::vector<fusion::SourceBatch> aligned_source_batches(const align::AlignedStoreReader& store,
                                                        const TrainBatch& batch);

// The fusion positions of `batch` [B, T] bool: positions whose next label is a real one (the CLM positions)
// except the last position of each chunk, which has no source prediction (see aligned_source_batches).
at::Tensor fusion_positions(const align::AlignedStoreReader& store, const TrainBatch& batch);

// The whole training loss λ·CLM + (1−λ)·fusion of a micro-batch: one LM-head pass and one logsumexp shared
// by both terms (fusion::fusion_loss), the fused target built from the batch's sources. Fusion is
// averaged over fusion_positions (the CLM positions less each chunk's last position), so packing chunks does
// not dilute it.
LossFn make_fusion_loss(std::shared_ptr<const align::AlignedStoreReader> store, const FusionSettings& settings);

}  // namespace fusellm::train
