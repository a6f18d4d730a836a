// MultiPL-E (the paper's ME): HumanEval translated into ten languages, generated with the harness's
// sampling, each program executed in the sandbox and scored pass@k (eval-protocol.md §4).
//
// Request: the row's prompt, strip()ped (bigcode's get_prompt); stops = the row's stop_tokens (+ EOS, which
// the runner stops on), matched in the decoded text; max_length_generation = prompt + generation tokens;
// prompts start with BOS (the harness tokenizes with the tokenizer's default special tokens). One request
// per sample. Program = prompt + completion cut at the earliest stop + "\n" + the row's tests.
//
// Settings (TaskSettings::options): n_samples (1), temperature (0.2), top_p (0.95), top_k (0), seed (0),
// max_length_generation (512) — bigcode-evaluation-harness's defaults — exec_workers (0 = one per CPU),
// compat ("" or "bigcode-2023": Go passes when it builds; the score averages every language's latest
// result per problem name seen so far in the run, as the harness's shared temp directory did).
#include <future>
#include <thread>

#include <xxhash.h>

#include "fusellm/eval/code_exec.hpp"
#include "fusellm/eval/py_text.hpp"
#include "fusellm/eval/task.hpp"
#include "fusellm/util/error.hpp"
#include "fusellm/util/log.hpp"

namespace fusellm::eval {

namespace {

// What the ten tasks of one run share: the worker pool, each distinct program's verdict (started once),
// and — for the compat mode — the latest per-problem scores of every language scored so far.
struct MultiplEShared {
  explicit MultiplEShared(int workers) : pool(workers) {}
  std::mutex mutex;
  std::map<std::string, std::shared_future<ProgramVerdict>> runs;
  std::map<std::string, Scores> stale;
  ExecutionPool pool;  // last: destroyed (joined) first, while the promises it fulfils still exist
};

struct Settings {
  int64_t n = 1;
  double temperature = 0.2, top_p = 0.95;
  int64_t top_k = 0, seed = 0, max_length = 512, workers = 0;
  bool compat = false;
};

Settings read_settings(const json& o) {
  Settings s;
  auto integer = [&](const char* key, int64_t& v, int64_t lo, int64_t hi) {
    if (!o.contains(key)) return;
    FUSELLM_CHECK(o[key].is_number_integer() && o[key].get<int64_t>() >= lo && o[key].get<int64_t>() <= hi,
                  "multiple: {} must be an integer in [{}, {}], got {}", key, lo, hi, o[key].dump());
    v = o[key].get<int64_t>();
  };
  auto real = [&](const char* key, double& v, double lo, double hi) {
    if (!o.contains(key)) return;
    FUSELLM_CHECK(o[key].is_number() && o[key].get<double>() >= lo && o[key].get<double>() <= hi,
                  "multiple: {} must be a number in [{}, {}], got {}", key, lo, hi, o[key].dump());
    v = o[key].get<double>();
  };
  integer("n_samples", s.n, 1, 1000);
  real("temperature", s.temperature, 0, 100);
  real("top_p", s.top_p, 1e-6, 1);
  integer("top_k", s.top_k, 0, 1 << 30);
  integer("seed", s.seed, 0, std::numeric_limits<int32_t>::max());
  integer("max_length_generation", s.max_length, 2, 1 << 20);
  integer("exec_workers", s.workers, 0, 1024);
  const std::string compat = o.value("compat", std::string());
  FUSELLM_CHECK(compat.empty() || compat == "bigcode-2023", "--compat: expected 'bigcode-2023', got '{}'", compat);
  s.compat = compat == "bigcode-2023";
  return s;
}

std::vector<int64_t> reported_ks(int64_t n) {
  std::vector<int64_t> ks;
  for (int64_t k : {1, 10, 100})
    if (k <= n) ks.push_back(k);  // the harness reports pass@k only for k <= n_samples
  return ks;
}

class MultiplETask : public Task {
 public:
  explicit MultiplETask(std::string language) : language_(code_language(language)) { configure(TaskSettings{}); }
  std::string name() const override { return "multiple-" + language_.id; }
  int version() const override { return 0; }
  fs::path default_data(const fs::path& shared) const override {
    return shared / "eval" / "multipl-e" / ("humaneval-" + language_.id + "-reworded.json");
  }

  void configure(const TaskSettings& settings) override {
    settings_ = read_settings(settings.options);
    compat_.go_without_tests = settings_.compat;
    auto& slot = (*settings.shared)["multiple"];
    if (!slot) {
      const int workers = settings_.workers > 0 ? int(settings_.workers) : int(std::thread::hardware_concurrency());
      slot = std::make_shared<MultiplEShared>(std::max(1, workers));
    }
    shared_ = std::static_pointer_cast<MultiplEShared>(slot);
  }

  std::optional<std::string> unavailable() const override {
    const ToolchainStatus& s = toolchain_status(language_.id);
    if (s.available) return std::nullopt;
    return fmt::format("{} toolchain missing: {}", language_.name, s.problem);
  }

