// tokenizer.json pre-tokenizers: ByteLevel, Split, Metaspace, Digits, Whitespace, WhitespaceSplit,
// CharDelimiterSplit, Sequence. Splitting follows the Rust crate's SplitDelimiterBehavior semantics.
#include <algorithm>

#include "byte_level.hpp"
#include "hf_pipeline.hpp"
#include "hf_regex.hpp"
#include "hf_unicode.hpp"

namespace fusellm::tok::hf {
namespace {

enum class Behavior { Removed, Isolated, MergedWithPrevious, MergedWithNext, Contiguous };

struct Part {
  size_t begin, end;
  bool is_match;
};

// Cuts `s` at the given matches (sorted, non-overlapping) and appends the resulting pieces to `out`.
void split_by_matches(const NormStr& s, const std::vector<std::pair<size_t, size_t>>& matches, Behavior behavior,
                      bool invert, std::vector<NormStr>& out) {
  std::vector<Part> parts;
  size_t last = 0;
  for (auto [b, e] : matches) {
    if (b > last) parts.push_back({last, b, invert});
    parts.push_back({b, e, !invert});
    last = e;
  }
  if (last < s.text.size()) parts.push_back({last, s.text.size(), invert});

  std::vector<Part> kept;
  bool previous_match = false;
  switch (behavior) {
    case Behavior::Removed:
      for (const auto& p : parts)
        if (!p.is_match) kept.push_back(p);
      break;
    case Behavior::Isolated:
      kept = parts;
      break;
    case Behavior::MergedWithPrevious:
      for (const auto& p : parts) {
        if (p.is_match && !previous_match && !kept.empty()) kept.back().end = p.end;
        else kept.push_back(p);
        previous_match = p.is_match;
      }
      break;
    case Behavior::MergedWithNext:
      for (auto it = parts.rbegin(); it != parts.rend(); ++it) {
        if (it->is_match && !previous_match && !kept.empty()) kept.back().begin = it->begin;
        else kept.push_back(*it);
        previous_match = it->is_match;
      }
      std::reverse(kept.begin(), kept.end());
      break;
    case Behavior::Contiguous:
      for (const auto& p : parts) {
        if (p.is_match == previous_match && !kept.empty()) kept.back().end = p.end;
        else kept.push_back(p);
        previous_match = p.is_match;
      }
      break;
  }
  for (const auto& p : kept)
    if (p.end > p.begin) out.push_back(s.slice(p.begin, p.end));
}

Behavior parse_behavior(const json& j, const std::string& source, const char* what) {
  std::string name = component_string(j, "behavior", source, what);
  if (name == "Removed") return Behavior::Removed;
  if (name == "Isolated") return Behavior::Isolated;
  if (name == "MergedWithPrevious") return Behavior::MergedWithPrevious;
  if (name == "MergedWithNext") return Behavior::MergedWithNext;
  if (name == "Contiguous") return Behavior::Contiguous;
  fail("{}: {}: unknown behavior '{}'", source, what, name);
}

// Splits with a regex (Split, Digits, Whitespace).
class RegexSplit : public PreTokenizer {
 public:
  RegexSplit(const std::string& pattern, Behavior behavior, bool invert, const std::string& what)
      : regex_(pattern, what), behavior_(behavior), invert_(invert) {}
  void pre_tokenize(std::vector<NormStr>& pieces) const override {
    materialize_words(pieces);
    std::vector<NormStr> out;
    for (const auto& piece : pieces) split_by_matches(piece, regex_.find_all(piece.text), behavior_, invert_, out);
    pieces = std::move(out);
  }

