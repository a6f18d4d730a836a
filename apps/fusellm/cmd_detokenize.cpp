// `fusellm detokenize --tokenizer DIR|FILE --ids 1,2,3 [--skip-special]`: the text of token ids.
#include <iostream>

#include "cli_common.hpp"
#include "command.hpp"
#include "fusellm/tokenizer/tokenizer.hpp"
#include "fusellm/util/error.hpp"

namespace {

using namespace fusellm;

fusellm::cli::Action setup(CLI::App& app) {
  struct Options {
    std::string tokenizer, ids;
    bool skip_special = false;
  };
  auto opt = std::make_shared<Options>();
  app.add_option("--tokenizer", opt->tokenizer, "Tokenizer directory or file (tokenizer.json, *.model, vocab.json)")
      ->required();
  app.add_option("--ids", opt->ids, "Comma-separated token ids")->required();
  app.add_flag("--skip-special", opt->skip_special, "Leave out special tokens (BOS, EOS, ...)");
  return [opt] {
    auto tokenizer = tok::load_tokenizer(opt->tokenizer);
    std::vector<int32_t> ids;
    for (int64_t id : cli::parse_id_list(opt->ids, "--ids")) {
      if (id < 0 || id > INT32_MAX) fail("--ids: token id {} is out of range", id);
      ids.push_back(static_cast<int32_t>(id));
    }
    std::cout << tokenizer->decode(ids, opt->skip_special) << "\n";
    return 0;
  };
}

}  // namespace
FUSELLM_COMMAND(detokenize, "Turn token ids back into text", setup);
