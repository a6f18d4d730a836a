// The demo's report (report.hpp). Every number comes from a file a step wrote: eval/<model>/results.json,
// work/<run>/checkpoints' metrics.jsonl, the aligned store's manifest and side files, steps/*.json.
#include "fusellm/demo/report.hpp"

#include <cmath>
#include <fstream>
#include <map>

#include "fusellm/data/chunk_dataset.hpp"
#include "fusellm/demo/svg_chart.hpp"
#include "fusellm/util/error.hpp"

namespace fusellm::demo {

namespace {

struct Scores {
  std::map<std::string, double> bpb, em;
  double avg_bpb = 0, avg_em = 0;
};

Scores read_scores(const fs::path& results_file, const std::vector<std::string>& domains) {
  const json results = parse_json_file(results_file).at("results");
  Scores s;
  for (const auto& d : domains) {
    const std::string bpb = "bpb:" + d, em = "exact_match:" + d;
    FUSELLM_CHECK(results.contains(bpb) && results.contains(em), "{}: no results for {} / {}", results_file.string(), bpb, em);
    s.bpb[d] = results[bpb].at("bits_per_byte").get<double>();
    s.em[d] = results[em].at("exact_match").get<double>();
    s.avg_bpb += s.bpb[d] / double(domains.size());
    s.avg_em += s.em[d] / double(domains.size());
  }
  return s;
}

std::pair<double, double> mean_std(const std::vector<double>& v) {
  double mu = 0, ss = 0;
  for (double x : v) mu += x / double(v.size());
  for (double x : v) ss += (x - mu) * (x - mu);
  return {mu, v.size() > 1 ? std::sqrt(ss / double(v.size() - 1)) : 0.0};
}

struct Curve {
  std::vector<std::pair<double, double>> clm, fusion;
};

Curve read_curve(const fs::path& metrics) {
  std::ifstream in(metrics);
  FUSELLM_CHECK(in.good(), "{}: cannot open", metrics.string());
  Curve c;
  std::string line;
  while (std::getline(in, line)) {
    if (line.empty()) continue;
    const json m = json::parse(line);
    c.clm.emplace_back(m.at("step").get<double>(), m.at("clm").get<double>());
    c.fusion.emplace_back(m.at("step").get<double>(), m.at("fusion").get<double>());
  }
  return c;
}

// MinCE's choice per domain: for every chunk, the source whose chunk CE is lowest (ties: the first, as the
// trainer breaks them), counted by the domain of the chunk's document.
json mince_choices(const ReportInputs& in, const json& manifest) {
  std::vector<std::string> line_domain;
  {
    std::ifstream corpus(in.continual_corpus);
    std::string line;
    while (std::getline(corpus, line))
      if (!line.empty()) line_domain.push_back(json::parse(line).value("domain", "?"));
  }
  const auto chunks = data::ChunkDataset::open(in.fusion_chunks, false);
  std::vector<std::string> names;
  std::vector<std::map<uint64_t, double>> ce;
  for (const auto& s : manifest.at("sources")) {
    names.push_back(s.at("name").get<std::string>());
    ce.emplace_back();
    for (const auto& e : fs::directory_iterator(in.aligned_store / s.at("dir").get<std::string>())) {
      if (e.path().filename().string().rfind("side-", 0) != 0) continue;
      const json side = parse_json_file(e.path());  // kept: a range-for over a temporary's member dangles
      for (const auto& pair : side.at("chunk_ce")) ce.back()[pair[0].get<uint64_t>()] = pair[1].get<double>();
    }
  }
  json counts = json::object();
  for (uint64_t id = 0; id < chunks.size(); ++id) {
    const std::string doc = chunks.at(id).doc;
    const size_t colon = doc.rfind(':');
    const size_t line = colon == std::string::npos ? 0 : std::stoul(doc.substr(colon + 1));
    const std::string domain = line >= 1 && line <= line_domain.size() ? line_domain[line - 1] : "?";
    size_t best = 0;
    for (size_t s = 1; s < names.size(); ++s)
      if (ce[s].count(id) && (!ce[best].count(id) || ce[s][id] < ce[best][id])) best = s;
    if (!counts.contains(domain)) counts[domain] = json::object();
    counts[domain][names[best]] = counts[domain].value(names[best], 0) + 1;
  }
  return counts;
}

// Trailing mean over `window` steps: per-step losses swing with each batch's domain mix, and both arms see
// the same batches, so the smoothed curves are what tells them apart.
std::vector<std::pair<double, double>> smoothed(const std::vector<std::pair<double, double>>& points, size_t window) {
  std::vector<std::pair<double, double>> out;
  double sum = 0;
  for (size_t i = 0; i < points.size(); ++i) {
    sum += points[i].second;
    if (i >= window) sum -= points[i - window].second;
    out.emplace_back(points[i].first, sum / double(std::min(i + 1, window)));
  }
  return out;
}

std::string cell(double v, int precision = 4) { return fmt::format("{:.{}f}", v, precision); }

}  // namespace

DemoOutcome write_report(const ReportInputs& in) {
  const fs::path report_dir = in.out_dir / "report";
  fs::create_directories(report_dir);
  const auto& domains = in.domains;

  // Scores of every model, in the order the table shows them.
  std::vector<std::pair<std::string, std::string>> rows;  // (model, what it is)
  for (const auto& s : in.sources) rows.push_back({s.name, fmt::format("source: {} on {}, {}", s.family, s.domain, s.tokenizer)});
  rows.push_back({in.target.name, fmt::format("target before continual training ({}, {})", in.target.family, in.target.tokenizer)});
  for (uint64_t seed : in.train_seeds) {
    rows.push_back({fmt::format("clm-seed{}", seed), fmt::format("continued, CLM only, seed {}", seed)});
    rows.push_back({fmt::format("fused-seed{}", seed), fmt::format("continued, FuseLLM, seed {}", seed)});
  }
  std::map<std::string, Scores> scores;
  json models = json::object();
  for (const auto& [name, what] : rows) {
    scores[name] = read_scores(in.out_dir / "eval" / name / "results.json", domains);
    const Scores& s = scores[name];
    models[name] = {{"what", what}, {"bits_per_byte", s.bpb}, {"avg_bits_per_byte", s.avg_bpb},
                    {"exact_match", s.em}, {"avg_exact_match", s.avg_em}};
  }

  // The comparison, per seed: CLM-only minus fused average held-out bits per byte (> 0: fusion better).
  json per_seed = json::array();
  std::vector<double> margins, clm_avg, fused_avg;
  bool wins = true;
  for (uint64_t seed : in.train_seeds) {
    const Scores& c = scores[fmt::format("clm-seed{}", seed)];
    const Scores& f = scores[fmt::format("fused-seed{}", seed)];
    margins.push_back(c.avg_bpb - f.avg_bpb);
    clm_avg.push_back(c.avg_bpb);
    fused_avg.push_back(f.avg_bpb);
    wins = wins && f.avg_bpb < c.avg_bpb;
    per_seed.push_back({{"seed", seed}, {"clm_avg_bits_per_byte", c.avg_bpb}, {"fused_avg_bits_per_byte", f.avg_bpb},
                        {"margin", c.avg_bpb - f.avg_bpb}, {"fused_better", f.avg_bpb < c.avg_bpb}});
  }
  const auto [margin_mean, margin_std] = mean_std(margins);
  const double clm_noise = mean_std(clm_avg).second, fused_noise = mean_std(fused_avg).second;
  double margin_min = margins[0];
  for (double m : margins) margin_min = std::min(margin_min, m);

  const json manifest = parse_json_file(in.aligned_store / "manifest.json");
  json alignment = json::object();
  for (const auto& s : manifest.at("sources"))
    if (!s.value("is_target", false)) alignment[s.at("name").get<std::string>()] = s.at("stats");
  const json choices = mince_choices(in, manifest);

  json results = {{"format", "fusellm.demo_results"}, {"version", 1}, {"seed", in.seed}, {"train_seeds", in.train_seeds},
                  {"lambda", in.lambda}, {"continual_steps", in.continual_steps}, {"models", models},
                  {"per_seed", per_seed},
                  {"margin", {{"mean", margin_mean}, {"std", margin_std}, {"min", margin_min}}},
                  {"run_to_run_std", {{"clm", clm_noise}, {"fused", fused_noise}}},
                  {"fused_better_every_seed", wins}, {"alignment", alignment}, {"mince_choices", choices}};
  write_file_atomic(report_dir / "results.json", results.dump(2) + "\n");

  // Plots: the CLM term of both arms (the fusion arm's own training loss mixes in the fusion term), every
  // seed; and held-out bits per byte per domain.
  std::vector<Series> curves;
  for (size_t i = 0; i < in.train_seeds.size(); ++i) {
    const uint64_t seed = in.train_seeds[i];
    const Curve c = read_curve(in.work / fmt::format("clm-seed{}", seed) / "metrics.jsonl");
    const Curve f = read_curve(in.work / fmt::format("fused-seed{}", seed) / "metrics.jsonl");
    curves.push_back({"CLM only", "#d62728", smoothed(c.clm, 10), false, i == 0});
    curves.push_back({"FuseLLM (CLM term)", "#1f77b4", smoothed(f.clm, 10), false, i == 0});
    curves.push_back({"FuseLLM (fusion term)", "#1f77b4", smoothed(f.fusion, 10), true, i == 0});
  }
  write_file_atomic(report_dir / "training_curves.svg",
                    svg_line_chart("Continual training of the target (every seed, mean of 10 steps)", "step",
                                                   "loss (nats / token)", curves));
  std::vector<std::string> bar_names, colors = {"#7f7f7f", "#d62728", "#1f77b4", "#2ca02c"};
  bar_names = {"target before", "CLM only (mean)", "FuseLLM (mean)", "the domain's source"};
  std::vector<BarGroup> groups;
  for (const auto& d : domains) {
    BarGroup g{d, {}};
    double c = 0, f = 0;
    for (uint64_t seed : in.train_seeds) {
      c += scores[fmt::format("clm-seed{}", seed)].bpb[d] / double(in.train_seeds.size());
      f += scores[fmt::format("fused-seed{}", seed)].bpb[d] / double(in.train_seeds.size());
    }
    double src = NAN;
    for (const auto& s : in.sources)
      if (s.domain == d) src = scores[s.name].bpb[d];
    g.values = {scores[in.target.name].bpb[d], c, f, src};
    groups.push_back(g);
  }
  write_file_atomic(report_dir / "bits_per_byte.svg",
                    svg_bar_chart("Held-out bits per byte by domain (lower is better)", "bits per byte", bar_names, colors, groups));

  // The terminal table and report.md.
  std::string table = fmt::format("{:<14}", "model");
  for (const auto& d : domains) table += fmt::format(" {:>9}", "bpb " + d);
  table += fmt::format(" {:>8}", "bpb avg");
  for (const auto& d : domains) table += fmt::format(" {:>8}", "EM " + d);
  table += "\n";
  std::string md_scores = "| model | what | ";
  for (const auto& d : domains) md_scores += "bpb " + d + " | ";
  md_scores += "**bpb avg** | ";
  for (const auto& d : domains) md_scores += "EM " + d + " | ";
  md_scores += "EM avg |\n|---|---|";
  for (size_t i = 0; i < 2 * domains.size() + 2; ++i) md_scores += "---:|";
  md_scores += "\n";
  for (const auto& [name, what] : rows) {
    const Scores& s = scores[name];
    table += fmt::format("{:<14}", name);
    md_scores += "| " + name + " | " + what + " | ";
    for (const auto& d : domains) table += fmt::format(" {:>9.4f}", s.bpb.at(d)), md_scores += cell(s.bpb.at(d)) + " | ";
    table += fmt::format(" {:>8.4f}", s.avg_bpb);
    md_scores += "**" + cell(s.avg_bpb) + "** | ";
    for (const auto& d : domains) table += fmt::format(" {:>8.2f}", s.em.at(d)), md_scores += cell(s.em.at(d), 2) + " | ";
    md_scores += cell(s.avg_em, 2) + " |\n";
    table += "\n";
  }
  const std::string verdict = fmt::format(
      "FuseLLM {} CLM-only on held-out average bits per byte on {} of {} seeds: margin {:.4f} bits/byte on "
      "average (smallest {:.4f}, std {:.4f}); run-to-run std of the average: CLM-only {:.4f}, FuseLLM {:.4f}.",
      wins ? "beats" : "does NOT beat", [&] {
        size_t n = 0;
        for (double m : margins) n += m > 0;
        return n;
      }(), margins.size(), margin_mean, margin_min, margin_std, clm_noise, fused_noise);
  table += "\n" + verdict + "\n";

  std::string md = "# fusellm demo report\n\n" + verdict + "\n\n";
  md += fmt::format("Data, tokenizer and initialization seed {}; continual-training seeds {}. Both continual runs of a "
                    "seed see the same sequences in the same order for {} steps with the same hyperparameters; "
                    "CLM only is λ = 1, FuseLLM is MinCE with λ = {} over the target and the three sources, aligned "
                    "with MinED + DTW. bpb = bits per byte of each domain's held-out text (lm-eval's rolling "
                    "windows); EM = exact match of greedy answers to held-out questions.\n\n",
                    in.seed, [&] {
                      std::string s;
                      for (uint64_t x : in.train_seeds) s += (s.empty() ? "" : ", ") + std::to_string(x);
                      return s;
                    }(), in.continual_steps, in.lambda);
  md += "## Scores\n\n" + md_scores + "\n![bits per byte](bits_per_byte.svg)\n\n";
  md += "## Per seed\n\n| seed | CLM only bpb avg | FuseLLM bpb avg | margin |\n|---:|---:|---:|---:|\n";
  for (const auto& p : per_seed)
    md += fmt::format("| {} | {:.4f} | {:.4f} | {:+.4f} |\n", p["seed"].get<uint64_t>(), p["clm_avg_bits_per_byte"].get<double>(),
                      p["fused_avg_bits_per_byte"].get<double>(), p["margin"].get<double>());
  md += "\n## Training curves\n\n![training curves](training_curves.svg)\n\n";
  md += "## Alignment (MinED + DTW onto the target's tokens)\n\n| source | positions | one-to-one | top-k used | one-hot fallback |\n|---|---:|---:|---:|---:|\n";
  for (const auto& [name, st] : alignment.items()) {
    const double n = std::max(1.0, st.at("positions").get<double>());
    md += fmt::format("| {} | {} | {:.1f} % | {:.1f} % | {:.1f} % |\n", name, st.at("positions").get<uint64_t>(),
                      100 * st.at("one_to_one").get<double>() / n, 100 * st.at("used_topk").get<double>() / n,
                      100 * st.at("fallback").get<double>() / n);
  }
  md += "\nMinCE's choice (the model with the lowest chunk CE) by domain of the chunk:\n\n| domain |";
  std::vector<std::string> chosen_names;
  for (const auto& s : manifest.at("sources")) chosen_names.push_back(s.at("name").get<std::string>());
  for (const auto& n : chosen_names) md += " " + n + " |";
  md += "\n|---|" + [&] {
    std::string s;
    for (size_t i = 0; i < chosen_names.size(); ++i) s += "---:|";
    return s;
  }() + "\n";
  for (const auto& [domain, per] : choices.items()) {
    md += "| " + domain + " |";
    for (const auto& n : chosen_names) md += " " + std::to_string(per.value(n, 0)) + " |";
    md += "\n";
  }
  md += "\n## Time per stage\n\n| stage | seconds |\n|---|---:|\n";
  std::vector<std::pair<std::string, double>> stages;
  double total = 0;
  for (const auto& t : in.timings) {
    if (stages.empty() || stages.back().first != t.stage) stages.push_back({t.stage, 0});
    stages.back().second += t.seconds;
    total += t.seconds;
  }
  for (const auto& [stage, seconds] : stages) md += fmt::format("| {} | {:.1f} |\n", stage, seconds);
  md += fmt::format("| **total** | **{:.1f}** |\n\nEvery step's log: `logs/`; every config: `configs/`; the numbers "
                    "alone: `report/results.json`.\n", total);
  write_file_atomic(report_dir / "report.md", md);

  DemoOutcome outcome;
  outcome.results = results;
  outcome.report = report_dir / "report.md";
  outcome.table = table;
  outcome.fused_wins_every_seed = wins;
  return outcome;
}

}  // namespace fusellm::demo
