// The document stream: JSONL records and plain-text documents, with bad-line handling and statistics.
#include <optional>

#include "byte_stream.hpp"
#include "fusellm/data/corpus.hpp"
#include "fusellm/data/parquet.hpp"
#include "fusellm/util/error.hpp"
#include "fusellm/util/json.hpp"
#include "fusellm/util/log.hpp"

namespace fusellm::data {

namespace {

bool is_blank(std::string_view s) { return s.find_first_not_of(" \t\r\n\f\v") == std::string_view::npos; }

std::string_view trim(std::string_view s) {
  size_t b = s.find_first_not_of(" \t\r\n\f\v");
  if (b == std::string_view::npos) return {};
  size_t e = s.find_last_not_of(" \t\r\n\f\v");
  return s.substr(b, e - b + 1);
}

void strip_cr(std::string& line) {
  if (!line.empty() && line.back() == '\r') line.pop_back();
}

void strip_bom(std::string& line) {
  if (line.compare(0, 3, "\xEF\xBB\xBF") == 0) line.erase(0, 3);
}

// nlohmann's parse messages start with "[json.exception.parse_error.101] parse error at line 1, column 5: ".
std::string short_json_error(const std::string& what) {
  std::string msg = what;
  if (auto pos = msg.find("] "); pos != std::string::npos) msg = msg.substr(pos + 2);
  if (auto pos = msg.find(": "); msg.rfind("parse error", 0) == 0 && pos != std::string::npos) {
    // keep the column ("column 5: syntax error ...") but drop the always-1 line of a one-line parse
    auto col = msg.find("column ");
    if (col != std::string::npos && col < pos) msg = msg.substr(col);
  }
  return msg;
}

}  // namespace

CorpusOptions CorpusOptions::from_config(const DataConfig& data) {
  CorpusOptions o;
  o.text_field = data.text_field;
  o.txt_mode = data.txt_mode;
  o.txt_separator = data.txt_separator;
  o.on_bad_line = data.on_bad_line;
  return o;
}

std::string CorpusStats::summary() const {
  std::string s = fmt::format("{} documents ({} bytes of text) from {} files", documents, text_bytes, files_read);
  if (bad_lines) s += fmt::format(", {} bad lines skipped", bad_lines);
  if (empty_documents) s += fmt::format(", {} empty documents skipped", empty_documents);
  return s;
}

struct CorpusReader::State {
  std::vector<CorpusFile> files;
  CorpusOptions options;
  CorpusStats stats;
  size_t file_index = 0;
  std::unique_ptr<LineReader> reader;  // open on files[file_index]
  // Parquet files: the text column of one row group at a time.
  std::unique_ptr<ParquetFile> parquet;
  size_t row_group = 0, row_in_group = 0, string_index = 0;
  uint64_t rows_before = 0;  // rows of the earlier row groups
  std::vector<std::string> strings;
  std::vector<bool> present;
  bool file_finished = false;          // TxtMode::Document: the one document of this file was taken
  bool ended = false;

  // A line that cannot be used: fatal or counted, never dropped silently.
  void bad_line(uint64_t line, const std::string& reason) {
    std::string msg = fmt::format("{}:{}: {}", files[file_index].path.string(), line, reason);
    if (options.on_bad_line == BadLinePolicy::Fail) fail("{} (data.on_bad_line = \"skip\" skips such lines)", msg);
    ++stats.bad_lines;
    if (stats.bad_line_examples.size() < options.max_warnings) {
      spdlog::warn("corpus: {} (skipped)", msg);
      stats.bad_line_examples.push_back(std::move(msg));
    }
  }

  void emit(Document& doc, uint64_t line, std::string text) {
    const CorpusFile& f = files[file_index];
    doc.id = fmt::format("{}:{}", f.name, line);
    doc.text = std::move(text);
    doc.file_index = file_index;
    doc.line = line;
    doc.ordinal = stats.documents++;
    stats.text_bytes += doc.text.size();
  }

