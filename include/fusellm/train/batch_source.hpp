#pragma once
// Where training batches come from. A TrainBatchSource yields, per optimizer step, the global batch of
// sequences in a deterministic order (seeded shuffling per epoch); its position serializes into the
// checkpoint so a resumed run sees exactly the batches an uninterrupted run would.
#include <cstdint>
#include <memory>
#include <vector>

#include "fusellm/util/json.hpp"
#include "fusellm/util/torch_pch.hpp"

namespace fusellm::train {

// One micro-batch on one process.
struct TrainBatch {
  at::Tensor input_ids;     // [B, T] int64
  at::Tensor position_ids;  // [B, T] int64, or undefined = 0..T-1
  at::Tensor segment_ids;   // [B, T] int64 document index inside the sequence, or undefined = attention across
                            // the whole sequence (train.document_mask off)
  at::Tensor labels;        // [B, T] int64, -100 = ignored (shifted inside the loss)
  std::vector<int64_t> sequence_ids;  // which sequences of the source (for aligned side data, e.g. fusion)
  // Aligned sources with packing: per row the store chunks it concatenates, in order (empty = row r is the
  // single chunk sequence_ids[r]).
  std::vector<std::vector<int64_t>> chunk_ids;
  int64_t tokens() const { return input_ids.numel(); }
};

class TrainBatchSource {
 public:
  virtual ~TrainBatchSource() = default;
  virtual int64_t num_sequences() const = 0;
  virtual int64_t steps_per_epoch(int64_t global_batch) const { return num_sequences() / global_batch; }
  // The sequence ids of the next optimizer step's global batch (advances the position).
  virtual std::vector<int64_t> next_global_batch(int64_t global_batch) = 0;
  // Builds a micro-batch from sequence ids.
  virtual TrainBatch make_batch(const std::vector<int64_t>& sequence_ids) const = 0;
  virtual int64_t epoch() const = 0;
  virtual json position() const = 0;
  virtual void restore(const json& position) = 0;
};

// Documents of token ids packed into fixed-length sequences by plain concatenation (the last partial
// sequence is dropped). Optionally positions restart at each document start and (document_mask) each
// batch carries segment ids so attention stays inside a document. Every epoch visits the sequences in a
// permutation seeded by (seed, epoch); the batches of an epoch are consecutive slices, a trailing partial
// batch is skipped.
// The seeded, per-epoch shuffled visiting order of a source's sequences and the cursor in it: the part of
// every batch source's state that the checkpoint keeps. `kind` tags saved positions so a checkpoint of one
// source kind is never restored into another.
class EpochOrder {
 public:
  EpochOrder(std::string kind, uint64_t seed) : kind_(std::move(kind)), seed_(seed) {}
  void reset(int64_t sequences);  // epoch 0, cursor 0
  // The next `global_batch` sequence ids; the epoch's partial tail is skipped.
  std::vector<int64_t> next(int64_t global_batch);
  int64_t epoch() const { return epoch_; }
  int64_t size() const { return n_; }
  json position() const;
  void restore(const json& position);

 private:
  void build();
  std::string kind_;
  uint64_t seed_;
  int64_t n_ = 0, epoch_ = 0, cursor_ = 0;  // cursor = next index into order_
  std::vector<int64_t> order_;
};

class PackedSequenceSource : public TrainBatchSource {
 public:
  PackedSequenceSource(const std::vector<std::vector<int64_t>>& documents, int64_t max_length, uint64_t seed,
                       bool restart_positions, bool document_mask = false);
  int64_t num_sequences() const override { return static_cast<int64_t>(starts_.size()); }
  std::vector<int64_t> next_global_batch(int64_t global_batch) override;
  TrainBatch make_batch(const std::vector<int64_t>& sequence_ids) const override;
  int64_t epoch() const override { return order_.epoch(); }
  json position() const override { return order_.position(); }
  void restore(const json& position) override { order_.restore(position); }

 private:
  std::vector<int64_t> tokens_;      // all documents concatenated
  std::vector<uint8_t> doc_start_;   // 1 where a document begins
  std::vector<int64_t> starts_;      // offset of each sequence in tokens_
  int64_t max_length_;
  bool restart_positions_;
  bool document_mask_;  // fill segment_ids: 0 for the document running in from the previous sequence, +1 per start
  EpochOrder order_;
};

}  // namespace fusellm::train
