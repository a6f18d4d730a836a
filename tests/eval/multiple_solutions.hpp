#pragma once
// Hand-written completions for MultiPL-E problems, per language: what a model would have to generate after
// the strip()ped prompt (up to, not including, the stop sequence the tests begin after). Correct ones
// must pass; the wrong ones return a value of a plausible type that no test expects.
#include <map>
#include <string>
#include <vector>

namespace fusellm::eval::test_solutions {

// language → (problem name → completion). Five problems each; PHP's `strlen` clashes with PHP's own
// function (the translated program cannot run at all), so PHP has is_palindrome instead.
inline const std::map<std::string, std::map<std::string, std::string>>& correct() {
  static const std::map<std::string, std::map<std::string, std::string>> table = {
      {"cpp",
       {{"HumanEval_23_strlen", "\n    return string.size();"},
        {"HumanEval_53_add", "\n    return x + y;"},
        {"HumanEval_60_sum_to_n", "\n    return n * (n + 1) / 2;"},
        {"HumanEval_13_greatest_common_divisor", "\n    while (b != 0) { long t = a % b; a = b; b = t; }\n    return a;"},
        {"HumanEval_55_fib",
         "\n    long a = 0, b = 1;\n    for (long i = 0; i < n; i++) { long t = a + b; a = b; b = t; }\n    return a;"}}},
      {"go",
       {{"HumanEval_23_strlen", "\n    return len(myString)\n}\n"},
        {"HumanEval_53_add", "\n    return x + y\n}\n"},
        {"HumanEval_60_sum_to_n", "\n    return n * (n + 1) / 2\n}\n"},
        {"HumanEval_13_greatest_common_divisor", "\n    for b != 0 {\n        a, b = b, a%b\n    }\n    return a\n}\n"},
        {"HumanEval_55_fib", "\n    a, b := 0, 1\n    for i := 0; i < n; i++ {\n        a, b = b, a+b\n    }\n    return a\n}\n"}}},
      {"java",
       {{"HumanEval_23_strlen", "\n        return string.length();"},
        {"HumanEval_53_add", "\n        return x + y;"},
        {"HumanEval_60_sum_to_n", "\n        return n * (n + 1) / 2;"},
        {"HumanEval_13_greatest_common_divisor",
         "\n        while (b != 0) { long t = a % b; a = b; b = t; }\n        return a;"},
        {"HumanEval_55_fib",
         "\n        long a = 0, b = 1;\n        for (long i = 0; i < n; i++) { long t = a + b; a = b; b = t; }\n"
         "        return a;"}}},
      {"js",
       {{"HumanEval_23_strlen", "\n  return string.length;\n}\n"},
        {"HumanEval_53_add", "\n  return x + y;\n}\n"},
        {"HumanEval_60_sum_to_n", "\n  return n * (n + 1) / 2;\n}\n"},
        {"HumanEval_13_greatest_common_divisor", "\n  while (b !== 0) { [a, b] = [b, a % b]; }\n  return a;\n}\n"},
        {"HumanEval_55_fib", "\n  let a = 0, b = 1;\n  for (let i = 0; i < n; i++) { [a, b] = [b, a + b]; }\n  return a;\n}\n"}}},
      {"php",
       {{"HumanEval_48_is_palindrome", "\n    return $text === strrev($text);\n}\n"},
        {"HumanEval_53_add", "\n    return $x + $y;\n}\n"},
        {"HumanEval_60_sum_to_n", "\n    return intdiv($n * ($n + 1), 2);\n}\n"},
        {"HumanEval_13_greatest_common_divisor",
         "\n    while ($b != 0) { $t = $a % $b; $a = $b; $b = $t; }\n    return $a;\n}\n"},
        {"HumanEval_55_fib",
         "\n    $a = 0; $b = 1;\n    for ($i = 0; $i < $n; $i++) { $t = $a + $b; $a = $b; $b = $t; }\n    return $a;\n}\n"}}},
      {"r",
       {{"HumanEval_23_strlen", "\n  nchar(string)\n}\n"},
        {"HumanEval_53_add", "\n  x + y\n}\n"},
        {"HumanEval_60_sum_to_n", "\n  n * (n + 1) / 2\n}\n"},
        {"HumanEval_13_greatest_common_divisor", "\n  while (b != 0) { t <- a %% b; a <- b; b <- t }\n  a\n}\n"},
        {"HumanEval_55_fib", "\n  a <- 0; b <- 1\n  for (i in seq_len(n)) { t <- a + b; a <- b; b <- t }\n  a\n}\n"}}},
      {"rb",
       {{"HumanEval_23_strlen", "\n  string.length\nend\n"},
        {"HumanEval_53_add", "\n  x + y\nend\n"},
        {"HumanEval_60_sum_to_n", "\n  n * (n + 1) / 2\nend\n"},
        {"HumanEval_13_greatest_common_divisor", "\n  a, b = b, a % b while b != 0\n  a\nend\n"},
        {"HumanEval_55_fib", "\n  a, b = 0, 1\n  n.times { a, b = b, a + b }\n  a\nend\n"}}},
      {"rs",
       {{"HumanEval_23_strlen", "\n    string.len() as isize"},
        {"HumanEval_53_add", "\n    x + y"},
        {"HumanEval_60_sum_to_n", "\n    n * (n + 1) / 2"},
        {"HumanEval_13_greatest_common_divisor",
         "\n    let (mut a, mut b) = (a, b);\n    while b != 0 { let t = a % b; a = b; b = t; }\n    a"},
        {"HumanEval_55_fib", "\n    let (mut a, mut b) = (0isize, 1isize);\n    for _ in 0..n { let t = a + b; a = b; b = t; }\n    a"}}},
      {"ts",
       {{"HumanEval_23_strlen", "\n  return string.length;\n}\n"},
        {"HumanEval_53_add", "\n  return x + y;\n}\n"},
        {"HumanEval_60_sum_to_n", "\n  return n * (n + 1) / 2;\n}\n"},
        {"HumanEval_13_greatest_common_divisor", "\n  while (b !== 0) { [a, b] = [b, a % b]; }\n  return a;\n}\n"},
        {"HumanEval_55_fib", "\n  let a = 0, b = 1;\n  for (let i = 0; i < n; i++) { [a, b] = [b, a + b]; }\n  return a;\n}\n"}}},
  };
  return table;
}

// The return type of a typed prompt's last line: `public static T name(` (Java), `func name(...) T {` (Go).
inline std::string java_return_type(const std::string& signature) {
  const size_t start = signature.find("static ") + 7, paren = signature.find('(');
  const size_t name = signature.rfind(' ', paren);
  return signature.substr(start, name - start);
}
inline std::string go_return_type(const std::string& signature) {
  const size_t close = signature.rfind(')', signature.rfind('{'));
  std::string t = signature.substr(close + 1, signature.rfind('{') - close - 1);
  while (!t.empty() && t.front() == ' ') t.erase(t.begin());
  while (!t.empty() && t.back() == ' ') t.pop_back();
  return t;
}

// A body returning a wrong value, given the prompt's last line (the signature).
inline std::string wrong_completion(const std::string& language, const std::string& signature) {
  if (language == "py") return "\n    return object()\n";
  if (language == "js") return "\n  return Symbol('wrong');\n}\n";
  if (language == "ts") return "\n  return Symbol('wrong') as any;\n}\n";
  if (language == "php") return "\n    return new stdClass();\n}\n";
  if (language == "rb") return "\n  Object.new\nend\n";
  if (language == "r") return "\n  new.env()\n}\n";
  if (language == "cpp") return "\n    return {};";  // the type's default: 0, "", {}, false, nullopt
  if (language == "rs") return "\n    Default::default()";
  if (language == "go") return "\n    return *new(" + go_return_type(signature) + ")\n}\n";  // the zero value
  if (language == "java") {
    const std::string t = java_return_type(signature);
    if (t == "long") return "\n        return Long.MIN_VALUE;";
    if (t == "double" || t == "float") return "\n        return Double.NaN;";
    if (t == "boolean") return "\n        return new Random().nextInt(1) == 1;";  // false, unknown to javac
    return "\n        return null;";
  }
  return {};
}

}  // namespace fusellm::eval::test_solutions
