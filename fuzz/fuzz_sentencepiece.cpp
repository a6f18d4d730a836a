// SentencePiece .model files (protobuf: pieces, trainer and normalizer specs, the precompiled charsmap)
// plus a text: parse, build the tokenizer, encode and decode. Bundle: `#@ tokenizer.model`, `#@ text`.
#include "fuzz_support.hpp"
#include "fusellm/tokenizer/sentencepiece.hpp"
#include "fusellm/tokenizer/sentencepiece_model.hpp"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace fusellm;
  fuzz::init_quiet_logging();
  const std::string_view input(reinterpret_cast<const char*>(data), size);
  const bool bundle = input.substr(0, 3) == "#@ ";
  const std::string model = bundle ? fuzz::section_or(input, "tokenizer.model", "") : std::string(input);
  const std::string text = fuzz::section_or(input, "text", "Hello world, 123 é\n  tabs\there");
  fuzz::expect_clean_errors("fuzz_sentencepiece", [&] {
    tok::SentencePieceTokenizer tokenizer(tok::parse_spm_model(model, "tokenizer.model"), "tokenizer.model");
    for (bool specials : {false, true}) {
      const tok::Encoding encoding = tokenizer.encode(text, specials);
      (void)tokenizer.decode(encoding.ids, !specials);
    }
    (void)tokenizer.encode_untrimmed(text, true);
  });
  return 0;
}
