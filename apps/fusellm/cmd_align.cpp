// `fusellm align --config C [--threads N] [--no-progress]`: every source's (and the target's own) top-k
// projected onto target positions and ids, into the aligned store (align.out_dir, default <store>/../aligned).
// Resumable by shard; rank-parallel when launched with RANK/WORLD_SIZE (the last rank to finish merges).
#include <iostream>

#include "command.hpp"
#include "fusellm/align/align_run.hpp"
#include "fusellm/util/dist_env.hpp"
#include "fusellm/util/error.hpp"
#include "fusellm/util/experiment_config.hpp"

namespace {

using namespace fusellm;

struct AlignFlags {
  std::string config;
  int threads = 0;
  bool no_progress = false;
};

int run(const AlignFlags& f) {
  const ExperimentConfig config = load_experiment_config(f.config);
  const RankInfo rank = rank_info_from_env();
  const align::AlignResult r =
      align::align_from_config(config, uint32_t(rank.rank), uint32_t(rank.world_size), f.threads, !f.no_progress);
  std::cout << fmt::format("align: rank {}/{}: {} chunk-sources aligned, {} shards resumed{}\n", rank.rank,
                           rank.world_size, r.chunks_aligned, r.shards_skipped, r.merged ? "; manifest merged" : "");
  return 0;
}

cli::Action setup(CLI::App& app) {
  auto f = std::make_shared<AlignFlags>();
  app.add_option("--config", f->config, "experiment config (JSON)")->required();
  app.add_option("--threads", f->threads, "worker threads (0 = align.threads or all cores)");
  app.add_flag("--no-progress", f->no_progress, "no progress bar / progress log lines");
  return [f] { return run(*f); };
}

}  // namespace
FUSELLM_COMMAND(align, "Align every source's top-k onto the target tokenization (aligned store)", setup);
