// Canonical token bytes (see canonical.hpp).
#include "fusellm/align/canonical.hpp"

#include <array>

#include "fusellm/align/levenshtein.hpp"
#include "fusellm/tokenizer/tokenizer.hpp"

namespace fusellm::align {

namespace {

// GPT-2's bytes_to_unicode, inverted: printable Latin-1 bytes stand for themselves, the other 68 bytes
// (0–32, 127–160, 173) take code points 256, 257, … in byte order.
const std::array<int16_t, 512>& byte_level_table() {
  static const std::array<int16_t, 512> table = [] {
    std::array<int16_t, 512> t;
    t.fill(-1);
    int next = 256;
    for (int b = 0; b < 256; ++b) {
      const bool printable = (b >= 33 && b <= 126) || (b >= 161 && b <= 172) || (b >= 174 && b <= 255);
      t[printable ? b : next++] = static_cast<int16_t>(b);
    }
    return t;
  }();
  return table;
}

int hex_digit(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  return -1;
}

constexpr std::string_view kSpaceMarker = "\xE2\x96\x81";  // ▁

}  // namespace

TokenStyle style_for_marker(std::string_view marker) {
  return marker == "\xC4\xA0" ? TokenStyle::byte_level : TokenStyle::sentencepiece;
}

int byte_level_byte(uint32_t cp) { return cp < 512 ? byte_level_table()[cp] : -1; }

std::string canonical_text(std::string_view token, TokenStyle style) {
  if (style == TokenStyle::sentencepiece) {
    if (token.size() == 6 && token.substr(0, 3) == "<0x" && token[5] == '>' && hex_digit(token[3]) >= 0 &&
        hex_digit(token[4]) >= 0)
      return std::string(1, static_cast<char>(hex_digit(token[3]) * 16 + hex_digit(token[4])));
    std::string out;
    for (size_t pos = 0; pos < token.size();) {
      if (token.compare(pos, kSpaceMarker.size(), kSpaceMarker) == 0) {
        out += ' ';
        pos += kSpaceMarker.size();
      } else {
        out += token[pos++];
      }
    }
    return out;
  }
  const CodePoints cps = to_code_points(token);
  std::string out;
  for (uint32_t cp : cps) {
    const int b = byte_level_byte(cp);
    if (b < 0) return std::string(token);  // not a byte-level string (an added token): its text as is
    out += static_cast<char>(b);
  }
  return out;
}

SpecialIds special_ids_of(const tok::Tokenizer& tokenizer) {
  SpecialIds ids;
  ids.eos = tokenizer.special_tokens().eos;
  for (size_t id = 0; id < tokenizer.vocab_size(); ++id)
    if (tokenizer.is_special(static_cast<int32_t>(id))) ids.special.push_back(static_cast<int32_t>(id));
  return ids;
}

std::vector<std::string> canonical_vocabulary(const std::vector<std::string>& tokens, TokenStyle style,
                                              const SpecialIds& specials) {
  std::vector<std::string> out(tokens.size());
  for (size_t id = 0; id < tokens.size(); ++id) out[id] = canonical_text(tokens[id], style);
  for (int32_t id : specials.special)
    if (id >= 0 && static_cast<size_t>(id) < tokens.size()) out[id] = std::string(1, '\0') + tokens[id];
  if (specials.eos && *specials.eos >= 0 && static_cast<size_t>(*specials.eos) < tokens.size())
    out[*specials.eos] = std::string("\0eos", 4);
  return out;
}

}  // namespace fusellm::align
