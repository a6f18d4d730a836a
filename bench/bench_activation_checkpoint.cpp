// bench_activation_checkpoint: peak memory and time of one training forward+backward with and without
// activation checkpointing, for a random-initialized llama-style model. Each variant runs in its own forked
// child so that its peak RSS (getrusage ru_maxrss) is its own; the parent only forks and waits (a forked
// child's peak starts at the parent's RSS, printed as the baseline). Allocator tuned as `fusellm` does.
// Usage: bench_activation_checkpoint [hidden=512] [layers=8] [vocab=32000] [seq=1024] [batch=2]
#include <ATen/Parallel.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <string>

#include "bench_args.hpp"
#include "fusellm/io/safetensors.hpp"
#include "fusellm/model/causal_lm.hpp"
#include "fusellm/train/activation_checkpoint.hpp"
#include "fusellm/util/allocator.hpp"
#include "fusellm/util/fs.hpp"
#include "fusellm/util/json.hpp"
#include "fusellm/util/log.hpp"

using namespace fusellm;

namespace {

struct Shape {
  int64_t hidden = 512, layers = 8, vocab = 32000, seq = 1024, batch = 2;
  int64_t heads() const { return hidden / 64; }
  int64_t intermediate() const { return hidden * 8 / 3 / 32 * 32; }
};

double mib(double bytes) { return bytes / (1024.0 * 1024.0); }
double peak_rss_mib() {
  rusage usage{};
  getrusage(RUSAGE_SELF, &usage);
  return usage.ru_maxrss / 1024.0;  // kilobytes on Linux
}
double current_rss_mib() {
  std::ifstream statm("/proc/self/statm");
  long pages = 0, resident = 0;
  statm >> pages >> resident;
  return mib(static_cast<double>(resident) * static_cast<double>(sysconf(_SC_PAGESIZE)));
}

// config.json + model.safetensors of a llama model with N(0, 0.02) weights and unit norms.
void write_random_llama(const fs::path& dir, const Shape& s) {
  fs::create_directories(dir);
  json config = {{"architectures", {"LlamaForCausalLM"}}, {"model_type", "llama"}, {"vocab_size", s.vocab},
                 {"hidden_size", s.hidden}, {"intermediate_size", s.intermediate()},
                 {"num_hidden_layers", s.layers}, {"num_attention_heads", s.heads()},
                 {"num_key_value_heads", s.heads()}, {"max_position_embeddings", s.seq},
                 {"rms_norm_eps", 1e-5}, {"rope_theta", 10000.0}, {"hidden_act", "silu"},
                 {"tie_word_embeddings", false}, {"torch_dtype", "float32"}};
  write_file_atomic(dir / "config.json", config.dump(2));
  at::manual_seed(0);
  auto normal = [](std::vector<int64_t> shape) { return at::randn(shape) * 0.02; };
  io::NamedTensors weights;
  weights.emplace_back("model.embed_tokens.weight", normal({s.vocab, s.hidden}));
  for (int64_t i = 0; i < s.layers; ++i) {
    const std::string p = "model.layers." + std::to_string(i) + ".";
    weights.emplace_back(p + "input_layernorm.weight", at::ones({s.hidden}));
    for (const char* proj : {"q_proj", "k_proj", "v_proj", "o_proj"})
      weights.emplace_back(p + "self_attn." + proj + ".weight", normal({s.hidden, s.hidden}));
    weights.emplace_back(p + "post_attention_layernorm.weight", at::ones({s.hidden}));
    weights.emplace_back(p + "mlp.gate_proj.weight", normal({s.intermediate(), s.hidden}));
    weights.emplace_back(p + "mlp.up_proj.weight", normal({s.intermediate(), s.hidden}));
    weights.emplace_back(p + "mlp.down_proj.weight", normal({s.hidden, s.intermediate()}));
  }
  weights.emplace_back("model.norm.weight", at::ones({s.hidden}));
  weights.emplace_back("lm_head.weight", normal({s.vocab, s.hidden}));
  io::save_safetensors(dir / "model.safetensors", weights);
}

// One training forward+backward (mean next-token CE over the full vocabulary), in this process.
void run_variant(const fs::path& dir, const Shape& s, bool checkpointing) {
  io::LoadOptions load;
  load.dtype = at::kFloat;
  auto model = model::load_model(dir, load);
  int64_t num_params = 0;
  for (auto& [name, t] : model->parameters()) {
    t = t.detach().clone().requires_grad_(true);  // own leaves, as the Trainer makes them
    num_params += t.numel();
  }
  const double rss_loaded = current_rss_mib();
  at::manual_seed(1);
  model::ForwardArgs args;
  args.input_ids = at::randint(0, s.vocab, {s.batch, s.seq}, at::kLong);
  if (checkpointing) args.block_runner = train::checkpointing_block_runner();
  const auto start = std::chrono::steady_clock::now();
  at::Tensor hidden = model->forward_hidden(args);
  at::Tensor logits = model->logits_from_hidden(hidden.narrow(1, 0, s.seq - 1));
  at::Tensor loss = at::cross_entropy_loss(logits.reshape({-1, s.vocab}),
                                           args.input_ids.narrow(1, 1, s.seq - 1).reshape({-1}));
  const double forward_s = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  loss.backward();
  const double total_s = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  double grad_sq = 0;
  for (auto& [name, t] : model->parameters()) grad_sq += t.grad().pow(2).sum().item<double>();
  std::printf("%-22s peak RSS %8.1f MiB  (after load %7.1f MiB, peak − loaded %8.1f MiB)  forward %6.2f s  "
              "forward+backward %6.2f s  loss %.6f  grad norm %.6e  params %.1fM\n",
              checkpointing ? "with checkpointing" : "without checkpointing", peak_rss_mib(), rss_loaded,
              peak_rss_mib() - rss_loaded, forward_s, total_s, loss.item<double>(), std::sqrt(grad_sq),
              num_params / 1e6);
  std::fflush(stdout);
}

// Runs `body` in a forked child and waits; false if the child failed.
template <class Body>
bool in_child(Body body) {
  std::fflush(stdout);
  const pid_t pid = fork();
  if (pid < 0) return false;
  if (pid == 0) {
    int rc = 0;
    try {
      body();
    } catch (const std::exception& e) {
      std::fprintf(stderr, "bench_activation_checkpoint: %s\n", e.what());
      rc = 1;
    }
    std::fflush(stdout);
    _exit(rc);
  }
  int status = 0;
  waitpid(pid, &status, 0);
  return WIFEXITED(status) && WEXITSTATUS(status) == 0;
}

}  // namespace

