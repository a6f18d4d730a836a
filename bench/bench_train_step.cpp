// Full training steps on CPU: CLM only versus λ·CLM + (1−λ)·fusion (minCE/ce and avgCE/ce), as tokens/s and
// peak resident memory. The target of the fusion loss: it adds at most 5 % to a step's time.
//
// The model is a random-initialized Llama (vocabulary 32000 like Llama-2, untied LM head) written as an HF
// directory; the aligned store holds K = 3 sources × top-10 over the same random chunks of exactly seq_len
// tokens (descending log-probs, a different chunk CE per source so minCE's choice varies). All four
// configurations (clm, clm-1pass, minCE/ce, avgCE/ce) train on the same batches (AlignedBatchSource; the CLM
// ones ignore the sources). Step time is given as wall clock and as process CPU time: on a shared machine
// the CPU time is the steadier measure. Intra-op and OpenBLAS threads: 1, or --threads.
//
// Each configuration runs in its own child process (this program re-executed with --child) so its peak RSS
// is its own. The child stops the trainer after warm-up + measured steps through its batch source (which
// sees every step begin: the time between two calls is one full step, VmHWM at the last call is the peak
// of all steps), so no checkpoint is written. Configurations rotate over rounds because the machine is
// shared; the table gives medians over rounds of each child's median step time.
//
// Usage: bench_train_step [--quick] [--threads N] [--rounds N] [--steps N] [--warmup N] [--batch N]
//                         [--seq N] [--hidden N] [--layers N] [--vocab N] [--keep]
#include <ATen/Parallel.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <iostream>
#include <map>
#include <random>
#include <string>
#include <vector>

#include "bench_args.hpp"
#include "fusellm/align/aligned_store.hpp"
#include "fusellm/model/causal_lm.hpp"
#include "fusellm/model/registry.hpp"
#include "fusellm/train/aligned_source.hpp"
#include "fusellm/train/trainer.hpp"
#include "fusellm/util/allocator.hpp"
#include "fusellm/util/fs.hpp"
#include "fusellm/util/json.hpp"
#include "fusellm/util/log.hpp"

namespace {

using namespace fusellm;
using Clock = std::chrono::steady_clock;

struct Setup {
  int64_t vocab = 32000, hidden = 256, intermediate = 688, layers = 4, heads = 8;
  int64_t seq = 512, batch = 2, sources = 3, topk = 10, chunks = 32;
  int64_t warmup = 1, steps = 5, rounds = 3, threads = 1;
  bool quick = false;
  bool keep = false;  // keep the model and store for profiling one configuration: --child CONFIG DIR

