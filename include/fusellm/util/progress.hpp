#pragma once
// Progress of long work: a redrawn bar on a terminal (count, rate, ETA), periodic log lines otherwise
// (when stderr is a file or a pipe, as under SLURM or CI). Thread-safe; cheap to call per item.
#include <chrono>
#include <cstdint>
#include <mutex>
#include <string>

namespace fusellm {

class Progress {
 public:
  // `total` = 0 when unknown. `unit` names what is counted ("chunks"); `rate_unit` what the rate counts
  // ("tok"), which may differ from the unit (see add's second argument).
  Progress(std::string label, uint64_t total, std::string unit, std::string rate_unit = "");
  ~Progress();

  // Counts `items` done and `work` units of rate (e.g. tokens); redraws at most every 100 ms on a
  // terminal and logs every `log_every_seconds` otherwise.
  void add(uint64_t items, uint64_t work = 0);
  void set_done(uint64_t items);  // e.g. after resuming, the items found finished
  void finish();                  // final line with totals

  static void set_log_interval(double seconds);

 private:
  void render(bool final_line);
  std::mutex mutex_;
  std::string label_, unit_, rate_unit_;
  uint64_t total_, done_ = 0, work_ = 0, resumed_ = 0;
  std::chrono::steady_clock::time_point start_, last_draw_;
  bool tty_, finished_ = false;
};

}  // namespace fusellm
