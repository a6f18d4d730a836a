// tokenizer.json (models, normalizers, pre-tokenizers with their regexes, decoders, added tokens) plus a
// text: load through load_tokenizer as every stage does, then encode (with and without specials, and the
// untrimmed offsets alignment uses) and decode the ids back. Bundle: `#@ tokenizer.json`, `#@ text`.
#include "fuzz_support.hpp"
#include "fusellm/tokenizer/tokenizer.hpp"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace fusellm;
  fuzz::init_quiet_logging();
  const std::string_view input(reinterpret_cast<const char*>(data), size);
  const fs::path dir = fuzz::materialize(input, "tokenizer.json");
  const std::string text = fuzz::section_or(input, "text", "Hello world, 123 é\n");
  fuzz::expect_clean_errors("fuzz_tokenizer_json", [&] {
    if (!fs::exists(dir / "tokenizer.json")) return;
    auto tokenizer = tok::load_tokenizer(dir / "tokenizer.json");
    for (bool specials : {false, true}) {
      const tok::Encoding encoding = tokenizer->encode(text, specials);
      (void)tokenizer->decode(encoding.ids, !specials);
      (void)tokenizer->encode_untrimmed(text, specials);
    }
  });
  return 0;
}
