// tokenizer.json normalizers: NFC/NFD/NFKC/NFKD, Lowercase, Strip, Prepend, Replace, Sequence.
#include <optional>

#include "hf_pipeline.hpp"
#include "hf_regex.hpp"
#include "hf_unicode.hpp"

namespace fusellm::tok::hf {

std::string component_string(const json& j, const char* key, const std::string& source, const char* what) {
  if (!j.contains(key) || !j[key].is_string())
    fail("{}: {} needs a string '{}'", source, what, key);
  return j[key].get<std::string>();
}

namespace {

bool is_ascii(std::string_view s) {
  for (char c : s)
    if (static_cast<unsigned char>(c) >= 0x80) return false;
  return true;
}

class UnicodeNormalizer : public Normalizer {
 public:
  explicit UnicodeNormalizer(unicode::NormalForm form) : form_(form) {}
  void normalize(NormStr& s) const override {
    if (is_ascii(s.text)) return;  // ASCII is invariant under every normal form
    NormStr out;
    out.text.reserve(s.text.size());
    out.align.reserve(s.align.size());
    // Normalize segment by segment (a segment starts at a character that never combines with what
    // precedes it), so unchanged segments keep their exact alignment.
    std::u32string segment;
    std::vector<size_t> starts;  // byte offset of each code point of the segment, plus its end
    std::vector<uint32_t> sources;
    std::string bytes;
    size_t i = 0;
    while (i < s.text.size()) {
      size_t begin = i;
      segment.clear();
      starts.assign(1, i);
      segment.push_back(unicode::decode_at(s.text, i));
      starts.push_back(i);
      while (i < s.text.size()) {
        size_t next = i;
        char32_t cp = unicode::decode_at(s.text, next);
        if (unicode::is_segment_start(cp)) break;
        segment.push_back(cp);
        starts.push_back(next);
        i = next;
      }
      if (segment.size() == 1 && segment[0] < 0xA0) {
        out.append(s, begin, i);
        continue;
      }
      std::u32string normalized = unicode::normalize(segment, form_, &sources);
      if (normalized == segment) {
        out.append(s, begin, i);
        continue;
      }
      // Each output character keeps the span of the input character it comes from.
      for (size_t k = 0; k < normalized.size(); ++k) {
        bytes.clear();
        unicode::append_utf8(bytes, normalized[k]);
        out.append(bytes, s.original_span(starts[sources[k]], starts[sources[k] + 1]));
      }
    }
    s = std::move(out);
  }

 private:
  unicode::NormalForm form_;
};

class Lowercase : public Normalizer {
 public:
  void normalize(NormStr& s) const override {
    if (is_ascii(s.text)) {
      for (char& c : s.text)
        if (c >= 'A' && c <= 'Z') c = static_cast<char>(c + 32);
      return;
    }
    NormStr out;
    std::u32string lowered;
    std::string bytes;
    for (size_t i = 0; i < s.text.size();) {
      size_t begin = i;
      char32_t cp = unicode::decode_at(s.text, i);
      lowered.clear();
      unicode::append_lowercase(lowered, cp);
      if (lowered.size() == 1 && lowered[0] == cp) {
        out.append(s, begin, i);
        continue;
      }
      bytes.clear();
      for (char32_t c : lowered) unicode::append_utf8(bytes, c);
      out.append(bytes, s.original_span(begin, i));
    }
    s = std::move(out);
  }
};

class Strip : public Normalizer {
 public:
  Strip(bool left, bool right) : left_(left), right_(right) {}
  void normalize(NormStr& s) const override {
    size_t begin = 0, end = s.text.size();
    if (left_) {
      while (begin < end) {
        size_t next = begin;
        if (!unicode::is_whitespace(unicode::decode_at(s.text, next))) break;
        begin = next;
      }
    }
    if (right_) {
      while (end > begin) {
        size_t start = end - 1;
        while (start > begin && (static_cast<unsigned char>(s.text[start]) & 0xC0) == 0x80) --start;
        size_t at = start;
        if (!unicode::is_whitespace(unicode::decode_at(s.text, at))) break;
        end = start;
      }
    }
    if (begin != 0 || end != s.text.size()) s = s.slice(begin, end);
  }

