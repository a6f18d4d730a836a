// Loads a Hugging Face tokenizer.json (see docs/formats.md for what is supported).
#include "fusellm/util/json.hpp"
#include "hf_tokenizer.hpp"
#include "hf_tokenizer_impl.hpp"

namespace fusellm::tok {
namespace {

using hf::HfParts;
using hf::PostStep;

std::unique_ptr<hf::BpeModel> parse_model(const json& model, const std::string& source) {
  if (!model.is_object()) fail("{}: 'model' must be a JSON object", source);
  std::string type = model.contains("type") && model["type"].is_string() ? model["type"].get<std::string>()
                     : model.contains("merges")                           ? "BPE"
                                                                          : "(none)";
  if (type != "BPE") fail("{}: model type '{}' is not supported (only BPE)", source, type);
  if (model.contains("dropout") && !model["dropout"].is_null())
    fail("{}: model.dropout must be null (BPE dropout is for training only)", source);
  if (!model.contains("vocab") || !model["vocab"].is_object()) fail("{}: model.vocab must be an object", source);
  if (!model.contains("merges") || !model["merges"].is_array()) fail("{}: model.merges must be an array", source);

  std::vector<std::pair<std::string, int32_t>> vocab;
  vocab.reserve(model["vocab"].size());
  for (const auto& [token, id] : model["vocab"].items()) {
    if (!id.is_number_integer()) fail("{}: model.vocab['{}'] must be an integer id", source, token);
    vocab.emplace_back(token, id.get<int32_t>());
  }
  std::vector<std::pair<std::string, std::string>> merges;
  merges.reserve(model["merges"].size());
  size_t rank = 0;
  for (const auto& m : model["merges"]) {
    if (m.is_string()) {  // "a b"
      const std::string& s = m.get_ref<const std::string&>();
      size_t space = s.find(' ');
      if (space == std::string::npos || s.find(' ', space + 1) != std::string::npos)
        fail("{}: model.merges[{}] '{}' is not two tokens separated by one space", source, rank, s);
      merges.emplace_back(s.substr(0, space), s.substr(space + 1));
    } else if (m.is_array() && m.size() == 2 && m[0].is_string() && m[1].is_string()) {  // ["a", "b"]
      merges.emplace_back(m[0].get<std::string>(), m[1].get<std::string>());
    } else {
      fail("{}: model.merges[{}] must be \"a b\" or [\"a\", \"b\"]", source, rank);
    }
    ++rank;
  }
  auto optional_string = [&](const char* key) -> std::optional<std::string> {
    if (!model.contains(key) || model[key].is_null()) return std::nullopt;
    if (!model[key].is_string()) fail("{}: model.{} must be a string or null", source, key);
    return model[key].get<std::string>();
  };
  hf::BpeOptions options;
  options.unk_token = optional_string("unk_token");
  options.byte_fallback = model.value("byte_fallback", false);
  options.fuse_unk = model.value("fuse_unk", false);
  options.ignore_merges = model.value("ignore_merges", false);
  options.continuing_subword_prefix = optional_string("continuing_subword_prefix").value_or("");
  options.end_of_word_suffix = optional_string("end_of_word_suffix").value_or("");
  return std::make_unique<hf::BpeModel>(vocab, merges, std::move(options), source);
}

std::vector<hf::AddedToken> parse_added_tokens(const json& j, const std::string& source) {
  std::vector<hf::AddedToken> tokens;
  if (j.is_null()) return tokens;
  if (!j.is_array()) fail("{}: 'added_tokens' must be an array", source);
  for (size_t i = 0; i < j.size(); ++i) {
    const json& t = j[i];
    if (!t.is_object() || !t.contains("id") || !t["id"].is_number_integer() || !t.contains("content") ||
        !t["content"].is_string())
      fail("{}: added_tokens[{}] needs an integer 'id' and a string 'content'", source, i);
    hf::AddedToken token;
    token.id = t["id"].get<int32_t>();
    token.content = t["content"].get<std::string>();
    token.special = t.value("special", false);
    token.lstrip = t.value("lstrip", false);
    token.rstrip = t.value("rstrip", false);
    token.single_word = t.value("single_word", false);
    token.normalized = t.value("normalized", !token.special);
    tokens.push_back(std::move(token));
  }
  return tokens;
}

void parse_post_processor(const json& j, const std::string& source, std::vector<PostStep>& steps) {
  if (j.is_null()) return;
  if (!j.is_object()) fail("{}: post_processor must be a JSON object", source);
  std::string type = hf::component_string(j, "type", source, "post_processor");
  if (type == "ByteLevel") {
    if (j.value("trim_offsets", true))
      steps.push_back({PostStep::Kind::ByteLevelTrim, j.value("add_prefix_space", true), {}});
    return;
  }
  if (type == "Sequence") {
    if (!j.contains("processors") || !j["processors"].is_array())
      fail("{}: post_processor Sequence needs an array 'processors'", source);
    for (const auto& p : j["processors"]) parse_post_processor(p, source, steps);
    return;
  }
  if (type == "TemplateProcessing") {
    if (!j.contains("single") || !j["single"].is_array())
      fail("{}: post_processor TemplateProcessing needs an array 'single'", source);
    const json& specials = j.contains("special_tokens") ? j["special_tokens"] : json::object();
    PostStep step{PostStep::Kind::Template, false, {}};
    for (const auto& item : j["single"]) {
      if (item.contains("Sequence")) {
        step.items.emplace_back();
      } else if (item.contains("SpecialToken") && item["SpecialToken"].contains("id")) {
        std::string name = item["SpecialToken"]["id"].get<std::string>();
        if (!specials.contains(name) || !specials[name].contains("ids") || !specials[name]["ids"].is_array())
          fail("{}: post_processor TemplateProcessing: special token '{}' is not in special_tokens", source, name);
        std::vector<int32_t> ids = specials[name]["ids"].get<std::vector<int32_t>>();
        if (ids.empty()) continue;
        step.items.push_back(std::move(ids));
      } else {
        fail("{}: post_processor TemplateProcessing: unknown template item {}", source, item.dump());
      }
    }
    steps.push_back(std::move(step));
    return;
  }
  fail("{}: post_processor type '{}' is not supported (supported: ByteLevel, TemplateProcessing, Sequence)",
       source, type);
}

bool mentions_byte_level(const json& j) {
  if (j.is_object()) {
    if (j.contains("type") && j["type"] == "ByteLevel") return true;
    for (const auto& [key, value] : j.items())
      if (mentions_byte_level(value)) return true;
  } else if (j.is_array()) {
    for (const auto& value : j)
      if (mentions_byte_level(value)) return true;
  }
  return false;
}

}  // namespace

std::unique_ptr<Tokenizer> load_hf_tokenizer_json(const fs::path& tokenizer_json) {
  std::string source = tokenizer_json.string();
  std::string text = read_file(tokenizer_json);
  json j = parse_json_text(text, source);
  if (!j.is_object()) fail("{}: not a tokenizer.json (expected a JSON object)", source);
  if (!j.contains("model")) fail("{}: not a tokenizer.json (no 'model')", source);
  auto component = [&](const char* key) -> const json& {
    static const json null_json;
    return j.contains(key) ? j[key] : null_json;
  };

  HfParts parts;
  parts.source = source;
  parts.hash = hf::hash_files({{tokenizer_json.filename().string(), &text}});
  parts.model = parse_model(j["model"], source);
  if (!component("normalizer").is_null()) parts.normalizer = hf::make_normalizer(component("normalizer"), source);
  parts.added = hf::AddedVocabulary(parse_added_tokens(component("added_tokens"), source), parts.normalizer.get());
  if (!component("pre_tokenizer").is_null())
    parts.pre_tokenizer = hf::make_pre_tokenizer(component("pre_tokenizer"), source);
  if (!component("decoder").is_null()) parts.decoder = hf::make_decoder(component("decoder"), source);
  parse_post_processor(component("post_processor"), source, parts.post);
  parts.space_marker = mentions_byte_level(component("pre_tokenizer")) || mentions_byte_level(component("decoder"))
                           ? "\xC4\xA0"
                           : "\xE2\x96\x81";
  return std::make_unique<hf::HfTokenizer>(std::move(parts));
}

}  // namespace fusellm::tok
