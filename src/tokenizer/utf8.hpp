#pragma once
// Small UTF-8 helpers shared by the tokenizers (torch-free, header-only).
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

namespace fusellm::tok::utf8 {

inline constexpr std::string_view kReplacementChar = "\xEF\xBF\xBD";  // U+FFFD

// Length of the valid UTF-8 character starting at s[pos] (1..4), or 0 if the bytes there are not one
// (bad lead byte, missing continuation, overlong form, surrogate, beyond U+10FFFF).
inline size_t valid_char_length(std::string_view s, size_t pos) {
  const auto byte = [&](size_t i) { return static_cast<uint8_t>(s[i]); };
  const uint8_t lead = byte(pos);
  size_t len;
  uint32_t cp;
  if (lead < 0x80) return 1;
  if (lead >= 0xC2 && lead <= 0xDF) len = 2, cp = lead & 0x1F;
  else if (lead >= 0xE0 && lead <= 0xEF) len = 3, cp = lead & 0x0F;
  else if (lead >= 0xF0 && lead <= 0xF4) len = 4, cp = lead & 0x07;
  else return 0;
  if (s.size() - pos < len) return 0;
  for (size_t i = 1; i < len; ++i) {
    if ((byte(pos + i) & 0xC0) != 0x80) return 0;
    cp = (cp << 6) | (byte(pos + i) & 0x3F);
  }
  if ((len == 3 && cp < 0x800) || (len == 4 && cp < 0x10000) || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF))
    return 0;
  return len;
}

inline bool is_valid(std::string_view s) {
  for (size_t pos = 0; pos < s.size();) {
    size_t len = valid_char_length(s, pos);
    if (len == 0) return false;
    pos += len;
  }
  return true;
}

}  // namespace fusellm::tok::utf8
