#!/usr/bin/python3
"""torch.distributed gloo all_reduce timing: the baseline dtrain's all-reduce must beat.

One process per peer:

    allreduce.py --rank R --world-size N --master-addr A --master-port P \
        --mb 64 --iters 5 --warmup 1 [--ifname eth0] [--json]

or N local processes on loopback:

    allreduce.py --launch 4 --mb 64 --json

Each peer all-reduces (sum) a float32 tensor of --mb MiB with the gloo backend
(init_process_group over a tcp:// init method). torch 1.13's ProcessGroupGloo
calls gloo::allreduce with no algorithm set, which runs gloo's ring: a
reduce-scatter then an all-gather around the ring, pipelined in segments, so
each peer sends and receives 2(N-1)/N of the tensor: the bandwidth-optimal
amount. The bound for a link of B bit/s is therefore 2(N-1)/N * S*8 / B.

Timing: before each iteration all peers meet at a barrier; each times its
all_reduce; the iteration's time is the maximum over peers (gathered with a
second, untimed all_reduce). Rank 0 prints the median and minimum of the timed
iterations (--json: one JSON object on stdout).

--ifname sets GLOO_SOCKET_IFNAME so gloo binds that interface (a network
namespace's veth); otherwise gloo resolves the hostname.
"""

import argparse
import json
import os
import socket
import statistics
import subprocess
import sys
import time


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--rank", type=int, default=0)
    p.add_argument("--world-size", type=int, default=1)
    p.add_argument("--master-addr", default="127.0.0.1")
    p.add_argument("--master-port", type=int, default=29500)
    p.add_argument("--mb", type=float, default=64.0, help="tensor size in MiB (float32)")
    p.add_argument("--iters", type=int, default=5, help="timed iterations")
    p.add_argument("--warmup", type=int, default=1, help="untimed iterations first")
    p.add_argument("--threads", type=int, default=1, help="torch.set_num_threads")
    p.add_argument("--ifname", default=None, help="GLOO_SOCKET_IFNAME for this peer")
    p.add_argument("--timeout", type=float, default=600.0, help="seconds for init and each collective")
    p.add_argument("--json", action="store_true", help="rank 0 prints one JSON object")
    p.add_argument("--launch", type=int, default=0, metavar="N",
                   help="start N local peers on loopback and relay rank 0's output")
    return p.parse_args(argv)


def run_peer(args):
    if args.ifname:
        os.environ["GLOO_SOCKET_IFNAME"] = args.ifname
    import datetime

    import torch
    import torch.distributed as dist

    torch.set_num_threads(args.threads)
    dist.init_process_group(
        backend="gloo",
        init_method="tcp://%s:%d" % (args.master_addr, args.master_port),
        rank=args.rank,
        world_size=args.world_size,
        timeout=datetime.timedelta(seconds=args.timeout),
    )
    n = int(args.mb * (1 << 20)) // 4
    x = torch.ones(n, dtype=torch.float32)
    took = torch.zeros(1, dtype=torch.float64)
    times = []
    for i in range(args.warmup + args.iters):
        dist.barrier()
        start = time.perf_counter()
        dist.all_reduce(x, op=dist.ReduceOp.SUM)
        took[0] = time.perf_counter() - start
        dist.all_reduce(took, op=dist.ReduceOp.MAX)
        if i >= args.warmup:
            times.append(float(took[0]))
    # Each element went through world_size sums of 1.0 per iteration.
    want = float(args.world_size) ** (args.warmup + args.iters)
    ok = bool(torch.all(x == want)) if want < 2 ** 24 else True
    dist.destroy_process_group()
    if args.rank != 0:
        return 0 if ok else 1
    result = {
        "backend": "gloo",
        "algorithm": "ring",
        "torch": torch.__version__,
        "world_size": args.world_size,
        "bytes": n * 4,
        "iters": args.iters,
        "warmup": args.warmup,
        "threads": args.threads,
        "median_s": statistics.median(times),
        "min_s": min(times),
        "times_s": times,
        "correct": ok,
    }
    if args.json:
        print(json.dumps(result), flush=True)
    else:
        print("gloo all_reduce: %d peers, %d bytes: median %.4f s, min %.4f s over %d iterations%s" % (
            args.world_size, n * 4, result["median_s"], result["min_s"], args.iters,
            "" if ok else " (WRONG RESULT)"), flush=True)
    return 0 if ok else 1


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def launch(args, argv):
    """Runs args.launch peers of this script on loopback; returns rank 0's exit status."""
    port = free_port()
    base = [a for a in argv]
    # Drop --launch N (or --launch=N) from the forwarded arguments.
    fwd, skip = [], False
    for a in base:
        if skip:
            skip = False
            continue
        if a == "--launch":
            skip = True
            continue
        if a.startswith("--launch="):
            continue
        fwd.append(a)
    procs = []
    for rank in range(args.launch):
        cmd = [sys.executable, os.path.abspath(__file__), *fwd,
               "--rank", str(rank), "--world-size", str(args.launch),
               "--master-addr", "127.0.0.1", "--master-port", str(port)]
        procs.append(subprocess.Popen(cmd, stdout=None if rank == 0 else subprocess.DEVNULL))
    codes = [p.wait() for p in procs]
    return next((c for c in codes if c != 0), 0)


def main():
    args = parse_args()
    if args.launch:
        return launch(args, sys.argv[1:])
    return run_peer(args)


if __name__ == "__main__":
    sys.exit(main())
