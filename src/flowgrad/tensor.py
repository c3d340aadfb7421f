"""The Tensor: an array that can record the dataflow graph of what is computed from it.

This module holds what a Tensor is (its array, its flags, its place in the graph) and the
methods that need nothing but the array. The operations (``x * y``, ``x.sum()``,
``x.backward()``) are defined later in the import order, in the op library and the engine,
and installed on the class by :mod:`flowgrad.ops.registry` (one place); the declarations in
the ``TYPE_CHECKING`` block below let type checkers and editors see them.
"""

from __future__ import annotations

import builtins
import functools
import weakref
from collections.abc import Callable, Iterator, Sequence
from typing import TYPE_CHECKING, Any, TypeAlias

from flowgrad import _backend
from flowgrad.errors import DtypeError

if TYPE_CHECKING:
    from flowgrad.graph import Node

    Number: TypeAlias = "builtins.float | int | bool"
    TensorLike: TypeAlias = "Tensor | Number | Any"
    Dim: TypeAlias = "int | tuple[int, ...] | None"


def to_array(data: Any, dtype: Any = None, device: Any = None) -> Any:
    """An array copy of ``data`` on ``device`` (default: the data's own device for arrays
    and tensors, else the default device): Python floats give float32, ints int64, arrays
    keep their dtype."""
    if isinstance(data, Tensor):
        data = data.data
    if type(data) is not _backend.ndarray and _backend.is_array(data):
        # An array on a device: copied there, or to the device asked for.
        target = _backend.device_of(data) if device is None else _backend.as_device(device)
        moved = _backend.to_device(data, target)
        if dtype is not None:
            return _backend.astype(moved, dtype)
        return _backend.copy(moved) if moved is data else moved
    target = _backend.as_device(device)
    if _backend.is_array(data) or isinstance(data, _backend.xp.generic):
        arr = _backend.xp.array(data, dtype=dtype)
    else:
        if isinstance(data, (list, tuple)) and any(isinstance(v, Tensor) for v in data):
            data = [_backend.to_host(v.data) if isinstance(v, Tensor) else v for v in data]
        arr = _backend.xp.array(data, dtype=dtype)
        if dtype is None:
            if arr.dtype == _backend.float64:
                arr = arr.astype(_backend.default_float)
            elif arr.dtype.kind in "iu":
                arr = arr.astype(_backend.int64)
            elif arr.dtype.kind not in "fb":
                raise TypeError(f"cannot make a tensor from {type(data).__name__} data "
                                f"(array dtype {arr.dtype})")
    return arr if target is _backend.CPU else _backend.from_host(arr, target)


class Version:
    """How many times a tensor's memory was changed in place; shared by its views.

    ``Version.epoch`` counts in-place changes of any tensor, so the engine can skip the
    version checks of a node recorded after the last one.
    """

    __slots__ = ("n",)
    epoch = 0

    def __init__(self) -> None:
        self.n = 0

    def bump(self) -> None:
        self.n += 1
        Version.epoch += 1


_new = object.__new__
_dtype_type = _backend.dtype_type


