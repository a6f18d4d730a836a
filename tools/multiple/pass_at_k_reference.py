#!/usr/bin/env python3
"""Writes tests/eval/fixtures/pass_at_k.json: pass@k on a table of (n, c, k) by bigcode-evaluation-harness's
estimator (the formula in ../shared/docs/eval-protocol.md §4.5, evaluated with NumPy as the harness does) and,
as a second reference, the exact 1 - C(n-c, k)/C(n, k) with Python's integer math.comb.
Run in a throw-away venv with numpy:  python3 tools/multiple/pass_at_k_reference.py"""
import json
import math
import pathlib

import numpy as np


def harness_estimator(n: int, c: int, k: int) -> float:
    if n - c < k:
        return 1.0
    return float(1.0 - np.prod(1.0 - k / np.arange(n - c + 1, n + 1)))


rows = []
for n in (1, 2, 5, 10, 20, 50, 100, 200):
    for c in sorted({0, 1, 2, n // 3, n // 2, n - 1, n}):
        if not 0 <= c <= n:
            continue
        for k in (1, 2, 5, 10, 100):
            if k > n:
                continue
            exact = 1.0 - math.comb(n - c, k) / math.comb(n, k)
            rows.append({"n": n, "c": c, "k": k, "harness": harness_estimator(n, c, k), "exact": exact})
out = pathlib.Path(__file__).resolve().parents[2] / "tests" / "eval" / "fixtures" / "pass_at_k.json"
body = ",\n".join(json.dumps(r) for r in rows)
out.write_text(f'{{"numpy": "{np.__version__}", "rows": [\n{body}\n]}}\n')
print(f"{out}: {len(rows)} rows")
