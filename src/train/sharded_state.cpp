// ZeRO shards: write per rank, index from state.json, read any range at any world size.
#include "fusellm/train/sharded_state.hpp"

#include <fmt/format.h>
#include <xxhash.h>

#include <map>

#include "fusellm/io/checkpoint.hpp"
#include "fusellm/util/error.hpp"
#include "fusellm/util/json.hpp"
#include "fusellm/util/fs.hpp"

namespace fusellm::train {

namespace {

const char* const kKinds[] = {"master", "exp_avg", "exp_avg_sq"};

std::string shard_stem(int rank, int world) { return fmt::format("rank-{:05d}-of-{:05d}", rank, world); }

std::string file_xxh3(const fs::path& path) {
  MappedFile file(path);
  return fmt::format("{:016x}", XXH3_64bits(file.data(), file.size()));
}

// Reads ranges out of the shards listed in state.json's "zero" entry.
class ShardedSource : public OptimizerStateSource {
 public:
  ShardedSource(fs::path dir, const json& zero) : dir_(std::move(dir)) {
    const fs::path manifest = dir_ / "trainer_state" / "state.json";
    try {
      for (const json& shard : zero.at("shards")) {
        const std::string file = shard.at("file").get<std::string>();
        FUSELLM_CHECK(is_plain_file_name(file), "{}: \"zero\": shard file '{}' is not a plain file name",
                      manifest.string(), file);
        shards_.push_back({file, shard.at("xxh3").get<std::string>(), nullptr});
        for (const json& s : shard.at("slices")) {
          const std::string what = manifest.string() + ": \"zero\": slice";
          const int64_t offset = require_integer<int64_t>(s.at(1), what), length = require_integer<int64_t>(s.at(2), what);
          // read() adds them: a negative or overflowing pair would index outside the stored tensor.
          FUSELLM_CHECK(offset >= 0 && length >= 0 && offset <= INT64_MAX - length,
                        "{}: \"zero\": slice of '{}' at offset {} with length {} is out of range", manifest.string(),
                        s.at(0).get<std::string>(), offset, length);
          slices_[s.at(0).get<std::string>()].push_back({shards_.size() - 1, offset, length});
        }
      }
    } catch (const json::exception& e) {
      fail("{}: malformed \"zero\" entry: {}", manifest.string(), e.what());
    }
  }

  at::Tensor read(const std::string& kind, const std::string& name, int64_t offset, int64_t length) const override {
    auto it = slices_.find(name);
    FUSELLM_CHECK(it != slices_.end(), "{}: no ZeRO shard holds parameter '{}'", dir_.string(), name);
    at::Tensor out;
    int64_t covered = 0;
    for (const Slice& s : it->second) {
      const int64_t begin = std::max(offset, s.offset), end = std::min(offset + length, s.offset + s.length);
      if (begin >= end) continue;
      const at::Tensor stored = shard(s.shard).load(kind + "." + name);
      FUSELLM_CHECK(stored.numel() == s.length, "{}: tensor '{}.{}' has {} elements, its manifest entry {}",
                    shards_[s.shard].file, kind, name, stored.numel(), s.length);
      if (!out.defined()) out = at::empty({length}, stored.options());
      out.narrow(0, begin - offset, end - begin).copy_(stored.narrow(0, begin - s.offset, end - begin));
      covered += end - begin;
    }
    FUSELLM_CHECK(covered == length, "{}: the ZeRO shards cover {} of elements [{}, {}) of {}.{}", dir_.string(),
                  covered, offset, offset + length, kind, name);
    return out;
  }

 private:
  struct Shard {
    std::string file, xxh3;
    mutable std::shared_ptr<io::SafetensorsFile> open;
  };
  struct Slice {
    size_t shard;
    int64_t offset, length;
  };