  bool next_jsonl(Document& doc) {
    std::string line;
    while (reader->next(line)) {
      uint64_t n = reader->line_number();
      if (n == 1) strip_bom(line);
      if (is_blank(line)) {
        ++stats.blank_lines;
        continue;
      }
      json record;
      try {
        record = json::parse(line);
      } catch (const json::exception& e) {
        bad_line(n, "invalid JSON: " + short_json_error(e.what()));
        continue;
      }
      if (!record.is_object()) {
        bad_line(n, fmt::format("expected a JSON object, got {}", record.type_name()));
        continue;
      }
      auto it = record.find(options.text_field);
      if (it == record.end()) {
        bad_line(n, fmt::format("missing text field '{}'", options.text_field));
        continue;
      }
      if (!it->is_string()) {
        bad_line(n, fmt::format("text field '{}' must be a string, got {}", options.text_field, it->type_name()));
        continue;
      }
      std::string text = it->get<std::string>();
      if (is_blank(text)) {
        ++stats.empty_documents;
        continue;
      }
      emit(doc, n, std::move(text));
      return true;
    }
    return false;
  }

  // TxtMode::Line: every non-blank line.
  bool next_line(Document& doc) {
    std::string line;
    while (reader->next(line)) {
      uint64_t n = reader->line_number();
      if (n == 1) strip_bom(line);
      strip_cr(line);
      if (is_blank(line)) continue;
      if (!is_valid_utf8(line)) {
        bad_line(n, "invalid UTF-8");
        continue;
      }
      emit(doc, n, std::move(line));
      return true;
    }
    return false;
  }

  // TxtMode::Paragraph and TxtMode::Separator: blocks of lines joined with '\n'. Blank lines around a block
  // are not part of it; a block holding invalid UTF-8 is a bad line (reported at the first offending line).
  bool next_block(Document& doc) {
    const bool by_separator = options.txt_mode == TxtMode::Separator;
    std::string text, line;
    uint64_t start = 0, invalid_at = 0, held_blank_lines = 0;
    auto finish_block = [&]() {
      if (start == 0) return false;
      if (invalid_at) {
        bad_line(invalid_at, "invalid UTF-8");
        text.clear(), start = invalid_at = held_blank_lines = 0;
        return false;
      }
      emit(doc, start, std::move(text));
      return true;
    };
    while (reader->next(line)) {
      uint64_t n = reader->line_number();
      if (n == 1) strip_bom(line);
      strip_cr(line);
      bool blank = is_blank(line);
      bool boundary = by_separator ? trim(line) == options.txt_separator : blank;
      if (boundary) {
        if (finish_block()) return true;
        continue;
      }
      if (blank) {  // separator mode: a blank line inside a block is kept only if text follows it
        if (start) ++held_blank_lines;
        continue;
      }
      if (!invalid_at && !is_valid_utf8(line)) {
        if (options.on_bad_line == BadLinePolicy::Fail) bad_line(n, "invalid UTF-8");
        invalid_at = n;
      }
      if (start == 0) {
        start = n;
      } else {
        text.append(held_blank_lines + 1, '\n');
        held_blank_lines = 0;
      }
      text += line;
    }
    return finish_block();
  }

  // TxtMode::Document: the whole file, byte for byte.
  bool next_document(Document& doc) {
    if (file_finished) return false;
    file_finished = true;
    std::string text, line;
    bool newline = false;
    uint64_t invalid_at = 0;
    while (reader->next(line, &newline)) {
      if (!invalid_at && !is_valid_utf8(line)) {
        invalid_at = reader->line_number();
        if (options.on_bad_line == BadLinePolicy::Fail) bad_line(invalid_at, "invalid UTF-8");
      }
      text += line;
      if (newline) text += '\n';
    }
    if (text.compare(0, 3, "\xEF\xBB\xBF") == 0) text.erase(0, 3);
    if (invalid_at) {
      bad_line(invalid_at, "invalid UTF-8");
      return false;
    }
    if (is_blank(text)) {
      ++stats.empty_documents;
      return false;
    }
    emit(doc, 1, std::move(text));
    return true;
  }