class Tensor:
    """An n-dimensional array (NumPy-backed) that records operations for differentiation.

    Create tensors with :func:`flowgrad.tensor` and friends. A tensor with
    ``requires_grad=True`` and no ``grad_fn`` is a leaf (a parameter or an input); every
    operation on it records a :class:`~flowgrad.graph.Node`, and ``backward()`` fills
    ``.grad`` of the leaves.

    Example:
        >>> import flowgrad as fg
        >>> w = fg.tensor([1.0, 2.0], requires_grad=True)
        >>> (w * w).sum().backward()
        >>> w.grad
        tensor([2., 4.])
    """

    # A tensor is made for every op, so making one writes just the three slots; the
    # attributes most tensors never set (.grad, the version counter, the base of a view)
    # default to these class attributes and go to the instance dict when assigned.
    __slots__ = ("data", "requires_grad", "grad_fn", "__dict__", "__weakref__")
    grad: Tensor | None = None
    _vc: Version | None = None
    _base: Tensor | None = None

    # NumPy defers to our reflected operators instead of looping over a Tensor as an object.
    __array_ufunc__ = None
    __array_priority__ = 1000

    def __init__(self, data: Any, requires_grad: bool = False) -> None:
        self.data = to_array(data)
        self.grad_fn: Node | None = None
        self.requires_grad = False
        if requires_grad:
            self.requires_grad_(True)

    @classmethod
    def _make(cls, data: Any, requires_grad: bool, grad_fn: Node | None) -> Tensor:
        t = _new(cls)
        t.data = data
        t.requires_grad = requires_grad
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
    def dtype(self) -> Any:
        """The dtype, as flowgrad's (NumPy) dtype on every device."""
        dtype = self.data.dtype
        return dtype if isinstance(dtype, _dtype_type) else _backend.host_dtype(dtype)

    @property
    def device(self) -> _backend.device:
        """The device this tensor's memory is on (prints as ``cpu`` or ``cuda:0``)."""
        return _backend.device_of(self.data)

    @property
    def is_cuda(self) -> bool:
        return self.device.type == "cuda"

    @property
    def is_leaf(self) -> bool:
        return self.grad_fn is None

    @property
    def _version(self) -> int:
        """The in-place version counter (PyTorch's ``_version``): 0 until changed in place."""
        return 0 if self._vc is None else self._vc.n

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

    def numpy(self) -> Any:
        """The underlying NumPy array (shared, not copied); on another device a TypeError,
        as in PyTorch: copy it to the host first with ``.cpu()``."""
        if type(self.data) is not _backend.ndarray and not _backend.on_host(self.data):
            raise TypeError(f"can't convert {self.device} device type tensor to numpy. Use "
                            f"Tensor.cpu() to copy the tensor to host memory first.")
        return self.data

    def item(self) -> Any:
        """The value of a one-element tensor as a Python number (copied from a device)."""
        if self.data.size != 1:
            raise ValueError(
                f"item() needs a tensor with one element, this one has shape {self.shape}")
        return _backend.item(self.data)

    def tolist(self) -> Any:
        """The values as (nested lists of) Python numbers; a 0-d tensor gives a number."""
        return _backend.to_host(self.data).tolist()

    def numel(self) -> int:
        return int(self.data.size)

    def size(self, dim: int | None = None) -> Any:
        """The shape, or the size of dimension ``dim`` (negative counts from the end)."""
        if dim is None:
            return self.shape
        if not -self.ndim <= dim < max(self.ndim, 1):
            raise IndexError(f"dim {dim} is out of range for a tensor with {self.ndim} "
                             f"dimensions")
        return self.shape[dim]

    def dim(self) -> int:
        return self.data.ndim

    def __len__(self) -> int:
        if self.data.ndim == 0:
            raise TypeError("len() of a 0-d tensor")
        return self.data.shape[0]

    def __iter__(self) -> Iterator[Tensor]:
        if self.data.ndim == 0:
            raise TypeError("iteration over a 0-d tensor")
        for i in range(self.data.shape[0]):
            yield self[i]

    def detach(self) -> Tensor:
        """The same values (shared memory) as a new leaf that does not require grad.

        As in PyTorch, the two share the in-place version counter.
        """
        t = Tensor._make(self.data, False, None)
        t._vc = self._shared_version()
        return t

    def _shared_version(self) -> Version:
        """This tensor's version counter, created on first need, to share with a view."""
        if self._vc is None:
            self._vc = Version()
        return self._vc

    def requires_grad_(self, flag: bool = True) -> Tensor:
        """Set ``requires_grad`` in place on a leaf; only floating tensors may require grad."""
        if flag and self.dtype.kind != "f":
            raise DtypeError(
                f"only floating-point tensors can require gradients, this one is {self.dtype}; "
                "convert it first, e.g. fg.tensor(data, dtype=fg.float32)")
        if not flag and self.grad_fn is not None:
            raise RuntimeError("requires_grad_(False) is only allowed on leaves; use detach()")
        self.requires_grad = bool(flag)
        return self

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
            ref = weakref.ref(self, functools.partial(_drop_hooks, key))
            entry = POST_ACCUMULATE_HOOKS[key] = (ref, [])
        hooks = entry[1]
        hooks.append(hook)
        return _HookHandle(hooks, hook)

    # -- conversions ----------------------------------------------------------------------
    def __array__(self, dtype: Any = None, copy: bool | None = None) -> Any:
        # NumPy 2's protocol: np.array(t) copies (copy=True), np.asarray(t) may share.
        # A tensor on another device is not converted behind the user's back (as PyTorch).
        arr = self.numpy()
        if copy is False:
            if dtype is not None and arr.dtype != dtype:
                raise ValueError(f"cannot convert a {arr.dtype} tensor to {dtype} without a "
                                 f"copy (copy=False was asked)")
            return arr
        if copy:
            return arr.astype(arr.dtype if dtype is None else dtype, copy=True)
        return arr if dtype is None else arr.astype(dtype, copy=False)

    def __float__(self) -> builtins.float:
        return float(self.item())

    def __int__(self) -> int:
        return int(self.item())

    def __index__(self) -> int:
        if self.data.size != 1 or self.dtype.kind not in "iub":
            raise TypeError(f"only integer tensors of a single element can be converted to an "
                            f"index (this one has dtype {self.dtype} and shape {self.shape})")
        return int(self.item())

    def __bool__(self) -> bool:
        if self.data.size != 1:
            raise ValueError(
                f"the truth value of a tensor with {self.data.size} elements is ambiguous")
        return bool(_backend.item(self.data))

    __hash__ = object.__hash__

    def __reduce__(self) -> Any:
        # Pickling writes the values of a leaf; a tensor inside a graph would silently lose
        # its history, so that is refused.
        if self.grad_fn is not None:
            raise RuntimeError(
                "cannot pickle a tensor that is part of a recorded graph (it has a grad_fn); "
                "pickle t.detach() to keep its values")
        return (_rebuild, (_backend.to_host(self.data).copy(), self.requires_grad,
                           str(self.device)))

    def __repr__(self) -> str:
        body = _backend.xp.array2string(_backend.to_host(self.data), separator=", ",
                                        prefix="tensor(")
        extras = []
        if self.dtype not in (_backend.float32, _backend.int64, _backend.bool_):
            extras.append(f"dtype={self.dtype}")
        if not _backend.on_host(self.data):
            extras.append(f"device='{self.device}'")
        if self.grad_fn is not None:
            extras.append(f"grad_fn=<{self.grad_fn.name}>")
        elif self.requires_grad:
            extras.append("requires_grad=True")
        return "tensor(" + ", ".join([body, *extras]) + ")"

    if TYPE_CHECKING:
        # Installed at import time by flowgrad.ops.registry; tests/test_typing.py keeps this
        # list in agreement with the registry and the operator table.
        def backward(self, gradient: TensorLike | None = None,
                     retain_graph: bool | None = None, create_graph: bool = False) -> None: ...
        def __getitem__(self, index: Any) -> Tensor: ...
        def __setitem__(self, index: Any, value: TensorLike) -> None: ...
        def __add__(self, other: TensorLike) -> Tensor: ...
        def __radd__(self, other: TensorLike) -> Tensor: ...
        def __sub__(self, other: TensorLike) -> Tensor: ...
        def __rsub__(self, other: TensorLike) -> Tensor: ...
        def __mul__(self, other: TensorLike) -> Tensor: ...
        def __rmul__(self, other: TensorLike) -> Tensor: ...
        def __truediv__(self, other: TensorLike) -> Tensor: ...
        def __rtruediv__(self, other: TensorLike) -> Tensor: ...
        def __pow__(self, other: TensorLike) -> Tensor: ...
        def __rpow__(self, other: TensorLike) -> Tensor: ...
        def __matmul__(self, other: TensorLike) -> Tensor: ...
        def __rmatmul__(self, other: TensorLike) -> Tensor: ...
        def __neg__(self) -> Tensor: ...
        def __abs__(self) -> Tensor: ...
        def __lt__(self, other: TensorLike) -> Tensor: ...
        def __le__(self, other: TensorLike) -> Tensor: ...
        def __gt__(self, other: TensorLike) -> Tensor: ...
        def __ge__(self, other: TensorLike) -> Tensor: ...
        def __eq__(self, other: TensorLike) -> Tensor: ...  # type: ignore[override]
        def __ne__(self, other: TensorLike) -> Tensor: ...  # type: ignore[override]
        def __iadd__(self, other: TensorLike) -> Tensor: ...
        def __isub__(self, other: TensorLike) -> Tensor: ...
        def __imul__(self, other: TensorLike) -> Tensor: ...
        def __itruediv__(self, other: TensorLike) -> Tensor: ...
        # In-place operations (as PyTorch).
        def add_(self, other: TensorLike) -> Tensor: ...
        def sub_(self, other: TensorLike) -> Tensor: ...
        def mul_(self, other: TensorLike) -> Tensor: ...
        def div_(self, other: TensorLike) -> Tensor: ...
        def relu_(self) -> Tensor: ...
        def clamp_(self, min: Number | None = None, max: Number | None = None) -> Tensor: ...
        def zero_(self) -> Tensor: ...
        def fill_(self, value: TensorLike) -> Tensor: ...
        def copy_(self, src: TensorLike) -> Tensor: ...
        # Conversions and views.
        def to(self, *args: Any, dtype: Any = None, device: Any = None) -> Tensor: ...
        def cpu(self) -> Tensor: ...
        def cuda(self, device: Any = None) -> Tensor: ...
        def astype(self, dtype: Any) -> Tensor: ...
        def float(self) -> Tensor: ...
        def double(self) -> Tensor: ...
        def long(self) -> Tensor: ...
        def view(self, *shape: int | Sequence[int]) -> Tensor: ...
        def contiguous(self) -> Tensor: ...
        def t(self) -> Tensor: ...
        def clone(self) -> Tensor: ...
        def max(self, dim: int | None = None, keepdim: bool = False) -> Any: ...
        def min(self, dim: int | None = None, keepdim: bool = False) -> Any: ...
        def split(self, split_size: int | Sequence[int], dim: int = 0) -> tuple[Tensor, ...]: ...
        def chunk(self, chunks: int, dim: int = 0) -> tuple[Tensor, ...]: ...
        # Operations registered with method=True.
        def add(self, y: TensorLike) -> Tensor: ...
        def sub(self, y: TensorLike) -> Tensor: ...
        def mul(self, y: TensorLike) -> Tensor: ...
        def div(self, y: TensorLike) -> Tensor: ...
        def pow(self, y: TensorLike) -> Tensor: ...
        def neg(self) -> Tensor: ...
        def matmul(self, y: TensorLike) -> Tensor: ...
        def lt(self, y: TensorLike) -> Tensor: ...
        def le(self, y: TensorLike) -> Tensor: ...
        def gt(self, y: TensorLike) -> Tensor: ...
        def ge(self, y: TensorLike) -> Tensor: ...
        def eq(self, y: TensorLike) -> Tensor: ...
        def ne(self, y: TensorLike) -> Tensor: ...
        def exp(self) -> Tensor: ...
        def log(self) -> Tensor: ...
        def sqrt(self) -> Tensor: ...
        def abs(self) -> Tensor: ...
        def sign(self) -> Tensor: ...
        def sin(self) -> Tensor: ...
        def cos(self) -> Tensor: ...
        def tanh(self) -> Tensor: ...
        def sigmoid(self) -> Tensor: ...
        def relu(self) -> Tensor: ...
        def leaky_relu(self, negative_slope: Number = 0.01) -> Tensor: ...
        def step(self) -> Tensor: ...
        def clamp(self, min: Number | None = None, max: Number | None = None) -> Tensor: ...
        def maximum(self, y: TensorLike) -> Tensor: ...
        def minimum(self, y: TensorLike) -> Tensor: ...
        def sum(self, dim: Dim = None, keepdim: bool = False) -> Tensor: ...
        def mean(self, dim: Dim = None, keepdim: bool = False) -> Tensor: ...
        def amax(self, dim: Dim = None, keepdim: bool = False) -> Tensor: ...
        def amin(self, dim: Dim = None, keepdim: bool = False) -> Tensor: ...
        def logsumexp(self, dim: Dim, keepdim: bool = False) -> Tensor: ...
        def softmax(self, dim: int) -> Tensor: ...
        def log_softmax(self, dim: int) -> Tensor: ...
        def reshape(self, *shape: int | Sequence[int]) -> Tensor: ...
        def transpose(self, dim0: int, dim1: int) -> Tensor: ...
        def permute(self, *dims: int | Sequence[int]) -> Tensor: ...
        def squeeze(self, dim: Dim = None) -> Tensor: ...
        def unsqueeze(self, dim: int) -> Tensor: ...
        def flatten(self, start_dim: int = 0, end_dim: int = -1) -> Tensor: ...
        def log1p(self) -> Tensor: ...
        def expm1(self) -> Tensor: ...
        def square(self) -> Tensor: ...
        def rsqrt(self) -> Tensor: ...
        def softplus(self, beta: Number = 1.0, threshold: Number = 20.0) -> Tensor: ...
        def silu(self) -> Tensor: ...
        def gelu(self, approximate: str = "none") -> Tensor: ...
        def elu(self, alpha: Number = 1.0) -> Tensor: ...
        def erf(self) -> Tensor: ...
        def bmm(self, y: TensorLike) -> Tensor: ...
        def prod(self, dim: int | None = None, keepdim: bool = False) -> Tensor: ...
        def var(self, dim: Dim = None, correction: Number = 1, keepdim: bool = False
                ) -> Tensor: ...
        def std(self, dim: Dim = None, correction: Number = 1, keepdim: bool = False
                ) -> Tensor: ...
        def norm(self, p: Number = 2, dim: Dim = None, keepdim: bool = False) -> Tensor: ...
        def cumsum(self, dim: int) -> Tensor: ...
        def argmax(self, dim: int | None = None, keepdim: bool = False) -> Tensor: ...
        def argmin(self, dim: int | None = None, keepdim: bool = False) -> Tensor: ...
        def flip(self, *dims: int | Sequence[int]) -> Tensor: ...
        def expand(self, *sizes: int | Sequence[int]) -> Tensor: ...
        def repeat(self, *sizes: int | Sequence[int]) -> Tensor: ...
        def gather(self, dim: int, index: TensorLike) -> Tensor: ...
        def index_select(self, dim: int, index: TensorLike) -> Tensor: ...
        def masked_fill(self, mask: TensorLike, value: TensorLike) -> Tensor: ...
        def tril(self, diagonal: int = 0) -> Tensor: ...
        def triu(self, diagonal: int = 0) -> Tensor: ...
        def all(self, dim: Dim = None, keepdim: builtins.bool = False) -> Tensor: ...
        def any(self, dim: Dim = None, keepdim: builtins.bool = False) -> Tensor: ...
        def isnan(self) -> Tensor: ...
        def isinf(self) -> Tensor: ...
        def isfinite(self) -> Tensor: ...
        def nan_to_num(self, nan: Number = 0.0, posinf: Number | None = None,
                       neginf: Number | None = None) -> Tensor: ...
        def floor(self) -> Tensor: ...
        def ceil(self) -> Tensor: ...
        def trunc(self) -> Tensor: ...
        def round(self, decimals: builtins.int = 0) -> Tensor: ...
        def argsort(self, dim: builtins.int = -1, descending: builtins.bool = False,
                    stable: builtins.bool = False) -> Tensor: ...
        # Installed by flowgrad.methods: compositions of the ops above (PyTorch's names).
        def mm(self, mat2: Tensor) -> Tensor: ...
        def mv(self, vec: Tensor) -> Tensor: ...
        def dot(self, tensor: Tensor) -> Tensor: ...
        def outer(self, vec2: Tensor) -> Tensor: ...
        def reciprocal(self) -> Tensor: ...
        def sort(self, dim: builtins.int = -1, descending: builtins.bool = False,
                 stable: builtins.bool = False) -> Any: ...
        def topk(self, k: builtins.int, dim: builtins.int = -1, largest: builtins.bool = True,
                 sorted: builtins.bool = True) -> Any: ...
        def unbind(self, dim: builtins.int = 0) -> tuple[Tensor, ...]: ...
        def view_as(self, other: Tensor) -> Tensor: ...
        def reshape_as(self, other: Tensor) -> Tensor: ...
        def expand_as(self, other: Tensor) -> Tensor: ...
        def type_as(self, other: Tensor) -> Tensor: ...
        def new_zeros(self, *size: builtins.int | Sequence[builtins.int], dtype: Any = None,
                      device: Any = None, requires_grad: builtins.bool = False) -> Tensor: ...
        def new_ones(self, *size: builtins.int | Sequence[builtins.int], dtype: Any = None,
                     device: Any = None, requires_grad: builtins.bool = False) -> Tensor: ...
        def new_full(self, size: Sequence[builtins.int], fill_value: Number, *,
                     dtype: Any = None, device: Any = None,
                     requires_grad: builtins.bool = False) -> Tensor: ...
        def new_tensor(self, data: Any, dtype: Any = None, device: Any = None,
                       requires_grad: builtins.bool = False) -> Tensor: ...
        # Last: as names in this class body they would hide the builtins from the
        # annotations above (hence builtins.int there).
        def int(self) -> Tensor: ...
        def half(self) -> Tensor: ...
        def bool(self) -> Tensor: ...


def _rebuild(data: Any, requires_grad: bool, device: str = "cpu") -> Tensor:
    """Unpickling: a leaf with the saved values, on the device it was on."""
    t = Tensor._make(to_array(data, None, device), False, None)
    return t.requires_grad_(True) if requires_grad else t


# Leaf id -> (weakref, hooks) called after backward accumulated its .grad.
POST_ACCUMULATE_HOOKS: dict[int, tuple[weakref.ref, list]] = {}


def _drop_hooks(key: int, _: weakref.ref) -> None:
    POST_ACCUMULATE_HOOKS.pop(key, None)


class _HookHandle:
    __slots__ = ("_hooks", "_hook")

    def __init__(self, hooks: list, hook: Callable) -> None:
        self._hooks, self._hook = hooks, hook

    def remove(self) -> None:
        for i, h in enumerate(self._hooks):
            if h is self._hook:
                del self._hooks[i]
                return
