// User-caused errors name the file (and key or tensor): config.json without a required key, an unknown
// model_type, a checkpoint missing a tensor or with a wrong shape. Extra tensors are ignored.
#include <gtest/gtest.h>

#include <algorithm>
#include <chrono>
#include <functional>

#include "common/test_paths.hpp"
#include "fusellm/io/safetensors.hpp"
#include "fusellm/model/causal_lm.hpp"
#include "fusellm/model/registry.hpp"
#include "model_test_util.hpp"

namespace fusellm::test {
namespace {

fs::path golden_dir(const std::string& variant) { return shared_dir() / "golden" / "models" / variant; }

// A model directory in scratch with the golden `variant`'s config (edited) and tensors (edited).
fs::path write_variant(const std::string& scratch_name, const std::string& variant,
                       const std::function<void(json&)>& edit_config,
                       const std::function<void(io::NamedTensors&)>& edit_tensors = {}) {
  fs::path dir = scratch_dir(scratch_name);
  json config = parse_json_file(golden_dir(variant) / "config.json");
  edit_config(config);
  write_file_atomic(dir / "config.json", config.dump(2));
  io::SafetensorsFile source(golden_dir(variant) / "model.safetensors");
  io::NamedTensors tensors;
  for (const auto& info : source.tensors()) tensors.emplace_back(info.name, source.load(info.name));
  if (edit_tensors) edit_tensors(tensors);
  io::save_safetensors(dir / "model.safetensors", tensors);
  return dir;
}

// Runs `fn`, expecting an Error whose message contains every one of `parts`.
template <typename Fn>
void expect_error(Fn fn, const std::vector<std::string>& parts) {
  try {
    fn();
    ADD_FAILURE() << "no error thrown";
  } catch (const Error& e) {
    const std::string message = e.what();
    EXPECT_EQ(message.find('\n'), std::string::npos) << "not one line: " << message;
    for (const auto& part : parts)
      EXPECT_NE(message.find(part), std::string::npos) << "'" << part << "' not in: " << message;
  }
}

TEST(ModelErrors, ConfigMissingRequiredKey) {
  FUSELLM_REQUIRE_SHARED();
  fs::path dir = write_variant("missing_key", "qwen2-tiny", [](json& c) { c.erase("hidden_size"); });
  expect_error([&] { model::load_model(dir); }, {(dir / "config.json").string(), "hidden_size"});
  // MPT's own key names are asked for.
  fs::path mpt = write_variant("missing_mpt_key", "mpt-tiny", [](json& c) { c.erase("n_heads"); });
  expect_error([&] { model::read_model_config(mpt); }, {(mpt / "config.json").string(), "'n_heads'"});
  // A family key (intermediate_size) is checked when the model is built.
  fs::path llama =
      write_variant("missing_family_key", "llama-rope-linear", [](json& c) { c.erase("intermediate_size"); });
  expect_error([&] { model::load_model(llama); }, {(llama / "config.json").string(), "intermediate_size"});
}

// Sizes a hostile or corrupt config.json claims are checked before the model declares anything: the
// black-box finding of issue 15 (num_hidden_layers 10^6 ran > 20 s and grew without bound; 2^31 never
// ended) now gets its one-line error at once. The time bound is generous (the check itself takes
// microseconds; before the fix 10^6 layers took > 20 s), so it cannot flake on a slow machine.
TEST(ModelErrors, HugeClaimedSizesFailFastBeforeAllocation) {
  FUSELLM_REQUIRE_SHARED();
  for (const int64_t layers : {int64_t{1000000}, int64_t{1} << 31, int64_t{100000}}) {
    fs::path dir = write_variant("huge_layers_" + std::to_string(layers), "llama-rope-linear",
                                 [&](json& c) { c["num_hidden_layers"] = layers; });
    const auto start = std::chrono::steady_clock::now();
    expect_error([&] { model::load_model(dir); },
                 {(dir / "config.json").string(), "'num_hidden_layers' is " + std::to_string(layers), "sane maximum"});
    EXPECT_LT(std::chrono::steady_clock::now() - start, std::chrono::seconds(5));
  }
  // Within the maximum but more than the checkpoint holds: named against the weights before declaring.
  fs::path more = write_variant("more_layers", "llama-rope-linear", [](json& c) { c["num_hidden_layers"] = 4000; });
  expect_error([&] { model::load_model(more); }, {(more / "config.json").string(), "claims 4000 layers", "holds"});
  for (const auto& huge : std::vector<std::pair<std::string, int64_t>>{
           {"vocab_size", int64_t{1} << 40}, {"hidden_size", int64_t{1} << 31}, {"num_attention_heads", 1 << 20},
           {"max_position_embeddings", int64_t{1} << 62}}) {
    fs::path dir = write_variant("huge_" + huge.first, "llama-rope-linear", [&](json& c) { c[huge.first] = huge.second; });
    expect_error([&] { model::read_model_config(dir); }, {(dir / "config.json").string()});
  }
}

TEST(ModelErrors, MissingConfigFile) {
  fs::path dir = scratch_dir("no_config");
  expect_error([&] { model::load_model(dir); }, {(dir / "config.json").string()});
}

TEST(ModelErrors, UnknownModelType) {
  FUSELLM_REQUIRE_SHARED();
  fs::path dir = write_variant("unknown_type", "llama-rope-linear", [](json& c) { c["model_type"] = "falcon"; });
  expect_error([&] { model::load_model(dir); },
               {(dir / "config.json").string() + ": unknown model_type 'falcon' (supported: gpt_neox, llama, mistral, "
                                                 "mpt, qwen2)"});
  EXPECT_EQ(model::registered_model_types(),
            (std::vector<std::string>{"gpt_neox", "llama", "mistral", "mpt", "qwen2"}));
}

TEST(ModelErrors, MissingTensorsAreListed) {
  FUSELLM_REQUIRE_SHARED();
  const std::vector<std::string> dropped = {"model.layers.1.self_attn.k_proj.bias", "lm_head.weight"};
  fs::path dir = write_variant("missing_tensor", "qwen2-tiny", [](json&) {}, [&](io::NamedTensors& tensors) {
    io::NamedTensors kept;
    for (auto& entry : tensors)
      if (std::find(dropped.begin(), dropped.end(), entry.first) == dropped.end()) kept.push_back(entry);
    tensors = kept;
  });
  expect_error([&] { model::load_model(dir); }, {dir.string(), dropped[0], dropped[1], "2 tensor(s)"});
}

TEST(ModelErrors, ShapeMismatchNamesTensorAndShapes) {
  FUSELLM_REQUIRE_SHARED();
  fs::path dir = write_variant("bad_shape", "gpt_neox-tiny", [](json&) {}, [](io::NamedTensors& tensors) {
    for (auto& [name, tensor] : tensors)
      if (name == "gpt_neox.layers.0.attention.dense.weight") tensor = tensor.narrow(0, 0, 95).contiguous();
  });
  expect_error([&] { model::load_model(dir); },
               {dir.string(), "gpt_neox.layers.0.attention.dense.weight", "[95, 96]", "[96, 96]"});
}

TEST(ModelErrors, UnexpectedTensorsAreIgnored) {
  FUSELLM_REQUIRE_SHARED();
  fs::path dir = write_variant("extra_tensor", "gpt_neox-tiny", [](json&) {}, [](io::NamedTensors& tensors) {
    tensors.emplace_back("gpt_neox.layers.0.attention.rotary_emb.inv_freq", at::ones({3}));
  });
  auto lm = model::load_model(dir);
  auto reference = model::load_model(golden_dir("gpt_neox-tiny"));
  EXPECT_EQ(lm->num_parameters(), reference->num_parameters());
  EXPECT_EQ(lm->num_parameters(), 254592);  // the README's parameter count
  model::ForwardArgs args;
  args.input_ids = at::arange(10, at::kLong).view({1, -1});
  EXPECT_TRUE(at::equal(lm->forward(args), reference->forward(args)));
}

TEST(ModelErrors, ParameterCountsMatchReadme) {
  FUSELLM_REQUIRE_SHARED();
  // From the golden README's table (tied heads counted once).
  const std::vector<std::pair<std::string, int64_t>> expected = {
      {"mpt-tiny", 106816}, {"mpt-clip-h6", 195264}, {"gpt_neox-tiny", 254592},
      {"mistral-swa8", 111936}, {"qwen2-tiny", 189536}, {"llama-rope-linear", 165312}};
  for (const auto& [variant, count] : expected)
    EXPECT_EQ(model::load_model(golden_dir(variant))->num_parameters(), count) << variant;
}

}  // namespace
}  // namespace fusellm::test
