#pragma once
// Loading ../shared/golden/align (official FuseLLM outputs) for the alignment tests.
#include <fstream>
#include <string>
#include <vector>

#include "common/test_paths.hpp"
#include "fusellm/align/vocab_map.hpp"
#include "fusellm/util/json.hpp"

namespace fusellm::test {

inline std::filesystem::path golden_align_dir() { return shared_dir() / "golden" / "align"; }

inline std::vector<json> read_jsonl(const std::filesystem::path& path) {
  std::ifstream in(path);
  std::vector<json> rows;
  for (std::string line; std::getline(in, line);)
    if (!line.empty()) rows.push_back(json::parse(line));
  return rows;
}

// The 60 short and 2 long golden texts.
inline const std::vector<json>& golden_sequences() {
  static const std::vector<json> rows = [] {
    auto rows = read_jsonl(golden_align_dir() / "sequences.jsonl");
    for (auto& r : read_jsonl(golden_align_dir() / "long_sequences.jsonl")) rows.push_back(std::move(r));
    return rows;
  }();
  return rows;
}

// The official MinED map source -> base as ids (golden <stem>.ids.json), n = source vocabulary size.
inline align::VocabMap map_from_ids(const std::string& stem, size_t n) {
  const json ids = parse_json_file(golden_align_dir() / (stem + ".ids.json"));
  align::VocabMap map;
  map.target_id = ids.at("base_id_for_source_id").get<std::vector<int32_t>>();
  map.exact_hit.assign(n, 0);
  return map;
}

}  // namespace fusellm::test
