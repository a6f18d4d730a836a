#pragma once
// Test hooks for crash runs: FUSELLM_TRAIN_KILL_<POINT>=N makes the process SIGKILL itself at the N-th
// occurrence of that point (an optimizer step, a checkpoint save, a gradient collective). With
// FUSELLM_KILL_RANK=r set, only the process whose RANK is r does, so a multi-rank test can kill one rank
// while the others live on. Unset variables cost one getenv per call; nothing else changes.
#include <signal.h>
#include <unistd.h>

#include <cstdint>
#include <cstdlib>
#include <string>

namespace fusellm {

inline void maybe_kill_self(const char* variable, int64_t occurrence) {
  const char* at = std::getenv(variable);
  if (!at || std::atoll(at) != occurrence) return;
  const char* only = std::getenv("FUSELLM_KILL_RANK");
  const char* rank = std::getenv("RANK");
  if (only && std::string(only) != (rank ? rank : "0")) return;
  ::kill(::getpid(), SIGKILL);
}

}  // namespace fusellm
