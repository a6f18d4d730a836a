#pragma once
// Tiny freshly initialized source models with real tokenizers from ../shared (linked, never copied): a
// GPT-NeoX with the GPT-NeoX-20B tokenizer and an MPT with the GPT-2 BPE, for pipeline tests.
#include <filesystem>
#include <string>
#include <utility>
#include <vector>

#include "common/test_paths.hpp"
#include "fusellm/model/random_init.hpp"
#include "fusellm/tokenizer/tokenizer.hpp"
#include "fusellm/util/fs.hpp"
#include "fusellm/util/json.hpp"

namespace fusellm::test {

// A model directory whose tokenizer files are links to the shared test material (never copies).
// Both BPE vocabularies end with <|endoftext|>, their BOS/EOS as in the HF repos' tokenizer_config.json
// (the repository's configs/models/endoftext-tokenizer_config.json, which the tiny CPU script uses too).
inline void link_tokenizer(const fs::path& dir, const std::vector<std::pair<fs::path, std::string>>& files) {
  fs::create_directories(dir);
  for (const auto& [from, name] : files) fs::create_symlink(from, dir / name);
  fs::create_symlink(source_dir() / "configs/models/endoftext-tokenizer_config.json",
                     dir / "tokenizer_config.json");
}

inline fs::path make_neox_source(const fs::path& dir) {
  const fs::path tokenizer = shared_dir() / "data/tokenizers/gpt-neox-20b/20B_tokenizer.json";
  link_tokenizer(dir, {{tokenizer, "tokenizer.json"}});
  const int64_t vocab = tok::load_tokenizer(dir)->vocab_size();
  model::write_random_model(dir,
                            {{"model_type", "gpt_neox"}, {"vocab_size", vocab}, {"hidden_size", 32},
                             {"intermediate_size", 64}, {"num_attention_heads", 4}, {"num_hidden_layers", 2},
                             {"max_position_embeddings", 256}, {"rotary_pct", 0.25}, {"hidden_act", "gelu"},
                             {"use_parallel_residual", true}, {"layer_norm_eps", 1e-5}, {"bos_token_id", 0},
                             {"eos_token_id", 0}, {"tie_word_embeddings", false}},
                            11);
  return dir;
}

inline fs::path make_mpt_source(const fs::path& dir) {
  const fs::path gpt2 = shared_dir() / "data/tokenizers/gpt2";
  link_tokenizer(dir, {{gpt2 / "gpt2_vocab.json", "vocab.json"}, {gpt2 / "gpt2_merges.txt", "merges.txt"}});
  const int64_t vocab = tok::load_tokenizer(dir)->vocab_size();
  model::write_random_model(dir,
                            {{"model_type", "mpt"}, {"vocab_size", vocab}, {"d_model", 32}, {"n_heads", 4},
                             {"n_layers", 2}, {"expansion_ratio", 2}, {"max_seq_len", 256}, {"no_bias", true},
                             {"attn_config", {{"alibi", true}, {"alibi_bias_max", 8}}}},
                            12);
  return dir;
}

}  // namespace fusellm::test
