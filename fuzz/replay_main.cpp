// A main() for the fuzz targets where libFuzzer is not linked (the GCC build CI uses): runs every file of
// the given corpus directories through LLVMFuzzerTestOneInput, then, with --mutate-seconds, keeps feeding
// it random mutations of those inputs (bit flips, byte overwrites with interesting values, truncations,
// chunk duplication and deletion, splices of two inputs) for that long. Not coverage-guided — that is
// libFuzzer's job (scripts/fuzz.sh) — but it replays the committed regressions and shakes every parser
// a little on every CI run. A crash is the target aborting, as under libFuzzer.
//   fuzz_replay_<target> [--mutate-seconds S] [--seed N] [--max-len BYTES] DIR_OR_FILE...
#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <csignal>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <random>
#include <string>
#include <vector>

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size);

namespace {

namespace fs = std::filesystem;

std::string read_all(const fs::path& path) {
  std::ifstream in(path, std::ios::binary);
  return std::string(std::istreambuf_iterator<char>(in), {});
}

// The input being run, written out by the abort handler so a crash found by mutation can be replayed.
const std::string* current_input = nullptr;

void save_crashing_input(int sig) {
  if (current_input) {
    const char* path = "fuzz-replay-crash.bin";
    const int fd = ::open(path, O_WRONLY | O_CREAT | O_TRUNC, 0644);
    if (fd >= 0) {
      ssize_t ignored = ::write(fd, current_input->data(), current_input->size());
      (void)ignored;
      ::close(fd);
      const char note[] = "replay: the crashing input was written to fuzz-replay-crash.bin (working directory)\n";
      ignored = ::write(2, note, sizeof(note) - 1);
    }
  }
  std::signal(sig, SIG_DFL);
  std::raise(sig);
}

void run_one(const std::string& input) {
  current_input = &input;
  LLVMFuzzerTestOneInput(reinterpret_cast<const uint8_t*>(input.data()), input.size());
  current_input = nullptr;
}

std::string mutate(const std::vector<std::string>& corpus, std::mt19937_64& rng, size_t max_len) {
  std::string s = corpus[rng() % corpus.size()];
  const int rounds = 1 + int(rng() % 4);
  static const uint8_t kInteresting[] = {0, 1, 0x7f, 0x80, 0xff, '"', '{', '}', '[', ']', ',', ':', '-', '9', '\n', 0xc3};
  for (int r = 0; r < rounds; ++r) {
    const size_t n = s.size();
    switch (rng() % 7) {
      case 0:  // flip a bit
        if (n) s[rng() % n] ^= char(1u << (rng() % 8));
        break;
      case 1:  // overwrite a byte with an interesting one
        if (n) s[rng() % n] = char(kInteresting[rng() % sizeof(kInteresting)]);
        break;
      case 2:  // truncate
        if (n) s.resize(rng() % n);
        break;
      case 3: {  // delete a chunk
        if (!n) break;
        const size_t at = rng() % n, len = 1 + rng() % std::min<size_t>(n - at, 64);
        s.erase(at, len);
        break;
      }
      case 4: {  // duplicate a chunk
        if (!n) break;
        const size_t at = rng() % n, len = 1 + rng() % std::min<size_t>(n - at, 64);
        s.insert(rng() % n, s.substr(at, len));
        break;
      }
      case 5: {  // splice with another input
        const std::string& other = corpus[rng() % corpus.size()];
        if (!n || other.empty()) break;
        s = s.substr(0, rng() % n) + other.substr(rng() % other.size());
        break;
      }
      case 6: {  // overwrite 8 bytes with a large or negative little-endian integer (sizes, offsets, counts)
        if (n < 8) break;
        static const uint64_t kValues[] = {0, 1, 0x7fffffffULL, 0x80000000ULL, 0xffffffffULL, ~0ULL, 1ULL << 62};
        const uint64_t v = kValues[rng() % (sizeof(kValues) / sizeof(kValues[0]))];
        const size_t at = rng() % (n - 7);
        for (int i = 0; i < 8; ++i) s[at + i] = char(v >> (8 * i));
        break;
      }
    }
  }
  if (s.size() > max_len) s.resize(max_len);
  return s;
}

}  // namespace

int main(int argc, char** argv) {
  double seconds = 0;
  uint64_t seed = 1;
  size_t max_len = 1 << 20;
  std::vector<fs::path> inputs;
  for (int i = 1; i < argc; ++i) {
    const std::string arg = argv[i];
    if (arg == "--mutate-seconds" && i + 1 < argc) seconds = std::atof(argv[++i]);
    else if (arg == "--seed" && i + 1 < argc) seed = std::strtoull(argv[++i], nullptr, 10);
    else if (arg == "--max-len" && i + 1 < argc) max_len = std::strtoull(argv[++i], nullptr, 10);
    else if (!arg.empty() && arg[0] == '-') {
      std::fprintf(stderr, "replay: unknown option %s\n", arg.c_str());
      return 2;
    } else inputs.emplace_back(arg);
  }
  for (int sig : {SIGABRT, SIGSEGV, SIGBUS, SIGFPE}) std::signal(sig, save_crashing_input);
  std::vector<fs::path> files;
  for (const fs::path& input : inputs) {
    if (fs::is_directory(input)) {
      for (const auto& entry : fs::recursive_directory_iterator(input))
        if (entry.is_regular_file()) files.push_back(entry.path());
    } else if (fs::is_regular_file(input)) {
      files.push_back(input);
    } else {  // e.g. the seed corpus of a checkout without ../shared
      std::fprintf(stderr, "replay: %s: not found, skipped\n", input.string().c_str());
    }
  }
  std::sort(files.begin(), files.end());
  std::vector<std::string> corpus;
  for (const fs::path& file : files) {
    corpus.push_back(read_all(file));
    run_one(corpus.back());
  }
  if (corpus.empty()) corpus.emplace_back();
  uint64_t mutated = 0;
  std::mt19937_64 rng(seed);
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::duration<double>(seconds);
  while (seconds > 0 && std::chrono::steady_clock::now() < deadline) {
    run_one(mutate(corpus, rng, max_len));
    ++mutated;
  }
  std::printf("replay: %zu corpus inputs and %llu mutations (seed %llu) ran without a crash\n", files.size(),
              static_cast<unsigned long long>(mutated), static_cast<unsigned long long>(seed));
  return 0;
}
