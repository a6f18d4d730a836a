#pragma once
// The BBH requests a reference fixture's "generate" entries name ({task, doc, max_new_tokens}): the task's
// prompt for that document, max_new_tokens from the entry, no stop strings (HF generate ran without one).
#include <map>
#include <string>
#include <vector>

#include "fusellm/eval/evaluator.hpp"

namespace fusellm::eval {

inline std::vector<Request> bbh_reference_requests(const json& generate, const fs::path& shared_data) {
  EvalOptions o;
  o.shared_data = shared_data;
  std::map<std::string, std::vector<Doc>> docs;
  std::vector<Request> out;
  for (const auto& g : generate) {
    const std::string task = "bbh_" + g["task"].get<std::string>();
    if (!docs.count(task)) docs[task] = load_task_docs(*make_task(task), o);
    Request r = docs[task].at(g["doc"].get<size_t>()).requests[0];
    r.max_new_tokens = g["max_new_tokens"].get<int>();
    r.stops.clear();
    out.push_back(r);
  }
  return out;
}

}  // namespace fusellm::eval