  json to_json() const {
    return {{"vocab", vocab}, {"hidden", hidden}, {"intermediate", intermediate}, {"layers", layers},
            {"heads", heads}, {"seq", seq}, {"batch", batch}, {"sources", sources}, {"topk", topk},
            {"chunks", chunks}, {"warmup", warmup}, {"steps", steps}, {"threads", threads}};
  }
  static Setup from_json(const json& j) {
    Setup s;
    s.vocab = j.at("vocab"), s.hidden = j.at("hidden"), s.intermediate = j.at("intermediate");
    s.layers = j.at("layers"), s.heads = j.at("heads"), s.seq = j.at("seq"), s.batch = j.at("batch");
    s.sources = j.at("sources"), s.topk = j.at("topk"), s.chunks = j.at("chunks");
    s.warmup = j.at("warmup"), s.steps = j.at("steps"), s.threads = j.at("threads");
    return s;
  }
};

// clm: the trainer's CLM-only loss (make_clm_loss); clm-1pass: CLM alone through fusion::fusion_loss without
// a target (the one logsumexp + gather pass the fusion loss shares with CLM), the fastest CLM to compare with.
const std::vector<std::string> kConfigs = {"clm", "clm-1pass", "minCE/ce", "avgCE/ce"};

int64_t proc_status_kb(const char* key) {
  std::ifstream in("/proc/self/status");
  std::string line;
  const size_t n = std::strlen(key);
  while (std::getline(in, line))
    if (line.compare(0, n, key) == 0 && line.size() > n && line[n] == ':') return std::atoll(line.c_str() + n + 1);
  return -1;
}

// CPU seconds of the whole process (all threads, user + system): on a shared, overloaded machine the wall
// time of a step also counts the time other processes held the cores.
double process_cpu_s() {
  timespec ts{};
  ::clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
  return double(ts.tv_sec) + 1e-9 * double(ts.tv_nsec);
}

// System (kernel) CPU seconds of the process so far: page faults of freshly mapped big tensors show here.
double process_sys_s() {
  rusage usage{};
  ::getrusage(RUSAGE_SELF, &usage);
  return double(usage.ru_stime.tv_sec) + 1e-6 * double(usage.ru_stime.tv_usec);
}

double median(std::vector<double> v) {
  if (v.empty()) return 0;
  std::sort(v.begin(), v.end());
  const size_t m = v.size() / 2;
  return v.size() % 2 ? v[m] : 0.5 * (v[m - 1] + v[m]);
}

// ---- the synthetic target model and aligned store (parent) ----

void write_model(const fs::path& dir, const Setup& s) {
  fs::create_directories(dir);
  const json config = {{"architectures", {"LlamaForCausalLM"}}, {"model_type", "llama"},
                       {"vocab_size", s.vocab}, {"hidden_size", s.hidden},
                       {"intermediate_size", s.intermediate}, {"num_hidden_layers", s.layers},
                       {"num_attention_heads", s.heads}, {"num_key_value_heads", s.heads},
                       {"max_position_embeddings", std::max<int64_t>(s.seq, 512)}, {"rms_norm_eps", 1e-5},
                       {"rope_theta", 10000.0}, {"hidden_act", "silu"}, {"tie_word_embeddings", false},
                       {"bos_token_id", 1}, {"eos_token_id", 2}, {"torch_dtype", "float32"}};
  write_file_atomic(dir / "config.json", config.dump(2));
  // The family declares every parameter with its shape; fill them (norms 1, matrices N(0, 0.02²)).
  auto shapes = model::create_model(model::read_model_config(dir));
  io::NamedTensors weights;
  for (const auto& [name, placeholder] : shapes->parameters()) {
    at::Tensor t = placeholder.dim() == 1 ? at::ones(placeholder.sizes(), at::kFloat)
                                          : at::randn(placeholder.sizes(), at::kFloat).mul_(0.02);
    weights.emplace_back(name, t);
  }
  io::save_safetensors(dir / "model.safetensors", weights);
}

void write_store(const fs::path& dir, const Setup& s) {
  std::mt19937_64 rng(1234);
  std::uniform_int_distribution<int32_t> token(0, int32_t(s.vocab) - 1);
  std::uniform_real_distribution<float> unit(0.0f, 1.0f);
  std::vector<std::vector<int32_t>> chunks(size_t(s.chunks));
  for (auto& c : chunks)
    for (int64_t t = 0; t < s.seq; ++t) c.push_back(token(rng));
  align::AlignedStoreManifest manifest;
  manifest.chunk_dataset_hash = "bench-chunks";
  manifest.target_name = "source0";
  manifest.target_tokenizer_hash = "bench";
  manifest.target_vocab = uint32_t(s.vocab);
  manifest.k = uint32_t(s.topk);
  manifest.settings = json::object();
  for (int64_t src = 0; src < s.sources; ++src) {
    const std::string name = "source" + std::to_string(src);
    teacher::StoreInfo base;
    base.model_name = name;
    base.model_type = "bench";
    base.tokenizer_hash = "bench";
    base.chunk_dataset_hash = "bench-chunks";
    align::AlignedSourceWriter writer(dir, name, base, uint32_t(s.vocab), uint32_t(s.topk), 0, 1, 1000);
    writer.begin_shard(0);
    for (size_t c = 0; c < chunks.size(); ++c) {
      align::AlignedChunk chunk;
      chunk.chunk_id = c;
      chunk.target_ids = chunks[c];
      for (int64_t t = 0; t < s.seq; ++t) {
        chunk.position_ce.push_back(0.5f + 4.5f * unit(rng));
        std::vector<int32_t> row;
        float logprob = -0.1f - 1.4f * unit(rng);
        while (int64_t(row.size()) < s.topk) {
          const int32_t id = token(rng);
          if (std::find(row.begin(), row.end(), id) != row.end()) continue;  // distinct ids, as a top-k is
          row.push_back(id);
          chunk.topk_ids.push_back(id);
          chunk.topk_values.push_back(logprob);
          logprob -= 0.05f + 0.95f * unit(rng);  // descending, the order the store keeps
        }
      }
      chunk.chunk_ce = 1.0f + 0.4f * float(src) + 1.5f * unit(rng);
      writer.add(chunk);
    }
    writer.finish_shard();
    writer.finish();
    manifest.sources.push_back({name, src == 0, "bench", "none", {}});
  }
  align::merge_aligned_store(dir, manifest, 1);
}

// ---- one configuration (child) ----

struct StopAfterMeasuredSteps {};

// Forwards to the aligned source; every next_global_batch call starts a step, so it notes the time and the
// peak RSS so far, and ends the run (by throwing) once the measured steps are done.
class StepClock : public train::TrainBatchSource {
 public:
  StepClock(std::unique_ptr<train::TrainBatchSource> inner, int64_t steps_to_run)
      : inner_(std::move(inner)), steps_to_run_(steps_to_run) {}
  int64_t num_sequences() const override { return inner_->num_sequences(); }
  std::vector<int64_t> next_global_batch(int64_t global_batch) override {
    starts.push_back(Clock::now());
    cpu_s.push_back(process_cpu_s());
    sys_s.push_back(process_sys_s());
    peak_kb.push_back(proc_status_kb("VmHWM"));
    if (int64_t(starts.size()) > steps_to_run_) throw StopAfterMeasuredSteps{};
    return inner_->next_global_batch(global_batch);
  }
  train::TrainBatch make_batch(const std::vector<int64_t>& ids) const override { return inner_->make_batch(ids); }
  int64_t epoch() const override { return inner_->epoch(); }
  json position() const override { return inner_->position(); }
  void restore(const json& position) override { inner_->restore(position); }

