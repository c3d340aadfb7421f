"""The backward engine: one iterative reverse sweep over the dataflow graph.

Nodes are numbered in creation order, which is a topological order, so the sweep collects
the reachable nodes with an explicit stack, visits them by descending number, and keeps the
pending gradient of each node in a dict until its turn (no recursion, so graphs of any depth
work at Python's default recursion limit).

The sweep runs in one of two modes. Unrecorded (``create_graph=False``, every training
step) it passes plain arrays and uses each op's fast rule where it has one. Recorded
(``create_graph=True``) it passes Tensors through the ops' Tensor rules with grad mode on,
so the gradients it returns carry a graph of their own and can be differentiated again.
"""

from __future__ import annotations

from collections.abc import Sequence
from heapq import heappop, heappush
from typing import Any

from flowgrad import _backend
from flowgrad.errors import ShapeError
from flowgrad.graph import FREED_MESSAGE, Node, observer, pop_grad_mode, push_grad_mode
from flowgrad.ops.shape import clone
from flowgrad.tensor import POST_ACCUMULATE_HOOKS, Tensor, Version

_make = Tensor._make


def _seed(output: Tensor, gradient: Any) -> Tensor:
    """The gradient to start from: ones for a one-element output, else ``gradient``."""
    if gradient is None:
        data = output.data
        if data.size != 1:
            raise RuntimeError(
                f"backward() without a gradient needs a one-element (scalar) output, but this "
                f"one has shape {output.shape}; pass gradient= of that shape")
        return _make(_backend.one(data.shape, data.dtype, data), False, None)
    if isinstance(gradient, Tensor):
        data = gradient.data
        graded = gradient
        if (type(data) is not _backend.ndarray or type(output.data) is not _backend.ndarray) \
                and gradient.device != output.device:
            raise RuntimeError(f"backward(): the gradient is on {gradient.device} but the "
                               f"output is on {output.device}")
    else:
        data = _backend.asarray(gradient, dtype=output.dtype, device=output.device)
        graded = None
    if tuple(data.shape) != tuple(output.shape):
        raise ShapeError(f"backward(): gradient has shape {tuple(data.shape)} but the output "
                         f"has shape {tuple(output.shape)}")
    if graded is not None:
        return graded
    # A private copy: leaves may keep it as their .grad.
    return _make(_backend.astype(data, output.dtype, copy=True), False, None)


def _sweep(roots: list[tuple[Tensor, Tensor]], retain_graph: bool, create_graph: bool,
           targets: Sequence[Tensor] | None = None) -> list | None:
    """Propagate gradients from ``roots`` to the leaves (or to ``targets``).

    Without ``targets``, gradients accumulate into the leaves' ``.grad``. With ``targets``,
    nothing is accumulated and the gradient w.r.t. each target is returned (None where no
    gradient reaches it).

    A node runs once every node that consumes it has sent its gradient. Creation numbers
    are a topological order, so taking the pending node with the largest number first (a
    heap) guarantees that, without a separate pass to collect and sort the graph.
    """
    record = create_graph
    pending: dict[Node, Any] = {}
    heap: list[tuple[int, Node]] = []
    leaf_grads: dict[int, tuple[Tensor, Any]] = {}
    for t, g in roots:
        if not t.requires_grad:
            raise RuntimeError(
                "this tensor does not require grad and has no grad_fn: nothing recorded "
                "a graph to differentiate (was it made under no_grad, or from leaves "
                "without requires_grad=True?)")
        g = g if record else g.data
        fn = t.grad_fn
        if fn is None:
            _add(leaf_grads, t, g)
        elif fn in pending:
            pending[fn] = pending[fn] + g
        else:
            if fn.inputs is None:
                raise RuntimeError(FREED_MESSAGE)
            pending[fn] = g
            heappush(heap, (-fn.seq, fn))

    wanted: dict[Node, Any] = {}
    if targets is not None:
        for t in targets:
            if t.grad_fn is not None:
                wanted[t.grad_fn] = None

    epoch = Version.epoch
    watcher = observer()  # a debugging mode (anomaly, profiler) runs the rules; None: off
    mode = push_grad_mode(record)
    token = _backend.quiet()
    try:
        while heap:
            node = heappop(heap)[1]
            g = pending.pop(node)
            if wanted and node in wanted:
                wanted[node] = g
            if node.epoch != epoch:
                node.check_versions()
            if watcher is None:
                grads = node.op.vjp(node, g) if record else node.op.vjp_arrays(node, g)
            else:
                grads = watcher.backward(node, g, record)
            if retain_graph:
                node.grad = g if record else _make(g, False, None)
                node.input_grads = grads if record else tuple(
                    [_make(gi, False, None) if gi is not None and getattr(x, "requires_grad",
                                                                          False) else None
                     for x, gi in zip(node.inputs, grads)])
            for inp, gi in zip(node.inputs, grads):
                if gi is None or not (isinstance(inp, Tensor) and inp.requires_grad):
                    continue
                fn = inp.grad_fn
                if fn is None:
                    entry = leaf_grads.get(id(inp))
                    leaf_grads[id(inp)] = (inp, gi if entry is None else entry[1] + gi)
                elif fn in pending:
                    pending[fn] = pending[fn] + gi
                else:
                    if fn.inputs is None:
                        raise RuntimeError(FREED_MESSAGE)
                    pending[fn] = gi
                    heappush(heap, (-fn.seq, fn))
            if not retain_graph:
                node.free()
        # Each leaf keeps a gradient array of its own: rules may pass on views or the same
        # array to two inputs, and .grad may be changed in place later (optimizers, clipping).
        given: set[int] = set()
        if targets is not None:
            found = [wanted.get(t.grad_fn) if t.grad_fn is not None
                     else leaf_grads.get(id(t), (None, None))[1] for t in targets]
            return [_own(g, record, given) for g in found]
        for leaf, g in leaf_grads.values():
            old = leaf.grad
            if old is not None:
                leaf.grad = old + g if record else _make(old.data + g, False, None)
            elif record:
                leaf.grad = _own(g, record, given)
            else:
                if id(g) in given or not _backend.is_private(g):
                    g = _backend.copy(g)
                given.add(id(g))
                leaf.grad = _make(g, False, None)
    finally:
        _backend.loud(token)
        pop_grad_mode(mode)
    if POST_ACCUMULATE_HOOKS:
        for leaf, _ in leaf_grads.values():
            hooked = POST_ACCUMULATE_HOOKS.get(id(leaf))
            if hooked is not None:
                for hook in tuple(hooked[1]):
                    hook(leaf)
    return None


