// The experiment config (`fusellm run|prepare|infer|align|train --config`): the JSON document, its models,
// data and infer sections, then the train section as the trainer parses it.
#include "fuzz_support.hpp"
#include "fusellm/train/train_config.hpp"
#include "fusellm/util/experiment_config.hpp"
#include "fusellm/util/json.hpp"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace fusellm;
  fuzz::init_quiet_logging();
  const std::string text(reinterpret_cast<const char*>(data), size);
  fuzz::expect_clean_errors("fuzz_experiment_config", [&] {
    const json doc = parse_json_text(text, "config.json");
    // Relative paths resolve against a directory that holds nothing, so no real file is ever read.
    try {
      const ExperimentConfig config = experiment_config_from_json(doc, "config.json", fuzz::scratch_root());
      (void)config.target();
      (void)config.sources();
    } catch (const Error&) {
    }
    if (doc.is_object() && doc.contains("train"))
      (void)train::parse_train_config(doc["train"], "config.json", fuzz::scratch_root(), "config");
  });
  return 0;
}
