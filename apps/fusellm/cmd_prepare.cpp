// `fusellm prepare --config C [--force] [--threads N]`: cuts the config's corpus into the chunk dataset
// (data.chunk_dir) so that every chunk fits every model's tokenizer within data.max_length tokens.
#include <iostream>
#include <map>

#include "command.hpp"
#include "fusellm/data/chunk_dataset.hpp"
#include "fusellm/tokenizer/tokenizer.hpp"
#include "fusellm/util/error.hpp"
#include "fusellm/util/experiment_config.hpp"
#include "fusellm/util/log.hpp"

namespace {

using namespace fusellm;

struct Options {
  std::string config;
  bool force = false;
  int threads = 0;
};

void print_summary(const data::PrepareResult& result, const data::PrepareOptions& options) {
  const data::ChunkManifest& m = result.manifest;
  const auto& t = m.totals;
  std::cout << "chunk dataset " << options.out_dir.string() << (result.reused ? " (reused: same settings)" : "") << "\n"
            << fmt::format("  documents {}, skipped {} (empty), chunks {}, forced cuts {}, text {:.1f} MiB\n",
                           t.documents, t.skipped_documents, t.chunks, t.forced_cuts, double(t.text_bytes) / (1 << 20));
  // Largest chunk per tokenizer, with the models using it and their budget.
  std::map<std::string, std::pair<std::string, int64_t>> by_hash;  // hash -> model names, smallest budget
  for (const auto& model : m.models) {
    auto& [names, budget] = by_hash[model.tokenizer_hash];
    budget = names.empty() ? model.budget : std::min(budget, model.budget);
    names += (names.empty() ? "" : ", ") + model.name;
  }
  for (const auto& [hash, max_tokens] : t.max_tokens) {
    const auto it = by_hash.find(hash);
    const std::string names = it == by_hash.end() ? hash : it->second.first;
    const int64_t budget = it == by_hash.end() ? 0 : it->second.second;
    std::cout << fmt::format("  max tokens per chunk ({}): {} of {} (text alone, before BOS/EOS)\n", names, max_tokens,
                             budget);
  }
  std::cout << "  dataset hash " << m.dataset_hash << "\n";
}

int run(const Options& opt) {
  const ExperimentConfig config = load_experiment_config(opt.config);
  // Models sharing a tokenizer directory load it once.
  std::map<std::string, std::unique_ptr<tok::Tokenizer>> loaded;
  std::vector<const tok::Tokenizer*> tokenizers;
  for (const auto& model : config.models) {
    auto& slot = loaded[model.path.string()];
    if (!slot) {
      slot = tok::load_tokenizer(model.path);
      spdlog::info("model {}: {} tokenizer from {} (hash {})", model.name, slot->kind(), slot->source(), slot->hash());
    }
    tokenizers.push_back(slot.get());
  }
  data::PrepareOptions options = data::prepare_options_from_config(config, tokenizers);
  options.force = opt.force;
  options.threads = opt.threads;
  const data::PrepareResult result = data::prepare_chunk_dataset(options);
  print_summary(result, options);
  return 0;
}

fusellm::cli::Action setup(CLI::App& app) {
  auto opt = std::make_shared<Options>();
  app.add_option("--config", opt->config, "experiment config (JSON)")->required();
  app.add_flag("--force", opt->force, "rebuild a chunk dataset that was made with other settings");
  app.add_option("--threads", opt->threads, "tokenizer threads (0 = all cores)")->capture_default_str();
  return [opt] { return run(*opt); };
}

}  // namespace

FUSELLM_COMMAND(prepare, "Cut the corpus into chunks that fit every model (the chunk dataset)", setup);
