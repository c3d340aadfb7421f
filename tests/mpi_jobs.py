"""Programs that tests/test_distributed.py runs under ``mpiexec -n N``: one job per name.

``python tests/mpi_jobs.py JOB OUTDIR [ARGS...]``. Each rank writes what it saw to
``OUTDIR/JOB.rank<R>.json`` (or ``.npz``) and the test asserts on those files, so a failing
check shows real values in pytest's report instead of a bare exit code.
"""

from __future__ import annotations

import json
import os
import signal
import sys
import time
from pathlib import Path

import numpy as np

import flowgrad as fg
import flowgrad.distributed as dist
from flowgrad.nn.parallel import DistributedDataParallel as DDP


def _write(out: Path, job: str, payload: dict) -> None:
    (out / f"{job}.rank{dist.get_rank()}.json").write_text(json.dumps(payload))


class _CountingComm:
    """Wraps the group's communicator to count the Allreduce calls that reach MPI."""

    def __init__(self, comm):
        self._comm = comm
        self.allreduce_calls = 0

    def Allreduce(self, *args, **kwargs):
        self.allreduce_calls += 1
        return self._comm.Allreduce(*args, **kwargs)

    def __getattr__(self, name):
        return getattr(self._comm, name)


def _count_allreduce() -> _CountingComm:
    counter = _CountingComm(dist._comm)
    dist._comm = counter
    return counter


def make_model(seed: int, sizes=(6, 16, 16, 3)) -> fg.nn.Module:
    """A float64 MLP with the given layer sizes, initialised from ``seed``."""
    fg.manual_seed(seed)
    layers: list = []
    for k in range(len(sizes) - 1):
        layers.append(fg.nn.Linear(sizes[k], sizes[k + 1]))
        if k < len(sizes) - 2:
            layers.append(fg.nn.Tanh())
    net = fg.nn.Sequential(*layers)
    for p in net.parameters():
        p.data = p.data.astype(np.float64)
    return net


def make_data(batch: int, steps: int, features: int = 6, classes: int = 3):
    """Float64 inputs and int labels for ``steps`` batches of ``batch`` samples."""
    rng = np.random.default_rng(1234)
    x = rng.standard_normal((steps, batch, features))
    y = rng.integers(0, classes, size=(steps, batch))
    return x, y


def make_optimizer(name: str, params):
    if name == "sgd":
        return fg.optim.SGD(params, lr=0.1, momentum=0.9)
    return fg.optim.Adam(params, lr=0.01)


def train_steps(model, opt, x, y) -> list[float]:
    """Mean cross-entropy steps over the given batches; returns the losses."""
    losses = []
    for xb, yb in zip(x, y):
        opt.zero_grad()
        loss = fg.nn.functional.cross_entropy(model(fg.tensor(xb)), fg.tensor(yb))
        loss.backward()
        opt.step()
        losses.append(float(loss.item()))
    return losses


# -- jobs ----------------------------------------------------------------------------------
def job_collectives(out: Path) -> None:
    errors = {}
    try:
        dist.get_rank()
    except RuntimeError as exc:
        errors["before_init"] = str(exc)
    dist.init_process_group()
    try:
        dist.init_process_group()
    except RuntimeError as exc:
        errors["twice"] = str(exc)
    rank, size = dist.get_rank(), dist.get_world_size()
    res: dict = {"rank": rank, "size": size, "initialized": dist.is_initialized(),
                 "errors": errors}
    base = np.array([1.0, -2.0, 3.5]) * (rank + 1)
    for op in ("sum", "mean", "max", "min"):
        t = fg.tensor(base.copy())
        back = dist.all_reduce(t, op=op)
        res[op] = t.numpy().tolist()
        res[op + "_same_object"] = back is t
    ints = fg.tensor(np.arange(4) * (rank + 1))
    dist.all_reduce(ints)
    res["int_sum"] = ints.numpy().tolist()
    res["int_dtype"] = str(ints.dtype)
    # A transposed (non-contiguous) view is reduced through a copy and written back.
    m = np.arange(6.0).reshape(2, 3) * (rank + 1)
    view = fg.tensor(m).T
    dist.all_reduce(view)
    res["transposed"] = view.numpy().tolist()
    src = size - 1
    b = fg.tensor(np.full(3, float(rank)))
    dist.broadcast(b, src=src)
    res["broadcast"] = b.numpy().tolist()
    try:
        dist.all_reduce(fg.tensor([1.0]), op="prod")
    except ValueError as exc:
        errors["bad_op"] = str(exc)
    try:
        dist.broadcast(fg.tensor([1.0]), src=size)
    except ValueError as exc:
        errors["bad_src"] = str(exc)
    dist.barrier()
    dist.destroy_process_group()
    res["initialized_after_destroy"] = dist.is_initialized()
    dist.init_process_group()
    _write(out, "collectives", res)


