// Common Sense tasks, zero-shot, exactly as EleutherAI lm-evaluation-harness 0.3.x builds them (spec:
// ../shared/docs/eval-protocol.md §2): ARC-Easy/Challenge, BoolQ, HellaSwag, OpenBookQA, PIQA, WinoGrande.
// Each reads the HF dataset's own rows or the llm-foundry files shipped in ../shared/data/eval/commonsense
// (rebuilt with the spec's rules; the cases it cannot rebuild exactly are counted and reported), and the
// full HellaSwag validation set in its 6-lines-per-task text form.
#include <algorithm>
#include <cctype>
#include <fstream>
#include <regex>

#include "fusellm/eval/py_text.hpp"
#include "fusellm/eval/task.hpp"
#include "fusellm/util/error.hpp"

namespace fusellm::eval {

namespace {

// The first index of the maximum (numpy argmax).
size_t argmax(const std::vector<double>& v) {
  size_t best = 0;
  for (size_t i = 1; i < v.size(); ++i)
    if (v[i] > v[best]) best = i;
  return best;
}

std::string where(const fs::path& file, const json& row) {
  return fmt::format("{}:{}", file.string(), row.value("__line", size_t(0)));
}

std::string str_field(const fs::path& file, const json& row, const char* key) {
  auto it = row.find(key);
  if (it == row.end()) fail("{}: missing field '{}'", where(file, row), key);
  if (!it->is_string()) fail("{}: field '{}' must be a string", where(file, row), key);
  return it->get<std::string>();
}

std::vector<std::string> str_list(const fs::path& file, const json& row, const json& value, const char* key) {
  if (!value.is_array() || value.empty()) fail("{}: field '{}' must be a non-empty list of strings", where(file, row), key);
  std::vector<std::string> out;
  for (const auto& v : value) {
    if (!v.is_string()) fail("{}: field '{}' must be a list of strings", where(file, row), key);
    out.push_back(v.get<std::string>());
  }
  return out;
}

int64_t gold_field(const fs::path& file, const json& row, const char* key, size_t choices) {
  auto it = row.find(key);
  if (it == row.end()) fail("{}: missing field '{}'", where(file, row), key);
  int64_t g = -1;
  if (it->is_number_integer()) g = it->get<int64_t>();
  else if (it->is_string() && !it->get<std::string>().empty() &&
           it->get<std::string>().find_first_not_of("0123456789") == std::string::npos)
    g = std::stoll(it->get<std::string>());
  else fail("{}: field '{}' must be an integer", where(file, row), key);
  if (g < 0 || size_t(g) >= choices) fail("{}: field '{}' = {} is not a choice index (0..{})", where(file, row), key, g, choices - 1);
  return g;
}

// ARC / OpenBookQA answer keys: "A".."E", or "1".."5" (ARC's num_to_letter).
int64_t letter_gold(const fs::path& file, const json& row, const std::string& key_text, size_t choices) {
  std::string k = key_text;
  while (!k.empty() && std::isspace(static_cast<unsigned char>(k.back()))) k.pop_back();
  while (!k.empty() && std::isspace(static_cast<unsigned char>(k.front()))) k.erase(0, 1);
  int64_t g = -1;
  if (k.size() == 1 && k[0] >= 'A' && k[0] <= 'E') g = k[0] - 'A';
  if (k.size() == 1 && k[0] >= '1' && k[0] <= '5') g = k[0] - '1';
  if (g < 0 || size_t(g) >= choices) fail("{}: field 'answerKey' = '{}' names no choice", where(file, row), key_text);
  return g;
}

// ---- multiple choice: acc and acc_norm over " " + choice ------------------------------------------------

struct McDoc {
  std::string query;
  std::vector<std::string> choices;
  int64_t gold = 0;
};

// HF ARC / OpenBookQA rows: choices {"text": [...], "label": [...]} and a lettered answerKey.
McDoc lettered_choices(const fs::path& data, const json& row, std::string query) {
  const json& choices = row.contains("choices") ? row["choices"] : json();
  if (!choices.is_object() || !choices.contains("text"))
    fail("{}: field 'choices' must be an object with 'text'", where(data, row));
  McDoc d;
  d.query = std::move(query);
  d.choices = str_list(data, row, choices["text"], "choices.text");
  d.gold = letter_gold(data, row, str_field(data, row, "answerKey"), d.choices.size());
  return d;
}

class MultipleChoiceTask : public Task {
 public:
  std::vector<Doc> load(const fs::path& data) const override {
    notes_.clear();
    std::vector<Doc> docs;
    for (McDoc& d : read(data)) {
      Doc doc;
      doc.index = int64_t(docs.size());
      for (const auto& c : d.choices) {
        Request r;
        r.context = d.query;
        r.continuation = " " + c;
        doc.requests.push_back(std::move(r));
      }
      doc.fields = {{"query", d.query}, {"choices", d.choices}, {"gold", d.gold}};
      docs.push_back(std::move(doc));
    }
    return docs;
  }

