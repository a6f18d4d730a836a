#pragma once
// File helpers: whole-file reads, atomic writes (temp file + fsync + rename) and read-only memory maps.
#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <string>
#include <string_view>

namespace fusellm {

namespace fs = std::filesystem;

// Reads a whole file; throws Error naming the path when it is missing or unreadable.
std::string read_file(const fs::path& path);

// Writes `data` to `path` atomically: a crash leaves either the old file or the complete new one.
void write_file_atomic(const fs::path& path, std::string_view data);

// A temporary path beside `path` unique to this process and call, for writers that stream to disk.
fs::path temp_path_for(const fs::path& path);

// fsyncs `path` (file) and renames it onto `target`, then fsyncs the directory.
void commit_temp_file(const fs::path& temp, const fs::path& target);

// True for a name that stays in the directory it is joined to: 1–255 bytes, no '/' or NUL, not "." or "..".
// Names read from manifests (shards, sources) must pass it: a hostile manifest must not reach other files.
bool is_plain_file_name(std::string_view name);

// Read-only mmap of a whole file. Movable, not copyable.
class MappedFile {
 public:
  MappedFile() = default;
  explicit MappedFile(const fs::path& path);
  ~MappedFile();
  MappedFile(MappedFile&& other) noexcept;
  MappedFile& operator=(MappedFile&& other) noexcept;
  MappedFile(const MappedFile&) = delete;
  MappedFile& operator=(const MappedFile&) = delete;

  const uint8_t* data() const { return data_; }
  size_t size() const { return size_; }
  const fs::path& path() const { return path_; }

 private:
  void release();
  fs::path path_;
  const uint8_t* data_ = nullptr;
  size_t size_ = 0;
};

}  // namespace fusellm
