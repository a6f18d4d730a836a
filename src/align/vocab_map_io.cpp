// Vocabulary maps on disk: the official JSON (export only) and fusellm's binary cache.
#include <xxhash.h>

#include <cstring>
#include <unordered_map>

#include "fusellm/align/levenshtein.hpp"
#include "fusellm/align/vocab_map.hpp"
#include "fusellm/util/error.hpp"
#include "fusellm/util/log.hpp"

namespace fusellm::align {

std::string python_json_string(std::string_view utf8) {
  std::string out = "\"";
  auto hex4 = [&](uint32_t unit) { out += fmt::format("\\u{:04x}", unit); };
  for (uint32_t cp : to_code_points(utf8)) {
    switch (cp) {
      case '"':
        out += "\\\"";
        continue;
      case '\\':
        out += "\\\\";
        continue;
      case '\n':
        out += "\\n";
        continue;
      case '\r':
        out += "\\r";
        continue;
      case '\t':
        out += "\\t";
        continue;
      case '\b':
        out += "\\b";
        continue;
      case '\f':
        out += "\\f";
        continue;
      default:
        break;
    }
    if (cp >= 0x20 && cp <= 0x7E) {
      out += static_cast<char>(cp);
    } else if (cp < 0x10000) {
      hex4(cp);
    } else {  // UTF-16 surrogate pair, as Python's ensure_ascii writes it
      const uint32_t v = cp - 0x10000;
      hex4(0xD800 + (v >> 10));
      hex4(0xDC00 + (v & 0x3FF));
    }
  }
  out += '"';
  return out;
}

std::string vocab_map_official_json(const VocabMap& map, const Vocabulary& source, const Vocabulary& target) {
  FUSELLM_CHECK(map.target_id.size() == source.tokens.size(), "vocabulary map has {} entries for {} source tokens",
                map.target_id.size(), source.tokens.size());
  // Python dict semantics: a repeated key keeps its first position and takes the last value.
  std::vector<std::string> keys;
  std::vector<int32_t> values;
  std::unordered_map<std::string, size_t> position;
  for (size_t id = 0; id < source.tokens.size(); ++id) {
    const int32_t t = map.target_id[id];
    if (t < 0) continue;
    FUSELLM_CHECK(static_cast<size_t>(t) < target.tokens.size(), "vocabulary map: target id {} out of range", t);
    std::string key = replace_all(source.tokens[id], source.marker, target.marker);
    auto [it, inserted] = position.emplace(key, keys.size());
    if (inserted) {
      keys.push_back(std::move(key));
      values.push_back(t);
    } else {
      values[it->second] = t;
    }
  }
  std::string out = "{";
  for (size_t k = 0; k < keys.size(); ++k) {
    if (k) out += ", ";
    out += python_json_string(keys[k]);
    out += ": ";
    out += python_json_string(target.tokens[values[k]]);
  }
  out += "}";
  return out;
}

namespace {

constexpr char kMagic[8] = {'F', 'L', 'V', 'M', 'A', 'P', '0', '1'};

void put_u32(std::string& out, uint32_t v) {
  for (int i = 0; i < 4; ++i) out += static_cast<char>((v >> (8 * i)) & 0xFF);
}
void put_str(std::string& out, const std::string& s) {
  put_u32(out, static_cast<uint32_t>(s.size()));
  out += s;
}

class Reader {
 public:
  Reader(const std::string& data, size_t end) : data_(data), end_(end) {}
  bool u32(uint32_t& v) {
    if (end_ - pos_ < 4) return false;
    v = 0;
    for (int i = 0; i < 4; ++i) v |= static_cast<uint32_t>(static_cast<uint8_t>(data_[pos_ + i])) << (8 * i);
    pos_ += 4;
    return true;
  }
  bool str(std::string& s) {
    uint32_t n;
    if (!u32(n) || end_ - pos_ < n) return false;
    s = data_.substr(pos_, n);
    pos_ += n;
    return true;
  }
  bool bytes(void* dst, size_t n) {
    if (end_ - pos_ < n) return false;
    std::memcpy(dst, data_.data() + pos_, n);
    pos_ += n;
    return true;
  }
  bool done() const { return pos_ == end_; }

