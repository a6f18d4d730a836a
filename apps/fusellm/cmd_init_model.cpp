// `fusellm init-model --config T.json --tokenizer F[:NAME]... --out DIR [--seed N]`: a freshly initialized
// Hugging Face model directory of any supported family — config.json from the template (vocab_size taken
// from the tokenizer when the template leaves it out), random weights, and the tokenizer files copied in.
// For smoke tests and pipeline dry runs of a new tokenizer/architecture mix without downloading a model.
#include <iostream>

#include "command.hpp"
#include "fusellm/model/random_init.hpp"
#include "fusellm/tokenizer/tokenizer.hpp"
#include "fusellm/util/error.hpp"
#include "fusellm/util/fs.hpp"
#include "fusellm/util/json.hpp"

namespace {

using namespace fusellm;

struct InitFlags {
  std::string config, out;
  std::vector<std::string> tokenizer_files;
  uint64_t seed = 0;
  bool force = false;
};

// "path" or "path:name" (the name the file gets in the model directory, e.g. gpt2_vocab.json:vocab.json).
std::pair<fs::path, std::string> split_file_spec(const std::string& spec) {
  const auto colon = spec.rfind(':');
  if (colon == std::string::npos || colon == 0) return {fs::path(spec), fs::path(spec).filename().string()};
  return {fs::path(spec.substr(0, colon)), spec.substr(colon + 1)};
}

int run(const InitFlags& f) {
  const fs::path out(f.out);
  FUSELLM_CHECK(f.force || !fs::exists(out / "config.json"),
                "{}: already holds a model (config.json); pass --force to overwrite it", out.string());
  json config = parse_json_file(f.config);
  FUSELLM_CHECK(config.is_object(), "{}: expected a JSON object (a config.json template)", f.config);
  fs::create_directories(out);
  for (const std::string& spec : f.tokenizer_files) {
    const auto [from, name] = split_file_spec(spec);
    FUSELLM_CHECK(fs::is_regular_file(from), "--tokenizer {}: no such file", from.string());
    write_file_atomic(out / name, read_file(from));
  }
  if (!config.contains("vocab_size")) {
    FUSELLM_CHECK(!f.tokenizer_files.empty(), "{}: no vocab_size and no --tokenizer to take it from", f.config);
    config["vocab_size"] = tok::load_tokenizer(out)->vocab_size();
  }
  model::write_random_model(out, config, f.seed);
  std::cout << fmt::format("wrote {} ({}, vocab {}, seed {})\n", out.string(), config.value("model_type", "?"),
                           config["vocab_size"].dump(), f.seed);
  return 0;
}

cli::Action setup(CLI::App& app) {
  auto f = std::make_shared<InitFlags>();
  app.add_option("--config", f->config, "config.json template (model_type and the family's keys)")->required();
  app.add_option("--tokenizer", f->tokenizer_files,
                 "tokenizer file to copy in, as PATH or PATH:NAME (repeatable; e.g. 20B_tokenizer.json:tokenizer.json)");
  app.add_option("--out", f->out, "output model directory")->required();
  app.add_option("--seed", f->seed, "random seed")->capture_default_str();
  app.add_flag("--force", f->force, "overwrite an existing model in --out");
  return [f] { return run(*f); };
}

}  // namespace
FUSELLM_COMMAND_NAMED(init_model, "init-model",
                      "Write a randomly initialized HF model directory (smoke tests, dry runs)", setup);
