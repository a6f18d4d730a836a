#!/usr/bin/env bash
# A small real MultiPL-E run end to end: an init-model Llama with the Llama-2 tokenizer (4096-token context,
# random weights: scores near 0 are expected; the machinery is the point) on the first N problems of all
# ten languages, n samples each, then per language: problems, samples, statuses, pass@1 and time spent
# executing (the sum of the sandbox wall times of its programs).
#   tools/multiple/small_run.sh [BUILD_DIR] [SHARED_DIR] [LIMIT=5] [N=2] [OUT]
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
F=${1:-$ROOT/build}/bin/fusellm
SHARED=${2:-$ROOT/../shared}
LIMIT=${3:-5}
N=${4:-2}
OUT=${5:-$(mktemp -d)/me}
MODEL=$(dirname "$OUT")/llama2tok-4k
[ -d "$MODEL" ] || "$F" init-model --config "$ROOT/tests/eval/fixtures/llama2tok_4k_config.json" \
  --tokenizer "$SHARED/data/tokenizers/llama2/tokenizer.model" --out "$MODEL" --seed 11 >/dev/null
"$F" eval --check-toolchains || true
start=$(date +%s.%N)
"$F" eval --model "$MODEL" --tasks me --limit "$LIMIT" --n-samples "$N" --out "$OUT" --shared "$SHARED" --no-progress
end=$(date +%s.%N)
python3 - "$OUT" "$start" "$end" <<'PY'
import collections, json, pathlib, sys
out = pathlib.Path(sys.argv[1])
res = json.load(open(out / "results.json"))
print(f"wall {float(sys.argv[3]) - float(sys.argv[2]):.1f} s (generation + execution, overlapped)")
print(f"{'task':<14} {'problems':>8} {'samples':>7} {'pass@1':>7} {'exec s':>7}  statuses")
for f in sorted((out / "samples").glob("multiple-*.jsonl")):
    statuses, wall, problems, samples = collections.Counter(), 0.0, 0, 0
    for line in open(f):
        d = json.loads(line)
        problems += 1
        for s in d["prediction"]["samples"]:
            samples += 1
            statuses[s["status"]] += 1
            wall += s["wall_s"]
    task = f.stem
    print(f"{task:<14} {problems:>8} {samples:>7} {res['results'][task]['pass@1']:>7.3f} {wall:>7.1f}  {dict(statuses)}")
for task, why in res["fusellm"].get("skipped", {}).items():
    print(f"{task:<14} skipped: {why}")
print("results:", out / "results.json", "| bigcode:", out / "bigcode.json")
PY
