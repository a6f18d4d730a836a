// `fusellm run --config C [--stages prepare,infer,align,train,eval] [--resume]`: the whole pipeline of one
// experiment config in one process per rank, stage after stage, each exactly as its own subcommand runs it
// (same flags, same launcher environment: torchrun, SLURM or Open MPI). Every stage skips what is complete
// (manifests, the eval cache) and resumes what is not, so after a kill the same command continues.
//
// Ranks: prepare runs on rank 0 (one tokenizer pass over the corpus); the others wait for its marker.
// infer, align, train and eval split their work by rank themselves. Rank 0 writes a marker per finished
// stage to <train.output_dir>/run/ (stage, config hash, seconds) and prints the summary at the end; a
// rerun after a kill resumes training from its checkpoints when they are this config's (see below).
#include <algorithm>
#include <chrono>
#include <iostream>
#include <set>
#include <thread>

#include <xxhash.h>

#include "cli_common.hpp"
#include "command.hpp"
#include "fusellm/train/checkpoint.hpp"
#include "fusellm/train/train_run.hpp"
#include "fusellm/util/dist_env.hpp"
#include "fusellm/util/error.hpp"
#include "fusellm/util/experiment_config.hpp"
#include "fusellm/util/fs.hpp"
#include "fusellm/util/json.hpp"
#include "fusellm/util/log.hpp"

