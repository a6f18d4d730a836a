// The demo's generated domains: deterministic by seed, splits that never share a document, arith questions
// never seen in training, and answers that are right — checked by Python itself for the code domain (the
// questions are Python expressions) and by the statements of the training text for the atlas.
#include <gtest/gtest.h>

#include <cstdio>
#include <fstream>
#include <regex>
#include <set>

#include "fusellm/demo/domains.hpp"
#include "fusellm/util/fs.hpp"

namespace fusellm::demo {
namespace {

const std::vector<Split> kSplits = {Split::specialist, Split::general, Split::continual, Split::heldout};

TEST(DemoDomains, DeterministicBySeedAndStablePrefixes) {
  const auto a = make_domains(7), b = make_domains(7), c = make_domains(8);
  ASSERT_EQ(a.size(), 3u);
  for (size_t d = 0; d < a.size(); ++d) {
    SCOPED_TRACE(a[d]->name());
    for (Split split : kSplits) {
      const auto docs = a[d]->documents(split, 20000);
      EXPECT_EQ(docs, b[d]->documents(split, 20000));
      EXPECT_NE(docs, c[d]->documents(split, 20000));  // another seed, other text
      const auto fewer = a[d]->documents(split, 5000);  // asking for less gives a prefix
      ASSERT_LT(fewer.size(), docs.size());
      EXPECT_TRUE(std::equal(fewer.begin(), fewer.end(), docs.begin()));
      size_t bytes = 0;
      for (const auto& doc : docs) bytes += doc.size();
      EXPECT_GE(bytes, 20000u);
      EXPECT_LT(bytes - docs.back().size(), 20000u);  // stops as soon as the size is reached
    }
    const auto q = a[d]->questions(50);
    ASSERT_EQ(q.size(), 50u);
    for (size_t i = 0; i < q.size(); ++i) EXPECT_EQ(q[i].answer, b[d]->questions(50)[i].answer);
  }
}

TEST(DemoDomains, SplitsShareNoDocument) {
  for (const auto& d : make_domains(3)) {
    SCOPED_TRACE(d->name());
    std::map<std::string, Split> seen;
    size_t docs = 0, repeats = 0;
    for (Split split : kSplits)
      for (const auto& doc : d->documents(split, 30000)) {
        ++docs;
        auto [it, inserted] = seen.emplace(doc, split);
        if (!inserted) {
          ++repeats;
          EXPECT_EQ(it->second, split) << "a document in two splits: " << doc;
        }
      }
    EXPECT_LT(repeats, docs / 100 + 1);  // random documents: repeats are rare even within a split
  }
}

// Every line "a op b = c" of the training splits: right, and never one of the questions.
TEST(DemoDomains, ArithmeticIsRightAndQuestionsAreHeldOut) {
  const auto domains = make_domains(5);
  const Domain& arith = *domains[1];
  ASSERT_EQ(arith.name(), "arith");
  std::set<std::string> asked;
  for (const auto& q : arith.questions(200)) {
    int a, b;
    char op;
    ASSERT_EQ(std::sscanf(q.prompt.c_str(), "%d %c %d =", &a, &op, &b), 3) << q.prompt;
    EXPECT_EQ(q.answer, std::to_string(op == '+' ? a + b : a - b)) << q.prompt;
    EXPECT_GE(op == '+' ? a + b : a - b, 0);
    asked.insert(q.prompt);
  }
  EXPECT_GT(asked.size(), 50u);
  const std::regex line(R"((\d+) ([+-]) (\d+) = (\d+))");
  size_t lines = 0;
  for (Split split : {Split::specialist, Split::general, Split::continual})
    for (const auto& doc : arith.documents(split, 50000))
      for (std::sregex_iterator it(doc.begin(), doc.end(), line), end; it != end; ++it, ++lines) {
        const int a = std::stoi((*it)[1]), b = std::stoi((*it)[3]), c = std::stoi((*it)[4]);
        EXPECT_EQ(c, (*it)[2] == "+" ? a + b : a - b) << it->str();
        EXPECT_FALSE(asked.count((*it)[1].str() + " " + (*it)[2].str() + " " + (*it)[3].str() + " ="))
            << "a held-out question in the training text: " << it->str();
      }
  EXPECT_GT(lines, 5000u);
}

// The code questions are Python: Python evaluates them (skipped where no python3 is installed).
TEST(DemoDomains, CodeAnswersAreWhatPythonPrints) {
  if (std::system("python3 -c pass > /dev/null 2>&1") != 0) GTEST_SKIP() << "python3 not installed";
  const auto domains = make_domains(9);
  const Domain& code = *domains[2];
  ASSERT_EQ(code.name(), "code");
  const auto questions = code.questions(100);
  const fs::path dir = fs::temp_directory_path() / ("fusellm-demo-code-" + std::to_string(::getpid()));
  fs::create_directories(dir);
  std::string program;
  for (const auto& q : questions) {
    ASSERT_EQ(q.prompt.substr(q.prompt.size() - 3), "  #");
    program += q.prompt.substr(0, q.prompt.size() - 3) + "\n";
  }
  // The training text too: every "call  # output" line of a document.
  std::vector<std::string> outputs;
  for (const auto& doc : code.documents(Split::specialist, 3000)) {
    for (size_t start = 0, end; (end = doc.find('\n', start)) != std::string::npos; start = end + 1) {
      const std::string l = doc.substr(start, end - start);
      const size_t hash = l.find("  # ");
      ASSERT_NE(hash, std::string::npos) << l;
      program += l.substr(0, hash) + "\n";
      outputs.push_back(l.substr(hash + 4));
    }
  }
  write_file_atomic(dir / "q.py", program);
  const std::string cmd = "python3 " + (dir / "q.py").string() + " > " + (dir / "out.txt").string();
  ASSERT_EQ(std::system(cmd.c_str()), 0);
  std::ifstream in(dir / "out.txt");
  std::vector<std::string> printed;
  for (std::string l; std::getline(in, l);) printed.push_back(l);
  ASSERT_EQ(printed.size(), questions.size() + outputs.size());
  for (size_t i = 0; i < questions.size(); ++i) EXPECT_EQ(questions[i].answer, printed[i]) << questions[i].prompt;
  for (size_t i = 0; i < outputs.size(); ++i) EXPECT_EQ(outputs[i], printed[questions.size() + i]);
  fs::remove_all(dir);
}

// Atlas answers agree with what the training text states about each town.
TEST(DemoDomains, AtlasAnswersAgreeWithTheTrainingText) {
  const auto domains = make_domains(4);
  const Domain& atlas = *domains[0];
  ASSERT_EQ(atlas.name(), "atlas");
  std::string text;
  for (const auto& doc : atlas.documents(Split::specialist, 200000)) text += doc;
  size_t checked = 0;
  for (const auto& q : atlas.questions(100)) {
    std::smatch m;
    std::string statement;
    if (std::regex_match(q.prompt, m, std::regex(R"(Q: Where is (\w+)\? A:)"))) statement = m[1].str() + " is a town in " + q.answer + ".";
    else if (std::regex_match(q.prompt, m, std::regex(R"(Q: Which river flows through (\w+)\? A:)"))) statement = "The " + q.answer + " flows through " + m[1].str() + ".";
    else if (std::regex_match(q.prompt, m, std::regex(R"(Q: What is (\w+) known for\? A:)"))) statement = m[1].str() + " is known for its " + q.answer + ".";
    else if (std::regex_match(q.prompt, m, std::regex(R"(Q: When was (\w+) founded\? A:)"))) statement = m[1].str() + " was founded in " + q.answer + ".";
    else FAIL() << "unexpected question: " << q.prompt;
    EXPECT_NE(text.find(statement), std::string::npos) << statement;
    ++checked;
  }
  EXPECT_EQ(checked, 100u);
}

}  // namespace
}  // namespace fusellm::demo
