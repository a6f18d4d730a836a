// `fusellm demo --tiny` (the same steps as the full demo on a fraction of the data, ~a minute): every step
// runs from a fresh directory with nothing beside it, the report and its numbers are written, and a demo
// SIGKILLed at several moments — between steps and inside them — then run again ends with results.json
// byte-identical to the uninterrupted run's. The full demo's claim (fused beats CLM-only) is measured by
// running `scripts/demo.sh`; its numbers are in docs/demo.md.
#include <gtest/gtest.h>

#include <signal.h>
#include <unistd.h>

#include <chrono>
#include <thread>

#include "common/run_cli.hpp"
#include "common/test_paths.hpp"
#include "fusellm/util/fs.hpp"
#include "fusellm/util/json.hpp"

namespace fusellm {
namespace {

size_t markers(const fs::path& out) {
  if (!fs::exists(out / "steps")) return 0;
  size_t n = 0;
  for (const auto& e : fs::directory_iterator(out / "steps")) n += e.path().extension() == ".json";
  return n;
}

TEST(DemoCli, TinyDemoRunsEveryStepAndResumesIdenticallyAfterKills) {
  const fs::path dir = test::scratch_dir("demo_cli");
  const fs::path whole = dir / "whole", killed = dir / "killed";
  const std::vector<std::string> args = {"demo", "--tiny", "--seeds", "1,2", "--no-progress"};
  auto with_out = [&](const fs::path& out) {
    std::vector<std::string> a = args;
    a.insert(a.end(), {"--out", out.string()});
    return a;
  };
  const test::Exit full = test::run_cli_env(with_out(whole), {}, dir / "whole.log");
  ASSERT_EQ(full.code, 0) << full.output;
  for (const char* f : {"report/report.md", "report/results.json", "report/training_curves.svg", "report/bits_per_byte.svg"})
    EXPECT_TRUE(fs::exists(whole / f)) << f;
  const json results = parse_json_file(whole / "report/results.json");
  EXPECT_EQ(results["format"], "fusellm.demo_results");
  for (const char* m : {"neox-atlas", "mpt-arith", "llama-code", "target", "clm-seed1", "fused-seed1", "clm-seed2", "fused-seed2"})
    for (const char* d : {"atlas", "arith", "code"}) {
      const double bpb = results["models"][m]["bits_per_byte"][d].get<double>();
      EXPECT_TRUE(bpb > 0 && bpb < 20) << m << " " << d << " " << bpb;
      const double em = results["models"][m]["exact_match"][d].get<double>();
      EXPECT_TRUE(em >= 0 && em <= 1) << m << " " << d;
    }
  EXPECT_EQ(results["per_seed"].size(), 2u);
  EXPECT_EQ(results["alignment"].size(), 3u);  // one entry per source
  // MinCE chose among the target and the three sources for every chunk of every domain.
  size_t chunks = 0;
  for (const auto& [domain, per] : results["mince_choices"].items())
    for (const auto& [model, n] : per.items()) chunks += n.get<size_t>();
  EXPECT_GT(chunks, 10u);
  EXPECT_NE(full.output.find("bpb avg"), std::string::npos) << full.output;  // the table is printed
  const std::string report = read_file(whole / "report/report.md");
  for (const char* section : {"## Scores", "## Per seed", "## Training curves", "## Alignment", "## Time per stage"})
    EXPECT_NE(report.find(section), std::string::npos) << section;

  // Killed at several moments (after 2, 6, 11, 16 steps are done, plus a short delay that lands inside the
  // next step), then run to the end.
  size_t kills = 0;
  for (size_t after : {2u, 6u, 11u, 16u}) {
    const pid_t pid = test::spawn_cli(with_out(killed), {}, dir / ("killed-" + std::to_string(kills) + ".log"));
    bool finished = false;
    while (markers(killed) < after) {
      int status = 0;
      if (::waitpid(pid, &status, WNOHANG) == pid) {
        finished = true;
        break;
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(50));
    }
    if (finished) break;
    std::this_thread::sleep_for(std::chrono::milliseconds(300 + 200 * kills));
    ::kill(pid, SIGKILL);
    ::waitpid(pid, nullptr, 0);
    ++kills;
  }
  EXPECT_GE(kills, 3u);
  const test::Exit rest = test::run_cli_env(with_out(killed), {}, dir / "killed-last.log");
  ASSERT_EQ(rest.code, 0) << rest.output;
  EXPECT_NE(rest.output.find("done before"), std::string::npos) << rest.output;
  EXPECT_EQ(read_file(killed / "report/results.json"), read_file(whole / "report/results.json"));
  // A third run changes nothing and runs nothing.
  const test::Exit again = test::run_cli_env(with_out(killed), {}, dir / "again.log");
  ASSERT_EQ(again.code, 0) << again.output;
  EXPECT_EQ(again.output.find("done in"), std::string::npos) << again.output;
  EXPECT_EQ(read_file(killed / "report/results.json"), read_file(whole / "report/results.json"));
}

TEST(DemoCli, BadSeedsAreOneLineErrors) {
  const auto r = test::run_cli("demo --seeds 1,x --out " + (test::scratch_dir("demo_bad") / "o").string());
  EXPECT_NE(r.status, 0);
  EXPECT_NE(r.output.find("--seeds: 'x' is not a non-negative integer"), std::string::npos) << r.output;
}

}  // namespace
}  // namespace fusellm
