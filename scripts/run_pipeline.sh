#!/usr/bin/env bash
# Thin wrapper over `fusellm run`: the whole pipeline of an experiment config (prepare, infer, align, train,
# eval), on NPROC processes started by torchrun (`--no-python` runs the fusellm binary itself; RANK,
# WORLD_SIZE, LOCAL_RANK, MASTER_ADDR and MASTER_PORT reach each process through the environment).
# Every stage resumes where it stopped, so after a crash or preemption run the same command again.
#   usage: scripts/run_pipeline.sh CONFIG [NPROC]        (NPROC 1 = no torchrun)
#   env:   FUSELLM   the fusellm binary (default: build/bin/fusellm next to this script)
#          TORCHRUN  the launcher (default: torchrun); extra launcher flags in TORCHRUN_ARGS
# Under SLURM, start one task per GPU with srun instead (fusellm reads SLURM_PROCID / SLURM_NTASKS /
# SLURM_LOCALID and MASTER_ADDR / MASTER_PORT):  srun fusellm run --config CONFIG
set -euo pipefail
config=${1:?usage: scripts/run_pipeline.sh CONFIG [NPROC]}
nproc=${2:-1}
here=$(cd "$(dirname "$0")/.." && pwd)
fusellm=${FUSELLM:-$here/build/bin/fusellm}
[[ -x $fusellm ]] || { echo "run_pipeline: $fusellm not found (build first: scripts/test.sh, or set FUSELLM)" >&2; exit 1; }
if [[ $nproc -le 1 ]]; then
  exec "$fusellm" run --config "$config"
fi
# shellcheck disable=SC2086
exec "${TORCHRUN:-torchrun}" --standalone --nproc-per-node "$nproc" ${TORCHRUN_ARGS:-} --no-python "$fusellm" run --config "$config"
