// BPE training and its tokenizer.json (see bpe_trainer.hpp).
#include "fusellm/tokenizer/bpe_trainer.hpp"

#include <algorithm>
#include <cctype>
#include <map>
#include <unordered_map>

#include "byte_level.hpp"
#include "fusellm/util/error.hpp"
#include "hf_regex.hpp"

namespace fusellm::tok {

namespace {

using hf::byte_level::byte_to_char;

const std::string kMetaspace = "\xe2\x96\x81";  // ▁
// GPT-2's pre-tokenizer pattern (what HF's ByteLevel pre-tokenizer with use_regex applies).
const std::string kGpt2Pattern = R"('s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+)";

// The UTF-8 code points of s, each as its own string.
std::vector<std::string> code_point_strings(const std::string& s) {
  std::vector<std::string> out;
  for (size_t i = 0; i < s.size();) {
    const auto c = static_cast<unsigned char>(s[i]);
    const size_t n = c < 0x80 ? 1 : (c >> 5) == 0x6 ? 2 : (c >> 4) == 0xE ? 3 : (c >> 3) == 0x1E ? 4 : 1;
    out.push_back(s.substr(i, n));
    i += n;
  }
  return out;
}

// Words as HF's pre-tokenizer of each style cuts them, with their frequencies.
std::map<std::string, int64_t> count_words(const std::vector<std::string>& texts, const BpeTrainOptions& options) {
  std::map<std::string, int64_t> words;
  if (options.style == BpeStyle::byte_level) {
    const hf::Regex split(kGpt2Pattern, "train-tokenizer: GPT-2 pre-tokenizer");
    const hf::Regex digits("\\p{N}", "train-tokenizer: Digits pre-tokenizer");
    auto add_words = [&](std::string_view text) {
      for (const auto& [b, e] : split.find_all(text)) {
        std::string mapped;
        for (size_t i = b; i < e; ++i) mapped += byte_to_char(static_cast<uint8_t>(text[i]));
        ++words[mapped];
      }
    };
    for (const auto& text : texts) {
      if (!options.split_digits) {
        add_words(text);
        continue;
      }
      // HF Digits(individual_digits) before ByteLevel: every numeral (\p{N}) is a piece of its own, the
      // text between goes through the GPT-2 pattern.
      size_t start = 0;
      for (const auto& [b, e] : digits.find_all(text)) {
        if (b > start) add_words(std::string_view(text).substr(start, b - start));
        add_words(std::string_view(text).substr(b, e - b));
        start = e;
      }
      if (start < text.size()) add_words(std::string_view(text).substr(start));
    }
    return words;
  }
  for (const auto& text : texts) {
    // Metaspace (prepend_scheme "first", split): spaces become ▁, one ▁ in front unless there is one,
    // and a word starts at every ▁.
    std::string s;
    for (char c : text) s += c == ' ' ? kMetaspace : std::string(1, c);
    if (s.compare(0, kMetaspace.size(), kMetaspace) != 0) s = kMetaspace + s;
    size_t start = 0;
    for (size_t next; (next = s.find(kMetaspace, start + 1)) != std::string::npos; start = next) ++words[s.substr(start, next - start)];
    if (start < s.size()) ++words[s.substr(start)];
  }
  return words;
}

// Character classes for sentencepiece_rules: merges never join two classes.
enum class CharClass { space_marker, digit, letter, other };
CharClass char_class(const std::string& c) {
  if (c == kMetaspace) return CharClass::space_marker;
  if (c.size() == 1 && c[0] >= '0' && c[0] <= '9') return CharClass::digit;
  // ASCII letters and every non-ASCII character (an approximation of "one Unicode script": the scripts of
  // the corpora here are Latin, with a few accented letters).
  if (c.size() > 1 || std::isalpha(static_cast<unsigned char>(c[0]))) return CharClass::letter;
  return CharClass::other;
}

uint64_t pair_key(int a, int b) { return (uint64_t(uint32_t(a)) << 32) | uint32_t(b); }

class Merger {
 public:
  explicit Merger(std::vector<std::string> symbols) : symbols_(std::move(symbols)) {
    for (size_t i = 0; i < symbols_.size(); ++i) ids_[symbols_[i]] = int(i);
  }

  int symbol_id(const std::string& s) const {
    auto it = ids_.find(s);
    return it == ids_.end() ? -1 : it->second;
  }
  void add_word(std::vector<int> syms, int64_t count) {
    if (syms.empty()) return;
    const int index = int(words_.size());
    words_.push_back(std::move(syms));
    counts_.push_back(count);
    add_pairs(index, +1);
  }

