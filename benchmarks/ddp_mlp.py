"""``ddp_mlp``: data-parallel training throughput of the MLP step over 1, 2 (4, ...) processes.

One step is the ``mlp_train`` step (784 -> Linear 256 -> ReLU -> Linear 10 ->
cross-entropy, SGD lr 0.1, float32) on a **fixed global batch** split across the processes
as evenly as possible, so the arithmetic per step is the same at every process count and
only its division and the communication change. Each process gets ``cores // processes``
BLAS threads (set through OMP/OPENBLAS/MKL_NUM_THREADS before NumPy loads), so the job never
asks for more threads than there are cores.

What is measured, in every process count, after warm-up steps and a barrier:

* ``samples/s``: global batch x steps / wall time of the timed steps (ended by a barrier);
* ``allreduce ms/step``: time inside DDP's gradient allreduce per step (DDP's
  ``comm_stats``); it includes waiting for the slowest process, so it is split into
* ``pure allreduce ms``: one allreduce of the same bucket, timed alone right after a
  barrier (the transfer and reduction without load imbalance), and
* ``compute ms/step``: step time minus allreduce time (forward, backward, SGD, the copy into
  and out of the bucket).

One process runs the plain model (no DDP, no MPI calls): the baseline the scaling is
measured against. Efficiency at ``P`` processes is ``samples/s(P) / (P x samples/s(1))``.

Run: ``python -m benchmarks.ddp_mlp [--procs 1,2,4] [--batch 512] [--steps 60]``.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
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


def measure(procs: list[int], batch: int = 512, steps: int = 60, warmup: int = 5,
            bucket_cap_mb: float = 25.0, seed: int = 0, cores: int | None = None,
            timeout: float = 600) -> list[dict]:
    """Run the worker as 1, 2, ... MPI processes (one job each) and return their reports.

    Raises:
        RuntimeError: no MPI launcher, or a job failed (its stderr is in the message).
    """
    import flowgrad.distributed as dist

    cores = cores or len(os.sched_getaffinity(0))
    here = Path(__file__).resolve()
    results = []
    for n in procs:
        args = json.dumps({"batch": batch, "steps": steps, "warmup": warmup,
                           "bucket_cap_mb": bucket_cap_mb, "seed": seed})
        cmd, env = dist.mpiexec_command(n, [sys.executable, str(here), "--worker", args])
        threads = str(max(1, cores // n))
        for v in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
            env[v] = threads
        src = here.parents[1] / "src"
        env["PYTHONPATH"] = os.pathsep.join(p for p in (str(src), env.get("PYTHONPATH"))
                                            if p)
        proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=timeout)
        if proc.returncode != 0:
            raise RuntimeError(f"ddp_mlp with {n} processes failed (exit {proc.returncode}):"
                               f"\n{proc.stderr[-2000:]}")
        report = json.loads(proc.stdout.strip().splitlines()[-1])
        results.append(report)
    for r in results:
        r["speedup"] = r["samples_per_s"] / results[0]["samples_per_s"]
        r["efficiency"] = r["speedup"] * results[0]["processes"] / r["processes"]
    return results


def table(results: list[dict]) -> str:
    """The results as a Markdown table."""
    lines = ["| processes | BLAS threads each | samples/s | speed-up | efficiency | step ms | "
             "compute ms | allreduce ms (calls) | pure allreduce ms | KB per allreduce |",
             "|---|---|---|---|---|---|---|---|---|---|"]
    for r in results:
        calls = r["allreduce_calls_per_step"]
        per_call = r["bytes_per_step"] / calls / 1024 if calls else 0
        lines.append(
            f"| {r['processes']} | {','.join(map(str, r['blas_threads']))} | "
            f"{r['samples_per_s']:,.0f} | {r['speedup']:.2f}x | {100 * r['efficiency']:.0f}% | "
            f"{r['step_ms']:.2f} | {r['compute_ms']:.2f} | "
            f"{r['allreduce_ms']:.3f} ({calls:g}) | {r['pure_allreduce_ms']:.3f} | "
            f"{per_call:,.0f} |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.ddp_mlp",
                                     description=__doc__.split("\n\n")[0])
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    parser.add_argument("--procs", default=None,
                        help="process counts, comma-separated (default: 1,2 and 4 when "
                        "there are at least 4 cores)")
    parser.add_argument("--batch", type=int, default=512, help="global batch (default 512)")
    parser.add_argument("--steps", type=int, default=60, help="timed steps (default 60)")
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
    results = measure(procs, batch=args.batch, steps=args.steps)
    print(table(results))
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=2) + "\n")
    return 0


def _rank() -> int:
    import flowgrad.distributed as dist

    return dist.get_rank()


if __name__ == "__main__":
    sys.exit(main())