 private:
  Regex regex_;
  Behavior behavior_;
  bool invert_;
};

class ByteLevel : public PreTokenizer {
 public:
  ByteLevel(bool add_prefix_space, bool use_regex, const std::string& source)
      : add_prefix_space_(add_prefix_space),
        regex_(use_regex ? std::make_unique<Regex>(byte_level::kGpt2Pattern, source + ": ByteLevel") : nullptr) {}
  void pre_tokenize(std::vector<NormStr>& pieces) const override {
    materialize_words(pieces);
    std::vector<NormStr> out;
    for (auto& piece : pieces) {
      if (piece.empty()) continue;
      if (add_prefix_space_ && piece.text[0] != ' ') {
        NormStr prefixed;
        prefixed.append(" ", piece.insertion_point(0));
        prefixed.append(piece, 0, piece.text.size());
        piece = std::move(prefixed);
      }
      // One string per piece in the byte-level alphabet; the regex matches become its words. The GPT-2
      // pattern matches every character, so Isolated splitting is just the matches.
      thread_local std::vector<uint32_t> position;  // where each input byte starts in `mapped`
      NormStr mapped = map_bytes(piece, position);
      if (regex_) {
        size_t last = 0;
        for (auto [b, e] : regex_->find_all(piece.text)) {
          if (b > last) mapped.word_ends.push_back(position[b]);
          mapped.word_ends.push_back(position[e]);
          last = e;
        }
        if (last < piece.text.size()) mapped.word_ends.push_back(position[piece.text.size()]);
      }
      out.push_back(std::move(mapped));
    }
    pieces = std::move(out);
  }

 private:
  // `s` written in the byte-level alphabet; each character keeps its byte's span. position[i] receives
  // where input byte i starts in the result (position[size] = the result's size).
  static NormStr map_bytes(const NormStr& s, std::vector<uint32_t>& position) {
    NormStr out;
    out.text.reserve(2 * s.text.size());
    out.align.reserve(2 * s.text.size());
    position.resize(s.text.size() + 1);
    for (size_t i = 0; i < s.text.size(); ++i) {
      position[i] = static_cast<uint32_t>(out.text.size());
      const std::string& c = byte_level::byte_to_char(static_cast<uint8_t>(s.text[i]));
      out.text += c;
      out.align.push_back(s.align[i]);
      if (c.size() == 2) out.align.push_back(s.align[i]);
    }
    position[s.text.size()] = static_cast<uint32_t>(out.text.size());
    return out;
  }

  bool add_prefix_space_;
  std::unique_ptr<Regex> regex_;
};

class Metaspace : public PreTokenizer {
 public:
  enum class Prepend { Always, First, Never };
  Metaspace(std::string replacement, Prepend prepend, bool split)
      : replacement_(std::move(replacement)), prepend_(prepend), split_(split) {}
  void pre_tokenize(std::vector<NormStr>& pieces) const override {
    materialize_words(pieces);
    std::vector<NormStr> out;
    for (const auto& piece : pieces) {
      NormStr s;
      bool starts_with_replacement = piece.text.rfind(replacement_, 0) == 0 || (!piece.text.empty() && piece.text[0] == ' ');
      bool prepend = prepend_ == Prepend::Always ||
                     (prepend_ == Prepend::First && !piece.empty() && piece.align[0].begin == 0);
      if (prepend && !starts_with_replacement && !piece.empty()) s.append(replacement_, piece.insertion_point(0));
      for (size_t i = 0; i < piece.text.size(); ++i) {
        if (piece.text[i] == ' ') s.append(replacement_, piece.align[i]);
        else s.append(piece, i, i + 1);
      }
      if (!split_) {
        if (!s.empty()) out.push_back(std::move(s));
        continue;
      }
      std::vector<std::pair<size_t, size_t>> matches;
      for (size_t at = s.text.find(replacement_); at != std::string::npos; at = s.text.find(replacement_, at + replacement_.size()))
        matches.emplace_back(at, at + replacement_.size());
      split_by_matches(s, matches, Behavior::MergedWithNext, false, out);
    }
    pieces = std::move(out);
  }

 private:
  std::string replacement_;
  Prepend prepend_;
  bool split_;
};

class WhitespaceSplit : public PreTokenizer {
 public:
  void pre_tokenize(std::vector<NormStr>& pieces) const override {
    materialize_words(pieces);
    std::vector<NormStr> out;
    for (const auto& piece : pieces) {
      std::vector<std::pair<size_t, size_t>> matches;
      for (size_t i = 0; i < piece.text.size();) {
        size_t b = i;
        if (unicode::is_whitespace(unicode::decode_at(piece.text, i))) matches.emplace_back(b, i);
      }
      split_by_matches(piece, matches, Behavior::Removed, false, out);
    }
    pieces = std::move(out);
  }
};

class CharDelimiterSplit : public PreTokenizer {
 public:
  explicit CharDelimiterSplit(std::string delimiter) : delimiter_(std::move(delimiter)) {}
  void pre_tokenize(std::vector<NormStr>& pieces) const override {
    materialize_words(pieces);
    std::vector<NormStr> out;
    for (const auto& piece : pieces) {
      std::vector<std::pair<size_t, size_t>> matches;
      for (size_t at = piece.text.find(delimiter_); at != std::string::npos;
           at = piece.text.find(delimiter_, at + delimiter_.size()))
        matches.emplace_back(at, at + delimiter_.size());
      split_by_matches(piece, matches, Behavior::Removed, false, out);
    }
    pieces = std::move(out);
  }

