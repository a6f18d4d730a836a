// Parsing and validation of the `train` section: every problem collected, each naming its key path.
#include "fusellm/train/train_config.hpp"

#include <fmt/format.h>

#include "fusellm/util/experiment_config.hpp"

namespace fusellm::train {

const char* to_string(Schedule s) {
  switch (s) {
    case Schedule::Cosine: return "cosine";
    case Schedule::Linear: return "linear";
    case Schedule::Constant: return "constant";
    case Schedule::WarmupDecay: return "warmup_decay";
  }
  return "?";
}

json TrainConfig::to_json() const {
  return json{{"lr", lr}, {"betas", {beta1, beta2}}, {"eps", eps}, {"weight_decay", weight_decay},
              {"schedule", to_string(schedule)}, {"warmup_ratio", warmup_ratio}, {"warmup_steps", warmup_steps},
              {"min_lr_ratio", min_lr_ratio}, {"clip", clip}, {"epochs", epochs}, {"max_steps", max_steps},
              {"micro_batch", micro_batch}, {"grad_accum", grad_accum}, {"max_length", max_length},
              {"restart_positions", restart_positions}, {"document_mask", document_mask}, {"pack_chunks", pack_chunks}, {"seed", seed}, {"save_every", save_every},
              {"keep_last", keep_last}, {"log_every", log_every}, {"output_dir", output_dir.string()},
              {"activation_checkpointing", activation_checkpointing},
              {"max_chunks", max_chunks}, {"dist_timeout_s", dist_timeout_s},
              {"bucket_mb", bucket_mb}, {"overlap_comm", overlap_comm}, {"precision", precision},
              {"peak_tflops", peak_tflops}, {"zero_stage", zero_stage}, {"reduce_scatter", reduce_scatter}};
}

namespace {

const std::vector<std::string> kKnownKeys = {
    "lr", "betas", "eps", "weight_decay", "schedule", "warmup_ratio", "warmup_steps", "min_lr_ratio", "clip",
    "epochs", "max_steps", "micro_batch", "grad_accum", "max_length", "restart_positions", "document_mask", "pack_chunks", "seed",
    "save_every", "keep_last", "log_every", "output_dir", "activation_checkpointing", "max_chunks",
    "dist_timeout_s", "bucket_mb", "overlap_comm", "precision", "peak_tflops",
    "zero_stage", "reduce_scatter"};

// Reads keys one by one, recording a problem instead of throwing so all of them are reported together.
struct Reader {
  const json& section;
  std::string source;
  std::vector<std::string> problems;

