#!/usr/bin/env bash
# The miniature FuseLLM run of configs/tiny-cpu-fusion.json on a CPU: creates the two tiny sources (GPT-NeoX
# with the GPT-NeoX-20B tokenizer, MPT with the GPT-2 BPE; random weights) from ../shared's tokenizers,
# then runs prepare → infer → align → train. NPROC (default 1) > 1 runs the stages on that many Gloo
# processes through torchrun.
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
fusellm=${FUSELLM:-$here/build/bin/fusellm}
shared=$here/../shared/data/tokenizers
models=$here/out/tiny-fusion/models
[[ -d $shared ]] || { echo "tiny_cpu_fusion: $shared not found (the test material beside the checkout)" >&2; exit 1; }
[[ -f $models/neox-tiny/config.json ]] ||
  "$fusellm" init-model --config "$here/configs/models/gpt_neox-tiny.json" --seed 1 --out "$models/neox-tiny" \
    --tokenizer "$shared/gpt-neox-20b/20B_tokenizer.json:tokenizer.json" \
    --tokenizer "$here/configs/models/endoftext-tokenizer_config.json:tokenizer_config.json"
[[ -f $models/mpt-gpt2/config.json ]] ||
  "$fusellm" init-model --config "$here/configs/models/mpt-tiny.json" --seed 2 --out "$models/mpt-gpt2" \
    --tokenizer "$shared/gpt2/gpt2_vocab.json:vocab.json" --tokenizer "$shared/gpt2/gpt2_merges.txt:merges.txt" \
    --tokenizer "$here/configs/models/endoftext-tokenizer_config.json:tokenizer_config.json"
# The first 100 kB of tiny Shakespeare, cut at a paragraph break: minutes on two cores, not an hour.
[[ -f $here/out/tiny-fusion/corpus.txt ]] ||
  head -c 100000 "$here/../shared/data/corpus/tinyshakespeare.txt" | sed '$d' > "$here/out/tiny-fusion/corpus.txt"
exec "$here/scripts/run_pipeline.sh" "$here/configs/tiny-cpu-fusion.json" "${NPROC:-1}"