  Scores score(const Doc& doc, const std::vector<Result>& results, json& prediction) const override {
    std::vector<double> ll, norm;
    const auto choices = doc.fields.at("choices").get<std::vector<std::string>>();
    for (size_t i = 0; i < results.size(); ++i) {
      ll.push_back(results[i].logprob);
      norm.push_back(results[i].logprob / double(code_points(choices[i])));
    }
    const int64_t gold = doc.fields.at("gold").get<int64_t>();
    prediction = {{"loglikelihoods", ll}, {"pred", argmax(ll)}, {"pred_norm", argmax(norm)}};
    return {{"acc", argmax(ll) == size_t(gold) ? 1.0 : 0.0}, {"acc_norm", argmax(norm) == size_t(gold) ? 1.0 : 0.0}};
  }

  std::vector<std::string> metrics() const override { return {"acc", "acc_norm"}; }
  std::vector<std::string> notes() const override { return notes_; }

 protected:
  virtual std::vector<McDoc> read(const fs::path& data) const = 0;
  mutable std::vector<std::string> notes_;
};

// ---- ARC ---------------------------------------------------------------------------------------------------

class ArcTask : public MultipleChoiceTask {
 public:
  explicit ArcTask(std::string name, std::string file) : name_(std::move(name)), file_(std::move(file)) {}
  std::string name() const override { return name_; }
  int version() const override { return 0; }
  fs::path default_data(const fs::path& shared) const override { return shared / "eval/commonsense" / file_; }

 protected:
  std::vector<McDoc> read(const fs::path& data) const override {
    std::vector<McDoc> docs;
    size_t deduplicated = 0;
    for (const json& row : read_jsonl_rows(data)) {
      McDoc d;
      if (row.contains("question")) {  // HF ai2_arc
        d = lettered_choices(data, row, "Question: " + str_field(data, row, "question") + "\nAnswer:");
      } else {  // llm-foundry: query without the answer cue; 3-choice items padded with a duplicate distractor
        d.query = str_field(data, row, "query") + "\nAnswer:";
        const auto padded = str_list(data, row, row.value("choices", json()), "choices");
        const int64_t gold = gold_field(data, row, "gold", padded.size());
        for (size_t i = 0; i < padded.size(); ++i) {
          if (std::find(d.choices.begin(), d.choices.end(), padded[i]) != d.choices.end()) {
            FUSELLM_CHECK(int64_t(i) != gold, "{}: the gold choice duplicates an earlier one", where(data, row));
            ++deduplicated;
            continue;
          }
          if (int64_t(i) == gold) d.gold = int64_t(d.choices.size());
          d.choices.push_back(padded[i]);
        }
      }
      docs.push_back(std::move(d));
    }
    if (deduplicated)
      notes_.push_back(fmt::format("{} duplicate choices dropped (llm-foundry pads 3-choice items to 4)", deduplicated));
    return docs;
  }

