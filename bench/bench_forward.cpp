// Forward throughput of stories260K (a real 260K-parameter Llama) on CPU: a full forward over a batch of
// 8 × 256 tokens in float32 and bfloat16, and KV-cached greedy-style decoding (one token per step).
// Needs ../shared beside the checkout (or $FUSELLM_SHARED_DIR); prints a skip message otherwise.
#include <ATen/Parallel.h>
#include "bench_args.hpp"
#include "fusellm/util/allocator.hpp"
#include <benchmark/benchmark.h>

#include <cstdlib>
#include <filesystem>
#include <iostream>

#include "fusellm/model/causal_lm.hpp"

namespace {

std::filesystem::path shared_dir() {
  if (const char* env = std::getenv("FUSELLM_SHARED_DIR"); env && *env) return env;
  return std::filesystem::path(FUSELLM_SOURCE_DIR).parent_path() / "shared";
}

std::filesystem::path model_dir() { return shared_dir() / "data" / "models" / "stories260K-hf"; }

std::unique_ptr<fusellm::model::CausalLM> load(at::ScalarType dtype) {
  fusellm::io::LoadOptions options;
  options.dtype = dtype;
  return fusellm::model::load_model(model_dir(), options);
}

// state.range(0) = batch, state.range(1) = sequence length.
void forward(benchmark::State& state, at::ScalarType dtype) {
  at::NoGradGuard no_grad;
  auto lm = load(dtype);
  fusellm::model::ForwardArgs args;
  args.input_ids = at::randint(3, lm->config().vocab_size, {state.range(0), state.range(1)}, at::kLong);
  for (auto _ : state) benchmark::DoNotOptimize(lm->forward(args));
  const double tokens = static_cast<double>(state.range(0) * state.range(1));
  state.counters["tokens/s"] = benchmark::Counter(tokens, benchmark::Counter::kIsIterationInvariantRate);
}

// Prefill 32 tokens per row, then state.range(1) single-token steps through the KV cache.
void cached_decode(benchmark::State& state, at::ScalarType dtype) {
  at::NoGradGuard no_grad;
  auto lm = load(dtype);
  const int64_t batch = state.range(0), steps = state.range(1);
  for (auto _ : state) {
    fusellm::model::KVCache cache;
    fusellm::model::ForwardArgs args;
    args.cache = &cache;
    args.input_ids = at::randint(3, lm->config().vocab_size, {batch, 32}, at::kLong);
    at::Tensor logits = lm->forward(args);
    for (int64_t step = 0; step < steps; ++step) {
      args.input_ids = logits.select(1, -1).argmax(-1, /*keepdim=*/true);
      logits = lm->forward(args);
    }
    benchmark::DoNotOptimize(logits);
  }
  state.counters["decode tokens/s"] =
      benchmark::Counter(static_cast<double>(batch * steps), benchmark::Counter::kIsIterationInvariantRate);
}

}  // namespace

int run(int argc, char** argv) {
  fusellm::tune_allocator_for_tensors();
  if (!std::filesystem::exists(model_dir() / "config.json")) {
    std::cout << "bench_forward: skipped: " << model_dir().string()
              << " not found (needs ../shared beside the checkout or $FUSELLM_SHARED_DIR)\n";
    return 0;
  }
  std::cout << "stories260K on CPU, " << at::get_num_threads() << " intra-op threads, LibTorch " << TORCH_VERSION
            << "\n";
  // Wall-clock rates: LibTorch runs intra-op threads, so the main thread's CPU time would undercount.
  auto wall_ms = [](benchmark::internal::Benchmark* b) { b->UseRealTime()->Unit(benchmark::kMillisecond); };
  wall_ms(benchmark::RegisterBenchmark("forward/fp32", forward, at::kFloat)->Args({8, 256}));
  wall_ms(benchmark::RegisterBenchmark("forward/bf16", forward, at::kBFloat16)->Args({8, 256}));
  wall_ms(benchmark::RegisterBenchmark("cached_decode/fp32", cached_decode, at::kFloat)->Args({8, 64}));
  wall_ms(benchmark::RegisterBenchmark("cached_decode/bf16", cached_decode, at::kBFloat16)->Args({8, 64}));
  benchmark::Initialize(&argc, argv);
  if (benchmark::ReportUnrecognizedArguments(argc, argv)) return 1;
  benchmark::RunSpecifiedBenchmarks();
  benchmark::Shutdown();
  return 0;
}

int main(int argc, char** argv) {
  return fusellm::bench::guarded_main("bench_forward", [&] { return run(argc, argv); });
}
