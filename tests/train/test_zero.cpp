// ZeroOptimizer and the collectives under it, three Gloo ranks as three threads of this process, in
// float64. The reference is computed here without any sharding: gradients averaged over ranks and
// summed over micro-batches, clipped on their global norm, then the replicated AdamW of optimizer.hpp.
// The parameters cover the cases ZeRO gets wrong: a tensor listed twice (tied; one gradient, not two),
// a frozen one (left out, never changed), one with a gradient on rank 0 only, one with a gradient on no
// rank (not updated at all, as AdamW skips it), and sizes that do not divide by the world size.
// Tolerance: float64, the sums reordered (per micro-batch reduce then sum): ~1e-16 relative, 1e-12 leaves
// four orders of margin while a gradient counted twice or dropped moves a weight by ~lr = 1e-2.
#include <gtest/gtest.h>

#include <exception>
#include <functional>
#include <thread>

#include "common/free_port.hpp"
#include "fusellm/train/collectives.hpp"
#include "fusellm/train/gloo_reducer.hpp"
#include "fusellm/train/optimizer.hpp"
#include "fusellm/train/zero.hpp"

namespace fusellm::train {
namespace {

constexpr int kWorld = 3;
constexpr double kLr = 1e-2, kClip = 0.5;

io::NamedTensors make_params() {
  auto make = [](std::vector<int64_t> shape, double phase) {
    int64_t n = 1;
    for (int64_t d : shape) n *= d;
    return at::sin(at::arange(n, at::kDouble) * 0.37 + phase).view(shape);
  };
  io::NamedTensors p = {{"a.weight", make({5, 7}, 0.1)},     {"b.norm.weight", make({11}, 0.2)},
                        {"frozen.weight", make({4, 2}, 0.3)}, {"c.weight", make({3, 3}, 0.4)},
                        {"d.weight", make({6, 1}, 0.5)},     {"e.weight", make({2, 2}, 0.6)}};
  for (auto& [name, t] : p) t.requires_grad_(name != "frozen.weight");
  p.emplace_back("c.tied", p[3].second);  // the same tensor under a second name
  return p;
}

// Rank r's loss in micro-batch k, reading the parameters through `p` (the ZeRO views or the originals).
at::Tensor loss_of(const io::NamedTensors& p, int r, int k) {
  auto x = [&](int64_t n, double f) { return at::cos(at::arange(n, at::kDouble) * f * (r + 1) + k); };
  at::Tensor a = p[0].second, b = p[1].second, frozen = p[2].second, c = p[3].second, d = p[4].second;
  at::Tensor loss = (a.reshape({-1}) * x(35, 0.3)).sum().pow(2) + (b * x(11, 0.7)).sum() +
                    (frozen.reshape({-1}) * x(8, 0.1)).sum() + (c.reshape({-1}) * x(9, 0.2)).sum().pow(2) +
                    (p[6].second.reshape({-1}) * x(9, 0.5)).sum();  // c again, through its tied name
  if (r == 0) loss = loss + (d.reshape({-1}) * x(6, 0.9)).sum();
  return loss;
}

// The unsharded reference after `steps` steps of `micro` micro-batches.
io::NamedTensors reference(int steps, int micro) {
  io::NamedTensors p = make_params();
  io::NamedTensors trainable;
  std::vector<at::Tensor> leaves;
  for (size_t i = 0; i < 6; ++i)
    if (p[i].second.requires_grad()) {
      trainable.push_back(p[i]);
      leaves.push_back(p[i].second);
    }
  AdamW adam(trainable, 0.9, 0.999, 1e-8, 0.1);
  for (int s = 0; s < steps; ++s) {
    for (int r = 0; r < kWorld; ++r)
      for (int k = 0; k < micro; ++k) (loss_of(p, r, k) / kWorld).backward();
    clip_grad_norm(leaves, kClip);
    adam.step(kLr);
    adam.zero_grad();
  }
  return p;
}

void run_ranks(const std::function<void(GradientReducer&, int)>& body,
               ReduceScatterEmulation emulation = ReduceScatterEmulation::ReducePerOwner) {
  const int port = test::free_port();
  std::exception_ptr errors[kWorld];
  std::vector<std::thread> threads;
  for (int r = 0; r < kWorld; ++r)
    threads.emplace_back([&, r] {
      try {
        RankInfo info;
        info.rank = r;
        info.world_size = kWorld;
        info.master_addr = "127.0.0.1";
        info.master_port = port;
        ReducerOptions options;
        options.timeout = std::chrono::seconds(30);
        options.reduce_scatter = emulation;
        auto reducer = make_process_group_reducer(info, options);
        body(*reducer, r);
        reducer->barrier();
      } catch (...) {
        errors[r] = std::current_exception();
      }
    });
  for (auto& t : threads) t.join();
  for (auto& e : errors)
    if (e) std::rethrow_exception(e);
}

struct Case {
  int stage;
  bool overlap;
};

TEST(Zero, ShardedStepsEqualTheReplicatedOptimizer) {
  constexpr int kSteps = 3, kMicro = 2;
  const io::NamedTensors want = reference(kSteps, kMicro);
  for (const Case c : {Case{2, true}, Case{2, false}, Case{1, true}}) {
    SCOPED_TRACE("stage " + std::to_string(c.stage) + (c.overlap ? " overlapped" : ""));
    std::vector<io::NamedTensors> got(kWorld);
    std::vector<ZeroMemory> memory(kWorld);
    run_ranks([&](GradientReducer& reducer, int r) {
      io::NamedTensors p = make_params();
      ZeroOptions o;
      o.stage = c.stage;
      o.overlap = c.overlap;
      o.bucket_bytes = 40 * sizeof(double);  // several buckets, none a multiple of 3 elements
      o.master_dtype = o.param_dtype = at::kDouble;
      o.weight_decay = 0.1;
      ZeroOptimizer zero(p, reducer.collectives(), o);
      EXPECT_TRUE(p[3].second.is_same(p[6].second)) << "a tied tensor stays one tensor";
      for (int s = 0; s < kSteps; ++s) {
        for (int k = 0; k < kMicro; ++k) {
          zero.begin_backward(k + 1 == kMicro);
          (loss_of(p, r, k) / kWorld * kWorld).backward();  // ZeRO divides the sum over ranks by N
          zero.end_backward();
        }
        EXPECT_GT(zero.clip_grad_norm(kClip), kClip);  // clipping is active
        zero.step(kLr);
      }
      got[r] = p;
      memory[r] = zero.memory();
    });
    for (int r = 0; r < kWorld; ++r) {
      SCOPED_TRACE("rank " + std::to_string(r));
      for (size_t i = 0; i < want.size(); ++i) {
        SCOPED_TRACE(want[i].first);
        const double diff = (got[r][i].second - want[i].second).abs().max().item<double>();
        EXPECT_LE(diff, 1e-12);
      }
      EXPECT_TRUE(at::equal(got[r][2].second, make_params()[2].second)) << "frozen: untouched";
      EXPECT_TRUE(at::equal(got[r][5].second, make_params()[5].second)) << "no gradient anywhere: not updated";
      EXPECT_GT((got[r][4].second - make_params()[4].second).abs().max().item<double>(), 1e-4)
          << "a gradient on rank 0 only reaches every rank";
      // 35 + 11 + 9 + 6 + 4 trainable elements; each rank owns about a third, moments in float64.
      EXPECT_LE(memory[r].optimizer_bytes, 2 * 8 * (65 / kWorld + 5 * 2));
      EXPECT_LE(memory[r].gradient_bytes, 8 * (65 / kWorld + 5 * 2));
    }
  }
}

TEST(Zero, GlooEmulationsReduceScatterAndAllGather) {
  for (const char* mode : {"reduce", "allreduce"}) {
    SCOPED_TRACE(mode);
    run_ranks([&](GradientReducer& reducer, int r) {
      auto coll = reducer.collectives();
      ASSERT_TRUE(coll);
      const int64_t chunk = 5;
      at::Tensor input = at::arange(kWorld * chunk, at::kDouble) * (r + 1);
      at::Tensor out = at::empty({chunk}, at::kDouble);
      coll->reduce_scatter_sum(input, out).wait();
      EXPECT_NE(coll->describe().find(std::string(mode) == "reduce" ? "reduce per owner" : "all-reduce"),
                std::string::npos);
      // Σ_r (r + 1) = 6 times this rank's chunk of arange.
      EXPECT_TRUE(at::equal(out, at::arange(r * chunk, (r + 1) * chunk, at::kDouble) * 6.0));
      // bfloat16 crosses Gloo as raw 16-bit words, bit for bit.
      at::Tensor mine = (at::arange(chunk, at::kFloat) + 0.5f * float(r)).to(at::kBFloat16);
      at::Tensor all = at::empty({kWorld * chunk}, at::kBFloat16);
      coll->all_gather(mine, all).wait();
      for (int q = 0; q < kWorld; ++q)
        EXPECT_TRUE(at::equal(all.narrow(0, q * chunk, chunk),
                              (at::arange(chunk, at::kFloat) + 0.5f * float(q)).to(at::kBFloat16)));
    }, parse_reduce_scatter_emulation(mode, "test"));
  }
}

}  // namespace
}  // namespace fusellm::train
