// Throughput of the native SentencePiece tokenizer: encodes a text file (default: ../shared's tiny
// Shakespeare) line by line, single-threaded and with encode_batch, and prints MB/s and tokens/s.
//   bench_tokenizer_spm [TOKENIZER_DIR_OR_FILE] [TEXT_FILE]
#include <chrono>
#include <cstdio>
#include <sstream>

#include "bench_args.hpp"
#include "fusellm/tokenizer/tokenizer.hpp"
#include "fusellm/util/error.hpp"

int run(int argc, char** argv) {
  using namespace fusellm;
  fusellm::bench::check_arg_count("bench_tokenizer_spm", argc, 2, "[tokenizer] [text_file]");
  const fs::path shared = fs::path(FUSELLM_SOURCE_DIR).parent_path() / "shared" / "data";
  const fs::path tokenizer_path = argc > 1 ? fs::path(argv[1]) : shared / "tokenizers/llama2/tokenizer.model";
  const fs::path text_path = argc > 2 ? fs::path(argv[2]) : shared / "corpus/tinyshakespeare.txt";
  try {
    auto tokenizer = tok::load_tokenizer(tokenizer_path);
    const std::string text = read_file(text_path);
    std::vector<std::string> lines;
    std::istringstream in(text);
    for (std::string line; std::getline(in, line);) lines.push_back(line);

    using clock = std::chrono::steady_clock;
    auto seconds = [](clock::time_point a) { return std::chrono::duration<double>(clock::now() - a).count(); };
    size_t tokens = 0;
    auto t0 = clock::now();
    for (const auto& line : lines) tokens += tokenizer->encode(line, false).ids.size();
    const double single = seconds(t0);
    t0 = clock::now();
    auto batch = tokenizer->encode_batch(lines, false, 0);
    const double batched = seconds(t0);
    t0 = clock::now();
    const size_t whole = tokenizer->encode(text, false).ids.size();
    const double one_text = seconds(t0);
    const double mb = text.size() / 1e6;
    std::printf("%s on %s (%.2f MB, %zu lines)\n", tokenizer_path.c_str(), text_path.c_str(), mb, lines.size());
    std::printf("  per line, 1 thread : %.3f s  %.2f MB/s  %.0f tokens/s\n", single, mb / single, tokens / single);
    std::printf("  encode_batch       : %.3f s  %.2f MB/s\n", batched, mb / batched);
    std::printf("  whole file at once : %.3f s  %.2f MB/s  (%zu tokens)\n", one_text, mb / one_text, whole);
    return batch.size() == lines.size() ? 0 : 1;
  } catch (const Error& e) {
    std::fprintf(stderr, "error: %s\n", e.what());
    return 1;
  }
}

int main(int argc, char** argv) {
  return fusellm::bench::guarded_main("bench_tokenizer_spm", [&] { return run(argc, argv); });
}