  // Parquet: the text field's column, row by row; "line" = the 1-based row number in the file. A null or
  // blank text is an empty document (skipped), bytes that are not UTF-8 a bad line.
  bool next_parquet(Document& doc) {
    for (;;) {
      if (row_in_group == present.size()) {
        if (row_group == parquet->num_row_groups()) return false;
        rows_before += present.size();
        strings = parquet->read_strings(row_group++, options.text_field, present);
        row_in_group = string_index = 0;
        continue;
      }
      const uint64_t row = rows_before + ++row_in_group;
      if (!present[row_in_group - 1]) {
        ++stats.empty_documents;
        continue;
      }
      std::string text = std::move(strings[string_index++]);
      if (!is_valid_utf8(text)) {
        bad_line(row, "invalid UTF-8");
        continue;
      }
      if (is_blank(text)) {
        ++stats.empty_documents;
        continue;
      }
      emit(doc, row, std::move(text));
      return true;
    }
  }

  bool next_in_file(Document& doc) {
    if (files[file_index].format == FileFormat::Jsonl) return next_jsonl(doc);
    if (files[file_index].format == FileFormat::Parquet) return next_parquet(doc);
    switch (options.txt_mode) {
      case TxtMode::Document: return next_document(doc);
      case TxtMode::Line: return next_line(doc);
      case TxtMode::Paragraph:
      case TxtMode::Separator: return next_block(doc);
    }
    return false;
  }

  void finish_corpus() {
    ended = true;
    if (stats.bad_lines) {
      spdlog::warn("corpus: skipped {} bad lines (first: {})", stats.bad_lines, stats.bad_line_examples.front());
    }
    if (stats.documents == 0) {
      std::string where = files.size() == 1 ? files.front().path.string()
                                            : fmt::format("{} and {} more files", files.front().path.string(),
                                                          files.size() - 1);
      fail("{}: corpus has no documents ({})", where, stats.summary());
    }
    spdlog::debug("corpus: {}", stats.summary());
  }
};

CorpusReader::CorpusReader(const std::vector<std::string>& specs, CorpusOptions options, const fs::path& base_dir)
    : CorpusReader(resolve_corpus(specs, base_dir), std::move(options)) {}

CorpusReader::CorpusReader(std::vector<CorpusFile> files, CorpusOptions options) : state_(std::make_unique<State>()) {
  if (files.empty()) fail("corpus: no files given");
  FUSELLM_CHECK(!options.text_field.empty(), "corpus: the JSONL text field name must not be empty");
  FUSELLM_CHECK(!options.txt_separator.empty() || options.txt_mode != TxtMode::Separator,
                "corpus: txt_mode 'separator' needs a non-empty separator");
  state_->files = std::move(files);
  state_->options = std::move(options);
}

CorpusReader::~CorpusReader() = default;
CorpusReader::CorpusReader(CorpusReader&&) noexcept = default;
CorpusReader& CorpusReader::operator=(CorpusReader&&) noexcept = default;

bool CorpusReader::next(Document& doc) {
  State& s = *state_;
  while (!s.ended) {
    if (s.file_index == s.files.size()) {
      s.finish_corpus();
      return false;
    }
    const CorpusFile& f = s.files[s.file_index];
    if (f.format == FileFormat::Parquet && !s.parquet) {
      s.parquet = std::make_unique<ParquetFile>(f.path);
      s.row_group = s.row_in_group = s.string_index = 0;
      s.rows_before = 0;
      s.present.clear();
      s.strings.clear();
    } else if (f.format != FileFormat::Parquet && !s.reader) {
      s.reader = std::make_unique<LineReader>(open_byte_stream(f.path, f.compression));
      s.file_finished = false;
    }
    if (s.next_in_file(doc)) return true;
    s.stats.input_bytes += s.reader ? s.reader->bytes_read() : f.size_bytes;
    ++s.stats.files_read;
    s.reader.reset();
    s.parquet.reset();
    ++s.file_index;
  }
  return false;
}

const std::vector<CorpusFile>& CorpusReader::files() const { return state_->files; }
const CorpusStats& CorpusReader::stats() const { return state_->stats; }

std::vector<Document> read_corpus(const std::vector<std::string>& specs, const CorpusOptions& options,
                                  const fs::path& base_dir, CorpusStats* stats) {
  CorpusReader reader(specs, options, base_dir);
  std::vector<Document> docs;
  Document doc;
  while (reader.next(doc)) docs.push_back(std::move(doc));
  if (stats) *stats = reader.stats();
  return docs;
}

}  // namespace fusellm::data
