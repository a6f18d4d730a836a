#include "cli_common.hpp"

#include <sstream>

#include "fusellm/util/device.hpp"
#include "fusellm/util/error.hpp"
#include "fusellm/util/json.hpp"

namespace fusellm::cli {

std::vector<int64_t> parse_id_list(const std::string& text, const std::string& flag) {
  std::vector<int64_t> ids;
  std::stringstream in(text);
  std::string item;
  while (std::getline(in, item, ',')) {
    auto b = item.find_first_not_of(" \t");
    auto e = item.find_last_not_of(" \t");
    if (b == std::string::npos) fail("{}: empty item in '{}'", flag, text);
    item = item.substr(b, e - b + 1);
    size_t used = 0;
    long long v = 0;
    try {
      v = std::stoll(item, &used);
    } catch (const std::exception&) {
      used = 0;
    }
    if (used != item.size() || v < 0) fail("{}: '{}' is not a token id (expected e.g. 1,2,3)", flag, item);
    ids.push_back(v);
  }
  if (ids.empty()) fail("{}: no token ids given", flag);
  return ids;
}

io::LoadOptions load_options(const std::string& dtype, const std::string& device) {
  io::LoadOptions options;
  if (dtype == "fp32" || dtype == "float32") options.dtype = at::kFloat;
  else if (dtype == "bf16" || dtype == "bfloat16") options.dtype = at::kBFloat16;
  else if (dtype == "fp16" || dtype == "float16") options.dtype = at::kHalf;
  else if (dtype != "auto") fail("--dtype: unknown dtype '{}' (fp32, bf16, fp16, auto)", dtype);
  options.device = parse_device(device);
  return options;
}

std::unique_ptr<tok::Tokenizer> open_tokenizer(const std::string& model_dir, const std::string& tokenizer,
                                               bool required) {
  if (!tokenizer.empty()) return tok::load_tokenizer(tokenizer);
  if (!required) {
    // Only try when the directory has tokenizer files; otherwise --ids is the way in.
    const fs::path dir(model_dir);
    for (const char* f : {"tokenizer.json", "tokenizer.model", "vocab.json"}) {
      if (fs::exists(dir / f)) return tok::load_tokenizer(dir);
    }
    return nullptr;
  }
  return tok::load_tokenizer(model_dir);
}

std::vector<int64_t> input_ids(const std::string& ids_flag, const std::string& text,
                               const tok::Tokenizer* tokenizer, const std::string& text_flag) {
  if (!ids_flag.empty()) return parse_id_list(ids_flag, "--ids");
  if (!tokenizer) fail("{} needs a tokenizer: the model directory has none; pass --tokenizer", text_flag);
  auto ids32 = tokenizer->encode_ids(text, /*add_special_tokens=*/true);
  return {ids32.begin(), ids32.end()};
}

std::string json_escape_token(const std::string& token) { return json(token).dump(-1, ' ', false, json::error_handler_t::replace); }

std::vector<std::string> split_commas(const std::string& text) {
  std::vector<std::string> out;
  size_t start = 0;
  while (start <= text.size()) {
    size_t comma = text.find(',', start);
    if (comma == std::string::npos) comma = text.size();
    std::string item = text.substr(start, comma - start);
    item.erase(0, item.find_first_not_of(' '));
    item.erase(item.find_last_not_of(' ') + 1);
    if (!item.empty()) out.push_back(item);
    start = comma + 1;
  }
  return out;
}

}  // namespace fusellm::cli
