#pragma once
// Helpers shared by the CLI subcommands: id lists, dtype/device flags, tokenizer resolution.
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "fusellm/io/checkpoint.hpp"
#include "fusellm/tokenizer/tokenizer.hpp"

namespace fusellm::cli {

// "1, 2,3" → {1,2,3}; throws Error naming `flag` on anything else.
std::vector<int64_t> parse_id_list(const std::string& text, const std::string& flag);

// --dtype (fp32|bf16|fp16|auto) and --device (cpu|cuda|cuda:N) into LoadOptions.
io::LoadOptions load_options(const std::string& dtype, const std::string& device);

// The tokenizer of a model directory, or the one given explicitly; nullptr when `required` is false
// and the directory has none.
std::unique_ptr<tok::Tokenizer> open_tokenizer(const std::string& model_dir, const std::string& tokenizer,
                                               bool required);

// Token ids for --ids or --text/--prompt (encoded with the tokenizer's special-token settings).
std::vector<int64_t> input_ids(const std::string& ids_flag, const std::string& text,
                               const tok::Tokenizer* tokenizer, const std::string& text_flag);

std::string json_escape_token(const std::string& token);

// "a, b,,c" → {"a", "b", "c"}: comma-separated items, spaces around them dropped, empty ones skipped.
std::vector<std::string> split_commas(const std::string& text);

}  // namespace fusellm::cli
