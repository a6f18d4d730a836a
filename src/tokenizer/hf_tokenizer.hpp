#pragma once
// Factories for the Hugging Face tokenizer formats (implemented in hf_*.cpp). load_tokenizer()
// (tokenizer.cpp) picks one of these or the native SentencePiece reader.
#include <memory>

#include "fusellm/tokenizer/tokenizer.hpp"

namespace fusellm::tok {

// A tokenizer.json file (model BPE: byte-level like GPT-2/NeoX, or byte-fallback like Llama).
std::unique_ptr<Tokenizer> load_hf_tokenizer_json(const fs::path& tokenizer_json);

// GPT-2 style vocab.json + merges.txt (byte-level BPE).
std::unique_ptr<Tokenizer> load_gpt2_vocab_merges(const fs::path& vocab_json, const fs::path& merges_txt);

}  // namespace fusellm::tok
