// py_lower / py_capitalize: Python's case mappings from the generated table (see py_text.hpp).
#include "fusellm/eval/py_text.hpp"

#include <algorithm>
#include <cstdint>

namespace fusellm::eval {

namespace {

struct CaseMapping {
  uint32_t code_point;
  const char* utf8;
};

#include "unicode_case_table.inc"

// The code point at s[i] and its byte length; an invalid or truncated sequence is one byte, returned as
// is (code point 0xFFFFFFFF matches no mapping).
std::pair<uint32_t, size_t> decode_at(const std::string& s, size_t i) {
  const auto c = static_cast<unsigned char>(s[i]);
  size_t n = c < 0x80 ? 1 : (c >> 5) == 0x6 ? 2 : (c >> 4) == 0xE ? 3 : (c >> 3) == 0x1E ? 4 : 0;
  if (n == 0 || i + n > s.size()) return {0xFFFFFFFFu, 1};
  uint32_t cp = n == 1 ? c : n == 2 ? (c & 0x1F) : n == 3 ? (c & 0x0F) : (c & 0x07);
  for (size_t k = 1; k < n; ++k) {
    const auto b = static_cast<unsigned char>(s[i + k]);
    if ((b & 0xC0) != 0x80) return {0xFFFFFFFFu, 1};
    cp = (cp << 6) | (b & 0x3F);
  }
  return {cp, n};
}

template <size_t N>
const char* lookup(const CaseMapping (&table)[N], uint32_t cp) {
  const auto* end = table + N;
  const auto* hit = std::lower_bound(table, end, cp, [](const CaseMapping& m, uint32_t c) { return m.code_point < c; });
  return hit != end && hit->code_point == cp ? hit->utf8 : nullptr;
}

template <size_t N>
void append_mapped(std::string& out, const std::string& s, size_t i, size_t n, uint32_t cp, const CaseMapping (&table)[N]) {
  const char* mapped = lookup(table, cp);
  if (mapped) out += mapped;
  else out.append(s, i, n);
}

}  // namespace

std::string py_lower(const std::string& s) {
  std::string out;
  out.reserve(s.size());
  for (size_t i = 0; i < s.size();) {
    const auto c = static_cast<unsigned char>(s[i]);
    if (c < 0x80) {  // ASCII without a search
      out += char(c >= 'A' && c <= 'Z' ? c + 32 : c);
      ++i;
      continue;
    }
    const auto [cp, n] = decode_at(s, i);
    append_mapped(out, s, i, n, cp, kLowerMappings);
    i += n;
  }
  return out;
}

std::string py_capitalize(const std::string& s) {
  if (s.empty()) return s;
  std::string out;
  out.reserve(s.size());
  const auto [cp, n] = decode_at(s, 0);
  append_mapped(out, s, 0, n, cp, kTitleMappings);
  return out + py_lower(s.substr(n));
}

}  // namespace fusellm::eval