def job_equivalence(out: Path, opt_name: str, steps: str, global_batch: str) -> None:
    dist.init_process_group()
    rank, size = dist.get_rank(), dist.get_world_size()
    steps_, batch = int(steps), int(global_batch)
    share = batch // size
    # Every rank starts from a different model: DDP's broadcast makes them rank 0's.
    ddp = DDP(make_model(seed=100 + rank))
    counter = _count_allreduce()
    opt = make_optimizer(opt_name, ddp.parameters())
    x, y = make_data(batch, steps_)
    mine = slice(rank * share, (rank + 1) * share)
    losses = train_steps(ddp, opt, x[:, mine], y[:, mine])
    np.savez(out / f"equivalence.rank{rank}.npz",
             **{name: p.numpy() for name, p in ddp.module.named_parameters()})
    _write(out, "equivalence", {"losses": losses, "buckets": ddp.bucket_sizes,
                                "allreduce_calls": counter.allreduce_calls,
                                "stats_calls": ddp.comm_stats.allreduce_calls,
                                "steps": ddp.comm_stats.steps})


def job_broadcast(out: Path) -> None:
    dist.init_process_group()
    rank = dist.get_rank()

    class WithBuffer(fg.nn.Module):
        def __init__(self):
            super().__init__()
            self.lin = fg.nn.Linear(3, 2)
            self.register_buffer("running", fg.tensor(np.full(4, float(rank))))

        def forward(self, x):
            return self.lin(x)

    fg.manual_seed(rank)
    model = WithBuffer()
    before = model.lin.weight.numpy().copy()
    ddp = DDP(model)
    _write(out, "broadcast", {"before": before.tolist(),
                              "weight": model.lin.weight.numpy().tolist(),
                              "bias": model.lin.bias.numpy().tolist(),
                              "buffer": model.running.numpy().tolist(),
                              "same_params": [p is q for p, q in
                                              zip(ddp.parameters(), model.parameters())],
                              "state_keys": list(ddp.state_dict()),
                              "module_keys": list(ddp.module.state_dict())})


def job_bucketing(out: Path) -> None:
    dist.init_process_group()
    rank = dist.get_rank()
    res = {}
    x, y = make_data(8, 2)
    for cap in (25.0, 0.002):  # 25 MB: one bucket; 2 kB: several
        ddp = DDP(make_model(seed=0, sizes=(6, 32, 32, 32, 3)), bucket_cap_mb=cap)
        counter = _count_allreduce()
        opt = make_optimizer("sgd", ddp.parameters())
        train_steps(ddp, opt, x[:, rank::2], y[:, rank::2])
        dist._comm = counter._comm
        res[str(cap)] = {"buckets": ddp.bucket_sizes,
                         "bucket_bytes": [b.numel * 8 for b in ddp._buckets],
                         "params": len(list(ddp.parameters())),
                         "allreduce_calls": counter.allreduce_calls,
                         "stats": [ddp.comm_stats.allreduce_calls, ddp.comm_stats.steps,
                                   ddp.comm_stats.allreduce_bytes]}
        del ddp, opt
    _write(out, "bucketing", res)


