#include "fusellm/util/dist_env.hpp"

#include <cstdlib>

#include "fusellm/util/error.hpp"

namespace fusellm {

namespace {

const char* env(const char* name) {
  const char* v = std::getenv(name);
  return (v && *v) ? v : nullptr;
}

int env_int(const char* name, int fallback) {
  const char* v = env(name);
  if (!v) return fallback;
  char* end = nullptr;
  long x = std::strtol(v, &end, 10);
  if (*end != '\0' || x < 0 || x > 1 << 24) fail("environment variable {}='{}' is not a valid count or index", name, v);
  return static_cast<int>(x);
}

}  // namespace

RankInfo rank_info_from_env() {
  RankInfo info;
  struct Scheme {
    const char *rank, *size, *local, *name;
  };
  const Scheme schemes[] = {{"RANK", "WORLD_SIZE", "LOCAL_RANK", "torchrun"},
                            {"SLURM_PROCID", "SLURM_NTASKS", "SLURM_LOCALID", "slurm"},
                            {"OMPI_COMM_WORLD_RANK", "OMPI_COMM_WORLD_SIZE", "OMPI_COMM_WORLD_LOCAL_RANK", "openmpi"}};
  for (const auto& s : schemes) {
    if (!env(s.rank) && !env(s.size)) continue;
    info.rank = env_int(s.rank, 0);
    info.world_size = env_int(s.size, 1);
    info.local_rank = env_int(s.local, info.rank);
    info.launcher = s.name;
    FUSELLM_CHECK(info.world_size >= 1, "environment variable {}: world size must be at least 1", s.size);
    FUSELLM_CHECK(info.rank < info.world_size, "environment variables {}={} and {}={}: rank outside the world",
                  s.rank, info.rank, s.size, info.world_size);
    break;
  }
  if (const char* addr = env("MASTER_ADDR")) info.master_addr = addr;
  info.master_port = env_int("MASTER_PORT", 0);
  return info;
}

}  // namespace fusellm
