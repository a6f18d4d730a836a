#pragma once
// Helpers for the chunker, chunk dataset and prepare tests: the three real tokenizers from ../shared, corpus
// samples cut from real text, and a fake tokenizer with fully predictable boundaries.
#include <gtest/gtest.h>

#include <fstream>
#include <memory>
#include <string>
#include <vector>

#include "common/test_paths.hpp"
#include "fusellm/data/chunk_dataset.hpp"
#include "fusellm/tokenizer/tokenizer.hpp"
#include "fusellm/util/fs.hpp"

namespace fusellm::test {

struct NamedTokenizer {
  std::string name;
  fs::path path;
  const tok::Tokenizer* tokenizer;
};

// Llama-2 (SentencePiece BPE with byte fallback), GPT-NeoX-20B (byte-level BPE) and tok512 (a tiny
// SentencePiece model: mostly byte pieces), loaded once per process. Requires ../shared.
inline const std::vector<NamedTokenizer>& real_tokenizers() {
  static const std::vector<NamedTokenizer> tokenizers = [] {
    const fs::path data = shared_dir() / "data";
    const std::vector<std::pair<std::string, fs::path>> specs = {
        {"llama2", data / "tokenizers/llama2/tokenizer.model"},
        {"neox", data / "tokenizers/gpt-neox-20b/20B_tokenizer.json"},
        {"tok512", data / "models/stories260K/tok512.model"}};
    static std::vector<std::unique_ptr<tok::Tokenizer>> owned;
    std::vector<NamedTokenizer> out;
    for (const auto& [name, path] : specs) {
      owned.push_back(tok::load_tokenizer(path));
      out.push_back({name, path, owned.back().get()});
    }
    return out;
  }();
  return tokenizers;
}

// Paragraphs (runs of non-blank lines, joined with "\n") of a text file in order, until `max_bytes` of them.
// Lines holding only whitespace count as blank (WikiText's are " ").
inline std::vector<std::string> paragraphs_of(const fs::path& file, size_t max_bytes) {
  const std::string text = read_file(file);
  std::vector<std::string> out;
  std::string current;
  size_t total = 0;
  for (size_t pos = 0; pos < text.size() && total < max_bytes;) {
    size_t end = text.find('\n', pos);
    if (end == std::string::npos) end = text.size();
    const std::string line = text.substr(pos, end - pos);
    pos = end + 1;
    if (line.find_first_not_of(" \t\r") != std::string::npos) {
      current += (current.empty() ? "" : "\n") + line;
    } else if (!current.empty()) {
      total += current.size();
      out.push_back(std::move(current));
      current.clear();
    }
  }
  if (!current.empty() && total < max_bytes) out.push_back(std::move(current));
  return out;
}

// Documents of several shapes from real text: short Shakespeare paragraphs, WikiText articles' paragraphs
// (leading spaces, " @-@ "), long documents made by joining many paragraphs (with "\n\n", "\n" and
// " " between them), a CJK + emoji run without spaces, and text around special-token strings.
inline std::vector<std::string> sample_documents() {
  const fs::path corpus = shared_dir() / "data" / "corpus";
  std::vector<std::string> docs;
  auto shakespeare = paragraphs_of(corpus / "tinyshakespeare.txt", 12000);
  auto wiki = paragraphs_of(corpus / "wikitext-2-test.txt", 16000);
  for (size_t i = 0; i < shakespeare.size(); i += 3) docs.push_back(shakespeare[i]);
  for (const auto& w : wiki) docs.push_back(w);
  const char* joins[] = {"\n\n", "\n", " "};
  for (int j = 0; j < 3; ++j) {
    std::string long_doc;
    for (size_t i = j; i < shakespeare.size(); i += 2) long_doc += (long_doc.empty() ? "" : joins[j]) + shakespeare[i];
    docs.push_back(long_doc);
  }
  std::string cjk;
  for (int i = 0; i < 150; ++i) cjk += "日本語のテキスト🙂中文字符";
  docs.push_back(cjk);
  docs.push_back("  leading spaces, trailing spaces   and   runs of    spaces </s> <s> <unk> <|endoftext|>  \n\n\n\t tab  ");
  return docs;
}

inline void write_text_file(const fs::path& path, const std::string& bytes) {
  fs::create_directories(path.parent_path());
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out.write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
  ASSERT_TRUE(out.good()) << path;
}

// A tokenizer with predictable boundaries: bytes in pairs, starting with a single byte when `odd` (so two
// such tokenizers, odd and even, share no boundary but 0 and the end). Offsets as given, ids = byte values.
class PairTokenizer : public tok::Tokenizer {
 public:
  explicit PairTokenizer(bool odd) : odd_(odd) { set_origin("pair", odd ? "pair-odd" : "pair-even"); }
  tok::Encoding encode(std::string_view text, bool) const override {
    tok::Encoding e;
    for (size_t p = 0; p < text.size();) {
      const size_t len = (odd_ && p == 0) ? 1 : 2;
      const size_t end = std::min(text.size(), p + len);
      e.ids.push_back(static_cast<uint8_t>(text[p]));
      e.offsets.emplace_back(static_cast<uint32_t>(p), static_cast<uint32_t>(end));
      p = end;
    }
    return e;
  }
  std::string decode(const std::vector<int32_t>&, bool) const override { return ""; }
  std::string id_to_token(int32_t id) const override { return std::string(1, static_cast<char>(id)); }
  std::optional<int32_t> token_to_id(std::string_view) const override { return std::nullopt; }
  size_t vocab_size() const override { return 256; }
  bool is_special(int32_t) const override { return false; }
  std::string kind() const override { return "pair"; }
  std::string space_marker() const override { return " "; }

 private:
  bool odd_;
};

}  // namespace fusellm::test
