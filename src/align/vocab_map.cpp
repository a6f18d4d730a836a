// MinED vocabulary mapping. Exactness argument for the pruned search: Levenshtein(a, b) ≥ |len a − len b|,
// so once the best distance so far is `best`, target lengths with |Δlen| > best cannot win, and those with
// |Δlen| = best can only tie — they are still scanned so that a tie with a lower target id wins, exactly
// as Python's min() keeps the first minimum over the target list in id order.
#include "fusellm/util/target_clones.hpp"
#include "fusellm/align/vocab_map.hpp"

#include <algorithm>
#include <atomic>
#include <climits>
#include <cstring>
#include <exception>
#include <mutex>
#include <thread>
#include <unordered_map>

#include "fusellm/align/levenshtein.hpp"
#include "fusellm/tokenizer/tokenizer.hpp"
#include "fusellm/util/error.hpp"

namespace fusellm::align {

std::string_view to_string(VocabMapMethod method) { return method == VocabMapMethod::exact ? "exact" : "mined"; }

VocabMapMethod parse_vocab_map_method(std::string_view name) {
  if (name == "exact") return VocabMapMethod::exact;
  if (name == "mined" || name == "default") return VocabMapMethod::mined;
  fail("unknown vocabulary mapping method '{}' (expected mined or exact)", name);
}

Vocabulary vocabulary_of(const tok::Tokenizer& tokenizer) {
  Vocabulary v;
  v.marker = tokenizer.space_marker();
  v.tokens.reserve(tokenizer.vocab_size());
  for (size_t id = 0; id < tokenizer.vocab_size(); ++id)
    v.tokens.push_back(tokenizer.id_to_token(static_cast<int32_t>(id)));
  return v;
}

std::string replace_all(std::string_view text, std::string_view from, std::string_view to) {
  if (from.empty()) return std::string(text);
  std::string out;
  out.reserve(text.size());
  size_t pos = 0;
  for (size_t hit; (hit = text.find(from, pos)) != std::string_view::npos; pos = hit + from.size()) {
    out.append(text.substr(pos, hit - pos));
    out.append(to);
  }
  out.append(text.substr(pos));
  return out;
}

namespace {

// Target tokens grouped by code-point length; within a bucket ids ascend and the dense characters of all
// its tokens are stored back to back (fixed stride = the length).
struct Buckets {
  std::vector<std::vector<int32_t>> ids;     // [length] -> target ids
  std::vector<std::vector<uint32_t>> dense;  // [length] -> ids.size() * length dense chars
  std::vector<CodePoints> code_points;       // per target id (for the scalar path)
};

struct LaneBest {
  uint16_t dist[kBatchLanes];
  int32_t id[kBatchLanes];
};

typedef uint16_t U16x16 __attribute__((vector_size(32)));

// Scans one bucket for a batch of ≤16 patterns; lanes not in use carry a length of 0x7FFF so they never
// improve. Only when some lane may improve (dist ≤ best) does the scalar tie rule run.
FUSELLM_AVX2_CLONES void scan_bucket(const uint16_t* peq, const uint32_t* chars,
                                                                   size_t count, size_t len, const int32_t* ids,
                                                                   const uint16_t* high_bit, const uint16_t* length,
                                                                   LaneBest& best) {
  U16x16 high, init, eq, best_v;
  std::memcpy(&high, high_bit, sizeof high);
  std::memcpy(&init, length, sizeof init);
  std::memcpy(&best_v, best.dist, sizeof best_v);
  const U16x16 zero = {};
  const U16x16 one = zero + 1;
  for (size_t t = 0; t < count; ++t) {
    const uint32_t* text = chars + t * len;
    U16x16 pv = ~zero, mv = zero, score = init;
    for (size_t i = 0; i < len; ++i) {
      std::memcpy(&eq, peq + static_cast<size_t>(text[i]) * kBatchLanes, sizeof eq);
      const U16x16 xv = eq | mv;
      const U16x16 xh = (((eq & pv) + pv) ^ pv) | eq;
      U16x16 ph = mv | ~(xh | pv);
      U16x16 mh = pv & xh;
      score -= (U16x16)((ph & high) != zero);
      score += (U16x16)((mh & high) != zero);
      ph = (ph << 1) | one;
      mh = mh << 1;
      pv = mh | ~(xv | ph);
      mv = ph & xv;
    }
    const U16x16 may_improve = (U16x16)(score <= best_v);
    uint64_t any[4];
    std::memcpy(any, &may_improve, sizeof any);
    if (!(any[0] | any[1] | any[2] | any[3])) continue;
    uint16_t s[kBatchLanes];
    std::memcpy(s, &score, sizeof s);
    for (size_t lane = 0; lane < kBatchLanes; ++lane) {
      if (s[lane] < best.dist[lane] || (s[lane] == best.dist[lane] && ids[t] < best.id[lane])) {
        best.dist[lane] = s[lane];
        best.id[lane] = ids[t];
      }
    }
    std::memcpy(&best_v, best.dist, sizeof best_v);
  }
}

class MinedSearch {
 public:
  MinedSearch(const std::vector<CodePoints>& source_cps, const Vocabulary& target) : source_cps_(source_cps) {
    for (const auto& cps : source_cps)
      if (cps.size() <= kBatchMaxPattern)
        for (uint32_t cp : cps) alphabet_.add(cp);
    buckets_.code_points.resize(target.tokens.size());
    for (size_t id = 0; id < target.tokens.size(); ++id) {
      CodePoints cps = to_code_points(target.tokens[id]);
      const size_t len = cps.size();
      if (buckets_.ids.size() <= len) {
        buckets_.ids.resize(len + 1);
        buckets_.dense.resize(len + 1);
      }
      buckets_.ids[len].push_back(static_cast<int32_t>(id));
      for (uint32_t cp : cps) buckets_.dense[len].push_back(alphabet_.find(cp));
      buckets_.code_points[id] = std::move(cps);
    }
  }

