#!/usr/bin/env python3
"""Independent reference for `fusellm eval` on stories260K-hf (tests/eval/fixtures/hf_reference.json).

Builds the Common Sense requests from the llm-foundry files in ../shared by lm-eval 0.3.x's rules (written here
from ../shared/docs/eval-protocol.md, not from fusellm), tokenizes them with libsentencepiece as lm-eval's
master `_encode_pair` does, and scores them with HF transformers' LlamaForCausalLM in float64, following
lm-eval's `_loglikelihood_tokens` (last max_length+1 tokens minus the final one, summed log_softmax of the
continuation, greedy flag). BBH: open-instruct prompts, greedy HF `generate` (BOS added, up to 48 new tokens within the 512-token context, EOS stops).

Throw-away environment only (never needed by CI or the product):
  python3 -m venv /tmp/refenv && /tmp/refenv/bin/pip install torch==2.11.0 transformers sentencepiece
  /tmp/refenv/bin/python tools/eval-reference/make_reference.py ../shared tests/eval/fixtures/hf_reference.json
"""
import json
import sys

import sentencepiece as spm
import torch
from transformers import LlamaForCausalLM

DOCS_PER_TASK = 18


def rows(path):
    with open(path) as f:
        return [json.loads(line) for line in f if line.strip()]


def cs_requests(shared):
    d = shared + "/data/eval/commonsense/"
    out = []

    def add(task, i, ctx, conts):
        for c in conts:
            out.append({"task": task, "doc": i, "context": ctx, "continuation": c})

    for task, file in [("arc_easy", "arc_easy.jsonl"), ("arc_challenge", "arc_challenge.jsonl")]:
        for i, r in enumerate(rows(d + file)[:DOCS_PER_TASK]):
            choices = []
            for c in r["choices"]:  # llm-foundry pads 3-choice items with a duplicate
                if c not in choices:
                    choices.append(c)
            add(task, i, r["query"] + "\nAnswer:", [" " + c for c in choices])
    for i, r in enumerate(rows(d + "boolq.jsonl")[:DOCS_PER_TASK]):
        q = r["query"]
        cut = q.rfind("\nQuestion: ")
        add("boolq", i, q[len("Passage: "):cut] + q[cut:] + "\nAnswer:", [" yes", " no"])
    for i, r in enumerate(rows(d + "hellaswag_small.jsonl")[:DOCS_PER_TASK]):
        add("hellaswag", i, r["query"], [" " + c for c in r["choices"]])
    for i, r in enumerate(rows(d + "openbook_qa.jsonl")[:DOCS_PER_TASK]):
        add("openbookqa", i, r["query"], [" " + c for c in r["choices"]])
    for i, r in enumerate(rows(d + "piqa.jsonl")[:DOCS_PER_TASK]):
        add("piqa", i, r["query"] + "Answer:", [" " + c for c in r["choices"]])
    for i, r in enumerate(rows(d + "winogrande.jsonl")[:DOCS_PER_TASK]):
        for ctx in r["context_options"]:
            add("winogrande", i, ctx, [" " + r["continuation"]])
    return out


def encode_pair(sp, context, continuation, eos):
    n_spaces = len(context) - len(context.rstrip())
    if n_spaces > 0:
        continuation = context[-n_spaces:] + continuation
        context = context[:-n_spaces]
    if context == "":
        return [eos], sp.encode(continuation)
    whole = sp.encode(context + continuation)
    ctx = sp.encode(context)
    return ctx, whole[len(ctx):]


@torch.no_grad()
def score(model, ctx, cont, max_length):
    full = (ctx + cont)[-(max_length + 1):][:-1]
    logits = model(torch.tensor([full])).logits[0]
    logp = torch.log_softmax(logits[len(full) - len(cont):], dim=-1)
    target = torch.tensor(cont)
    picked = logp.gather(1, target.unsqueeze(1)).squeeze(1)
    return float(picked.sum()), bool((logp.argmax(-1) == target).all()), len(ctx + cont) > max_length + 1


def main():
    shared, out_path = sys.argv[1], sys.argv[2]
    model_dir = shared + "/data/models/stories260K-hf"
    model = LlamaForCausalLM.from_pretrained(model_dir, torch_dtype=torch.float64).eval()
    sp = spm.SentencePieceProcessor(model_file=model_dir + "/tokenizer.model")
    eos, bos = sp.eos_id(), sp.bos_id()
    max_length = model.config.max_position_embeddings
    requests = cs_requests(shared)
    for r in requests:
        ctx, cont = encode_pair(sp, r["context"], r["continuation"], eos)
        r["logprob"], r["is_greedy"], r["truncated"] = score(model, ctx, cont, max_length)
    generations = []
    for task in ["sports_understanding", "boolean_expressions", "date_understanding"]:
        with open(f"{shared}/data/eval/bbh/cot-prompts/{task}.txt") as f:
            task_prompt = "".join(f.readlines()[2:])
        examples = json.load(open(f"{shared}/data/eval/bbh/bbh/{task}.json"))["examples"]
        kept = 0
        for i, ex in enumerate(examples):
            prompt = task_prompt.strip() + "\n\nQ: " + ex["input"] + "\nA:"
            ids = [bos] + sp.encode(prompt)
            # BBH prompts are longer than stories260K's 512-token context: keep their last 512 - 48 tokens
            # (fusellm's rule, lm-eval's generate_until: room for the new tokens) and generate 48.
            new = 48
            ids = ids[-(max_length - new):]
            kept += 1
            if kept > 10:
                break
            out = model.generate(torch.tensor([ids]), max_new_tokens=new, do_sample=False, eos_token_id=eos,
                                 pad_token_id=eos)[0][len(ids):].tolist()
            generations.append({"task": task, "doc": i, "prompt_tokens": len(ids), "max_new_tokens": new, "tokens": out})
    with open(out_path, "w") as f:
        json.dump({"model": "stories260K-hf", "dtype": "float64", "max_length": max_length,
                   "torch": torch.__version__, "docs_per_task": DOCS_PER_TASK,
                   "loglikelihood": requests, "generate": generations}, f, indent=0)
        f.write("\n")
    print(f"{len(requests)} loglikelihood requests, {len(generations)} generations -> {out_path}")


if __name__ == "__main__":
    main()
