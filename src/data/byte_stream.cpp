#include "byte_stream.hpp"

#include <zlib.h>
#include <zstd.h>

#include <cerrno>
#include <cstdio>
#include <cstring>

#include "fusellm/util/error.hpp"

namespace fusellm::data {

namespace {

constexpr size_t kChunk = 1 << 20;

// Owns a FILE* opened for reading; read errors name the file.
class RawFile {
 public:
  explicit RawFile(const fs::path& path) : path_(path), file_(std::fopen(path.c_str(), "rb")) {
    if (!file_) fail("{}: cannot open: {}", path.string(), std::strerror(errno));
  }
  ~RawFile() { std::fclose(file_); }
  RawFile(const RawFile&) = delete;
  RawFile& operator=(const RawFile&) = delete;

  size_t read(char* buf, size_t n) {
    size_t got = std::fread(buf, 1, n, file_);
    if (got < n && std::ferror(file_)) fail("{}: read error: {}", path_.string(), std::strerror(errno));
    return got;
  }
  const fs::path& path() const { return path_; }

 private:
  fs::path path_;
  std::FILE* file_;
};

class PlainStream : public ByteStream {
 public:
  explicit PlainStream(const fs::path& path) : file_(path) {}
  size_t read(char* buf, size_t n) override { return file_.read(buf, n); }

 private:
  RawFile file_;
};

class GzipStream : public ByteStream {
 public:
  explicit GzipStream(const fs::path& path) : path_(path) {
    file_ = gzopen(path.c_str(), "rb");
    if (!file_) fail("{}: cannot open: {}", path.string(), errno ? std::strerror(errno) : "out of memory");
    gzbuffer(file_, 256 * 1024);
  }
  ~GzipStream() override { gzclose(file_); }

  size_t read(char* buf, size_t n) override {
    int got = gzread(file_, buf, static_cast<unsigned>(std::min<size_t>(n, 1u << 30)));
    if (got < 0) {
      int code = 0;
      const char* message = gzerror(file_, &code);
      fail("{}: corrupt gzip data: {}", path_.string(), message ? message : "unknown error");
    }
    if (got > 0 && !checked_format_) {
      // zlib passes non-gzip input through unchanged; a .gz name on something else is a mistake worth reporting.
      checked_format_ = true;
      if (gzdirect(file_)) fail("{}: not gzip data (no gzip header)", path_.string());
    }
    if (got == 0) {
      // zlib reports a file cut short as Z_BUF_ERROR at the end rather than as a failed read.
      int code = Z_OK;
      gzerror(file_, &code);
      if (code == Z_BUF_ERROR) fail("{}: truncated gzip data (unexpected end of file)", path_.string());
    }
    return static_cast<size_t>(got);
  }

 private:
  fs::path path_;
  gzFile file_ = nullptr;
  bool checked_format_ = false;
};

class ZstdStream : public ByteStream {
 public:
  explicit ZstdStream(const fs::path& path) : file_(path), in_buffer_(ZSTD_DStreamInSize()) {
    stream_ = ZSTD_createDStream();
    if (!stream_) fail("{}: cannot create a zstd decoder", path.string());
    ZSTD_initDStream(stream_);
  }
  ~ZstdStream() override { ZSTD_freeDStream(stream_); }

  size_t read(char* buf, size_t n) override {
    ZSTD_outBuffer out{buf, n, 0};
    while (out.pos == 0) {
      if (in_.pos == in_.size && !input_done_) {
        in_.size = file_.read(in_buffer_.data(), in_buffer_.size());
        in_.src = in_buffer_.data();
        in_.pos = 0;
        input_done_ = in_.size == 0;
      }
      if (input_done_ && !frame_open_) return 0;
      // At the end of the input, a call without input still flushes output the decoder holds back.
      size_t ret = ZSTD_decompressStream(stream_, &out, &in_);
      if (ZSTD_isError(ret)) fail("{}: corrupt zstd data: {}", file_.path().string(), ZSTD_getErrorName(ret));
      frame_open_ = ret != 0;
      // A frame still open with no input left and nothing more to flush means the file was cut short.
      if (input_done_ && out.pos == 0 && frame_open_)
        fail("{}: truncated zstd data (file ends inside a frame)", file_.path().string());
    }
    return out.pos;
  }

 private:
  RawFile file_;
  std::vector<char> in_buffer_;
  ZSTD_inBuffer in_{nullptr, 0, 0};
  ZSTD_DStream* stream_ = nullptr;
  bool input_done_ = false;
  bool frame_open_ = false;
};

}  // namespace

std::unique_ptr<ByteStream> open_byte_stream(const fs::path& path, Compression compression) {
  switch (compression) {
    case Compression::Gzip: return std::make_unique<GzipStream>(path);
    case Compression::Zstd: return std::make_unique<ZstdStream>(path);
    case Compression::None: break;
  }
  return std::make_unique<PlainStream>(path);
}

LineReader::LineReader(std::unique_ptr<ByteStream> stream) : stream_(std::move(stream)), buffer_(kChunk) {}

bool LineReader::refill() {
  if (eof_) return false;
  // Keep the unfinished line at the front and grow the buffer when one line fills it.
  if (begin_ > 0) {
    std::memmove(buffer_.data(), buffer_.data() + begin_, end_ - begin_);
    end_ -= begin_;
    begin_ = 0;
  }
  if (end_ == buffer_.size()) buffer_.resize(buffer_.size() * 2);
  size_t got = stream_->read(buffer_.data() + end_, buffer_.size() - end_);
  if (got == 0) {
    eof_ = true;
    return false;
  }
  end_ += got;
  bytes_read_ += got;
  return true;
}

bool LineReader::next(std::string& line, bool* ended_with_newline) {
  size_t scan_from = begin_;
  for (;;) {
    const char* start = buffer_.data() + scan_from;
    const void* hit = std::memchr(start, '\n', end_ - scan_from);
    if (hit) {
      size_t newline = static_cast<const char*>(hit) - buffer_.data();
      line.assign(buffer_.data() + begin_, newline - begin_);
      begin_ = newline + 1;
      ++line_number_;
      if (ended_with_newline) *ended_with_newline = true;
      return true;
    }
    size_t scanned = end_ - begin_;
    if (!refill()) {
      if (end_ == begin_) return false;
      line.assign(buffer_.data() + begin_, end_ - begin_);
      begin_ = end_;
      ++line_number_;
      if (ended_with_newline) *ended_with_newline = false;
      return true;
    }
    scan_from = begin_ + scanned;  // refill moved the data to the front; skip what was already searched
  }
}

}  // namespace fusellm::data
