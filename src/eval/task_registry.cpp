// The task registry, task groups and the JSONL reader tasks share.
#include <algorithm>
#include <zlib.h>

#include <fstream>
#include <set>
#include <sstream>

#include "fusellm/eval/task.hpp"
#include "fusellm/data/parquet.hpp"
#include "fusellm/util/error.hpp"
#include "fusellm/util/experiment_config.hpp"

namespace fusellm::eval {

// Defined beside the tasks. Called explicitly (not from static registrars): the tasks live in a static
// library, whose unreferenced objects the linker would drop.
void register_commonsense_tasks();
void register_bbh_tasks();
void register_perplexity_tasks();
void register_exact_match_tasks();
void register_multiple_tasks();

namespace {
std::map<std::string, TaskFactory>& tasks() {
  static std::map<std::string, TaskFactory> map;
  return map;
}
std::map<std::string, TaskFactory>& registry() {
  static const bool builtin = [] {
    register_commonsense_tasks();
    register_bbh_tasks();
    register_perplexity_tasks();
    register_exact_match_tasks();
    register_multiple_tasks();
    return true;
  }();
  (void)builtin;
  return tasks();
}

// "base:label" — one more instance of a registered task under its own name, so one run can hold several
// (bits per byte of three corpora, three question files), each with its own --data and results entry.
class TaskInstance : public Task {
 public:
  TaskInstance(std::unique_ptr<Task> base, std::string name) : base_(std::move(base)), name_(std::move(name)) {}
  std::string name() const override { return name_; }
  int version() const override { return base_->version(); }
  fs::path default_data(const fs::path& shared) const override { return base_->default_data(shared); }
  std::vector<Doc> load(const fs::path& data) const override { return base_->load(data); }
  Scores score(const Doc& doc, const std::vector<Result>& results, json& prediction) const override {
    return base_->score(doc, results, prediction);
  }
  std::vector<std::string> metrics() const override { return base_->metrics(); }
  std::optional<json> aggregate(const std::map<std::string, std::vector<double>>& values) const override {
    return base_->aggregate(values);
  }
  std::vector<std::string> notes() const override { return base_->notes(); }
  void configure(const TaskSettings& settings) override { base_->configure(settings); }
  std::optional<std::string> unavailable() const override { return base_->unavailable(); }
  void on_result(const Doc& doc, size_t request, const Result& result) const override {
    base_->on_result(doc, request, result);
  }

 private:
  std::unique_ptr<Task> base_;
  std::string name_;
};
}  // namespace

void register_task(const std::string& name, TaskFactory factory) {
  FUSELLM_CHECK(!tasks().count(name), "eval: task '{}' registered twice", name);
  tasks()[name] = std::move(factory);
}

std::vector<std::string> task_names() {
  std::vector<std::string> names;
  for (const auto& [name, factory] : registry()) names.push_back(name);
  return names;
}

std::unique_ptr<Task> make_task(const std::string& name) {
  auto it = registry().find(name);
  if (it != registry().end()) return it->second();
  const size_t colon = name.find(':');
  if (colon != std::string::npos && colon > 0) {
    const std::string label = name.substr(colon + 1);
    FUSELLM_CHECK(!label.empty() && label.find_first_of(":/\\ ") == std::string::npos,
                  "--tasks: '{}': the label after ':' must be a non-empty name without ':', '/', '\\' or spaces", name);
    return std::make_unique<TaskInstance>(make_task(name.substr(0, colon)), name);
  }
  std::vector<std::string> known = task_names();
  known.insert(known.begin(), {"cs", "bbh", "me"});
  const std::string suggestion = closest_key(name, known);
  if (!suggestion.empty()) fail("--tasks: unknown task '{}' (did you mean '{}'?)", name, suggestion);
  std::string list;
  for (const auto& k : known) list += (list.empty() ? "" : ", ") + k;
  fail("--tasks: unknown task '{}' (known: {})", name, list);
}

std::vector<std::string> expand_task_list(const std::vector<std::string>& names) {
  std::vector<std::string> out;
  std::set<std::string> seen;
  auto add = [&](const std::string& n) {
    if (seen.insert(n).second) out.push_back(n);
  };
  for (const auto& name : names) {
    if (name == "cs") {
      for (const char* t : {"arc_easy", "arc_challenge", "boolq", "hellaswag", "openbookqa"}) add(t);
    } else if (name == "me") {  // MultiPL-E's ten languages, in the paper's Table 3 order
      for (const char* l : {"cpp", "go", "java", "js", "php", "py", "r", "rb", "rs", "ts"}) add(std::string("multiple-") + l);
    } else if (name == "bbh") {
      for (const auto& t : task_names())
        if (t.rfind("bbh_", 0) == 0) add(t);
    } else {
      add(name);
    }
  }
  return out;
}

std::vector<json> read_jsonl_rows(const fs::path& path) {
  if (path.extension() == ".parquet") {  // the HF hub's layout: the same rows, one per Parquet row
    data::ParquetFile file(path);
    std::vector<json> rows;
    for (size_t g = 0; g < file.num_row_groups(); ++g)
      for (auto& row : file.read_rows(g)) {
        row["__line"] = rows.size() + 1;  // errors name the 1-based row
        rows.push_back(std::move(row));
      }
    return rows;
  }
  std::ifstream file(path, std::ios::binary);
  FUSELLM_CHECK(file.good(), "{}: cannot open (pass the task's data with --data or check ../shared)", path.string());
  std::istringstream gunzipped;
  if (path.extension() == ".gz") {  // HumanEval's own layout: HumanEval.jsonl.gz
    gzFile gz = gzopen(path.c_str(), "rb");
    FUSELLM_CHECK(gz != nullptr, "{}: cannot open", path.string());
    std::string text;
    char buffer[1 << 16];
    int got = 0;
    while ((got = gzread(gz, buffer, sizeof buffer)) > 0) text.append(buffer, size_t(got));
    int code = 0;
    const char* message = gzerror(gz, &code);
    const bool failed = got < 0 || (code != Z_OK && code != Z_BUF_ERROR);
    const std::string why = message ? message : "";
    gzclose(gz);
    FUSELLM_CHECK(!failed, "{}: not a valid gzip file ({})", path.string(), why);
    gunzipped.str(std::move(text));
  }
  std::istream& in = path.extension() == ".gz" ? static_cast<std::istream&>(gunzipped) : file;
  std::vector<json> rows;
  std::string line;
  for (size_t number = 1; std::getline(in, line); ++number) {
    if (!line.empty() && line.back() == '\r') line.pop_back();
    if (line.find_first_not_of(" \t") == std::string::npos) continue;
    json row = json::parse(line, nullptr, false);
    if (row.is_discarded()) fail("{}:{}: not valid JSON", path.string(), number);
    if (!row.is_object()) fail("{}:{}: expected a JSON object", path.string(), number);
    row["__line"] = number;
    rows.push_back(std::move(row));
  }
  return rows;
}

}  // namespace fusellm::eval