 private:
  const std::string& data_;
  size_t end_, pos_ = 0;
};

}  // namespace

std::string vocab_map_cache_name(const VocabMapKey& key) {
  return fmt::format("vocab_map-{}-{}-{}.bin", key.source_hash, key.target_hash, to_string(key.method));
}

void write_vocab_map_cache(const fs::path& path, const VocabMapKey& key, const VocabMap& map) {
  FUSELLM_CHECK(map.target_id.size() == key.source_size && map.exact_hit.size() == key.source_size,
                "{}: vocabulary map size {} does not match the key's source size {}", path.string(),
                map.target_id.size(), key.source_size);
  std::string out(kMagic, sizeof kMagic);
  put_u32(out, key.method == VocabMapMethod::exact ? 0 : 1);
  put_u32(out, key.source_size);
  put_u32(out, key.target_size);
  put_str(out, key.source_hash);
  put_str(out, key.target_hash);
  for (int32_t t : map.target_id) put_u32(out, static_cast<uint32_t>(t));
  out.append(reinterpret_cast<const char*>(map.exact_hit.data()), map.exact_hit.size());
  const uint64_t sum = XXH3_64bits(out.data(), out.size());
  for (int i = 0; i < 8; ++i) out += static_cast<char>((sum >> (8 * i)) & 0xFF);
  if (path.has_parent_path()) fs::create_directories(path.parent_path());
  write_file_atomic(path, out);
}

bool read_vocab_map_cache(const fs::path& path, const VocabMapKey& key, VocabMap& map) {
  if (!fs::exists(path)) return false;
  const std::string data = read_file(path);
  auto reject = [&](const char* why) {
    spdlog::warn("{}: vocabulary map cache ignored ({}); it will be rebuilt", path.string(), why);
    return false;
  };
  if (data.size() < sizeof kMagic + 8 || std::memcmp(data.data(), kMagic, sizeof kMagic) != 0)
    return reject("not a fusellm vocabulary map cache");
  uint64_t stored = 0;
  for (int i = 0; i < 8; ++i)
    stored |= static_cast<uint64_t>(static_cast<uint8_t>(data[data.size() - 8 + i])) << (8 * i);
  if (XXH3_64bits(data.data(), data.size() - 8) != stored) return reject("checksum mismatch");
  Reader r(data, data.size() - 8);
  std::string magic(sizeof kMagic, '\0');
  uint32_t method, source_size, target_size;
  std::string source_hash, target_hash;
  if (!r.bytes(magic.data(), magic.size()) || !r.u32(method) || !r.u32(source_size) || !r.u32(target_size) ||
      !r.str(source_hash) || !r.str(target_hash))
    return reject("truncated header");
  const VocabMapMethod m = method == 0 ? VocabMapMethod::exact : VocabMapMethod::mined;
  if (m != key.method || source_size != key.source_size || target_size != key.target_size ||
      source_hash != key.source_hash || target_hash != key.target_hash)
    return reject(fmt::format("built for source {} ({} tokens) -> target {} ({} tokens), method {}", source_hash,
                              source_size, target_hash, target_size, to_string(m))
                      .c_str());
  VocabMap out;
  out.method = m;
  out.target_id.resize(source_size);
  out.exact_hit.resize(source_size);
  for (auto& t : out.target_id) {
    uint32_t v;
    if (!r.u32(v)) return reject("truncated map");
    t = static_cast<int32_t>(v);
    if (t < -1 || (t >= 0 && static_cast<uint32_t>(t) >= target_size)) return reject("target id out of range");
  }
  if (!r.bytes(out.exact_hit.data(), source_size) || !r.done()) return reject("bad length");
  map = std::move(out);
  return true;
}

VocabMap cached_vocab_map(const fs::path& path, const VocabMapKey& key, const Vocabulary& source,
                          const Vocabulary& target, int threads) {
  FUSELLM_CHECK(key.source_size == source.tokens.size() && key.target_size == target.tokens.size(),
                "{}: cache key sizes {}/{} do not match the vocabularies {}/{}", path.string(), key.source_size,
                key.target_size, source.tokens.size(), target.tokens.size());
  VocabMap map;
  if (read_vocab_map_cache(path, key, map)) return map;
  map = build_vocab_map(source, target, key.method, threads);
  write_vocab_map_cache(path, key, map);
  return map;
}

}  // namespace fusellm::align
