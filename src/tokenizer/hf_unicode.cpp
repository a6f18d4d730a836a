// Unicode support for the Hugging Face tokenizer pipeline (see hf_unicode.hpp). Normalization follows
// UAX #15: full decomposition, canonical reordering by combining class, then canonical composition;
// Hangul syllables are (de)composed algorithmically.
#include "hf_unicode.hpp"

#include <algorithm>

namespace fusellm::tok::unicode {
namespace {

struct CombiningClass {
  char32_t cp;
  uint8_t ccc;
};
struct Decomposition {
  char32_t cp;
  uint32_t canonical_offset, canonical_length, compat_offset, compat_length;
};
struct Composition {
  char32_t first, second, composite;
};
struct Lowercase {
  char32_t cp;
  uint32_t offset, length;
};
struct CodeRange {
  char32_t first, last;
};

#include "hf_unicode_tables.inc"

constexpr char32_t kHangulS = 0xAC00, kHangulL = 0x1100, kHangulV = 0x1161, kHangulT = 0x11A7;
constexpr char32_t kHangulLCount = 19, kHangulVCount = 21, kHangulTCount = 28;
constexpr char32_t kHangulNCount = kHangulVCount * kHangulTCount, kHangulSCount = kHangulLCount * kHangulNCount;

uint8_t combining_class(char32_t cp) {
  if (cp < 0x300) return 0;
  auto it = std::lower_bound(std::begin(kCombiningClasses), std::end(kCombiningClasses), cp,
                             [](const CombiningClass& e, char32_t v) { return e.cp < v; });
  return it != std::end(kCombiningClasses) && it->cp == cp ? it->ccc : 0;
}

const Decomposition* find_decomposition(char32_t cp) {
  if (cp < 0xA0) return nullptr;
  auto it = std::lower_bound(std::begin(kDecompositions), std::end(kDecompositions), cp,
                             [](const Decomposition& e, char32_t v) { return e.cp < v; });
  return it != std::end(kDecompositions) && it->cp == cp ? &*it : nullptr;
}

char32_t compose_pair(char32_t a, char32_t b) {
  if (a >= kHangulL && a < kHangulL + kHangulLCount && b >= kHangulV && b < kHangulV + kHangulVCount)
    return kHangulS + ((a - kHangulL) * kHangulVCount + (b - kHangulV)) * kHangulTCount;
  if (a >= kHangulS && a < kHangulS + kHangulSCount && (a - kHangulS) % kHangulTCount == 0 && b > kHangulT &&
      b < kHangulT + kHangulTCount)
    return a + (b - kHangulT);
  auto it = std::lower_bound(std::begin(kCompositions), std::end(kCompositions), std::make_pair(a, b),
                             [](const Composition& e, const std::pair<char32_t, char32_t>& v) {
                               return e.first < v.first || (e.first == v.first && e.second < v.second);
                             });
  return it != std::end(kCompositions) && it->first == a && it->second == b ? it->composite : 0;
}

// Code points that appear as the second element of a composition: they combine with what precedes.
const std::vector<char32_t>& composition_seconds() {
  static const std::vector<char32_t> seconds = [] {
    std::vector<char32_t> v;
    for (const auto& c : kCompositions) v.push_back(c.second);
    std::sort(v.begin(), v.end());
    v.erase(std::unique(v.begin(), v.end()), v.end());
    return v;
  }();
  return seconds;
}

void decompose_into(std::u32string& out, char32_t cp, bool compat) {
  if (cp >= kHangulS && cp < kHangulS + kHangulSCount) {
    char32_t s = cp - kHangulS;
    out.push_back(kHangulL + s / kHangulNCount);
    out.push_back(kHangulV + (s % kHangulNCount) / kHangulTCount);
    if (s % kHangulTCount) out.push_back(kHangulT + s % kHangulTCount);
    return;
  }
  const Decomposition* d = find_decomposition(cp);
  if (!d) {
    out.push_back(cp);
    return;
  }
  uint32_t offset = compat ? d->compat_offset : d->canonical_offset;
  uint32_t length = compat ? d->compat_length : d->canonical_length;
  out.append(kDecompositionPool + offset, kDecompositionPool + offset + length);
}

}  // namespace

size_t valid_sequence_length(std::string_view s, size_t i) {
  auto byte = [&](size_t k) -> int { return k < s.size() ? static_cast<unsigned char>(s[k]) : -1; };
  int b0 = byte(i);
  if (b0 < 0x80) return b0 < 0 ? 0 : 1;
  int lo = 0x80, hi = 0xBF, n;
  if (b0 >= 0xC2 && b0 <= 0xDF) n = 2;
  else if (b0 >= 0xE0 && b0 <= 0xEF) {
    n = 3;
    if (b0 == 0xE0) lo = 0xA0;
    if (b0 == 0xED) hi = 0x9F;
  } else if (b0 >= 0xF0 && b0 <= 0xF4) {
    n = 4;
    if (b0 == 0xF0) lo = 0x90;
    if (b0 == 0xF4) hi = 0x8F;
  } else {
    return 0;
  }
  int b1 = byte(i + 1);
  if (b1 < lo || b1 > hi) return 0;
  for (int k = 2; k < n; ++k) {
    int b = byte(i + k);
    if (b < 0x80 || b > 0xBF) return 0;
  }
  return n;
}

char32_t decode_at(std::string_view s, size_t& i) {
  auto b0 = static_cast<unsigned char>(s[i]);
  if (b0 < 0x80) {
    ++i;
    return b0;
  }
  size_t n = sequence_length(b0);
  char32_t cp = b0 & (n == 2 ? 0x1F : n == 3 ? 0x0F : 0x07);
  for (size_t k = 1; k < n; ++k) cp = (cp << 6) | (static_cast<unsigned char>(s[i + k]) & 0x3F);
  i += n;
  return cp;
}

void append_utf8(std::string& out, char32_t cp) {
  if (cp < 0x80) {
    out.push_back(static_cast<char>(cp));
  } else if (cp < 0x800) {
    out.push_back(static_cast<char>(0xC0 | (cp >> 6)));
    out.push_back(static_cast<char>(0x80 | (cp & 0x3F)));
  } else if (cp < 0x10000) {
    out.push_back(static_cast<char>(0xE0 | (cp >> 12)));
    out.push_back(static_cast<char>(0x80 | ((cp >> 6) & 0x3F)));
    out.push_back(static_cast<char>(0x80 | (cp & 0x3F)));
  } else {
    out.push_back(static_cast<char>(0xF0 | (cp >> 18)));
    out.push_back(static_cast<char>(0x80 | ((cp >> 12) & 0x3F)));
    out.push_back(static_cast<char>(0x80 | ((cp >> 6) & 0x3F)));
    out.push_back(static_cast<char>(0x80 | (cp & 0x3F)));
  }
}

bool is_valid_utf8(std::string_view s) {
  for (size_t i = 0; i < s.size();) {
    if (static_cast<unsigned char>(s[i]) < 0x80) {
      ++i;
      continue;
    }
    size_t n = valid_sequence_length(s, i);
    if (!n) return false;
    i += n;
  }
  return true;
}

// The length of the maximal prefix of a UTF-8 sequence at s[i] (at least 1): what one U+FFFD replaces.
size_t invalid_prefix_length(std::string_view s, size_t i) {
  auto b0 = static_cast<unsigned char>(s[i]);
  int lo = 0x80, hi = 0xBF;
  size_t n;
  if (b0 >= 0xC2 && b0 <= 0xDF) n = 2;
  else if (b0 >= 0xE0 && b0 <= 0xEF) n = 3, lo = b0 == 0xE0 ? 0xA0 : 0x80, hi = b0 == 0xED ? 0x9F : 0xBF;
  else if (b0 >= 0xF0 && b0 <= 0xF4) n = 4, lo = b0 == 0xF0 ? 0x90 : 0x80, hi = b0 == 0xF4 ? 0x8F : 0xBF;
  else return 1;
  size_t k = 1;
  for (; k < n && i + k < s.size(); ++k) {
    auto b = static_cast<unsigned char>(s[i + k]);
    int l = k == 1 ? lo : 0x80, h = k == 1 ? hi : 0xBF;
    if (b < l || b > h) break;
  }
  return k;
}

std::string utf8_lossy(std::string_view bytes) {
  std::string out;
  out.reserve(bytes.size());
  for (size_t i = 0; i < bytes.size();) {
    size_t n = valid_sequence_length(bytes, i);
    if (n) {
      out.append(bytes.data() + i, n);
      i += n;
    } else {
      append_utf8(out, kReplacementChar);
      i += invalid_prefix_length(bytes, i);
    }
  }
  return out;
}

std::u32string normalize(const std::u32string& text, NormalForm form, std::vector<uint32_t>* sources) {
  bool compat = form == NormalForm::NFKC || form == NormalForm::NFKD;
  bool compose = form == NormalForm::NFC || form == NormalForm::NFKC;
  struct Item {
    char32_t cp;
    uint8_t ccc;
    bool inserted;       // not the first character of its input character's decomposition
    uint32_t absorbed;   // input characters (first of their decomposition) composed into this one
  };
  std::vector<Item> d;
  d.reserve(text.size() + 4);
  std::u32string scratch;
  for (uint32_t i = 0; i < text.size(); ++i) {
    scratch.clear();
    decompose_into(scratch, text[i], compat);
    for (size_t k = 0; k < scratch.size(); ++k) d.push_back({scratch[k], combining_class(scratch[k]), k > 0, 0});
  }
  // Canonical ordering: stable sort of each run of non-starters by combining class.
  for (size_t i = 0; i < d.size();) {
    if (d[i].ccc == 0) {
      ++i;
      continue;
    }
    size_t j = i;
    while (j < d.size() && d[j].ccc != 0) ++j;
    std::stable_sort(d.begin() + i, d.begin() + j, [](const Item& a, const Item& b) { return a.ccc < b.ccc; });
    i = j;
  }
  std::vector<Item> out;
  if (!compose) {
    out = std::move(d);
  } else {
    out.reserve(d.size());
    long starter = -1;    // index in `out` of the last starter
    int last_class = -1;  // class of the last character kept after that starter; -1 when none
    for (const Item& item : d) {
      int cc = item.ccc;
      bool blocked = last_class != -1 && (last_class == 0 || last_class >= cc);
      if (starter >= 0 && !blocked) {
        if (char32_t c = compose_pair(out[starter].cp, item.cp)) {
          out[starter].cp = c;
          out[starter].absorbed += (item.inserted ? 0 : 1) + item.absorbed;
          continue;
        }
      }
      if (cc == 0) {
        starter = static_cast<long>(out.size());
        last_class = -1;
      } else {
        last_class = cc;
      }
      out.push_back(item);
    }
  }
  std::u32string result;
  result.reserve(out.size());
  if (sources) sources->clear();
  // Sources are assigned positionally, as the Rust crate's NormalizedString::transform does with the
  // changes its normalization iterator reports: each character that is not an insertion takes the next
  // input character, and the characters composed into it are skipped; insertions repeat the previous one.
  uint32_t next = 0, previous = 0;
  for (const Item& item : out) {
    result.push_back(item.cp);
    if (!sources) continue;
    uint32_t source = item.inserted ? previous : std::min<uint32_t>(next, static_cast<uint32_t>(text.size() - 1));
    sources->push_back(source);
    next += (item.inserted ? 0 : 1) + item.absorbed;
    previous = source;
  }
  return result;
}

bool is_segment_start(char32_t cp) {
  if (cp < 0x300) return true;
  std::u32string d;
  decompose_into(d, cp, true);
  char32_t first = d.empty() ? cp : d.front();
  if (combining_class(first) != 0) return false;
  if (first >= kHangulV && first < kHangulV + kHangulVCount) return false;
  if (first > kHangulT && first < kHangulT + kHangulTCount) return false;
  const auto& seconds = composition_seconds();
  return !std::binary_search(seconds.begin(), seconds.end(), first);
}

void append_lowercase(std::u32string& out, char32_t cp) {
  if (cp < 0x80) {
    out.push_back(cp >= 'A' && cp <= 'Z' ? cp + 32 : cp);
    return;
  }
  auto it = std::lower_bound(std::begin(kLowercase), std::end(kLowercase), cp,
                             [](const Lowercase& e, char32_t v) { return e.cp < v; });
  if (it != std::end(kLowercase) && it->cp == cp)
    out.append(kLowercasePool + it->offset, kLowercasePool + it->offset + it->length);
  else
    out.push_back(cp);
}

bool is_whitespace(char32_t cp) {
  return (cp >= 0x9 && cp <= 0xD) || cp == 0x20 || cp == 0x85 || cp == 0xA0 || cp == 0x1680 ||
         (cp >= 0x2000 && cp <= 0x200A) || cp == 0x2028 || cp == 0x2029 || cp == 0x202F || cp == 0x205F ||
         cp == 0x3000;
}

bool is_alphanumeric(char32_t cp) {
  if (cp < 0x80) return (cp >= '0' && cp <= '9') || ((cp | 0x20) >= 'a' && (cp | 0x20) <= 'z');
  auto it = std::upper_bound(std::begin(kAlphanumeric), std::end(kAlphanumeric), cp,
                             [](char32_t v, const CodeRange& r) { return v < r.first; });
  return it != std::begin(kAlphanumeric) && cp <= std::prev(it)->last;
}

const char* unicode_version() { return kUnicodeVersion; }

}  // namespace fusellm::tok::unicode