 private:
  bool left_, right_;
};

class Prepend : public Normalizer {
 public:
  explicit Prepend(std::string prefix) : prefix_(std::move(prefix)) {}
  void normalize(NormStr& s) const override {
    if (s.empty()) return;  // as the Rust crate: nothing is prepended to an empty string
    NormStr out;
    out.append(prefix_, s.insertion_point(0));
    out.append(s, 0, s.text.size());
    s = std::move(out);
  }

 private:
  std::string prefix_;
};

// Replace's pattern: {"String": "..."} (literal) or {"Regex": "..."}.
std::unique_ptr<Regex> make_pattern(const json& j, const std::string& source, const char* what) {
  if (j.contains("pattern") && j["pattern"].is_object()) {
    const json& p = j["pattern"];
    if (p.contains("String") && p["String"].is_string())
      return std::make_unique<Regex>(Regex::escape(p["String"].get<std::string>()), source + ": " + what);
    if (p.contains("Regex") && p["Regex"].is_string())
      return std::make_unique<Regex>(p["Regex"].get<std::string>(), source + ": " + what);
  }
  fail("{}: {} needs a pattern {{\"String\": ...}} or {{\"Regex\": ...}}", source, what);
}

class Replace : public Normalizer {
 public:
  Replace(std::unique_ptr<Regex> pattern, std::string content)
      : pattern_(std::move(pattern)), content_(std::move(content)) {}
  void normalize(NormStr& s) const override {
    auto matches = pattern_->find_all(s.text);
    if (matches.empty()) return;
    NormStr out;
    size_t last = 0;
    for (auto [b, e] : matches) {
      out.append(s, last, b);
      // As Rust's NormalizedString::replace: the new text takes the span of the last character it
      // replaces (of the one before it when the match is empty; nothing at the very start).
      out.append(content_, e > 0 ? s.align[e - 1] : Span{0, 0});
      last = e;
    }
    out.append(s, last, s.text.size());
    s = std::move(out);
  }

 private:
  std::unique_ptr<Regex> pattern_;
  std::string content_;
};

class SequenceNormalizer : public Normalizer {
 public:
  explicit SequenceNormalizer(std::vector<std::unique_ptr<Normalizer>> parts) : parts_(std::move(parts)) {}
  void normalize(NormStr& s) const override {
    for (const auto& p : parts_) p->normalize(s);
  }

 private:
  std::vector<std::unique_ptr<Normalizer>> parts_;
};

}  // namespace

std::unique_ptr<Normalizer> make_normalizer(const json& j, const std::string& source) {
  if (!j.is_object()) fail("{}: a normalizer must be a JSON object", source);
  std::string type = component_string(j, "type", source, "normalizer");
  if (type == "NFC") return std::make_unique<UnicodeNormalizer>(unicode::NormalForm::NFC);
  if (type == "NFD") return std::make_unique<UnicodeNormalizer>(unicode::NormalForm::NFD);
  if (type == "NFKC") return std::make_unique<UnicodeNormalizer>(unicode::NormalForm::NFKC);
  if (type == "NFKD") return std::make_unique<UnicodeNormalizer>(unicode::NormalForm::NFKD);
  if (type == "Lowercase") return std::make_unique<Lowercase>();
  if (type == "Strip")
    return std::make_unique<Strip>(j.value("strip_left", true), j.value("strip_right", true));
  if (type == "Prepend") return std::make_unique<Prepend>(component_string(j, "prepend", source, "normalizer Prepend"));
  if (type == "Replace")
    return std::make_unique<Replace>(make_pattern(j, source, "normalizer Replace"),
                                     component_string(j, "content", source, "normalizer Replace"));
  if (type == "Sequence") {
    if (!j.contains("normalizers") || !j["normalizers"].is_array())
      fail("{}: normalizer Sequence needs an array 'normalizers'", source);
    std::vector<std::unique_ptr<Normalizer>> parts;
    for (const auto& part : j["normalizers"]) parts.push_back(make_normalizer(part, source));
    return std::make_unique<SequenceNormalizer>(std::move(parts));
  }
  fail("{}: normalizer type '{}' is not supported (supported: NFC, NFD, NFKC, NFKD, Lowercase, Strip, "
       "Prepend, Replace, Sequence)",
       source, type);
}

// Shared with the decoders: the pattern of a Replace component.
std::unique_ptr<Regex> make_replace_pattern(const json& j, const std::string& source, const char* what) {
  return make_pattern(j, source, what);
}

}  // namespace fusellm::tok::hf
