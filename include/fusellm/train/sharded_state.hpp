#pragma once
// ZeRO's optimizer state on disk and back. Each rank writes trainer_state/zero/rank-RRRRR-of-WWWWW.safetensors:
// per parameter its owned slice, unpadded, of the master weights and both moments ("master.<name>",
// "exp_avg.<name>", "exp_avg_sq.<name>", 1-D), and a sidecar .json with the file's XXH3-64, size and the
// slices' [name, offset, length] (offsets into the parameter flattened). Rank 0 copies the sidecars into
// state.json's "zero" entry, which is written last. On resume every rank reads the ranges it owns now
// from whichever shards hold them, so a run saved at one world size resumes at any other, and a
// replicated (ZeRO-0) checkpoint resumes sharded and back. Format: docs/formats.md.
#include <memory>

#include "fusellm/train/checkpoint.hpp"
#include "fusellm/train/zero.hpp"

namespace fusellm::train {

// Writes this rank's shard and sidecar into <tmp_checkpoint>/trainer_state/zero/; returns the sidecar.
json write_zero_shard(const fs::path& tmp_checkpoint, const ZeroOptimizer& zero, int rank, int world_size);

// state.json's "zero" entry from the sidecars of all `world_size` ranks (after they all wrote).
json zero_manifest(const fs::path& tmp_checkpoint, int stage, int world_size);

// The optimizer state of a checkpoint by ranges: from ZeRO shards (checksums verified when a shard is
// first read) or, for a replicated checkpoint, from optimizer.safetensors and the model weights.
std::unique_ptr<OptimizerStateSource> open_optimizer_state(const fs::path& checkpoint_dir, const TrainState& state);

}  // namespace fusellm::train
