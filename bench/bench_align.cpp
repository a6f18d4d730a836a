// Token-alignment speed against the official FuseLLM code (../shared/golden/align/timings.json):
// DTW and offsets alignment per sequence pair on long_sequences.jsonl (512 and 2048 Llama-2 tokens, NeoX
// and tok512 sources), and the NeoX -> Llama-2 MinED vocabulary mapping.
// Usage: bench_align [shared_dir]   (default: $FUSELLM_SHARED_DIR or ../shared beside the checkout)
// Times are medians of repeated calls, as wall time and as the calling thread's CPU time (the CPU time is the
// better estimate of an idle machine when other jobs share the cores; the official times were wall times).
#include <time.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <map>
#include <string>
#include <vector>

#include "bench_args.hpp"
#include "fusellm/align/alignment.hpp"
#include "fusellm/align/project.hpp"
#include "fusellm/align/vocab_map.hpp"
#include "fusellm/tokenizer/tokenizer.hpp"
#include "fusellm/util/json.hpp"

namespace fs = std::filesystem;
using namespace fusellm;
using namespace fusellm::align;
using Clock = std::chrono::steady_clock;

namespace {

double seconds_since(Clock::time_point start) { return std::chrono::duration<double>(Clock::now() - start).count(); }

double cpu_now(clockid_t clock) {
  timespec ts;
  clock_gettime(clock, &ts);
  return ts.tv_sec + ts.tv_nsec * 1e-9;
}

struct Timing {
  double wall = 0, cpu = 0;  // median seconds per call
};

// Median wall and thread-CPU seconds of one call, repeating until ~0.3 s or `max_reps`.
template <typename F>
Timing median_time(F&& f, int max_reps = 2000) {
  std::vector<double> walls, cpus;
  const auto begin = Clock::now();
  while (static_cast<int>(walls.size()) < max_reps && (walls.size() < 5 || seconds_since(begin) < 0.3)) {
    const auto t = Clock::now();
    const double c = cpu_now(CLOCK_THREAD_CPUTIME_ID);
    f();
    cpus.push_back(cpu_now(CLOCK_THREAD_CPUTIME_ID) - c);
    walls.push_back(seconds_since(t));
  }
  std::sort(walls.begin(), walls.end());
  std::sort(cpus.begin(), cpus.end());
  return {walls[walls.size() / 2], cpus[cpus.size() / 2]};
}

std::vector<ByteSpan> spans_with_eos(const tok::Encoding& e, size_t text_size) {
  std::vector<ByteSpan> spans(e.offsets.begin(), e.offsets.end());
  spans.emplace_back(static_cast<uint32_t>(text_size), static_cast<uint32_t>(text_size));
  return spans;
}

}  // namespace

