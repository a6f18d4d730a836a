#pragma once
// A synthetic aligned store for the fusion-training tests, written with the aligned-store writer from token
// chunks: a "teacher" source whose top-1 is the true next token (a one-hot logit of 1.0, the align fallback;
// empty at a chunk's last position) and a "noise" source with fixed unrelated ids in every slot of every
// position (values descending, the order the store keeps). Chunk and position CEs come from callbacks so a
// test can make them differ per chunk and per position.
#include <cmath>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "fusellm/align/aligned_store.hpp"

namespace fusellm::test {

inline constexpr uint32_t kAlignedVocab = 512, kAlignedSlots = 3;

using ChunkCE = std::function<float(size_t chunk)>;
using PositionCE = std::function<float(size_t chunk, size_t position)>;

// The noise source's id in slot i at position t.
inline int32_t noise_id(size_t t, uint32_t i) { return int32_t((t * 7 + i * 13) % kAlignedVocab); }

inline void write_aligned_source(const fs::path& dir, const std::string& name,
                                 const std::vector<std::vector<int64_t>>& chunks, bool teacher,
                                 const ChunkCE& chunk_ce, const PositionCE& position_ce) {
  teacher::StoreInfo base;
  base.model_name = name;
  base.model_type = "test";
  base.tokenizer_hash = "stories";
  base.chunk_dataset_hash = "test-chunks";
  align::AlignedSourceWriter writer(dir, name, base, kAlignedVocab, kAlignedSlots, 0, 1, 1000);
  writer.begin_shard(0);
  for (size_t c = 0; c < chunks.size(); ++c) {
    align::AlignedChunk chunk;
    chunk.chunk_id = c;
    const size_t n = chunks[c].size();
    for (size_t t = 0; t < n; ++t) {
      chunk.target_ids.push_back(int32_t(chunks[c][t]));
      chunk.position_ce.push_back(position_ce(c, t));
      for (uint32_t i = 0; i < kAlignedSlots; ++i) {
        const bool filled = teacher ? (i == 0 && t + 1 < n) : true;
        const int32_t id = teacher ? (t + 1 < n ? int32_t(chunks[c][t + 1]) : 0) : noise_id(t, i);
        chunk.topk_ids.push_back(filled ? id : int32_t(kAlignedVocab));
        chunk.topk_values.push_back(filled ? (teacher ? 1.0f : 1.0f - 0.5f * float(i)) : -INFINITY);
      }
    }
    chunk.chunk_ce = chunk_ce(c);
    writer.add(chunk);
  }
  writer.finish_shard();
  writer.finish();
}

// Teacher CE 0.5 and noise CE 3.0 everywhere unless callbacks are given.
inline std::shared_ptr<const align::AlignedStoreReader> build_aligned_store(
    const fs::path& dir, const std::vector<std::vector<int64_t>>& chunks,
    const ChunkCE& noise_chunk_ce = [](size_t) { return 3.0f; },
    const PositionCE& teacher_position_ce = [](size_t, size_t) { return 0.5f; },
    const PositionCE& noise_position_ce = [](size_t, size_t) { return 3.0f; }) {
  fs::remove_all(dir);
  write_aligned_source(dir, "teacher", chunks, true, [](size_t) { return 0.5f; }, teacher_position_ce);
  write_aligned_source(dir, "noise", chunks, false, noise_chunk_ce, noise_position_ce);
  align::AlignedStoreManifest manifest;
  manifest.chunk_dataset_hash = "test-chunks";
  manifest.target_name = "teacher";
  manifest.target_tokenizer_hash = "stories";
  manifest.target_vocab = kAlignedVocab;
  manifest.k = kAlignedSlots;
  manifest.settings = json::object();
  manifest.sources.push_back({"teacher", true, "stories", "none", {}});
  manifest.sources.push_back({"noise", false, "other", "none", {}});
  align::merge_aligned_store(dir, manifest, 1);
  return std::make_shared<align::AlignedStoreReader>(dir);
}

}  // namespace fusellm::test
