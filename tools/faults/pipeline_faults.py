#!/usr/bin/env python3
"""Crash and fault runs of the whole pipeline (`fusellm run` on a tiny config), issue 15 item 3.

  tools/faults/pipeline_faults.py [--fusellm build/bin/fusellm] [--work /tmp/fusellm-faults] CASE...

Cases:
  kill      SIGKILL at random moments (--kills N, default 20) across every stage; after each kill the same
            command runs again; the finished run must equal an uninterrupted one byte for byte (final
            weights, results.json).
  diskfull  the output directory on a small tmpfs sized to fill up during infer, align, train (the first
            checkpoint save) and a later checkpoint save: the run must fail with a one-line error naming a
            file, leave no stage marked complete that is not, and, after the tmpfs grows, finish identically.
  readonly  the output directory on a read-only mount: a one-line error naming it, before any work.
  bitflip   one byte flipped in a chunk-dataset shard, a logit-store shard, an aligned-store shard, the
            final checkpoint's weights and its trainer state: the next reader names the file and offset.

Needs root for the tmpfs mounts (diskfull, readonly). Prints one line per event and a summary; exits 1 when a
check fails. The reference run is made once per work directory and reused.
"""
import argparse
import hashlib
import json
import os
import random
import re
import shutil
import signal
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.abspath(os.path.join(HERE, "..", ".."))
SHARED = os.path.abspath(os.path.join(REPO, "..", "shared", "data"))
failures = []


def check(ok, what):
    print(("  ok    " if ok else "  FAIL  ") + what, flush=True)
    if not ok:
        failures.append(what)


def sha(path):
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def write_config(path, out, models, corpus):
    stories = os.path.join(SHARED, "models", "stories260K-hf")
    config = {
        "models": [{"name": "target", "path": stories, "role": "target"},
                   {"name": "stories", "path": stories, "role": "source"},
                   {"name": "neox", "path": os.path.join(models, "neox-tiny"), "role": "source"}],
        "data": {"corpus": corpus, "txt_mode": "paragraph", "chunk_dir": os.path.join(out, "chunks"), "max_length": 64},
        "infer": {"store_dir": os.path.join(out, "store"), "top_k": 5, "batch_tokens": 1024, "dtype": "fp32",
                  "shard_records": 16},
        "align": {"out_dir": os.path.join(out, "aligned")},
        "fusion": {"strategy": "minCE", "divergence": "ce", "lambda": 0.9},
        "train": {"lr": 3e-3, "warmup_steps": 2, "max_steps": 12, "micro_batch": 2, "grad_accum": 1, "max_length": 64,
                  "save_every": 3, "keep_last": 2, "log_every": 3, "output_dir": os.path.join(out, "train")},
        "eval": {"tasks": "bpb", "data": {"bpb": corpus}, "limit": 6, "models": "trained",
                 "out_dir": os.path.join(out, "evals")},
    }
    with open(path, "w") as f:
        json.dump(config, f, indent=2)
    return path


class Pipeline:
    def __init__(self, fusellm, work):
        self.fusellm, self.work = fusellm, work
        os.makedirs(work, exist_ok=True)
        self.models = os.path.join(work, "models")
        self.corpus = os.path.join(work, "corpus.txt")
        if not os.path.exists(os.path.join(self.models, "neox-tiny", "config.json")):
            subprocess.run([fusellm, "init-model", "--config", os.path.join(REPO, "configs/models/gpt_neox-tiny.json"),
                            "--seed", "1", "--out", os.path.join(self.models, "neox-tiny"),
                            "--tokenizer", os.path.join(SHARED, "tokenizers/gpt-neox-20b/20B_tokenizer.json") + ":tokenizer.json",
                            "--tokenizer", os.path.join(REPO, "configs/models/endoftext-tokenizer_config.json") +
                            ":tokenizer_config.json"], check=True, stdout=subprocess.DEVNULL)
        if not os.path.exists(self.corpus):
            with open(os.path.join(SHARED, "corpus", "tinystories_sample.txt"), encoding="utf-8") as f:
                text = f.read(12000)
            with open(self.corpus, "w", encoding="utf-8") as f:
                f.write(text[:text.rfind("\n\n")] + "\n")

    def config(self, name, out=None):
        """Writes work/<name>.json for outputs under `out` (default work/<name>)."""
        return write_config(os.path.join(self.work, name + ".json"), out or os.path.join(self.work, name),
                            self.models, self.corpus)

    def start(self, config, log):
        return subprocess.Popen([self.fusellm, "run", "--config", config, "--no-progress"], stdout=log,
                                stderr=subprocess.STDOUT, start_new_session=True)

    def run(self, config, log_path):
        with open(log_path, "w") as log:
            start = time.time()
            rc = self.start(config, log).wait()
        return rc, time.time() - start, open(log_path, errors="replace").read()

    @staticmethod
    def result(out):
        """What must be identical: the final weights and the eval results."""
        with open(os.path.join(out, "train", "checkpoints", "latest")) as f:
            last = f.read().strip()
        return {"weights": sha(os.path.join(out, "train", "checkpoints", last, "model.safetensors")),
                "checkpoint": last,
                "results": json.load(open(os.path.join(out, "evals", "trained", "results.json")))["results"]}

    def reference(self):
        out = os.path.join(self.work, "reference")
        if not os.path.exists(os.path.join(out, "evals", "trained", "results.json")):
            shutil.rmtree(out, ignore_errors=True)
            rc, seconds, log = self.run(self.config("reference"), out + ".log")
            if rc != 0:
                sys.exit("reference run failed:\n" + log[-2000:])
            with open(out + ".seconds", "w") as f:
                f.write(str(seconds))
        return out, float(open(out + ".seconds").read())


