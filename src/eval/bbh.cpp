// BIG-Bench Hard, 3-shot chain of thought, as allenai/open-instruct's eval/bbh scores it (spec:
// ../shared/docs/eval-protocol.md §3): the prompt is the cot-prompts file without its two header lines,
// stripped, + "\n\nQ: " + input + "\nA:"; greedy, 512 new tokens, BOS as the HF tokenizer adds it, stop at
// the tokens of "\n\n"; the answer is the first "[t|T]he answer is (.*?)\." match, else the stripped
// output; exact match ignoring case and ASCII punctuation, nothing else normalized.
#include "fusellm/eval/bbh.hpp"

#include <fstream>
#include <sstream>

#include "fusellm/eval/py_text.hpp"
#include "fusellm/eval/task.hpp"
#include "fusellm/util/error.hpp"

namespace fusellm::eval {

const std::vector<std::string>& bbh_task_names() {
  static const std::vector<std::string> names = {
      "boolean_expressions", "causal_judgement", "date_understanding", "disambiguation_qa", "dyck_languages",
      "formal_fallacies", "geometric_shapes", "hyperbaton", "logical_deduction_five_objects",
      "logical_deduction_seven_objects", "logical_deduction_three_objects", "movie_recommendation",
      "multistep_arithmetic_two", "navigate", "object_counting", "penguins_in_a_table",
      "reasoning_about_colored_objects", "ruin_names", "salient_translation_error_detection", "snarks",
      "sports_understanding", "temporal_sequences", "tracking_shuffled_objects_five_objects",
      "tracking_shuffled_objects_seven_objects", "tracking_shuffled_objects_three_objects", "web_of_lies",
      "word_sorting"};
  return names;
}

std::string bbh_task_prompt(const std::string& cot_file_text) {
  // "".join(f.readlines()[2:]): everything after the second newline.
  size_t first = cot_file_text.find('\n');
  size_t second = first == std::string::npos ? std::string::npos : cot_file_text.find('\n', first + 1);
  return second == std::string::npos ? std::string() : cot_file_text.substr(second + 1);
}

std::string bbh_prompt(const std::string& task_prompt, const std::string& input) {
  return py_strip(task_prompt) + "\n\nQ: " + input + "\nA:";
}

std::string bbh_extract_answer(const std::string& output) {
  static const std::string tail = "he answer is ";
  for (size_t i = 0; i + 1 + tail.size() <= output.size(); ++i) {
    const char c = output[i];
    if (c != 't' && c != 'T' && c != '|') continue;
    if (output.compare(i + 1, tail.size(), tail) != 0) continue;
    const size_t start = i + 1 + tail.size();
    for (size_t j = start; j < output.size() && output[j] != '\n'; ++j)
      if (output[j] == '.') return py_strip(output.substr(start, j - start));
  }
  return py_strip(output);
}

std::string em_normalize(const std::string& s) {
  static const std::string punctuation = "!\"#$%&'()*+,-./:;<=>?@[\\]^_`{|}~";
  // HF evaluate's exact_match: lower() first (Python's: the Kelvin sign becomes "k"), then the ASCII
  // punctuation removed.
  std::string out;
  for (char c : py_lower(s))
    if (punctuation.find(c) == std::string::npos) out += c;
  return out;
}

bool bbh_exact_match(const std::string& prediction, const std::string& target) {
  return em_normalize(prediction) == em_normalize(target);
}

namespace {

class BbhTask : public Task {
 public:
  explicit BbhTask(std::string subtask) : subtask_(std::move(subtask)) {}
  std::string name() const override { return "bbh_" + subtask_; }
  int version() const override { return 0; }
  fs::path default_data(const fs::path& shared) const override { return shared / "eval/bbh"; }

  std::vector<Doc> load(const fs::path& data) const override {
    const fs::path examples_file = data / "bbh" / (subtask_ + ".json"), prompt_file = data / "cot-prompts" / (subtask_ + ".txt");
    const std::string prompt = bbh_task_prompt(read_file(prompt_file));
    FUSELLM_CHECK(!prompt.empty(), "{}: expected a canary line, a '-----' line, then the prompt", prompt_file.string());
    const json file = parse_json_file(examples_file);
    FUSELLM_CHECK(file.is_object() && file.contains("examples") && file["examples"].is_array(),
                  "{}: expected an object with an 'examples' list", examples_file.string());
    std::vector<Doc> docs;
    for (const auto& ex : file["examples"]) {
      const std::string at = fmt::format("{}: examples[{}]", examples_file.string(), docs.size());
      FUSELLM_CHECK(ex.is_object() && ex.contains("input") && ex["input"].is_string() && ex.contains("target") &&
                        ex["target"].is_string(),
                    "{}: expected string fields 'input' and 'target'", at);
      Doc doc;
      doc.index = int64_t(docs.size());
      Request r;
      r.kind = RequestKind::generate_until;
      r.context = bbh_prompt(prompt, ex["input"].get<std::string>());
      r.stops = {"\n\n"};
      r.max_new_tokens = 512;
      r.add_bos = true;
      doc.requests.push_back(std::move(r));
      doc.fields = {{"input", ex["input"]}, {"target", ex["target"]}};
      docs.push_back(std::move(doc));
    }
    return docs;
  }

  Scores score(const Doc& doc, const std::vector<Result>& results, json& prediction) const override {
    const std::string answer = bbh_extract_answer(results.at(0).text);
    prediction = {{"output", results[0].text}, {"prediction", answer}};
    return {{"exact_match", bbh_exact_match(answer, doc.fields.at("target").get<std::string>()) ? 1.0 : 0.0}};
  }
  std::vector<std::string> metrics() const override { return {"exact_match"}; }

 private:
  std::string subtask_;
};

}  // namespace

void register_bbh_tasks() {
  for (const auto& t : bbh_task_names())
    register_task("bbh_" + t, [t] { return std::make_unique<BbhTask>(t); });
}

}  // namespace fusellm::eval
