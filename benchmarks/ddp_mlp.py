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

Run it with the others (``python -m benchmarks --cases ddp_mlp``), or alone with its own
options: ``python -m benchmarks.ddp_process [--procs 1,2,4] [--batch 512] [--steps 60]``
(:mod:`benchmarks.ddp_process` is also the program each MPI process runs). Without
mpi4py/mpiexec (``pip install 'flowgrad[distributed]'``) the case says so.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from benchmarks.cases import Context, case
from benchmarks.report import CaseResult, Check, Table


def measure(procs: list[int], batch: int = 512, steps: int = 60, warmup: int = 5,
            rounds: int = 3, bucket_cap_mb: float = 25.0, seed: int = 0,
            cores: int | None = None, timeout: float = 600) -> list[dict]:
    """Run the worker as 1, 2, ... MPI processes and return the median report of each.

    The first entry is one process with all ``cores`` as BLAS threads (the baseline of the
    speed-up), then each count in ``procs`` with ``cores // count`` threads each; one
    process with one thread is added as a per-core reference. The configurations run in
    ``rounds`` alternating rounds (a slow spell of a shared machine then hits all of them)
    and each one's median-throughput round is reported.

    Raises:
        RuntimeError: no MPI launcher, or a job failed (its stderr is in the message).
    """
    cores = cores or len(os.sched_getaffinity(0))
    configs = [(n, max(1, cores // n)) for n in procs]
    if cores > 1:
        configs.insert(1, (1, 1))
    runs: dict[tuple[int, int], list[dict]] = {c: [] for c in configs}
    for _ in range(max(1, rounds)):
        for n, threads in configs:
            runs[(n, threads)].append(_run_job(n, threads, batch, steps, warmup,
                                               bucket_cap_mb, seed, timeout))
    results = []
    for c in configs:
        ordered = sorted(runs[c], key=lambda r: r["samples_per_s"])
        median = dict(ordered[len(ordered) // 2])
        median["rounds_samples_per_s"] = [r["samples_per_s"] for r in runs[c]]
        results.append(median)
    base = results[0]
    for r in results:
        r["speedup"] = r["samples_per_s"] / base["samples_per_s"]
        r["efficiency"] = r["speedup"] / r["processes"]
    return results


def _run_job(n: int, threads: int, batch: int, steps: int, warmup: int,
             bucket_cap_mb: float, seed: int, timeout: float) -> dict:
    import flowgrad
    import flowgrad.distributed as dist

    root = Path(__file__).resolve().parents[1]
    args = json.dumps({"batch": batch, "steps": steps, "warmup": warmup,
                       "bucket_cap_mb": bucket_cap_mb, "seed": seed})
    cmd, env = dist.mpiexec_command(
        n, [sys.executable, "-m", "benchmarks.ddp_process", "--worker", args])
    # Set before NumPy loads in each process: its BLAS starts with this many threads.
    for v in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
        env[v] = str(threads)
    # The processes import these benchmarks and the flowgrad this process runs.
    paths = [str(root), str(Path(flowgrad.__file__).resolve().parents[1]),
             env.get("PYTHONPATH")]
    env["PYTHONPATH"] = os.pathsep.join(p for p in paths if p)
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=timeout,
                          cwd=root)
    if proc.returncode != 0:
        raise RuntimeError(f"ddp_mlp with {n} processes failed (exit {proc.returncode}):"
                           f"\n{proc.stderr[-2000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


COLUMNS = ["processes", "BLAS threads each", "samples/s", "speed-up", "efficiency",
           "step ms", "compute ms", "allreduce ms/step", "allreduces/step",
           "pure allreduce ms", "KiB per allreduce"]


def rows(results: list[dict]) -> list[list[str]]:
    """One formatted row per process count (see :data:`COLUMNS`)."""
    out = []
    for r in results:
        calls = r["allreduce_calls_per_step"]
        per_call = r["bytes_per_step"] / calls / 1024 if calls else 0
        out.append([str(r["processes"]), ",".join(map(str, r["blas_threads"])),
                    f"{r['samples_per_s']:,.0f}", f"{r['speedup']:.2f}x",
                    f"{100 * r['efficiency']:.0f}%", f"{r['step_ms']:.2f}",
                    f"{r['compute_ms']:.2f}", f"{r['allreduce_ms']:.3f}", f"{calls:g}",
                    f"{r['pure_allreduce_ms']:.3f}", f"{per_call:,.0f}"])
    return out


def table(results: list[dict]) -> str:
    """The results as a Markdown table."""
    lines = ["| " + " | ".join(COLUMNS) + " |", "|" + "---|" * len(COLUMNS)]
    lines += ["| " + " | ".join(row) + " |" for row in rows(results)]
    return "\n".join(lines)


@case
def ddp_mlp(ctx: Context) -> CaseResult:
    """The case: 1, 2 (and 4 when the thread budget allows) processes, fixed global batch."""
    import importlib.util

    import flowgrad.distributed as dist

    s = ctx.settings
    res = CaseResult(
        "ddp_mlp",
        f"the mlp_train step data-parallel over MPI processes at a fixed global batch of "
        f"{s.ddp_batch}, split across the processes; {ctx.threads} cores shared out as BLAS "
        f"threads (cores / processes each); DDP's default 25 MB bucket")
    if dist.find_mpiexec() is None or importlib.util.find_spec("mpi4py") is None:
        res.tables.append(Table("data-parallel throughput", ["processes", "samples/s"],
                                [["-", "not installed (pip install 'flowgrad[distributed]')"]]))
        return res
    procs = [1, 2] + ([4] if ctx.threads >= 4 else [])
    ctx.log(f"ddp_mlp: {procs} processes, batch {s.ddp_batch}, {s.ddp_steps} steps")
    results = measure(procs, batch=s.ddp_batch, steps=s.ddp_steps, warmup=s.ddp_warmup,
                      rounds=s.ddp_rounds, cores=ctx.threads)
    res.tables.append(Table(
        "data-parallel throughput (higher samples/s is better; speed-up against one process "
        "with all the cores; efficiency = speed-up / processes; allreduce ms/step includes "
        "waiting for the slower process, pure allreduce ms is the same transfer timed alone "
        "after a barrier)", COLUMNS,
        rows(results)))
    for r in results:
        if r["processes"] == 1:
            continue
        res.checks.append(Check(f"one allreduce per bucket per step ({r['processes']} "
                                "processes, 1 bucket)",
                                f"{r['allreduce_calls_per_step']:g}",
                                r["allreduce_calls_per_step"] == 1))
    res.data = {"results": results}
    return res