def last_stage(log_text):
    stages = re.findall(r"run: == (\w+)", log_text)
    return stages[-1] if stages else "startup"


def case_kill(p, kills_wanted, seed):
    print("== kill-anywhere", flush=True)
    ref, ref_seconds = p.reference()
    want = Pipeline.result(ref)
    rng = random.Random(seed)
    kills, stages, episodes = 0, {}, 0
    while kills < kills_wanted:
        episodes += 1
        out = os.path.join(p.work, "killed-%d" % episodes)
        shutil.rmtree(out, ignore_errors=True)
        config = p.config("killed-%d" % episodes)
        attempt = 0
        while True:
            attempt += 1
            log_path = "%s.%d.log" % (out, attempt)
            with open(log_path, "w") as log:
                proc = p.start(config, log)
                # Uniform over the uninterrupted run's length: every stage is hit in proportion to its time.
                delay = rng.uniform(0.05, ref_seconds) if kills < kills_wanted else None
                try:
                    rc = proc.wait(timeout=delay)
                    killed = False
                except subprocess.TimeoutExpired:
                    os.killpg(proc.pid, signal.SIGKILL)
                    proc.wait()
                    killed = True
            text = open(log_path, errors="replace").read()
            if killed:
                kills += 1
                stage = last_stage(text)
                stages[stage] = stages.get(stage, 0) + 1
                print("  kill %2d at %5.1f s in %s (episode %d)" % (kills, delay, stage, episodes), flush=True)
                continue
            check(rc == 0, "episode %d finished after %d starts (exit %d)" % (episodes, attempt, rc))
            if rc != 0:
                print(text[-1500:])
                return
            got = Pipeline.result(out)
            check(got == want, "episode %d: final weights (%s) and eval results identical to the uninterrupted run"
                  % (episodes, got["checkpoint"]))
            break
    print("  kill-anywhere: %d kills over %d episodes; stages hit: %s" %
          (kills, episodes, ", ".join("%s %d" % kv for kv in sorted(stages.items()))), flush=True)


def mount_tmpfs(path, size_bytes, readonly=False):
    os.makedirs(path, exist_ok=True)
    opts = "size=%d" % size_bytes + (",ro" if readonly else "")
    subprocess.run(["mount", "-t", "tmpfs", "-o", opts, "tmpfs", path], check=True)


def umount(path):
    subprocess.run(["umount", "-l", path], check=False)


def du(path):
    """Bytes a tree takes on tmpfs: whole 4 KiB pages per file."""
    total = 0
    for base, _, files in os.walk(path):
        for name in files:
            total += (os.path.getsize(os.path.join(base, name)) + 4095) // 4096 * 4096
    return total


def one_line_error_naming_a_file(text, root):
    errors = [l for l in text.splitlines() if "error" in l.lower() and root in l]
    return errors[-1] if errors else None


