"""The dataflow graph: nodes, grad mode, and the public walk.

A :class:`Node` is one recorded operation. Its ``inputs`` are the edges into it (Tensors, or
constants such as Python numbers); its ``value`` is the array that flowed out of it. Leaves
(parameters, data) are the Tensors with ``grad_fn is None``. Creation order (``seq``) is a
topological order, so walking the graph never needs recursion.

Example:
    >>> import flowgrad as fg
    >>> w = fg.tensor(0.5, requires_grad=True)
    >>> y = fg.sigmoid(w * 2.0)
    >>> [node.name for node in fg.graph.walk(y)]
    ['mul', 'sigmoid']
"""

from __future__ import annotations

import functools
import itertools
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from flowgrad.ops.registry import OpDef
    from flowgrad.tensor import Tensor

_grad_enabled = True
_sequence = itertools.count()

FREED_MESSAGE = (
    "Trying to backward through the graph a second time (or to read values the graph has "
    "already freed). The graph's saved values are freed by backward() to save memory; pass "
    "retain_graph=True to the first backward() if you need to walk the graph again."
)


class Node:
    """One recorded operation of the dataflow graph.

    Attributes:
        op: the :class:`~flowgrad.ops.registry.OpDef` that ran.
        inputs: the input edges, Tensors or constants, in the op's argument order.
        params: the op's non-tensor arguments (e.g. ``{"dim": 1, "keepdim": False}``).
        value: the array the op produced (None once the graph is freed).
        saved: extra values the forward kept for the derivative rule, if any.
        seq: creation number; a node's inputs always have smaller numbers.
        grad: after ``backward(retain_graph=True)``, the gradient w.r.t. this node's output.
        input_grads: after ``backward(retain_graph=True)``, the gradient sent back along each
            input edge (None for edges that need none), already summed to the input's shape.
    """

    __slots__ = ("op", "inputs", "params", "value", "saved", "seq", "grad", "input_grads",
                 "__weakref__")

    def __init__(self, op: OpDef, inputs: tuple, params: dict, value: Any, saved: Any = None):
        self.op = op
        self.inputs = inputs
        self.params = params
        self.value = value
        self.saved = saved
        self.seq = next(_sequence)
        self.grad = None
        self.input_grads = None

    @property
    def name(self) -> str:
        """The operation's registered name, e.g. ``"matmul"``."""
        return self.op.name

    @property
    def freed(self) -> bool:
        return self.inputs is None

    def output(self) -> Tensor:
        """A Tensor holding this node's value, bound to this node (so it differentiates)."""
        from flowgrad.tensor import Tensor

        if self.inputs is None:
            raise RuntimeError(FREED_MESSAGE)
        return Tensor._make(self.value, True, self)

    def vjp(self, g) -> tuple:
        """Apply this node's derivative rule to the upstream gradient ``g``.

        Returns one gradient per input (None where an input needs none), each summed back to
        that input's shape. For a scalar graph, ``node.vjp(1.0)[i]`` is the local derivative
        of this node's output with respect to input ``i``, computed from the saved values.
        """
        from flowgrad.tensor import Tensor

        if self.inputs is None:
            raise RuntimeError(FREED_MESSAGE)
        if not isinstance(g, Tensor):
            from flowgrad._backend import xp

            g = Tensor._make(xp.full(self.value.shape, g, dtype=self.value.dtype), False, None)
        return self.op.vjp(self, g)

    def free(self) -> None:
        self.inputs = None
        self.value = None
        self.saved = None

    def __repr__(self) -> str:
        shape = None if self.value is None else tuple(self.value.shape)
        return f"<Node #{self.seq} {self.name} -> {shape}>"


def _collect(start: list) -> list:
    """Every node reachable from ``start`` (nodes), in no particular order; iterative."""
    from flowgrad.tensor import Tensor

    seen = set()
    stack = list(start)
    order = []
    while stack:
        node = stack.pop()
        if node in seen:
            continue
        seen.add(node)
        inputs = node.inputs
        if inputs is None:
            raise RuntimeError(FREED_MESSAGE)
        order.append(node)
        for inp in inputs:
            if isinstance(inp, Tensor):
                fn = inp.grad_fn
                if fn is not None and fn not in seen:
                    stack.append(fn)
    return order


def walk(output: Tensor) -> list[Node]:
    """The nodes that produced ``output``, in topological order (inputs first, output last).

    Every node appears once, after the nodes of all its inputs, and ``output.grad_fn`` is
    last. Leaves are not nodes: find them as the Tensor inputs whose ``grad_fn`` is None.
    Raises RuntimeError if the graph was freed by a backward without ``retain_graph``.
    """
    if output.grad_fn is None:
        return []
    nodes = _collect([output.grad_fn])
    nodes.sort(key=_seq)
    return nodes


def _seq(node: Node) -> int:
    return node.seq


def is_grad_enabled() -> bool:
    """Whether operations record the graph now."""
    return _grad_enabled


def set_grad_enabled(mode: bool) -> None:
    global _grad_enabled
    _grad_enabled = bool(mode)


class _GradMode:
    _mode = True

    def __enter__(self):
        global _grad_enabled
        self._previous = _grad_enabled
        _grad_enabled = self._mode
        return self

    def __exit__(self, *exc):
        global _grad_enabled
        _grad_enabled = self._previous
        return False

    def __call__(self, fn):
        @functools.wraps(fn)
        def wrapper(*args, **kwargs):
            with self.__class__():
                return fn(*args, **kwargs)

        return wrapper


class no_grad(_GradMode):
    """Context manager and decorator: nothing inside records a graph.

    Example:
        >>> import flowgrad as fg
        >>> w = fg.ones(3, requires_grad=True)
        >>> with fg.no_grad():
        ...     y = w * 2
        >>> y.requires_grad, y.grad_fn is None
        (False, True)
    """

    _mode = False


class enable_grad(_GradMode):
    """Context manager and decorator: record the graph again, e.g. inside ``no_grad``."""

    _mode = True
