#pragma once
// The demo's step runner: an ordered list of steps, each a command (`fusellm <subcommand> …` in a child
// process, its output in logs/<id>.log) or an in-process action. A step that finished leaves a marker
// steps/<id>.json {id, key, seconds}; a rerun skips it when the key (what the step would do: its command
// line, the bytes of the files it is given, and the keys of every step before it) is unchanged. A step without a marker — killed half way —
// is run again, and its own command resumes from what is complete (every fusellm stage does); a step
// whose key changed has its outputs removed first, so stale results are never mixed with new ones.
#include <functional>
#include <string>
#include <vector>

#include "fusellm/util/fs.hpp"

namespace fusellm::demo {

struct Step {
  std::string id;                    // file-name safe; unique
  std::string stage;                 // for the time-per-stage table: data, tokenizers, sources, target, ...
  std::string label;                 // what the user sees
  std::vector<std::string> command;  // argv; empty = `action`
  std::function<void()> action;
  std::vector<fs::path> inputs;      // files whose bytes belong to the key (configs the step reads)
  std::vector<fs::path> outputs;     // removed before a run whose key changed
  std::string key_extra;             // more that belongs to the key (an action's settings)
};

struct StepTiming {
  std::string id, stage;
  double seconds = 0;
  bool ran = false;  // false: complete before this run
};

class StepRunner {
 public:
  StepRunner(fs::path out_dir, bool tty);
  // Runs (or skips) the step; an Error naming the step and its log when it fails.
  void run(const Step& step);
  const std::vector<StepTiming>& timings() const { return timings_; }
  void set_total(size_t steps) { total_ = steps; }

 private:
  std::string key_of(const Step& step) const;
  fs::path out_dir_;
  bool tty_;
  size_t total_ = 0;
  std::string chain_;  // the key of the step before
  std::vector<StepTiming> timings_;
};

}  // namespace fusellm::demo
