// infer driven by the experiment config: where the chunk dataset and the stores are, which device and dtype
// a model runs with, and loading the model with its tokenizer.
#include "fusellm/teacher/infer.hpp"
#include "fusellm/util/device.hpp"
#include "fusellm/util/error.hpp"
#include "fusellm/util/log.hpp"

namespace fusellm::teacher {

InferSettings infer_settings_from_config(const InferConfig& config) {
  InferSettings s;
  FUSELLM_CHECK(config.top_k >= 1 && config.top_k <= 65536, "infer.top_k: must be in [1, 65536], got {}",
                config.top_k);
  FUSELLM_CHECK(config.shard_records >= 1, "infer.shard_records: must be at least 1, got {}", config.shard_records);
  s.top_k = static_cast<uint32_t>(config.top_k);
  s.batch_tokens = config.batch_tokens;
  s.add_bos = config.add_bos;
  s.add_eos = config.add_eos;
  // The config says fp16/bf16; the store's own names are f16/bf16.
  if (config.logprob_dtype == "fp16" || config.logprob_dtype == "f16") s.logprob_dtype = LogprobDtype::F16;
  else if (config.logprob_dtype == "bf16") s.logprob_dtype = LogprobDtype::BF16;
  else fail("infer.logprob_dtype: expected 'fp16' or 'bf16', got '{}'", config.logprob_dtype);
  s.shard_records = static_cast<uint64_t>(config.shard_records);
  return s;
}

fs::path model_store_dir(const ExperimentConfig& config, const std::string& model_name) {
  return config.infer.store_dir / model_name;
}

data::ChunkDataset open_chunk_dataset_for_infer(const ExperimentConfig& config) {
  const fs::path& dir = config.data.chunk_dir;
  FUSELLM_CHECK(fs::exists(dir), "{}: no chunk dataset (data.chunk_dir of {}); run `fusellm prepare --config {}` first",
                dir.string(), config.config_path.string(), config.config_path.string());
  FUSELLM_CHECK(data::ChunkDataset::is_complete(dir),
                "{}: unfinished chunk dataset (no {}: `fusellm prepare` did not complete); rerun `fusellm prepare "
                "--config {}`",
                dir.string(), data::kChunkManifestName, config.config_path.string());
  return data::ChunkDataset::open(dir, /*verify_checksums=*/true);
}

namespace {

std::optional<at::ScalarType> pick_dtype(const std::string& dtype, const at::Device& device) {
  if (dtype == "fp32") return at::kFloat;
  if (dtype == "bf16") return at::kBFloat16;
  if (dtype == "fp16") return at::kHalf;
  FUSELLM_CHECK(dtype == "auto", "infer.dtype: expected auto, fp32, fp16 or bf16, got '{}'", dtype);
  return device.is_cuda() ? at::kBFloat16 : at::kFloat;
}

}  // namespace

InferResult infer_model_from_config(const ExperimentConfig& config, const data::ChunkDataset& dataset,
                                    const std::string& model_name, const InferRunOptions& options) {
  const ModelEntry* entry = config.find_model(model_name);
  if (entry == nullptr) {
    std::string names;
    for (const auto& m : config.models) names += (names.empty() ? "" : ", ") + m.name;
    fail("{}: no model named '{}' (models: {})", config.config_path.string(), model_name, names);
  }
  InferSettings settings = infer_settings_from_config(config.infer);
  settings.progress = options.progress;
  settings.merge_timeout_seconds = options.merge_timeout_seconds;
  settings.kill_after_shards = options.kill_after_shards;
  settings.kill_after_records = options.kill_after_records;

  io::LoadOptions load;
  load.device = device_for_rank(options.device, options.rank.local_rank);
  load.dtype = pick_dtype(config.infer.dtype, load.device);
  auto tokenizer = tok::load_tokenizer(entry->path);
  auto model = model::load_model(entry->path, load);
  spdlog::info("infer '{}': {} on {} ({}), rank {}/{}", model_name, entry->path.string(), load.device.str(),
               c10::toString(*load.dtype), options.rank.rank, options.rank.world_size);
  return infer_logit_store(*model, *tokenizer, dataset, model_name, entry->path, model_store_dir(config, model_name),
                           settings, options.rank);
}

}  // namespace fusellm::teacher
