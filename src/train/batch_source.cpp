// Packing documents into fixed-length sequences and walking them in a seeded order per epoch.
#include "fusellm/train/batch_source.hpp"

#include <random>

#include "fusellm/util/error.hpp"
#include "fusellm/util/json.hpp"

namespace fusellm::train {

PackedSequenceSource::PackedSequenceSource(const std::vector<std::vector<int64_t>>& documents, int64_t max_length,
                                           uint64_t seed, bool restart_positions, bool document_mask)
    : max_length_(max_length),
      restart_positions_(restart_positions),
      document_mask_(document_mask),
      order_("packed", seed) {
  for (const auto& doc : documents) {
    if (doc.empty()) continue;
    doc_start_.push_back(1);
    doc_start_.resize(doc_start_.size() + doc.size() - 1, 0);
    tokens_.insert(tokens_.end(), doc.begin(), doc.end());
  }
  for (int64_t off = 0; off + max_length_ <= static_cast<int64_t>(tokens_.size()); off += max_length_)
    starts_.push_back(off);
  order_.reset(static_cast<int64_t>(starts_.size()));
}

void EpochOrder::reset(int64_t sequences) {
  n_ = sequences;
  epoch_ = cursor_ = 0;
  build();
}

// Fisher–Yates with our own index draws: std::shuffle's use of the engine is implementation-defined,
// and the order must not change with the standard library.
void EpochOrder::build() {
  order_.resize(static_cast<size_t>(n_));
  for (size_t i = 0; i < order_.size(); ++i) order_[i] = static_cast<int64_t>(i);
  std::mt19937_64 rng(seed_ * 1000003ull + static_cast<uint64_t>(epoch_));
  for (size_t i = order_.size(); i > 1; --i) std::swap(order_[i - 1], order_[rng() % i]);
}

std::vector<int64_t> EpochOrder::next(int64_t global_batch) {
  FUSELLM_CHECK(global_batch <= n_, "global batch {} exceeds the {} {} sequences", global_batch, n_, kind_);
  if (cursor_ + global_batch > n_) {  // the epoch's partial tail is skipped
    ++epoch_;
    cursor_ = 0;
    build();
  }
  std::vector<int64_t> ids(order_.begin() + cursor_, order_.begin() + cursor_ + global_batch);
  cursor_ += global_batch;
  return ids;
}

json EpochOrder::position() const {
  return json{{"kind", kind_}, {"epoch", epoch_}, {"cursor", cursor_}, {"sequences", n_}, {"seed", seed_}};
}

void EpochOrder::restore(const json& position) {
  FUSELLM_CHECK(position.value("kind", "") == kind_ && position.value("sequences", int64_t(-1)) == n_ &&
                    position.value("seed", uint64_t(0)) == seed_,
                "loader position {} does not match this {} data ({} sequences, seed {}): the data or the seed "
                "changed since the checkpoint", position.dump(), kind_, n_, seed_);
  epoch_ = require_integer<int64_t>(position.at("epoch"), "loader position: epoch");
  cursor_ = require_integer<int64_t>(position.at("cursor"), "loader position: cursor");
  build();
}

std::vector<int64_t> PackedSequenceSource::next_global_batch(int64_t global_batch) {
  return order_.next(global_batch);
}

TrainBatch PackedSequenceSource::make_batch(const std::vector<int64_t>& sequence_ids) const {
  const int64_t b = static_cast<int64_t>(sequence_ids.size()), t = max_length_;
  at::Tensor ids = at::empty({b, t}, at::kLong);
  at::Tensor pos = at::empty({b, t}, at::kLong);
  at::Tensor seg = at::empty({b, t}, at::kLong);
  auto* ip = ids.data_ptr<int64_t>();
  auto* pp = pos.data_ptr<int64_t>();
  auto* sp = seg.data_ptr<int64_t>();
  for (int64_t r = 0; r < b; ++r) {
    const int64_t off = starts_.at(static_cast<size_t>(sequence_ids[r]));
    int64_t p = 0, segment = 0;
    for (int64_t c = 0; c < t; ++c) {
      // A document starting at column 0 needs no new segment: nothing precedes it in this row.
      if (c > 0 && doc_start_[off + c]) {
        if (restart_positions_) p = 0;
        ++segment;
      }
      ip[r * t + c] = tokens_[off + c];
      pp[r * t + c] = p++;
      sp[r * t + c] = segment;
    }
  }
  TrainBatch batch;
  batch.input_ids = ids;
  batch.labels = ids;
  if (restart_positions_) batch.position_ids = pos;
  if (document_mask_) batch.segment_ids = seg;
  batch.sequence_ids = sequence_ids;
  return batch;
}

}  // namespace fusellm::train
