#!/usr/bin/env python3
"""Learning rates of DeepSpeed's WarmupDecayLR (deepspeed.runtime.lr_schedules) per optimizer step, as JSON: tests/train/fixtures/deepspeed_warmup_decay.json, which tests/train/test_optimizer.cpp checks
fusellm's "warmup_decay" schedule against.

  /tmp/refenv/bin/pip install deepspeed
  /tmp/refenv/bin/python tools/deepspeed-reference/warmup_decay_lr.py 2>/dev/null | grep '^{' \\
      > tests/train/fixtures/deepspeed_warmup_decay.json

The engine calls scheduler.step() after every optimizer step, so optimizer step s runs at the rate the
scheduler holds after s step() calls since construction (construction itself calls step once).
"""
import json

import deepspeed
import torch
from deepspeed.runtime.lr_schedules import WarmupDecayLR

out = {"deepspeed": deepspeed.__version__, "cases": []}
for total, warmup, max_lr, min_lr in [(100, 8, 1e-5, 0.0), (50, 1, 2e-3, 1e-4), (20, 2, 1.0, 0.0)]:
    opt = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=max_lr)
    sched = WarmupDecayLR(opt, total_num_steps=total, warmup_min_lr=min_lr, warmup_max_lr=max_lr,
                          warmup_num_steps=warmup, warmup_type="log")
    lrs = []
    for step in range(total + 1):
        lrs.append(opt.param_groups[0]["lr"])
        opt.step()
        sched.step()
    out["cases"].append({"total": total, "warmup": warmup, "max_lr": max_lr, "min_lr": min_lr, "lrs": lrs})
print(json.dumps(out))
