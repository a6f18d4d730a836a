#pragma once
// Shared pieces of the training tests: the stories260K target, token documents from the test corpora.
#include <string>
#include <vector>

#include "common/test_paths.hpp"
#include "fusellm/tokenizer/tokenizer.hpp"
#include "fusellm/model/causal_lm.hpp"
#include "fusellm/train/precision.hpp"
#include "fusellm/train/trainer.hpp"
#include "fusellm/util/fs.hpp"

namespace fusellm::test {

inline fs::path stories_dir() { return shared_dir() / "data" / "models" / "stories260K-hf"; }

// The training settings the train tests start from (a few quick steps on stories260K); each test changes
// what it is about.
inline train::TrainConfig small_train_config(const fs::path& output_dir) {
  train::TrainConfig c;
  c.lr = 5e-3;
  c.weight_decay = 0.01;
  c.warmup_steps = 2;
  c.max_steps = 10;
  c.micro_batch = 2;
  c.grad_accum = 2;
  c.max_length = 32;
  c.save_every = 0;
  c.keep_last = 1;
  c.log_every = 100;
  c.output_dir = output_dir;
  return c;
}

// A Trainer on stories260K (fp32 weights, fp64 with c.precision = "fp64"; torch seeded from the config, no
// progress bar).
inline std::unique_ptr<train::Trainer> stories_trainer(const train::TrainConfig& c,
                                                       std::unique_ptr<train::TrainBatchSource> source,
                                                       train::LossFn loss, bool resume = false) {
  at::manual_seed(c.seed);
  io::LoadOptions load;
  load.dtype = train::master_dtype(train::resolve_precision(c.precision, at::Device(at::kCPU)));
  train::TrainerOptions o;
  o.config = c;
  o.model_dir = stories_dir();
  o.resume = resume;
  o.quiet = true;
  return std::make_unique<train::Trainer>(o, model::load_model(stories_dir(), load), std::move(source),
                                          std::move(loss));
}


// Paragraphs of tiny Shakespeare (first `bytes` bytes), tokenized with the stories tokenizer.
inline std::vector<std::vector<int64_t>> shakespeare_documents(size_t bytes) {
  std::string text = read_file(shared_dir() / "data" / "corpus" / "tinyshakespeare.txt").substr(0, bytes);
  auto tokenizer = tok::load_tokenizer(stories_dir());
  std::vector<std::vector<int64_t>> docs;
  size_t pos = 0;
  while (pos < text.size()) {
    size_t end = text.find("\n\n", pos);
    if (end == std::string::npos) end = text.size();
    auto ids = tokenizer->encode_ids(text.substr(pos, end - pos), true);
    docs.emplace_back(ids.begin(), ids.end());
    pos = end + 2;
  }
  return docs;
}

}  // namespace fusellm::test
