// Activation checkpointing: with the checkpointing block runner, the loss and every parameter gradient
// equal those of a plain forward/backward (llama via stories260K, the golden tiny mpt and gpt_neox), with
// right padding, explicit position ids, packed segments and a frozen embedding (block inputs that need no
// grad); the blocks really are re-run in backward; the Trainer's per-step losses do not change.
#include <gtest/gtest.h>

#include <ATen/CPUGeneratorImpl.h>

#include <cmath>
#include <cstdio>
#include <string>
#include <vector>

#include "fusellm/model/causal_lm.hpp"
#include "fusellm/train/activation_checkpoint.hpp"
#include "fusellm/train/trainer.hpp"
#include "train/train_test_util.hpp"

namespace fusellm::train {
namespace {

fs::path model_dir(const std::string& name) {
  if (name == "stories260K-hf") return test::stories_dir();
  return test::shared_dir() / "golden" / "models" / name;
}

// The model in float32 with every parameter an own leaf requiring grad (as the Trainer makes them),
// except those `frozen` names.
std::unique_ptr<model::CausalLM> load_trainable(const std::string& name, const std::string& frozen = "") {
  io::LoadOptions load;
  load.dtype = at::kFloat;
  auto model = model::load_model(model_dir(name), load);
  for (auto& [pname, t] : model->parameters())
    t = t.detach().clone().requires_grad_(pname != frozen);
  return model;
}

struct Inputs {
  at::Tensor input_ids, attention_mask, position_ids, segment_ids;
};

// Two rows of 20 tokens from a fixed generator; optionally row 1 right-padded to 13 real tokens,
// positions starting at 7 (row 0) and 3 (row 1), or two packed segments per row.
Inputs make_inputs(int64_t vocab, bool padded, bool positions, bool segments) {
  const int64_t batch = 2, len = 20, real1 = 13;
  at::Generator gen = at::detail::createCPUGenerator(1234);
  Inputs in;
  in.input_ids = at::randint(1, vocab, {batch, len}, gen, at::TensorOptions().dtype(at::kLong));
  if (padded) {
    in.attention_mask = at::ones({batch, len}, at::kLong);
    in.attention_mask[1].narrow(0, real1, len - real1).zero_();
    in.input_ids[1].narrow(0, real1, len - real1).zero_();
  }
  if (positions) {
    in.position_ids = at::arange(len, at::kLong).unsqueeze(0).repeat({batch, 1});
    in.position_ids[0].add_(7);
    in.position_ids[1].add_(3);
  }
  if (segments) {
    in.segment_ids = at::zeros({batch, len}, at::kLong);
    in.segment_ids[0].narrow(0, 8, len - 8).fill_(1);
    in.segment_ids[1].narrow(0, 11, len - 11).fill_(1);
  }
  return in;
}

struct LossAndGrads {
  at::Tensor loss;
  std::vector<std::pair<std::string, at::Tensor>> grads;  // undefined where the parameter has none
};

// Mean next-token cross-entropy over real positions (labels at padding are ignored), then backward.
LossAndGrads loss_and_grads(model::CausalLM& model, const Inputs& in, model::BlockRunner runner) {
  for (auto& [name, p] : model.parameters())
    if (p.grad().defined()) p.mutable_grad() = at::Tensor();
  model::ForwardArgs args;
  args.input_ids = in.input_ids;
  args.attention_mask = in.attention_mask;
  args.position_ids = in.position_ids;
  args.segment_ids = in.segment_ids;
  args.block_runner = std::move(runner);
  at::Tensor logits = model.forward(args);
  const int64_t t = logits.size(1);
  at::Tensor labels = in.input_ids.clone();
  if (in.attention_mask.defined()) labels.masked_fill_(in.attention_mask == 0, -100);
  at::Tensor loss = at::cross_entropy_loss(logits.narrow(1, 0, t - 1).reshape({-1, logits.size(-1)}),
                                           labels.narrow(1, 1, t - 1).reshape({-1}), {}, at::Reduction::Mean, -100);
  loss.backward();
  LossAndGrads out{loss.detach(), {}};
  for (auto& [name, p] : model.parameters())
    out.grads.emplace_back(name, p.grad().defined() ? p.grad().clone() : at::Tensor());
  return out;
}

// Largest |a − b| / max(|b|, tiny) over all elements.
double max_relative_difference(const at::Tensor& a, const at::Tensor& b) {
  return ((a - b).abs() / b.abs().clamp_min(1e-12)).max().item<double>();
}

// Compares both runs; returns whether every tensor was bitwise equal (else they must agree to 1e-6).
bool expect_same(const LossAndGrads& plain, const LossAndGrads& ckpt, const std::string& what) {
  bool bitwise = at::equal(plain.loss, ckpt.loss);
  EXPECT_LE(max_relative_difference(ckpt.loss, plain.loss), 1e-6) << what << ": loss";
  EXPECT_EQ(plain.grads.size(), ckpt.grads.size());
  int64_t with_grad = 0;
  for (size_t i = 0; i < plain.grads.size() && i < ckpt.grads.size(); ++i) {
    const auto& [name, want] = plain.grads[i];
    const at::Tensor& got = ckpt.grads[i].second;
    EXPECT_EQ(want.defined(), got.defined()) << what << ": gradient presence of " << name;
    if (!want.defined() || !got.defined()) {
      bitwise = bitwise && want.defined() == got.defined();
      continue;
    }
    ++with_grad;
    // A zero gradient would make equality meaningless: every trainable weight here affects the loss.
    EXPECT_GT(want.abs().max().item<double>(), 0.0) << what << ": " << name;
    if (at::equal(want, got)) continue;
    bitwise = false;
    // Near-zero entries compare by absolute difference relative to the tensor's scale.
    const double scale = want.abs().max().item<double>();
    EXPECT_LE((want - got).abs().max().item<double>() / scale, 1e-6) << what << ": gradient of " << name;
  }
  EXPECT_GT(with_grad, 0) << what;
  return bitwise;
}

struct Case {
  const char* name;
  bool padded, positions, segments;
  const char* frozen;  // a parameter kept out of training ("" = none)
};

void check_model(const std::string& model_name, const std::string& embedding_name) {
  const std::vector<Case> cases = {
      {"plain", false, false, false, ""},
      {"right padding", true, false, false, ""},
      {"position ids + padding", true, true, false, ""},
      {"packed segments", false, false, true, ""},
      {"frozen embedding (block input needs no grad)", true, false, false, embedding_name.c_str()},
  };
  for (const Case& c : cases) {
    SCOPED_TRACE(model_name + ": " + c.name);
    auto model = load_trainable(model_name, c.frozen);
    ASSERT_TRUE(std::string(c.frozen).empty() || model->has_param(c.frozen)) << c.frozen;
    const Inputs in = make_inputs(model->config().vocab_size, c.padded, c.positions, c.segments);
    LossAndGrads plain = loss_and_grads(*model, in, nullptr);
    LossAndGrads ckpt = loss_and_grads(*model, in, checkpointing_block_runner());
    const bool bitwise = expect_same(plain, ckpt, model_name + " " + c.name);
    std::printf("[ checkpoint ] %s, %s: loss %.6f, %s\n", model_name.c_str(), c.name, plain.loss.item<double>(),
                bitwise ? "bitwise equal" : "equal within 1e-6");
    // Deterministic blocks and identical kernels: recomputation reproduces the same bits.
    EXPECT_TRUE(bitwise) << "loss/gradients differ in the last bits";
  }
}

TEST(ActivationCheckpoint, LlamaStoriesGradientsMatch) {
  FUSELLM_REQUIRE_SHARED();
  check_model("stories260K-hf", "model.embed_tokens.weight");
}

TEST(ActivationCheckpoint, MptTinyGradientsMatch) {
  FUSELLM_REQUIRE_SHARED();
  check_model("mpt-tiny", "transformer.wte.weight");
}

TEST(ActivationCheckpoint, GptNeoxTinyGradientsMatch) {
  FUSELLM_REQUIRE_SHARED();
  check_model("gpt_neox-tiny", "gpt_neox.embed_in.weight");
}

// The runner keeps no activations of the block: forward runs each block once, backward once more; a
// plain run calls each block only once. Inference (no grad) is not recomputed and gives the same logits.
TEST(ActivationCheckpoint, BlocksAreRecomputedInBackwardOnly) {
  FUSELLM_REQUIRE_SHARED();
  auto model = load_trainable("stories260K-hf");
  const int64_t layers = model->config().num_layers;
  const Inputs in = make_inputs(model->config().vocab_size, true, false, false);
  int64_t calls = 0;
  auto counting = [&calls](model::BlockRunner inner) -> model::BlockRunner {
    return [&calls, inner](int64_t layer, const model::BlockFn& block, const at::Tensor& hidden) {
      model::BlockFn counted = [&calls, block](const at::Tensor& x) {
        ++calls;
        return block(x);
      };
      return inner ? inner(layer, counted, hidden) : counted(hidden);
    };
  };
  model::ForwardArgs args;
  args.input_ids = in.input_ids;
  args.attention_mask = in.attention_mask;
  args.block_runner = counting(checkpointing_block_runner());
  at::Tensor logits = model->forward(args);
  EXPECT_EQ(calls, layers);
  EXPECT_TRUE(logits.requires_grad());
  logits.logsumexp(-1).mean().backward();
  EXPECT_EQ(calls, 2 * layers) << "each block should be re-run exactly once in backward";

  calls = 0;
  args.block_runner = counting(nullptr);
  model->forward(args).logsumexp(-1).mean().backward();
  EXPECT_EQ(calls, layers);

  at::NoGradGuard no_grad;
  calls = 0;
  args.block_runner = counting(checkpointing_block_runner());
  at::Tensor inferred = model->forward(args);
  EXPECT_EQ(calls, layers);
  EXPECT_FALSE(inferred.requires_grad());
  args.block_runner = nullptr;
  EXPECT_TRUE(at::equal(inferred, model->forward(args)));
}

// The full Trainer (grad accumulation, clipping, AdamW, restarted positions) gives the same per-step
// losses and gradient norms with train.activation_checkpointing as without.
TEST(ActivationCheckpoint, TrainerStepsMatch) {
  FUSELLM_REQUIRE_SHARED();
  const auto docs = test::shakespeare_documents(3000);
  auto run = [&docs](bool checkpointing) {
    TrainConfig c = test::small_train_config(test::scratch_dir(checkpointing ? "ckpt_trainer_on" : "ckpt_trainer_off"));
    c.weight_decay = 0;
    c.warmup_steps = 1;
    c.max_steps = 4;
    c.keep_last = 2;
    c.restart_positions = true;
    c.activation_checkpointing = checkpointing;
    return test::stories_trainer(
               c, std::make_unique<PackedSequenceSource>(docs, c.max_length, c.seed, c.restart_positions),
               make_clm_loss())
        ->run();
  };
  const std::vector<StepMetrics> plain = run(false), ckpt = run(true);
  ASSERT_EQ(plain.size(), 4u);
  ASSERT_EQ(ckpt.size(), plain.size());
  for (size_t i = 0; i < plain.size(); ++i) {
    EXPECT_EQ(ckpt[i].loss, plain[i].loss) << "step " << plain[i].step;
    EXPECT_EQ(ckpt[i].grad_norm, plain[i].grad_norm) << "step " << plain[i].step;
  }
  EXPECT_NE(plain.front().loss, plain.back().loss);  // the weights did move between steps
}

}  // namespace
}  // namespace fusellm::train
