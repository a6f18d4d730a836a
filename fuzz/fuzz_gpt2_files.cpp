// GPT-2 style vocab.json + merges.txt (and the optional tokenizer_config.json / special_tokens_map.json a
// directory may hold): load the directory as load_tokenizer does, then encode and decode a text.
// Bundle: `#@ vocab.json`, `#@ merges.txt`, optional configs, `#@ text`.
#include "fuzz_support.hpp"
#include "fusellm/tokenizer/tokenizer.hpp"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace fusellm;
  fuzz::init_quiet_logging();
  const std::string_view input(reinterpret_cast<const char*>(data), size);
  const fs::path dir = fuzz::materialize(input, "vocab.json");
  const std::string text = fuzz::section_or(input, "text", "Hello world, 123 é\n");
  fs::remove(dir / "text");
  fs::remove(dir / "tokenizer.json");  // this target is about the two-file format
  fs::remove(dir / "tokenizer.model");
  fuzz::expect_clean_errors("fuzz_gpt2_files", [&] {
    auto tokenizer = tok::load_tokenizer(dir);
    const tok::Encoding encoding = tokenizer->encode(text, true);
    (void)tokenizer->decode(encoding.ids, false);
  });
  return 0;
}
