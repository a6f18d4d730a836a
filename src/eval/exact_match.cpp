// A generic exact-match task over the user's own question file: every row of a JSONL (or Parquet) file is
// a prompt the model continues greedily and a gold answer. Used by the demo's per-domain tasks and by
// anyone with a small QA set of their own (`--tasks exact_match:mine --data exact_match:mine=qa.jsonl`).
//
// Row: {"prompt": str, "answer": str, "stop": [str] (default ["\n"]), "max_new_tokens": int (default 32)}.
// Stops are matched in the decoded text, as lm-eval's `until`. The completion, cut before the first stop
// string, is compared with the answer after stripping whitespace at both ends — a strict match (case and
// punctuation count), because these answers are programs' outputs (numbers, lists, names), unlike BBH's
// free-form text.
#include "fusellm/eval/py_text.hpp"
#include "fusellm/eval/task.hpp"
#include "fusellm/util/error.hpp"

namespace fusellm::eval {

namespace {

class ExactMatchTask : public Task {
 public:
  std::string name() const override { return "exact_match"; }
  int version() const override { return 0; }
  fs::path default_data(const fs::path&) const override { return {}; }

  std::vector<Doc> load(const fs::path& data) const override {
    FUSELLM_CHECK(!data.empty(), "--tasks exact_match: pass its questions with --data exact_match[:NAME]=FILE.jsonl");
    std::vector<Doc> docs;
    for (const auto& row : read_jsonl_rows(data)) {
      const std::string at = fmt::format("{}:{}", data.string(), row.at("__line").get<size_t>());
      FUSELLM_CHECK(row.contains("prompt") && row["prompt"].is_string() && row.contains("answer") &&
                        row["answer"].is_string(),
                    "{}: expected string fields 'prompt' and 'answer'", at);
      Request r;
      r.kind = RequestKind::generate_until;
      r.context = row["prompt"].get<std::string>();
      r.stops = {"\n"};
      if (row.contains("stop")) {
        FUSELLM_CHECK(row["stop"].is_array() && !row["stop"].empty(), "{}: 'stop' must be a non-empty list of strings", at);
        r.stops.clear();
        for (const auto& s : row["stop"]) {
          FUSELLM_CHECK(s.is_string() && !s.get<std::string>().empty(), "{}: 'stop' must be a non-empty list of strings", at);
          r.stops.push_back(s.get<std::string>());
        }
      }
      r.max_new_tokens = 32;
      if (row.contains("max_new_tokens")) {
        FUSELLM_CHECK(row["max_new_tokens"].is_number_integer() && row["max_new_tokens"].get<int64_t>() > 0 &&
                          row["max_new_tokens"].get<int64_t>() <= 4096,
                      "{}: 'max_new_tokens' must be an integer in [1, 4096]", at);
        r.max_new_tokens = row["max_new_tokens"].get<int>();
      }
      r.add_bos = true;       // the prompt starts a text, as a document does in training
      r.stop_on_text = true;  // lm-eval's `until`: "\n" inside a merged token still stops
      Doc doc;
      doc.index = int64_t(docs.size());
      doc.fields = {{"prompt", r.context}, {"answer", row["answer"]}};
      doc.requests.push_back(std::move(r));
      docs.push_back(std::move(doc));
    }
    FUSELLM_CHECK(!docs.empty(), "{}: no questions", data.string());
    return docs;
  }

  Scores score(const Doc& doc, const std::vector<Result>& results, json& prediction) const override {
    const std::string answer = py_strip(results.at(0).text);
    prediction = {{"output", results[0].text}, {"prediction", answer}};
    return {{"exact_match", answer == py_strip(doc.fields.at("answer").get<std::string>()) ? 1.0 : 0.0}};
  }
  std::vector<std::string> metrics() const override { return {"exact_match"}; }
};

}  // namespace

void register_exact_match_tasks() {
  register_task("exact_match", [] { return std::make_unique<ExactMatchTask>(); });
}

}  // namespace fusellm::eval