 private:
  std::string delimiter_;
};

class SequencePreTokenizer : public PreTokenizer {
 public:
  explicit SequencePreTokenizer(std::vector<std::unique_ptr<PreTokenizer>> parts) : parts_(std::move(parts)) {}
  void pre_tokenize(std::vector<NormStr>& pieces) const override {
    for (const auto& p : parts_) p->pre_tokenize(pieces);
  }

 private:
  std::vector<std::unique_ptr<PreTokenizer>> parts_;
};

}  // namespace

std::unique_ptr<PreTokenizer> make_pre_tokenizer(const json& j, const std::string& source) {
  if (!j.is_object()) fail("{}: a pre_tokenizer must be a JSON object", source);
  std::string type = component_string(j, "type", source, "pre_tokenizer");
  if (type == "ByteLevel")
    return std::make_unique<ByteLevel>(j.value("add_prefix_space", true), j.value("use_regex", true), source);
  if (type == "Split") {
    std::string pattern;
    const json& p = j.contains("pattern") ? j["pattern"] : json();
    if (p.is_object() && p.contains("Regex") && p["Regex"].is_string()) pattern = p["Regex"].get<std::string>();
    else if (p.is_object() && p.contains("String") && p["String"].is_string())
      pattern = Regex::escape(p["String"].get<std::string>());
    else fail("{}: pre_tokenizer Split needs a pattern {{\"Regex\": ...}} or {{\"String\": ...}}", source);
    return std::make_unique<RegexSplit>(pattern, parse_behavior(j, source, "pre_tokenizer Split"),
                                        j.value("invert", false), source + ": pre_tokenizer Split");
  }
  if (type == "Metaspace") {
    std::string replacement = j.value("replacement", std::string("\xE2\x96\x81"));
    Metaspace::Prepend prepend = j.value("add_prefix_space", true) ? Metaspace::Prepend::Always : Metaspace::Prepend::Never;
    if (j.contains("prepend_scheme") && j["prepend_scheme"].is_string()) {
      std::string scheme = j["prepend_scheme"].get<std::string>();
      if (scheme == "always") prepend = Metaspace::Prepend::Always;
      else if (scheme == "first") prepend = Metaspace::Prepend::First;
      else if (scheme == "never") prepend = Metaspace::Prepend::Never;
      else fail("{}: pre_tokenizer Metaspace: unknown prepend_scheme '{}'", source, scheme);
    }
    return std::make_unique<Metaspace>(replacement, prepend, j.value("split", true));
  }
  if (type == "Digits")
    return std::make_unique<RegexSplit>("\\p{N}", j.value("individual_digits", false) ? Behavior::Isolated : Behavior::Contiguous,
                                        false, source + ": pre_tokenizer Digits");
  if (type == "Whitespace")
    return std::make_unique<RegexSplit>("\\w+|[^\\w\\s]+", Behavior::Removed, true, source + ": pre_tokenizer Whitespace");
  if (type == "WhitespaceSplit") return std::make_unique<WhitespaceSplit>();
  if (type == "CharDelimiterSplit")
    return std::make_unique<CharDelimiterSplit>(component_string(j, "delimiter", source, "pre_tokenizer CharDelimiterSplit"));
  if (type == "Sequence") {
    if (!j.contains("pretokenizers") || !j["pretokenizers"].is_array())
      fail("{}: pre_tokenizer Sequence needs an array 'pretokenizers'", source);
    std::vector<std::unique_ptr<PreTokenizer>> parts;
    for (const auto& part : j["pretokenizers"]) parts.push_back(make_pre_tokenizer(part, source));
    return std::make_unique<SequencePreTokenizer>(std::move(parts));
  }
  fail("{}: pre_tokenizer type '{}' is not supported (supported: ByteLevel, Split, Metaspace, Digits, "
       "Whitespace, WhitespaceSplit, CharDelimiterSplit, Sequence)",
       source, type);
}

}  // namespace fusellm::tok::hf
