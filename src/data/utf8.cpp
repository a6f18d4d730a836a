#include <cstdint>
#include <cstring>

#include "fusellm/data/corpus.hpp"

namespace fusellm::data {

bool is_valid_utf8(std::string_view bytes) {
  const auto* p = reinterpret_cast<const uint8_t*>(bytes.data());
  const auto* end = p + bytes.size();
  while (p < end) {
    // Fast path over ASCII, eight bytes at a time.
    while (end - p >= 8) {
      uint64_t word;
      std::memcpy(&word, p, 8);
      if (word & 0x8080808080808080ull) break;
      p += 8;
    }
    if (p == end) break;
    uint8_t c = *p;
    if (c < 0x80) {
      ++p;
      continue;
    }
    int length;
    uint32_t min_code;
    uint32_t code;
    if ((c & 0xE0) == 0xC0) length = 2, min_code = 0x80, code = c & 0x1F;
    else if ((c & 0xF0) == 0xE0) length = 3, min_code = 0x800, code = c & 0x0F;
    else if ((c & 0xF8) == 0xF0) length = 4, min_code = 0x10000, code = c & 0x07;
    else return false;  // a continuation byte or 0xF8..0xFF where a character must start
    if (end - p < length) return false;
    for (int i = 1; i < length; ++i) {
      if ((p[i] & 0xC0) != 0x80) return false;
      code = (code << 6) | (p[i] & 0x3F);
    }
    if (code < min_code || code > 0x10FFFF || (code >= 0xD800 && code <= 0xDFFF)) return false;
    p += length;
  }
  return true;
}

}  // namespace fusellm::data
