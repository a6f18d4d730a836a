#!/bin/bash
# Peak RSS and held bytes of rank 0 of `fusellm train` (fp32, CPU, Gloo) for ZeRO-0 and ZeRO-2 on 2 and 3
# ranks, a 25.8 M-parameter init-model Llama, next to `fusellm plan`'s prediction for the same setup.
#   tools/zero-memory/measure_rss.sh [BUILD_DIR] [SHARED_DIR]
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
F=${1:-$ROOT/build}/bin/fusellm
SHARED=${2:-$ROOT/../shared}
W=$(mktemp -d)
trap 'rm -rf "$W"' EXIT
cd "$W"
python3 - "$SHARED" <<'PY'
import json, sys
shared = sys.argv[1]
c = json.load(open(f'{shared}/data/models/stories260K-hf/config.json'))
c.update(hidden_size=512, intermediate_size=1376, num_hidden_layers=8, num_attention_heads=8,
         num_key_value_heads=8, tie_word_embeddings=False)
json.dump(c, open('template.json', 'w'), indent=1)
for z in (0, 2):
    cfg = {"models": [{"name": "t", "path": "model", "role": "target"}],
           "data": {"corpus": f"{shared}/data/corpus/tinystories_sample.txt", "txt_mode": "separator",
                    "chunk_dir": "chunks", "max_length": 64},
           "train": {"lr": 1e-4, "max_steps": 3, "micro_batch": 1, "grad_accum": 1, "max_length": 64,
                     "precision": "fp32", "zero_stage": z, "log_every": 1, "save_every": 0,
                     "output_dir": f"out_z{z}", "max_chunks": 200}}
    json.dump(cfg, open(f'z{z}.json', 'w'), indent=1)
PY
M=$SHARED/data/models/stories260K-hf
$F init-model --config template.json --tokenizer $M/tokenizer.model --tokenizer $M/tokenizer_config.json --out model >/dev/null
$F prepare --config z0.json >/dev/null 2>&1
for N in 2 3; do for Z in 0 2; do
  rm -rf out_z$Z; port=$((29500 + N * 10 + Z))
  for ((r=0; r<N; r++)); do RANK=$r LOCAL_RANK=$r WORLD_SIZE=$N MASTER_ADDR=127.0.0.1 MASTER_PORT=$port \
    $F train --config z$Z.json --no-progress --device cpu > log_${N}_${Z}_${r}.txt 2>&1 & done; wait
  m=$(tail -1 out_z$Z/metrics.jsonl)
  python3 -c "import json,sys; m=json.loads(sys.argv[1]); print('N=$N ZeRO-$Z: optimizer %.1f MiB gradients %.1f MiB peak RSS %.1f MiB' % (m['optimizer_bytes']/2**20, m['gradient_bytes']/2**20, m['peak_rss_bytes']/2**20))" "$m"
  $F plan --model model --world-size $N --zero-stage $Z --precision fp32 --micro-batch 1 --seq 64 --activation-checkpointing false --no-flash --sources 0 --device-gib 24 --reserve-gib ${RESERVE:-0.18} | grep "^total"
done; done