  // Patterns of one length (1..16), at most 16 of them.
  void search_batch(const std::vector<int32_t>& sources, std::vector<int32_t>& result, PatternBatch& batch,
                    std::vector<std::vector<uint32_t>>& dense) const {
    std::vector<const std::vector<uint32_t>*> patterns;
    dense.resize(sources.size());
    for (size_t k = 0; k < sources.size(); ++k) {
      dense[k] = alphabet_.encode(source_cps_[sources[k]]);
      patterns.push_back(&dense[k]);
    }
    batch.set(patterns);
    uint16_t high[kBatchLanes] = {}, length[kBatchLanes];
    LaneBest best;
    for (size_t lane = 0; lane < kBatchLanes; ++lane) {
      const bool used = lane < sources.size();
      length[lane] = used ? static_cast<uint16_t>(dense[lane].size()) : 0x7FFF;
      high[lane] = used ? static_cast<uint16_t>(1u << (dense[lane].size() - 1)) : 0;
      best.dist[lane] = used ? 0x7FFE : 0;
      best.id[lane] = used ? INT32_MAX : -1;
    }
    const size_t len = dense[0].size();
    auto worst = [&] {
      int w = 0;
      for (size_t lane = 0; lane < sources.size(); ++lane) w = std::max<int>(w, best.dist[lane]);
      return w;
    };
    for (size_t d = 0;; ++d) {
      if (static_cast<int>(d) > worst()) break;
      if (d > len && len + d >= buckets_.ids.size()) break;
      for (int sign : {-1, 1}) {
        if (d == 0 && sign > 0) continue;
        const long bucket = static_cast<long>(len) + sign * static_cast<long>(d);
        if (bucket < 0 || bucket >= static_cast<long>(buckets_.ids.size()) || buckets_.ids[bucket].empty()) continue;
        scan_bucket(batch.table(), buckets_.dense[bucket].data(), buckets_.ids[bucket].size(),
                    static_cast<size_t>(bucket), buckets_.ids[bucket].data(), high, length, best);
      }
    }
    for (size_t lane = 0; lane < sources.size(); ++lane) result[sources[lane]] = best.id[lane];
  }

