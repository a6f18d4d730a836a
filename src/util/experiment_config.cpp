#include "fusellm/util/experiment_config.hpp"

#include <algorithm>
#include <set>

namespace fusellm {

const char* to_string(TxtMode mode) {
  switch (mode) {
    case TxtMode::Document: return "document";
    case TxtMode::Line: return "line";
    case TxtMode::Paragraph: return "paragraph";
    case TxtMode::Separator: return "separator";
  }
  return "?";
}

const char* to_string(BadLinePolicy policy) { return policy == BadLinePolicy::Skip ? "skip" : "fail"; }

const char* to_string(ModelRole role) { return role == ModelRole::Source ? "source" : "target"; }

const ModelEntry& ExperimentConfig::target() const {
  for (const auto& m : models)
    if (m.role == ModelRole::Target) return m;
  fail("{}: no model has role 'target'", config_path.string());  // unreachable after validation
}

std::vector<const ModelEntry*> ExperimentConfig::sources() const {
  std::vector<const ModelEntry*> out;
  for (const auto& m : models)
    if (m.role == ModelRole::Source) out.push_back(&m);
  return out;
}

const ModelEntry* ExperimentConfig::find_model(const std::string& name) const {
  for (const auto& m : models)
    if (m.name == name) return &m;
  return nullptr;
}

static std::string join_lines(const std::vector<std::string>& lines) {
  std::string out;
  for (size_t i = 0; i < lines.size(); ++i) out += (i ? "\n" : "") + lines[i];
  return out;
}

ConfigError::ConfigError(std::vector<std::string> problems)
    : Error(join_lines(problems)), problems_(std::move(problems)) {}

static size_t edit_distance(const std::string& a, const std::string& b) {
  std::vector<size_t> row(b.size() + 1);
  for (size_t j = 0; j <= b.size(); ++j) row[j] = j;
  for (size_t i = 1; i <= a.size(); ++i) {
    size_t diagonal = row[0];
    row[0] = i;
    for (size_t j = 1; j <= b.size(); ++j) {
      size_t above = row[j];
      size_t substitute = diagonal + (a[i - 1] == b[j - 1] ? 0 : 1);
      row[j] = std::min({above + 1, row[j - 1] + 1, substitute});
      diagonal = above;
    }
  }
  return row[b.size()];
}

std::string closest_key(const std::string& key, const std::vector<std::string>& known) {
  std::string best;
  size_t best_distance = SIZE_MAX;
  for (const auto& k : known) {
    size_t d = edit_distance(key, k);
    if (d < best_distance) best_distance = d, best = k;
  }
  // A typo changes a few characters; anything farther is a different word, not worth suggesting.
  size_t limit = std::max<size_t>(2, key.size() / 3);
  return best_distance <= limit ? best : std::string();
}

namespace {

// The kind of a JSON value as messages name it ("expected an integer, got float").
std::string kind_of(const json& v) {
  if (v.is_number_float()) return "float";
  if (v.is_number()) return "integer";
  return v.type_name();
}

std::string quoted_list(const std::vector<std::string>& names, const char* last_joiner) {
  std::string out;
  for (size_t i = 0; i < names.size(); ++i) {
    if (i) out += (i + 1 == names.size()) ? last_joiner : ", ";
    out += "'" + names[i] + "'";
  }
  return out;
}

// Collects every problem of one config file, each prefixed with the file and key path.
class Problems {
 public:
  explicit Problems(std::string source) : source_(std::move(source)) {}
  void add(const std::string& key_path, const std::string& message) {
    list_.push_back(fmt::format("{}: {}: {}", source_, key_path, message));
  }
  const std::vector<std::string>& list() const { return list_; }

 private:
  std::string source_;
  std::vector<std::string> list_;
};

// Reads one JSON object: typed look-ups record problems instead of throwing, and finish() reports every key
// that no look-up asked for as unknown (with a did-you-mean suggestion).
class ObjectReader {
 public:
  ObjectReader(const json& obj, std::string path, Problems& problems, const fs::path& base_dir)
      : obj_(obj), path_(std::move(path)), problems_(problems), base_dir_(base_dir) {}

