// `fusellm train-tokenizer --style byte-level|metaspace --vocab-size N --corpus SPEC... --out DIR`: learns a
// BPE tokenizer from a corpus (any file `prepare` reads) and writes DIR/tokenizer.json and
// DIR/tokenizer_config.json, loadable by HF `tokenizers` / `transformers` and by every fusellm command.
#include <iostream>

#include "command.hpp"
#include "fusellm/data/corpus.hpp"
#include "fusellm/tokenizer/bpe_trainer.hpp"
#include "fusellm/tokenizer/tokenizer.hpp"
#include "fusellm/util/error.hpp"
#include "fusellm/util/fs.hpp"

namespace {

using namespace fusellm;

struct Flags {
  std::string style = "byte-level", out, txt_mode = "paragraph";
  std::vector<std::string> corpus;
  int64_t vocab_size = 1024, min_frequency = 2, limit_alphabet = 256;
  bool force = false, spm_rules = false, split_digits = false;
};

int run(const Flags& f) {
  tok::BpeTrainOptions options;
  FUSELLM_CHECK(f.style == "byte-level" || f.style == "metaspace",
                "--style: '{}' is not a style (byte-level: GPT-2/NeoX; metaspace: Llama with byte fallback)", f.style);
  options.style = f.style == "byte-level" ? tok::BpeStyle::byte_level : tok::BpeStyle::metaspace;
  options.vocab_size = f.vocab_size;
  options.min_frequency = f.min_frequency;
  options.limit_alphabet = f.limit_alphabet;
  FUSELLM_CHECK(!f.spm_rules || options.style == tok::BpeStyle::metaspace, "--spm-rules: only with --style metaspace");
  options.sentencepiece_rules = f.spm_rules;
  FUSELLM_CHECK(!f.split_digits || options.style == tok::BpeStyle::byte_level,
                "--split-digits: only with --style byte-level (--spm-rules splits digits for metaspace)");
  options.split_digits = f.split_digits;
  const fs::path out(f.out);
  FUSELLM_CHECK(f.force || !fs::exists(out / "tokenizer.json"), "{}: already holds a tokenizer.json; pass --force to overwrite it",
                out.string());
  data::CorpusOptions corpus_options;
  const std::map<std::string, TxtMode> modes = {
      {"document", TxtMode::Document}, {"line", TxtMode::Line}, {"paragraph", TxtMode::Paragraph}};
  FUSELLM_CHECK(modes.count(f.txt_mode), "--txt-mode: '{}' is not document, line or paragraph", f.txt_mode);
  corpus_options.txt_mode = modes.at(f.txt_mode);
  std::vector<std::string> texts;
  for (auto& doc : data::read_corpus(f.corpus, corpus_options)) texts.push_back(std::move(doc.text));
  const tok::BpeTrainResult result = tok::train_bpe(texts, options);
  fs::create_directories(out);
  write_file_atomic(out / "tokenizer_config.json", result.tokenizer_config.dump(2) + "\n");
  write_file_atomic(out / "tokenizer.json", result.tokenizer_json.dump(2) + "\n");  // last: the tokenizer is complete
  const auto tokenizer = tok::load_tokenizer(out);  // what every command will read, checked now
  std::cout << fmt::format("wrote {}/tokenizer.json: {} BPE, vocab {} ({} base symbols, {} merges) from {} documents, "
                           "{} distinct words\n", out.string(), f.style, tokenizer->vocab_size(), result.base_symbols,
                           result.merges, texts.size(), result.words);
  return 0;
}

cli::Action setup(CLI::App& app) {
  auto f = std::make_shared<Flags>();
  app.add_option("--style", f->style, "byte-level (GPT-2 / GPT-NeoX) or metaspace (Llama, byte fallback)")
      ->capture_default_str();
  app.add_option("--vocab-size", f->vocab_size, "vocabulary size (special tokens, base symbols and merges)")
      ->check(CLI::PositiveNumber)->capture_default_str();
  app.add_option("--corpus", f->corpus, "corpus files, directories or globs (.txt, .jsonl, .gz, .zst)")->required();
  app.add_option("--out", f->out, "output directory")->required();
  app.add_option("--min-frequency", f->min_frequency, "pairs seen fewer times are not merged")
      ->check(CLI::PositiveNumber)->capture_default_str();
  app.add_option("--limit-alphabet", f->limit_alphabet, "metaspace: base characters kept (the rest by byte fallback)")
      ->check(CLI::PositiveNumber)->capture_default_str();
  app.add_option("--txt-mode", f->txt_mode, ".txt files: document, line or paragraph")->capture_default_str();
  app.add_flag("--spm-rules", f->spm_rules,
               "metaspace: as spm_train for Llama-2 — digits split, letters apart from punctuation, no line breaks in tokens");
  app.add_flag("--split-digits", f->split_digits, "byte-level: every digit a token of its own (HF Digits pre-tokenizer)");
  app.add_flag("--force", f->force, "overwrite a tokenizer in --out");
  return [f] { return run(*f); };
}

}  // namespace

FUSELLM_COMMAND_NAMED(train_tokenizer, "train-tokenizer", "Learn a BPE tokenizer (HF tokenizer.json) from a corpus", setup);
