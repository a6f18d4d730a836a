// `fusellm demo [--out DIR] [--seed N] [--seeds 1,2,3]`: the FuseLLM experiment on generated data, end to end
// on a CPU in minutes (include/fusellm/demo/demo.hpp, docs/demo.md). Run it again after a kill: it continues.
#include <unistd.h>

#include <iostream>

#include "cli_common.hpp"
#include "command.hpp"
#include "fusellm/demo/demo.hpp"
#include "fusellm/demo/process.hpp"
#include "fusellm/util/error.hpp"

namespace {

using namespace fusellm;

struct DemoFlags {
  std::string out = "out/demo", seeds = "1,2,3";
  uint64_t seed = 1;
  bool no_progress = false, tiny = false;
};

int run(const DemoFlags& f) {
  demo::DemoOptions options;
  options.out_dir = f.out;
  options.seed = f.seed;
  options.train_seeds.clear();
  for (const auto& s : cli::split_commas(f.seeds)) {
    char* end = nullptr;
    const unsigned long long v = std::strtoull(s.c_str(), &end, 10);
    FUSELLM_CHECK(!s.empty() && *end == '\0', "--seeds: '{}' is not a non-negative integer", s);
    options.train_seeds.push_back(v);
  }
  FUSELLM_CHECK(!options.train_seeds.empty(), "--seeds: give at least one seed");
  options.fusellm = demo::self_executable();
  options.tty = !f.no_progress && ::isatty(STDOUT_FILENO);
  options.tiny = f.tiny;
  std::cout << "fusellm demo: " << fs::absolute(options.out_dir).lexically_normal().string() << "\n";
  const demo::DemoOutcome outcome = demo::run_demo(options);
  std::cout << "\n" << outcome.table << "\nreport: " << outcome.report.string() << "\n";
  return 0;
}

cli::Action setup(CLI::App& app) {
  auto f = std::make_shared<DemoFlags>();
  app.add_option("--out", f->out, "output directory (data, models, runs, evals, report)")->capture_default_str();
  app.add_option("--seed", f->seed, "seed of the data, the tokenizers and the models' initialization")->capture_default_str();
  app.add_option("--seeds", f->seeds, "continual-training seeds, one CLM-only / FuseLLM pair each")->capture_default_str();
  app.add_flag("--no-progress", f->no_progress, "one line per step, never redrawn");
  app.add_flag("--tiny", f->tiny, "the same steps on a fraction of the data in about a minute (tests; the numbers mean nothing)");
  return [f] { return run(*f); };
}

}  // namespace

FUSELLM_COMMAND(demo, "Fuse generated specialists into one model on a CPU and report the gain (docs/demo.md)", setup);
