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

import contextvars
import functools
import itertools
from typing import TYPE_CHECKING, Any

from flowgrad import _backend
from flowgrad.tensor import Tensor, Version

if TYPE_CHECKING:
    from flowgrad.ops.registry import OpDef

# Modes live in context variables: each thread (and each asyncio task) has its own, as
# PyTorch's grad mode is thread-local, so a web server's no_grad in one request does not
# change what another request records. A new thread starts with the defaults.
_GRAD_ENABLED: contextvars.ContextVar[bool] = contextvars.ContextVar("grad_enabled",
                                                                   default=True)
grad_enabled = _GRAD_ENABLED.get  # the hot-path read, bound once
# The debugging modes (anomaly detection, the profiler; see flowgrad.anomaly) watch ops
# through one object here. None, the default, means nothing is watched: registry.apply and
# the engine's sweep each read it once (per op, per sweep) and carry on.
_OBSERVER: contextvars.ContextVar[Any] = contextvars.ContextVar("observer", default=None)
observer = _OBSERVER.get  # the hot-path read, bound once
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
        arrays: the arrays the forward received for them (after dtype promotion).
        params: the op's non-tensor arguments (e.g. ``{"dim": 1, "keepdim": False}``).
        value: the array the op produced (None once the graph is freed).
        saved: extra values the forward kept for the derivative rule, if any.
        seq: creation number; a node's inputs always have smaller numbers.
        grad: after ``backward(retain_graph=True)``, the gradient w.r.t. this node's output.
        input_grads: after ``backward(retain_graph=True)``, the gradient sent back along each
            input edge (None for edges that need none), already summed to the input's shape.
    """

    # A node is made for every recorded op, so making one writes just the slots every node
    # uses; the rest default to the class attributes below until assigned.
    __slots__ = ("op", "inputs", "arrays", "params", "value", "saved", "seq", "epoch", "xp",
                 "reshapes", "__dict__", "__weakref__")
    grad: Any = None
    input_grads: tuple | None = None
    # The tensor inputs' version counters when recorded (None: all were 0), to detect
    # values changed in place after they were saved; see check_versions.
    versions: tuple | None = None
    out_modified = False
    # Where the user's code created this node (a flowgrad.anomaly.Origin): captured only
    # while anomaly detection is on, so no node pays for it otherwise.
    created_at: Any = None

    def __init__(self, op: OpDef, inputs: tuple, arrays: list, params: dict, value: Any,
                 saved: Any = None, versions: tuple | None = None, xp: Any = _backend.xp):
        self.op = op
        self.inputs = inputs
        self.arrays = arrays  # what the forward received: the inputs' arrays, after promotion
        self.params = params
        self.value = value
        self.saved = saved
        self.seq = next(_sequence)
        self.epoch = Version.epoch  # unchanged at backward: nothing changed in place since
        self.xp = xp  # the array namespace the forward ran with; fast rules use it too
        # Whether the fast rule's gradients may need summing to a broadcast input's shape or
        # casting to an input's dtype (see OpDef.vjp_arrays); apply clears it when not.
        self.reshapes = True
        if versions is not None:
            self.versions = versions

    @property
    def name(self) -> str:
        """The operation's registered name, e.g. ``"matmul"``."""
        return self.op.name

    @property
    def freed(self) -> bool:
        return self.inputs is None

    def output(self) -> Tensor:
        """A Tensor holding this node's value, bound to this node (so it differentiates)."""
        if self.inputs is None:
            raise RuntimeError(FREED_MESSAGE)
        return Tensor._make(self.value, True, self)

    def vjp(self, g) -> tuple:
        """Apply this node's derivative rule to the upstream gradient ``g``.

        Returns one gradient per input (None where an input needs none), each summed back to
        that input's shape. For a scalar graph, ``node.vjp(1.0)[i]`` is the local derivative
        of this node's output with respect to input ``i``, computed from the saved values.
        """
        if self.inputs is None:
            raise RuntimeError(FREED_MESSAGE)
        if not isinstance(g, Tensor):
            g = Tensor._make(_backend.full_like(self.value, g), False, None)
        return self.op.vjp(self, g)

    def check_versions(self) -> None:
        """Raise if a value this node saved for its derivative was changed in place since."""
        # Under anomaly detection the node knows the user's line that created it.
        made = "" if self.created_at is None else f", created at {self.created_at}"
        if self.out_modified:
            raise RuntimeError(
                f"one of the values needed for gradient computation has been modified by an "
                f"in-place operation: the output of {self.name} (node #{self.seq}{made}), "
                f"which its derivative rule reads. Use an out-of-place operation (y = y + 1 "
                f"instead of y += 1) or .clone() the value before changing it.")
        if not self.op.saves_inputs:
            return
        saved = self.versions
        k = 0
        for x in self.inputs:
            if isinstance(x, Tensor):
                now = x._version
                before = 0 if saved is None else saved[k]
                k += 1
                if now != before:
                    raise RuntimeError(
                        f"one of the values needed for gradient computation has been modified "
                        f"by an in-place operation: input {k - 1} of {self.name} (node "
                        f"#{self.seq}{made}), a tensor of shape {tuple(x.shape)}, is at version "
                        f"{now}; expected version {before} instead. Use an out-of-place "
                        f"operation or .clone() it before changing it.")

    def free(self) -> None:
        self.inputs = None  # type: ignore[assignment]  # freed: see the `freed` property
        self.arrays = None  # type: ignore[assignment]
        self.value = None
        self.saved = None

    def __repr__(self) -> str:
        shape = None if self.value is None else tuple(self.value.shape)
        return f"<Node #{self.seq} {self.name} -> {shape}>"


def _collect(start: list) -> list:
    """Every node reachable from ``start`` (nodes), in no particular order; iterative."""
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


def push_grad_mode(mode: bool) -> contextvars.Token:
    """Set grad mode and return a token for :func:`pop_grad_mode` (the engine's cheap path)."""
    return _GRAD_ENABLED.set(mode)


def pop_grad_mode(token: contextvars.Token) -> None:
    """Restore the grad mode from before the matching :func:`push_grad_mode`."""
    _GRAD_ENABLED.reset(token)


def is_grad_enabled() -> bool:
    """Whether operations record the graph now (in this thread)."""
    return _GRAD_ENABLED.get()


class _GradMode:
    """Sets grad mode for a ``with`` block (or a decorated function), then restores it."""

    _mode = True

    def __enter__(self) -> _GradMode:
        self._token = _GRAD_ENABLED.set(self._mode)
        return self

    def __exit__(self, *exc: object) -> None:
        _GRAD_ENABLED.reset(self._token)

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


class set_grad_enabled(_GradMode):
    """Turn recording on or off: at once when called, or for a ``with`` block, as PyTorch.

    Example:
        >>> import flowgrad as fg
        >>> with fg.set_grad_enabled(False):
        ...     fg.is_grad_enabled()
        False
    """

    def __init__(self, mode: bool) -> None:
        self._mode = bool(mode)
        self._previous = _GRAD_ENABLED.get()
        _GRAD_ENABLED.set(self._mode)

    def __enter__(self) -> set_grad_enabled:
        return self

    def __exit__(self, *exc: object) -> None:
        _GRAD_ENABLED.set(self._previous)

    def __call__(self, fn):
        mode = self._mode
        _GRAD_ENABLED.set(self._previous)  # as a decorator it applies per call only

        @functools.wraps(fn)
        def wrapper(*args, **kwargs):
            with set_grad_enabled(mode):
                return fn(*args, **kwargs)

        return wrapper
