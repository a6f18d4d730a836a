// fusellm: one CLI over the pipeline (corpus → prepare → infer → align → train → eval).
// Every user error ends as one line on stderr and a non-zero exit, never a stack trace.
#include <ATen/Parallel.h>
#include <CLI/CLI.hpp>

#include <algorithm>
#include <iostream>
#include <cstdlib>
#include <map>
#include <thread>

#include "command.hpp"
#include "fusellm/util/allocator.hpp"
#include "fusellm/util/error.hpp"
#include "fusellm/util/log.hpp"

namespace fusellm::cli {
std::vector<Command>& commands() {
  static std::vector<Command> all;
  return all;
}
}  // namespace fusellm::cli

int main(int argc, char** argv) {
  using namespace fusellm;
  tune_allocator_for_tensors();
  CLI::App app{"fusellm: knowledge fusion of large language models (FuseLLM) in C++/LibTorch"};
  app.require_subcommand(1);
  std::string log_level = "info";
  app.add_option("--log-level", log_level, "trace, debug, info, warn, error, off")->capture_default_str();
  int threads = 0;
  app.add_option("--intra-op-threads", threads, "LibTorch intra-op CPU threads (default: OMP_NUM_THREADS, else all cores)");

  auto& cmds = cli::commands();
  std::sort(cmds.begin(), cmds.end(), [](auto& a, auto& b) { return a.name < b.name; });
  std::map<CLI::App*, cli::Action> actions;
  for (auto& cmd : cmds) {
    CLI::App* sub = app.add_subcommand(cmd.name, cmd.description);
    actions[sub] = cmd.setup(*sub);
  }
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    return app.exit(e);
  }
  try {
    set_log_level(log_level);
    // LibTorch's OpenMP default can be a single thread on small VMs; use every core unless told otherwise.
    if (threads > 0) at::set_num_threads(threads);
    else if (!std::getenv("OMP_NUM_THREADS")) at::set_num_threads(static_cast<int>(std::max(1u, std::thread::hardware_concurrency())));
    for (auto& [sub, action] : actions) {
      if (sub->parsed()) return action();
    }
    return 2;
  } catch (const Error& e) {
    std::cerr << "error: " << e.what() << "\n";
    return 1;
  } catch (const c10::Error& e) {
    // LibTorch errors carry a backtrace: keep the first line only.
    std::string msg = e.what_without_backtrace();
    std::cerr << "error: " << msg.substr(0, msg.find('\n')) << "\n";
    return 1;
  } catch (const std::exception& e) {
    std::cerr << "error: " << e.what() << "\n";
    return 1;
  }
}
