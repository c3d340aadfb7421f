"""The Tensor: an array that can record the dataflow graph of what is computed from it."""

from __future__ import annotations

import weakref
from collections.abc import Callable
from typing import Any

from flowgrad import _backend
from flowgrad.errors import DtypeError


class Tensor:
    """An n-dimensional array (NumPy-backed) that records operations for differentiation.

    Create tensors with :func:`flowgrad.tensor` and friends rather than this class. A tensor
    with ``requires_grad=True`` and no ``grad_fn`` is a leaf (a parameter or an input); every
    operation on it records a :class:`~flowgrad.graph.Node`, and ``backward()`` fills
    ``.grad`` of the leaves.

    Example:
        >>> import flowgrad as fg
        >>> w = fg.tensor([1.0, 2.0], requires_grad=True)
        >>> (w * w).sum().backward()
        >>> w.grad
        tensor([2., 4.])
    """

    __slots__ = ("data", "requires_grad", "grad", "grad_fn", "__weakref__")

    # NumPy defers to our reflected operators instead of looping over a Tensor as an object.
    __array_ufunc__ = None
    __array_priority__ = 1000

    def __init__(self, data: Any, requires_grad: bool = False):
        from flowgrad.creation import _to_array

        self.data = _to_array(data, None)
        self.grad = None
        self.grad_fn = None
        self.requires_grad = False
        if requires_grad:
            self.requires_grad_(True)

    @classmethod
    def _make(cls, data, requires_grad: bool, grad_fn) -> Tensor:
        t = object.__new__(cls)
        t.data = data
        t.requires_grad = requires_grad
        t.grad = None
        t.grad_fn = grad_fn
        return t

    # -- attributes ---------------------------------------------------------------------
    @property
    def shape(self) -> tuple[int, ...]:
        return self.data.shape

    @property
    def ndim(self) -> int:
        return self.data.ndim

    @property
    def dtype(self):
        return self.data.dtype

    @property
    def is_leaf(self) -> bool:
        return self.grad_fn is None

    @property
    def T(self) -> Tensor:
        """All axes reversed (a matrix's transpose)."""
        if self.data.ndim == 2:
            return self.transpose(0, 1)
        return self.permute(*reversed(range(self.data.ndim)))

    @property
    def mT(self) -> Tensor:
        """The last two axes swapped (batched matrix transpose)."""
        return self.transpose(-2, -1)

    def numpy(self):
        """The underlying array (shared, not copied)."""
        return _backend.to_host(self.data)

    def item(self) -> Any:
        """The value of a one-element tensor as a Python number."""
        if self.data.size != 1:
            raise ValueError(
                f"item() needs a tensor with one element, this one has shape {self.shape}")
        return self.data.item()

    def numel(self) -> int:
        return int(self.data.size)

    def size(self, dim: int | None = None):
        return self.shape if dim is None else self.shape[dim]

    def __len__(self) -> int:
        if self.data.ndim == 0:
            raise TypeError("len() of a 0-d tensor")
        return self.data.shape[0]

    def __iter__(self):
        for i in range(len(self)):
            yield self[i]

    def detach(self) -> Tensor:
        """The same values (shared array) as a new leaf that does not require grad."""
        return Tensor._make(self.data, False, None)

    def requires_grad_(self, flag: bool = True) -> Tensor:
        """Set ``requires_grad`` in place on a leaf; only floating tensors may require grad."""
        if flag and not _backend.is_floating(self.data.dtype):
            raise DtypeError(
                f"only floating-point tensors can require gradients, this one is {self.dtype}; "
                "convert it first, e.g. fg.tensor(data, dtype=fg.float32)")
        if not flag and self.grad_fn is not None:
            raise RuntimeError("requires_grad_(False) is only allowed on leaves; use detach()")
        self.requires_grad = bool(flag)
        return self

    def backward(self, gradient: Any = None, retain_graph: bool | None = None,
                 create_graph: bool = False) -> None:
        """Backpropagate from this tensor, accumulating into the leaves' ``.grad``.

        Args:
            gradient: the upstream gradient, same shape as this tensor; may be omitted for a
                scalar (it is then 1).
            retain_graph: keep the graph (and record each node's ``grad``) so it can be walked
                or differentiated again; defaults to ``create_graph``.
            create_graph: record the backward pass itself, for higher-order derivatives.
        """
        from flowgrad.engine import backward

        backward(self, gradient, retain_graph=retain_graph, create_graph=create_graph)

    def register_post_accumulate_grad_hook(self, hook: Callable[[Tensor], None]) -> Any:
        """Call ``hook(self)`` after each backward has accumulated into this leaf's ``.grad``.

        As in PyTorch; distributed data-parallel training uses it to average gradients once
        they are complete. Returns a handle whose ``remove()`` unregisters the hook.
        """
        if self.grad_fn is not None:
            raise RuntimeError("post-accumulate-grad hooks can only be registered on leaves")
        if not self.requires_grad:
            raise RuntimeError("cannot register a post-accumulate-grad hook on a tensor that "
                               "does not require grad")
        key = id(self)
        entry = POST_ACCUMULATE_HOOKS.get(key)
        if entry is None:
            # Keyed by id: Tensor's == is elementwise. The weakref's callback drops the entry.
            ref = weakref.ref(self, lambda _, key=key: POST_ACCUMULATE_HOOKS.pop(key, None))
            entry = POST_ACCUMULATE_HOOKS[key] = (ref, [])
        hooks = entry[1]
        hooks.append(hook)
        return _HookHandle(hooks, hook)

    # -- conversions ----------------------------------------------------------------------
    def astype(self, dtype) -> Tensor:
        """A copy with another dtype (differentiable between floating dtypes)."""
        from flowgrad.ops.registry import OPS

        return OPS["cast"](self, dtype=_backend.xp.dtype(dtype))

    def float(self) -> Tensor:
        return self.astype(_backend.float32)

    def double(self) -> Tensor:
        return self.astype(_backend.float64)

    def long(self) -> Tensor:
        return self.to(_backend.int64)

    def to(self, *args: Any, dtype=None, device=None) -> Tensor:
        """This tensor in another dtype (itself if it already has it); ``"cpu"`` is accepted
        as the device, the only one so far."""
        for arg in args:
            if isinstance(arg, str) or type(arg).__name__ == "device":
                device = arg
            elif isinstance(arg, Tensor):
                dtype = arg.dtype
            else:
                dtype = arg
        if device is not None and str(device) != "cpu":
            raise RuntimeError(f"device {str(device)!r} is not available; only 'cpu' is")
        if dtype is None or _backend.xp.dtype(dtype) == self.data.dtype:
            return self
        if not _backend.is_floating(dtype):
            return self.detach().astype(dtype)  # integers and bools carry no gradient
        return self.astype(dtype)

    def view(self, *shape) -> Tensor:
        """The same values in another shape (``reshape``; one -1 allowed)."""
        return self.reshape(*shape)

    def tolist(self) -> Any:
        """The values as (nested lists of) Python numbers."""
        return self.data.tolist()

    # Functions returning several tensors, or dispatching on their arguments, as methods.
    def max(self, dim=None, keepdim: bool = False):
        from flowgrad.ops.selection import max

        return max(self, dim, keepdim)

    def min(self, dim=None, keepdim: bool = False):
        from flowgrad.ops.selection import min

        return min(self, dim, keepdim)

    def split(self, split_size, dim: int = 0) -> tuple:
        from flowgrad.ops.shape import split

        return split(self, split_size, dim)

    def chunk(self, chunks: int, dim: int = 0) -> tuple:
        from flowgrad.ops.shape import chunk

        return chunk(self, chunks, dim)

    def __array__(self, dtype=None, copy=None):
        return self.data if dtype is None else self.data.astype(dtype)

    def __float__(self) -> float:
        return float(self.item())

    def __int__(self) -> int:
        return int(self.item())

    def __bool__(self) -> bool:
        if self.data.size != 1:
            raise ValueError(
                f"the truth value of a tensor with {self.data.size} elements is ambiguous")
        return bool(self.data.item())

    __hash__ = object.__hash__

    def __getitem__(self, index) -> Tensor:
        from flowgrad.ops.registry import OPS

        return OPS["getitem"](self, index=_normalize_index(index))

    def __repr__(self) -> str:
        body = _backend.xp.array2string(self.data, separator=", ", prefix="tensor(")
        extras = []
        if self.data.dtype not in (_backend.float32, _backend.int64, _backend.bool_):
            extras.append(f"dtype={self.data.dtype}")
        if self.grad_fn is not None:
            extras.append(f"grad_fn=<{self.grad_fn.name}>")
        elif self.requires_grad:
            extras.append("requires_grad=True")
        return "tensor(" + ", ".join([body, *extras]) + ")"