  std::vector<Clock::time_point> starts;
  std::vector<double> cpu_s, sys_s;
  std::vector<int64_t> peak_kb;

 private:
  std::unique_ptr<train::TrainBatchSource> inner_;
  int64_t steps_to_run_;
};

train::FusionSettings settings_of(const std::string& config) {
  train::FusionSettings settings;  // λ = 0.9, temperature 1
  settings.strategy = fusion::parse_strategy(config.substr(0, config.find('/')));
  settings.divergence = fusion::parse_divergence(config.substr(config.find('/') + 1));
  return settings;
}

int run_child(const std::string& config, const fs::path& dir) {
  tune_allocator_for_tensors();
  spdlog::set_level(spdlog::level::warn);
  const Setup s = Setup::from_json(parse_json_file(dir / "setup.json"));
  at::set_num_threads(int(s.threads));
  at::manual_seed(7);
  auto store = std::make_shared<align::AlignedStoreReader>(dir / "aligned");
  io::LoadOptions load;
  load.dtype = at::kFloat;

  train::TrainConfig c;
  c.lr = 1e-4;
  c.warmup_steps = 0;
  c.max_steps = s.warmup + s.steps + 1;  // never reached: StepClock stops the run first
  c.micro_batch = s.batch;
  c.grad_accum = 1;
  c.max_length = s.seq;
  c.save_every = 0;
  c.log_every = 1000000;
  c.seed = 11;
  c.output_dir = dir / ("out-" + std::to_string(::getpid()));
  train::TrainerOptions options;
  options.config = c;
  options.model_dir = dir / "model";
  options.quiet = true;

  const bool with_fusion = config.find('/') != std::string::npos;
  train::LossFn inner = with_fusion ? train::make_fusion_loss(store, settings_of(config)) : train::make_clm_loss();
  if (config == "clm-1pass")
    inner = [](model::CausalLM& m, const at::Tensor& hidden, const train::TrainBatch& batch) {
      fusion::LossOptions only_clm;
      only_clm.lm_weight = 1.0;
      const auto terms = fusion::fusion_loss(m.logits_from_hidden(hidden), batch.labels.to(hidden.device()),
                                             at::Tensor(), fusion::SparseDist{}, only_clm);
      train::LossParts parts;
      parts.total = terms.loss;
      parts.clm = terms.clm.item<double>();
      return parts;
    };
  std::vector<double> loss_fwd_ms;
  train::LossParts last;
  train::LossFn loss = [&](model::CausalLM& m, const at::Tensor& hidden, const train::TrainBatch& batch) {
    const auto t0 = Clock::now();
    last = inner(m, hidden, batch);
    loss_fwd_ms.push_back(std::chrono::duration<double, std::milli>(Clock::now() - t0).count());
    return last;
  };
  train::AlignedSourceOptions source_options;  // chunks are exactly seq tokens: one chunk per sequence
  source_options.max_length = s.seq;
  source_options.seed = c.seed;
  auto clock_owned = std::make_unique<StepClock>(std::make_unique<train::AlignedBatchSource>(store, source_options),
                                                 s.warmup + s.steps);
  StepClock& clock = *clock_owned;
  train::Trainer trainer(options, model::load_model(options.model_dir, load), std::move(clock_owned), loss);
  const int64_t base_kb = proc_status_kb("VmRSS");
  try {
    trainer.run();
  } catch (const StopAfterMeasuredSteps&) {
  }
  fs::remove_all(c.output_dir);

  std::vector<double> step_s, step_cpu_s, step_sys_s;
  for (size_t i = size_t(s.warmup); i + 1 < clock.starts.size(); ++i) {
    step_s.push_back(std::chrono::duration<double>(clock.starts[i + 1] - clock.starts[i]).count());
    step_cpu_s.push_back(clock.cpu_s[i + 1] - clock.cpu_s[i]);
    step_sys_s.push_back(clock.sys_s[i + 1] - clock.sys_s[i]);
  }
  loss_fwd_ms.erase(loss_fwd_ms.begin(), loss_fwd_ms.begin() + std::min<size_t>(loss_fwd_ms.size(), s.warmup));

  // The fusion side work outside autograd: the sources' batch tensors and the fused target.
  std::vector<double> prep_ms;
  if (with_fusion) {
    train::AlignedBatchSource source(store, source_options);
    const auto settings = settings_of(config);
    for (int i = 0; i < 5; ++i) {
      auto batch = source.make_batch(source.next_global_batch(s.batch));
      const auto t0 = Clock::now();
      auto fused = fusion::fuse(train::aligned_source_batches(*store, batch), settings.strategy, settings.temperature);
      prep_ms.push_back(std::chrono::duration<double, std::milli>(Clock::now() - t0).count());
    }
  }
  const json result = {{"config", config}, {"step_s", step_s}, {"median_step_s", median(step_s)},
                       {"step_cpu_s", step_cpu_s}, {"median_step_cpu_s", median(step_cpu_s)},
                       {"median_step_sys_s", median(step_sys_s)},
                       {"tokens_per_step", s.batch * s.seq}, {"base_rss_kb", base_kb},
                       {"peak_rss_kb", clock.peak_kb.back()}, {"loss_fwd_ms", median(loss_fwd_ms)},
                       {"prep_ms", median(prep_ms)}, {"loss", last.total.defined() ? last.total.item<double>() : 0.0},
                       {"clm", last.clm}, {"fusion", last.fusion}};
  write_file_atomic(dir / ("result-" + std::to_string(::getpid()) + ".json"), result.dump());
  return 0;
}

// ---- driver (parent) ----

std::string load_average() {
  std::ifstream in("/proc/loadavg");
  std::string a, b, c;
  in >> a >> b >> c;
  return a + " " + b + " " + c;
}

std::string cpu_model() {
  std::ifstream in("/proc/cpuinfo");
  std::string line;
  while (std::getline(in, line))
    if (line.rfind("model name", 0) == 0) return line.substr(line.find(':') + 2);
  return "unknown CPU";
}

// Re-executes this program as `--child config dir` (a fresh process: its peak RSS is its own) and returns
// the child's result.
json run_config(const std::string& config, const fs::path& dir, int64_t threads) {
  const pid_t pid = ::fork();
  if (pid < 0) fail("fork failed: {}", std::strerror(errno));
  if (pid == 0) {
    // LibTorch's BLAS here is OpenBLAS with its own thread pool (default: every core), which
    // at::set_num_threads does not govern: pin it (and OpenMP) to the same count, read when they load.
    const std::string n = std::to_string(threads);
    ::setenv("OPENBLAS_NUM_THREADS", n.c_str(), 1);
    ::setenv("OMP_NUM_THREADS", n.c_str(), 1);
    const std::string d = dir.string();
    ::execl("/proc/self/exe", "bench_train_step", "--child", config.c_str(), d.c_str(), static_cast<char*>(nullptr));
    std::perror("bench_train_step: exec");
    ::_exit(127);
  }
  int status = 0;
  ::waitpid(pid, &status, 0);
  FUSELLM_CHECK(WIFEXITED(status) && WEXITSTATUS(status) == 0, "the {} child failed (status {})",
                config, status);
  const fs::path result_path = dir / ("result-" + std::to_string(pid) + ".json");
  json result = parse_json_file(result_path);
  fs::remove(result_path);
  return result;
}

int64_t flag_value(int& i, int argc, char** argv) {
  FUSELLM_CHECK(i + 1 < argc, "{} needs a number", argv[i]);
  const std::string flag = argv[i];
  return fusellm::bench::parse_int(flag, argv[++i], flag == "--warmup" ? 0 : 1);
}

int run_parent(int argc, char** argv) {
  Setup s;
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    if (a == "--quick") {
      s.quick = true;
      s.vocab = 512, s.hidden = 64, s.intermediate = 172, s.layers = 2, s.heads = 4, s.seq = 64, s.batch = 2;
      s.chunks = 16, s.warmup = 1, s.steps = 3, s.rounds = 1;
    } else if (a == "--keep") s.keep = true;
    else if (a == "--threads") s.threads = flag_value(i, argc, argv);
    else if (a == "--rounds") s.rounds = flag_value(i, argc, argv);
    else if (a == "--steps") s.steps = flag_value(i, argc, argv);
    else if (a == "--warmup") s.warmup = flag_value(i, argc, argv);
    else if (a == "--batch") s.batch = flag_value(i, argc, argv);
    else if (a == "--seq") s.seq = flag_value(i, argc, argv);
    else if (a == "--hidden") s.hidden = flag_value(i, argc, argv), s.intermediate = (s.hidden * 8 / 3 + 15) / 16 * 16;
    else if (a == "--layers") s.layers = flag_value(i, argc, argv);
    else if (a == "--vocab") s.vocab = flag_value(i, argc, argv);
    else fail("unknown argument '{}' (see the usage at the top of bench/bench_train_step.cpp)", a);
  }
  FUSELLM_CHECK(s.steps >= 1 && s.rounds >= 1 && s.warmup >= 0 && s.threads >= 1 && s.topk <= s.vocab,
                "steps, rounds, threads >= 1, warmup >= 0 and top-k <= vocab required");
  s.chunks = std::max(s.chunks, (s.warmup + s.steps + 1) * s.batch);
  at::set_num_threads(1);  // the parent only writes data; children set their own thread count

