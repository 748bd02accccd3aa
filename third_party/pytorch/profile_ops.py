#!/usr/bin/env python3
"""Sum a chrome://tracing profile of one training step by kind of op.

Reads a trace written by torch.autograd.profiler (PyTorch eager:
bench_train.py --profile FILE) or by libdtorch (DTRAIN_PROFILE=FILE
bin/dtrain bench train ...), takes every op's self time (its duration less
the ops it called, per thread), groups the ops by kind and prints one row per
kind: milliseconds and share of the step. "wall" is the trace's span on its
busiest thread; what no op covers is printed as "outside ops" (in dtrain:
its own kernels, the fused LM head and the embedding scatter).

    python3 profile_ops.py TRACE.json [--markdown]
"""
import argparse
import collections
import json
import re

KINDS = [
    ("matmul (GEMM)", r"^aten::(addmm_?|mm|bmm|baddbmm_?|matmul|linear|addmv|dot|mv)$"),
    ("softmax / log-softmax", r"softmax"),
    ("loss (NLL)", r"nll_loss|cross_entropy"),
    ("LayerNorm", r"layer_norm"),
    ("GELU", r"gelu|tanh"),
    ("embedding", r"embedding|index_select|index_add|index_put|scatter"),
    ("casts and copies", r"^aten::(to|_to_copy|copy_|contiguous|clone|empty_like|empty|empty_strided|zeros|zeros_like|zero_|fill_|resize_)$"),
    ("other elementwise", r"^aten::"),
    ("autograd nodes", r"Backward|backward|AccumulateGrad"),
]


def self_times(events):
    """Self time per op name (µs) and the wall span (µs) of the busiest thread."""
    by_tid = collections.defaultdict(list)
    for e in events:
        if e.get("ph") == "X" and "dur" in e:
            by_tid[(e.get("pid"), e.get("tid"))].append(e)
    total = collections.Counter()
    wall = 0.0
    for evs in by_tid.values():
        evs.sort(key=lambda e: (float(e["ts"]), -float(e["dur"])))
        span = max(float(e["ts"]) + float(e["dur"]) for e in evs) - min(float(e["ts"]) for e in evs)
        wall = max(wall, span)
        stack = []  # [end, name, child time]
        for e in evs:
            ts, dur = float(e["ts"]), float(e["dur"])
            while stack and stack[-1][0] <= ts:
                end, name, child, d = stack.pop()
                total[name] += d - child
            if stack:
                stack[-1][2] += dur
            stack.append([ts + dur, e["name"], 0.0, dur])
        while stack:
            end, name, child, d = stack.pop()
            total[name] += d - child
    return total, wall


def kind_of(name):
    for kind, pat in KINDS:
        if re.search(pat, name):
            return kind
    return "other"


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("trace")
    ap.add_argument("--markdown", action="store_true")
    a = ap.parse_args()
    with open(a.trace) as f:
        data = json.load(f)
    events = data["traceEvents"] if isinstance(data, dict) else data
    total, wall = self_times(events)
    kinds = collections.Counter()
    for name, us in total.items():
        kinds[kind_of(name)] += us
    covered = sum(kinds.values())
    rows = kinds.most_common()
    if wall > covered:
        rows.append(("outside ops", wall - covered))
    for kind, us in rows:
        if a.markdown:
            print(f"| {kind} | {us / 1e3:.0f} ms | {100 * us / wall:.0f}% |")
        else:
            print(f"{kind:24s} {us / 1e3:9.1f} ms {100 * us / wall:5.1f}%")
    print(f"{'wall':24s} {wall / 1e3:9.1f} ms")


if __name__ == "__main__":
    main()
