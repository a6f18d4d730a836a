#!/usr/bin/env python3
"""Reference numbers from the lm-eval package itself (tests/eval/fixtures/lm_eval_reference.json).

Runs `lm_eval --model hf` (lm-eval 0.4.13, float64, add_bos_token=False: the 0.3.x line FuseLLM used encoded
requests without BOS) over the seven Common Sense tasks (YAMLs in lm_eval_tasks/, over ../shared's llm-foundry
files) on two models:
  - stories260K-hf from ../shared (llama, SentencePiece 512, 512-token context);
  - llama2tok-4k: a Llama with the Llama-2 tokenizer and a 4096-token context, written by
    `fusellm init-model` from tests/eval/fixtures/llama2tok_4k_config.json (seed 11; the fixture records its
    weights' sha256, which the test checks before comparing);
and for llama2tok-4k also HF `generate` (greedy, BOS + prompt, whole prompts: they fit 4096 tokens) on 30 BBH
prompts of 3 tasks. Request strings are stored as sha256 prefixes to keep the fixture small.

Throw-away environment only (never needed by CI or the product):
  python3 -m venv /tmp/refenv && /tmp/refenv/bin/pip install torch==2.11.0 transformers==5.24.0 \
      sentencepiece lm-eval==0.4.13 accelerate protobuf tiktoken
  /tmp/refenv/bin/python tools/eval-reference/make_lm_eval_reference.py ../shared build/bin/fusellm \
      tests/eval/fixtures/lm_eval_reference.json
"""
import glob
import hashlib
import json
import os
import subprocess
import sys
import tempfile

TASKS = ["arc_easy", "arc_challenge", "boolq", "hellaswag", "openbookqa", "piqa", "winogrande"]
DOCS_PER_TASK = 18
BBH = ["sports_understanding", "boolean_expressions", "date_understanding"]
BBH_PER_TASK, BBH_NEW_TOKENS = 10, 32
SEED = 11


def request_hash(context, continuation):
    return hashlib.sha256((context + "\0" + continuation).encode()).hexdigest()[:16]


def run_lm_eval(model_dir, shared, tmp):
    tasks_dir = os.path.join(tmp, "tasks")
    os.makedirs(tasks_dir, exist_ok=True)
    here = os.path.join(os.path.dirname(os.path.abspath(__file__)), "lm_eval_tasks")
    for name in os.listdir(here):
        text = open(os.path.join(here, name)).read().replace("SHARED_DATA", shared + "/data")
        open(os.path.join(tasks_dir, name), "w").write(text)
    out = os.path.join(tmp, "out-" + os.path.basename(model_dir))
    subprocess.run([os.path.join(os.path.dirname(sys.executable), "lm_eval"), "--model", "hf", "--model_args",
                    f"pretrained={model_dir},dtype=float64,add_bos_token=False", "--include_path", tasks_dir,
                    "--tasks", ",".join(t + "_lf" for t in TASKS), "--limit", str(DOCS_PER_TASK), "--log_samples",
                    "--output_path", out, "--batch_size", "8"], check=True,
                   env={**os.environ, "HF_DATASETS_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false"})
    requests, docs = [], []
    for task in TASKS:
        path = glob.glob(f"{out}/**/samples_{task}_lf_*.jsonl", recursive=True)[0]
        for r in sorted((json.loads(line) for line in open(path)), key=lambda r: r["doc_id"]):
            for k, (arg, resp) in enumerate(zip(r["arguments"].values(), r["resps"])):
                ctx, cont = list(arg.values())[:2]
                requests.append({"task": task, "doc": r["doc_id"], "hash": request_hash(ctx, cont),
                                 "continuation": cont[:40], "logprob": float(resp[0][0]),
                                 "is_greedy": resp[0][1] in (True, "True")})
            docs.append({"task": task, "doc": r["doc_id"], "acc": float(r["acc"]), "acc_norm": float(r["acc_norm"])})
    return requests, docs


def bbh_generations(model_dir, shared):
    import sentencepiece as spm
    import torch
    from transformers import LlamaForCausalLM
    model = LlamaForCausalLM.from_pretrained(model_dir, dtype=torch.float64).eval()
    sp = spm.SentencePieceProcessor(model_file=model_dir + "/tokenizer.model")
    out = []
    for task in BBH:
        with open(f"{shared}/data/eval/bbh/cot-prompts/{task}.txt") as f:
            task_prompt = "".join(f.readlines()[2:])
        examples = json.load(open(f"{shared}/data/eval/bbh/bbh/{task}.json"))["examples"]
        for i, ex in enumerate(examples[:BBH_PER_TASK]):
            ids = [sp.bos_id()] + sp.encode(task_prompt.strip() + "\n\nQ: " + ex["input"] + "\nA:")
            assert len(ids) + BBH_NEW_TOKENS <= model.config.max_position_embeddings
            with torch.no_grad():
                gen = model.generate(torch.tensor([ids]), max_new_tokens=BBH_NEW_TOKENS, do_sample=False,
                                     eos_token_id=sp.eos_id(), pad_token_id=sp.eos_id())[0][len(ids):].tolist()
            out.append({"task": task, "doc": i, "prompt_tokens": len(ids), "max_new_tokens": BBH_NEW_TOKENS,
                        "tokens": gen})
    return out


def main():
    shared, fusellm, out_path = os.path.abspath(sys.argv[1]), sys.argv[2], sys.argv[3]
    root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    import lm_eval
    import torch
    import transformers
    fixture = {"lm_eval": lm_eval.__version__, "transformers": transformers.__version__, "torch": torch.__version__,
               "dtype": "float64", "docs_per_task": DOCS_PER_TASK, "models": []}
    with tempfile.TemporaryDirectory() as tmp:
        m2 = os.path.join(tmp, "llama2tok-4k")
        config = os.path.join(root, "tests/eval/fixtures/llama2tok_4k_config.json")
        subprocess.run([fusellm, "init-model", "--config", config, "--tokenizer",
                        shared + "/data/tokenizers/llama2/tokenizer.model", "--out", m2, "--seed", str(SEED)], check=True)
        for name, model_dir in [("stories260K-hf", shared + "/data/models/stories260K-hf"), ("llama2tok-4k", m2)]:
            requests, docs = run_lm_eval(model_dir, shared, tmp)
            entry = {"name": name, "requests": requests, "docs": docs}
            if name == "llama2tok-4k":
                entry["init"] = {"config": "tests/eval/fixtures/llama2tok_4k_config.json",
                                 "tokenizer": "data/tokenizers/llama2/tokenizer.model", "seed": SEED}
                entry["safetensors_sha256"] = hashlib.sha256(open(m2 + "/model.safetensors", "rb").read()).hexdigest()
                entry["generate"] = bbh_generations(m2, shared)
            fixture["models"].append(entry)
            print(f"{name}: {len(requests)} requests, {len(docs)} documents")
    with open(out_path, "w") as f:
        json.dump(fixture, f, indent=0)
        f.write("\n")


if __name__ == "__main__":
    main()
