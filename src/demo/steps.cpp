// The demo's step runner (steps.hpp).
#include "fusellm/demo/steps.hpp"

#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <iostream>

#include <xxhash.h>

#include "fusellm/demo/process.hpp"
#include "fusellm/util/error.hpp"
#include "fusellm/util/json.hpp"

namespace fusellm::demo {

StepRunner::StepRunner(fs::path out_dir, bool tty) : out_dir_(std::move(out_dir)), tty_(tty) {}

std::string StepRunner::key_of(const Step& step) const {
  XXH3_state_t* state = XXH3_createState();
  XXH3_64bits_reset(state);
  auto add = [&](const std::string& s) {
    XXH3_64bits_update(state, s.data(), s.size());
    XXH3_64bits_update(state, "\0", 1);
  };
  add(chain_);  // every earlier step's key: a changed step invalidates what was made from it
  add(step.id);
  for (const auto& a : step.command) add(a);
  for (const auto& in : step.inputs) add(read_file(in));
  add(step.key_extra);
  const uint64_t h = XXH3_64bits_digest(state);
  XXH3_freeState(state);
  return fmt::format("{:016x}", static_cast<unsigned long long>(h));
}

void StepRunner::run(const Step& step) {
  const fs::path marker = out_dir_ / "steps" / (step.id + ".json");
  const std::string key = key_of(step);
  const std::string counter = fmt::format("[{:>2}/{}]", timings_.size() + 1, total_);
  if (fs::exists(marker)) {
    const json done = parse_json_file(marker);
    if (done.value("key", "") == key) {
      chain_ = key;
      timings_.push_back({step.id, step.stage, done.value("seconds", 0.0), false});
      std::cout << fmt::format("{} {} — done before ({:.1f} s)\n", counter, step.label, timings_.back().seconds);
      return;
    }
    // Made by another recipe or seed: its outputs are not this step's.
    for (const auto& o : step.outputs) fs::remove_all(o);
    fs::remove(marker);
  }
  const auto t0 = std::chrono::steady_clock::now();
  auto elapsed = [&] { return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count(); };
  if (tty_) std::cout << counter << " " << step.label << " …" << std::flush;
  else std::cout << counter << " " << step.label << "\n" << std::flush;
  if (step.command.empty()) {
    step.action();
  } else {
    const fs::path log = out_dir_ / "logs" / (step.id + ".log");
    const int rc = run_logged(step.command, log);
    if (rc != 0) {
      if (tty_) std::cout << "\n";
      fail("demo: step '{}' failed (exit {}); last lines of {}:\n{}", step.label, rc, log.string(), tail_lines(log, 12));
    }
  }
  const double seconds = elapsed();
  write_file_atomic(marker, json{{"id", step.id}, {"key", key}, {"seconds", seconds}}.dump(2) + "\n");
  chain_ = key;
  timings_.push_back({step.id, step.stage, seconds, true});
  if (tty_) std::cout << "\r" << counter << " " << step.label << " — " << fmt::format("{:.1f} s", seconds) << "\n";
  else std::cout << fmt::format("{}   done in {:.1f} s\n", std::string(counter.size(), ' '), seconds);
}

}  // namespace fusellm::demo