int run(int argc, char** argv) {
  tune_allocator_for_tensors();
  spdlog::set_level(spdlog::level::warn);
  Shape s;
  int64_t* fields[] = {&s.hidden, &s.layers, &s.vocab, &s.seq, &s.batch};
  const char* names[] = {"hidden", "layers", "vocab", "seq", "batch"};
  fusellm::bench::check_arg_count("bench_activation_checkpoint", argc, 5, "[hidden] [layers] [vocab] [seq] [batch]");
  for (int i = 1; i < argc; ++i)
    *fields[i - 1] = fusellm::bench::int_arg(argc, argv, i, names[i - 1], 0, 1);
  const fs::path dir = fs::temp_directory_path() / ("fusellm_bench_ckpt_" + std::to_string(::getpid()));
  std::printf("llama-style model: hidden %lld, %lld layers, %lld heads, intermediate %lld, vocab %lld; "
              "batch %lld × seq %lld; float32, %d threads\n",
              (long long)s.hidden, (long long)s.layers, (long long)s.heads(), (long long)s.intermediate(),
              (long long)s.vocab, (long long)s.batch, (long long)s.seq, at::get_num_threads());
  bool ok = in_child([&] { write_random_llama(dir, s); });  // keeps the parent's RSS (the children's floor) small
  std::printf("parent RSS at fork (children's floor): %.1f MiB\n", current_rss_mib());
  ok = ok && in_child([&] { run_variant(dir, s, false); });
  ok = ok && in_child([&] { run_variant(dir, s, true); });
  std::error_code ignored;
  fs::remove_all(dir, ignored);
  return ok ? 0 : 1;
}

int main(int argc, char** argv) {
  return fusellm::bench::guarded_main("bench_activation_checkpoint", [&] { return run(argc, argv); });
}