  // Merges until `target` symbols or no pair reaches min_frequency; returns the merges in order.
  std::vector<std::pair<std::string, std::string>> run(size_t target, int64_t min_frequency) {
    std::vector<std::pair<std::string, std::string>> merges;
    while (symbols_.size() < target) {
      uint64_t best = 0;
      int64_t best_count = 0;
      for (const auto& [key, count] : pair_counts_) {
        if (count > best_count || (count == best_count && count > 0 && less(key, best))) {
          best = key;
          best_count = count;
        }
      }
      if (best_count < min_frequency || best_count == 0) break;
      const int a = int(best >> 32), b = int(uint32_t(best));
      const int merged = int(symbols_.size());
      symbols_.push_back(symbols_[size_t(a)] + symbols_[size_t(b)]);
      merges.emplace_back(symbols_[size_t(a)], symbols_[size_t(b)]);
      std::vector<int> affected = std::move(where_[best]);
      where_.erase(best);
      std::sort(affected.begin(), affected.end());
      affected.erase(std::unique(affected.begin(), affected.end()), affected.end());
      for (int w : affected) {
        auto& syms = words_[size_t(w)];
        bool present = false;
        for (size_t i = 0; i + 1 < syms.size() && !present; ++i) present = syms[i] == a && syms[i + 1] == b;
        if (!present) continue;  // a stale entry: the word lost the pair to an earlier merge
        add_pairs(w, -1);
        std::vector<int> out;
        for (size_t i = 0; i < syms.size(); ++i) {
          if (i + 1 < syms.size() && syms[i] == a && syms[i + 1] == b) {
            out.push_back(merged);
            ++i;
          } else {
            out.push_back(syms[i]);
          }
        }
        syms = std::move(out);
        add_pairs(w, +1);
      }
    }
    return merges;
  }

  const std::vector<std::string>& symbols() const { return symbols_; }
  size_t words() const { return words_.size(); }

 private:
  bool less(uint64_t x, uint64_t y) const {  // by the pair's strings: a deterministic tie-break
    const auto& xa = symbols_[size_t(x >> 32)];
    const auto& ya = symbols_[size_t(y >> 32)];
    if (xa != ya) return xa < ya;
    return symbols_[size_t(uint32_t(x))] < symbols_[size_t(uint32_t(y))];
  }
  void add_pairs(int w, int sign) {
    const auto& syms = words_[size_t(w)];
    for (size_t i = 0; i + 1 < syms.size(); ++i) {
      const uint64_t key = pair_key(syms[i], syms[i + 1]);
      auto& count = pair_counts_[key];
      count += sign * counts_[size_t(w)];
      if (count == 0) pair_counts_.erase(key);
      if (sign > 0) where_[key].push_back(w);
    }
  }

