// Tokenizer encode throughput on WikiText-2 (test split), one text per line as a data pipeline feeds them:
// GPT-NeoX-20B tokenizer.json (byte-level BPE) single-threaded and with 2 threads (encode_batch), and the
// Llama-2 SentencePiece tokenizer.model, both through load_tokenizer. Prints MB/s of UTF-8 input.
//
//   bench_tokenizer [path/to/shared]     (default: ../shared beside the source tree)
#include <chrono>
#include <cstdio>
#include <string>
#include <vector>

#include "bench_args.hpp"
#include "fusellm/tokenizer/tokenizer.hpp"
#include "fusellm/util/fs.hpp"

namespace {

using Clock = std::chrono::steady_clock;

double seconds_since(Clock::time_point start) {
  return std::chrono::duration<double>(Clock::now() - start).count();
}

void report(const char* what, size_t bytes, size_t tokens, double seconds) {
  std::printf("%-48s %7.2f MB/s  %9zu tokens  %6.3f s\n", what, bytes / seconds / 1e6, tokens, seconds);
}

void bench(const char* name, const fusellm::tok::Tokenizer& tokenizer, const std::vector<std::string>& lines,
           size_t bytes) {
  for (int pass = 0; pass < 2; ++pass) {  // pass 0 starts with a cold word cache
    auto start = Clock::now();
    size_t tokens = 0;
    for (const auto& line : lines) tokens += tokenizer.encode(line, false).ids.size();
    std::string label = std::string(name) + (pass == 0 ? ", 1 thread (cold)" : ", 1 thread");
    report(label.c_str(), bytes, tokens, seconds_since(start));
  }
  auto start = Clock::now();
  size_t tokens = 0;
  for (const auto& enc : tokenizer.encode_batch(lines, false, 2)) tokens += enc.ids.size();
  std::string label = std::string(name) + ", 2 threads (encode_batch)";
  report(label.c_str(), bytes, tokens, seconds_since(start));
}

}  // namespace

int run(int argc, char** argv) {
  fusellm::bench::check_arg_count("bench_tokenizer", argc, 1, "[shared_dir]");
  fusellm::fs::path shared = argc > 1 ? fusellm::fs::path(argv[1]) : fusellm::fs::path(FUSELLM_SOURCE_DIR).parent_path() / "shared";
  fusellm::fs::path corpus = shared / "data/corpus/wikitext-2-test.txt";
  if (!fusellm::fs::exists(corpus)) {
    std::printf("bench_tokenizer: SKIPPED: %s not found (pass the shared/ folder as the first argument)\n",
                corpus.string().c_str());
    return 0;
  }
  std::string text = fusellm::read_file(corpus);
  std::vector<std::string> lines;
  size_t bytes = 0;
  for (size_t pos = 0; pos < text.size();) {
    size_t eol = text.find('\n', pos);
    if (eol == std::string::npos) eol = text.size() - 1;
    lines.push_back(text.substr(pos, eol + 1 - pos));
    bytes += lines.back().size();
    pos = eol + 1;
  }
  std::printf("WikiText-2 test: %zu lines, %.2f MB\n", lines.size(), bytes / 1e6);

  auto start = Clock::now();
  auto neox = fusellm::tok::load_tokenizer(shared / "data/tokenizers/gpt-neox-20b/20B_tokenizer.json");
  std::printf("GPT-NeoX tokenizer.json loaded in %.3f s\n", seconds_since(start));
  bench("GPT-NeoX-20B tokenizer.json", *neox, lines, bytes);

  start = Clock::now();
  auto llama = fusellm::tok::load_tokenizer(shared / "data/tokenizers/llama2/tokenizer.model");
  std::printf("Llama-2 tokenizer.model loaded in %.3f s\n", seconds_since(start));
  bench("Llama-2 tokenizer.model", *llama, lines, bytes);
  return 0;
}

int main(int argc, char** argv) {
  return fusellm::bench::guarded_main("bench_tokenizer", [&] { return run(argc, argv); });
}
