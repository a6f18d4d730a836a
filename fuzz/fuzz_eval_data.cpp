// Evaluation data as each task's loader reads it (BBH's JSON examples and CoT prompts, the common-sense
// JSONL sets, MultiPL-E's prompt JSON, perplexity corpora). The first byte picks the task (every registered
// one, so readers that land later join on their own) and whether a single file is gzipped; the rest is
// the file, or for a task that reads a directory (BBH) a bundle laid out as that directory
// (`#@ bbh/<subtask>.json`, `#@ cot-prompts/<subtask>.txt`).
#include "fuzz_support.hpp"
#include "fusellm/eval/task.hpp"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace fusellm;
  fuzz::init_quiet_logging();
  if (size == 0) return 0;
  static const std::vector<std::string> tasks = eval::task_names();
  const std::string& name = tasks[(data[0] & 0x7f) % tasks.size()];
  const bool gzip = data[0] & 0x80;
  const std::string_view body(reinterpret_cast<const char*>(data) + 1, size - 1);
  fuzz::expect_clean_errors("fuzz_eval_data", [&] {
    auto task = eval::make_task(name);
    // A single file gets the extension of the task's own default data (".json", ".jsonl", ".txt").
    const std::string extension = task->default_data("/shared").extension().string();
    const std::string file_name = extension.empty() ? "data" : "data" + extension + (gzip ? ".gz" : "");
    const fs::path dir = fuzz::materialize(body, file_name);
    const fs::path path = extension.empty() ? dir : dir / file_name;
    for (const eval::Doc& doc : task->load(path)) (void)doc.requests.size();
  });
  return 0;
}
