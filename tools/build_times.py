#!/usr/bin/env python3
"""Where a build spent its time: sums the per-step wall times of a Ninja log (.ninja_log) by kind of step.

Usage: tools/build_times.py [BUILD_DIR=build] [--top N]
Kinds: the precompiled header, each stage library's objects, the CLI's objects, each test executable's
objects, the benchmarks' objects, and links. On a -j2 build the wall time is about half the sum.
"""
import collections
import os
import sys


def kind(output):
    if output.endswith(".gch") or "cmake_pch" in output:
        return "precompiled header"
    if not output.endswith(".o"):
        return "link"
    if output.startswith("tests/"):
        return "tests: " + output.split("/")[2].removesuffix(".dir")
    if output.startswith("bench/"):
        return "bench"
    if "fusellm_cli.dir" in output:
        return "cli objects"
    for part in output.split("/"):
        if part.startswith("fusellm_") and part.endswith(".dir"):
            return "library: " + part[len("fusellm_"):-4]
    return "other"


def main():
    args = [a for a in sys.argv[1:] if not a.startswith("--")]
    top = int(sys.argv[sys.argv.index("--top") + 1]) if "--top" in sys.argv else 15
    build = args[0] if args else "build"
    steps = {}
    with open(os.path.join(build, ".ninja_log")) as f:
        for line in f:
            if line.startswith("#"):
                continue
            start, end, _, output, _ = line.rstrip("\n").split("\t")
            steps[output] = (int(end) - int(start)) / 1000.0  # the last build of each output counts
    by_kind = collections.Counter()
    counts = collections.Counter()
    for output, seconds in steps.items():
        by_kind[kind(output)] += seconds
        counts[kind(output)] += 1
    total = sum(by_kind.values())
    print(f"{len(steps)} steps, {total:.0f} s summed (about {total / 2:.0f} s wall on 2 cores)")
    for k, s in by_kind.most_common():
        print(f"  {s:7.1f} s {100 * s / total:5.1f} %  {counts[k]:3d} steps  {k}")
    print(f"slowest {top} steps:")
    for output, s in sorted(steps.items(), key=lambda kv: -kv[1])[:top]:
        print(f"  {s:7.1f} s  {output}")


if __name__ == "__main__":
    main()
