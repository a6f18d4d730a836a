#pragma once
// Unicode helpers for the Hugging Face tokenizer pipeline: UTF-8 decoding/encoding, lossy repair of
// invalid UTF-8 (as Rust's String::from_utf8_lossy), NFC/NFD/NFKC/NFKD, per-character lowercase and
// character classes. Tables are generated from Unicode data (tools/gen_unicode_tables.py): no ICU.
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace fusellm::tok::unicode {

constexpr char32_t kReplacementChar = 0xFFFD;

// Length of the valid UTF-8 sequence starting at s[i], or 0 when the bytes there are not valid UTF-8.
size_t valid_sequence_length(std::string_view s, size_t i);

// Where s[i] starts invalid UTF-8: the length of the maximal invalid subsequence there (at least 1),
// which one U+FFFD replaces.
size_t invalid_prefix_length(std::string_view s, size_t i);

// Decodes one code point starting at s[i] (which must be valid UTF-8) and advances i past it.
char32_t decode_at(std::string_view s, size_t& i);

// Length in bytes of the (valid) UTF-8 character whose first byte is `lead`.
inline size_t sequence_length(unsigned char lead) {
  return lead < 0x80 ? 1 : lead < 0xE0 ? 2 : lead < 0xF0 ? 3 : 4;
}

void append_utf8(std::string& out, char32_t cp);

bool is_valid_utf8(std::string_view s);

// Replaces every maximal invalid subsequence with U+FFFD, as Rust's String::from_utf8_lossy does.
std::string utf8_lossy(std::string_view bytes);

enum class NormalForm { NFC, NFD, NFKC, NFKD };

// Normalizes a run of code points (one normalization segment or a whole string). When `sources` is given,
// it receives for every output code point the index of the input code point it comes from: a composed
// character comes from its starter, the characters it absorbed vanish (as the Rust crate aligns them).
std::u32string normalize(const std::u32string& text, NormalForm form, std::vector<uint32_t>* sources = nullptr);

// True when the code point never combines with what precedes it: a text can be normalized in
// independent segments that each start at such a code point.
bool is_segment_start(char32_t cp);

// Rust's char::to_lowercase (possibly several code points), appended to `out`.
void append_lowercase(std::u32string& out, char32_t cp);

bool is_whitespace(char32_t cp);    // Unicode White_Space (Rust char::is_whitespace)
bool is_alphanumeric(char32_t cp);  // letters and numbers (Rust char::is_alphanumeric)

const char* unicode_version();

}  // namespace fusellm::tok::unicode
