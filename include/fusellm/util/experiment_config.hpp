#pragma once
// The experiment config: one JSON file (comments allowed) naming the models, the corpus and the settings of
// each pipeline stage. Loading validates everything at once and reports every problem with its key path
// ("experiment.json: models[1].role: expected 'source' or 'target', got 'teacher'"); relative paths are
// resolved against the config file's directory. Reference: docs/formats.md.
#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "fusellm/util/error.hpp"
#include "fusellm/util/fs.hpp"
#include "fusellm/util/json.hpp"

namespace fusellm {

// How a plain .txt corpus file is cut into documents.
enum class TxtMode {
  Document,   // the whole file is one document
  Line,       // every non-blank line is a document
  Paragraph,  // blank-line-separated blocks of lines
  Separator,  // blocks separated by a line equal to a marker (e.g. "<|endoftext|>")
};

// What the corpus reader does with a line it cannot use (invalid JSON, missing or non-string text field).
enum class BadLinePolicy { Skip, Fail };

enum class ModelRole { Source, Target };

const char* to_string(TxtMode mode);
const char* to_string(BadLinePolicy policy);
const char* to_string(ModelRole role);

struct ModelEntry {
  std::string name;  // unique; [A-Za-z0-9._-], used in directory names
  fs::path path;     // absolute (resolved against the config's directory)
  ModelRole role = ModelRole::Source;
};

struct DataConfig {
  // Files, directories or glob patterns; relative ones resolved against the config's directory.
  std::vector<std::string> corpus;
  std::string text_field = "text";
  TxtMode txt_mode = TxtMode::Paragraph;
  std::string txt_separator = "<|endoftext|>";
  BadLinePolicy on_bad_line = BadLinePolicy::Fail;
  fs::path chunk_dir;          // default <config dir>/out/<config file stem>/chunks
  int64_t max_length = 2048;   // tokens per chunk, special tokens included
  int64_t margin = 0;          // tokens of headroom kept free below max_length
};

struct InferConfig {
  fs::path store_dir;                 // default <config dir>/out/<config file stem>/store
  int64_t top_k = 10;                 // logits kept per position
  int64_t batch_tokens = 16384;       // padded tokens per forward batch
  std::string dtype = "auto";         // compute dtype: auto | fp32 | fp16 | bf16
  std::optional<bool> add_bos;        // nullopt = "auto": as the model's tokenizer config says
  bool add_eos = true;
  std::string logprob_dtype = "fp16"; // fp16 | bf16
  int64_t shard_records = 4096;       // records per store shard
};

struct ExperimentConfig {
  fs::path config_path;  // the file it was read from (as given)
  fs::path config_dir;   // absolute directory relative paths were resolved against
  std::vector<ModelEntry> models;
  DataConfig data;
  InferConfig infer;
  // Sections of later stages (align, fusion, train, eval), kept unvalidated until their stage reads them.
  std::map<std::string, json> reserved_sections;

  const ModelEntry& target() const;
  std::vector<const ModelEntry*> sources() const;
  const ModelEntry* find_model(const std::string& name) const;
};

// Thrown by the loaders; what() is every problem, one per line; problems() lists them separately.
class ConfigError : public Error {
 public:
  explicit ConfigError(std::vector<std::string> problems);
  const std::vector<std::string>& problems() const { return problems_; }

 private:
  std::vector<std::string> problems_;
};

// Reads and validates a config file. Parse errors throw Error; validation problems throw ConfigError.
ExperimentConfig load_experiment_config(const fs::path& path);

// Validates an already-parsed document; `source` names it in messages and `config_dir` anchors relative paths.
ExperimentConfig experiment_config_from_json(const json& doc, const std::string& source, const fs::path& config_dir);

// The known key closest to `key` by edit distance, or empty when none is close enough to be a likely typo.
std::string closest_key(const std::string& key, const std::vector<std::string>& known);

}  // namespace fusellm