  const fs::path dir = fs::temp_directory_path() / ("fusellm-bench-train-step-" + std::to_string(::getpid()));
  fs::remove_all(dir);
  fs::create_directories(dir);
  const auto t0 = Clock::now();
  write_model(dir / "model", s);
  write_store(dir / "aligned", s);
  write_file_atomic(dir / "setup.json", s.to_json().dump(2));
  const double setup_s = std::chrono::duration<double>(Clock::now() - t0).count();

  auto model = model::load_model(dir / "model");
  std::printf("bench_train_step: full training steps (forward, loss, backward, clip, AdamW) on CPU, fp32\n");
  std::printf("  %s, %ld cores online, %ld intra-op and BLAS thread(s) per run, LibTorch %s\n", cpu_model().c_str(),
              ::sysconf(_SC_NPROCESSORS_ONLN), long(s.threads), TORCH_VERSION);
  std::printf("  model: random llama, vocab %ld, hidden %ld, %ld layers, %.1fM parameters; micro-batch %ld x %ld "
              "tokens\n", long(s.vocab), long(s.hidden), long(s.layers), double(model->num_parameters()) / 1e6,
              long(s.batch), long(s.seq));
  std::printf("  aligned store: %ld sources x top-%ld, %ld chunks; fusion lambda 0.9; %ld warm-up + %ld measured "
              "steps per run, %ld round(s); setup %.1f s\n", long(s.sources), long(s.topk), long(s.chunks),
              long(s.warmup), long(s.steps), long(s.rounds), setup_s);
  model.reset();

