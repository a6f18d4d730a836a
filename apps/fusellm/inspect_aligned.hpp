#pragma once
// `fusellm inspect ALIGNED_STORE`: the aligned store branch of inspect (per-source alignment statistics).
#include "fusellm/util/fs.hpp"

namespace fusellm::cli {

// True when `dir` holds an aligned store manifest (format fusellm.aligned_store).
bool is_aligned_store_dir(const fs::path& dir);

// Prints per source: chunks, positions, 1:1 rate, top-k use and fallback rate, mean chunk CE. Returns the
// exit code.
int inspect_aligned_store(const fs::path& dir, bool as_json);

}  // namespace fusellm::cli
