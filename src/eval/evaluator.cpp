// run_eval: requests, the on-disk cache, ranks, scoring and the results files (see evaluator.hpp).
#include "fusellm/eval/evaluator.hpp"

#include <signal.h>
#include <unistd.h>
#include <xxhash.h>

#include <algorithm>
#include <chrono>
#include <cstdlib>
#include <cmath>
#include <fstream>
#include <functional>
#include <set>
#include <thread>
#include <unordered_map>

#include "fusellm/util/error.hpp"
#include "fusellm/util/log.hpp"
#include "fusellm/util/progress.hpp"

namespace fusellm::eval {

namespace {

std::string hash_path(const fs::path& path) {
  XXH3_state_t* state = XXH3_createState();
  XXH3_64bits_reset(state);
  auto add = [&](const fs::path& file) {
    const std::string bytes = read_file(file);
    XXH3_64bits_update(state, bytes.data(), bytes.size());
  };
  if (fs::is_directory(path)) {
    std::vector<fs::path> files;
    for (const auto& e : fs::recursive_directory_iterator(path))
      if (e.is_regular_file()) files.push_back(e.path());
    std::sort(files.begin(), files.end());
    for (const auto& f : files) add(f);
  } else {
    add(path);
  }
  const auto h = XXH3_64bits_digest(state);
  XXH3_freeState(state);
  return fmt::format("{:016x}", static_cast<unsigned long long>(h));
}

fs::path cache_file(const fs::path& out, int rank) { return out / "cache" / fmt::format("requests-rank{}.jsonl", rank); }
fs::path done_file(const fs::path& out, int rank) { return out / "cache" / fmt::format("done-rank{}", rank); }

// Every complete line of every rank's cache: a line cut by a kill is not valid JSON and is skipped.
std::map<std::string, Result> read_cache(const fs::path& out, const std::string& fingerprint) {
  std::map<std::string, Result> cache;
  if (!fs::exists(out / "cache")) return cache;
  for (const auto& e : fs::directory_iterator(out / "cache")) {
    if (e.path().extension() != ".jsonl") continue;
    std::ifstream in(e.path());
    for (std::string line; std::getline(in, line);) {
      json j = json::parse(line, nullptr, false);
      if (j.is_discarded() || !j.is_object() || j.value("model", "") != fingerprint) continue;
      cache[j.at("key").get<std::string>()] = Result::from_json(j.at("result"));
    }
  }
  return cache;
}

}  // namespace

std::pair<double, double> mean_and_stderr(const std::vector<double>& v) {
  if (v.empty()) return {0.0, 0.0};
  double mu = 0;
  for (double x : v) mu += x;
  mu /= double(v.size());
  if (v.size() < 2) return {mu, 0.0};
  double ss = 0;
  for (double x : v) ss += (x - mu) * (x - mu);
  return {mu, std::sqrt(ss / double(v.size() - 1)) / std::sqrt(double(v.size()))};
}

std::vector<Doc> load_task_docs(const Task& task, const EvalOptions& options) {
  auto it = options.data.find(task.name());
  const fs::path data = it != options.data.end() ? it->second : task.default_data(options.shared_data);
  std::vector<Doc> docs = task.load(data);
  if (options.limit > 0 && int64_t(docs.size()) > options.limit) docs.resize(size_t(options.limit));
  return docs;
}

std::vector<LoadedTask> load_tasks(const EvalOptions& options) {
  std::vector<LoadedTask> runs;
  TaskSettings settings;  // one per run: the tasks share its state
  settings.options = options.task_options;
  for (const auto& name : expand_task_list(options.tasks)) {
    LoadedTask run;
    run.task = make_task(name);
    run.task->configure(settings);
    auto it = options.data.find(name);
    run.data = it != options.data.end() ? it->second : run.task->default_data(options.shared_data);
    if (auto why = run.task->unavailable()) {
      run.skipped = *why;
      if (options.rank == 0) spdlog::warn("eval: skipping {}: {}", name, *why);
    } else {
      run.docs = load_task_docs(*run.task, options);
    }
    runs.push_back(std::move(run));
  }
  return runs;
}

EvalSummary run_eval(const EvalOptions& options, ModelRunner& runner, const std::string& fingerprint) {
  return run_eval(options, load_tasks(options), runner, fingerprint);
}

EvalSummary run_eval(const EvalOptions& options, const std::vector<LoadedTask>& runs, ModelRunner& runner,
                     const std::string& fingerprint) {
  const auto t0 = std::chrono::steady_clock::now();
  // 2. Each request's cache key, computed once; the unique ones, in document order, whole documents per rank
  // (document n goes to rank n mod world): a document's choices stay together and share one context pass.
  fs::create_directories(options.out_dir / "cache");
  std::map<std::string, Result> cache = read_cache(options.out_dir, fingerprint);
  std::unordered_map<const Request*, std::string> key_of;
  std::set<std::string> unique;
  struct Todo {
    std::string key;
    const Request* request;
    const Task* task;
    const Doc* doc;
    size_t index;  // in doc->requests
  };
  std::vector<Todo> todo;
  size_t document = 0, cached_share = 0;
  for (const auto& run : runs)
    for (const auto& doc : run.docs) {
      const bool mine = int(document++ % size_t(options.world_size)) == options.rank;
      for (size_t i = 0; i < doc.requests.size(); ++i) {
        const Request& r = doc.requests[i];
        const std::string& key = key_of.emplace(&r, r.key()).first->second;
        if (!unique.insert(key).second || !mine) continue;  // the same request in another document: answered once
        if (cache.count(key)) ++cached_share;
        else todo.push_back({key, &r, run.task.get(), &doc, i});
      }
    }
  // What a rank's "done" file says: this model and this set of requests (a stale file of another run with
  // other tasks does not count).
  std::string all_keys = fingerprint;
  for (const auto& key : unique) all_keys += key;
  const std::string run_id = fmt::format("{:016x}", static_cast<unsigned long long>(XXH3_64bits(all_keys.data(), all_keys.size())));
  EvalSummary summary;
  summary.requests = unique.size();
  summary.from_cache = cached_share;
  if (options.rank == 0 || options.world_size == 1)
    spdlog::info("eval: {} tasks, {} requests, {} to compute on this rank ({} answered by the cache)", runs.size(),
                 unique.size(), todo.size(), cache.size());

  // 3. Answer in chunks, each appended to this rank's cache (flushed) before the next starts.
  // A killed run may have left half a line: end it, so the next answer starts a line of its own.
  const fs::path own_cache = cache_file(options.out_dir, options.rank);
  const bool torn = fs::exists(own_cache) && fs::file_size(own_cache) > 0 && [&] {
    std::ifstream in(own_cache, std::ios::binary);
    in.seekg(-1, std::ios::end);
    return in.get() != '\n';
  }();
  std::ofstream out(own_cache, std::ios::app);
  if (torn) out << "\n";
  FUSELLM_CHECK(out.good(), "{}: cannot open for writing", cache_file(options.out_dir, options.rank).string());
  std::unique_ptr<Progress> progress;
  if (options.progress) progress = std::make_unique<Progress>("eval", todo.size(), "requests", "req");
  // Tests kill the process (SIGKILL) after this many newly answered requests, half-way through a line.
  const char* kill_env = std::getenv("FUSELLM_EVAL_KILL_AFTER");
  const long kill_after = kill_env ? std::atol(kill_env) : -1;
  long recorded = 0;
  auto record = [&](const std::string& key, const Result& result) {
    json line = {{"key", key}, {"model", fingerprint}, {"result", result.to_json()}};
    const std::string text = line.dump(-1, ' ', false, json::error_handler_t::replace) + "\n";
    if (kill_after >= 0 && ++recorded > kill_after) {
      out << text.substr(0, text.size() / 2);
      out.flush();
      ::raise(SIGKILL);
    }
    out << text;
    cache[key] = result;
  };
  // Log-likelihoods in chunks of 256, generations in chunks of 32 (a kill loses at most one chunk's work),
  // rolling log-likelihoods one by one (a whole document each).
  auto answer_in_chunks = [&](RequestKind kind, size_t chunk,
                              const std::function<std::vector<Result>(const std::vector<const Request*>&)>& answer) {
    std::vector<const Todo*> mine;
    for (const auto& item : todo)
      if (item.request->kind == kind) mine.push_back(&item);
    for (size_t begin = 0; begin < mine.size(); begin += chunk) {
      std::vector<const Request*> batch;
      for (size_t i = begin; i < std::min(mine.size(), begin + chunk); ++i) batch.push_back(mine[i]->request);
      const std::vector<Result> results = answer(batch);
      for (size_t i = 0; i < batch.size(); ++i) record(mine[begin + i]->key, results[i]);
      out.flush();
      // Rank 0 scores: its tasks may start slow per-answer work now (programs run while the model generates).
      if (options.rank == 0)
        for (size_t i = 0; i < batch.size(); ++i) mine[begin + i]->task->on_result(*mine[begin + i]->doc, mine[begin + i]->index, results[i]);
      if (progress) progress->add(batch.size());
    }
  };
  answer_in_chunks(RequestKind::loglikelihood, 256, [&](const auto& batch) { return runner.loglikelihood(batch); });
  answer_in_chunks(RequestKind::generate_until, 32, [&](const auto& batch) { return runner.generate_until(batch); });
  answer_in_chunks(RequestKind::loglikelihood_rolling, 1,
                   [&](const auto& batch) { return std::vector<Result>{runner.loglikelihood_rolling(*batch[0])}; });
  if (progress) progress->finish();
  out.close();
  summary.computed = todo.size();
  write_file_atomic(done_file(options.out_dir, options.rank), run_id + "\n");
  if (options.rank != 0) return summary;

  // 4. Rank 0: wait for the others, merge their caches, score.
  if (options.world_size > 1) {
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(options.wait_timeout_s);
    for (int r = 1; r < options.world_size; ++r)
      while (!fs::exists(done_file(options.out_dir, r)) || read_file(done_file(options.out_dir, r)) != run_id + "\n") {
        FUSELLM_CHECK(std::chrono::steady_clock::now() < deadline, "eval: rank {} did not finish within {} s",
                      r, options.wait_timeout_s);
        std::this_thread::sleep_for(std::chrono::milliseconds(200));
      }
    cache = read_cache(options.out_dir, fingerprint);
  }
  json results = json::object(), versions = json::object(), notes = json::object(), hashes = json::object(),
       counts = json::object();
  fs::create_directories(options.out_dir / "samples");
  // Answers from the cache or other ranks: their slow work starts now, all of it before scoring waits on any.
  for (const auto& run : runs)
    for (const auto& doc : run.docs)
      for (size_t i = 0; i < doc.requests.size(); ++i)
        if (auto hit = cache.find(key_of.at(&doc.requests[i])); hit != cache.end())
          run.task->on_result(doc, i, hit->second);
  std::map<std::string, double> headline;  // per task: the metric the paper reports
  json skipped = json::object();
  for (const auto& run : runs) {
    const std::string name = run.task->name();
    if (!run.skipped.empty()) {
      skipped[name] = run.skipped;
      continue;
    }
    std::map<std::string, std::vector<double>> values;
    std::string samples;
    for (const auto& doc : run.docs) {
      std::vector<Result> rs;
      for (const auto& r : doc.requests) {
        auto hit = cache.find(key_of.at(&r));
        FUSELLM_CHECK(hit != cache.end(), "eval: no result for a request of {} (document {}): the cache is incomplete",
                      name, doc.index);
        rs.push_back(hit->second);
      }
      json prediction;
      const Scores scores = run.task->score(doc, rs, prediction);
      for (const auto& [metric, value] : scores) values[metric].push_back(value);
      json requests = json::array(), answers = json::array();
      for (size_t i = 0; i < doc.requests.size(); ++i) {
        requests.push_back(doc.requests[i].to_json());
        answers.push_back(rs[i].to_json());
      }
      json sample = {{"doc_id", doc.index}, {"doc", doc.fields}, {"requests", requests}, {"results", answers},
                     {"prediction", prediction}, {"scores", scores}};
      samples += sample.dump(-1, ' ', false, json::error_handler_t::replace) + "\n";
    }
    write_file_atomic(options.out_dir / "samples" / (name + ".jsonl"), samples);
    json metrics = json::object();
    if (auto aggregated = run.task->aggregate(values)) {
      metrics = *aggregated;
    } else {
      for (const auto& m : run.task->metrics()) {
        const auto [mu, se] = mean_and_stderr(values[m]);
        metrics[m] = mu;
        metrics[m + "_stderr"] = se;
      }
    }
    results[name] = metrics;
    versions[name] = run.task->version();
    hashes[name] = hash_path(run.data);
    counts[name] = {{"documents", run.docs.size()}, {"requests", [&] {
                      size_t n = 0;
                      for (const auto& d : run.docs) n += d.requests.size();
                      return n;
                    }()}};
    if (!run.task->notes().empty()) notes[name] = run.task->notes();
    const auto metric_names = run.task->metrics();
    const bool norm = name == "arc_easy" || name == "arc_challenge" || name == "hellaswag" || name == "openbookqa";
    const bool em = std::find(metric_names.begin(), metric_names.end(), "exact_match") != metric_names.end();
    const bool accuracy = std::find(metric_names.begin(), metric_names.end(), "acc") != metric_names.end();
    if (em || accuracy) headline[name] = metrics.value(norm ? "acc_norm" : em ? "exact_match" : "acc", 0.0);
    if (name.rfind("multiple-", 0) == 0) headline[name] = metrics.value("pass@1", 0.0);
  }
  // Group averages, unweighted as in the paper: CS over its five tasks, BBH over the BBH tasks present.
  json groups = json::object();
  std::vector<double> cs, bbh;
  for (const char* t : {"arc_easy", "arc_challenge", "boolq", "hellaswag", "openbookqa"})
    if (headline.count(t)) cs.push_back(headline[t]);
  for (const auto& [t, v] : headline)
    if (t.rfind("bbh_", 0) == 0) bbh.push_back(v);
  if (cs.size() == 5) groups["cs"] = {{"average", mean_and_stderr(cs).first}, {"tasks", 5}};
  if (!bbh.empty()) groups["bbh"] = {{"average_exact_match", mean_and_stderr(bbh).first}, {"tasks", bbh.size()}};
  std::vector<double> me;  // ME: the mean pass@1 of the languages that ran (skipped ones are listed, not 0)
  for (const auto& [t, v] : headline)
    if (t.rfind("multiple-", 0) == 0) me.push_back(v);
  if (!me.empty()) groups["me"] = {{"average_pass@1", mean_and_stderr(me).first}, {"tasks", me.size()}};

  const double wall = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  summary.results = {{"results", results}, {"versions", versions}, {"config", options.config},
                     {"groups", groups},
                     {"fusellm", {{"model_fingerprint", fingerprint}, {"dataset_hashes", hashes}, {"counts", counts},
                                  {"requests", summary.requests}, {"computed", summary.computed},
                                  {"from_cache", summary.from_cache}, {"world_size", options.world_size},
                                  {"wall_seconds", wall}, {"notes", notes}, {"skipped", skipped}}}};
  // results.json leaves out what changes between identical runs (wall time, cache counts): resuming a
  // killed eval must give the same file. Those go to run.json.
  json stable = summary.results;
  stable["fusellm"].erase("wall_seconds");
  stable["fusellm"].erase("computed");
  stable["fusellm"].erase("from_cache");
  stable["fusellm"].erase("world_size");
  write_file_atomic(options.out_dir / "results.json", stable.dump(2) + "\n");
  // MultiPL-E's scores also as bigcode-evaluation-harness writes them: {"multiple-py": {"pass@1": x}, "config"}.
  json bigcode = json::object();
  for (const auto& [task, metrics] : results.items())
    if (task.rfind("multiple-", 0) == 0) {
      bigcode[task] = json::object();
      for (const auto& [metric, value] : metrics.items())
        if (metric.rfind("pass@", 0) == 0 && metric.find('_') == std::string::npos) bigcode[task][metric] = value;
    }
  if (!bigcode.empty()) {
    bigcode["config"] = options.task_options;
    write_file_atomic(options.out_dir / "bigcode.json", bigcode.dump(2) + "\n");
  }
  write_file_atomic(options.out_dir / "run.json",
                    json{{"wall_seconds", wall}, {"requests", summary.requests}, {"computed", summary.computed},
                         {"from_cache", summary.from_cache}, {"world_size", options.world_size}}
                            .dump(2) + "\n");
  return summary;
}

std::string results_table(const json& results) {
  std::string out = fmt::format("{:<44} {:<12} {:>8} {:>8} {:>6}\n", "task", "metric", "value", "stderr", "docs");
  for (const auto& [task, metrics] : results.at("results").items()) {
    const auto& counts = results.at("fusellm").at("counts");
    const size_t docs = counts.contains(task) ? counts[task].value("documents", size_t(0)) : 0;
    for (const auto& [metric, value] : metrics.items()) {
      if (metric.size() > 7 && metric.compare(metric.size() - 7, 7, "_stderr") == 0) continue;
      out += fmt::format("{:<44} {:<12} {:>8.4f} {:>8.4f} {:>6}\n", task, metric, value.get<double>(),
                         metrics.value(metric + "_stderr", 0.0), docs);
    }
  }
  if (results.contains("fusellm") && results["fusellm"].contains("skipped"))
    for (const auto& [task, why] : results["fusellm"]["skipped"].items())
      out += fmt::format("{:<44} skipped: {}\n", task, why.get<std::string>());
  if (results.contains("groups")) {
    const json& g = results["groups"];
    if (g.contains("cs")) out += fmt::format("{:<44} {:<12} {:>8.4f}\n", "cs (5 tasks)", "average", g["cs"]["average"].get<double>());
    if (g.contains("me"))
      out += fmt::format("{:<44} {:<12} {:>8.4f}\n", fmt::format("me ({} languages)", g["me"]["tasks"].get<size_t>()),
                         "pass@1", g["me"]["average_pass@1"].get<double>());
    if (g.contains("bbh"))
      out += fmt::format("{:<44} {:<12} {:>8.4f}\n", fmt::format("bbh ({} tasks)", g["bbh"]["tasks"].get<size_t>()),
                         "average_em", g["bbh"]["average_exact_match"].get<double>());
  }
  return out;
}

}  // namespace fusellm::eval
