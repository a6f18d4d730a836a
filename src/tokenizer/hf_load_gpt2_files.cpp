// Loads GPT-2 style vocab.json + merges.txt as Hugging Face's GPT2TokenizerFast builds them: byte-level BPE
// with GPT-2's pre-tokenization regex, no prefix space, and "<|endoftext|>" as the special token.
#include "byte_level.hpp"
#include "fusellm/util/json.hpp"
#include "hf_tokenizer.hpp"
#include "hf_tokenizer_impl.hpp"

namespace fusellm::tok {

std::unique_ptr<Tokenizer> load_gpt2_vocab_merges(const fs::path& vocab_json, const fs::path& merges_txt) {
  std::string vocab_source = vocab_json.string(), merges_source = merges_txt.string();
  std::string vocab_text = read_file(vocab_json);
  std::string merges_text = read_file(merges_txt);
  json j = parse_json_text(vocab_text, vocab_source);
  if (!j.is_object()) fail("{}: expected a JSON object mapping tokens to ids", vocab_source);
  std::vector<std::pair<std::string, int32_t>> vocab;
  vocab.reserve(j.size());
  for (const auto& [token, id] : j.items()) {
    if (!id.is_number_integer()) fail("{}: the id of '{}' must be an integer", vocab_source, token);
    vocab.emplace_back(token, id.get<int32_t>());
  }

  std::vector<std::pair<std::string, std::string>> merges;
  size_t line_number = 0;
  for (size_t pos = 0; pos < merges_text.size();) {
    size_t eol = merges_text.find('\n', pos);
    if (eol == std::string::npos) eol = merges_text.size();
    std::string line = merges_text.substr(pos, eol - pos);
    pos = eol + 1;
    ++line_number;
    if (!line.empty() && line.back() == '\r') line.pop_back();
    if (line.empty() || line.rfind("#version", 0) == 0) continue;
    size_t space = line.find(' ');
    if (space == std::string::npos || line.find(' ', space + 1) != std::string::npos)
      fail("{}: line {}: expected two tokens separated by one space, got '{}'", merges_source, line_number, line);
    merges.emplace_back(line.substr(0, space), line.substr(space + 1));
  }

  hf::HfParts parts;
  parts.source = vocab_source;
  parts.hash = hf::hash_files({{vocab_json.filename().string(), &vocab_text}, {merges_txt.filename().string(), &merges_text}});
  // Errors about merges name merges.txt; the model itself is described by both files.
  parts.model = std::make_unique<hf::BpeModel>(vocab, merges, hf::BpeOptions{}, merges_source);
  std::vector<hf::AddedToken> added;
  if (auto eot = parts.model->token_to_id("<|endoftext|>")) {
    hf::AddedToken t;
    t.id = *eot;
    t.content = "<|endoftext|>";
    t.special = true;
    t.normalized = false;
    added.push_back(t);
  }
  parts.added = hf::AddedVocabulary(std::move(added), nullptr);
  parts.pre_tokenizer = hf::make_pre_tokenizer(
      json{{"type", "ByteLevel"}, {"add_prefix_space", false}, {"trim_offsets", true}, {"use_regex", true}}, vocab_source);
  parts.decoder = hf::make_decoder(json{{"type", "ByteLevel"}}, vocab_source);
  parts.post.push_back({hf::PostStep::Kind::ByteLevelTrim, false, {}});
  parts.space_marker = "\xC4\xA0";
  auto tokenizer = std::make_unique<hf::HfTokenizer>(std::move(parts));
  if (auto eot = tokenizer->token_to_id("<|endoftext|>")) {
    auto& special = tokenizer->special_tokens();
    special.bos = special.eos = special.unk = *eot;
  }
  return tokenizer;
}

}  // namespace fusellm::tok