  // Any pattern length (used for 0 and > 16 code points): Myers ≤ 64, else the DP.
  int32_t search_one(int32_t source) const {
    const CodePoints& p = source_cps_[source];
    const bool myers = p.size() <= 64;
    const MyersPattern pattern = myers ? MyersPattern(p) : MyersPattern(CodePoints{});
    int best = INT_MAX;
    int32_t best_id = INT32_MAX;
    const size_t len = p.size();
    for (size_t d = 0;; ++d) {
      if (best != INT_MAX && static_cast<int>(d) > best) break;
      if (d > len && len + d >= buckets_.ids.size()) break;
      for (int sign : {-1, 1}) {
        if (d == 0 && sign > 0) continue;
        const long bucket = static_cast<long>(len) + sign * static_cast<long>(d);
        if (bucket < 0 || bucket >= static_cast<long>(buckets_.ids.size())) continue;
        for (int32_t id : buckets_.ids[bucket]) {
          const CodePoints& t = buckets_.code_points[id];
          const int dist = myers ? pattern.distance_bounded(t.data(), t.size(), best == INT_MAX ? INT_MAX - 1 : best)
                                 : levenshtein_dp(p, t);
          if (dist < best || (dist == best && id < best_id)) best = dist, best_id = id;
        }
      }
    }
    return best_id == INT32_MAX ? -1 : best_id;
  }

  size_t alphabet_size() const { return alphabet_.size(); }

 private:
  const std::vector<CodePoints>& source_cps_;
  DenseAlphabet alphabet_;
  Buckets buckets_;
};

}  // namespace

VocabMap build_vocab_map(const Vocabulary& source, const Vocabulary& target, VocabMapMethod method, int threads) {
  FUSELLM_CHECK(target.tokens.size() < static_cast<size_t>(INT32_MAX), "target vocabulary too large");
  VocabMap map;
  map.method = method;
  const size_t n = source.tokens.size();
  map.target_id.assign(n, -1);
  map.exact_hit.assign(n, 0);

  // Exact hits: the first target id with that string (Llama/SentencePiece vocabularies have no duplicates).
  std::unordered_map<std::string_view, int32_t> target_index;
  target_index.reserve(target.tokens.size() * 2);
  for (size_t id = 0; id < target.tokens.size(); ++id)
    target_index.emplace(target.tokens[id], static_cast<int32_t>(id));
  std::vector<CodePoints> source_cps(n);
  std::vector<int32_t> pending;
  for (size_t id = 0; id < n; ++id) {
    const std::string replaced = replace_all(source.tokens[id], source.marker, target.marker);
    if (auto it = target_index.find(replaced); it != target_index.end()) {
      map.target_id[id] = it->second;
      map.exact_hit[id] = 1;
    } else if (method == VocabMapMethod::mined) {
      source_cps[id] = to_code_points(replaced);
      pending.push_back(static_cast<int32_t>(id));
    }
  }
  if (pending.empty() || target.tokens.empty()) return map;

  // Work items: batches of ≤16 equal-length short patterns, and single long (or empty) patterns.
  std::stable_sort(pending.begin(), pending.end(),
                   [&](int32_t a, int32_t b) { return source_cps[a].size() < source_cps[b].size(); });
  std::vector<std::vector<int32_t>> work;
  for (size_t k = 0; k < pending.size();) {
    const size_t len = source_cps[pending[k]].size();
    std::vector<int32_t> item{pending[k++]};
    if (len >= 1 && len <= kBatchMaxPattern)
      while (k < pending.size() && item.size() < kBatchLanes && source_cps[pending[k]].size() == len)
        item.push_back(pending[k++]);
    work.push_back(std::move(item));
  }

  const MinedSearch search(source_cps, target);
  size_t workers = threads > 0 ? static_cast<size_t>(threads) : std::max(1u, std::thread::hardware_concurrency());
  workers = std::min(workers, work.size());
  std::atomic<size_t> next{0};
  std::exception_ptr error;
  std::mutex error_mutex;
  auto run = [&] {
    PatternBatch batch(search.alphabet_size());
    std::vector<std::vector<uint32_t>> dense;
    try {
      for (size_t w; (w = next.fetch_add(1)) < work.size();) {
        const auto& item = work[w];
        const size_t len = source_cps[item[0]].size();
        if (len >= 1 && len <= kBatchMaxPattern)
          search.search_batch(item, map.target_id, batch, dense);
        else
          map.target_id[item[0]] = search.search_one(item[0]);
      }
    } catch (...) {
      std::lock_guard<std::mutex> lock(error_mutex);
      if (!error) error = std::current_exception();
      next = work.size();
    }
  };
  if (workers <= 1) {
    run();
  } else {
    std::vector<std::thread> pool;
    for (size_t t = 0; t < workers; ++t) pool.emplace_back(run);
    for (auto& t : pool) t.join();
  }
  if (error) std::rethrow_exception(error);
  return map;
}

}  // namespace fusellm::align