int run(int argc, char** argv) {
  fs::path shared;
  fusellm::bench::check_arg_count("bench_align", argc, 1, "[shared_dir]");
  if (argc > 1)
    shared = argv[1];
  else if (const char* env = std::getenv("FUSELLM_SHARED_DIR"); env && *env)
    shared = env;
  else
    shared = fs::path(FUSELLM_SOURCE_DIR).parent_path() / "shared";
  const fs::path golden = shared / "golden" / "align";
  if (!fs::exists(golden / "timings.json")) {
    std::fprintf(stderr, "bench_align: %s not found (pass the shared directory)\n", golden.string().c_str());
    return 2;
  }
  const json timings = parse_json_file(golden / "timings.json");
  // Official per-pair DTW time: the faster of the soft/hard medians (conservative speed-ups).
  std::map<std::string, double> official_dtw, official_total;
  for (const auto& r : timings.at("alignment").at("rows")) {
    const std::string key = r.at("text_id").get<std::string>() + "/" + r.at("source").get<std::string>();
    const double dtw = r.at("dtw_s_median").get<double>(), total = r.at("total_s_median").get<double>();
    official_dtw[key] = official_dtw.count(key) ? std::min(official_dtw[key], dtw) : dtw;
    official_total[key] = official_total.count(key) ? std::min(official_total[key], total) : total;
  }

  auto llama = tok::load_tokenizer(shared / "data/tokenizers/llama2/tokenizer.model");
  auto neox = tok::load_tokenizer(shared / "data/tokenizers/gpt-neox-20b/20B_tokenizer.json");
  auto tok512 = tok::load_tokenizer(shared / "data/models/stories260K/tok512.model");
  const std::map<std::string, const tok::Tokenizer*> sources = {{"neox", neox.get()}, {"tok512", tok512.get()}};

  std::printf("%-17s %6s %6s | %10s %10s %8s %8s | %9s %9s %9s | %10s | %7s %7s\n", "pair", "target", "source",
              "dtw us", "dtw cpu us", "x (cpu)", "x (wall)", "offs us", "offs cpu", "x (cpu)", "official s", "1:1 dtw",
              "1:1 offs");
  std::ifstream in(golden / "long_sequences.jsonl");
  DtwAligner aligner;
  for (std::string line; std::getline(in, line);) {
    if (line.empty()) continue;
    const json row = json::parse(line);
    const std::string text = row.at("text").get<std::string>();
    const auto base_tokens = row.at("base").at("tokens").get<std::vector<std::string>>();
    const tok::Encoding base_enc = llama->encode(text, false);
    for (const auto& [name, tokenizer] : sources) {
      const auto& src = row.at("sources").at(name);
      const auto src_tokens = src.at("tokens").get<std::vector<std::string>>();
      const std::string marker = name == "neox" ? "\xC4\xA0" : "\xE2\x96\x81";
      TokenAlignment dtw;
      const Timing dtw_t =
          median_time([&] { dtw = aligner.align(src_tokens, marker, base_tokens, "\xE2\x96\x81"); }, 200);
      const bool dtw_ok = dtw.cost == src.at("dtw").at("cost").get<int64_t>() &&
                          to_lists(dtw.target_to_source) ==
                              src.at("dtw").at("base_to_blending").get<std::vector<std::vector<int32_t>>>();

      // Offsets: both tokenizers on the text (no EOS), the EOS appended with an empty span on both sides.
      const tok::Encoding src_enc = tokenizer->encode(text, false);
      const auto src_spans = spans_with_eos(src_enc, text.size()), base_spans = spans_with_eos(base_enc, text.size());
      TokenAlignment offs;
      const Timing offs_t = median_time([&] { offs = align_by_offsets(src_spans, base_spans); }, 100000);
      auto one_to_one = [](const TokenAlignment& a) {
        size_t c = 0;
        for (const Span& s : a.target_to_source) c += s.size() == 1 && a.source_to_target[s.begin].size() == 1;
        return a.target_to_source.empty() ? 0.0 : 100.0 * c / a.target_to_source.size();
      };
      const std::string key = row.at("id").get<std::string>() + "/" + name;
      const double official = official_dtw.at(key);
      std::printf("%-17s %6zu %6zu | %10.1f %10.1f %7.0fx %7.0fx | %9.2f %9.2f %8.0fx | %10.4f | %6.1f%% %6.1f%%%s\n",
                  key.c_str(), base_tokens.size(), src_tokens.size(), dtw_t.wall * 1e6, dtw_t.cpu * 1e6,
                  official / dtw_t.cpu, official / dtw_t.wall, offs_t.wall * 1e6, offs_t.cpu * 1e6,
                  official / offs_t.cpu, official, one_to_one(dtw), one_to_one(offs), dtw_ok ? "" : "  (DTW MISMATCH)");
      if (base_spans.size() != base_tokens.size() || src_spans.size() != src_tokens.size())
        std::printf("  note: tokenizer gives %zu/%zu tokens, golden %zu/%zu\n", base_spans.size(), src_spans.size(),
                    base_tokens.size(), src_tokens.size());
    }
  }
  std::printf(
      "(us = median per pair, one thread; official s = median time of the official dtw (inside\n"
      " transform_step_logits, the faster of its soft/hard rows); x = official / ours; offsets: byte spans from\n"
      " both tokenizers, EOS appended with an empty span, compared against the official DTW time)\n\n");

  const Vocabulary llama_v = vocabulary_of(*llama), neox_v = vocabulary_of(*neox);
  const auto& runs = timings.at("vocab_mapping").at("runs").at("neox_to_llama2");
  double official2 = 1e9, official1 = 1e9;
  for (const auto& r : runs) {
    const double s = r.at("wall_s").get<double>();
    if (r.at("processes").get<int>() == 2)
      official2 = std::min(official2, s);
    else
      official1 = std::min(official1, s);
  }
  for (int threads : {2, 1}) {
    const auto start = Clock::now();
    const double cpu_start = cpu_now(CLOCK_PROCESS_CPUTIME_ID);
    const VocabMap map = build_vocab_map(neox_v, llama_v, VocabMapMethod::mined, threads);
    const double s = seconds_since(start), cpu = cpu_now(CLOCK_PROCESS_CPUTIME_ID) - cpu_start;
    const double official = threads == 2 ? official2 : official1;
    size_t exact = 0;
    for (uint8_t e : map.exact_hit) exact += e;
    std::printf(
        "MinED neox->llama2 (%zu x %zu), %d thread(s): %.2f s wall, %.2f s CPU (official %d process(es): "
        "%.1f s wall; %.0fx by wall), %zu exact\n",
        neox_v.tokens.size(), llama_v.tokens.size(), threads, s, cpu, threads, official, official / s, exact);
  }
  return 0;
}

int main(int argc, char** argv) {
  return fusellm::bench::guarded_main("bench_align", [&] { return run(argc, argv); });
}
