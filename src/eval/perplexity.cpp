// Bits per byte and word/byte perplexity of a text corpus (lm-eval's wikitext-style loglikelihood_rolling
// task): every document of any corpus `prepare` reads (JSONL/.txt, .gz/.zst; .txt cut into paragraphs) is
// scored whole by rolling disjoint windows of the model's context. Aggregated as lm-eval does, weighted by
// words and bytes over the corpus: word_perplexity = exp(−Σ ll / Σ words), byte_perplexity =
// exp(−Σ ll / Σ bytes), bits_per_byte = −Σ ll / Σ bytes / ln 2 — the measure that compares models with
// different tokenizers.
#include <cmath>

#include "fusellm/data/corpus.hpp"
#include "fusellm/eval/py_text.hpp"
#include "fusellm/eval/task.hpp"

namespace fusellm::eval {

namespace {

// len(re.split(r"\s+", text)): one more piece than there are whitespace runs.
double word_count(const std::string& text) {
  double pieces = 1;
  for (size_t i = 0; i < text.size(); ++i)
    if (is_py_space(text[i]) && (i == 0 || !is_py_space(text[i - 1]))) ++pieces;
  return pieces;
}

class BitsPerByteTask : public Task {
 public:
  std::string name() const override { return "bpb"; }
  int version() const override { return 0; }
  fs::path default_data(const fs::path& shared) const override { return shared / "corpus/wikitext-2-test.txt"; }

  std::vector<Doc> load(const fs::path& data) const override {
    data::CorpusReader reader({data.string()}, data::CorpusOptions{});
    std::vector<Doc> docs;
    data::Document d;
    while (reader.next(d)) {
      Doc doc;
      doc.index = int64_t(docs.size());
      Request r;
      r.kind = RequestKind::loglikelihood_rolling;
      r.context = d.text;
      doc.requests.push_back(std::move(r));
      doc.fields = {{"id", d.id}, {"words", word_count(d.text)}, {"bytes", d.text.size()}};
      docs.push_back(std::move(doc));
    }
    return docs;
  }

  Scores score(const Doc& doc, const std::vector<Result>& results, json& prediction) const override {
    prediction = {{"logprob", results[0].logprob}, {"tokens", results[0].tokens}};
    return {{"logprob", results[0].logprob}, {"words", doc.fields.at("words").get<double>()},
            {"bytes", doc.fields.at("bytes").get<double>()}};
  }
  std::vector<std::string> metrics() const override { return {"word_perplexity", "byte_perplexity", "bits_per_byte"}; }

  std::optional<json> aggregate(const std::map<std::string, std::vector<double>>& values) const override {
    double ll = 0, words = 0, bytes = 0;
    for (double v : values.at("logprob")) ll += v;
    for (double v : values.at("words")) words += v;
    for (double v : values.at("bytes")) bytes += v;
    return json{{"word_perplexity", std::exp(-ll / words)}, {"byte_perplexity", std::exp(-ll / bytes)},
                {"bits_per_byte", -ll / bytes / std::log(2.0)}, {"words", words}, {"bytes", bytes}};
  }
};

}  // namespace

void register_perplexity_tasks() {
  register_task("bpb", [] { return std::make_unique<BitsPerByteTask>(); });
}

}  // namespace fusellm::eval
