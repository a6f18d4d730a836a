#pragma once
// Block checksums: XXH3-64 of each fixed-size block of a file, recorded beside the whole-file checksum in a
// manifest, so a mismatch can say where a file is damaged ("bytes 8192..12287") and not only that it is.
// The block size adapts to the file — a power of two, at least 4 KiB, chosen so a file has at most 1024
// blocks — which keeps a manifest entry under 17 KB however large the shard.
#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>

#include "fusellm/util/fs.hpp"
#include "fusellm/util/json.hpp"

namespace fusellm {

// XXH3-64 (seed 0) as 16 lowercase hex digits: the whole-file checksum every manifest records.
std::string xxh3_hex(const void* data, size_t size);

struct BlockDigest {
  uint64_t block_bytes = 0;  // 0 = none recorded (files written before block digests existed)
  std::string hex;           // 16 lowercase hex digits per block, concatenated

  static BlockDigest of(const void* data, size_t size);
  static BlockDigest of_file(const fs::path& path);
  // Adds "block_bytes" and "block_xxh3" to a manifest entry (nothing when none is recorded) / reads them back
  // (both optional; a malformed value is an Error naming `where`).
  void to_json(json& entry) const;
  static BlockDigest from_json(const json& entry, const std::string& where);

  // When the whole-file checksum did not match: " in bytes B..E (block i of n)" for the first block whose
  // digest differs, or "" when no block digest is recorded or the size differs.
  std::string locate_damage(const void* data, size_t size) const;
};

}  // namespace fusellm
