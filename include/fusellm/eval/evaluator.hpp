#pragma once
// `fusellm eval`: tasks → requests → a per-request cache on disk (a killed eval resumes without
// recomputing what was answered) → the model runner → per-document scores → lm-eval-shaped results.
// Data parallel by rank (torchrun/SLURM environment): each rank answers every world-th request and
// appends to its own cache file; rank 0 waits for every rank's "done" file, merges and scores.
#include <map>
#include <string>
#include <vector>

#include "fusellm/eval/model_runner.hpp"
#include "fusellm/eval/task.hpp"
#include "fusellm/util/fs.hpp"
#include "fusellm/util/json.hpp"

namespace fusellm::eval {

struct EvalOptions {
  std::vector<std::string> tasks;             // names or groups (cs, bbh)
  fs::path shared_data;                       // ../shared/data: default data of each task
  std::map<std::string, fs::path> data;       // task -> its data file (overrides the default)
  fs::path out_dir;
  int64_t limit = 0;                          // first N documents of each task (0 = all)
  int rank = 0, world_size = 1;
  int wait_timeout_s = 3600;                  // rank 0 waiting for the other ranks' caches
  bool progress = true;
  json config;                                // what results.json records under "config"
  json task_options = json::object();         // TaskSettings::options of every task (sampling, compat...)
};

struct EvalSummary {
  json results;                 // the whole results.json
  size_t requests = 0, computed = 0, from_cache = 0;
};

// A task with its documents read (errors name file:line before any model work).
struct LoadedTask {
  std::unique_ptr<Task> task;
  fs::path data;
  std::vector<Doc> docs;
  std::string skipped;  // why the task cannot run here (Task::unavailable); then it has no documents
};
std::vector<LoadedTask> load_tasks(const EvalOptions& options);

// Answers the tasks' requests and, on rank 0, writes out_dir/results.json, out_dir/samples/<task>.jsonl and
// returns the summary (other ranks return after writing their cache). `model_fingerprint` identifies the
// model and its settings in the results and the cache. The first form loads the tasks itself.
EvalSummary run_eval(const EvalOptions& options, ModelRunner& runner, const std::string& model_fingerprint);
EvalSummary run_eval(const EvalOptions& options, const std::vector<LoadedTask>& tasks, ModelRunner& runner,
                     const std::string& model_fingerprint);

// The task documents as run_eval reads them (for request-level tests).
std::vector<Doc> load_task_docs(const Task& task, const EvalOptions& options);

// mean and lm-eval's stderr (sample standard deviation / sqrt(n)).
std::pair<double, double> mean_and_stderr(const std::vector<double>& values);

// A one-screen table of the results (task, metric, value, stderr, documents).
std::string results_table(const json& results);

}  // namespace fusellm::eval