def case_diskfull(p):
    print("== disk-full", flush=True)
    ref, _ = p.reference()
    want = Pipeline.result(ref)
    sizes = {stage: du(os.path.join(ref, d)) for stage, d in
             [("prepare", "chunks"), ("infer", "store"), ("align", "aligned"), ("train", "train"), ("eval", "evals")]}
    ckpt = du(os.path.join(ref, "train", "checkpoints", want["checkpoint"]))
    before = {"infer": sizes["prepare"], "align": sizes["prepare"] + sizes["infer"],
              "train": sizes["prepare"] + sizes["infer"] + sizes["align"]}
    # tmpfs counts whole pages; the budget leaves a few pages of slack for logs and markers.
    plans = [("infer", before["infer"] + sizes["infer"] // 2),
             ("align", before["align"] + sizes["align"] // 2),
             ("train (first checkpoint save)", before["train"] + ckpt // 2),
             ("checkpoint save (a later one)", before["train"] + int(ckpt * 1.5))]
    for stage, budget in plans:
        mnt = os.path.join(p.work, "tmpfs-" + stage.split()[0])
        umount(mnt)
        mount_tmpfs(mnt, budget)
        try:
            out = os.path.join(mnt, "run")
            config = p.config("diskfull-" + stage.split()[0], out=out)
            rc, seconds, text = p.run(config, os.path.join(p.work, "diskfull-%s.log" % stage.split()[0]))
            line = one_line_error_naming_a_file(text, mnt)
            check(rc != 0 and line is not None, "disk full, aimed at %s, hit %s: exit %d, error: %s" %
                  (stage, last_stage(text), rc, line))
            markers = sorted(os.listdir(os.path.join(out, "train", "run"))) if os.path.isdir(
                os.path.join(out, "train", "run")) else []
            print("        stages marked complete: %s" % (markers or "none"), flush=True)
            subprocess.run(["mount", "-o", "remount,size=%d" % (4 * sum(sizes.values()) + (64 << 20)), mnt], check=True)
            rc, _, text = p.run(config, os.path.join(p.work, "diskfull-%s-rerun.log" % stage.split()[0]))
            check(rc == 0, "rerun after space was freed finishes (exit %d)" % rc)
            if rc == 0:
                check(Pipeline.result(out) == want, "rerun after disk full during %s: identical to the reference" % stage)
            else:
                print(text[-1500:])
        finally:
            umount(mnt)


def case_readonly(p):
    print("== read-only output directory", flush=True)
    mnt = os.path.join(p.work, "readonly")
    umount(mnt)
    mount_tmpfs(mnt, 1 << 20, readonly=True)
    try:
        config = p.config("readonly-run", out=os.path.join(mnt, "run"))
        rc, seconds, text = p.run(config, os.path.join(p.work, "readonly.log"))
        line = one_line_error_naming_a_file(text, mnt)
        check(rc != 0 and line is not None, "read-only output: exit %d after %.1f s, error: %s" % (rc, seconds, line))
    finally:
        umount(mnt)


def flip(path, offset):
    with open(path, "r+b") as f:
        f.seek(offset)
        b = f.read(1)
        f.seek(offset)
        f.write(bytes([b[0] ^ 0x10]))


def case_bitflip(p, seed):
    """Flips a byte in place in the reference run's outputs, reruns its config (every stage then verifies
    what it finds), and restores the byte. A stage may also repair what it detected (infer and align redo a
    damaged shard): then the run must still end identical to the reference."""
    print("== bit flips", flush=True)
    ref, _ = p.reference()
    want = Pipeline.result(ref)
    config = os.path.join(p.work, "reference.json")
    rng = random.Random(seed)
    ckpt = os.path.join("train", "checkpoints", want["checkpoint"])
    targets = [("chunk dataset shard", "chunks", r"chunks-\d+\.jsonl$"),
               ("logit store shard", os.path.join("store", "neox"), r"shard-\d+\.bin$"),
               ("aligned store shard", os.path.join("aligned", "sources", "neox"), r"shard-\d+\.bin$"),
               ("checkpoint weights", ckpt, r"model\.safetensors$"),
               ("optimizer state", os.path.join(ckpt, "trainer_state"), r"optimizer\.safetensors$")]
    for what, sub, pattern in targets:
        files = sorted(os.path.join(b, n) for b, _, ns in os.walk(os.path.join(ref, sub)) for n in ns
                       if re.search(pattern, n))
        if not files:
            check(False, "%s: no file matching %s under %s" % (what, pattern, sub))
            continue
        victim = rng.choice(files)
        offset = rng.randrange(os.path.getsize(victim))
        original = open(victim, "rb").read()
        flip(victim, offset)
        try:
            rc, _, text = p.run(config, os.path.join(p.work, "bitflip-%s.log" % what.replace(" ", "-")))
        finally:
            with open(victim, "wb") as f:  # a repairing stage rewrote it identically, or it is still flipped
                f.write(original)
        rel = os.path.relpath(victim, ref)
        named = [l for l in text.splitlines() if os.path.basename(victim) in l and "checksum mismatch" in l]
        where = re.search(r"in bytes (\d+)\.\.(\d+)", named[-1]) if named else None
        located = bool(where) and int(where.group(1)) <= offset <= int(where.group(2))
        outcome = "failed (exit %d)" % rc if rc != 0 else "repaired, run identical" if Pipeline.result(ref) == want \
            else "repaired but the result differs"
        check(bool(named) and located and "differs" not in outcome,
              "%s: byte %d of %s flipped -> %s; %s" % (what, offset, rel, named[-1].strip()[:240] if named else
                                                       "not detected", outcome))
    check(Pipeline.result(ref) == want, "reference outputs intact after the bit-flip runs")


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("cases", nargs="+", choices=["kill", "diskfull", "readonly", "bitflip"])
    ap.add_argument("--fusellm", default=os.path.join(REPO, "build", "bin", "fusellm"))
    ap.add_argument("--work", default="/tmp/fusellm-faults")
    ap.add_argument("--kills", type=int, default=20)
    ap.add_argument("--seed", type=int, default=15)
    args = ap.parse_args()
    if not os.path.isdir(SHARED):
        sys.exit("pipeline_faults: %s not found (the test material beside the checkout)" % SHARED)
    p = Pipeline(os.path.abspath(args.fusellm), args.work)
    for case in args.cases:
        if case == "kill":
            case_kill(p, args.kills, args.seed)
        elif case == "diskfull":
            case_diskfull(p)
        elif case == "readonly":
            case_readonly(p)
        elif case == "bitflip":
            case_bitflip(p, args.seed)
    print("pipeline_faults: %d check(s) failed" % len(failures) if failures else "pipeline_faults: all checks passed")
    sys.exit(1 if failures else 0)


if __name__ == "__main__":
    main()
