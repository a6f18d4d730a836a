#pragma once
// The demo's report: reads what the steps wrote (eval results, training metrics, the aligned store's
// statistics, step times) and writes report.md with SVG plots, results.json (the numbers alone: identical
// after a kill and rerun) and the terminal table.
#include <string>
#include <vector>

#include "fusellm/demo/demo.hpp"
#include "fusellm/demo/steps.hpp"

namespace fusellm::demo {

struct ReportModel {
  std::string name, family, tokenizer, domain;
};

struct ReportInputs {
  fs::path out_dir, aligned_store, work, continual_corpus, fusion_chunks;
  uint64_t seed = 0;
  std::vector<uint64_t> train_seeds;
  std::vector<std::string> domains;
  std::vector<ReportModel> sources;
  ReportModel target;
  std::vector<StepTiming> timings;
  double lambda = 0.9;
  int continual_steps = 0;
};

DemoOutcome write_report(const ReportInputs& in);

}  // namespace fusellm::demo
