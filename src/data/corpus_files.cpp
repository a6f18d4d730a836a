// Turning corpus specs (files, directories, globs) into the sorted list of files to read, and hashing them.
#include <glob.h>
#include <unistd.h>
#include <xxhash.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <optional>
#include <set>

#include "fusellm/data/corpus.hpp"
#include "fusellm/util/error.hpp"
#include "fusellm/util/log.hpp"

namespace fusellm::data {

namespace {

constexpr const char* kSupportedTypes = ".jsonl, .ndjson, .txt, each optionally followed by .gz or .zst, or .parquet";

struct FileType {
  FileFormat format;
  Compression compression;
};

bool ends_with(const std::string& s, const std::string& suffix) {
  return s.size() >= suffix.size() && s.compare(s.size() - suffix.size(), suffix.size(), suffix) == 0;
}

// The corpus type of a file from its name (case-insensitive), or nullopt when it is not one.
std::optional<FileType> file_type_of(const fs::path& path) {
  std::string name = path.filename().string();
  std::transform(name.begin(), name.end(), name.begin(), [](unsigned char c) { return std::tolower(c); });
  Compression compression = Compression::None;
  for (auto [suffix, kind] : {std::pair{".gz", Compression::Gzip}, std::pair{".zst", Compression::Zstd},
                              std::pair{".zstd", Compression::Zstd}}) {
    if (ends_with(name, suffix)) {
      name.resize(name.size() - std::strlen(suffix));
      compression = kind;
      break;
    }
  }
  if (ends_with(name, ".jsonl") || ends_with(name, ".ndjson")) return FileType{FileFormat::Jsonl, compression};
  if (ends_with(name, ".parquet") && compression == Compression::None) return FileType{FileFormat::Parquet, compression};
  if (ends_with(name, ".txt")) return FileType{FileFormat::Text, compression};
  return std::nullopt;
}

bool has_glob_chars(const std::string& s) { return s.find_first_of("*?[{") != std::string::npos; }

class Collector {
 public:
  void add_file(const fs::path& path, const std::string& spec) {
    auto type = file_type_of(path);
    if (!type) fail("{}: unsupported corpus file type (expected {})", path.string(), kSupportedTypes);
    if (::access(path.c_str(), R_OK) != 0) fail("{}: cannot read: {}", path.string(), std::strerror(errno));
    fs::path normal = fs::absolute(path).lexically_normal();
    if (!seen_.insert(normal.string()).second) return;  // listed twice (e.g. a file and its directory)
    CorpusFile f;
    f.path = normal;
    f.format = type->format;
    f.compression = type->compression;
    std::error_code ec;
    f.size_bytes = fs::file_size(path, ec);
    files_.push_back(std::move(f));
  }

  // Every supported file below `dir` (hidden entries skipped); files of other types are skipped too.
  void add_directory(const fs::path& dir, const std::string& spec) {
    size_t before = files_.size(), ignored = 0;
    std::error_code ec;
    fs::recursive_directory_iterator it(dir, fs::directory_options::none, ec), end;
    if (ec) fail("{}: cannot list directory: {}", dir.string(), ec.message());
    for (; it != end; it.increment(ec)) {
      if (ec) fail("{}: cannot list directory: {}", dir.string(), ec.message());
      const fs::path& p = it->path();
      if (p.filename().string().rfind('.', 0) == 0) {
        if (it->is_directory()) it.disable_recursion_pending();
        continue;
      }
      if (!it->is_regular_file()) continue;
      if (file_type_of(p)) add_file(p, spec);
      else ++ignored;
    }
    if (files_.size() == before) {
      fail("{}: directory holds no corpus files ({}){}", dir.string(), kSupportedTypes,
           ignored ? fmt::format("; {} other files ignored", ignored) : "");
    }
    if (ignored) spdlog::debug("corpus: {}: ignored {} files of other types", dir.string(), ignored);
  }

  void add_spec(const std::string& spec, const fs::path& base_dir) {
    fs::path p(spec);
    if (p.is_relative() && !base_dir.empty()) p = base_dir / p;
    if (has_glob_chars(spec)) return add_glob(p.string(), spec);
    std::error_code ec;
    auto status = fs::status(p, ec);
    if (!fs::exists(status)) fail("{}: corpus file not found", p.string());
    if (fs::is_directory(status)) return add_directory(p, spec);
    add_file(p, spec);
  }

  void add_glob(const std::string& pattern, const std::string& spec) {
    glob_t g{};
    int rc = ::glob(pattern.c_str(), GLOB_BRACE | GLOB_TILDE | GLOB_ERR, nullptr, &g);
    std::vector<std::string> matches(g.gl_pathv, g.gl_pathv + (rc == 0 ? g.gl_pathc : 0));
    ::globfree(&g);
    if (rc == GLOB_NOMATCH) fail("{}: no file matches this pattern", pattern);
    if (rc != 0) fail("{}: cannot expand pattern ({})", pattern, rc == GLOB_NOSPACE ? "out of memory" : "read error");
    for (const auto& m : matches) {
      if (fs::is_directory(m)) add_directory(m, spec);
      else add_file(m, spec);
    }
  }

  std::vector<CorpusFile> take() { return std::move(files_); }

 private:
  std::vector<CorpusFile> files_;
  std::set<std::string> seen_;
};

// The deepest directory that holds every file.
fs::path common_directory(const std::vector<CorpusFile>& files) {
  fs::path common = files.front().path.parent_path();
  for (const auto& f : files) {
    fs::path dir = f.path.parent_path();
    fs::path shared;
    auto a = common.begin(), b = dir.begin();
    for (; a != common.end() && b != dir.end() && *a == *b; ++a, ++b) shared /= *a;
    common = shared;
  }
  return common;
}

}  // namespace

std::vector<CorpusFile> resolve_corpus(const std::vector<std::string>& specs, const fs::path& base_dir) {
  if (specs.empty()) fail("corpus: no files, directories or patterns given");
  Collector collector;
  for (const auto& spec : specs) {
    if (spec.empty()) fail("corpus: empty path given");
    collector.add_spec(spec, base_dir);
  }
  std::vector<CorpusFile> files = collector.take();
  fs::path common = common_directory(files);
  for (auto& f : files) f.name = f.path.lexically_relative(common).generic_string();
  // Byte-wise order of the names: independent of the locale and of the order the specs were given in.
  std::sort(files.begin(), files.end(), [](const CorpusFile& a, const CorpusFile& b) { return a.name < b.name; });
  return files;
}

std::string content_hash(const fs::path& path) {
  std::FILE* file = std::fopen(path.c_str(), "rb");
  if (!file) fail("{}: cannot open: {}", path.string(), std::strerror(errno));
  XXH3_state_t* state = XXH3_createState();
  XXH3_64bits_reset(state);
  std::vector<char> buf(1 << 20);
  size_t got;
  while ((got = std::fread(buf.data(), 1, buf.size(), file)) > 0) XXH3_64bits_update(state, buf.data(), got);
  bool error = std::ferror(file);
  std::fclose(file);
  XXH64_hash_t hash = XXH3_64bits_digest(state);
  XXH3_freeState(state);
  if (error) fail("{}: read error while hashing", path.string());
  return fmt::format("{:016x}", hash);
}

uint64_t document_key(std::string_view id) { return XXH3_64bits(id.data(), id.size()); }

}  // namespace fusellm::data