  std::vector<Doc> load(const fs::path& data) const override {
    json rows = json::parse(read_file(data), nullptr, false);
    FUSELLM_CHECK(!rows.is_discarded() && rows.is_array(), "{}: expected a JSON array of MultiPL-E problems",
                  data.string());
    std::vector<Doc> docs;
    for (size_t i = 0; i < rows.size(); ++i) {
      const json& row = rows[i];
      const std::string at = fmt::format("{}: problem {}", data.string(), i);
      for (const char* key : {"name", "prompt", "tests"})
        FUSELLM_CHECK(row.is_object() && row.contains(key) && row[key].is_string(), "{}: expected a string '{}'", at, key);
      FUSELLM_CHECK(row.contains("stop_tokens") && row["stop_tokens"].is_array(), "{}: expected a list 'stop_tokens'", at);
      Request r;
      r.kind = RequestKind::generate_until;
      r.context = py_strip(row["prompt"].get<std::string>());
      for (const auto& s : row["stop_tokens"]) {
        FUSELLM_CHECK(s.is_string() && !s.get<std::string>().empty(), "{}: stop_tokens must be non-empty strings", at);
        r.stops.push_back(s.get<std::string>());
      }
      r.stop_on_text = true;  // EndOfFunctionCriteria: a stop anywhere in the decoded completion
      r.add_bos = true;
      r.max_new_tokens = int(settings_.max_length);
      r.max_length = int(settings_.max_length);
      r.temperature = settings_.temperature;
      r.top_p = settings_.top_p;
      r.top_k = int(settings_.top_k);
      r.seed = uint64_t(settings_.seed);
      Doc doc;
      doc.index = int64_t(i);
      doc.fields = {{"name", row["name"]}, {"language", language_.id}, {"prompt", r.context}, {"tests", row["tests"]}};
      for (int64_t s = 0; s < settings_.n; ++s) {
        r.sample = int(s);
        doc.requests.push_back(r);
      }
      docs.push_back(std::move(doc));
    }
    FUSELLM_CHECK(!docs.empty(), "{}: no problems", data.string());
    return docs;
  }

  void on_result(const Doc& doc, size_t, const Result& result) const override { verdict_of(doc, result); }

  Scores score(const Doc& doc, const std::vector<Result>& results, json& prediction) const override {
    std::vector<std::shared_future<ProgramVerdict>> pending;
    for (const auto& r : results) pending.push_back(verdict_of(doc, r));
    json samples = json::array();
    int64_t passed = 0;
    for (size_t i = 0; i < results.size(); ++i) {
      const ProgramVerdict& v = pending[i].get();  // rethrows a sandbox that could not start
      passed += v.passed();
      samples.push_back({{"completion", results[i].text}, {"status", v.status}, {"exit_code", v.exit_code},
                         {"output", v.output}, {"wall_s", v.wall_s}});
    }
    prediction = {{"samples", samples}, {"passed", passed}, {"n", results.size()}};
    Scores scores;
    for (int64_t k : reported_ks(int64_t(results.size())))
      scores[fmt::format("pass@{}", k)] = pass_at_k(int64_t(results.size()), passed, k);
    std::lock_guard<std::mutex> lock(shared_->mutex);
    shared_->stale[doc.fields.at("name").get<std::string>()] = scores;  // latest per problem name
    return scores;
  }

  std::vector<std::string> metrics() const override {
    std::vector<std::string> m;
    for (int64_t k : reported_ks(settings_.n)) m.push_back(fmt::format("pass@{}", k));
    return m;
  }

  std::optional<json> aggregate(const std::map<std::string, std::vector<double>>&) const override {
    if (!settings_.compat) return std::nullopt;  // the mean over this language's problems
    // The 2023 harness averaged every `<name>.results.json` in the temp dir: this language's problems and
    // those only earlier languages had, each name's latest result.
    std::lock_guard<std::mutex> lock(shared_->mutex);
    json out = json::object();
    for (const auto& metric : metrics()) {
      double sum = 0;
      size_t count = 0;
      for (const auto& [problem, scores] : shared_->stale)
        if (auto it = scores.find(metric); it != scores.end()) sum += it->second, ++count;
      out[metric] = count ? sum / double(count) : 0.0;
      out[metric + "_problems"] = count;
    }
    return out;
  }

  std::vector<std::string> notes() const override {
    std::vector<std::string> n;
    if (settings_.compat)
      n.push_back("--compat bigcode-2023: Go programs pass when they build; pass@k averages the latest result of "
                  "every problem name of the languages run so far");
    return n;
  }

 private:
  std::string program(const Doc& doc, const Result& result) const {
    return doc.fields.at("prompt").get<std::string>() + result.text + "\n" + doc.fields.at("tests").get<std::string>();
  }

  // The verdict of this sample's program: started on the pool the first time it is asked for.
  std::shared_future<ProgramVerdict> verdict_of(const Doc& doc, const Result& result) const {
    const std::string text = program(doc, result);
    const std::string key = fmt::format("{}|{}|{:016x}", language_.id, int(compat_.go_without_tests),
                                        static_cast<unsigned long long>(XXH3_64bits(text.data(), text.size())));
    std::lock_guard<std::mutex> lock(shared_->mutex);
    if (auto it = shared_->runs.find(key); it != shared_->runs.end()) return it->second;
    auto promise = std::make_shared<std::promise<ProgramVerdict>>();
    std::shared_future<ProgramVerdict> future = promise->get_future().share();
    shared_->runs.emplace(key, future);
    const CodeLanguage language = language_;
    const HarnessCompat compat = compat_;
    shared_->pool.submit(program_spec(language_, text, compat_), [promise, language, compat](SandboxResult r) {
      try {
        promise->set_value(program_verdict(language, r, compat));
      } catch (...) {
        promise->set_exception(std::current_exception());
      }
    });
    return future;
  }

  const CodeLanguage& language_;
  Settings settings_;
  HarnessCompat compat_;
  std::shared_ptr<MultiplEShared> shared_;
};

}  // namespace

void register_multiple_tasks() {
  for (const auto& language : code_languages()) {
    const std::string id = language.id;
    register_task("multiple-" + id, [id] { return std::make_unique<MultiplETask>(id); });
  }
}

}  // namespace fusellm::eval
