#pragma once
// Internal to the data stage: sequential byte sources over plain, gzip and zstd files, and a line reader
// on top of them. Decompression errors throw Error naming the file.
#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "fusellm/data/corpus.hpp"

namespace fusellm::data {

class ByteStream {
 public:
  virtual ~ByteStream() = default;
  // Reads up to `n` bytes into `buf`; 0 only at the end of the stream.
  virtual size_t read(char* buf, size_t n) = 0;
};

std::unique_ptr<ByteStream> open_byte_stream(const fs::path& path, Compression compression);

// Splits a byte stream into lines at '\n' (the '\n' is removed; '\r' is kept for the caller to decide).
class LineReader {
 public:
  explicit LineReader(std::unique_ptr<ByteStream> stream);

  // The next line; false at the end (and on every later call). `ended_with_newline` tells whether the
  // line was terminated by '\n' (false only for a last line without one).
  bool next(std::string& line, bool* ended_with_newline = nullptr);
  uint64_t line_number() const { return line_number_; }  // 1-based number of the line last returned
  uint64_t bytes_read() const { return bytes_read_; }

 private:
  bool refill();

  std::unique_ptr<ByteStream> stream_;
  std::vector<char> buffer_;
  size_t begin_ = 0, end_ = 0;
  bool eof_ = false;
  uint64_t line_number_ = 0;
  uint64_t bytes_read_ = 0;
};

}  // namespace fusellm::data
