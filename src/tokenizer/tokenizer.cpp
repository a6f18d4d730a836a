// Tokenizer::encode_batch and load_tokenizer: which files a tokenizer directory resolves to, the
// Hugging Face config files applied on top, and the content hash of everything that was read.
#include "fusellm/tokenizer/tokenizer.hpp"

#include <xxhash.h>

#include <algorithm>
#include <atomic>
#include <exception>
#include <mutex>
#include <thread>

#include "fusellm/tokenizer/sentencepiece.hpp"
#include "fusellm/util/error.hpp"
#include "fusellm/util/json.hpp"
#include "fusellm/util/log.hpp"
#include "hf_tokenizer.hpp"

namespace fusellm::tok {

Encoding Tokenizer::encode_untrimmed(std::string_view text, bool add_special_tokens) const {
  Encoding enc = encode_raw_offsets(text, add_special_tokens);
  auto& spans = enc.offsets;
  const auto n = static_cast<uint32_t>(text.size());
  // 1. Non-empty spans tile [0, n): a gap goes to the token before it (a composed-away combining mark
  //    belongs to its base character, dropped trailing whitespace to the last word), a leading gap to the
  //    first token.
  uint32_t covered = 0;
  size_t last = spans.size();  // the last non-empty span so far
  for (size_t i = 0; i < spans.size(); ++i) {
    auto& [begin, end] = spans[i];
    if (begin >= end) continue;
    if (begin > covered) {
      if (last == spans.size()) begin = 0;
      else spans[last].second = begin;
    }
    covered = std::max(covered, end);
    last = i;
  }
  if (last < spans.size() && covered < n) spans[last].second = n;
  // 2. Empty spans sit where the covered prefix ends.
  covered = 0;
  for (auto& [begin, end] : spans) {
    if (begin >= end) begin = end = covered;
    else covered = std::max(covered, end);
  }
  return enc;
}

std::vector<Encoding> Tokenizer::encode_batch(const std::vector<std::string>& texts, bool add_special_tokens,
                                              int threads) const {
  std::vector<Encoding> out(texts.size());
  size_t workers = threads > 0 ? static_cast<size_t>(threads) : std::max(1u, std::thread::hardware_concurrency());
  workers = std::min(workers, texts.size());
  if (workers <= 1) {
    for (size_t i = 0; i < texts.size(); ++i) out[i] = encode(texts[i], add_special_tokens);
    return out;
  }
  std::atomic<size_t> next{0};
  std::exception_ptr error;
  std::mutex error_mutex;
  auto work = [&] {
    for (size_t i; (i = next.fetch_add(1)) < texts.size();) {
      try {
        out[i] = encode(texts[i], add_special_tokens);
      } catch (...) {
        std::lock_guard<std::mutex> lock(error_mutex);
        if (!error) error = std::current_exception();
        next = texts.size();  // stop everyone
      }
    }
  };
  std::vector<std::thread> pool;
  for (size_t t = 0; t < workers; ++t) pool.emplace_back(work);
  for (auto& t : pool) t.join();
  if (error) std::rethrow_exception(error);
  return out;
}

namespace {

// XXH3-64 over, for each file in load order: its file name, a NUL, its size (8 bytes little-endian) and
// its bytes. File names rather than paths, so the same tokenizer files hash alike wherever they live.
class ContentHash {
 public:
  ContentHash() : state_(XXH3_createState()) { XXH3_64bits_reset(state_); }
  ~ContentHash() { XXH3_freeState(state_); }
  ContentHash(const ContentHash&) = delete;
  ContentHash& operator=(const ContentHash&) = delete;

  void add_file(const fs::path& path) {
    const std::string name = path.filename().string();
    const std::string data = read_file(path);
    XXH3_64bits_update(state_, name.data(), name.size() + 1);  // include the terminating NUL
    uint8_t size[8];
    for (int i = 0; i < 8; ++i) size[i] = static_cast<uint8_t>(static_cast<uint64_t>(data.size()) >> (8 * i));
    XXH3_64bits_update(state_, size, sizeof size);
    XXH3_64bits_update(state_, data.data(), data.size());
  }
  std::string hex() const { return fmt::format("{:016x}", XXH3_64bits_digest(state_)); }