 private:
  std::string name_, file_;
};

// ---- OpenBookQA -------------------------------------------------------------------------------------------

class OpenBookQaTask : public MultipleChoiceTask {
 public:
  std::string name() const override { return "openbookqa"; }
  int version() const override { return 0; }
  fs::path default_data(const fs::path& shared) const override { return shared / "eval/commonsense/openbook_qa.jsonl"; }

 protected:
  std::vector<McDoc> read(const fs::path& data) const override {
    std::vector<McDoc> docs;
    for (const json& row : read_jsonl_rows(data)) {
      McDoc d;
      if (row.contains("question_stem")) {  // HF openbookqa/main
        d = lettered_choices(data, row, str_field(data, row, "question_stem"));
      } else {
        d.query = str_field(data, row, "query");
        d.choices = str_list(data, row, row.value("choices", json()), "choices");
        d.gold = gold_field(data, row, "gold", d.choices.size());
      }
      docs.push_back(std::move(d));
    }
    return docs;
  }
};

// ---- PIQA -------------------------------------------------------------------------------------------------

class PiqaTask : public MultipleChoiceTask {
 public:
  std::string name() const override { return "piqa"; }
  int version() const override { return 0; }
  fs::path default_data(const fs::path& shared) const override { return shared / "eval/commonsense/piqa.jsonl"; }

 protected:
  std::vector<McDoc> read(const fs::path& data) const override {
    std::vector<McDoc> docs;
    for (const json& row : read_jsonl_rows(data)) {
      McDoc d;
      if (row.contains("goal")) {  // HF piqa
        d.query = "Question: " + str_field(data, row, "goal") + "\nAnswer:";
        d.choices = {str_field(data, row, "sol1"), str_field(data, row, "sol2")};
        d.gold = gold_field(data, row, "label", 2);
      } else {  // llm-foundry: "Question: <goal>\n"
        d.query = str_field(data, row, "query") + "Answer:";
        d.choices = str_list(data, row, row.value("choices", json()), "choices");
        d.gold = gold_field(data, row, "gold", d.choices.size());
      }
      docs.push_back(std::move(d));
    }
    return docs;
  }
};

// ---- HellaSwag ----------------------------------------------------------------------------------------------

std::string replace_all(std::string s, const std::string& from, const std::string& to) {
  std::string out;
  for (size_t pos = 0;;) {
    size_t hit = s.find(from, pos);
    if (hit == std::string::npos) return out + s.substr(pos);
    out += s.substr(pos, hit - pos) + to;
    pos = hit + from.size();
  }
}

// lm-eval's HellaSwag.preprocess: strip, " [title]" -> ". ", drop "[...]" (non-greedy, no newlines),
// "  " -> " " in one left-to-right pass.
std::string hellaswag_preprocess(const std::string& text) {
  std::string s = replace_all(py_strip(text), " [title]", ". ");
  static const std::regex brackets("\\[[^\\n]*?\\]");
  s = std::regex_replace(s, brackets, "");
  return replace_all(s, "  ", " ");
}

class HellaSwagTask : public MultipleChoiceTask {
 public:
  std::string name() const override { return "hellaswag"; }
  int version() const override { return 0; }
  fs::path default_data(const fs::path& shared) const override { return shared / "eval/commonsense/hellaswag_small.jsonl"; }

 protected:
  std::vector<McDoc> read(const fs::path& data) const override {
    if (data.extension() == ".txt") return read_text(data);
    std::vector<McDoc> docs;
    for (const json& row : read_jsonl_rows(data)) {
      McDoc d;
      if (row.contains("ctx_a")) {  // HF hellaswag
        const std::string ctx = str_field(data, row, "ctx_a") + " " + py_capitalize(str_field(data, row, "ctx_b"));
        d.query = hellaswag_preprocess(str_field(data, row, "activity_label") + ": " + ctx);
        for (const auto& e : str_list(data, row, row.value("endings", json()), "endings"))
          d.choices.push_back(hellaswag_preprocess(e));
        d.gold = gold_field(data, row, "label", d.choices.size());
      } else {  // llm-foundry: already preprocessed
        d.query = str_field(data, row, "query");
        d.choices = str_list(data, row, row.value("choices", json()), "choices");
        d.gold = gold_field(data, row, "gold", d.choices.size());
      }
      docs.push_back(std::move(d));
    }
    return docs;
  }

