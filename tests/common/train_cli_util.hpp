#pragma once
// Shared pieces of the CLI training tests: the per-step losses a run
// logged, the weight differences between two checkpoints, two-rank launches the way torchrun starts them.
#include <limits>
#include <map>
#include <sstream>
#include <string>
#include <vector>

#include <fstream>

#include "common/free_port.hpp"
#include "common/run_cli.hpp"
#include "common/test_paths.hpp"
#include "fusellm/io/safetensors.hpp"
#include "fusellm/util/fs.hpp"
#include "fusellm/util/json.hpp"
#include "teacher/infer_test_util.hpp"

namespace fusellm::test {

// A small corpus chunked for stories260K, and experiment configs training stories260K on it.
struct TrainFixture {
  fs::path dir, corpus, chunks;
  explicit TrainFixture(const std::string& name) : dir(scratch_dir(name)) {
    corpus = write_small_corpus(dir, 6000);
    chunks = dir / "chunks";
    auto tokenizer = tok::load_tokenizer(stories_model_dir());
    make_chunk_dataset(chunks, corpus, *tokenizer, 64, true, true);
  }
  // A config whose train section is `train` plus output_dir = dir/<name>.
  std::string config(const std::string& name, json train) const {
    train["output_dir"] = (dir / name).string();
    json c = {{"models", json::array({{{"name", "stories"}, {"path", stories_model_dir().string()},
                                       {"role", "target"}}})},
              {"data", {{"corpus", corpus.string()}, {"txt_mode", "separator"}, {"chunk_dir", chunks.string()},
                        {"max_length", 64}}},
              {"train", train}};
    const fs::path file = dir / (name + ".json");
    std::ofstream(file) << c.dump(2) << "\n";
    return file.string();
  }
};

// One metrics.jsonl line per step, in order.
inline std::vector<json> metric_lines(const fs::path& run_dir) {
  std::vector<json> v;
  std::istringstream in(read_file(run_dir / "metrics.jsonl"));
  std::string line;
  while (std::getline(in, line)) v.push_back(json::parse(line));
  return v;
}

// Per-step (step, loss) from metrics.jsonl, in order.
inline std::vector<std::pair<int64_t, double>> step_losses(const fs::path& run_dir) {
  std::vector<std::pair<int64_t, double>> v;
  for (const json& j : metric_lines(run_dir)) v.emplace_back(j["step"].get<int64_t>(), j["loss"].get<double>());
  return v;
}

// Largest absolute difference per tensor between two checkpoints' weights (-1: missing in b).
inline std::map<std::string, double> weight_diffs(const fs::path& a, const fs::path& b) {
  io::SafetensorsFile wa(a / "model.safetensors"), wb(b / "model.safetensors");
  std::map<std::string, double> diffs;
  for (const auto& info : wa.tensors()) {
    bool found = false;
    for (const auto& other : wb.tensors()) found = found || other.name == info.name;
    diffs[info.name] = found ? (wa.load(info.name) - wb.load(info.name)).abs().max().item<double>() : -1.0;
  }
  return diffs;
}

// The largest weight difference between two checkpoints and the tensor it is in ("" when both are empty);
// a tensor missing in b counts as an infinite difference.
inline std::pair<std::string, double> max_weight_diff(const fs::path& a, const fs::path& b) {
  std::pair<std::string, double> worst{"", 0.0};
  for (const auto& [tensor, diff] : weight_diffs(a, b)) {
    const double d = diff < 0 ? std::numeric_limits<double>::infinity() : diff;
    if (worst.first.empty() || d > worst.second) worst = {tensor, d};
  }
  return worst;
}

// On the CPU even where a GPU exists: the tests compare runs bit for bit and start several ranks per machine.
inline std::vector<std::string> train_args(const std::string& config, bool resume = false) {
  std::vector<std::string> a = {"train", "--config", config, "--no-progress", "--device", "cpu"};
  if (resume) a.push_back("--resume");
  return a;
}

// Starts `fusellm train --config config` as `world` ranks with torchrun's environment and waits for all;
// returns each rank's exit. Logs go to log_dir/<name>_rank<r>.log.
// Starts `world` ranks of `fusellm train` on a free port (torchrun's environment plus extra_env); rank r logs
// to log_dir/<name>_rank<r>.log.
inline std::vector<pid_t> spawn_ranks(const std::string& config, int world, const fs::path& log_dir,
                                      const std::string& name, bool resume = false,
                                      const std::vector<std::string>& extra_env = {}) {
  const std::string port = "MASTER_PORT=" + std::to_string(free_port());
  std::vector<pid_t> pids;
  for (int r = 0; r < world; ++r) {
    std::vector<std::string> env = {"RANK=" + std::to_string(r), "LOCAL_RANK=" + std::to_string(r),
                                    "WORLD_SIZE=" + std::to_string(world), "MASTER_ADDR=127.0.0.1", port};
    env.insert(env.end(), extra_env.begin(), extra_env.end());
    pids.push_back(spawn_cli(train_args(config, resume), env, log_dir / (name + "_rank" + std::to_string(r) + ".log")));
  }
  return pids;
}

inline std::vector<Exit> run_ranks(const std::string& config, int world, const fs::path& log_dir,
                                   const std::string& name, bool resume = false,
                                   const std::vector<std::string>& extra_env = {}) {
  const std::vector<pid_t> pids = spawn_ranks(config, world, log_dir, name, resume, extra_env);
  std::vector<Exit> exits;
  for (int r = 0; r < world; ++r)
    exits.push_back(wait_cli(pids[size_t(r)], log_dir / (name + "_rank" + std::to_string(r) + ".log")));
  return exits;
}

}  // namespace fusellm::test
