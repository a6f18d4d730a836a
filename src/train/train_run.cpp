// From an experiment config to a finished training run.
#include "fusellm/train/train_run.hpp"

#include "fusellm/align/align_run.hpp"
#include "fusellm/data/chunk_dataset.hpp"
#include "fusellm/model/causal_lm.hpp"
#include "fusellm/tokenizer/tokenizer.hpp"
#include "fusellm/train/precision.hpp"
#include "fusellm/util/dist_env.hpp"
#include "fusellm/util/device.hpp"
#include "fusellm/util/error.hpp"
#include "fusellm/util/log.hpp"

namespace fusellm::train {

TrainConfig train_config_of(const ExperimentConfig& config) {
  auto it = config.reserved_sections.find("train");
  const json section = it == config.reserved_sections.end() ? json() : it->second;
  return parse_train_config(section, config.config_path.string(), config.config_dir,
                            config.config_path.stem().string());
}

std::optional<FusionSettings> fusion_settings_of(const ExperimentConfig& config) {
  auto it = config.reserved_sections.find("fusion");
  if (it == config.reserved_sections.end() || it->second.is_null()) return std::nullopt;
  const std::string source = config.config_path.string();
  FusionSettings settings = fusion_settings_of(JsonView(it->second, source, "fusion"), config.config_dir);
  if (settings.aligned_store.empty()) {
    auto align = config.reserved_sections.find("align");
    settings.aligned_store =
        align::align_settings_from_json(align == config.reserved_sections.end() ? json() : align->second, source,
                                        config.config_dir, config.infer.store_dir)
            .out_dir;
  }
  return settings;
}

namespace {

// Opens the aligned store named by the fusion settings and checks it was made for this target and fits
// its model, so a mismatch is reported before any weights are read.
std::shared_ptr<const align::AlignedStoreReader> open_aligned_store(const FusionSettings& settings,
                                                                    const ExperimentConfig& config,
                                                                    const model::ModelConfig& model_cfg) {
  const fs::path& dir = settings.aligned_store;
  FUSELLM_CHECK(align::is_aligned_store(dir),
                "{}: no finished aligned store here (fusion.aligned_store / align.out_dir); run `fusellm align "
                "--config {}` first", dir.string(), config.config_path.string());
  auto store = std::make_shared<const align::AlignedStoreReader>(dir);
  const auto& manifest = store->manifest();
  const std::string target_hash = tok::load_tokenizer(config.target().path)->hash();
  FUSELLM_CHECK(manifest.target_tokenizer_hash == target_hash,
                "{}: aligned store made for target '{}' with tokenizer {}, but the config's target '{}' has "
                "tokenizer {}; align again for this target", dir.string(), manifest.target_name,
                manifest.target_tokenizer_hash, config.target().name, target_hash);
  FUSELLM_CHECK(int64_t(manifest.target_vocab) <= model_cfg.vocab_size,
                "{}: aligned store ids range over {} tokens, more than the target model's vocab_size {} ({})",
                dir.string(), manifest.target_vocab, model_cfg.vocab_size, model_cfg.source);
  if (data::ChunkDataset::is_complete(config.data.chunk_dir)) {
    const std::string dataset_hash = data::ChunkDataset::open(config.data.chunk_dir).hash();
    FUSELLM_CHECK(manifest.chunk_dataset_hash == dataset_hash,
                  "{}: aligned store made from chunk dataset {}, but {} holds {}; align again", dir.string(),
                  manifest.chunk_dataset_hash, config.data.chunk_dir.string(), dataset_hash);
  }
  return store;
}

}  // namespace

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
  const std::optional<FusionSettings> fusion =
      options.documents ? std::nullopt : fusion_settings_of(config);
  const ModelEntry& target = config.target();
  const std::string source = config.config_path.string();
  const int world = options.reducer ? options.reducer->world_size() : 1;

  // Everything that can be checked cheaply is checked before the weights and the data are read.
  const model::ModelConfig model_cfg = model::read_model_config(target.path);
  check_fits(cfg, model_cfg, std::numeric_limits<int64_t>::max(), world, source);

  std::unique_ptr<TrainBatchSource> batches;
  LossFn loss;
  std::string data_summary;
  if (fusion) {
    auto store = open_aligned_store(*fusion, config, model_cfg);
    batches = std::make_unique<AlignedBatchSource>(
        store, AlignedSourceOptions{cfg.max_length, cfg.seed, cfg.pack_chunks, cfg.restart_positions, cfg.document_mask});
    loss = make_fusion_loss(store, *fusion);
    data_summary = fmt::format("aligned store {} ({} sources, {} chunks), λ {} {} {}", fusion->aligned_store.string(),
                               store->num_sources(), store->num_records(), fusion->lambda,
                               fusion::to_string(fusion->strategy), fusion::to_string(fusion->divergence));
  } else {
    const std::vector<std::vector<int64_t>> documents =
        options.documents ? *options.documents
                          : tokenize_chunk_dataset(config.data.chunk_dir, target.path, cfg.max_chunks);
    batches = std::make_unique<PackedSequenceSource>(documents, cfg.max_length, cfg.seed, cfg.restart_positions,
                                                     cfg.document_mask);
    loss = make_clm_loss();
    data_summary = fmt::format("{} documents, CLM only", documents.size());
  }
  const int64_t num_sequences = batches->num_sequences();
  check_fits(cfg, model_cfg, num_sequences, world, source);

  at::manual_seed(cfg.seed);
  io::LoadOptions load;
  load.device = device_for_rank(options.device, rank_info_from_env().local_rank);
  // fp32 master weights (training updates are lost in bf16/fp16 rounding), fp64 when asked for.
  load.dtype = master_dtype(resolve_precision(cfg.precision, load.device));
  auto model = model::load_model(target.path, load);

  TrainerOptions topt;
  topt.config = cfg;
  topt.model_dir = target.path;
  topt.resume = options.resume;
  topt.reducer = options.reducer;
  topt.quiet = options.quiet;
  Trainer trainer(topt, std::move(model), std::move(batches), std::move(loss));
  if (!options.reducer || options.reducer->rank() == 0)
    spdlog::info("train: {}; {} sequences of at most {} tokens, global batch {}, {} steps, output {}", data_summary,
                 num_sequences, cfg.max_length, cfg.global_batch(world), trainer.total_steps(),
                 cfg.output_dir.string());
  TrainRunResult result;
  result.steps = trainer.run();
  result.output_dir = cfg.output_dir;
  result.total_steps = trainer.total_steps();
  return result;
}

}  // namespace fusellm::train