  std::string key_path(const std::string& key) const { return path_.empty() ? key : path_ + "." + key; }

  // The value under `key` (null counts as absent), remembering the key as known.
  const json* find(const std::string& key, bool required = false) {
    known_.push_back(key);
    auto it = obj_.find(key);
    if (it == obj_.end() || it->is_null()) {
      if (required) problems_.add(key_path(key), "required key is missing");
      return nullptr;
    }
    return &*it;
  }

  void string(const std::string& key, std::string& out, bool required = false) {
    if (const json* v = find(key, required)) {
      if (v->is_string()) out = v->get<std::string>();
      else wrong_type(key, "a string", *v);
    }
  }

  void integer(const std::string& key, int64_t& out, int64_t minimum, bool required = false) {
    if (const json* v = find(key, required)) {
      if (!v->is_number_integer()) return wrong_type(key, "an integer", *v);
      if (v->is_number_unsigned() && v->get<uint64_t>() > uint64_t(INT64_MAX))
        return problems_.add(key_path(key), "value is too large");
      int64_t value = v->get<int64_t>();
      if (value < minimum) return problems_.add(key_path(key), fmt::format("must be at least {}, got {}", minimum, value));
      out = value;
    }
  }

  void boolean(const std::string& key, bool& out) {
    if (const json* v = find(key)) {
      if (v->is_boolean()) out = v->get<bool>();
      else wrong_type(key, "a boolean", *v);
    }
  }

  // A string that must be one of `allowed`; returns its index, or -1 when absent or invalid.
  int choice(const std::string& key, const std::vector<std::string>& allowed, bool required = false) {
    const json* v = find(key, required);
    if (!v) return -1;
    return choice_value(key_path(key), *v, allowed);
  }

  int choice_value(const std::string& where, const json& v, const std::vector<std::string>& allowed) {
    std::string expected =
        allowed.size() <= 2 ? quoted_list(allowed, " or ") : "one of " + quoted_list(allowed, ", ");
    if (!v.is_string()) {
      problems_.add(where, fmt::format("expected {}, got {}", expected, kind_of(v)));
      return -1;
    }
    auto s = v.get<std::string>();
    auto it = std::find(allowed.begin(), allowed.end(), s);
    if (it == allowed.end()) {
      problems_.add(where, fmt::format("expected {}, got '{}'", expected, s));
      return -1;
    }
    return int(it - allowed.begin());
  }

  // A path string resolved against the config's directory.
  void path(const std::string& key, fs::path& out, bool required = false) {
    std::string s;
    bool had = obj_.contains(key) && !obj_.at(key).is_null();
    string(key, s, required);
    if (!had || !obj_.at(key).is_string()) return;
    if (s.empty()) return problems_.add(key_path(key), "path must not be empty");
    out = resolve(s);
  }

  fs::path resolve(const std::string& s) const {
    fs::path p(s);
    return (p.is_absolute() ? p : base_dir_ / p).lexically_normal();
  }

  void wrong_type(const std::string& key, const char* expected, const json& v) {
    problems_.add(key_path(key), fmt::format("expected {}, got {}", expected, kind_of(v)));
  }

  void finish(const char* what = "key") {
    for (auto it = obj_.begin(); it != obj_.end(); ++it) {
      if (std::find(known_.begin(), known_.end(), it.key()) != known_.end()) continue;
      std::string suggestion = closest_key(it.key(), known_);
      problems_.add(key_path(it.key()), suggestion.empty()
                                            ? fmt::format("unknown {} (known: {})", what, join_names(known_))
                                            : fmt::format("unknown {} (did you mean '{}'?)", what, suggestion));
    }
  }

  Problems& problems() { return problems_; }
  const fs::path& base_dir() const { return base_dir_; }

 private:
  static std::string join_names(const std::vector<std::string>& names) {
    std::string out;
    for (size_t i = 0; i < names.size(); ++i) out += (i ? ", " : "") + names[i];
    return out;
  }