def job_no_sync(out: Path) -> None:
    dist.init_process_group()
    rank, size = dist.get_rank(), dist.get_world_size()
    ddp = DDP(make_model(seed=0))
    counter = _count_allreduce()
    x, y = make_data(4 * size, 2)
    loss_fn = fg.nn.functional.cross_entropy
    mine = slice(rank * 4, (rank + 1) * 4)
    with ddp.no_sync():
        loss_fn(ddp(fg.tensor(x[0, mine])), fg.tensor(y[0, mine])).backward()
    inside = counter.allreduce_calls
    local = {n: p.grad.numpy().tolist() for n, p in ddp.module.named_parameters()}
    loss_fn(ddp(fg.tensor(x[1, mine])), fg.tensor(y[1, mine])).backward()
    grads = {n: p.grad.numpy().tolist() for n, p in ddp.module.named_parameters()}
    _write(out, "no_sync", {"calls_inside": inside, "calls_after": counter.allreduce_calls,
                            "local": local, "grads": grads})


def job_unused(out: Path) -> None:
    dist.init_process_group()
    rank = dist.get_rank()

    class TwoHeads(fg.nn.Module):
        def __init__(self):
            super().__init__()
            self.body = fg.nn.Linear(3, 4)
            self.head_a = fg.nn.Linear(4, 1)
            self.head_b = fg.nn.Linear(4, 1)

        def forward(self, x, use_b=False):
            h = fg.tanh(self.body(x))
            return self.head_b(h) if use_b else self.head_a(h)

    fg.manual_seed(0)
    x = fg.tensor(np.random.default_rng(rank).standard_normal((5, 3)).astype(np.float32))
    res = {}
    ddp = DDP(TwoHeads(), find_unused_parameters=True)
    # Rank 1 uses head_b, the others head_a: each head is used by some rank only.
    ddp(x, use_b=(rank == 1)).sum().backward()
    res["grads"] = {n: None if p.grad is None else p.grad.numpy().tolist()
                    for n, p in ddp.module.named_parameters()}
    ddp.module.zero_grad()
    ddp(x).sum().backward()  # nobody uses head_b: its grad stays None
    res["head_b_grad_when_unused_everywhere"] = ddp.module.head_b.weight.grad is None
    strict = DDP(TwoHeads())
    strict(x).sum().backward()
    try:
        strict(x)
    except RuntimeError as exc:
        res["strict_error"] = str(exc)
    _write(out, "unused", res)


def job_mismatch(out: Path) -> None:
    dist.init_process_group()
    rank = dist.get_rank()
    width = 5 if rank == 1 else 4
    DDP(fg.nn.Sequential(fg.nn.Linear(3, width), fg.nn.Linear(width, 2)))


def job_raise(out: Path) -> None:
    dist.init_process_group()
    if dist.get_rank() == 1:
        time.sleep(0.2)  # the others are already waiting in the collective below
        raise ValueError("boom on rank 1")
    dist.all_reduce(fg.tensor([1.0]))  # never completes: rank 1 is gone
    dist.barrier()


def job_kill(out: Path) -> None:
    dist.init_process_group()
    if dist.get_rank() == 1:
        time.sleep(0.2)
        os.kill(os.getpid(), signal.SIGKILL)
    dist.all_reduce(fg.tensor([1.0]))
    dist.barrier()


def job_cli_kill(out: Path, *argv: str) -> None:
    """``flowgrad train ARGV`` on every rank; rank 1 is killed once epoch 1 is on disk."""
    import threading

    from flowgrad.cli import main

    if dist.launcher_rank() == 1:
        def kill_after_first_epoch() -> None:
            while not (out / "run" / "metrics.csv").exists():
                time.sleep(0.01)
            os.kill(os.getpid(), signal.SIGKILL)

        threading.Thread(target=kill_after_first_epoch, daemon=True).start()
    sys.exit(main(list(argv)))


JOBS = {name[4:]: fn for name, fn in globals().items() if name.startswith("job_")}

if __name__ == "__main__":
    job, outdir, *rest = sys.argv[1:]
    JOBS[job](Path(outdir), *rest)
