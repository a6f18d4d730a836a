#pragma once
// The align stage driver: chunk dataset + the target's and every source's logit store -> aligned store.
// Shards of `shard_records` chunks (shard j holds chunks [j*R, (j+1)*R)); rank r writes shards j % W == r;
// each shard's chunks are aligned in parallel and written in chunk order, so the output does not depend on
// the thread count. Resumable by shard; the last rank to finish merges.
#include <cstdint>
#include <string>
#include <vector>

#include "fusellm/align/aligned_store.hpp"
#include "fusellm/align/project.hpp"
#include "fusellm/align/vocab_map.hpp"
#include "fusellm/util/fs.hpp"
#include "fusellm/util/json.hpp"

namespace fusellm::tok {
class Tokenizer;
}
namespace fusellm::data {
class ChunkDataset;
}
namespace fusellm {
struct ExperimentConfig;
}

namespace fusellm::align {

enum class AlignMethod { dtw, offsets };

// The config's `align` section.
struct AlignSettings {
  AlignMethod method = AlignMethod::dtw;
  ProjectionMode compat = ProjectionMode::fusellm;
  VocabMapMethod vocab = VocabMapMethod::mined;
  bool canonicalize = false;
  DuplicatePolicy duplicates = DuplicatePolicy::keep_first;
  fs::path out_dir;              // default <infer.store_dir>/../aligned
  uint64_t shard_records = 4096;
  int threads = 0;               // 0 = hardware concurrency (not part of the output's identity)
  json to_json() const;          // the settings the output depends on
};

// Parses `align` (null/absent = defaults); unknown keys and values are errors naming the key path.
AlignSettings align_settings_from_json(const json& section, const std::string& source, const fs::path& config_dir,
                                       const fs::path& store_dir);

struct AlignSourceInput {
  std::string name;
  bool is_target = false;
  fs::path logit_store;
  const tok::Tokenizer* tokenizer = nullptr;
};

struct AlignJob {
  const data::ChunkDataset* dataset = nullptr;
  std::vector<AlignSourceInput> sources;  // exactly one with is_target
  AlignSettings settings;
  uint32_t rank = 0, world_size = 1;
  bool progress = true;
};

struct AlignResult {
  uint64_t chunks_aligned = 0;   // by this run (per source, summed over sources: chunks × sources)
  uint64_t shards_skipped = 0;   // found complete (resume)
  bool merged = false;           // this run wrote the manifest
  std::vector<AlignedSourceStats> stats;  // per source, this run's chunks only
};

AlignResult run_align(const AlignJob& job);

// `fusellm align --config C`: loads tokenizers and stores as the config says and runs run_align.
AlignResult align_from_config(const ExperimentConfig& config, uint32_t rank, uint32_t world_size, int threads,
                              bool progress);

}  // namespace fusellm::align