  const json& obj_;
  std::string path_;
  Problems& problems_;
  const fs::path& base_dir_;
  std::vector<std::string> known_;
};

bool valid_model_name(const std::string& name) {
  if (name.empty() || name == "." || name == "..") return false;
  return std::all_of(name.begin(), name.end(), [](char c) {
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '.' || c == '_' ||
           c == '-';
  });
}

void read_models(ObjectReader& top, std::vector<ModelEntry>& models) {
  const json* list = top.find("models", /*required=*/true);
  if (!list) return;
  Problems& problems = top.problems();
  if (!list->is_array()) return top.wrong_type("models", "an array", *list);
  if (list->empty()) return problems.add("models", "must list at least one model");

  std::vector<std::string> targets;
  bool every_role_valid = true;
  for (size_t i = 0; i < list->size(); ++i) {
    std::string where = fmt::format("models[{}]", i);
    const json& item = (*list)[i];
    if (!item.is_object()) {
      problems.add(where, fmt::format("expected an object, got {}", kind_of(item)));
      every_role_valid = false;
      continue;
    }
    ModelEntry m;
    ObjectReader r(item, where, problems, top.base_dir());
    r.string("name", m.name, /*required=*/true);
    bool name_ok = item.contains("name") && item["name"].is_string();
    if (name_ok && !valid_model_name(m.name)) {
      problems.add(r.key_path("name"),
                   fmt::format("'{}' is not a valid model name (use letters, digits, '.', '_', '-')", m.name));
    }
    r.path("path", m.path, /*required=*/true);
    int role = r.choice("role", {"source", "target"}, /*required=*/true);
    r.finish();
    if (name_ok) {
      for (size_t j = 0; j < models.size(); ++j) {
        if (models[j].name == m.name)
          problems.add(r.key_path("name"), fmt::format("duplicate model name '{}' (also models[{}])", m.name, j));
      }
    }
    if (role < 0) {
      every_role_valid = false;
    } else {
      m.role = role == 0 ? ModelRole::Source : ModelRole::Target;
      if (m.role == ModelRole::Target) targets.push_back(fmt::format("{} '{}'", where, m.name));
    }
    models.push_back(std::move(m));
  }
  if (targets.size() > 1) {
    std::string which;
    for (size_t i = 0; i < targets.size(); ++i) which += (i ? ", " : "") + targets[i];
    problems.add("models", fmt::format("exactly one model must have role 'target', found {}: {}", targets.size(), which));
  } else if (targets.empty() && every_role_valid) {
    problems.add("models", "exactly one model must have role 'target', found none");
  }
}

void read_data(ObjectReader& top, DataConfig& data) {
  const json* section = top.find("data", /*required=*/true);
  if (!section) return;
  if (!section->is_object()) return top.wrong_type("data", "an object", *section);
  Problems& problems = top.problems();
  ObjectReader r(*section, "data", problems, top.base_dir());

  if (const json* corpus = r.find("corpus", /*required=*/true)) {
    std::vector<const json*> entries;
    if (corpus->is_string()) {
      entries.push_back(corpus);
    } else if (corpus->is_array()) {
      if (corpus->empty()) problems.add("data.corpus", "must list at least one file, directory or glob");
      for (const auto& e : *corpus) entries.push_back(&e);
    } else {
      r.wrong_type("corpus", "a string or an array of strings", *corpus);
    }
    for (size_t i = 0; i < entries.size(); ++i) {
      std::string where = corpus->is_array() ? fmt::format("data.corpus[{}]", i) : "data.corpus";
      if (!entries[i]->is_string()) {
        problems.add(where, fmt::format("expected a string, got {}", kind_of(*entries[i])));
      } else if (entries[i]->get<std::string>().empty()) {
        problems.add(where, "path must not be empty");
      } else {
        data.corpus.push_back(r.resolve(entries[i]->get<std::string>()).string());
      }
    }
  }
  r.string("text_field", data.text_field);
  if (data.text_field.empty()) problems.add("data.text_field", "must not be empty");
  int mode = r.choice("txt_mode", {"document", "line", "paragraph", "separator"});
  if (mode >= 0) data.txt_mode = static_cast<TxtMode>(mode);
  r.string("txt_separator", data.txt_separator);
  if (data.txt_separator.empty()) problems.add("data.txt_separator", "must not be empty");
  int policy = r.choice("on_bad_line", {"skip", "fail"});
  if (policy >= 0) data.on_bad_line = policy == 0 ? BadLinePolicy::Skip : BadLinePolicy::Fail;
  r.path("chunk_dir", data.chunk_dir);
  r.integer("max_length", data.max_length, 2);
  r.integer("margin", data.margin, 0);
  r.finish();
  if (data.margin >= data.max_length)
    problems.add("data.margin", fmt::format("must be less than max_length ({}), got {}", data.max_length, data.margin));
}

void read_infer(ObjectReader& top, InferConfig& infer) {
  const json* section = top.find("infer");
  if (!section) return;
  if (!section->is_object()) return top.wrong_type("infer", "an object", *section);
  ObjectReader r(*section, "infer", top.problems(), top.base_dir());
  r.path("store_dir", infer.store_dir);
  r.integer("top_k", infer.top_k, 1);
  r.integer("batch_tokens", infer.batch_tokens, 1);
  int dtype = r.choice("dtype", {"auto", "fp32", "fp16", "bf16"});
  if (dtype >= 0) infer.dtype = std::vector<std::string>{"auto", "fp32", "fp16", "bf16"}[dtype];
  if (const json* bos = r.find("add_bos")) {
    if (bos->is_boolean()) infer.add_bos = bos->get<bool>();
    else if (bos->is_string() && bos->get<std::string>() == "auto") infer.add_bos.reset();
    else if (bos->is_string()) top.problems().add("infer.add_bos", fmt::format("expected 'auto', true or false, got '{}'", bos->get<std::string>()));
    else top.problems().add("infer.add_bos", fmt::format("expected 'auto', true or false, got {}", kind_of(*bos)));
  }
  r.boolean("add_eos", infer.add_eos);
  int logprob = r.choice("logprob_dtype", {"fp16", "bf16"});
  if (logprob >= 0) infer.logprob_dtype = logprob == 0 ? "fp16" : "bf16";
  r.integer("shard_records", infer.shard_records, 1);
  r.finish();
}

}  // namespace

// Sections that later stages will define; accepted now and kept as raw JSON for them.
static const std::vector<std::string> kReservedSections = {"align", "fusion", "train", "eval"};

ExperimentConfig experiment_config_from_json(const json& doc, const std::string& source, const fs::path& config_dir) {
  ExperimentConfig cfg;
  cfg.config_path = source;
  cfg.config_dir = fs::absolute(config_dir).lexically_normal();
  Problems problems(source);
  if (!doc.is_object()) {
    throw ConfigError({fmt::format("{}: expected a JSON object at the top level, got {}", source, kind_of(doc))});
  }
  ObjectReader top(doc, "", problems, cfg.config_dir);
  read_models(top, cfg.models);
  read_data(top, cfg.data);
  read_infer(top, cfg.infer);
  for (const auto& name : kReservedSections) {
    if (const json* section = top.find(name)) cfg.reserved_sections[name] = *section;
  }
  top.finish("section");
  if (!problems.list().empty()) throw ConfigError(problems.list());

  // Defaults keep the outputs of two configs in one folder apart: <config dir>/out/<config name>/...
  fs::path out_dir = cfg.config_dir / "out" / fs::path(source).stem();
  if (cfg.data.chunk_dir.empty()) cfg.data.chunk_dir = out_dir / "chunks";
  if (cfg.infer.store_dir.empty()) cfg.infer.store_dir = out_dir / "store";
  return cfg;
}

ExperimentConfig load_experiment_config(const fs::path& path) {
  json doc = parse_json_file(path);
  fs::path dir = fs::absolute(path).parent_path();
  return experiment_config_from_json(doc, path.string(), dir);
}

}  // namespace fusellm