def _add(leaf_grads: dict, leaf: Tensor, g: Any) -> None:
    entry = leaf_grads.get(id(leaf))
    leaf_grads[id(leaf)] = (leaf, g if entry is None else entry[1] + g)


def _own(g: Any, record: bool, given: set[int]) -> Tensor | None:
    """``g`` as a Tensor with memory of its own (rules may pass on shared or read-only views,
    and one array may reach two leaves), so in-place changes to a ``.grad`` stay its own."""
    if g is None:
        return None
    data = g.data if record else g
    shared = id(data) in given or not _backend.is_private(data)
    given.add(id(data))
    if record:
        return clone(g) if shared else g
    return _make(_backend.copy(g) if shared else g, False, None)


def backward(output: Tensor, gradient: Any = None, retain_graph: bool | None = None,
             create_graph: bool = False) -> None:
    """Fill ``.grad`` of every leaf that ``output`` depends on and that requires grad.

    Gradients accumulate (add) into existing ``.grad``. Unless ``retain_graph`` (which
    defaults to ``create_graph``), the visited part of the graph is freed as the sweep
    passes it, and a second backward through it raises RuntimeError.

    Args:
        output: the tensor to differentiate (a scalar unless ``gradient`` is given).
        gradient: the upstream gradient, same shape as ``output``.
        retain_graph: keep the graph (and record each node's ``grad``) so it can be walked
            or differentiated again.
        create_graph: record the backward pass itself, for higher-order derivatives.
    """
    if retain_graph is None:
        retain_graph = create_graph
    _sweep([(output, _seed(output, gradient))], retain_graph, create_graph)


def grad(outputs: Tensor | Sequence[Tensor], inputs: Tensor | Sequence[Tensor],
         grad_outputs: Any = None, retain_graph: bool | None = None,
         create_graph: bool = False, allow_unused: bool = True) -> tuple:
    """Gradients of ``outputs`` w.r.t. ``inputs``, returned instead of accumulated.

    Args:
        outputs: a Tensor or a sequence of Tensors.
        inputs: the Tensors (leaves or intermediate) to differentiate with respect to.
        grad_outputs: the upstream gradient per output (None: ones for scalar outputs).
        retain_graph: keep the graph; defaults to ``create_graph``.
        create_graph: record this backward so the result can be differentiated again.
        allow_unused: if False, an input the outputs do not depend on raises an error;
            if True its gradient is None.

    Returns:
        A tuple with one gradient (or None) per input.

    Example:
        >>> import flowgrad as fg
        >>> x = fg.tensor(3.0, requires_grad=True)
        >>> fg.engine.grad(x ** 2, x)[0].item()
        6.0
    """
    outputs = [outputs] if isinstance(outputs, Tensor) else list(outputs)
    inputs = [inputs] if isinstance(inputs, Tensor) else list(inputs)
    if grad_outputs is None or isinstance(grad_outputs, Tensor):
        grad_outputs = [grad_outputs] * len(outputs)
    if retain_graph is None:
        retain_graph = create_graph
    roots = [(o, _seed(o, g)) for o, g in zip(outputs, grad_outputs)]
    result = _sweep(roots, retain_graph, create_graph, targets=inputs)
    assert result is not None
    if not allow_unused and any(r is None for r in result):
        raise RuntimeError("one of the inputs was not used to compute the outputs")
    return tuple(result)
