#pragma once
// Byte-aware canonical token strings: the bytes of text a token stands for, so that tokens of different
// tokenizers compare equal when they cover the same text. SentencePiece pieces: "▁" → space, "<0xNN>" → the
// byte NN, everything else its UTF-8. Byte-level BPE (GPT-2/NeoX) strings: every character of the byte-level
// alphabet back to its byte ("Ġ" → space, "Ċ" → newline, "Ã©" → é); strings outside that alphabet (added
// tokens such as NeoX's runs of literal spaces) are taken as UTF-8 as they are. Special tokens do not stand
// for text: the end-of-sequence token of either side becomes the same reserved string "\x00eos" (so </s> and
// <|endoftext|> match), any other special token "\x00" + its string (it never equals a piece of text).
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace fusellm::tok {
class Tokenizer;
}

namespace fusellm::align {

enum class TokenStyle { sentencepiece, byte_level };

// "Ġ" marker → byte_level, anything else ("▁") → sentencepiece.
TokenStyle style_for_marker(std::string_view marker);

// The canonical bytes of a (non-special) token string.
std::string canonical_text(std::string_view token, TokenStyle style);

// The byte a GPT-2 byte-level character stands for, or -1.
int byte_level_byte(uint32_t code_point);

struct SpecialIds {
  std::optional<int32_t> eos;
  std::vector<int32_t> special;  // every id that is a special token (EOS included or not)
};
SpecialIds special_ids_of(const tok::Tokenizer& tokenizer);

// Canonical strings for a whole vocabulary (ids 0..V-1).
std::vector<std::string> canonical_vocabulary(const std::vector<std::string>& tokens, TokenStyle style,
                                              const SpecialIds& specials);

}  // namespace fusellm::align
