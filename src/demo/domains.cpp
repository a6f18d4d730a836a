// The demo's generated domains (domains.hpp). Each document is drawn from its own random stream, keyed by
// (seed, domain, split, index): a split's first N documents never change when more are asked for.
#include "fusellm/demo/domains.hpp"

#include <algorithm>
#include <random>
#include <set>

#include "fusellm/util/error.hpp"

namespace fusellm::demo {

namespace {

uint64_t splitmix64(uint64_t x) {
  x += 0x9E3779B97F4A7C15ull;
  x = (x ^ (x >> 30)) * 0xBF58476D1CE4E5B9ull;
  x = (x ^ (x >> 27)) * 0x94D049BB133111EBull;
  return x ^ (x >> 31);
}

uint64_t mix(std::initializer_list<uint64_t> parts) {
  uint64_t h = 0x243F6A8885A308D3ull;
  for (uint64_t p : parts) h = splitmix64(h ^ p);
  return h;
}

uint64_t name_key(const std::string& s) {
  uint64_t h = 1469598103934665603ull;  // FNV-1a: a domain's name as a stream key
  for (unsigned char c : s) h = (h ^ c) * 1099511628211ull;
  return h;
}

class Rng {
 public:
  explicit Rng(uint64_t seed) : g_(seed) {}
  uint64_t below(uint64_t n) { return g_() % n; }  // the bias is < 2^-50 for the n used here
  bool chance(uint64_t percent) { return below(100) < percent; }
  template <class T>
  const T& pick(const std::vector<T>& v) { return v[below(v.size())]; }

 private:
  std::mt19937_64 g_;
};

std::string join_list(const std::vector<int>& xs) {
  std::string s = "[";
  for (size_t i = 0; i < xs.size(); ++i) s += (i ? ", " : "") + std::to_string(xs[i]);
  return s + "]";
}

// ---- atlas: an invented world, fixed by the seed ----
struct Town {
  std::string name, region, river, goods;
  int founded = 0;
};

class Atlas : public Domain {
 public:
  explicit Atlas(uint64_t seed) : Domain(seed) {
    static const std::vector<std::string> syllables = {"ba", "ko",  "ri", "ta", "mel", "dor", "vin", "sa", "lu", "pe",
                                                       "ran", "ost", "el", "ny", "gar", "mo",  "ti",  "ve", "ka", "len"};
    static const std::vector<std::string> regions = {"Norvale", "Estmark", "Sudland", "Westmoor", "Highfell", "Lowmere"};
    static const std::vector<std::string> rivers = {"Osta", "Lenna", "Vire", "Tamber", "Kessa",
                                                    "Ulme", "Drava", "Sorn", "Ilse",   "Maren"};
    static const std::vector<std::string> goods = {"salt", "wool", "glass", "copper", "tea",    "cheese",
                                                   "silk", "iron", "honey", "timber", "wine", "paper"};
    Rng rng(mix({seed, name_key("atlas-world")}));
    std::set<std::string> used;
    while (towns_.size() < 40) {
      std::string n = rng.pick(syllables) + rng.pick(syllables) + (rng.chance(40) ? rng.pick(syllables) : "");
      n[0] = char(n[0] - 'a' + 'A');
      if (!used.insert(n).second) continue;
      towns_.push_back({n, rng.pick(regions), rng.pick(rivers), rng.pick(goods), int(1000 + rng.below(900))});
    }
  }
  std::string name() const override { return "atlas"; }

  std::vector<Question> questions(size_t count) const override {
    std::vector<Question> out;
    Rng rng(mix({seed_, name_key("atlas-questions")}));
    for (size_t i = 0; i < count; ++i) {
      const Town& t = towns_[rng.below(towns_.size())];
      switch (rng.below(4)) {
        case 0: out.push_back({"Q: Where is " + t.name + "? A:", t.region}); break;
        case 1: out.push_back({"Q: Which river flows through " + t.name + "? A:", t.river}); break;
        case 2: out.push_back({"Q: What is " + t.name + " known for? A:", t.goods}); break;
        default: out.push_back({"Q: When was " + t.name + " founded? A:", std::to_string(t.founded)}); break;
      }
    }
    return out;
  }

 protected:
  std::string document(uint64_t stream_seed) const override {
    Rng rng(stream_seed);
    std::string doc;
    const size_t towns = 2 + rng.below(3);
    for (size_t k = 0; k < towns; ++k) {
      const Town& t = towns_[rng.below(towns_.size())];
      const size_t facts = 2 + rng.below(3);
      for (size_t f = 0; f < facts; ++f) doc += statement(rng, t) + "\n";
    }
    return doc;
  }

