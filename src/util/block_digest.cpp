// Block checksums (see block_digest.hpp).
#include "fusellm/util/block_digest.hpp"

#include <xxhash.h>

#include "fusellm/util/error.hpp"

namespace fusellm {
namespace {

constexpr uint64_t kMinBlock = 4096;
constexpr uint64_t kMaxBlocks = 1024;

uint64_t block_size_for(uint64_t size) {
  uint64_t block = kMinBlock;
  while (block * kMaxBlocks < size) block *= 2;
  return block;
}

}  // namespace

std::string xxh3_hex(const void* data, size_t size) { return fmt::format("{:016x}", XXH3_64bits(data, size)); }

BlockDigest BlockDigest::of(const void* data, size_t size) {
  BlockDigest digest;
  digest.block_bytes = block_size_for(size);
  const auto* bytes = static_cast<const uint8_t*>(data);
  for (uint64_t at = 0; at < size; at += digest.block_bytes)
    digest.hex += xxh3_hex(bytes + at, std::min<uint64_t>(digest.block_bytes, size - at));
  return digest;
}

BlockDigest BlockDigest::of_file(const fs::path& path) {
  MappedFile file(path);
  return of(file.data(), file.size());
}

void BlockDigest::to_json(json& entry) const {
  if (block_bytes == 0) return;
  entry["block_bytes"] = block_bytes;
  entry["block_xxh3"] = hex;
}

BlockDigest BlockDigest::from_json(const json& entry, const std::string& where) {
  BlockDigest digest;
  if (!entry.is_object() || !entry.contains("block_bytes")) return digest;
  const json& bytes = entry["block_bytes"];
  const json& hex = entry.contains("block_xxh3") ? entry["block_xxh3"] : json();
  FUSELLM_CHECK(bytes.is_number_unsigned() && bytes.get<uint64_t>() >= kMinBlock && hex.is_string() &&
                    hex.get<std::string>().size() % 16 == 0,
                "{}: malformed block checksums (block_bytes / block_xxh3)", where);
  digest.block_bytes = bytes.get<uint64_t>();
  digest.hex = hex.get<std::string>();
  return digest;
}

std::string BlockDigest::locate_damage(const void* data, size_t size) const {
  if (block_bytes == 0) return "";
  const uint64_t blocks = (size + block_bytes - 1) / block_bytes;
  if (blocks != hex.size() / 16) return "";
  const auto* bytes = static_cast<const uint8_t*>(data);
  for (uint64_t i = 0; i < blocks; ++i) {
    const uint64_t at = i * block_bytes, len = std::min<uint64_t>(block_bytes, size - at);
    if (xxh3_hex(bytes + at, len) != hex.substr(i * 16, 16))
      return fmt::format(" in bytes {}..{} (block {} of {})", at, at + len - 1, i + 1, blocks);
  }
  return "";
}

}  // namespace fusellm
