// The GPT-2 byte <-> character table (see byte_level.hpp).
#include "byte_level.hpp"

#include <vector>

#include "hf_unicode.hpp"

namespace fusellm::tok::hf::byte_level {
namespace {

struct Tables {
  std::array<std::string, 256> chars;
  std::array<int, 512> bytes;  // code point (< 512) -> byte, -1 when none
  Tables() {
    bytes.fill(-1);
    // Printable Latin-1 bytes stand for themselves; the others take code points 256, 257, ... in order.
    int next = 256;
    for (int b = 0; b < 256; ++b) {
      bool printable = (b >= '!' && b <= '~') || (b >= 0xA1 && b <= 0xAC) || (b >= 0xAE && b <= 0xFF);
      int cp = printable ? b : next++;
      unicode::append_utf8(chars[b], static_cast<char32_t>(cp));
      bytes[cp] = b;
    }
  }
};

const Tables& tables() {
  static const Tables t;
  return t;
}

}  // namespace

const char* const kGpt2Pattern = R"('s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+)";

const std::string& byte_to_char(uint8_t byte) { return tables().chars[byte]; }

std::optional<uint8_t> char_to_byte(char32_t cp) {
  if (cp >= 512) return std::nullopt;
  int b = tables().bytes[cp];
  if (b < 0) return std::nullopt;
  return static_cast<uint8_t>(b);
}

}  // namespace fusellm::tok::hf::byte_level
