"""Data-parallel training: :class:`DistributedDataParallel`, as PyTorch's DDP, over MPI.

Every process holds a full replica of the model and runs forward and backward on its own
share of the batch; after backward the gradients are averaged over the processes, so every
replica takes the same optimizer step and the replicas stay identical.

How the averaging works (PyTorch's Reducer, simplified to blocking MPI calls):

* At wrap time the parameters that require grad are packed, in reverse registration order
  (the order backward tends to produce their gradients), into **buckets** of at most
  ``bucket_cap_mb`` megabytes, one dtype per bucket.
* Each parameter carries a post-accumulate-grad hook. When backward has accumulated the
  gradient of every parameter of a bucket, the bucket's gradients are copied into one flat
  array, which is summed over the processes with **one** ``MPI_Allreduce`` and divided by
  the world size; each parameter's ``.grad`` then becomes its slice of that array.
  Buckets are reduced strictly in order, so every process issues the same sequence of
  collectives.
* ``no_sync()`` skips all of this for the forward/backward passes inside it, so gradients
  accumulate locally; the first synchronised backward after it averages the sum.
"""

from __future__ import annotations

import contextlib
import time
import weakref
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from flowgrad import distributed as dist
from flowgrad import graph
from flowgrad._backend import xp
from flowgrad.nn.module import Module, Parameter
from flowgrad.tensor import Tensor

__all__ = ["DistributedDataParallel", "CommStats"]


@dataclass
class CommStats:
    """What gradient averaging has cost so far (reset it with :meth:`reset`).

    Attributes:
        allreduce_calls: ``MPI_Allreduce`` calls made for gradients.
        allreduce_seconds: wall time spent inside them (includes waiting for slower ranks).
        allreduce_bytes: bytes of gradient sent into them (per process).
        steps: synchronised backward passes completed.
    """

    allreduce_calls: int = 0
    allreduce_seconds: float = 0.0
    allreduce_bytes: int = 0
    steps: int = 0

    def reset(self) -> None:
        self.allreduce_calls, self.allreduce_seconds = 0, 0.0
        self.allreduce_bytes, self.steps = 0, 0


class _Bucket:
    __slots__ = ("params", "offsets", "numel", "dtype", "pending", "indices")

    def __init__(self, indices: list[int], params: list[Parameter]):
        self.indices = indices
        self.params = params
        self.dtype = params[0].dtype
        self.offsets = []
        total = 0
        for p in params:
            self.offsets.append(total)
            total += p.data.size
        self.numel = total
        self.pending = len(params)


def _flatten_outputs(out: Any) -> list[Tensor]:
    """The Tensors inside a forward's result (a Tensor, or nested tuples/lists/dicts)."""
    found, stack = [], [out]
    while stack:
        item = stack.pop()
        if isinstance(item, Tensor):
            found.append(item)
        elif isinstance(item, (tuple, list)):
            stack.extend(item)
        elif isinstance(item, dict):
            stack.extend(item.values())
    return found


