// `fusellm demo` (demo.hpp): the recipe, as the list of fusellm commands the step runner executes. Every
// number of the recipe is here; docs/demo.md explains each choice and what was measured.
#include <cmath>
#include <iostream>

#include "fusellm/demo/demo.hpp"
#include "fusellm/demo/domains.hpp"
#include "fusellm/demo/report.hpp"
#include "fusellm/demo/steps.hpp"
#include "fusellm/util/error.hpp"

namespace fusellm::demo {

namespace {

struct TokenizerSpec {
  std::string name, style;
  int vocab;
  std::vector<std::string> flags;
};

// Different styles, sizes and number rules, as the paper's Llama-2 (SentencePiece 32000, digits split) and
// MPT (GPT-NeoX BPE 50277, digit runs merged): each family gets a tokenizer of its own. All are learned
// from the general mix, so each covers every domain. Both metaspace ones follow Llama-2's spm_train rules.
const std::vector<TokenizerSpec> kTokenizers = {
    {"metaspace-1024", "metaspace", 1024, {"--spm-rules"}},            // the target (llama)
    {"bytelevel-1024", "byte-level", 1024, {}},                        // gpt_neox: digit runs merge
    {"bytelevel-digits-1280", "byte-level", 1280, {"--split-digits"}},  // mpt: digits apart (as Qwen's)
    {"metaspace-1152", "metaspace", 1152, {"--spm-rules"}},            // the llama code specialist
};

struct ModelSpec {
  std::string name, family, tokenizer, domain;  // domain "" = the general mix (the target)
};

const ModelSpec kTarget = {"target", "llama", "metaspace-1024", ""};
const std::vector<ModelSpec> kSources = {
    {"neox-atlas", "gpt_neox", "bytelevel-1024", "atlas"},
    {"mpt-arith", "mpt", "bytelevel-digits-1280", "arith"},
    {"llama-code", "llama", "metaspace-1152", "code"},
};

// Bumped whenever a generator in domains.cpp changes what it writes: a rerun then regenerates the data
// (and, through the step keys, everything made from it).
constexpr int kGeneratorsVersion = 2;

struct Recipe {
  // Bytes of text per domain and split.
  size_t specialist_bytes = 400000, general_bytes = 40000, continual_bytes = 15000, heldout_bytes = 16000;
  size_t questions = 100;
  int seq = 128, micro_batch = 16;
  int specialist_steps = 200, target_steps = 150, continual_steps = 100;
  double pretrain_lr = 3e-3, continual_lr = 1e-3, min_lr_ratio = 0.1;
  int top_k = 10;
  double lambda = 0.9;
};

// The same steps on a fraction of the data, for tests of the mechanics (about a minute; numbers meaningless).
Recipe tiny_recipe() {
  Recipe r;
  r.specialist_bytes = 20000, r.general_bytes = 6000, r.continual_bytes = 6000, r.heldout_bytes = 3000;
  r.questions = 10;
  r.specialist_steps = 15, r.target_steps = 15, r.continual_steps = 8;
  return r;
}

// ~0.5 M parameters each: a training step of 16 × 128 tokens takes ~0.2 s on two cores.
json model_template(const std::string& family) {
  if (family == "llama")
    return {{"model_type", "llama"}, {"hidden_size", 96}, {"intermediate_size", 256}, {"num_attention_heads", 6},
            {"num_key_value_heads", 6}, {"num_hidden_layers", 4}, {"max_position_embeddings", 256},
            {"rms_norm_eps", 1e-5}, {"bos_token_id", 1}, {"eos_token_id", 2}, {"tie_word_embeddings", true}};
  if (family == "gpt_neox")
    return {{"model_type", "gpt_neox"}, {"hidden_size", 96}, {"intermediate_size", 256}, {"num_attention_heads", 6},
            {"num_hidden_layers", 4}, {"max_position_embeddings", 256}, {"rotary_pct", 0.25}, {"hidden_act", "gelu"},
            {"use_parallel_residual", true}, {"layer_norm_eps", 1e-5}, {"bos_token_id", 0}, {"eos_token_id", 0},
            {"tie_word_embeddings", false}};
  if (family == "mpt")
    return {{"model_type", "mpt"}, {"d_model", 96}, {"n_heads", 6}, {"n_layers", 4}, {"expansion_ratio", 3},
            {"max_seq_len", 256}, {"no_bias", true}, {"attn_config", {{"alibi", true}, {"alibi_bias_max", 8}}}};
  fail("demo: no template for family '{}'", family);
}

json train_section(const Recipe& r, int steps, double lr, uint64_t seed, const fs::path& out) {
  return {{"lr", lr}, {"betas", {0.9, 0.95}}, {"weight_decay", 0.01}, {"schedule", "cosine"},
          {"warmup_steps", std::max(1, steps / 20)}, {"min_lr_ratio", r.min_lr_ratio}, {"clip", 1.0}, {"max_steps", steps},
          {"micro_batch", r.micro_batch}, {"grad_accum", 1}, {"max_length", r.seq}, {"seed", seed},
          {"save_every", std::max(10, steps / 4)}, {"keep_last", 1}, {"log_every", 10}, {"output_dir", out}};
}

json data_section(const Recipe& r, const fs::path& corpus, const fs::path& chunks) {
  return {{"corpus", corpus}, {"chunk_dir", chunks}, {"max_length", r.seq}, {"margin", 8}};
}

fs::path final_checkpoint(const fs::path& train_dir, int steps) {
  return train_dir / "checkpoints" / fmt::format("step-{:08d}", steps);
}

struct Text {
  std::string domain, text;
};

void write_jsonl(const fs::path& path, const std::vector<Text>& texts) {
  std::string out;
  for (const auto& t : texts) out += json{{"text", t.text}, {"domain", t.domain}}.dump() + "\n";
  write_file_atomic(path, out);
}

std::vector<Text> texts_of(const Domain& d, Split split, size_t bytes) {
  std::vector<Text> out;
  for (auto& t : d.documents(split, bytes)) out.push_back({d.name(), std::move(t)});
  return out;
}

// Documents taken in turn from each domain (a domain that runs out is skipped).
std::vector<Text> interleave(const std::vector<std::vector<Text>>& parts) {
  std::vector<Text> out;
  for (size_t i = 0;; ++i) {
    bool any = false;
    for (const auto& p : parts)
      if (i < p.size()) out.push_back(p[i]), any = true;
    if (!any) return out;
  }
}

// The data step: every split of every domain, the two mixes and the held-out questions. Every line of a
// corpus file carries its domain (the report counts MinCE's choices per domain).
void write_data(const fs::path& dir, const Recipe& r, uint64_t seed) {
  std::vector<std::vector<Text>> general, continual;
  for (const auto& d : make_domains(seed)) {
    const fs::path ddir = dir / d->name();
    fs::create_directories(ddir);
    write_jsonl(ddir / "specialist.jsonl", texts_of(*d, Split::specialist, r.specialist_bytes));
    write_jsonl(ddir / "heldout.jsonl", texts_of(*d, Split::heldout, r.heldout_bytes));
    general.push_back(texts_of(*d, Split::general, r.general_bytes));
    continual.push_back(texts_of(*d, Split::continual, r.continual_bytes));
    std::string qa;
    for (const auto& q : d->questions(r.questions))
      qa += json{{"prompt", q.prompt}, {"answer", q.answer}, {"max_new_tokens", 24}}.dump() + "\n";
    write_file_atomic(ddir / "questions.jsonl", qa);
  }
  write_jsonl(dir / "general.jsonl", interleave(general));
  write_jsonl(dir / "continual.jsonl", interleave(continual));
}

Step command_step(std::string id, std::string stage, std::string label, std::vector<std::string> command,
                  std::vector<fs::path> inputs, std::vector<fs::path> outputs) {
  Step s;
  s.id = std::move(id), s.stage = std::move(stage), s.label = std::move(label), s.command = std::move(command);
  s.inputs = std::move(inputs), s.outputs = std::move(outputs);
  return s;
}

std::string join(const std::vector<std::string>& v, const std::string& sep) {
  std::string s;
  for (const auto& x : v) s += (s.empty() ? "" : sep) + x;
  return s;
}

}  // namespace

DemoOutcome run_demo(const DemoOptions& options) {
  const Recipe r = options.tiny ? tiny_recipe() : Recipe{};
  const fs::path out = fs::absolute(options.out_dir).lexically_normal();
  const fs::path data = out / "data", configs = out / "configs", work = out / "work";
  const std::string exe = (options.fusellm.empty() ? fs::path("/proc/self/exe") : options.fusellm).string();
  FUSELLM_CHECK(!options.train_seeds.empty(), "demo: --seeds: at least one seed");
  fs::create_directories(configs);
  auto cmd = [&](std::vector<std::string> args) {
    args.insert(args.begin(), {exe, "--log-level", options.log_level});
    return args;
  };
  // Configs are written before the steps run; a step's key covers the config bytes it reads.
  auto write_config = [&](const std::string& name, const json& config) {
    const fs::path path = configs / (name + ".json");
    write_file_atomic(path, config.dump(2) + "\n");
    return path;
  };

  std::vector<Step> steps;
  Step data_step;
  data_step.id = data_step.stage = "data";
  data_step.label = "generate the three domains (atlas, arith, code)";
  data_step.action = [&] { write_data(data, r, options.seed); };
  data_step.outputs = {data};
  data_step.key_extra = fmt::format("generators v{} seed {} bytes {} {} {} {} questions {}", kGeneratorsVersion, options.seed, r.specialist_bytes,
                                    r.general_bytes, r.continual_bytes, r.heldout_bytes, r.questions);
  steps.push_back(data_step);

  for (const auto& t : kTokenizers)
    steps.push_back(command_step("tokenizer-" + t.name, "tokenizers",
                     fmt::format("train tokenizer {} ({} BPE, {} tokens)", t.name, t.style, t.vocab),
                     cmd([&] {
                       std::vector<std::string> a = {"train-tokenizer", "--style", t.style, "--vocab-size",
                                                     std::to_string(t.vocab), "--corpus", (data / "general.jsonl").string(),
                                                     "--out", (out / "tokenizers" / t.name).string(), "--force"};
                       a.insert(a.end(), t.flags.begin(), t.flags.end());
                       return a;
                     }()),
                     {}, {out / "tokenizers" / t.name}));

  // Every model: init-model from its family's template with its tokenizer, then `fusellm run` (prepare +
  // train, CLM) on its own text — a source on its domain, the target on the general mix.
  std::map<std::string, fs::path> trained;  // model name → final checkpoint
  std::vector<ModelSpec> models = kSources;
  models.push_back(kTarget);
  for (const auto& m : models) {
    const fs::path init = work / m.name / "init", tok = out / "tokenizers" / m.tokenizer;
    const fs::path tmpl = write_config("model-" + m.name, model_template(m.family));
    const bool source = !m.domain.empty();
    steps.push_back(command_step("init-" + m.name, source ? "sources" : "target",
                     fmt::format("initialize {} ({}, {})", m.name, m.family, m.tokenizer),
                     cmd({"init-model", "--config", tmpl.string(), "--tokenizer", (tok / "tokenizer.json").string(),
                          "--tokenizer", (tok / "tokenizer_config.json").string(), "--out", init.string(), "--seed",
                          std::to_string(options.seed), "--force"}),
                     {tmpl}, {init}));
    const int model_steps = source ? r.specialist_steps : r.target_steps;
    const fs::path corpus = source ? data / m.domain / "specialist.jsonl" : data / "general.jsonl";
    const fs::path train_dir = work / m.name / "train";
    const fs::path config = write_config(
        "train-" + m.name,
        {{"models", {{{"name", m.name}, {"path", init}, {"role", "target"}}}},
         {"data", data_section(r, corpus, work / m.name / "chunks")},
         {"train", train_section(r, model_steps, r.pretrain_lr, options.seed, train_dir)}});
    steps.push_back(command_step("train-" + m.name, source ? "sources" : "target",
                     source ? fmt::format("train source {} on {} ({} steps)", m.name, m.domain, model_steps)
                            : fmt::format("train target on the general mix ({} steps)", model_steps),
                     cmd({"run", "--config", config.string(), "--stages", "prepare,train", "--no-progress"}),
                     {config}, {work / m.name / "chunks", train_dir}));
    trained[m.name] = final_checkpoint(train_dir, model_steps);
  }

  // Continual training: one aligned store (prepare, infer, align once), then per seed two runs that differ
  // only in λ — the same sequences in the same order.
  json fusion_models = json::array({{{"name", "target"}, {"path", trained["target"]}, {"role", "target"}}});
  for (const auto& s : kSources) fusion_models.push_back({{"name", s.name}, {"path", trained[s.name]}, {"role", "source"}});
  const fs::path fusion_dir = work / "fusion";
  auto continual_config = [&](const std::string& arm, uint64_t seed, double lambda) {
    const fs::path train_dir = work / fmt::format("{}-seed{}", arm, seed);
    return json{{"models", fusion_models},
                {"data", data_section(r, data / "continual.jsonl", fusion_dir / "chunks")},
                {"infer", {{"store_dir", fusion_dir / "store"}, {"top_k", r.top_k}, {"batch_tokens", 8192}, {"dtype", "fp32"}}},
                {"align", {{"method", "dtw"}, {"vocab", "mined"}, {"compat", "fusellm"}, {"canonicalize", true},
                           {"duplicates", "sum"}, {"out_dir", fusion_dir / "aligned"}}},
                {"fusion", {{"strategy", "minCE"}, {"divergence", "ce"}, {"temperature", 1.0}, {"lambda", lambda}}},
                {"train", [&] {
                   json t = train_section(r, r.continual_steps, r.continual_lr, seed, train_dir);
                   t["pack_chunks"] = false;  // one chunk per sequence: MinCE picks a source per sequence
                   return t;
                 }()}};
  };
  const fs::path store_config = write_config("fusion-store", continual_config("fused", options.train_seeds[0], r.lambda));
  steps.push_back(command_step("fusion-store", "infer+align", "prepare, infer (4 models, top-10) and align (MinED + DTW) the continual mix",
                   cmd({"run", "--config", store_config.string(), "--stages", "prepare,infer,align", "--no-progress"}),
                   {store_config}, {fusion_dir}));
  struct Arm {
    std::string name;
    double lambda;
  };
  const std::vector<Arm> arms = {{"clm", 1.0}, {"fused", r.lambda}};
  for (uint64_t seed : options.train_seeds)
    for (const auto& arm : arms) {
      const std::string name = fmt::format("{}-seed{}", arm.name, seed);
      const fs::path config = write_config("continual-" + name, continual_config(arm.name, seed, arm.lambda));
      steps.push_back(command_step("train-" + name, "continual",
                       fmt::format("continue the target, {} (λ = {}), seed {} ({} steps)",
                                   arm.name == "clm" ? "CLM only" : "FuseLLM MinCE", arm.lambda, seed, r.continual_steps),
                       cmd({"run", "--config", config.string(), "--stages", "train", "--no-progress"}),
                       {config}, {work / name}));
      trained[name] = final_checkpoint(work / name, r.continual_steps);
    }

  // Evaluation of every model: bits per byte of each domain's held-out text, exact match on its questions.
  std::vector<std::string> tasks, data_flags;
  for (const auto& d : make_domains(options.seed)) {
    tasks.push_back("bpb:" + d->name());
    tasks.push_back("exact_match:" + d->name());
    data_flags.push_back("bpb:" + d->name() + "=" + (data / d->name() / "heldout.jsonl").string());
    data_flags.push_back("exact_match:" + d->name() + "=" + (data / d->name() / "questions.jsonl").string());
  }
  for (const auto& [name, checkpoint] : trained) {
    std::vector<std::string> args = {"eval", "--model", checkpoint.string(), "--tasks", join(tasks, ","), "--out",
                                     (out / "eval" / name).string(), "--no-progress"};
    for (const auto& d : data_flags) args.insert(args.end(), {"--data", d});
    steps.push_back(command_step("eval-" + name, "eval", "evaluate " + name, cmd(args), {}, {out / "eval" / name}));
  }

  StepRunner runner(out, options.tty);
  runner.set_total(steps.size());
  for (const auto& step : steps) runner.run(step);

  ReportInputs in;
  in.out_dir = out;
  in.seed = options.seed;
  in.train_seeds = options.train_seeds;
  in.domains = {"atlas", "arith", "code"};
  for (const auto& s : kSources) in.sources.push_back({s.name, s.family, s.tokenizer, s.domain});
  in.target = {kTarget.name, kTarget.family, kTarget.tokenizer, ""};
  in.timings = runner.timings();
  in.aligned_store = fusion_dir / "aligned";
  in.work = work;
  in.continual_corpus = data / "continual.jsonl";
  in.fusion_chunks = fusion_dir / "chunks";
  in.lambda = r.lambda;
  in.continual_steps = r.continual_steps;
  DemoOutcome outcome = write_report(in);
  return outcome;
}

}  // namespace fusellm::demo
