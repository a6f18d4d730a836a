// `fusellm inspect ALIGNED_STORE [--json]`: what an aligned store holds, per source.
#include "inspect_aligned.hpp"

#include <iostream>

#include "fusellm/align/aligned_store.hpp"
#include "fusellm/util/json.hpp"
#include "fusellm/util/log.hpp"

namespace fusellm::cli {

bool is_aligned_store_dir(const fs::path& dir) { return align::is_aligned_store(dir); }

int inspect_aligned_store(const fs::path& dir, bool as_json) {
  const align::AlignedStoreReader reader(dir);
  const align::AlignedStoreManifest& m = reader.manifest();
  json sources = json::array();
  for (size_t s = 0; s < m.sources.size(); ++s) {
    const auto& e = m.sources[s];
    json j = e.stats.to_json();
    j["name"] = e.name;
    j["is_target"] = e.is_target;
    sources.push_back(j);
  }
  if (as_json) {
    const json out = {{"path", dir.string()},          {"format", align::kAlignedStoreFormat},
                      {"chunk_dataset_hash", m.chunk_dataset_hash}, {"target", m.target_name},
                      {"records", reader.num_records()}, {"k", m.k},
                      {"settings", m.settings},          {"sources", sources}};
    std::cout << out.dump(2) << "\n";
    return 0;
  }
  std::cout << "aligned store " << dir.string() << "\n"
            << "target        " << m.target_name << " (vocabulary " << m.target_vocab << ", k " << m.k << ")\n"
            << "chunks        " << reader.num_records() << " (dataset " << m.chunk_dataset_hash << ")\n"
            << "settings      " << m.settings.dump() << "\n";
  for (const auto& e : m.sources) {
    const auto& p = e.stats.projection;
    std::cout << fmt::format("source {:<20} positions {:>10}  1:1 {:6.2f}%  top-k used {:6.2f}%  fallback {:6.2f}%{}\n",
                             e.name, p.positions, 100 * p.one_to_one_rate(),
                             p.positions ? 100.0 * p.used_topk / p.positions : 0.0, 100 * p.fallback_rate(),
                             e.is_target ? "  (target, identity)" : "");
  }
  return 0;
}

}  // namespace fusellm::cli
