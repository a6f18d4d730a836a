// `fusellm inspect MODEL_DIR [--json]`: what an HF checkpoint directory holds, read without loading weights.
#include <iostream>
#include <map>

#include "command.hpp"
#include "inspect_aligned.hpp"
#include "inspect_store.hpp"
#include "fusellm/io/checkpoint.hpp"
#include "fusellm/io/safetensors.hpp"
#include "fusellm/model/causal_lm.hpp"
#include "fusellm/model/registry.hpp"
#include "fusellm/util/error.hpp"
#include "fusellm/util/json.hpp"

namespace {

using namespace fusellm;

const char* kTokenizerFiles[] = {"tokenizer.json", "tokenizer.model", "vocab.json", "merges.txt",
                                 "tokenizer_config.json", "special_tokens_map.json"};

int inspect_model(const fs::path& dir, bool as_json) {
  model::ModelConfig config = model::read_model_config(dir);
  auto supported = model::registered_model_types();
  bool known = std::find(supported.begin(), supported.end(), config.model_type) != supported.end();
  auto reader = io::open_checkpoint(dir);
  int64_t parameters = 0;
  std::map<std::string, int64_t> dtype_counts;
  auto names = reader->names();
  for (const auto& name : names) {
    int64_t n = 1;
    for (int64_t d : reader->shape(name)) n *= d;
    parameters += n;
    dtype_counts[io::dtype_name(reader->dtype(name))] += n;
  }
  std::vector<std::string> tokenizer_files;
  for (const char* f : kTokenizerFiles) {
    if (fs::exists(dir / f)) tokenizer_files.emplace_back(f);
  }
  if (as_json) {
    json out = {{"path", dir.string()},
                {"model_type", config.model_type},
                {"supported", known},
                {"weights", reader->describe()},
                {"tensors", names.size()},
                {"parameters", parameters},
                {"dtypes", dtype_counts},
                {"vocab_size", config.vocab_size},
                {"hidden_size", config.hidden_size},
                {"layers", config.num_layers},
                {"heads", config.num_heads},
                {"kv_heads", config.num_kv_heads},
                {"context_length", config.max_context},
                {"tie_word_embeddings", config.tie_word_embeddings},
                {"tokenizer_files", tokenizer_files}};
    std::cout << out.dump(2) << "\n";
    return 0;
  }
  std::cout << "model        " << dir.string() << "\n"
            << "family       " << config.model_type << (known ? "" : " (not supported by this build)") << "\n"
            << "weights      " << reader->describe() << ", " << names.size() << " tensors\n"
            << "parameters   " << parameters << " (" << fmt::format("{:.2f}", parameters / 1e6) << " M)\n"
            << "dtypes      ";
  for (auto& [dtype, count] : dtype_counts) std::cout << " " << dtype << ":" << count;
  std::cout << "\n"
            << "shape        vocab " << config.vocab_size << ", hidden " << config.hidden_size << ", layers "
            << config.num_layers << ", heads " << config.num_heads << " (kv " << config.num_kv_heads << ")\n"
            << "context      " << config.max_context << " tokens\n"
            << "tied head    " << (config.tie_word_embeddings ? "yes" : "no") << "\n"
            << "tokenizer   ";
  if (tokenizer_files.empty()) std::cout << " none found";
  for (auto& f : tokenizer_files) std::cout << " " << f;
  std::cout << "\n";
  return 0;
}

cli::Action setup(CLI::App& app) {
  auto path = std::make_shared<std::string>();
  auto as_json = std::make_shared<bool>(false);
  app.add_option("path", *path, "HF model directory or logit store")->required();
  app.add_flag("--json", *as_json, "print JSON");
  auto dump = std::make_shared<uint64_t>(0);
  auto dump_opt = app.add_option("--dump", *dump, "logit store: print this chunk's record in full");
  return [=] {
    fs::path p(*path);
    FUSELLM_CHECK(fs::exists(p), "{}: no such file or directory", p.string());
    FUSELLM_CHECK(fs::is_directory(p), "{}: not a directory", p.string());
    if (cli::is_aligned_store_dir(p)) return cli::inspect_aligned_store(p, *as_json);
    if (cli::is_logit_store(p))
      return cli::inspect_logit_store(p, *as_json, dump_opt->count() ? std::optional<uint64_t>(*dump) : std::nullopt);
    if (fs::exists(p / "config.json")) return inspect_model(p, *as_json);
    fail("{}: nothing to inspect (no config.json)", p.string());
  };
}

}  // namespace
FUSELLM_COMMAND(inspect, "Describe a model directory or a logit store", setup);
