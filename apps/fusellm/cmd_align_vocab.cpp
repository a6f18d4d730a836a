// `fusellm align-vocab --source DIR --target DIR [--method mined|exact] --out map.json [--cache DIR]
// [--threads N]`: the vocabulary map from a source (blending) tokenizer onto a target (base) tokenizer, written
// as the official FuseLLM JSON (keyed by the marker-replaced source token, valued by the target token).
#include <chrono>
#include <iostream>

#include "command.hpp"
#include "fusellm/align/vocab_map.hpp"
#include "fusellm/tokenizer/tokenizer.hpp"
#include "fusellm/util/error.hpp"
#include "fusellm/util/log.hpp"

namespace {

using namespace fusellm;

struct Options {
  std::string source, target, method = "mined", out, cache;
  int threads = 0;
};

int run(const Options& opt) {
  const align::VocabMapMethod method = align::parse_vocab_map_method(opt.method);
  auto source_tok = tok::load_tokenizer(opt.source);
  auto target_tok = tok::load_tokenizer(opt.target);
  const align::Vocabulary source = align::vocabulary_of(*source_tok), target = align::vocabulary_of(*target_tok);
  const auto start = std::chrono::steady_clock::now();
  align::VocabMap map;
  if (opt.cache.empty()) {
    map = align::build_vocab_map(source, target, method, opt.threads);
  } else {
    const align::VocabMapKey key{source_tok->hash(), target_tok->hash(), method,
                                 static_cast<uint32_t>(source.tokens.size()),
                                 static_cast<uint32_t>(target.tokens.size())};
    map = align::cached_vocab_map(fs::path(opt.cache) / align::vocab_map_cache_name(key), key, source, target,
                                  opt.threads);
  }
  const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  write_file_atomic(opt.out, align::vocab_map_official_json(map, source, target));
  size_t exact = 0, mapped = 0;
  for (size_t id = 0; id < map.target_id.size(); ++id) {
    exact += map.exact_hit[id];
    mapped += map.target_id[id] >= 0;
  }
  spdlog::info("{} -> {}: {} source tokens, {} exact, {} mapped ({}) in {:.2f} s; wrote {}", opt.source, opt.target,
               source.tokens.size(), exact, mapped, align::to_string(method), seconds, opt.out);
  return 0;
}

fusellm::cli::Action setup(CLI::App& app) {
  auto opt = std::make_shared<Options>();
  app.add_option("--source", opt->source, "Source (blending) tokenizer directory or file")->required();
  app.add_option("--target", opt->target, "Target (base) tokenizer directory or file")->required();
  app.add_option("--method", opt->method, "mined (official default: minimum edit distance) or exact")
      ->check(CLI::IsMember({"mined", "exact"}));
  app.add_option("--out", opt->out, "Output JSON (official FuseLLM format)")->required();
  app.add_option("--cache", opt->cache, "Directory of cached maps keyed by both tokenizer hashes and the method");
  app.add_option("--threads", opt->threads, "Worker threads (0 = all cores)");
  return [opt] { return run(*opt); };
}

}  // namespace
FUSELLM_COMMAND_NAMED(align_vocab, "align-vocab", "Map a source tokenizer's vocabulary onto a target's (FuseLLM MinED)",
                      setup);
