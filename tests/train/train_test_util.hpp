#pragma once
// Shared pieces of the training tests: the stories260K target, token documents from the test corpora.
#include <string>
#include <vector>

#include "common/test_paths.hpp"
#include "fusellm/tokenizer/tokenizer.hpp"
#include "fusellm/train/trainer.hpp"
#include "fusellm/util/fs.hpp"

namespace fusellm::test {

inline fs::path stories_dir() { return shared_dir() / "data" / "models" / "stories260K-hf"; }

// Paragraphs of tiny Shakespeare (first `bytes` bytes), tokenized with the stories tokenizer.
inline std::vector<std::vector<int64_t>> shakespeare_documents(size_t bytes) {
  std::string text = read_file(shared_dir() / "data" / "corpus" / "tinyshakespeare.txt").substr(0, bytes);
  auto tokenizer = tok::load_tokenizer(stories_dir());
  std::vector<std::vector<int64_t>> docs;
  size_t pos = 0;
  while (pos < text.size()) {
    size_t end = text.find("\n\n", pos);
    if (end == std::string::npos) end = text.size();
    auto ids = tokenizer->encode_ids(text.substr(pos, end - pos), true);
    docs.emplace_back(ids.begin(), ids.end());
    pos = end + 2;
  }
  return docs;
}

}  // namespace fusellm::test
