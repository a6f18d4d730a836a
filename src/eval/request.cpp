// Request identity (the cache key) and the JSON forms of requests and results.
#include "fusellm/eval/request.hpp"

#include <xxhash.h>

#include "fusellm/util/error.hpp"
#include "fusellm/util/json.hpp"

namespace fusellm::eval {

const char* to_string(RequestKind kind) {
  switch (kind) {
    case RequestKind::loglikelihood: return "loglikelihood";
    case RequestKind::generate_until: return "generate_until";
    default: return "loglikelihood_rolling";
  }
}

json Request::to_json() const {
  json j = {{"kind", to_string(kind)}, {"context", context}};
  if (kind == RequestKind::loglikelihood) j["continuation"] = continuation;
  if (kind == RequestKind::generate_until) {
    j["stops"] = stops;
    j["max_new_tokens"] = max_new_tokens;
    j["add_bos"] = add_bos;
    if (stop_on_text) j["stop_on_text"] = true;  // only when set: earlier cache keys stay valid
    if (temperature > 0) j["sampling"] = {{"temperature", temperature}, {"top_p", top_p}, {"top_k", top_k},
                                          {"seed", seed}, {"sample", sample}};
    if (max_length > 0) j["max_length"] = max_length;
  }
  return j;
}

std::string Request::key() const {
  // The JSON text is unambiguous (strings escaped, fields named), so its hash identifies the request.
  const std::string text = to_json().dump(-1, ' ', false, json::error_handler_t::replace);
  const XXH128_hash_t h = XXH3_128bits(text.data(), text.size());
  return fmt::format("{:016x}{:016x}", static_cast<unsigned long long>(h.high64),
                     static_cast<unsigned long long>(h.low64));
}

uint64_t Request::sampling_seed() const {
  const std::string text = fmt::format("{}\x1f{}\x1f{}", seed, sample, context);
  return XXH3_64bits(text.data(), text.size());
}

json Result::to_json() const {
  json j = {{"logprob", logprob}, {"is_greedy", is_greedy}, {"tokens", tokens}};
  if (!text.empty()) j["text"] = text;
  if (truncated) j["truncated"] = true;
  return j;
}

Result Result::from_json(const json& j) {
  Result r;
  r.logprob = j.at("logprob").get<double>();
  r.is_greedy = j.at("is_greedy").get<bool>();
  r.tokens = require_integer<int64_t>(j.at("tokens"), "result: tokens");
  r.text = j.value("text", std::string());
  r.truncated = j.value("truncated", false);
  return r;
}

}  // namespace fusellm::eval
