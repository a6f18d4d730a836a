#pragma once
// `fusellm demo`: the FuseLLM experiment end to end on generated data, small enough for a laptop CPU.
// Three domains (domains.hpp) → four tokenizers trained on the general mix → three source specialists of
// different families and tokenizers (gpt_neox on atlas, mpt on arith, llama on code), each trained on its
// own domain, and a general llama target trained on the mix → the target continued twice on one small mixed
// corpus with the same sequences in the same order: CLM only (λ = 1) and FuseLLM (MinCE, λ = 0.9, sources
// aligned with MinED + DTW), for each of several seeds → every model evaluated (bits per byte and exact
// match per domain) → report.md with plots. Every step is a fusellm command; a killed demo continues where
// it stopped when run again. Recipe and measurements: docs/demo.md.
#include <cstdint>
#include <string>
#include <vector>

#include "fusellm/util/fs.hpp"
#include "fusellm/util/json.hpp"

namespace fusellm::demo {

struct DemoOptions {
  fs::path out_dir = "out/demo";
  fs::path fusellm;                          // the binary the steps run (default: this executable)
  uint64_t seed = 1;                         // data, tokenizers and model initializations
  std::vector<uint64_t> train_seeds = {1, 2, 3};  // continual-training seeds (data order), one run pair each
  bool tty = false;                          // redraw step lines in place
  bool tiny = false;                         // the same steps on a fraction of the data (tests)
  std::string log_level = "info";
};

struct DemoOutcome {
  json results;            // results.json: every number of the report, nothing that varies between runs
  fs::path report;         // report.md
  std::string table;       // the terminal table
  bool fused_wins_every_seed = false;
};

DemoOutcome run_demo(const DemoOptions& options);

}  // namespace fusellm::demo
