#pragma once
// Shared helpers for the logit store tests: synthetic chunk records and whole-directory comparison.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <map>
#include <random>
#include <sstream>
#include <string>
#include <vector>

#include "fusellm/teacher/logit_store.hpp"
#include "fusellm/util/error.hpp"

namespace fusellm::teacher::test {

inline StoreInfo make_info(uint32_t vocab_size = 512, uint32_t k = 10, LogprobDtype dtype = LogprobDtype::F16) {
  StoreInfo info;
  info.model_name = "stories260K";
  info.model_path = "/models/stories260K-hf";
  info.model_type = "llama";
  info.tokenizer_hash = "tok-aaaa";
  info.chunk_dataset_hash = "chunks-bbbb";
  info.vocab_size = vocab_size;
  info.k = k;
  info.logprob_dtype = dtype;
  info.add_bos = true;
  info.add_eos = false;
  return info;
}

// A record shaped like a model's output: a random log-softmax over the vocabulary (computed in double),
// its true top-k (handed over in shuffled order, as a producer might), and the next token's log-prob.
// Deterministic in (chunk_id, seed).
inline ChunkRecord make_record(uint64_t chunk_id, uint32_t positions, uint32_t k, uint32_t vocab, uint64_t seed = 1) {
  std::mt19937_64 rng(chunk_id * 1000003u + seed);
  std::uniform_int_distribution<uint32_t> token(0, vocab - 1);
  ChunkRecord r;
  r.chunk_id = chunk_id;
  for (uint32_t t = 0; t < positions; ++t) r.input_ids.push_back(static_cast<int32_t>(token(rng)));
  // Few candidate tokens get most of the mass; the rest of the vocabulary shares a low logit.
  const uint32_t candidates = std::min<uint32_t>(vocab, 4 * k);
  std::normal_distribution<double> logit(0.0, 3.0);
  for (uint32_t t = 0; t < positions; ++t) {
    std::map<uint32_t, double> sparse;  // token -> logit; absent tokens have logit -8
    while (sparse.size() < candidates) sparse.emplace(token(rng), logit(rng));
    const uint32_t next = t + 1 < positions ? static_cast<uint32_t>(r.input_ids[t + 1]) : 0;
    if (!sparse.count(next) && t + 1 < positions) sparse[next] = logit(rng);
    double z = double(vocab - sparse.size()) * std::exp(-8.0);
    for (const auto& [id, l] : sparse) z += std::exp(l);
    const double log_z = std::log(z);
    std::vector<std::pair<double, uint32_t>> ranked;
    for (const auto& [id, l] : sparse) ranked.emplace_back(l - log_z, id);
    std::sort(ranked.begin(), ranked.end(), [](auto& a, auto& b) { return a.first > b.first; });
    ranked.resize(k);
    std::shuffle(ranked.begin(), ranked.end(), rng);
    for (const auto& [lp, id] : ranked) {
      r.topk_ids.push_back(static_cast<int32_t>(id));
      r.topk_logprobs.push_back(static_cast<float>(lp));
    }
    const double next_lp = t + 1 < positions ? sparse.at(next) - log_z : 0.0;
    r.next_token_logprob.push_back(t + 1 < positions ? static_cast<float>(next_lp) : 123.0f);  // last: ignored
  }
  return r;
}

inline std::string file_bytes(const std::filesystem::path& path) {
  std::ifstream in(path, std::ios::binary);
  std::ostringstream out;
  out << in.rdbuf();
  return out.str();
}

// name -> bytes of every regular file in a directory.
inline std::map<std::string, std::string> directory_contents(const std::filesystem::path& dir) {
  std::map<std::string, std::string> files;
  for (const auto& entry : std::filesystem::directory_iterator(dir))
    if (entry.is_regular_file()) files[entry.path().filename().string()] = file_bytes(entry.path());
  return files;
}

// Runs `fn` and returns the Error message it throws ("" when it does not throw).
template <typename Fn>
std::string error_of(Fn&& fn) {
  try {
    fn();
  } catch (const Error& e) {
    return e.what();
  }
  return "";
}

}  // namespace fusellm::teacher::test