  std::map<std::string, std::vector<json>> results;
  for (int64_t r = 0; r < s.rounds; ++r) {
    std::printf("round %ld (load %s), wall/cpu s per step, peak RSS:", long(r + 1), load_average().c_str());
    std::fflush(stdout);
    for (size_t j = 0; j < kConfigs.size(); ++j) {
      const std::string& config = kConfigs[(j + size_t(r)) % kConfigs.size()];  // rotate the order per round
      json res = run_config(config, dir, s.threads);
      std::printf("  %s %.3f/%.3f %.0fM", config.c_str(), res.at("median_step_s").get<double>(),
                  res.at("median_step_cpu_s").get<double>(), res.at("peak_rss_kb").get<double>() / 1024);
      std::fflush(stdout);
      results[config].push_back(res);
    }
    std::printf("\n");
  }

  std::printf("\n%-9s %7s %7s %6s %6s %9s %8s %9s %7s %7s %6s %8s %8s %8s\n", "config", "wall s", "cpu s", "sys s", "tok/s",
              "tok/cpu-s", "peak MiB", "+MiB/base", "loss ms", "prep ms", "fusion", "wall/clm", "cpu/clm",
              "cpu/1pass");
  const double tokens = double(s.batch * s.seq);
  for (const auto& config : kConfigs) {
    std::vector<double> wall, cpu, sys, peak, extra, loss_ms, prep, wall_ratio, cpu_ratio, cpu_ratio_1pass;
    double fusion_value = 0;
    for (size_t r = 0; r < results[config].size(); ++r) {
      const json& res = results[config][r];
      const json& clm = results["clm"][r];
      const json& clm_1pass = results["clm-1pass"][r];
      wall.push_back(res.at("median_step_s").get<double>());
      cpu.push_back(res.at("median_step_cpu_s").get<double>());
      sys.push_back(res.at("median_step_sys_s").get<double>());
      peak.push_back(res.at("peak_rss_kb").get<double>() / 1024);
      extra.push_back((res.at("peak_rss_kb").get<double>() - res.at("base_rss_kb").get<double>()) / 1024);
      loss_ms.push_back(res.at("loss_fwd_ms").get<double>());
      prep.push_back(res.at("prep_ms").get<double>());
      wall_ratio.push_back(wall.back() / clm.at("median_step_s").get<double>());
      cpu_ratio.push_back(cpu.back() / clm.at("median_step_cpu_s").get<double>());
      cpu_ratio_1pass.push_back(cpu.back() / clm_1pass.at("median_step_cpu_s").get<double>());
      fusion_value = res.at("fusion").get<double>();
    }
    std::printf("%-9s %7.3f %7.3f %6.3f %6.0f %9.0f %8.0f %9.0f %7.1f %7.2f %6.3f %+7.1f%% %+7.1f%% %+8.1f%%\n",
                config.c_str(), median(wall), median(cpu), median(sys), tokens / median(wall), tokens / median(cpu), median(peak),
                median(extra), median(loss_ms), median(prep), fusion_value, 100.0 * (median(wall_ratio) - 1.0),
                100.0 * (median(cpu_ratio) - 1.0), 100.0 * (median(cpu_ratio_1pass) - 1.0));
  }
  std::printf("\nwall s / cpu s: median over rounds of each run's median step (wall clock / process CPU time,\n"
              "all threads, user + system; sys s: the system part); wall/clm, cpu/clm, cpu/1pass: median over\n"
              "rounds of the ratio to the same round's clm or clm-1pass run (target: fusion adds <= 5 %%); peak\n"
              "MiB: VmHWM over the steps; +MiB/base: above the RSS after loading (model, AdamW); loss ms: loss\n"
              "forward incl. LM head; prep ms: aligned_source_batches + fuse per micro-batch; fusion: the fusion\n"
              "term at the last step.\n"
              "Load average after: %s\n",
              load_average().c_str());
  if (s.keep)
    std::printf("kept %s (profile one configuration: OPENBLAS_NUM_THREADS=%ld bench_train_step --child CONFIG %s)\n",
                dir.c_str(), long(s.threads), dir.c_str());
  else
    fs::remove_all(dir);
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  try {
    if (argc == 4 && std::string(argv[1]) == "--child") return run_child(argv[2], argv[3]);
    return run_parent(argc, argv);
  } catch (const std::exception& e) {
    std::fprintf(stderr, "bench_train_step: error: %s\n", e.what());
    return 1;
  }
}
