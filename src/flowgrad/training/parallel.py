"""Data-parallel training for :func:`~flowgrad.training.train` over MPI processes.

When a process group of more than one process is initialized (``flowgrad train`` joins one
when started by ``mpiexec``), :func:`~flowgrad.training.train` runs data-parallel:

* every process loads the data and draws the **same global batches** (the DataLoader's
  shuffle is seeded by ``--seed``); process ``r`` of ``P`` takes rows
  ``[r*B//P + min(r, B%P), ...)`` of each batch of ``B``, the sizes differing by at most one
  (uneven splits are fine: a process may even get no row of a short last batch);
* the model is wrapped in :class:`~flowgrad.nn.parallel.DistributedDataParallel`; each
  process's loss is the *sum* of its rows' cross-entropies times ``P / B``, so DDP's
  average over processes is exactly the mean over the global batch, the gradient one
  process would compute for the whole batch;
* the epoch's train loss and accuracy, and the test loss and accuracy (each process
  evaluates a contiguous slice of the test set), are summed over processes with one
  allreduce each;
* only rank 0 logs, shows progress and writes the run folder (each file atomically).

Failures: the set-up (options, data, run folder) is checked on every process and agreed on
before any training collective, so a set-up error ends every process cleanly with one
message (:func:`agree`); an error during training aborts the job (the CLI does that).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

import numpy as np

from flowgrad import distributed as dist

T = TypeVar("T")

__all__ = ["PeerFailed", "Replicas", "agreed"]


class PeerFailed(RuntimeError):
    """Another process of the data-parallel job failed its set-up (it reports why)."""


def agreed(exc: BaseException) -> bool:
    """Whether every process of the job knows about ``exc`` (so nothing waits for this one)."""
    return bool(getattr(exc, "_flowgrad_agreed", False))


class Replicas:
    """This process's place in a data-parallel run (one process: a no-op stand-in)."""

    def __init__(self) -> None:
        self.size = dist.get_world_size() if dist.is_initialized() else 1
        self.rank = dist.get_rank() if self.size > 1 else 0

    @property
    def active(self) -> bool:
        """Whether there is more than one process."""
        return self.size > 1

    @property
    def is_main(self) -> bool:
        """Rank 0: the process that logs and writes."""
        return self.rank == 0

    def agree(self, fn: Callable[[], T]) -> T:
        """Run ``fn`` on every process; if it raised anywhere, raise everywhere.

        The lowest failing rank re-raises its own exception (marked as :func:`agreed`), the
        others raise :class:`PeerFailed`, so every process stops before any collective that
        would wait for a failed one.
        """
        if not self.active:
            return fn()
        error: BaseException | None = None
        value: Any = None
        try:
            value = fn()
        except Exception as exc:  # noqa: BLE001 -- reported to every process, then re-raised
            error = exc
        failed = dist.all_gather_object(error is not None)
        if any(failed):
            first = failed.index(True)
            if self.rank == first and error is not None:
                error._flowgrad_agreed = True  # type: ignore[attr-defined]
                raise error
            raise PeerFailed(f"rank {first} failed")
        return value

    def share(self, value: T) -> T:
        """Rank 0's ``value`` on every process (small picklable objects)."""
        if not self.active:
            return value
        return dist.broadcast_object(value, src=0)

    def rows(self, n: int) -> slice:
        """This process's rows of ``n``: near-equal contiguous parts, in rank order."""
        base, extra = divmod(n, self.size)
        start = self.rank * base + min(self.rank, extra)
        return slice(start, start + base + (1 if self.rank < extra else 0))

    def take_rows(self, xb: Any, yb: Any) -> tuple[Any, Any, int]:
        """This process's rows of the global batch ``(xb, yb)``, and the global batch size."""
        import flowgrad as fg

        total = len(yb)
        mine = self.rows(total)
        return fg.tensor(xb.numpy()[mine]), fg.tensor(yb.numpy()[mine]), total

    def evaluate(self, model: Any, x: np.ndarray, y: np.ndarray) -> tuple[float, float]:
        """Mean cross-entropy and accuracy on ``(x, y)``, each process scoring its rows."""
        import flowgrad as fg
        from flowgrad.nn import functional as F
        from flowgrad.training.model import predict_logits

        mine = self.rows(len(y))
        loss_sum, correct = 0.0, 0
        if mine.stop > mine.start:
            logits = predict_logits(model, x[mine])
            # In float64, as the one-process evaluation.
            with fg.no_grad():
                loss_sum = F.cross_entropy(fg.tensor(logits.astype(np.float64)),
                                           fg.tensor(y[mine]), reduction="sum").item()
            correct = int((logits.argmax(axis=1) == y[mine]).sum())
        loss_sum, correct = self.sum(loss_sum, correct)
        return loss_sum / len(y), correct / len(y)

    def sum(self, *values: float) -> list[float]:
        """Each value summed over the processes (one allreduce, float64)."""
        arr = np.asarray(values, dtype=np.float64)
        if self.active:
            dist.all_reduce(arr, "sum")
        return arr.tolist()