namespace {

using namespace fusellm;

const std::vector<std::string> kStages = {"prepare", "infer", "align", "train", "eval"};

struct RunFlags {
  std::string config, stages = "prepare,infer,align,train,eval", device;
  bool resume = false, no_progress = false;
  int prepare_wait_s = 24 * 3600;
};

// Runs a registered subcommand in this process, as `fusellm NAME ARGS...` would.
int run_subcommand(const std::string& name, std::vector<std::string> args) {
  for (auto& cmd : cli::commands()) {
    if (cmd.name != name) continue;
    CLI::App app{cmd.description, name};
    const cli::Action action = cmd.setup(app);
    std::reverse(args.begin(), args.end());  // CLI11 takes the arguments last first
    app.parse(args);
    return action();
  }
  fail("run: no subcommand '{}'", name);
}

std::string config_hash(const fs::path& config) {
  const std::string bytes = read_file(config);
  return fmt::format("{:016x}", static_cast<unsigned long long>(XXH3_64bits(bytes.data(), bytes.size())));
}

struct StageReport {
  std::string stage, status;  // status: "ran", "verified" (complete before this run), "skipped: why"
  double seconds = 0;
};

int run(const RunFlags& f) {
  const ExperimentConfig config = load_experiment_config(f.config);
  const RankInfo rank = rank_info_from_env();
  // Which stages: the requested ones, in pipeline order; a missing section is an error when asked for by
  // name, a note in the default list.
  std::set<std::string> requested;
  for (const auto& s : cli::split_commas(f.stages)) {
    if (std::find(kStages.begin(), kStages.end(), s) == kStages.end()) {
      const std::string hint = closest_key(s, kStages);
      fail("--stages: unknown stage '{}'{} (stages: prepare, infer, align, train, eval)", s,
           hint.empty() ? "" : fmt::format(" (did you mean '{}'?)", hint));
    }
    requested.insert(s);
  }
  const bool default_list = f.stages == RunFlags{}.stages;
  auto has = [&](const std::string& section) { return config.reserved_sections.count(section) > 0; };
  const fs::path train_dir = train::train_config_of(config).output_dir, markers = train_dir / "run";
  const std::string hash = config_hash(f.config);
  auto marker_of = [&](const std::string& stage) { return markers / (stage + ".json"); };
  auto ours = [&](const fs::path& marker) {  // a marker this config wrote
    if (!fs::exists(marker)) return false;
    const json m = json::parse(read_file(marker), nullptr, false);
    return !m.is_discarded() && m.value("config_hash", "") == hash;
  };
  auto done_before = [&](const std::string& stage) { return ours(marker_of(stage)); };

  std::vector<StageReport> reports;
  const auto run_start = std::chrono::steady_clock::now();
  for (const std::string& stage : kStages) {
    if (!requested.count(stage)) continue;
    StageReport report{stage, "ran", 0};
    // What a stage needs: infer and align sources (and align an align section: CLM-only configs have
    // none), eval an eval section. Asked for by name, its absence is an error; in the default list a note.
    std::string missing;
    if ((stage == "infer" || stage == "align") && config.sources().empty()) missing = "no source models";
    else if (stage == "align" && !has("align")) missing = "no align section";
    else if (stage == "eval" && !has("eval")) missing = "no eval section";
    if (!missing.empty()) {
      FUSELLM_CHECK(default_list, "--stages {}: {} has {}", stage, f.config, missing);
      report.status = "skipped: " + missing;
      reports.push_back(report);
      continue;
    }
    const bool verified = done_before(stage);
    if (rank.is_main()) spdlog::info("run: == {} ({})", stage, verified ? "complete before: verifying" : "running");
    const auto t0 = std::chrono::steady_clock::now();
    std::vector<std::string> args = {"--config", f.config};
    if (f.no_progress && stage != "prepare") args.push_back("--no-progress");  // prepare has no such flag
    if (!f.device.empty() && (stage == "infer" || stage == "train" || stage == "eval")) {
      args.push_back("--device");
      args.push_back(f.device);
    }
    // Training resumes when asked, or when its checkpoints are this config's: rank 0 marks the train stage
    // started (with the config's hash) before it trains, so a checkpoint beside that marker came from a run
    // of this config. Every rank decides the same: a checkpoint of this run appears only after steps that
    // need all ranks. Checkpoints of another config stay an error ("pass --resume") as in `fusellm train`.
    if (stage == "train") {
      const fs::path started = markers / "train.started.json";
      const bool started_by_us = ours(started);
      if (f.resume || verified || (started_by_us && train::latest_checkpoint(train_dir))) args.push_back("--resume");
      if (rank.is_main() && !started_by_us) {
        fs::create_directories(markers);
        write_file_atomic(started, json({{"stage", "train"}, {"config_hash", hash}}).dump(2) + "\n");
      }
    }
    int rc = 0;
    if (stage == "prepare" && !rank.is_main()) {
      // Wait for rank 0's prepare of this config (its marker), then go on.
      const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(f.prepare_wait_s);
      while (!done_before("prepare")) {
        FUSELLM_CHECK(std::chrono::steady_clock::now() < deadline, "run: rank 0 did not finish prepare within {} s",
                      f.prepare_wait_s);
        std::this_thread::sleep_for(std::chrono::milliseconds(500));
      }
    } else {
      rc = run_subcommand(stage, args);
    }
    FUSELLM_CHECK(rc == 0, "run: stage {} failed (exit {})", stage, rc);
    report.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    if (verified) report.status = "verified (complete before)";
    if (rank.is_main()) {
      fs::create_directories(markers);
      write_file_atomic(marker_of(stage), json({{"stage", stage}, {"config_hash", hash}, {"seconds", report.seconds}})
                                              .dump(2) + "\n");
    }
    reports.push_back(report);
  }
  if (!rank.is_main()) return 0;
  const double total = std::chrono::duration<double>(std::chrono::steady_clock::now() - run_start).count();
  std::cout << fmt::format("run: {} ({} rank{}), {:.1f} s\n", f.config, rank.world_size, rank.world_size == 1 ? "" : "s",
                           total);
  for (const auto& r : reports)
    std::cout << fmt::format("  {:<8} {:>9.1f} s  {}\n", r.stage, r.seconds, r.status);
  return 0;
}

cli::Action setup(CLI::App& app) {
  auto f = std::make_shared<RunFlags>();
  app.add_option("--config", f->config, "experiment config (JSON)")->required();
  app.add_option("--stages", f->stages, "comma-separated stages to run, in pipeline order")->capture_default_str();
  app.add_flag("--resume", f->resume, "continue training from the latest checkpoint (also implied when train ran before)");
  app.add_option("--device", f->device, "cpu, cuda, cuda:N for infer, train and eval (default: each stage's)");
  app.add_flag("--no-progress", f->no_progress, "log lines instead of progress bars");
  app.add_option("--prepare-wait", f->prepare_wait_s, "ranks > 0: seconds to wait for rank 0's prepare")
      ->capture_default_str();
  return [f] { return run(*f); };
}

}  // namespace

FUSELLM_COMMAND(run, "Run the pipeline of an experiment config: prepare, infer, align, train, eval (resumable)",
                setup);
