#pragma once
// The pieces of open-instruct's BBH protocol that are pure string work, exposed for tests and the tasks.
#include <string>
#include <vector>

namespace fusellm::eval {

// The 27 BBH task names (file stems of bbh/*.json and cot-prompts/*.txt).
const std::vector<std::string>& bbh_task_names();
// The cot-prompts file without its first two lines ("".join(f.readlines()[2:])).
std::string bbh_task_prompt(const std::string& cot_file_text);
// task_prompt.strip() + "\n\nQ: " + input + "\nA:"
std::string bbh_prompt(const std::string& task_prompt, const std::string& input);
// The first match of [t|T]he answer is (.*?)\. (no newline inside), stripped; else the stripped output.
std::string bbh_extract_answer(const std::string& output);
// HF evaluate's exact_match with ignore_case and ignore_punctuation (Python's lower(), then ASCII
// string.punctuation removed; nothing stripped or collapsed).
bool bbh_exact_match(const std::string& prediction, const std::string& target);

}  // namespace fusellm::eval