  const io::SafetensorsFile& shard(size_t i) const {
    const Shard& s = shards_[i];
    if (!s.open) {
      const fs::path path = dir_ / "trainer_state" / "zero" / s.file;
      FUSELLM_CHECK(fs::exists(path), "{}: ZeRO shard missing", path.string());
      const std::string actual = file_xxh3(path);
      FUSELLM_CHECK(actual == s.xxh3, "{}: checksum mismatch (XXH3 {}, state.json says {}): the shard is corrupt",
                    path.string(), actual, s.xxh3);
      s.open = std::make_shared<io::SafetensorsFile>(path);
    }
    return *s.open;
  }

  fs::path dir_;
  std::vector<Shard> shards_;
  std::map<std::string, std::vector<Slice>> slices_;
};

// A replicated checkpoint: moments from optimizer.safetensors, master weights from the model files.
class FullSource : public OptimizerStateSource {
 public:
  FullSource(const fs::path& dir, const TrainState& state) : dir_(dir), weights_(io::open_checkpoint(dir)) {
    for (const auto& [name, t] : state.optimizer) tensors_[name] = t;
  }
  at::Tensor read(const std::string& kind, const std::string& name, int64_t offset, int64_t length) const override {
    at::Tensor full;
    if (kind == "master") {
      full = weights_->load(name, {});
    } else {
      auto it = tensors_.find(kind + "." + name);
      FUSELLM_CHECK(it != tensors_.end(), "{}: optimizer state lacks tensor '{}.{}'", dir_.string(), kind, name);
      full = it->second;
    }
    FUSELLM_CHECK(offset + length <= full.numel(), "{}: {}.{} has {} elements, fewer than the {} needed",
                  dir_.string(), kind, name, full.numel(), offset + length);
    return full.reshape({-1}).narrow(0, offset, length);
  }

 private:
  fs::path dir_;
  std::unique_ptr<io::CheckpointReader> weights_;
  std::map<std::string, at::Tensor> tensors_;
};

}  // namespace

json write_zero_shard(const fs::path& tmp_checkpoint, const ZeroOptimizer& zero, int rank, int world_size) {
  const fs::path dir = tmp_checkpoint / "trainer_state" / "zero";
  fs::create_directories(dir);
  const std::string stem = shard_stem(rank, world_size);
  io::NamedTensors tensors;
  for (auto& [name, t] : zero.state_slices()) tensors.emplace_back(name, t.contiguous().cpu());
  json slices = json::array();
  for (const OwnedSlice& s : zero.owned_slices()) slices.push_back({s.name, s.offset, s.length});
  const fs::path file = dir / (stem + ".safetensors");
  io::save_safetensors(file, tensors, {{"format", "fusellm.zero_shard"}, {"rank", std::to_string(rank)},
                                       {"world_size", std::to_string(world_size)}});
  json sidecar = {{"file", file.filename().string()}, {"bytes", fs::file_size(file)}, {"xxh3", file_xxh3(file)},
                  {"slices", slices}};
  write_file_atomic(dir / (stem + ".json"), sidecar.dump() + "\n");
  return sidecar;
}

json zero_manifest(const fs::path& tmp_checkpoint, int stage, int world_size) {
  json shards = json::array();
  for (int r = 0; r < world_size; ++r) {
    const fs::path sidecar = tmp_checkpoint / "trainer_state" / "zero" / (shard_stem(r, world_size) + ".json");
    FUSELLM_CHECK(fs::exists(sidecar), "{}: rank {} did not write its ZeRO shard", sidecar.string(), r);
    shards.push_back(json::parse(read_file(sidecar)));
    fs::remove(sidecar);  // folded into state.json
  }
  return {{"stage", stage}, {"world_size", world_size}, {"kinds", json::array({kKinds[0], kKinds[1], kKinds[2]})}, {"shards", shards}};
}

std::unique_ptr<OptimizerStateSource> open_optimizer_state(const fs::path& checkpoint_dir, const TrainState& state) {
  if (!state.zero.is_null()) return std::make_unique<ShardedSource>(checkpoint_dir, state.zero);
  return std::make_unique<FullSource>(checkpoint_dir, state);
}

}  // namespace fusellm::train
