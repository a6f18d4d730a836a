// The demo's step runner and charts: a finished step is skipped while its key holds, rerun (outputs removed
// first) when its command, an input file or an earlier step changes; a failed step names its log.
#include <gtest/gtest.h>

#include <unistd.h>

#include <regex>

#include "fusellm/demo/steps.hpp"
#include "fusellm/demo/svg_chart.hpp"
#include "fusellm/util/error.hpp"

namespace fusellm::demo {
namespace {

fs::path scratch(const std::string& name) {
  const fs::path dir = fs::temp_directory_path() / ("fusellm-steps-" + name + "-" + std::to_string(::getpid()));
  fs::remove_all(dir);
  fs::create_directories(dir);
  return dir;
}

// A step appending one line to count.txt each time it really runs.
Step counting_step(const fs::path& dir, const std::string& id, const std::string& word) {
  Step s;
  s.id = id;
  s.stage = "test";
  s.label = "step " + id;
  s.command = {"/bin/sh", "-c", "echo " + word + " >> " + (dir / (id + ".count")).string()};
  s.outputs = {dir / (id + ".out")};
  return s;
}

size_t runs_of(const fs::path& dir, const std::string& id) {
  const std::string text = fs::exists(dir / (id + ".count")) ? read_file(dir / (id + ".count")) : "";
  return size_t(std::count(text.begin(), text.end(), '\n'));
}

TEST(DemoSteps, SkipsWhatIsDoneAndRedoesWhatChanged) {
  const fs::path dir = scratch("skip");
  {
    StepRunner runner(dir, false);
    runner.run(counting_step(dir, "a", "x"));
    runner.run(counting_step(dir, "b", "x"));
    EXPECT_TRUE(runner.timings()[0].ran);
  }
  {
    StepRunner runner(dir, false);  // the same steps again: both skipped
    runner.run(counting_step(dir, "a", "x"));
    runner.run(counting_step(dir, "b", "x"));
    EXPECT_FALSE(runner.timings()[0].ran);
    EXPECT_FALSE(runner.timings()[1].ran);
  }
  EXPECT_EQ(runs_of(dir, "a"), 1u);
  EXPECT_EQ(runs_of(dir, "b"), 1u);
  {
    // a's command changes: a reruns (its outputs removed first), and so does b, made after it.
    write_file_atomic(dir / "a.out", "stale");
    StepRunner runner(dir, false);
    runner.run(counting_step(dir, "a", "y"));
    runner.run(counting_step(dir, "b", "x"));
    EXPECT_FALSE(fs::exists(dir / "a.out"));
  }
  EXPECT_EQ(runs_of(dir, "a"), 2u);
  EXPECT_EQ(runs_of(dir, "b"), 2u);
  {
    // An input file's bytes belong to the key.
    write_file_atomic(dir / "config.json", "{}");
    Step a = counting_step(dir, "a", "y");
    a.inputs = {dir / "config.json"};
    StepRunner(dir, false).run(a);  // a's key gained an input: runs
    StepRunner(dir, false).run(a);  // unchanged: skipped
    write_file_atomic(dir / "config.json", "{\"changed\": 1}");
    StepRunner again(dir, false);
    again.run(a);
  }
  EXPECT_EQ(runs_of(dir, "a"), 4u);
  fs::remove_all(dir);
}

TEST(DemoSteps, AFailedStepNamesItsLogAndLeavesNoMarker) {
  const fs::path dir = scratch("fail");
  Step s;
  s.id = "boom";
  s.stage = "test";
  s.label = "a failing step";
  s.command = {"/bin/sh", "-c", "echo the reason it failed; exit 3"};
  StepRunner runner(dir, false);
  try {
    runner.run(s);
    FAIL() << "no error";
  } catch (const Error& e) {
    const std::string what = e.what();
    EXPECT_NE(what.find("a failing step"), std::string::npos) << what;
    EXPECT_NE(what.find("exit 3"), std::string::npos) << what;
    EXPECT_NE(what.find((dir / "logs" / "boom.log").string()), std::string::npos) << what;
    EXPECT_NE(what.find("the reason it failed"), std::string::npos) << what;
  }
  EXPECT_FALSE(fs::exists(dir / "steps" / "boom.json"));
  fs::remove_all(dir);
}

TEST(DemoCharts, LineAndBarChartsAreWellFormedSvg) {
  Series a{"CLM only", "#d62728", {{1, 3.0}, {2, 2.5}, {3, 2.2}}, false, true};
  Series b{"fused & <more>", "#1f77b4", {{1, 3.1}, {2, std::nan("")}, {3, 2.0}}, true, true};
  const std::string line = svg_line_chart("loss", "step", "nats", {a, b});
  EXPECT_EQ(line.rfind("<svg", 0), 0u);
  EXPECT_NE(line.find("</svg>"), std::string::npos);
  EXPECT_EQ(std::count(line.begin(), line.end(), '<') - std::count(line.begin(), line.end(), '>'), 0);
  EXPECT_NE(line.find("fused &amp; &lt;more&gt;"), std::string::npos);  // text escaped
  EXPECT_EQ(line.find("nan"), std::string::npos);                      // a missing point is left out
  const std::regex polyline("<polyline");
  EXPECT_EQ(std::distance(std::sregex_iterator(line.begin(), line.end(), polyline), std::sregex_iterator()), 2);
  const std::string bars = svg_bar_chart("bpb", "bits", {"x", "y"}, {"#000", "#111"}, {{"atlas", {1.0, 0.5}}, {"arith", {2.0, NAN}}});
  const std::regex rect("<rect x=");
  EXPECT_EQ(std::distance(std::sregex_iterator(bars.begin(), bars.end(), rect), std::sregex_iterator()), 3 + 2);  // 3 bars + 2 legend marks
}

}  // namespace
}  // namespace fusellm::demo
