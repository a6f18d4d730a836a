// Gradient all-reduce overlapped with backward, two Gloo ranks as two threads of this process: the
// averaged gradients equal (g_rank0 + g_rank1) / 2 computed here without any reducer; buckets whose
// gradients are all final start during backward (hook-launched), in several buckets; a parameter
// without a gradient on one rank, on no rank, or only from an earlier micro-batch neither deadlocks
// nor loses its gradient.
#include <ATen/CPUGeneratorImpl.h>
#include <gtest/gtest.h>

#include <exception>
#include <thread>

#include "common/free_port.hpp"
#include "fusellm/train/gloo_reducer.hpp"
#include "fusellm/train/grad_buckets.hpp"

namespace fusellm::train {
namespace {

using test::free_port;

constexpr int kLayers = 8, kWidth = 32;

// Parameters: [never_used, used_on_rank0_only, used_in_first_micro_batch_only, W1..W8]. The special ones
// come first so they land in the last bucket (buckets follow reverse parameter order).
// Each call draws the same values from its own generator: the two ranks run as threads, and the global
// generator shared between them would hand each a different share of its stream.
std::vector<at::Tensor> make_params() {
  at::Generator gen = at::detail::createCPUGenerator(7);
  std::vector<at::Tensor> p;
  for (int i = 0; i < 3; ++i) p.push_back(at::randn({16}, gen).requires_grad_(true));
  for (int i = 0; i < kLayers; ++i)
    p.push_back((at::randn({kWidth, kWidth}, gen) / kWidth).requires_grad_(true));
  return p;
}

// One micro-batch's loss on `rank`'s data; `last` = the step's last micro-batch.
at::Tensor micro_batch_loss(const std::vector<at::Tensor>& p, int rank, bool last) {
  at::Tensor x = at::linspace(-1.0 + rank, 1.0 + 2 * rank + (last ? 0.5 : 0.0), 4 * kWidth).view({4, kWidth});
  for (int i = 0; i < kLayers; ++i) x = at::tanh(x.matmul(p[3 + i]));
  at::Tensor loss = x.pow(2).mean();
  if (rank == 0) loss = loss + p[1].sum() * 0.5;   // p[1]: a gradient on rank 0 only
  if (!last) loss = loss + p[2].pow(2).sum();      // p[2]: a gradient from the first micro-batch only
  return loss;
}

// Two micro-batches: the first only accumulates, the second runs between begin and finish.
void run_step(const std::vector<at::Tensor>& p, int rank, GradientReducer* reducer) {
  micro_batch_loss(p, rank, false).backward();
  if (reducer) reducer->begin_last_backward(p);
  micro_batch_loss(p, rank, true).backward();
  if (reducer) reducer->finish(p);
}

TEST(GradOverlap, TwoRanksAverageDuringBackward) {
  // The reference: each rank's gradients on its own, averaged here.
  std::vector<std::vector<at::Tensor>> local(2);
  for (int r = 0; r < 2; ++r) {
    auto p = make_params();
    run_step(p, r, nullptr);
    for (auto& t : p) local[r].push_back(t.grad());
  }

  const int port = free_port();
  std::vector<std::vector<at::Tensor>> got(2);
  std::vector<OverlapStats> stats(2);
  std::vector<std::string> backends(2);
  std::exception_ptr errors[2];
  std::vector<std::thread> ranks;
  for (int r = 0; r < 2; ++r) {
    ranks.emplace_back([&, r] {
      try {
        RankInfo info;
        info.rank = r;
        info.world_size = 2;
        info.master_addr = "127.0.0.1";
        info.master_port = port;
        ReducerOptions options;
        options.timeout = std::chrono::seconds(20);
        options.bucket_bytes = 2 * kWidth * kWidth * sizeof(float);  // two layers per bucket
        options.overlap = true;
        auto reducer = make_process_group_reducer(info, options);
        backends[r] = reducer->backend();
        auto p = make_params();
        for (int step = 0; step < 2; ++step) {  // the second step reuses the hooks
          for (auto& t : p) t.mutable_grad() = at::Tensor();
          run_step(p, r, reducer.get());
        }
        for (auto& t : p) got[r].push_back(t.grad());
        stats[r] = reducer->overlap_stats();
        reducer->barrier();
      } catch (...) {
        errors[r] = std::current_exception();
      }
    });
  }
  for (auto& t : ranks) t.join();
  for (auto& e : errors)
    if (e) std::rethrow_exception(e);

  for (int r = 0; r < 2; ++r) {
    SCOPED_TRACE("rank " + std::to_string(r));
    EXPECT_EQ(backends[r], "gloo");
    // Layers: 4 buckets, each launched by a hook while backward ran; the special parameters' bucket
    // only at finish (one of them never gets a gradient in the last backward).
    EXPECT_EQ(stats[r].buckets, 5);
    EXPECT_EQ(stats[r].launched_in_backward, 4);
    ASSERT_EQ(got[r].size(), local[0].size());
    EXPECT_FALSE(got[r][0].defined()) << "no rank had a gradient: stays without one";
    for (size_t i = 1; i < got[r].size(); ++i) {
      SCOPED_TRACE("param " + std::to_string(i));
      ASSERT_TRUE(got[r][i].defined());
      const at::Tensor a = local[0][i].defined() ? local[0][i] : at::zeros_like(got[r][i]);
      const at::Tensor b = local[1][i].defined() ? local[1][i] : at::zeros_like(got[r][i]);
      const at::Tensor want = (a + b) / 2;
      EXPECT_LE((got[r][i] - want).abs().max().item<double>(), 1e-7);
      EXPECT_GT(got[r][i].abs().max().item<double>(), 0.0);
    }
  }
  EXPECT_FALSE(local[1][1].defined());  // the test's premise: rank 1 had no gradient for p[1]
  for (size_t i = 1; i < got[0].size(); ++i) EXPECT_TRUE(at::equal(got[0][i], got[1][i]));
}

TEST(GradOverlap, BucketsSplitByDtypeAndSize) {
  std::vector<at::Tensor> t = {at::zeros({10}), at::zeros({10}), at::zeros({30}), at::zeros({5}, at::kDouble),
                               at::zeros({5}, at::kDouble), at::zeros({100})};
  const auto b = plan_buckets(t, 80);  // 20 floats
  const std::vector<std::pair<size_t, size_t>> want = {{0, 2}, {2, 3}, {3, 5}, {5, 6}};
  EXPECT_EQ(b, want);
}

}  // namespace
}  // namespace fusellm::train