  std::vector<std::string> symbols_;
  std::unordered_map<std::string, int> ids_;
  std::vector<std::vector<int>> words_;
  std::vector<int64_t> counts_;
  std::unordered_map<uint64_t, int64_t> pair_counts_;
  std::unordered_map<uint64_t, std::vector<int>> where_;
};

json added_token(int64_t id, const std::string& content) {
  return {{"id", id}, {"content", content}, {"single_word", false}, {"lstrip", false}, {"rstrip", false},
          {"normalized", false}, {"special", true}};
}

}  // namespace

BpeTrainResult train_bpe(const std::vector<std::string>& texts, const BpeTrainOptions& options) {
  const bool byte_level = options.style == BpeStyle::byte_level;
  const std::vector<std::string> specials =
      byte_level ? std::vector<std::string>{"<|endoftext|>"} : std::vector<std::string>{"<unk>", "<s>", "</s>"};
  const std::map<std::string, int64_t> words = count_words(texts, options);
  FUSELLM_CHECK(!words.empty(), "train-tokenizer: the corpus has no text");

  // Base symbols: specials, then the 256 bytes (byte-level: as printable characters; metaspace: as
  // <0xNN> fallback tokens), then (metaspace) the most frequent characters.
  std::vector<std::string> base = specials;
  std::vector<std::string> alphabet;
  if (byte_level) {
    for (int b = 0; b < 256; ++b) base.push_back(byte_to_char(uint8_t(b)));
  } else {
    for (int b = 0; b < 256; ++b) base.push_back(fmt::format("<0x{:02X}>", b));
    std::map<std::string, int64_t> chars;
    for (const auto& [word, count] : words)
      for (const auto& c : code_point_strings(word))
        if (!options.sentencepiece_rules || (c != "\n" && c != "\r")) chars[c] += count;  // spm: lines
    std::vector<std::pair<std::string, int64_t>> by_count(chars.begin(), chars.end());
    std::stable_sort(by_count.begin(), by_count.end(), [](auto& x, auto& y) { return x.second > y.second; });
    if (int64_t(by_count.size()) > options.limit_alphabet) by_count.resize(size_t(options.limit_alphabet));
    for (const auto& [c, n] : by_count) alphabet.push_back(c);
    if (std::find(alphabet.begin(), alphabet.end(), kMetaspace) == alphabet.end()) alphabet.push_back(kMetaspace);
    std::sort(alphabet.begin(), alphabet.end());
    base.insert(base.end(), alphabet.begin(), alphabet.end());
  }
  FUSELLM_CHECK(options.vocab_size > int64_t(base.size()),
                "train-tokenizer: --vocab-size {} leaves no room for merges (the base vocabulary has {} entries)",
                options.vocab_size, base.size());

  Merger merger(base);
  for (const auto& [word, count] : words) {
    // A character outside the alphabet (metaspace) is byte fallback at encoding time: it splits the word.
    // With sentencepiece_rules a word is also cut around every digit and where letters meet other
    // characters; each piece is merged on its own.
    std::vector<int> syms;
    CharClass piece = CharClass::space_marker;  // the class of the piece so far (▁ takes the next one's)
    for (const auto& c : code_point_strings(word)) {
      const int id = merger.symbol_id(c);
      if (id < int(specials.size())) {  // not in the alphabet (or a special token's text)
        merger.add_word(std::move(syms), count);
        syms.clear();
        piece = CharClass::space_marker;
        continue;
      }
      if (options.sentencepiece_rules) {
        const CharClass cls = char_class(c);
        const bool cut = !syms.empty() && (cls == CharClass::digit || piece == CharClass::digit ||
                                           (piece != CharClass::space_marker && cls != piece));
        if (cut) {
          merger.add_word(std::move(syms), count);
          syms.clear();
        }
        piece = cls == CharClass::space_marker && !syms.empty() ? piece : cls;
      }
      syms.push_back(id);
    }
    merger.add_word(std::move(syms), count);
  }
  const auto merges = merger.run(size_t(options.vocab_size), options.min_frequency);

  json vocab = json::object();
  const auto& symbols = merger.symbols();
  for (size_t i = 0; i < symbols.size(); ++i) vocab[symbols[i]] = int64_t(i);
  json merge_list = json::array();
  for (const auto& [a, b] : merges) merge_list.push_back(json::array({a, b}));
  json added = json::array();
  for (size_t i = 0; i < specials.size(); ++i) added.push_back(added_token(int64_t(i), specials[i]));

  BpeTrainResult result;
  result.merges = int64_t(merges.size());
  result.base_symbols = int64_t(base.size());
  result.words = int64_t(merger.words());
  json model = {{"type", "BPE"}, {"dropout", nullptr}, {"unk_token", byte_level ? json(nullptr) : json("<unk>")},
                {"continuing_subword_prefix", nullptr}, {"end_of_word_suffix", nullptr}, {"fuse_unk", !byte_level},
                {"byte_fallback", !byte_level}, {"ignore_merges", false}, {"vocab", vocab}, {"merges", merge_list}};
  json& t = result.tokenizer_json;
  t = {{"version", "1.0"}, {"truncation", nullptr}, {"padding", nullptr}, {"added_tokens", added}, {"normalizer", nullptr}};
  if (byte_level) {
    const json level = {{"type", "ByteLevel"}, {"add_prefix_space", false}, {"trim_offsets", true}, {"use_regex", true}};
    t["pre_tokenizer"] = level;
    if (options.split_digits)
      t["pre_tokenizer"] = {{"type", "Sequence"},
                            {"pretokenizers", json::array({{{"type", "Digits"}, {"individual_digits", true}}, level})}};
    t["post_processor"] = level;
    t["decoder"] = level;
    result.tokenizer_config = {{"tokenizer_class", "PreTrainedTokenizerFast"}, {"bos_token", "<|endoftext|>"},
                               {"eos_token", "<|endoftext|>"}, {"unk_token", "<|endoftext|>"},
                               {"add_bos_token", false}, {"add_eos_token", false}};
  } else {
    t["pre_tokenizer"] = {{"type", "Metaspace"}, {"replacement", kMetaspace}, {"prepend_scheme", "first"}, {"split", true}};
    const json bos_item = {{"SpecialToken", {{"id", "<s>"}, {"type_id", 0}}}};
    t["post_processor"] = {
        {"type", "TemplateProcessing"},
        {"single", json::array({bos_item, {{"Sequence", {{"id", "A"}, {"type_id", 0}}}}})},
        {"pair", json::array({bos_item, {{"Sequence", {{"id", "A"}, {"type_id", 0}}}}, bos_item,
                              {{"Sequence", {{"id", "B"}, {"type_id", 1}}}}})},
        {"special_tokens", {{"<s>", {{"id", "<s>"}, {"ids", json::array({1})}, {"tokens", json::array({"<s>"})}}}}}};
    // Llama's decoder: ▁ back to spaces, <0xNN> tokens to bytes, joined, the prepended space removed.
    t["decoder"] = {{"type", "Sequence"},
                    {"decoders", json::array({{{"type", "Replace"}, {"pattern", {{"String", kMetaspace}}}, {"content", " "}},
                                              {{"type", "ByteFallback"}},
                                              {{"type", "Fuse"}},
                                              {{"type", "Strip"}, {"content", " "}, {"start", 1}, {"stop", 0}}})}};
    result.tokenizer_config = {{"tokenizer_class", "PreTrainedTokenizerFast"}, {"bos_token", "<s>"}, {"eos_token", "</s>"},
                               {"unk_token", "<unk>"}, {"add_bos_token", true}, {"add_eos_token", false}};
  }
  t["model"] = model;
  return result;
}

}  // namespace fusellm::tok
