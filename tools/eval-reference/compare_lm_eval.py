#!/usr/bin/env python3
"""Cross-check of the reference fixture with the lm-eval package itself (run by hand, in the throw-away venv).

  pip install lm-eval accelerate protobuf tiktoken   # into the venv of make_reference.py
  tools/eval-reference/compare_lm_eval.py ../shared tests/eval/fixtures/hf_reference.json

Runs `lm_eval --model hf` (float64, add_bos_token=False as lm-eval 0.3.x encoded requests) on the first
documents of ARC-Easy and PIQA from the llm-foundry files (task YAMLs in lm_eval_tasks/) and compares every
request string, log-likelihood and greedy flag with the fixture that tests/eval/test_hf_reference.cpp checks
fusellm against.
"""
import glob
import json
import os
import subprocess
import sys
import tempfile


def main():
    shared, fixture = os.path.abspath(sys.argv[1]), sys.argv[2]
    ref = json.load(open(fixture))
    here = os.path.dirname(os.path.abspath(__file__))
    with tempfile.TemporaryDirectory() as tmp:
        for name in os.listdir(os.path.join(here, "lm_eval_tasks")):
            text = open(os.path.join(here, "lm_eval_tasks", name)).read().replace("SHARED_DATA", shared + "/data")
            open(os.path.join(tmp, name), "w").write(text)
        out = os.path.join(tmp, "out")
        model = shared + "/data/models/stories260K-hf"
        subprocess.run([os.path.join(os.path.dirname(sys.executable), "lm_eval"), "--model", "hf", "--model_args",
                        f"pretrained={model},dtype=float64,add_bos_token=False", "--include_path", tmp, "--tasks",
                        "arc_easy_lf,piqa_lf", "--limit", str(ref["docs_per_task"]), "--log_samples",
                        "--output_path", out, "--batch_size", "8"], check=True, env={**os.environ, "HF_DATASETS_OFFLINE": "1"})
        for task, name in [("arc_easy", "arc_easy_lf"), ("piqa", "piqa_lf")]:
            mine = [r for r in ref["loglikelihood"] if r["task"] == task]
            rows = sorted((json.loads(line) for line in open(glob.glob(f"{out}/*/samples_{name}_*.jsonl")[0])),
                          key=lambda r: r["doc_id"])
            k, worst, differ = 0, 0.0, []
            for r in rows:
                for arg, resp in zip(r["arguments"].values(), r["resps"]):
                    ctx, cont = list(arg.values())[:2]
                    m = mine[k]
                    k += 1
                    assert (ctx, cont) == (m["context"], m["continuation"]), (task, k)
                    d = abs(float(resp[0][0]) - m["logprob"])
                    if d > 1e-6:
                        differ.append((r["doc_id"], cont, float(resp[0][0]), m["logprob"]))
                    else:
                        worst = max(worst, d)
            print(f"{task}: {k} requests, identical strings; {k - len(differ)} within {worst:.2g}; differing: {differ}")


if __name__ == "__main__":
    main()
