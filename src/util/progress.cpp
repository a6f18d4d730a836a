#include "fusellm/util/progress.hpp"

#include <spdlog/spdlog.h>
#include <unistd.h>

#include <cstdio>

namespace fusellm {

namespace {
double g_log_interval = 30.0;

std::string format_duration(double seconds) {
  if (seconds < 0 || seconds > 1e7) return "?";
  auto s = static_cast<int64_t>(seconds + 0.5);
  if (s >= 3600) return fmt::format("{}h{:02}m", s / 3600, (s / 60) % 60);
  if (s >= 60) return fmt::format("{}m{:02}s", s / 60, s % 60);
  return fmt::format("{}s", s);
}
}  // namespace

void Progress::set_log_interval(double seconds) { g_log_interval = seconds; }

Progress::Progress(std::string label, uint64_t total, std::string unit, std::string rate_unit)
    : label_(std::move(label)),
      unit_(std::move(unit)),
      rate_unit_(rate_unit.empty() ? unit_ : std::move(rate_unit)),
      total_(total),
      start_(std::chrono::steady_clock::now()),
      last_draw_(start_),
      tty_(::isatty(STDERR_FILENO) == 1) {}

Progress::~Progress() {
  if (!finished_) finish();
}

void Progress::set_done(uint64_t items) {
  std::lock_guard<std::mutex> lock(mutex_);
  done_ = resumed_ = items;
}

void Progress::add(uint64_t items, uint64_t work) {
  std::lock_guard<std::mutex> lock(mutex_);
  done_ += items;
  work_ += work;
  auto now = std::chrono::steady_clock::now();
  double since = std::chrono::duration<double>(now - last_draw_).count();
  if ((tty_ && since >= 0.1) || (!tty_ && since >= g_log_interval)) {
    last_draw_ = now;
    render(false);
  }
}

void Progress::finish() {
  std::lock_guard<std::mutex> lock(mutex_);
  if (finished_) return;
  finished_ = true;
  render(true);
}

void Progress::render(bool final_line) {
  double elapsed = std::chrono::duration<double>(std::chrono::steady_clock::now() - start_).count();
  double rate = elapsed > 0 ? (work_ > 0 ? work_ : done_ - resumed_) / elapsed : 0;
  double item_rate = elapsed > 0 ? (done_ - resumed_) / elapsed : 0;
  std::string eta = (total_ > done_ && item_rate > 0) ? format_duration((total_ - done_) / item_rate) : "-";
  std::string counts = total_ ? fmt::format("{}/{} {}", done_, total_, unit_) : fmt::format("{} {}", done_, unit_);
  std::string line = fmt::format("{} {} | {:.1f} {}/s | {} elapsed | ETA {}", label_, counts, rate, rate_unit_,
                                 format_duration(elapsed), final_line ? "done" : eta);
  if (tty_) {
    std::string bar;
    if (total_) {
      const int width = 24;
      int filled = static_cast<int>(width * std::min(1.0, double(done_) / double(total_)));
      bar = "[" + std::string(filled, '#') + std::string(width - filled, '.') + "] ";
    }
    std::fprintf(stderr, "\r\033[K%s%s%s", bar.c_str(), line.c_str(), final_line ? "\n" : "");
    std::fflush(stderr);
  } else {
    spdlog::info("{}", line);
  }
}

}  // namespace fusellm
