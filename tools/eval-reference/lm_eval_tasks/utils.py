"""Row functions for the lm-eval task YAMLs over ../shared's llm-foundry files (lm-eval 0.3.x's rebuild rules,
as ../shared/docs/eval-protocol.md states them)."""


def arc_choices(doc):
    # llm-foundry pads 3-choice ARC items with a duplicate choice; the HF rows have none.
    out = []
    for c in doc["choices"]:
        if c not in out:
            out.append(c)
    return out


def boolq_text(doc):
    # llm-foundry's query is "Passage: {passage}\nQuestion: {question}?"; lm-eval 0.3.x's is
    # "{passage}\nQuestion: {question}?\nAnswer:" (the HF passage has no title to restore).
    q = doc["query"]
    cut = q.rfind("\nQuestion: ")
    return q[len("Passage: "):cut] + q[cut:] + "\nAnswer:"