 private:
  XXH3_state_t* state_;
};

// A special-token entry of tokenizer_config.json / special_tokens_map.json: "text", {"content": "text"},
// or null (no such token). Returns false when the key is absent.
bool read_special(const json& config, const std::string& key, const fs::path& file, std::optional<std::string>& text) {
  if (!config.contains(key)) return false;
  const json& v = config[key];
  if (v.is_null()) {
    text.reset();
  } else if (v.is_string()) {
    text = v.get<std::string>();
  } else if (v.is_object() && v.contains("content") && v["content"].is_string()) {
    text = v["content"].get<std::string>();
  } else {
    fail("{}: key '{}': expected a string, an object with \"content\", or null", file.string(), key);
  }
  return true;
}

// Applies one Hugging Face config file on top of what the tokenizer file itself defines.
void apply_config(Tokenizer& tokenizer, const fs::path& file) {
  const json config = parse_json_file(file);
  if (!config.is_object()) fail("{}: expected a JSON object", file.string());
  JsonView view(config, file.string());
  SpecialTokens& special = tokenizer.special_tokens();
  special.add_bos = view.get_or<bool>("add_bos_token", special.add_bos);
  special.add_eos = view.get_or<bool>("add_eos_token", special.add_eos);
  const std::pair<const char*, std::optional<int32_t> SpecialTokens::*> slots[] = {
      {"bos_token", &SpecialTokens::bos},
      {"eos_token", &SpecialTokens::eos},
      {"unk_token", &SpecialTokens::unk},
      {"pad_token", &SpecialTokens::pad}};
  for (const auto& [key, slot] : slots) {
    std::optional<std::string> text;
    if (!read_special(config, key, file, text)) continue;
    if (!text) {
      special.*slot = std::nullopt;
      continue;
    }
    if (auto id = tokenizer.token_to_id(*text)) {
      special.*slot = *id;
    } else {
      // Hugging Face would append a new token; fusellm never grows a vocabulary behind the model's back.
      spdlog::warn("{}: {} '{}' is not in the vocabulary; ignored", file.string(), key, *text);
    }
  }
}

std::unique_ptr<Tokenizer> load_file(const fs::path& file, ContentHash& hash) {
  const std::string name = file.filename().string();
  std::unique_ptr<Tokenizer> tokenizer;
  if (name == "vocab.json") {
    const fs::path merges = file.parent_path() / "merges.txt";
    if (!fs::is_regular_file(merges)) fail("{}: GPT-2 vocabulary needs merges.txt beside it ({} is missing)", file.string(), merges.string());
    tokenizer = load_gpt2_vocab_merges(file, merges);
    hash.add_file(file);
    hash.add_file(merges);
  } else if (file.extension() == ".json") {
    tokenizer = load_hf_tokenizer_json(file);
    hash.add_file(file);
  } else {
    tokenizer = SentencePieceTokenizer::from_file(file);
    hash.add_file(file);
  }
  return tokenizer;
}

}  // namespace

namespace {

std::unique_ptr<Tokenizer> load_tokenizer_checked(const fs::path& dir_or_file) {
  std::error_code ec;
  const auto status = fs::status(dir_or_file, ec);
  if (!fs::exists(status)) fail("{}: tokenizer path does not exist", dir_or_file.string());

  ContentHash hash;
  if (!fs::is_directory(status)) {
    auto tokenizer = load_file(dir_or_file, hash);
    tokenizer->set_origin(dir_or_file.string(), hash.hex());
    return tokenizer;
  }

  const fs::path& dir = dir_or_file;
  std::unique_ptr<Tokenizer> tokenizer;
  if (fs::is_regular_file(dir / "tokenizer.json")) {
    tokenizer = load_file(dir / "tokenizer.json", hash);
  } else if (fs::is_regular_file(dir / "tokenizer.model")) {
    tokenizer = load_file(dir / "tokenizer.model", hash);
  } else if (fs::is_regular_file(dir / "vocab.json") && fs::is_regular_file(dir / "merges.txt")) {
    tokenizer = load_file(dir / "vocab.json", hash);
  } else {
    fail("{}: no tokenizer found (expected tokenizer.json, tokenizer.model, or vocab.json + merges.txt)", dir.string());
  }
  // special_tokens_map.json overrides tokenizer_config.json, as in transformers' from_pretrained.
  for (const char* config : {"tokenizer_config.json", "special_tokens_map.json"}) {
    if (!fs::is_regular_file(dir / config)) continue;
    apply_config(*tokenizer, dir / config);
    hash.add_file(dir / config);
  }
  tokenizer->set_origin(dir.string(), hash.hex());
  return tokenizer;
}

}  // namespace

std::unique_ptr<Tokenizer> load_tokenizer(const fs::path& dir_or_file) {
  return with_json_errors(dir_or_file.string(), [&] { return load_tokenizer_checked(dir_or_file); });
}

}  // namespace fusellm::tok
