#pragma once
// The Python string semantics the harnesses' prompts and metrics rely on, in one place: str.strip() and
// str.rstrip() (ASCII whitespace: the harness data has no other), len() in code points, and str.lower() /
// str.capitalize() with Python's full Unicode case mappings (table generated from Python 3.11's
// unicodedata, Unicode 14; Greek final sigma is lowered to σ, where Python writes ς at a word's end).
#include <cstddef>
#include <string>

namespace fusellm::eval {

inline bool is_py_space(char c) { return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f' || c == '\v'; }

// Length of s without its trailing whitespace (len(s.rstrip())).
inline size_t py_rstrip_length(const std::string& s) {
  size_t n = s.size();
  while (n > 0 && is_py_space(s[n - 1])) --n;
  return n;
}

inline std::string py_strip(const std::string& s) {
  size_t b = 0;
  const size_t e = py_rstrip_length(s);
  while (b < e && is_py_space(s[b])) ++b;
  return s.substr(b, e - b);
}

// len() of a UTF-8 string: its code points.
inline size_t code_points(const std::string& s) {
  size_t n = 0;
  for (unsigned char c : s) n += (c & 0xC0) != 0x80;
  return n;
}

// Python str.lower(): every code point by its full lowercase mapping (U+0130 → "i̇"); bytes that are not
// UTF-8 pass through.
std::string py_lower(const std::string& s);
// Python str.capitalize(): the first code point title-cased, the rest lowercased.
std::string py_capitalize(const std::string& s);

}  // namespace fusellm::eval
