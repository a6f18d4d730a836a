#pragma once
// Evaluation tasks and their registry. A task reads its documents (HF dataset rows as JSONL, or the
// llm-foundry files in ../shared/data/eval), turns each into requests exactly as the paper's harness builds
// them, and scores a document from its requests' results. Tasks know nothing of models.
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "fusellm/eval/request.hpp"
#include "fusellm/util/fs.hpp"
#include "fusellm/util/json.hpp"

namespace fusellm::eval {

// One document: its requests, what the harness would store per sample, and its gold answer.
struct Doc {
  int64_t index = 0;        // position in the data file
  json fields;              // the row as the task understood it (query, choices, gold, ...)
  std::vector<Request> requests;
};

// Per-document metric values (acc, acc_norm, exact_match...), 0/1 or a fraction.
using Scores = std::map<std::string, double>;

// What the command line sets for a run's tasks (sampling, the harness compatibility mode, workers), and
// state the tasks of one run share (MultiPL-E's ten tasks share one execution pool and, in the 2023
// harness's mode, its stale results).
struct TaskSettings {
  json options = json::object();
  std::shared_ptr<std::map<std::string, std::shared_ptr<void>>> shared =
      std::make_shared<std::map<std::string, std::shared_ptr<void>>>();
};

class Task {
 public:
  virtual ~Task() = default;
  virtual std::string name() const = 0;
  virtual int version() const = 0;
  // Where the task reads its data when --data is not given: a path relative to the shared data folder.
  virtual fs::path default_data(const fs::path& shared_data) const = 0;
  // Reads the documents and builds their requests. Errors name file:line and the field.
  virtual std::vector<Doc> load(const fs::path& data) const = 0;
  // Scores one document from its requests' results (same order as doc.requests); `prediction` gets what
  // the per-sample log records as the model's answer.
  virtual Scores score(const Doc& doc, const std::vector<Result>& results, json& prediction) const = 0;
  // The metrics this task reports (in the order the table shows them); "<metric>_stderr" is added.
  virtual std::vector<std::string> metrics() const = 0;
  // Corpus-level metrics from every document's scores, when the mean of per-document values is not what
  // the task reports (bits per byte weights by bytes); nullopt = mean and stderr of each metric.
  virtual std::optional<json> aggregate(const std::map<std::string, std::vector<double>>& values) const {
    return std::nullopt;
  }
  // Notes on how the inputs were rebuilt (reported once in the results: e.g. BoolQ's missing titles).
  virtual std::vector<std::string> notes() const { return {}; }
  // Called once, before load, with the run's settings. Unknown options are the task's to reject.
  virtual void configure(const TaskSettings& settings) {}
  // Why this task cannot run on this machine (a missing compiler), or nullopt. The run skips it and says so;
  // it is never scored 0.
  virtual std::optional<std::string> unavailable() const { return std::nullopt; }
  // A request's answer is known (just generated, or read from the cache): a task with slow work per answer
  // (running a program) starts it here in the background, so it overlaps generation. Idempotent: it may be
  // called again for the same answer.
  virtual void on_result(const Doc& doc, size_t request, const Result& result) const {}
};

using TaskFactory = std::function<std::unique_ptr<Task>()>;

void register_task(const std::string& name, TaskFactory factory);
// The task of that name, or an Error "unknown task 'x' (did you mean 'y'?)" listing the known ones.
std::unique_ptr<Task> make_task(const std::string& name);
std::vector<std::string> task_names();
// Expands group names: "cs" = the paper's five Common Sense tasks, "bbh" = the 27 BBH tasks, "me" = the
// ten MultiPL-E languages; the rest
// pass through. Duplicates are dropped, order kept.
std::vector<std::string> expand_task_list(const std::vector<std::string>& names);

// Lines of a JSONL file as objects; an empty line is skipped, a malformed one is an Error "file:line: ...".
// A .parquet file (the HF hub's layout) gives its rows, flat columns only, numbered from 1 the same way;
// a .gz file is read decompressed.
std::vector<json> read_jsonl_rows(const fs::path& path);

}  // namespace fusellm::eval
