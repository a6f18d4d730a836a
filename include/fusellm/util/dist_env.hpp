#pragma once
// Which process this is among many, from the launcher's environment: torchrun (RANK, WORLD_SIZE,
// LOCAL_RANK, MASTER_ADDR, MASTER_PORT), SLURM (SLURM_PROCID, SLURM_NTASKS, SLURM_LOCALID) or Open MPI
// (OMPI_COMM_WORLD_RANK, _SIZE, _LOCAL_RANK). torchrun's variables win when several are set.
#include <string>

namespace fusellm {

struct RankInfo {
  int rank = 0;
  int world_size = 1;
  int local_rank = 0;
  std::string master_addr;  // empty when the launcher gave none
  int master_port = 0;
  std::string launcher = "none";  // "torchrun", "slurm", "openmpi", "none"
  bool is_main() const { return rank == 0; }
};

// Reads the environment; throws Error naming the variable when a value is malformed or inconsistent
// (rank outside [0, world_size)).
RankInfo rank_info_from_env();

}  // namespace fusellm
