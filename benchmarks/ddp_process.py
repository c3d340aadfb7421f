"""One process of the ``ddp_mlp`` benchmark job (see :mod:`benchmarks.ddp_mlp`).

``mpiexec -n P python -m benchmarks.ddp_process --worker JSON`` is what the case starts;
without ``--worker`` this module runs the whole measurement with its own options:
``python -m benchmarks.ddp_process [--procs 1,2,4] [--batch 512] [--steps 60]``. It is a
module of its own (importing nothing of the harness) so that each MPI process stays light.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

IN, HIDDEN, CLASSES = 784, 256, 10
LR = 0.1


def _even_split(total: int, parts: int, index: int) -> slice:
    """Rows of part ``index`` when ``total`` rows are split into ``parts`` near-equal parts."""
    base, extra = divmod(total, parts)
    start = index * base + min(index, extra)
    return slice(start, start + base + (1 if index < extra else 0))


def worker(batch: int, steps: int, warmup: int, bucket_cap_mb: float, seed: int) -> dict:
    """One process of the job: time the steps and report (rank 0 returns everything)."""
    import time

    import numpy as np

    import flowgrad as fg
    import flowgrad.distributed as dist
    from flowgrad.nn import functional as F

    dist.init_process_group()
    rank, world = dist.get_rank(), dist.get_world_size()
    rng = np.random.default_rng(seed)
    pool = 4
    x = rng.random((pool, batch, IN), dtype=np.float32)
    y = rng.integers(0, CLASSES, (pool, batch), dtype=np.int64)
    mine = _even_split(batch, world, rank)
    xs = [fg.tensor(x[k, mine]) for k in range(pool)]
    ys = [fg.tensor(y[k, mine]) for k in range(pool)]
    fg.manual_seed(seed)
    model = fg.nn.Sequential(fg.nn.Linear(IN, HIDDEN), fg.nn.ReLU(), fg.nn.Linear(HIDDEN, CLASSES))
    ddp = None
    if world > 1:
        ddp = fg.nn.parallel.DistributedDataParallel(model, bucket_cap_mb=bucket_cap_mb)
    net = ddp if ddp is not None else model
    opt = fg.optim.SGD(net.parameters(), lr=LR)
    # The sum over this process's rows, scaled so that DDP's average over processes is the
    # mean over the whole global batch (uneven shares included).
    scale = world / batch

    def step(k: int) -> None:
        opt.zero_grad()
        loss = F.cross_entropy(net(xs[k % pool]), ys[k % pool], reduction="sum") * scale
        loss.backward()
        opt.step()

    for k in range(warmup):
        step(k)
    dist.barrier()
    if ddp is not None:
        ddp.comm_stats.reset()
    t0 = time.perf_counter()
    for k in range(steps):
        step(k)
    dist.barrier()
    wall = time.perf_counter() - t0
    allreduce = ddp.comm_stats.allreduce_seconds if ddp is not None else 0.0
    calls = ddp.comm_stats.allreduce_calls if ddp is not None else 0
    nbytes = ddp.comm_stats.allreduce_bytes // max(steps, 1) if ddp is not None else 0
    # The same transfer alone: a barrier first, so no process waits for a slower one.
    numel = sum(p.data.size for p in model.parameters())
    flat = np.zeros(numel, dtype=np.float32)
    pure = []
    for _ in range(20):
        dist.barrier()
        t = time.perf_counter()
        dist.all_reduce(flat)
        pure.append(time.perf_counter() - t)
    mine_report = {"rank": rank, "rows": mine.stop - mine.start,
                   "compute_ms": 1e3 * (wall - allreduce) / steps,
                   "allreduce_ms": 1e3 * allreduce / steps}
    everyone = dist.all_gather_object(mine_report)
    from threadpoolctl import threadpool_info

    threads = sorted({int(i.get("num_threads", 0)) for i in threadpool_info()})
    return {"processes": world, "batch": batch, "steps": steps,
            "samples_per_s": batch * steps / wall, "step_ms": 1e3 * wall / steps,
            "allreduce_ms": 1e3 * allreduce / steps,
            "allreduce_calls_per_step": calls / steps, "bytes_per_step": nbytes,
            "pure_allreduce_ms": 1e3 * float(np.median(pure)) if world > 1 else 0.0,
            "compute_ms": 1e3 * (wall - allreduce) / steps,
            "blas_threads": threads, "ranks": everyone}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.ddp_process",
                                     description="data-parallel throughput of the MLP step")
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    parser.add_argument("--procs", default=None,
                        help="process counts, comma-separated (default: 1,2 and 4 when "
                        "there are at least 4 cores)")
    parser.add_argument("--batch", type=int, default=512, help="global batch (default 512)")
    parser.add_argument("--steps", type=int, default=60, help="timed steps (default 60)")
    parser.add_argument("--rounds", type=int, default=3,
                        help="alternating rounds; the median is reported (default 3)")
    parser.add_argument("--json", default=None, help="also write the reports to this file")
    args = parser.parse_args(argv)
    if args.worker:
        report = worker(**json.loads(args.worker))
        if report["ranks"] and report["ranks"][0]["rank"] == 0 and _rank() == 0:
            print(json.dumps(report))
        return 0
    cores = len(os.sched_getaffinity(0))
    procs = ([int(p) for p in args.procs.split(",")] if args.procs
             else [1, 2] + ([4] if cores >= 4 else []))
    from benchmarks.ddp_mlp import measure, table

    results = measure(procs, batch=args.batch, steps=args.steps, rounds=args.rounds)
    print(table(results))
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=2) + "\n")
    return 0


def _rank() -> int:
    import flowgrad.distributed as dist

    return dist.get_rank()


if __name__ == "__main__":
    sys.exit(main())
