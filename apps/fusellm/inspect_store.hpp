#pragma once
// `fusellm inspect STORE`: the logit store branch of inspect (summary statistics, or one record in full).
#include <cstdint>
#include <optional>

#include "fusellm/util/fs.hpp"

namespace fusellm::cli {

// True when `dir` holds a logit store manifest (manifest.json with format fusellm.logit_store).
bool is_logit_store(const fs::path& dir);

// Prints records, tokens, bytes/token, mean CE and mean top-k probability mass; with `dump_chunk`, that one
// record in full (ids, token strings, top-k ids/strings/log-probs). Returns the exit code.
int inspect_logit_store(const fs::path& dir, bool as_json, std::optional<uint64_t> dump_chunk);

}  // namespace fusellm::cli
