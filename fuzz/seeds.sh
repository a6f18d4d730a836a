#!/usr/bin/env bash
# Writes every fuzz target's seed corpus into OUT_DIR/<target>/ from the real files in ../shared (never into
# the repository): fuzz_make_seeds for tokenizers, checkpoints, corpora, eval data and configs; a tiny
# `fusellm run` (stories260K as target and source, two training steps) for the chunk dataset, logit store,
# aligned store and trainer state, each bundled into one input (fuzz_support.hpp: `#@ <path>` sections).
#   fuzz/seeds.sh BUILD_DIR OUT_DIR
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
build=$1
out=$(realpath -m "$2")  # the tiny run's config names paths that must not depend on the working directory
shared=$root/../shared
if [ ! -d "$shared/data" ]; then
  echo "fuzz seeds: ../shared not found: only the committed regression inputs will be used" >&2
  mkdir -p "$out"
  exit 0
fi
shared=$(cd "$shared" && pwd)
rm -rf "$out.tmp"
mkdir -p "$out.tmp"
"$build/fuzz/fuzz_make_seeds" "$shared" "$root" "$out.tmp"

# bundle DIR [FIND_ARGS...] > FILE: every regular file under DIR as one `#@ relative/path` section each.
bundle() {
  local dir=$1 first=1 rel
  shift
  while IFS= read -r file; do
    rel=${file#"$dir"/}
    if [ $first = 1 ]; then printf '#@ %s\n' "$rel"; first=0; else printf '\n#@ %s\n' "$rel"; fi
    cat "$file"
  done < <(find "$dir" -type f "$@" | LC_ALL=C sort)
}

run=$out.tmp/run
mkdir -p "$run"
head -c 6000 "$shared/data/corpus/tinystories_sample.txt" > "$run/corpus.txt"
stories=$shared/data/models/stories260K-hf
# The target is a one-layer Llama with stories260K's vocabulary, small enough that a whole checkpoint
# (weights, optimizer state, the file table that names them) fits in one input under -max_len (1 MiB).
sed 's/"hidden_size": 64/"hidden_size": 16/; s/"intermediate_size": 172/"intermediate_size": 32/;
     s/"num_hidden_layers": 5/"num_hidden_layers": 1/; s/"num_attention_heads": 8/"num_attention_heads": 2/;
     s/"num_key_value_heads": 4/"num_key_value_heads": 1/' "$stories/config.json" > "$run/tiny-llama.json"
ASAN_OPTIONS=detect_leaks=0 "$build/bin/fusellm" init-model --config "$run/tiny-llama.json" --seed 3 \
  --out "$run/tiny-llama" --tokenizer "$stories/tokenizer.model:tokenizer.model" \
  --tokenizer "$stories/tokenizer_config.json:tokenizer_config.json" > "$run/log" 2>&1 ||
  { echo "fuzz seeds: init-model failed (log: $run/log)" >&2; tail -5 "$run/log" >&2; exit 1; }
cat > "$run/config.tmpl" <<JSON
{
  "models": [{"name": "target", "path": "$run/tiny-llama", "role": "target"},
             {"name": "stories", "path": "$stories", "role": "source"}],
  "data": {"corpus": "$run/corpus.txt", "txt_mode": "paragraph", "chunk_dir": "$run/chunks", "max_length": 32},
  "infer": {"store_dir": "$run/store", "top_k": 3, "batch_tokens": 512, "dtype": "fp32", "shard_records": 4},
  "align": {"out_dir": "$run/aligned"},
  "fusion": {"strategy": "minCE", "divergence": "ce", "lambda": 0.9},
  "train": {"lr": 1e-3, "warmup_steps": 1, "max_steps": 2, "micro_batch": 2, "grad_accum": 1, "max_length": 32,
            "save_every": 2, "log_every": 1, "output_dir": "$run/train", "zero_stage": ZERO_STAGE}
}
JSON
sed 's/ZERO_STAGE/0/' "$run/config.tmpl" > "$run/config.json"
# A second training run from the same stores writes the ZeRO form of the trainer state (sharded moments
# and master weights, the "zero" shard table in state.json).
sed "s/ZERO_STAGE/1/; s|\"$run/train\"|\"$run/train-zero\"|" "$run/config.tmpl" > "$run/config-zero.json"
ASAN_OPTIONS=detect_leaks=0 "$build/bin/fusellm" run --config "$run/config.json" --no-progress > "$run/log" 2>&1 &&
  ASAN_OPTIONS=detect_leaks=0 "$build/bin/fusellm" train --config "$run/config-zero.json" --no-progress \
    >> "$run/log" 2>&1 ||
  { echo "fuzz seeds: the tiny run failed (log: $run/log)" >&2; tail -5 "$run/log" >&2; exit 1; }

mkdir -p "$out.tmp"/{chunk_dataset,logit_store,aligned_store,train_state}
bundle "$run/chunks" > "$out.tmp/chunk_dataset/tiny-run"
bundle "$run/store/stories" > "$out.tmp/logit_store/tiny-run-source"
bundle "$run/store/target" > "$out.tmp/logit_store/tiny-run-target"
bundle "$run/aligned" > "$out.tmp/aligned_store/tiny-run"
for train in train train-zero; do
  ckpt=$(cat "$run/$train/checkpoints/latest")
  (cd "$run/$train" && bundle . \( -path ./checkpoints/latest -o -path "./checkpoints/$ckpt/*" \)) \
    > "$out.tmp/train_state/$train"
done
rm -rf "$run" "$out"
mv "$out.tmp" "$out"
for t in "$out"/*; do echo "fuzz seeds: $(basename "$t"): $(find "$t" -type f | wc -l) inputs"; done
