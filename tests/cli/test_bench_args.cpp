// Every bench/ program validates its arguments before any work and turns an error into one line on stderr
// and exit 1, as the CLI does (no "terminate called after throwing …").
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <sys/wait.h>

#include <cstdio>
#include <string>

#include "common/run_cli.hpp"
#include "fusellm/util/fs.hpp"

namespace fusellm {
namespace {

using testing::HasSubstr;
using testing::Not;

struct BadCall {
  std::string program, args, message;
};

TEST(BenchPrograms, BadArgumentsAreOneLineErrors) {
  const fs::path bench_dir = fs::path(test::cli_path()).parent_path().parent_path() / "bench";
  if (!fs::exists(bench_dir / "bench_infer")) GTEST_SKIP() << bench_dir << ": benchmarks not built";
  const BadCall calls[] = {
      {"bench_infer", "../shared", "bench_infer: error: argument 1 (corpus bytes): expected an integer >= 1000, got '../shared'"},
      {"bench_infer", "200000 12x", "argument 2 (max_length): expected an integer >= 8, got '12x'"},
      {"bench_infer", "1 2 3 4", "bench_infer: error: too many arguments"},
      {"bench_fusion_loss", "-3", "bench_fusion_loss: error: argument 1 (iterations): expected an integer >= 1, got '-3'"},
      {"bench_activation_checkpoint", "512 eight", "argument 2 (layers): expected an integer >= 1, got 'eight'"},
      {"bench_train_step", "--steps many", "bench_train_step: error: --steps: expected an integer >= 1, got 'many'"},
      {"bench_train_step", "--stepz 3", "bench_train_step: error: unknown argument '--stepz'"},
      {"bench_tokenizer", "a b", "bench_tokenizer: error: too many arguments"},
      {"bench_align", "a b", "bench_align: error: too many arguments"},
      {"bench_tokenizer_spm", "/no/such/tokenizer.model", "/no/such/tokenizer.model"},
      {"bench_eval", "x", "bench_eval: error: argument 1 (ARC-Easy documents): expected an integer >= 1, got 'x'"},
  };
  for (const BadCall& c : calls) {
    SCOPED_TRACE(c.program + " " + c.args);
    const std::string command = (bench_dir / c.program).string() + " " + c.args + " 2>&1";
    FILE* pipe = ::popen(command.c_str(), "r");
    ASSERT_NE(pipe, nullptr);
    std::string output;
    char buf[4096];
    for (size_t n; (n = std::fread(buf, 1, sizeof(buf), pipe)) > 0;) output.append(buf, n);
    const int status = ::pclose(pipe);
    ASSERT_TRUE(WIFEXITED(status)) << output;
    EXPECT_EQ(WEXITSTATUS(status), 1) << output;
    EXPECT_THAT(output, HasSubstr(c.message));
    EXPECT_THAT(output, Not(HasSubstr("terminate called")));
    EXPECT_EQ(output.find('\n'), output.size() - 1) << "not one line: " << output;
  }
}

}  // namespace
}  // namespace fusellm
