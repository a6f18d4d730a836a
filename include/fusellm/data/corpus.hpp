#pragma once
// Reading a text corpus as a stream of documents. Sources: JSONL (.jsonl/.ndjson, text in a configurable
// field) and plain text (.txt, cut into documents by TxtMode), each optionally compressed (.gz, .zst); given
// as files, directories (searched recursively) or glob patterns. Files are read in sorted order and every
// document carries a stable id, so two reads of the same corpus give the same ids in the same order.
// Format reference: docs/formats.md ("Corpus").
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "fusellm/util/experiment_config.hpp"
#include "fusellm/util/fs.hpp"

namespace fusellm::data {

enum class FileFormat { Jsonl, Text, Parquet };
enum class Compression { None, Gzip, Zstd };

struct CorpusFile {
  fs::path path;  // absolute, normalized (symlinks kept as named)
  // The file's path relative to the deepest directory holding every corpus file (just the file name when
  // there is one file). Doc ids use it, so moving the whole corpus elsewhere keeps them.
  std::string name;
  FileFormat format = FileFormat::Text;
  Compression compression = Compression::None;
  uint64_t size_bytes = 0;  // on disk
};

struct CorpusOptions {
  std::string text_field = "text";  // JSONL: the field holding the document text
  TxtMode txt_mode = TxtMode::Paragraph;
  std::string txt_separator = "<|endoftext|>";  // TxtMode::Separator: a line equal to this ends a document
  BadLinePolicy on_bad_line = BadLinePolicy::Fail;
  size_t max_warnings = 5;  // skipped bad lines logged one by one; the rest only in the final summary

  static CorpusOptions from_config(const DataConfig& data);
};

struct Document {
  // "<file name>:<line>", line = 1-based number of the document's first line in the (decompressed) file.
  std::string id;
  std::string text;  // UTF-8
  size_t file_index = 0;  // into CorpusReader::files()
  uint64_t line = 0;
  uint64_t ordinal = 0;  // 0-based position in the stream
};

struct CorpusStats {
  uint64_t files_read = 0;       // files read to their end
  uint64_t documents = 0;        // documents returned
  uint64_t text_bytes = 0;       // bytes of document text returned
  uint64_t input_bytes = 0;      // bytes read after decompression
  uint64_t bad_lines = 0;        // skipped by on_bad_line = skip (fail throws instead)
  uint64_t empty_documents = 0;  // JSONL records / whole files whose text is only whitespace; skipped
  uint64_t blank_lines = 0;      // whitespace-only lines in JSONL files; skipped
  std::vector<std::string> bad_line_examples;  // the first max_warnings messages, "file:line: reason"

  std::string summary() const;
};

// Resolves files, directories and globs (relative ones against base_dir when given) into the sorted,
// de-duplicated list of corpus files. Throws Error naming the spec that is missing, unreadable, matches
// nothing, or names a file of an unsupported type.
std::vector<CorpusFile> resolve_corpus(const std::vector<std::string>& specs, const fs::path& base_dir = {});

// Streams documents from every file in order. Errors (corrupt compressed data, a bad line under
// BadLinePolicy::Fail, a corpus without any document) throw Error naming the file (and line).
class CorpusReader {
 public:
  CorpusReader(const std::vector<std::string>& specs, CorpusOptions options, const fs::path& base_dir = {});
  CorpusReader(std::vector<CorpusFile> files, CorpusOptions options);
  ~CorpusReader();
  CorpusReader(CorpusReader&&) noexcept;
  CorpusReader& operator=(CorpusReader&&) noexcept;

  // The next document; false at the end of the corpus.
  bool next(Document& doc);

  const std::vector<CorpusFile>& files() const;
  const CorpusStats& stats() const;

 private:
  struct State;
  std::unique_ptr<State> state_;
};

// Convenience: every document of a corpus in memory (small corpora, tests).
std::vector<Document> read_corpus(const std::vector<std::string>& specs, const CorpusOptions& options,
                                  const fs::path& base_dir = {}, CorpusStats* stats = nullptr);

// XXH3-64 of a file's bytes on disk (compressed bytes for .gz/.zst), as 16 lowercase hex digits. Streams.
std::string content_hash(const fs::path& path);

// A numeric document id: XXH3-64 of Document::id (stable wherever the string id is).
uint64_t document_key(std::string_view id);

// True when `bytes` is well-formed UTF-8 (no overlong forms, surrogates or code points above U+10FFFF).
bool is_valid_utf8(std::string_view bytes);

}  // namespace fusellm::data