# Leaf -> hooks called after backward accumulated its .grad (weak: a dropped leaf drops them).
POST_ACCUMULATE_HOOKS: dict[int, tuple[weakref.ref, list]] = {}


class _HookHandle:
    __slots__ = ("_hooks", "_hook")

    def __init__(self, hooks: list, hook: Callable) -> None:
        self._hooks, self._hook = hooks, hook

    def remove(self) -> None:
        for i, h in enumerate(self._hooks):
            if h is self._hook:
                del self._hooks[i]
                return


def _normalize_index(index):
    """Tensors inside an index become arrays, so ``x[x > 0]`` and ``x[idx_tensor]`` work."""
    if isinstance(index, Tensor):
        return index.data
    if isinstance(index, tuple):
        return tuple(i.data if isinstance(i, Tensor) else i for i in index)
    if isinstance(index, list):
        return _backend.asarray(index)
    return index


# Python operators, by name of the op they call; "r" marks reflected operands.
OPERATORS = {
    "__add__": "add", "__radd__": "r add", "__sub__": "sub", "__rsub__": "r sub",
    "__mul__": "mul", "__rmul__": "r mul", "__truediv__": "div", "__rtruediv__": "r div",
    "__pow__": "pow", "__rpow__": "r pow", "__matmul__": "matmul", "__rmatmul__": "r matmul",
    "__neg__": "neg", "__abs__": "abs",
    "__lt__": "lt", "__le__": "le", "__gt__": "gt", "__ge__": "ge", "__eq__": "eq", "__ne__": "ne",
}


def bind_operators(ops: dict) -> None:
    """Install the Python operators on Tensor, each calling its registered op."""
    from flowgrad.ops.registry import apply

    for dunder, spec in OPERATORS.items():
        reflected, _, name = spec.rpartition(" ")
        opdef = ops[name]
        if reflected:
            def method(self, other, _op=opdef):
                return apply(_op, (other, self), {})
        elif opdef.n_inputs == 1:
            def method(self, _op=opdef):
                return apply(_op, (self,), {})
        else:
            def method(self, other, _op=opdef):
                return apply(_op, (self, other), {})
        method.__name__ = dunder
        setattr(Tensor, dunder, method)
