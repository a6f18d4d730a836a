#pragma once
// GPT-2's byte-level alphabet: every byte is shown as a printable character (space -> "Ġ", newline -> "Ċ")
// so that BPE runs over strings of visible characters; decoding maps the characters back to bytes.
#include <array>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace fusellm::tok::hf::byte_level {

// The character (UTF-8) that stands for `byte`.
const std::string& byte_to_char(uint8_t byte);

// The byte a character stands for, or nothing when it is not in the byte-level alphabet.
std::optional<uint8_t> char_to_byte(char32_t cp);

// GPT-2's pre-tokenization pattern.
extern const char* const kGpt2Pattern;

}  // namespace fusellm::tok::hf::byte_level
