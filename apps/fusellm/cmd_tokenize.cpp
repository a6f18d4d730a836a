// `fusellm tokenize --tokenizer DIR|FILE (--text T | --file F) [--json] [--no-special]`: ids, token
// strings and byte offsets of a text, as the model pipeline would tokenize it.
#include <iostream>

#include "command.hpp"
#include "fusellm/tokenizer/tokenizer.hpp"
#include "fusellm/util/error.hpp"
#include "fusellm/util/json.hpp"

namespace {

using namespace fusellm;

// Token strings on one line of plain output: control characters and backslashes escaped.
std::string escape_for_line(const std::string& token) {
  std::string out;
  for (char c : token) {
    switch (c) {
      case '\\': out += "\\\\"; break;
      case '\n': out += "\\n"; break;
      case '\r': out += "\\r"; break;
      case '\t': out += "\\t"; break;
      default:
        if (static_cast<unsigned char>(c) < 0x20) out += fmt::format("\\x{:02x}", static_cast<unsigned char>(c));
        else out += c;
    }
  }
  return out;
}

struct Options {
  std::string tokenizer, text, file;
  bool as_json = false, no_special = false;
};

int run(const Options& opt) {
  auto tokenizer = tok::load_tokenizer(opt.tokenizer);
  const std::string text = opt.file.empty() ? opt.text : read_file(opt.file);
  const tok::Encoding enc = tokenizer->encode(text, !opt.no_special);
  if (opt.as_json) {
    json tokens = json::array(), offsets = json::array();
    for (size_t i = 0; i < enc.ids.size(); ++i) {
      tokens.push_back(tokenizer->id_to_token(enc.ids[i]));
      offsets.push_back({enc.offsets[i].first, enc.offsets[i].second});
    }
    json out = {{"tokenizer", tokenizer->source()}, {"tokenizer_hash", tokenizer->hash()},
                {"ids", enc.ids}, {"tokens", tokens}, {"offsets", offsets}};
    std::cout << out.dump(-1, ' ', false, json::error_handler_t::replace) << "\n";
    return 0;
  }
  for (size_t i = 0; i < enc.ids.size(); ++i) {
    std::cout << enc.ids[i] << '\t' << escape_for_line(tokenizer->id_to_token(enc.ids[i])) << '\t'
              << enc.offsets[i].first << ':' << enc.offsets[i].second << '\n';
  }
  std::cout << "# " << enc.ids.size() << " tokens\n";
  return 0;
}

fusellm::cli::Action setup(CLI::App& app) {
  auto opt = std::make_shared<Options>();
  app.add_option("--tokenizer", opt->tokenizer, "Tokenizer directory or file (tokenizer.json, *.model, vocab.json)")
      ->required();
  auto* text = app.add_option("--text", opt->text, "Text to tokenize");
  auto* file = app.add_option("--file", opt->file, "File whose whole content is tokenized")->check(CLI::ExistingFile);
  text->excludes(file);
  app.add_flag("--json", opt->as_json, "One JSON object: ids, tokens, offsets (byte offsets into the UTF-8 text)");
  app.add_flag("--no-special", opt->no_special, "Do not add BOS/EOS");
  return [opt, text, file] {
    if (text->count() == 0 && file->count() == 0) fail("tokenize: give --text or --file");
    return run(*opt);
  };
}

}  // namespace
FUSELLM_COMMAND(tokenize, "Tokenize text: ids, token strings and byte offsets", setup);
