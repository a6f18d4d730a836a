// MultiPL-E: the tasks' requests, the pass@k estimator against the harness's formula, and that the tests
// really test — known-correct programs pass, wrong ones fail, in every language whose toolchain is here
// (a missing one is skipped with its reason). The compat mode's two effects on constructed examples.
// CI runs every Python problem and a few per other language; FUSELLM_MULTIPLE_FULL=1 runs them all.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <cstdlib>
#include <thread>
#include <fstream>
#include <set>

#include "common/test_paths.hpp"
#include "fusellm/eval/code_exec.hpp"
#include "fusellm/eval/evaluator.hpp"
#include "fusellm/eval/task.hpp"
#include "fusellm/util/error.hpp"
#include "multiple_solutions.hpp"

namespace fusellm::eval {
namespace {

using testing::HasSubstr;

bool full_run() {
  const char* e = std::getenv("FUSELLM_MULTIPLE_FULL");
  return e && std::string(e) == "1";
}

#define REQUIRE_LANGUAGE(id)                                                                    \
  do {                                                                                          \
    const auto& status_ = toolchain_status(id);                                                 \
    if (!status_.available) GTEST_SKIP() << (id) << " toolchain not usable here: " << status_.problem; \
  } while (0)

struct LoadedLanguage {
  std::unique_ptr<Task> task;
  std::vector<Doc> docs;
};

LoadedLanguage load_language(const std::string& id, const TaskSettings& settings = {}, const fs::path& data = {}) {
  LoadedLanguage l;
  l.task = make_task("multiple-" + id);
  l.task->configure(settings);
  l.docs = l.task->load(data.empty() ? l.task->default_data(test::shared_dir() / "data") : data);
  return l;
}

std::string last_line(const std::string& text) { return text.substr(text.rfind('\n') + 1); }

// Scores each (doc, completion) as one sample; all start on the pool before any is waited for.
std::vector<json> run_completions(const Task& task, const std::vector<std::pair<const Doc*, std::string>>& items) {
  std::vector<Doc> one_sample;
  for (const auto& [doc, text] : items) {
    Doc d = *doc;
    d.requests.resize(1);
    one_sample.push_back(std::move(d));
  }
  std::vector<Result> results(items.size());
  for (size_t i = 0; i < items.size(); ++i) {
    results[i].text = items[i].second;
    task.on_result(one_sample[i], 0, results[i]);
  }
  std::vector<json> out;
  for (size_t i = 0; i < items.size(); ++i) {
    json prediction;
    task.score(one_sample[i], {results[i]}, prediction);
    json sample = prediction["samples"][0];
    sample["name"] = one_sample[i].fields["name"];
    out.push_back(sample);
  }
  return out;
}

TEST(PassAtK, MatchesTheHarnessEstimator) {
  // Fixture: tools/multiple/pass_at_k_reference.py (the harness's NumPy expression, and exact binomials).
  std::ifstream in(test::source_dir() / "tests/eval/fixtures/pass_at_k.json");
  const json fixture = json::parse(in);
  ASSERT_GT(fixture["rows"].size(), 100u);
  for (const auto& row : fixture["rows"]) {
    const double got = pass_at_k(row["n"], row["c"], row["k"]);
    // The same product in the same order as NumPy's prod: equal to rounding of a few ulps (NumPy may pair
    // terms differently), far below any reported digit.
    EXPECT_NEAR(got, row["harness"].get<double>(), 1e-12) << row.dump();
    EXPECT_NEAR(got, row["exact"].get<double>(), 1e-9) << row.dump();
  }
  EXPECT_DOUBLE_EQ(pass_at_k(20, 3, 1), 3.0 / 20);  // pass@1 = c/n
  EXPECT_THROW(pass_at_k(2, 3, 1), Error);
}

TEST(MultiplE, RequestsFollowTheHarness) {
  FUSELLM_REQUIRE_SHARED();
  const std::map<std::string, size_t> problems = {{"cpp", 161}, {"go", 154}, {"java", 158}, {"js", 161}, {"php", 161},
                                                  {"py", 161},  {"r", 161},  {"rb", 161},   {"rs", 156}, {"ts", 159}};
  TaskSettings settings;
  settings.options = {{"n_samples", 3}, {"temperature", 0.2}, {"top_p", 0.95}, {"seed", 7}};
  for (const auto& [id, count] : problems) {
    auto l = load_language(id, settings);
    ASSERT_EQ(l.docs.size(), count) << id;
    const Request& r = l.docs[0].requests[0];
    EXPECT_EQ(l.docs[0].fields["name"], "HumanEval_23_strlen") << id;  // JSON order, not numeric
    EXPECT_EQ(l.docs[0].requests.size(), 3u);
    EXPECT_EQ(l.docs[0].requests[2].sample, 2);
    EXPECT_NE(l.docs[0].requests[1].key(), l.docs[0].requests[2].key());  // samples are distinct requests
    EXPECT_TRUE(r.stop_on_text && r.add_bos);
    EXPECT_EQ(r.max_length, 512);
    EXPECT_DOUBLE_EQ(r.temperature, 0.2);
    EXPECT_EQ(r.seed, 7u);
    EXPECT_FALSE(std::isspace(static_cast<unsigned char>(r.context.back()))) << id << ": prompt not stripped";
  }
  auto cpp = load_language("cpp");
  EXPECT_EQ(cpp.docs[0].requests[0].stops, std::vector<std::string>{"\n}"});
  EXPECT_EQ(cpp.docs[0].requests[0].context.back(), '{');  // the data's "{\n" stripped
  EXPECT_EQ(load_language("py").docs[0].requests[0].stops,
            (std::vector<std::string>{"\ndef", "\n#", "\nif", "\nclass"}));
  TaskSettings bad;
  bad.options = {{"n_samples", 0}};
  EXPECT_THAT([&] { make_task("multiple-py")->configure(bad); }, testing::ThrowsMessage<Error>(HasSubstr("n_samples")));
}

TEST(MultiplE, PythonCanonicalSolutionsPass) {
  FUSELLM_REQUIRE_SHARED();
  REQUIRE_LANGUAGE("py");
  auto py = load_language("py");
  // HumanEval's canonical solutions, by problem number.
  std::map<std::string, json> canonical;
  for (const auto& row : read_jsonl_rows(test::shared_dir() / "data/eval/humaneval/HumanEval.jsonl.gz")) {
    const std::string id = row["task_id"];
    canonical[id.substr(id.find('/') + 1)] = row;
  }
  std::vector<std::pair<const Doc*, std::string>> items;
  for (const auto& doc : py.docs) {
    const std::string name = doc.fields["name"];  // HumanEval_<n>_<entry point>
    const std::string number = name.substr(10, name.find('_', 10) - 10);
    ASSERT_TRUE(canonical.count(number)) << name;
    const json& original = canonical[number];
    // What HumanEval's own prompt gives its solution and MultiPL-E's translation dropped: statements
    // between the signature and the docstring (HumanEval/115's `import math`) go before the body; helpers
    // defined before the entry point (HumanEval/10's is_palindrome) after it (Python resolves names when
    // the function runs).
    const std::string prompt = original["prompt"];
    const size_t def = prompt.find("def " + original["entry_point"].get<std::string>() + "(");
    ASSERT_NE(def, std::string::npos) << name;
    const size_t body = prompt.find(":\n", def) + 2;
    size_t doc_start = prompt.find("\"\"\"", body);
    doc_start = std::min(doc_start, prompt.find("'''", body));
    const std::string before_docstring = prompt.substr(body, prompt.rfind('\n', doc_start) + 1 - body);
    items.emplace_back(&doc, "\n" + before_docstring + original["canonical_solution"].get<std::string>() + "\n\n" +
                                 prompt.substr(0, def));
  }
  std::set<std::string> failed;
  for (const auto& s : run_completions(*py.task, items))
    if (s["status"] != "OK") failed.insert(s["name"].get<std::string>() + ": " + s["output"].get<std::string>());
  // HumanEval/151's translated tests pass floats (candidate([5.0, 4.0]) == 25) where HumanEval passes ints,
  // and its canonical solution ignores anything whose str() has a "." — MultiPL-E's translation, not ours.
  ASSERT_EQ(failed.size(), 1u) << testing::PrintToString(failed);
  EXPECT_THAT(*failed.begin(), HasSubstr("HumanEval_151_double_the_difference"));
  EXPECT_THAT(*failed.begin(), HasSubstr("assert candidate([5.0, 4.0]) == 25"));
}

class PerLanguage : public testing::TestWithParam<std::string> {};

TEST_P(PerLanguage, WrongBodiesFailEveryProblem) {
  FUSELLM_REQUIRE_SHARED();
  const std::string id = GetParam();
  REQUIRE_LANGUAGE(id);
  auto l = load_language(id);
  const size_t n = full_run() ? l.docs.size() : (id == "py" ? l.docs.size() : 3);
  std::vector<std::pair<const Doc*, std::string>> items;
  for (size_t i = 0; i < n; ++i)
    items.emplace_back(&l.docs[i], test_solutions::wrong_completion(id, last_line(l.docs[i].fields["prompt"])));
  for (const auto& s : run_completions(*l.task, items))
    EXPECT_NE(s["status"], "OK") << id << " " << s["name"] << " passed with a wrong body";
}

TEST_P(PerLanguage, CorrectSolutionsPass) {
  FUSELLM_REQUIRE_SHARED();
  const std::string id = GetParam();
  if (id == "py") GTEST_SKIP() << "Python: all 161 canonical solutions, in MultiplE.PythonCanonicalSolutionsPass";
  REQUIRE_LANGUAGE(id);
  auto l = load_language(id);
  const auto& solutions = test_solutions::correct().at(id);
  std::vector<std::pair<const Doc*, std::string>> items;
  for (const auto& doc : l.docs)
    if (auto it = solutions.find(doc.fields["name"]); it != solutions.end()) items.emplace_back(&doc, it->second);
  ASSERT_EQ(items.size(), 5u) << id;
  for (const auto& s : run_completions(*l.task, items))
    EXPECT_EQ(s["status"], "OK") << id << " " << s["name"] << ": " << s["output"].get<std::string>();
}

INSTANTIATE_TEST_SUITE_P(Languages, PerLanguage,
                         testing::Values("cpp", "go", "java", "js", "php", "py", "r", "rb", "rs", "ts"));

TEST(MultiplECompat, GoWithoutTestsPassesWhatBuilds) {
  FUSELLM_REQUIRE_SHARED();
  REQUIRE_LANGUAGE("go");
  TaskSettings compat;
  compat.options = {{"compat", "bigcode-2023"}};
  auto fixed = load_language("go"), old = load_language("go", compat);
  const std::string wrong = test_solutions::wrong_completion("go", last_line(fixed.docs[0].fields["prompt"]));
  const std::string broken = "\n    return undefinedName\n}\n";
  const auto a = run_completions(*fixed.task, {{&fixed.docs[0], wrong}, {&fixed.docs[0], broken}});
  const auto b = run_completions(*old.task, {{&old.docs[0], wrong}, {&old.docs[0], broken}});
  EXPECT_EQ(a[0]["status"], "Exception");  // the tests ran and failed
  EXPECT_EQ(b[0]["status"], "OK");         // `go test` found no tests: it only built the program
  EXPECT_THAT(b[0]["output"].get<std::string>(), HasSubstr("no test files"));
  // A program that does not build fails in both modes. Without a test file `go test` prints no "[build
  // failed]", so eval_go's status is "OK" — with a non-zero exit code, which is not a pass.
  EXPECT_EQ(a[1]["status"], "SyntaxError") << a[1]["output"].get<std::string>();
  EXPECT_EQ(b[1]["status"], "OK") << b[1]["output"].get<std::string>();
  EXPECT_NE(b[1]["exit_code"], 0);
}

fs::path write_problems(const std::string& name, const json& rows) {
  const fs::path path = test::scratch_dir("multiple_" + name) / (name + ".json");
  std::ofstream(path) << rows.dump();
  return path;
}

TEST(MultiplECompat, StaleAverageTakesEveryLanguagesLatestResults) {
  REQUIRE_LANGUAGE("py");
  // Two "languages" (both Python here) with overlapping problem names: the first has P1, P2, P3, the
  // second P1 and P4. Passing: first P1, P2; second both.
  auto problem = [](const std::string& name) {
    return json{{"name", name}, {"prompt", "def f():"}, {"tests", "assert f() == 1\n"}, {"stop_tokens", {"\ndef"}}};
  };
  const fs::path first = write_problems("first", {problem("P1"), problem("P2"), problem("P3")});
  const fs::path second = write_problems("second", {problem("P1"), problem("P4")});
  const std::string pass = "\n    return 1\n", fail = "\n    return 2\n";
  auto scores = [&](const TaskSettings& settings) {
    auto a = load_language("py", settings, first);
    auto b = load_language("py", settings, second);  // shares the settings' state, as one run's tasks do
    std::map<std::string, std::vector<double>> values;
    auto score_all = [&](const LoadedLanguage& l, const std::vector<std::string>& texts) {
      values.clear();
      for (size_t i = 0; i < texts.size(); ++i) {
        Result r;
        r.text = texts[i];
        json prediction;
        for (const auto& [m, v] : l.task->score(l.docs[i], {r}, prediction)) values[m].push_back(v);
      }
      auto agg = l.task->aggregate(values);
      return agg ? (*agg)["pass@1"].get<double>() : mean_and_stderr(values["pass@1"]).first;
    };
    const double s1 = score_all(a, {pass, pass, fail});
    const double s2 = score_all(b, {pass, pass});
    return std::make_pair(s1, s2);
  };
  TaskSettings fixed, compat;
  compat.options = {{"compat", "bigcode-2023"}};
  const auto [f1, f2] = scores(fixed);
  const auto [c1, c2] = scores(compat);
  EXPECT_DOUBLE_EQ(f1, 2.0 / 3);
  EXPECT_DOUBLE_EQ(f2, 1.0);  // the second language's own two problems
  EXPECT_DOUBLE_EQ(c1, 2.0 / 3);
  EXPECT_DOUBLE_EQ(c2, 3.0 / 4);  // P1, P4 (now), P2 (stale pass), P3 (stale fail): the union of names
}

}  // namespace
}  // namespace fusellm::eval