class DistributedDataParallel(Module):
    """Wrap ``module`` so that backward averages its gradients over all processes.

    Call :func:`flowgrad.distributed.init_process_group` first. Then use the wrapper as the
    model (``out = ddp(x)``, ``loss.backward()``), give ``ddp.parameters()`` (the same
    Parameters as ``module.parameters()``) to the optimizer, and feed each process its
    own share of every batch (e.g. with :class:`flowgrad.data.DistributedSampler`). With
    a mean loss on equal shares, each step equals a one-process step on the whole batch.

    At wrap time every process checks that all processes hold the same parameter and
    buffer names, shapes and dtypes, and then rank 0's values are broadcast, so all
    replicas start identical. With ``broadcast_buffers`` rank 0's buffers are broadcast
    again before every forward, as in PyTorch.

    Unused parameters: by default (as in PyTorch) every parameter that requires grad must
    receive a gradient in every synchronised backward; a bucket that never completes is
    reported by the next forward as a RuntimeError naming the parameters, instead of a
    hang. With ``find_unused_parameters=True`` each forward walks the graph from its
    outputs and counts parameters it cannot reach as ready with a zero gradient
    (contributing zeros to the average); a parameter no process used keeps ``.grad``
    as it was (None after ``zero_grad()``), as in PyTorch. This costs one graph walk per
    forward and one extra small allreduce per step.

    ``state_dict()`` keys carry the ``module.`` prefix, as in PyTorch; save
    ``ddp.module.state_dict()`` to get a checkpoint that loads into the plain model.
    ``load_state_dict`` accepts either form.

    Args:
        module: the model to replicate.
        bucket_cap_mb: the largest bucket, in megabytes (PyTorch's default 25). A
            parameter larger than this gets a bucket of its own.
        find_unused_parameters: see above.
        broadcast_buffers: broadcast rank 0's buffers at every forward.

    Attributes:
        module: the wrapped model.
        comm_stats: a :class:`CommStats` of the gradient allreduces.

    Raises:
        RuntimeError: no process group, or the processes' models differ (the message names
            the first differing entry, its shapes/dtypes and the ranks).

    Example (under ``mpiexec -n 2``)::

        dist.init_process_group()
        model = fg.nn.parallel.DistributedDataParallel(fg.nn.Linear(4, 2))
        opt = fg.optim.SGD(model.parameters(), lr=0.1)
        loss = model(x_shard).square().mean()
        loss.backward()              # gradients now averaged over both processes
        opt.step()
    """

    def __init__(self, module: Module, bucket_cap_mb: float = 25.0,
                 find_unused_parameters: bool = False, broadcast_buffers: bool = True):
        super().__init__()
        if not isinstance(module, Module):
            raise TypeError(f"DistributedDataParallel wraps a Module, got "
                            f"{type(module).__name__}")
        if not bucket_cap_mb > 0:
            raise ValueError(f"bucket_cap_mb must be positive, got {bucket_cap_mb!r}")
        if not dist.is_initialized():
            raise RuntimeError("DistributedDataParallel needs a process group: call "
                               "flowgrad.distributed.init_process_group() first")
        self.module = module
        object.__setattr__(self, "bucket_cap_mb", float(bucket_cap_mb))
        object.__setattr__(self, "find_unused_parameters", bool(find_unused_parameters))
        object.__setattr__(self, "broadcast_buffers", bool(broadcast_buffers))
        object.__setattr__(self, "require_backward_grad_sync", True)
        object.__setattr__(self, "comm_stats", CommStats())
        self._check_same_model()
        self._sync_module_states()
        named = [(n, p) for n, p in module.named_parameters() if p.requires_grad]
        object.__setattr__(self, "_names", [n for n, _ in named])
        object.__setattr__(self, "_params", [p for _, p in named])
        object.__setattr__(self, "_buckets", self._assign_buckets())
        where: dict[int, tuple[int, int]] = {}
        for b, bucket in enumerate(self._buckets):
            for k, i in enumerate(bucket.indices):
                where[i] = (b, k)
        object.__setattr__(self, "_where", where)
        object.__setattr__(self, "_ready", [False] * len(self._params))
        object.__setattr__(self, "_used", [True] * len(self._params))
        object.__setattr__(self, "_unused_grads", {})
        object.__setattr__(self, "_next_bucket", 0)
        object.__setattr__(self, "_armed", False)
        object.__setattr__(self, "_started", False)
        # The hooks hold the wrapper weakly, and are removed when it goes, so re-wrapping a
        # model never averages its gradients twice.
        ref = weakref.ref(self)
        handles = [p.register_post_accumulate_grad_hook(_make_hook(ref, i))
                   for i, p in enumerate(self._params)]
        object.__setattr__(self, "_finalizer",
                           weakref.finalize(self, _remove_handles, handles))

    # -- set-up -------------------------------------------------------------------------
    def _check_same_model(self) -> None:
        entries = [(f"parameter {n!r}", tuple(p.shape), str(p.dtype))
                   for n, p in self.module.named_parameters()]
        entries += [(f"buffer {n!r}", tuple(b.shape), str(b.dtype))
                    for n, b in self.module.named_buffers()]
        everyone = dist.all_gather_object(entries)
        reference = everyone[0]
        for rank, theirs in enumerate(everyone[1:], start=1):
            if theirs == reference:
                continue
            for k in range(max(len(reference), len(theirs))):
                ours = reference[k] if k < len(reference) else None
                other = theirs[k] if k < len(theirs) else None
                if ours != other:
                    break
            raise RuntimeError(
                "DistributedDataParallel needs the same model on every process, but rank 0 "
                f"and rank {rank} differ at entry {k}: rank 0 has {_describe(ours)}, "
                f"rank {rank} has {_describe(other)} ({len(reference)} vs {len(theirs)} "
                "parameters and buffers in all)")

    def _sync_module_states(self) -> None:
        if dist.get_world_size() == 1:
            return
        for p in self.module.parameters():
            dist.broadcast(p, src=0)
        for b in self.module.buffers():
            dist.broadcast(b, src=0)

    def _assign_buckets(self) -> list[_Bucket]:
        cap = self.bucket_cap_mb * 1024 * 1024
        buckets: list[_Bucket] = []
        open_by_dtype: dict[Any, tuple[list[int], int]] = {}
        # Reverse order: backward produces the last layers' gradients first (PyTorch's order).
        for i in reversed(range(len(self._params))):
            p = self._params[i]
            nbytes = p.data.nbytes
            indices, size = open_by_dtype.get(p.dtype, ([], 0))
            if indices and size + nbytes > cap:
                buckets.append(_Bucket(indices, [self._params[j] for j in indices]))
                indices, size = [], 0
            indices.append(i)
            open_by_dtype[p.dtype] = (indices, size + nbytes)
        for indices, _ in open_by_dtype.values():
            if indices:
                buckets.append(_Bucket(indices, [self._params[j] for j in indices]))
        return buckets

    @property
    def bucket_sizes(self) -> list[int]:
        """Number of parameters in each bucket, in reduction order."""
        return [len(b.params) for b in self._buckets]

    # -- forward ------------------------------------------------------------------------
    def forward(self, *args: Any, **kwargs: Any) -> Any:
        """Run the wrapped module; arm gradient averaging for the backward that follows."""
        self._check_previous_step()
        if self.broadcast_buffers and dist.get_world_size() > 1:
            for b in self.module.buffers():
                dist.broadcast(b, src=0)
        out = self.module(*args, **kwargs)
        armed = graph.is_grad_enabled() and self.require_backward_grad_sync
        self._reset(armed)
        if armed and self.find_unused_parameters:
            self._mark_unused(out)
        return out

    def _check_previous_step(self) -> None:
        if not (self._armed and self._started):
            return
        missing = [self._names[i] for i, r in enumerate(self._ready) if not r]
        self._reset(False)
        raise RuntimeError(
            "Expected to have finished reduction in the prior iteration before starting a new "
            "one: the last backward gave no gradient to these parameters, so their buckets "
            f"were never averaged: {', '.join(missing)}. If parameters may go unused in a "
            "forward, wrap with DistributedDataParallel(..., find_unused_parameters=True); "
            "make sure every output takes part in the loss")

    def _reset(self, armed: bool) -> None:
        object.__setattr__(self, "_armed", armed)
        object.__setattr__(self, "_started", False)
        object.__setattr__(self, "_next_bucket", 0)
        n = len(self._params)
        self._ready[:] = [False] * n
        self._used[:] = [True] * n
        self._unused_grads.clear()
        for bucket in self._buckets:
            bucket.pending = len(bucket.params)

    def _mark_unused(self, out: Any) -> None:
        reachable: set[int] = set()
        outputs = _flatten_outputs(out)
        for t in outputs:
            reachable.add(id(t))
        for node in graph._collect([t.grad_fn for t in outputs if t.grad_fn is not None]):
            for inp in node.inputs:
                if isinstance(inp, Tensor) and inp.grad_fn is None:
                    reachable.add(id(inp))
        for i, p in enumerate(self._params):
            if id(p) not in reachable:
                self._used[i] = False
                self._unused_grads[i] = p.grad
                self._mark_ready(i)

    # -- backward -----------------------------------------------------------------------
    def _on_grad(self, i: int) -> None:
        if not self._armed or not self._used[i]:
            return
        if self._ready[i]:
            raise RuntimeError(
                f"parameter {self._names[i]!r} received a gradient twice in one synchronised "
                "step (two backward passes after one forward?); accumulate under no_sync()")
        object.__setattr__(self, "_started", True)
        self._mark_ready(i)
        self._reduce_ready_buckets()

    def _mark_ready(self, i: int) -> None:
        self._ready[i] = True
        b, _ = self._where[i]
        self._buckets[b].pending -= 1

    def _reduce_ready_buckets(self) -> None:
        buckets = self._buckets
        while self._next_bucket < len(buckets) and buckets[self._next_bucket].pending == 0:
            self._reduce(buckets[self._next_bucket])
            object.__setattr__(self, "_next_bucket", self._next_bucket + 1)
        if self._next_bucket == len(buckets):
            self._finish()

    def _reduce(self, bucket: _Bucket) -> None:
        world = dist.get_world_size()
        flat = xp.empty(bucket.numel, dtype=bucket.dtype)
        for p, start in zip(bucket.params, bucket.offsets):
            end = start + p.data.size
            if p.grad is None:
                flat[start:end] = 0  # unused here: contributes zeros to the average
            else:
                flat[start:end] = p.grad.data.reshape(-1)
        stats = self.comm_stats
        t0 = time.perf_counter()
        dist.all_reduce(flat, "sum")
        stats.allreduce_seconds += time.perf_counter() - t0
        stats.allreduce_calls += 1
        stats.allreduce_bytes += flat.nbytes
        if world > 1:
            flat /= world
        for p, start in zip(bucket.params, bucket.offsets):
            end = start + p.data.size
            # A view of this step's fresh buffer: no copy, and nothing else shares it.
            p.grad = Tensor._make(flat[start:end].reshape(p.shape), False, None)

    def _finish(self) -> None:
        if self.find_unused_parameters:
            used = xp.asarray(self._used, dtype=xp.int32)
            dist.all_reduce(used, "max")
            self.comm_stats.allreduce_calls += 1
            for i in xp.flatnonzero(used == 0).tolist():
                # No process used it: its .grad stays as it was (PyTorch's behaviour).
                self._params[i].grad = self._unused_grads[i]
        self.comm_stats.steps += 1
        self._reset(False)

    # -- accumulation, state ------------------------------------------------------------
    @contextlib.contextmanager
    def no_sync(self) -> Iterator[None]:
        """Forward/backward passes inside accumulate gradients locally, without averaging.

        The first forward+backward after the block averages the accumulated sum, as in
        PyTorch::

            with ddp.no_sync():
                ddp(x1).sum().backward()   # local only
            ddp(x2).sum().backward()       # averages the sum of both
        """
        previous = self.require_backward_grad_sync
        object.__setattr__(self, "require_backward_grad_sync", False)
        try:
            yield
        finally:
            object.__setattr__(self, "require_backward_grad_sync", previous)

    def load_state_dict(self, state_dict: Any, strict: bool = True) -> Any:
        """Load a state dict with ``module.``-prefixed keys (as saved from the wrapper) or
        plain keys (as saved from ``ddp.module``)."""
        keys = list(state_dict)
        if keys and not any(k.startswith("module.") for k in keys):
            return self.module.load_state_dict(state_dict, strict=strict)
        return super().load_state_dict(state_dict, strict=strict)

    def extra_repr(self) -> str:
        return (f"world_size={dist.get_world_size() if dist.is_initialized() else '?'}, "
                f"buckets={len(self._buckets)}, bucket_cap_mb={self.bucket_cap_mb:g}")


def _describe(entry: Any) -> str:
    if entry is None:
        return "nothing"
    what, shape, dtype = entry
    return f"{what} of shape {shape} and dtype {dtype}"


def _make_hook(ref: weakref.ref, i: int):
    def hook(_param: Tensor) -> None:
        ddp = ref()
        if ddp is not None:
            ddp._on_grad(i)
    return hook


def _remove_handles(handles: list) -> None:
    for h in handles:
        h.remove()