 private:
  static std::string statement(Rng& rng, const Town& t) {
    const std::string year = std::to_string(t.founded);
    switch (rng.below(11)) {
      case 0: return t.name + " is a town in " + t.region + ".";
      case 1: return t.name + " lies in " + t.region + ", on the " + t.river + ".";
      case 2: return "The " + t.river + " flows through " + t.name + ".";
      case 3: return t.name + " is known for its " + t.goods + ".";
      case 4: return "Traders come to " + t.name + " for " + t.goods + ".";
      case 5: return t.name + " was founded in " + year + ".";
      case 6: return "In " + year + " the town of " + t.name + " was founded in " + t.region + ".";
      case 7: return "Q: Where is " + t.name + "? A: " + t.region;
      case 8: return "Q: Which river flows through " + t.name + "? A: " + t.river;
      case 9: return "Q: What is " + t.name + " known for? A: " + t.goods;
      default: return "Q: When was " + t.name + " founded? A: " + year;
    }
  }
  std::vector<Town> towns_;
};

// ---- arith: sums and differences of 0..29; a tenth of the problems only ever appear as questions ----
class Arith : public Domain {
 public:
  using Domain::Domain;
  std::string name() const override { return "arith"; }

  std::vector<Question> questions(size_t count) const override {
    std::vector<Question> out;
    Rng rng(mix({seed_, name_key("arith-questions")}));
    while (out.size() < count) {
      const auto [op, a, b] = draw(rng);
      if (!reserved(op, a, b)) continue;
      out.push_back({std::to_string(a) + (op ? " - " : " + ") + std::to_string(b) + " =", std::to_string(op ? a - b : a + b)});
    }
    return out;
  }

 protected:
  std::string document(uint64_t stream_seed) const override {
    Rng rng(stream_seed);
    std::string doc;
    for (size_t lines = 6 + rng.below(6); lines > 0;) {
      const auto [op, a, b] = draw(rng);
      if (reserved(op, a, b)) continue;
      doc += std::to_string(a) + (op ? " - " : " + ") + std::to_string(b) + " = " + std::to_string(op ? a - b : a + b) + "\n";
      --lines;
    }
    return doc;
  }

 private:
  static constexpr int kMax = 30;  // operands 0..29: a rule tiny models pick up in a few hundred steps
  static std::tuple<int, int, int> draw(Rng& rng) {
    const int op = int(rng.below(2)), a = int(rng.below(kMax)), b = int(rng.below(kMax));
    return op == 1 && b > a ? std::make_tuple(op, b, a) : std::make_tuple(op, a, b);
  }
  bool reserved(int op, int a, int b) const { return mix({seed_, uint64_t(op), uint64_t(a), uint64_t(b)}) % 10 == 0; }
};

// ---- code: Python over small lists, each call's output as a comment ----
class Code : public Domain {
 public:
  using Domain::Domain;
  std::string name() const override { return "code"; }

  std::vector<Question> questions(size_t count) const override {
    std::vector<Question> out;
    Rng rng(mix({seed_, name_key("code-questions")}));
    for (size_t i = 0; i < count; ++i) {
      const auto [call, result] = exchange(rng);
      out.push_back({call + "  #", result});
    }
    return out;
  }

 protected:
  std::string document(uint64_t stream_seed) const override {
    Rng rng(stream_seed);
    std::string doc;
    for (size_t n = 4 + rng.below(5); n > 0; --n) {
      const auto [call, result] = exchange(rng);
      doc += call + "  # " + result + "\n";
    }
    return doc;
  }

 private:
  static std::pair<std::string, std::string> exchange(Rng& rng) {
    std::vector<int> xs(2 + rng.below(3));
    for (int& x : xs) x = int(rng.below(10));
    const std::string list = join_list(xs);
    switch (rng.below(6)) {
      case 0: {
        std::vector<int> s = xs;
        std::sort(s.begin(), s.end());
        return {"print(sorted(" + list + "))", join_list(s)};
      }
      case 1: {
        std::vector<int> r(xs.rbegin(), xs.rend());
        return {"print(" + list + "[::-1])", join_list(r)};
      }
      case 2: return {"print(max(" + list + "))", std::to_string(*std::max_element(xs.begin(), xs.end()))};
      case 3: return {"print(min(" + list + "))", std::to_string(*std::min_element(xs.begin(), xs.end()))};
      case 4: return {"print(len(" + list + "))", std::to_string(xs.size())};
      default: {
        int sum = 0;
        for (int x : xs) sum += x;
        return {"print(sum(" + list + "))", std::to_string(sum)};
      }
    }
  }
};

}  // namespace

const char* to_string(Split split) {
  switch (split) {
    case Split::specialist: return "specialist";
    case Split::general: return "general";
    case Split::continual: return "continual";
    case Split::heldout: return "heldout";
  }
  return "?";
}

std::vector<std::string> Domain::documents(Split split, size_t bytes) const {
  std::vector<std::string> docs;
  size_t total = 0;
  for (uint64_t i = 0; total < bytes; ++i) {
    docs.push_back(document(mix({seed_, name_key(name()), uint64_t(split) + 1, i})));
    total += docs.back().size();
  }
  return docs;
}

std::vector<std::unique_ptr<Domain>> make_domains(uint64_t seed) {
  std::vector<std::unique_ptr<Domain>> out;
  out.push_back(std::make_unique<Atlas>(seed));
  out.push_back(std::make_unique<Arith>(seed));
  out.push_back(std::make_unique<Code>(seed));
  return out;
}

}  // namespace fusellm::demo