  std::string path(const std::string& key) const { return "train." + key; }
  template <typename T, typename Check>
  void read(const std::string& key, T& out, Check check, const char* expectation) {
    if (!section.contains(key) || section[key].is_null()) return;
    const json& v = section[key];
    bool type_ok;
    if constexpr (std::is_same_v<T, bool>) type_ok = v.is_boolean();
    else if constexpr (std::is_integral_v<T>) type_ok = v.is_number_integer();
    else if constexpr (std::is_floating_point_v<T>) type_ok = v.is_number();
    else type_ok = v.is_string();
    if (!type_ok) {
      problems.push_back(fmt::format("{}: {}: expected {}, got {}", source, path(key), expectation, v.dump()));
      return;
    }
    T value = v.get<T>();
    if (!check(value)) {
      problems.push_back(fmt::format("{}: {}: expected {}, got {}", source, path(key), expectation, v.dump()));
      return;
    }
    out = value;
  }
};

}  // namespace

TrainConfig parse_train_config(const json& section, const std::string& source, const fs::path& config_dir,
                               const std::string& config_stem) {
  TrainConfig cfg;
  cfg.output_dir = config_dir / "out" / config_stem / "train";
  if (section.is_null()) return cfg;
  if (!section.is_object()) throw ConfigError({fmt::format("{}: train: expected an object", source)});
  Reader r{section, source, {}};
  for (auto it = section.begin(); it != section.end(); ++it) {
    if (std::find(kKnownKeys.begin(), kKnownKeys.end(), it.key()) != kKnownKeys.end()) continue;
    if (it.key() == "lambda") {  // λ belongs to the fusion settings, next to the strategy it weighs
      r.problems.push_back(fmt::format("{}: train.lambda: unknown key (λ is set as fusion.lambda)", source));
      continue;
    }
    std::string hint = closest_key(it.key(), kKnownKeys);
    r.problems.push_back(fmt::format("{}: train.{}: unknown key{}", source, it.key(),
                                     hint.empty() ? "" : fmt::format(" (did you mean '{}'?)", hint)));
  }
  auto positive = [](auto v) { return v > 0; };
  auto non_negative = [](auto v) { return v >= 0; };
  auto unit = [](double v) { return v >= 0 && v <= 1; };
  r.read("lr", cfg.lr, positive, "a number > 0");
  r.read("eps", cfg.eps, positive, "a number > 0");
  r.read("weight_decay", cfg.weight_decay, non_negative, "a number >= 0");
  r.read("warmup_ratio", cfg.warmup_ratio, unit, "a number in [0, 1]");
  r.read("warmup_steps", cfg.warmup_steps, non_negative, "an integer >= 0");
  r.read("min_lr_ratio", cfg.min_lr_ratio, unit, "a number in [0, 1]");
  r.read("clip", cfg.clip, non_negative, "a number >= 0 (0 = no clipping)");
  r.read("epochs", cfg.epochs, positive, "an integer > 0");
  r.read("max_steps", cfg.max_steps, positive, "an integer > 0");
  r.read("micro_batch", cfg.micro_batch, positive, "an integer > 0");
  r.read("grad_accum", cfg.grad_accum, positive, "an integer > 0");
  r.read("max_length", cfg.max_length, [](int64_t v) { return v >= 2; }, "an integer >= 2");
  r.read("restart_positions", cfg.restart_positions, [](bool) { return true; }, "a boolean");
  r.read("document_mask", cfg.document_mask, [](bool) { return true; }, "a boolean");
  r.read("pack_chunks", cfg.pack_chunks, [](bool) { return true; }, "a boolean");
  int64_t seed = static_cast<int64_t>(cfg.seed);
  r.read("seed", seed, non_negative, "an integer >= 0");
  cfg.seed = static_cast<uint64_t>(seed);
  r.read("save_every", cfg.save_every, non_negative, "an integer >= 0 (0 = only at the end)");
  r.read("keep_last", cfg.keep_last, non_negative, "an integer >= 0 (0 = keep all)");
  r.read("log_every", cfg.log_every, positive, "an integer > 0");
  r.read("activation_checkpointing", cfg.activation_checkpointing, [](bool) { return true; }, "a boolean");
  r.read("max_chunks", cfg.max_chunks, non_negative, "an integer >= 0 (0 = all)");
  r.read("dist_timeout_s", cfg.dist_timeout_s, positive, "an integer > 0");
  r.read("bucket_mb", cfg.bucket_mb, positive, "a number > 0 (MiB)");
  r.read("overlap_comm", cfg.overlap_comm, [](bool) { return true; }, "a boolean");
  r.read("zero_stage", cfg.zero_stage, [](int64_t v) { return v >= 0 && v <= 2; },
         "0 (replicated), 1 (optimizer state sharded) or 2 (and gradients)");
  r.read("reduce_scatter", cfg.reduce_scatter,
         [](const std::string& s) { return s == "reduce" || s == "allreduce"; }, "'reduce' or 'allreduce'");
  r.read("peak_tflops", cfg.peak_tflops, non_negative, "a number >= 0 (0 = known GPUs by name)");
  r.read("precision", cfg.precision,
         [](const std::string& s) { return s == "fp32" || s == "bf16" || s == "fp64" || s == "auto"; },
         "one of 'fp32', 'bf16', 'fp64', 'auto'");
  std::string schedule = "cosine";
  r.read("schedule", schedule,
         [](const std::string& s) { return s == "cosine" || s == "linear" || s == "constant" || s == "warmup_decay"; },
         "one of 'cosine', 'linear', 'constant', 'warmup_decay'");
  cfg.schedule = schedule == "linear"         ? Schedule::Linear
                 : schedule == "constant"     ? Schedule::Constant
                 : schedule == "warmup_decay" ? Schedule::WarmupDecay
                                              : Schedule::Cosine;
  std::string output_dir;
  r.read("output_dir", output_dir, [](const std::string& s) { return !s.empty(); }, "a non-empty path");
  if (!output_dir.empty()) {
    fs::path p(output_dir);
    cfg.output_dir = p.is_absolute() ? p : (config_dir / p).lexically_normal();
  }
  if (section.contains("betas")) {
    const json& b = section["betas"];
    bool ok = b.is_array() && b.size() == 2 && b[0].is_number() && b[1].is_number() &&
              b[0].get<double>() >= 0 && b[0].get<double>() < 1 && b[1].get<double>() >= 0 && b[1].get<double>() < 1;
    if (!ok)
      r.problems.push_back(fmt::format("{}: train.betas: expected [beta1, beta2] with each in [0, 1), got {}", source,
                                       b.dump()));
    else {
      cfg.beta1 = b[0].get<double>();
      cfg.beta2 = b[1].get<double>();
    }
  }
  if (!r.problems.empty()) throw ConfigError(r.problems);
  return cfg;
}

}  // namespace fusellm::train