namespace fusellm::eval {
namespace {

// Programs run from pool threads of a process whose BLAS threads are up (the model generated first): a
// fork() there ran OpenBLAS's atfork handler, which deadlocked when two threads forked at once.
TEST(ExecutionPoolInAModelProcess, ConcurrentRunsAfterBlasStarted) {
  if (auto why = sandbox_unavailable()) GTEST_SKIP() << *why;
  const at::Tensor a = at::randn({512, 512});
  ASSERT_GT(at::mm(a, a).abs().sum().item<double>(), 0);  // starts OpenBLAS's thread pool
  std::atomic<int> done{0}, ok{0};
  {
    ExecutionPool pool(4);
    for (int i = 0; i < 32; ++i) {
      SandboxSpec spec;
      spec.steps = {{{"true"}, 0}};
      pool.submit(spec, [&](SandboxResult r) {
        ok += r.status == SandboxStatus::ok;
        ++done;
      });
    }
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(120);
    while (done < 32 && std::chrono::steady_clock::now() < deadline)
      std::this_thread::sleep_for(std::chrono::milliseconds(50));
    if (done < 32) {
      ADD_FAILURE() << "only " << done << " of 32 runs finished in 120 s: deadlocked";
      std::_Exit(1);  // the pool's threads are stuck: its destructor would wait forever
    }
  }
  EXPECT_EQ(ok, 32);
}

}  // namespace
}  // namespace fusellm::eval