  // The llama.cpp text form: "activity_label: ctx_a ctx_b", the gold index, four endings. ctx_b cannot be
  // told apart from ctx_a there, so it is not capitalize()d as lm-eval does: reported as a note.
  std::vector<McDoc> read_text(const fs::path& data) const {
    std::ifstream in(data, std::ios::binary);
    FUSELLM_CHECK(in.good(), "{}: cannot open", data.string());
    std::vector<std::string> lines;
    for (std::string line; std::getline(in, line);) {
      if (!line.empty() && line.back() == '\r') line.pop_back();
      lines.push_back(line);
    }
    FUSELLM_CHECK(lines.size() % 6 == 0, "{}: {} lines, expected 6 per task (context, gold, 4 endings)",
                  data.string(), lines.size());
    std::vector<McDoc> docs;
    for (size_t i = 0; i < lines.size(); i += 6) {
      McDoc d;
      d.query = hellaswag_preprocess(lines[i]);
      const std::string& g = lines[i + 1];
      FUSELLM_CHECK(g.size() == 1 && g[0] >= '0' && g[0] <= '3', "{}:{}: gold must be 0..3, got '{}'", data.string(),
                    i + 2, g);
      d.gold = g[0] - '0';
      for (size_t k = 0; k < 4; ++k) d.choices.push_back(hellaswag_preprocess(lines[i + 2 + k]));
      docs.push_back(std::move(d));
    }
    notes_.push_back("text-format HellaSwag: ctx_b is not capitalize()d (its start is not marked in this format)");
    return docs;
  }
};

// ---- BoolQ --------------------------------------------------------------------------------------------------

class BoolQTask : public Task {
 public:
  std::string name() const override { return "boolq"; }
  int version() const override { return 1; }
  fs::path default_data(const fs::path& shared) const override { return shared / "eval/commonsense/boolq.jsonl"; }

  std::vector<Doc> load(const fs::path& data) const override {
    notes_.clear();
    std::vector<Doc> docs;
    size_t untitled = 0;
    for (const json& row : read_jsonl_rows(data)) {
      std::string ctx;
      bool gold = false;
      if (row.contains("passage")) {  // HF super_glue/boolq: the passage starts with its title
        ctx = str_field(data, row, "passage") + "\nQuestion: " + str_field(data, row, "question") + "?\nAnswer:";
        gold = gold_field(data, row, "label", 2) == 1;
      } else {  // llm-foundry: "Passage: <passage without title>\nQuestion: <question>?"
        const std::string query = str_field(data, row, "query");
        const size_t q = query.rfind("\nQuestion: ");  // one passage contains "\nQuestion: " itself
        FUSELLM_CHECK(query.rfind("Passage: ", 0) == 0 && q != std::string::npos,
                      "{}: field 'query' must be \"Passage: ...\\nQuestion: ...\"", where(data, row));
        ctx = query.substr(9, q - 9) + query.substr(q) + "\nAnswer:";
        const auto choices = str_list(data, row, row.value("choices", json()), "choices");
        FUSELLM_CHECK(choices == std::vector<std::string>({"no", "yes"}), "{}: expected choices [\"no\", \"yes\"]",
                      where(data, row));
        gold = gold_field(data, row, "gold", 2) == 1;
        ++untitled;
      }
      Doc doc;
      doc.index = int64_t(docs.size());
      for (const char* answer : {" yes", " no"}) {
        Request r;
        r.context = ctx;
        r.continuation = answer;
        doc.requests.push_back(r);
      }
      doc.fields = {{"query", ctx}, {"choices", {"yes", "no"}}, {"gold", gold ? "yes" : "no"}};
      docs.push_back(std::move(doc));
    }
    if (untitled)
      notes_.push_back(fmt::format("{} llm-foundry passages lack the super_glue title prefix (\"Title -- \"); "
                                   "their contexts differ from lm-eval's", untitled));
    return docs;
  }

