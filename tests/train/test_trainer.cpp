// The trainer on stories260K: the CLM loss falls; resuming from a checkpoint repeats an uninterrupted
// run's later steps bit for bit; a checkpoint reloads through load_model with identical logits.
#include <gtest/gtest.h>

#include "fusellm/model/causal_lm.hpp"
#include "fusellm/train/checkpoint.hpp"
#include "fusellm/train/sharded_state.hpp"
#include "fusellm/train/trainer.hpp"
#include "train/train_test_util.hpp"

namespace fusellm::train {
namespace {

TrainConfig small_config(const fs::path& out) {
  TrainConfig c = test::small_train_config(out);
  c.max_steps = 20;
  c.save_every = 5;
  c.keep_last = 0;
  return c;
}

std::unique_ptr<Trainer> make_trainer(const TrainConfig& cfg, bool resume,
                                      const std::vector<std::vector<int64_t>>& docs) {
  return test::stories_trainer(cfg, std::make_unique<PackedSequenceSource>(docs, cfg.max_length, cfg.seed, false),
                               make_clm_loss(), resume);
}

TEST(Trainer, LossFallsResumeIsExactAndCheckpointReloads) {
  FUSELLM_REQUIRE_SHARED();
  const auto docs = test::shakespeare_documents(6000);
  const fs::path out = test::scratch_dir("trainer_run");
  TrainConfig cfg = small_config(out);
  auto trainer = make_trainer(cfg, false, docs);
  std::vector<StepMetrics> full = trainer->run();
  ASSERT_EQ(full.size(), 20u);
  double first = 0, last = 0;
  for (int i = 0; i < 5; ++i) first += full[i].loss / 5, last += full[15 + i].loss / 5;
  EXPECT_LT(last, first - 0.5) << "loss did not fall: first steps " << first << ", last steps " << last;
  for (const auto& m : full) EXPECT_TRUE(std::isfinite(m.grad_norm));

  // The final checkpoint is an HF directory that load_model reads, with the trained weights exactly.
  auto latest = latest_checkpoint(out);
  ASSERT_TRUE(latest.has_value());
  EXPECT_EQ(latest->filename().string(), checkpoint_name(20));
  EXPECT_TRUE(fs::exists(*latest / "config.json"));
  EXPECT_TRUE(fs::exists(*latest / "tokenizer.model"));
  auto reloaded = model::load_model(*latest);
  model::ForwardArgs args;
  args.input_ids = at::tensor(std::vector<int64_t>(docs[0].begin(), docs[0].begin() + 16)).unsqueeze(0);
  at::Tensor want, got;
  {
    at::NoGradGuard no_grad;
    want = trainer->model().forward(args);
    got = reloaded->forward(args);
  }
  EXPECT_TRUE(at::equal(want, got));
  // …and differs from the untrained model (the weights did move).
  auto untrained = model::load_model(test::stories_dir());
  {
    at::NoGradGuard no_grad;
    EXPECT_FALSE(at::allclose(untrained->forward(args), got));
  }

  // Resume from step 10 (pointing `latest` back there): steps 11..20 repeat bit for bit.
  write_file_atomic(out / "checkpoints" / "latest", checkpoint_name(10) + "\n");
  auto resumed = make_trainer(cfg, true, docs);
  std::vector<StepMetrics> tail = resumed->run();
  ASSERT_EQ(tail.size(), 10u);
  for (size_t i = 0; i < tail.size(); ++i) {
    EXPECT_EQ(tail[i].step, full[10 + i].step);
    EXPECT_EQ(tail[i].loss, full[10 + i].loss) << "step " << tail[i].step;
    EXPECT_EQ(tail[i].grad_norm, full[10 + i].grad_norm) << "step " << tail[i].step;
  }
  for (size_t i = 0; i < trainer->model().parameters().size(); ++i)
    EXPECT_TRUE(at::equal(trainer->model().parameters()[i].second, resumed->model().parameters()[i].second))
        << trainer->model().parameters()[i].first;

  // Starting again without --resume over existing checkpoints is refused.
  EXPECT_THROW(make_trainer(cfg, false, docs)->run(), Error);
}

TEST(Checkpoint, RotationKeepsLastAndIgnoresCrashedTemp) {
  const fs::path out = test::scratch_dir("ckpt_rotation");
  io::NamedTensors weights = {{"w", at::ones({2})}};
  fs::create_directories(out / "checkpoints" / ".tmp-step-00000009-1");  // a crashed save's leftovers
  for (int64_t step : {1, 2, 3}) {
    TrainState s;
    s.step = step;
    s.total_steps = 3;
    s.loader_position = json{{"x", step}};
    s.optimizer = {{"exp_avg.w", at::full({2}, static_cast<double>(step))}};
    save_checkpoint(out, out / "no_model_files_here", weights, s, 2);
  }
  EXPECT_FALSE(fs::exists(out / "checkpoints" / checkpoint_name(1)));
  EXPECT_TRUE(fs::exists(out / "checkpoints" / checkpoint_name(2)));
  EXPECT_FALSE(fs::exists(out / "checkpoints" / ".tmp-step-00000009-1"));
  TrainState back = load_train_state(*latest_checkpoint(out));
  EXPECT_EQ(back.step, 3);
  EXPECT_EQ(back.loader_position["x"], 3);
  ASSERT_EQ(back.optimizer.size(), 1u);
  EXPECT_TRUE(at::equal(back.optimizer[0].second, at::full({2}, 3.0)));
}

// state.json lists every file of the checkpoint with its checksums: one flipped byte in the weights (data
// past the header, which the safetensors reader alone could not notice) fails the resume, naming the file
// and the 4 KiB block that holds the byte.
TEST(Checkpoint, FlippedByteInWeightsIsNamedWithItsOffsetOnResume) {
  const fs::path out = test::scratch_dir("ckpt_bitflip");
  io::NamedTensors weights = {{"w", at::arange(3000, at::kFloat)}};  // 12000 bytes of data: three blocks
  TrainState s;
  s.step = 1;
  s.total_steps = 1;
  s.loader_position = json::object();
  s.optimizer = {{"exp_avg.w", at::zeros({3000})}};
  const fs::path dir = save_checkpoint(out, out / "no_model_files_here", weights, s, 0);
  EXPECT_NO_THROW(load_train_state(dir));
  const fs::path file = dir / "model.safetensors";
  std::string bytes = read_file(file);
  const size_t at = bytes.size() - 5000;  // in the second 4 KiB block
  bytes[at] ^= 0x10;
  write_file_atomic(file, bytes);
  try {
    load_train_state(dir);
    ADD_FAILURE() << "no error";
  } catch (const Error& e) {
    const std::string message = e.what();
    EXPECT_NE(message.find(file.string() + ": checksum mismatch in bytes " + std::to_string(at / 4096 * 4096) + ".."),
              std::string::npos) << message;
  }
}

// The `latest` pointer and a ZeRO shard table come from disk: a name that is not a plain directory or
// file name (fuzzing found a 300-byte one whose filesystem error escaped as std::filesystem_error), a slice
// whose offset + length overflows, each get one fusellm::Error naming the file.
TEST(Checkpoint, HostileLatestPointerAndZeroShardTableAreRefused) {
  const fs::path out = test::scratch_dir("ckpt_hostile");
  io::NamedTensors weights = {{"w", at::ones({4})}};
  TrainState s;
  s.step = 1;
  s.total_steps = 1;
  s.loader_position = json::object();
  s.optimizer = {{"exp_avg.w", at::zeros({4})}};
  const fs::path dir = save_checkpoint(out, out / "no_model_files_here", weights, s, 0);
  const fs::path pointer = out / "checkpoints" / "latest";
  for (const std::string name : {std::string(300, 'x'), std::string("../../etc"), std::string("a\0b", 3)}) {
    write_file_atomic(pointer, name);
    try {
      latest_checkpoint(out);
      ADD_FAILURE() << "no error for " << name;
    } catch (const Error& e) {
      EXPECT_NE(std::string(e.what()).find(pointer.string()), std::string::npos) << e.what();
    }
  }
  TrainState zero = s;
  for (const json& shards : {json::parse(R"([{"file": "x.safetensors", "xxh3": "0", "slices": [["w", 9223372036854775807, 2]]}])"),
                             json::parse(R"([{"file": "x.safetensors", "xxh3": "0", "slices": [["w", -4, 2]]}])"),
                             // found by fuzzing: a float offset was an undefined float-to-integer cast
                             json::parse(R"([{"file": "x.safetensors", "xxh3": "0", "slices": [["w", 9.2e61, 2]]}])"),
                             json::parse(R"([{"file": "../../model.safetensors", "xxh3": "0", "slices": []}])")}) {
    zero.zero = {{"stage", 1}, {"world_size", 1}, {"shards", shards}};
    try {
      open_optimizer_state(dir, zero);
      ADD_FAILURE() << "no error for " << shards.dump();
    } catch (const Error& e) {
      EXPECT_NE(std::string(e.what()).find("state.json: \"zero\""), std::string::npos) << e.what();
    }
  }
}

TEST(PackedSequenceSource, EveryEpochVisitsEachSequenceOnceAndPositionsRestart) {
  std::vector<std::vector<int64_t>> docs = {{1, 2, 3}, {4, 5, 6, 7, 8}, {9, 10, 11, 12}};  // 12 tokens
  PackedSequenceSource src(docs, 4, 7, true);
  ASSERT_EQ(src.num_sequences(), 3);
  std::vector<int64_t> seen;
  for (int i = 0; i < 3; ++i) {
    auto b = src.next_global_batch(1);
    seen.push_back(b[0]);
  }
  std::sort(seen.begin(), seen.end());
  EXPECT_EQ(seen, (std::vector<int64_t>{0, 1, 2}));
  EXPECT_EQ(src.epoch(), 0);
  json pos = src.position();
  auto next = src.next_global_batch(2);
  EXPECT_EQ(src.epoch(), 1);
  PackedSequenceSource again(docs, 4, 7, true);
  again.restore(pos);
  EXPECT_EQ(again.next_global_batch(2), next);
  TrainBatch b = src.make_batch({0, 1});
  // Sequence 0 = tokens 1 2 3 | 4 (a document starts at 4), sequence 1 = 5 6 7 8.
  EXPECT_TRUE(at::equal(b.input_ids, at::tensor(std::vector<int64_t>{1, 2, 3, 4, 5, 6, 7, 8}).view({2, 4})));
  EXPECT_TRUE(at::equal(b.position_ids, at::tensor(std::vector<int64_t>{0, 1, 2, 0, 0, 1, 2, 3}).view({2, 4})));
  PackedSequenceSource other_seed(docs, 4, 8, true);
  EXPECT_THROW(other_seed.restore(pos), Error);
}

}  // namespace
}  // namespace fusellm::train
