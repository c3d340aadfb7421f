"""The backward engine: one iterative reverse sweep over the dataflow graph.

Nodes are numbered in creation order, which is a topological order, so the sweep collects
the reachable nodes with an explicit stack, visits them by descending number, and keeps the
pending gradient of each node in a dict until its turn (no recursion, so graphs of any depth
work at Python's default recursion limit).
"""

from __future__ import annotations

from collections.abc import Sequence

from flowgrad import _backend, graph
from flowgrad.errors import ShapeError
from flowgrad.graph import _collect
from flowgrad.tensor import POST_ACCUMULATE_HOOKS, Tensor

_make = Tensor._make


def _seed(output: Tensor, gradient) -> Tensor:
    """The gradient to start from: ones for a one-element output, else ``gradient``."""
    if gradient is None:
        if output.data.size != 1:
            raise RuntimeError(
                f"backward() without a gradient needs a one-element (scalar) output, but this "
                f"one has shape {output.shape}; pass gradient= of that shape")
        return _make(_backend.xp.ones(output.shape, dtype=output.dtype), False, None)
    if isinstance(gradient, Tensor):
        data = gradient.data
        graded = gradient
    else:
        data = _backend.asarray(gradient, dtype=output.dtype)
        graded = None
    if tuple(data.shape) != tuple(output.shape):
        raise ShapeError(f"backward(): gradient has shape {tuple(data.shape)} but the output "
                         f"has shape {tuple(output.shape)}")
    if graded is not None:
        return graded
    # A private copy: leaves may keep it as their .grad.
    return _make(data.astype(output.dtype, copy=True), False, None)


def _sweep(roots: list[tuple[Tensor, Tensor]], retain_graph: bool, create_graph: bool,
           targets: Sequence[Tensor] | None = None) -> list | None:
    """Propagate gradients from ``roots`` to the leaves (or to ``targets``).

    Without ``targets``, gradients accumulate into the leaves' ``.grad``. With ``targets``,
    nothing is accumulated and the gradient w.r.t. each target is returned (None where no
    gradient reaches it).
    """
    pending: dict = {}
    leaf_grads: dict = {}
    for t, g in roots:
        if not t.requires_grad:
            raise RuntimeError(
                "this tensor does not require grad and has no grad_fn: nothing recorded "
                "a graph to differentiate (was it made under no_grad, or from leaves "
                "without requires_grad=True?)")
        if t.grad_fn is None:
            _add(leaf_grads, id(t), t, g)
        else:
            prev = pending.get(t.grad_fn)
            pending[t.grad_fn] = g if prev is None else prev + g

    wanted_nodes = {}
    if targets is not None:
        for t in targets:
            if t.grad_fn is not None:
                wanted_nodes[t.grad_fn] = None

    nodes = _collect(list(pending))
    nodes.sort(key=graph._seq, reverse=True)
    previous_mode = graph._grad_enabled
    graph._grad_enabled = create_graph
    try:
        for node in nodes:
            g = pending.pop(node, None)
            if g is None:
                if not retain_graph:
                    node.free()
                continue
            if node in wanted_nodes:
                wanted_nodes[node] = g
            grads = node.op.vjp(node, g)
            if retain_graph:
                node.grad = g
                node.input_grads = grads
            for inp, gi in zip(node.inputs, grads):
                if gi is None:
                    continue
                fn = inp.grad_fn
                if fn is None:
                    _add(leaf_grads, id(inp), inp, gi)
                else:
                    prev = pending.get(fn)
                    pending[fn] = gi if prev is None else prev + gi
            if not retain_graph:
                node.free()
        if targets is not None:
            return [wanted_nodes.get(t.grad_fn) if t.grad_fn is not None
                    else leaf_grads.get(id(t), (None, None))[1] for t in targets]
        for leaf, g in leaf_grads.values():
            leaf.grad = g if leaf.grad is None else leaf.grad + g
        if POST_ACCUMULATE_HOOKS:
            for leaf, _ in leaf_grads.values():
                entry = POST_ACCUMULATE_HOOKS.get(id(leaf))
                if entry is not None:
                    for hook in tuple(entry[1]):
                        hook(leaf)
    finally:
        graph._grad_enabled = previous_mode
    return None


def _add(leaf_grads: dict, key: int, leaf: Tensor, g: Tensor) -> None:
    entry = leaf_grads.get(key)
    if entry is None:
        leaf_grads[key] = (leaf, g)
    else:
        leaf_grads[key] = (leaf, entry[1] + g)


def backward(output: Tensor, gradient=None, retain_graph: bool | None = None,
             create_graph: bool = False) -> None:
    """Fill ``.grad`` of every leaf that ``output`` depends on and that requires grad.

    Gradients accumulate (add) into existing ``.grad``. Unless ``retain_graph`` (which
    defaults to ``create_graph``), the visited part of the graph is freed as the sweep
    passes it, and a second backward through it raises RuntimeError.
    """
    if retain_graph is None:
        retain_graph = create_graph
    _sweep([(output, _seed(output, gradient))], retain_graph, create_graph)


def grad(outputs: Tensor | Sequence[Tensor], inputs: Tensor | Sequence[Tensor],
         grad_outputs=None, retain_graph: bool | None = None, create_graph: bool = False,
         allow_unused: bool = True) -> tuple:
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
    if not allow_unused and any(r is None for r in result):
        raise RuntimeError("one of the inputs was not used to compute the outputs")
    return tuple(result)