  Scores score(const Doc& doc, const std::vector<Result>& results, json& prediction) const override {
    const bool yes = results[0].logprob > results[1].logprob;  // a tie predicts "no", as lm-eval
    prediction = {{"loglikelihoods", {results[0].logprob, results[1].logprob}}, {"pred", yes ? "yes" : "no"}};
    return {{"acc", (yes ? "yes" : "no") == doc.fields.at("gold").get<std::string>() ? 1.0 : 0.0}};
  }
  std::vector<std::string> metrics() const override { return {"acc"}; }
  std::vector<std::string> notes() const override { return notes_; }

 private:
  mutable std::vector<std::string> notes_;
};

// ---- WinoGrande (partial scoring) ------------------------------------------------------------------------------

class WinoGrandeTask : public Task {
 public:
  std::string name() const override { return "winogrande"; }
  int version() const override { return 0; }
  fs::path default_data(const fs::path& shared) const override { return shared / "eval/commonsense/winogrande.jsonl"; }

  std::vector<Doc> load(const fs::path& data) const override {
    std::vector<Doc> docs;
    for (const json& row : read_jsonl_rows(data)) {
      std::vector<std::string> contexts;
      std::string target;
      int64_t gold = 0;
      if (row.contains("sentence")) {  // HF winogrande: the same target after the blank, under both options
        const std::string sentence = str_field(data, row, "sentence");
        const size_t blank = sentence.find('_');
        FUSELLM_CHECK(blank != std::string::npos, "{}: field 'sentence' has no '_'", where(data, row));
        contexts = {sentence.substr(0, blank) + str_field(data, row, "option1"),
                    sentence.substr(0, blank) + str_field(data, row, "option2")};
        target = " " + py_strip(sentence.substr(blank + 1));
        const std::string answer = str_field(data, row, "answer");
        FUSELLM_CHECK(answer == "1" || answer == "2", "{}: field 'answer' must be \"1\" or \"2\"", where(data, row));
        gold = answer == "1" ? 0 : 1;
      } else {  // llm-foundry
        contexts = str_list(data, row, row.value("context_options", json()), "context_options");
        target = " " + str_field(data, row, "continuation");
        gold = gold_field(data, row, "gold", contexts.size());
      }
      Doc doc;
      doc.index = int64_t(docs.size());
      for (const auto& c : contexts) {
        Request r;
        r.context = c;
        r.continuation = target;
        doc.requests.push_back(r);
      }
      doc.fields = {{"contexts", contexts}, {"continuation", target}, {"gold", gold}};
      docs.push_back(std::move(doc));
    }
    return docs;
  }

  Scores score(const Doc& doc, const std::vector<Result>& results, json& prediction) const override {
    std::vector<double> ll;
    for (const auto& r : results) ll.push_back(r.logprob);
    prediction = {{"loglikelihoods", ll}, {"pred", argmax(ll)}};
    return {{"acc", argmax(ll) == doc.fields.at("gold").get<size_t>() ? 1.0 : 0.0}};
  }
  std::vector<std::string> metrics() const override { return {"acc"}; }
};

}  // namespace

void register_commonsense_tasks() {
  register_task("arc_easy", [] { return std::make_unique<ArcTask>("arc_easy", "arc_easy.jsonl"); });
  register_task("arc_challenge", [] { return std::make_unique<ArcTask>("arc_challenge", "arc_challenge.jsonl"); });
  register_task("openbookqa", [] { return std::make_unique<OpenBookQaTask>(); });
  register_task("piqa", [] { return std::make_unique<PiqaTask>(); });
  register_task("hellaswag", [] { return std::make_unique<HellaSwagTask>(); });
  register_task("boolq", [] { return std::make_unique<BoolQTask>(); });
  register_task("winogrande", [] { return std::make_unique<WinoGrandeTask>(); });
}

}  // namespace fusellm::eval
