// From an experiment config to a finished training run.
#include "fusellm/train/train_run.hpp"

#include "fusellm/data/chunk_dataset.hpp"
#include "fusellm/model/causal_lm.hpp"
#include "fusellm/tokenizer/tokenizer.hpp"
#include "fusellm/util/error.hpp"
#include "fusellm/util/log.hpp"

namespace fusellm::train {

TrainConfig train_config_of(const ExperimentConfig& config) {
  auto it = config.reserved_sections.find("train");
  const json section = it == config.reserved_sections.end() ? json() : it->second;
  return parse_train_config(section, config.config_path.string(), config.config_dir,
                            config.config_path.stem().string());
}

std::vector<std::vector<int64_t>> tokenize_chunk_dataset(const fs::path& chunk_dir, const fs::path& model_dir,
                                                         int64_t max_chunks) {
  FUSELLM_CHECK(data::ChunkDataset::is_complete(chunk_dir),
                "{}: no finished chunk dataset here; run `fusellm prepare --config …` first", chunk_dir.string());
  const data::ChunkDataset dataset = data::ChunkDataset::open(chunk_dir);
  auto tokenizer = tok::load_tokenizer(model_dir);
  uint64_t n = dataset.size();
  if (max_chunks > 0) n = std::min<uint64_t>(n, static_cast<uint64_t>(max_chunks));
  std::vector<std::vector<int64_t>> documents;
  documents.reserve(n);
  for (uint64_t id = 0; id < n; ++id) {
    std::vector<int32_t> ids = tokenizer->encode_ids(dataset.at(id).text, true);
    documents.emplace_back(ids.begin(), ids.end());
  }
  return documents;
}

TrainRunResult train_from_config(const ExperimentConfig& config, const TrainRunOptions& options) {
  const TrainConfig cfg = train_config_of(config);
  const ModelEntry& target = config.target();
  const std::string source = config.config_path.string();
  const int world = options.reducer ? options.reducer->world_size() : 1;

  // Everything that can be checked cheaply is checked before the weights and the data are read.
  const model::ModelConfig model_cfg = model::read_model_config(target.path);
  check_fits(cfg, model_cfg, std::numeric_limits<int64_t>::max(), world, source);

  std::vector<std::vector<int64_t>> documents =
      options.documents ? *options.documents : tokenize_chunk_dataset(config.data.chunk_dir, target.path, cfg.max_chunks);
  auto batches = std::make_unique<PackedSequenceSource>(documents, cfg.max_length, cfg.seed, cfg.restart_positions);
  const int64_t num_sequences = batches->num_sequences();
  check_fits(cfg, model_cfg, num_sequences, world, source);

  at::manual_seed(cfg.seed);
  io::LoadOptions load;
  load.dtype = at::kFloat;  // fp32 master weights: training updates are lost in bf16/fp16 rounding
  auto model = model::load_model(target.path, load);

  TrainerOptions topt;
  topt.config = cfg;
  topt.model_dir = target.path;
  topt.resume = options.resume;
  topt.reducer = options.reducer;
  topt.quiet = options.quiet;
  Trainer trainer(topt, std::move(model), std::move(batches), make_loss(cfg.lambda, options.fusion_loss));
  if (!options.reducer || options.reducer->rank() == 0)
    spdlog::info("train: {} documents packed into {} sequences of {} tokens, global batch {}, {} steps, output {}",
                 documents.size(), num_sequences, cfg.max_length, cfg.global_batch(world), trainer.total_steps(),
                 cfg.output_dir.string());
  TrainRunResult result;
  result.steps = trainer.run();
  result.output_dir = cfg.output_dir;
  result.total_steps = trainer.total_steps();
  return result;
}

}  // namespace fusellm::train
