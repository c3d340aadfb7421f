"""Tensor methods that need the op library and the engine, installed on the class once.

``tensor.py`` comes first in the import order, so what a Tensor *does* (operators from the
table in :mod:`flowgrad.ops.registry`, ``backward``, indexing, conversions, in-place
updates) is attached here, after the ops and the engine exist. ``Tensor``'s
``TYPE_CHECKING`` block declares all of it for type checkers.

In-place operations follow PyTorch. Where nothing is recorded (under ``no_grad``, or when
no tensor involved requires grad) they write into the tensor's own memory, so views and
optimizers holding it see the change. Where the graph records (a non-leaf, or an operand
that requires grad), the update is recorded as the out-of-place op and the result written
back; the tensor becomes the op's output. Either way the tensor's version counter moves,
and a node that saved the old value for its derivative refuses to backpropagate.
"""

from __future__ import annotations

from typing import Any

from flowgrad import _backend
from flowgrad.creation import full, ones, tensor, zeros
from flowgrad.engine import backward
from flowgrad.graph import grad_enabled
from flowgrad.ops import arithmetic, selection, shape
from flowgrad.ops.elementwise import cast, where
from flowgrad.ops.registry import OPS
from flowgrad.ops.shape import expand, getitem, index_put, reshape, to_device
from flowgrad.tensor import Tensor

_make = Tensor._make


def _normalize_index(index: Any, data: Any) -> Any:
    """Tensors inside an index become arrays, so ``x[x > 0]`` and ``x[idx_tensor]`` work;
    lists and NumPy arrays indexing a tensor on another device are copied there."""
    if isinstance(index, Tensor):
        return index.data
    on_cpu = type(data) is _backend.ndarray
    if isinstance(index, tuple):
        if on_cpu:
            return tuple(i.data if isinstance(i, Tensor) else i for i in index)
        return tuple(_index_part(i, data) for i in index)
    if isinstance(index, list):
        return _backend.asarray(index, device=None if on_cpu else _backend.device_of(data))
    if not on_cpu:
        return _index_part(index, data)
    return index


def _index_part(part: Any, data: Any) -> Any:
    if isinstance(part, Tensor):
        return part.data
    if isinstance(part, (list, _backend.ndarray)):
        return _backend.asarray(part, device=_backend.device_of(data))
    return part


def _getitem(self: Tensor, index: Any) -> Tensor:
    return getitem(self, index=_normalize_index(index, self.data))


def _astype(self: Tensor, dtype: Any) -> Tensor:
    """A copy with another dtype (differentiable between floating dtypes)."""
    return cast(self, dtype=_backend.xp.dtype(dtype))


def to_arguments(args: tuple, dtype: Any, device: Any) -> tuple[Any, Any]:
    """``(dtype, device)`` from ``.to``'s positional arguments, as PyTorch reads them: a
    string or device is the device, a tensor gives both its dtype and its device, anything
    else is a dtype. Shared by ``Tensor.to`` and ``Module.to``."""
    for arg in args:
        if isinstance(arg, (str, _backend.device)):
            device = arg
        elif isinstance(arg, Tensor):
            dtype, device = arg.dtype, arg.device
        else:
            dtype = arg
    return dtype, device


def _to(self: Tensor, *args: Any, dtype: Any = None, device: Any = None,
        non_blocking: bool = False, copy: bool = False) -> Tensor:
    """This tensor on another device and/or in another dtype (itself when it already is
    there and has it, as PyTorch). The dtype may be given as a dtype or as a tensor that
    has it (whose device is then taken too); the device as a string or a
    :class:`~flowgrad.device`. Moving between devices is differentiable: the gradient moves
    back."""
    dtype, device = to_arguments(args, dtype, device)
    out = self
    if device is not None:
        target = _backend.as_device(device)
        if target != self.device:
            out = to_device(self, device=target)
    if dtype is not None and _backend.xp.dtype(dtype) != out.dtype:
        if not _backend.is_floating(dtype):
            out = out.detach()  # no gradient to ints
        out = cast(out, dtype=_backend.xp.dtype(dtype))
    if copy and out is self:
        out = shape.clone(self)
    return out


def _cpu(self: Tensor) -> Tensor:
    """This tensor in host memory (itself when it is there already)."""
    return _to(self, _backend.CPU)


def _cuda(self: Tensor, device: Any = None) -> Tensor:
    """This tensor on a GPU: ``device`` (an index or a device), else the current one."""
    if device is None:
        device = "cuda"
    elif isinstance(device, int):
        device = _backend.device("cuda", device)
    return _to(self, device)


def _view(self: Tensor, *shape: Any) -> Tensor:
    """The same memory with another shape (``reshape`` that never copies)."""
    out = reshape(self, *shape)
    if self.data.size and not _backend.shares_memory(out.data, self.data):
        raise RuntimeError(f"view of shape {tuple(out.shape)} is not possible without a copy "
                           f"for a tensor of shape {tuple(self.shape)} whose memory is not "
                           f"contiguous; use .reshape(...) instead")
    return out


def _contiguous(self: Tensor) -> Tensor:
    """This tensor if its memory is row-major (C-contiguous), else a recorded row-major copy
    (``x.transpose(0, 1).contiguous().view(-1)``, as in PyTorch)."""
    return self if _backend.c_contiguous(self.data) else shape.clone(self)


def _t(self: Tensor) -> Tensor:
    """The transpose of a tensor of at most 2 dims (PyTorch's ``Tensor.t``)."""
    if self.ndim > 2:
        raise RuntimeError(f"t() expects a tensor with <= 2 dimensions, but self is "
                           f"{self.ndim}D; use transpose(dim0, dim1) or .mT")
    return self if self.ndim < 2 else shape.transpose(self, 0, 1)


def _view_as(self: Tensor, other: Tensor) -> Tensor:
    """``self.view(other.shape)``."""
    return _view(self, other.shape)


def _reshape_as(self: Tensor, other: Tensor) -> Tensor:
    """``self.reshape(other.shape)``."""
    return reshape(self, other.shape)


def _expand_as(self: Tensor, other: Tensor) -> Tensor:
    """``self.expand(other.shape)``: broadcast to ``other``'s shape, the gradient summed back."""
    return expand(self, other.shape)


def _type_as(self: Tensor, other: Tensor) -> Tensor:
    """This tensor in ``other``'s dtype (and on its device, as PyTorch's type string holds
    both); itself when it already is."""
    return _to(self, other)


# ---------------------------------------------------------------- new tensors like this one


def _new_zeros(self: Tensor, *size: Any, dtype: Any = None, device: Any = None,
               requires_grad: bool = False) -> Tensor:
    """Zeros of shape ``size`` (sizes or one sequence), with this tensor's dtype and device
    unless given."""
    return zeros(*size, dtype=self.dtype if dtype is None else dtype,
                 device=self.device if device is None else device, requires_grad=requires_grad)


def _new_ones(self: Tensor, *size: Any, dtype: Any = None, device: Any = None,
              requires_grad: bool = False) -> Tensor:
    """Ones of shape ``size`` (sizes or one sequence), with this tensor's dtype and device
    unless given."""
    return ones(*size, dtype=self.dtype if dtype is None else dtype,
                device=self.device if device is None else device, requires_grad=requires_grad)


def _new_full(self: Tensor, size: Any, fill_value: Any, *, dtype: Any = None,
              device: Any = None, requires_grad: bool = False) -> Tensor:
    """``fill_value`` everywhere in shape ``size``, with this tensor's dtype and device
    unless given."""
    return full(tuple(size), fill_value, dtype=self.dtype if dtype is None else dtype,
                device=self.device if device is None else device, requires_grad=requires_grad)


def _new_tensor(self: Tensor, data: Any, dtype: Any = None, device: Any = None,
                requires_grad: bool = False) -> Tensor:
    """A new leaf holding a copy of ``data``, with this tensor's dtype and device unless
    given (also for float data and an integer tensor, as PyTorch)."""
    return tensor(data, dtype=self.dtype if dtype is None else dtype,
                  device=self.device if device is None else device, requires_grad=requires_grad)


# ---------------------------------------------------------------- in-place updates


def _records(self: Tensor, operands: tuple) -> bool:
    if not grad_enabled():
        return False
    if self.requires_grad and self.grad_fn is None:
        raise RuntimeError(
            "a leaf tensor that requires grad is being used in an in-place operation; "
            "update parameters inside `with fg.no_grad():` (e.g. `with fg.no_grad(): "
            "w -= lr * w.grad`)")
    return self.requires_grad or any(isinstance(a, Tensor) and a.requires_grad
                                     for a in operands)


def _write_back(self: Tensor, result: Tensor) -> Tensor:
    """Store ``result``'s values in ``self``'s memory and make ``self`` its output."""
    if result.dtype != self.dtype and not _backend.can_cast(result.dtype, self.dtype):
        raise RuntimeError(f"result type {result.dtype} can't be cast to the desired output "
                           f"type {self.dtype} of an in-place operation")
    if self._base is not None and (self._base.requires_grad or result.requires_grad):
        raise RuntimeError(
            "in-place operation on a view of a tensor that is part of a recorded graph is "
            "not supported; use an out-of-place operation (y = y + 1) or .clone() the view")
    self.data[...] = result.data
    node = result.grad_fn
    if node is not None:
        node.value = self.data  # the node's output is this tensor's memory from now on
    self.grad_fn = node
    self.requires_grad = result.requires_grad
    return self


def _mark_changed(self: Tensor) -> None:
    """Bump the version counter and flag nodes whose saved output is this memory."""
    self._shared_version().bump()
    for t in (self, self._base):
        if t is not None and t.grad_fn is not None and t.grad_fn.op.reads_out:
            t.grad_fn.out_modified = True


def _inplace(self: Tensor, opname: str, operands: tuple, params: dict) -> Tensor:
    op = OPS[opname]
    if _records(self, operands):
        # The history before the change: a copy, since the memory is about to change.
        before = _make(_backend.copy(self.data), self.requires_grad, self.grad_fn)
        if self.grad_fn is not None and self.grad_fn.value is self.data:
            self.grad_fn.value = before.data
        result = op(before, *operands, **params)
        _write_back(self, result)
        self._shared_version().bump()
        return self
    arrays = [_operand(a, self) for a in operands]
    token = _backend.quiet()
    try:
        out = op.forward(_backend.namespace(self.data), self.data, *arrays, **params)
    finally:
        _backend.loud(token)
    if _backend.host_dtype(out.dtype) != self.dtype and not _backend.can_cast(out.dtype,
                                                                              self.dtype):
        raise RuntimeError(f"result type {out.dtype} can't be cast to the desired output "
                           f"type {self.dtype} of an in-place operation")
    self.data[...] = out
    _mark_changed(self)
    return self


def _operand(a: Any, self: Tensor) -> Any:
    """An operand of an in-place update as an array on ``self``'s device."""
    if isinstance(a, Tensor):
        if (type(a.data) is not _backend.ndarray or type(self.data) is not _backend.ndarray) \
                and a.device != self.device:
            raise RuntimeError(f"expected all tensors to be on the same device, but found at "
                               f"least two devices, {self.device} and {a.device}")
        return a.data
    if type(self.data) is not _backend.ndarray and isinstance(a, _backend.ndarray):
        return _backend.asarray(a, device=self.device)
    return a


def _binary_inplace(opname: str) -> Any:
    def method(self: Tensor, other: Any) -> Tensor:
        return _inplace(self, opname, (other,), {})

    method.__name__ = f"{opname}_"
    method.__doc__ = f"In place: ``self = self.{opname}(other)``, keeping this tensor's memory."
    return method


def _clamp_(self: Tensor, min: float | None = None, max: float | None = None) -> Tensor:
    """In place: values clipped to ``[min, max]``."""
    return _inplace(self, "clamp", (), {"min": min, "max": max})


def inplace_op(self: Tensor, opname: str, **params: Any) -> Tensor:
    """``self`` with its values replaced by the unary op ``opname`` applied to them (the
    ``inplace=True`` of the activation layers); recorded like every in-place update."""
    return _inplace(self, opname, (), params)


def _relu_(self: Tensor) -> Tensor:
    """In place: values replaced by max(x, 0) (relu'(0) = 0)."""
    return _inplace(self, "relu", (), {})


def _fill_from(self: Tensor, value: Any) -> Tensor:
    if _records(self, (value,)):
        keep = _backend.namespace(self.data).zeros(self.shape, dtype=_backend.bool_,
                                                   device=self.data.device)
        before = _make(_backend.copy(self.data), self.requires_grad, self.grad_fn)
        result = where(keep, before, value)
        _write_back(self, result if result.dtype == self.dtype else cast(result, dtype=self.dtype))
        self._shared_version().bump()
        return self
    self.data[...] = _operand(value, self)
    _mark_changed(self)
    return self


def _fill_(self: Tensor, value: Any) -> Tensor:
    """In place: every element set to ``value``."""
    return _fill_from(self, value)


def _zero_(self: Tensor) -> Tensor:
    """In place: every element set to 0."""
    return _fill_from(self, 0)


def _copy_(self: Tensor, src: Any) -> Tensor:
    """In place: the values of ``src`` (broadcast to this shape, converted to this dtype)."""
    shape = tuple(_backend.xp.shape(src.data if isinstance(src, Tensor) else src))
    try:
        fits = _backend.xp.broadcast_shapes(shape, self.shape) == tuple(self.shape)
    except ValueError:
        fits = False
    if not fits:
        raise RuntimeError(f"copy_: source of shape {shape} cannot be broadcast to "
                           f"shape {tuple(self.shape)}")
    return _fill_from(self, src)


def _setitem(self: Tensor, index: Any, value: Any) -> None:
    index = _normalize_index(index, self.data)
    if _records(self, (value,)):
        before = _make(_backend.copy(self.data), self.requires_grad, self.grad_fn)
        if self.grad_fn is not None and self.grad_fn.value is self.data:
            self.grad_fn.value = before.data
        _write_back(self, index_put(before, value, index=index))
        self._shared_version().bump()
        return
    _backend.index_put(self.data, index, _operand(value, self))
    _mark_changed(self)


def bind() -> None:
    """Install the methods above on Tensor (done once, when this module is imported)."""
    methods = {
        "backward": backward,
        "__getitem__": _getitem,
        "__setitem__": _setitem,
        "astype": _astype,
        "to": _to,
        "cpu": _cpu,
        "cuda": _cuda,
        "float": lambda self: _to(self, _backend.float32),
        "double": lambda self: _to(self, _backend.float64),
        "long": lambda self: _to(self, _backend.int64),
        "int": lambda self: _to(self, _backend.xp.int32),
        "half": lambda self: _to(self, _backend.xp.float16),
        "bool": lambda self: _to(self, _backend.bool_),
        "view_as": _view_as,
        "reshape_as": _reshape_as,
        "expand_as": _expand_as,
        "type_as": _type_as,
        "new_zeros": _new_zeros,
        "new_ones": _new_ones,
        "new_full": _new_full,
        "new_tensor": _new_tensor,
        "view": _view,
        "contiguous": _contiguous,
        "t": _t,
        # Functions returning several tensors, or dispatching on their arguments.
        "max": lambda self, dim=None, keepdim=False: selection.max(self, dim, keepdim),
        "min": lambda self, dim=None, keepdim=False: selection.min(self, dim, keepdim),
        "split": lambda self, split_size, dim=0: shape.split(self, split_size, dim),
        "chunk": lambda self, chunks, dim=0: shape.chunk(self, chunks, dim),
        "unbind": lambda self, dim=0: shape.unbind(self, dim),
        "sort": lambda self, dim=-1, descending=False, stable=False: selection.sort(
            self, dim, descending, stable),
        "topk": lambda self, k, dim=-1, largest=True, sorted=True: selection.topk(
            self, k, dim, largest, sorted),
        "mm": lambda self, mat2: arithmetic.mm(self, mat2),
        "mv": lambda self, vec: arithmetic.mv(self, vec),
        "dot": lambda self, tensor: arithmetic.dot(self, tensor),
        "outer": lambda self, vec2: arithmetic.outer(self, vec2),
        "reciprocal": lambda self: arithmetic.reciprocal(self),
        "add_": _binary_inplace("add"),
        "sub_": _binary_inplace("sub"),
        "mul_": _binary_inplace("mul"),
        "div_": _binary_inplace("div"),
        "clamp_": _clamp_,
        "relu_": _relu_,
        "zero_": _zero_,
        "fill_": _fill_,
        "copy_": _copy_,
    }
    methods["__iadd__"] = methods["add_"]
    methods["__isub__"] = methods["sub_"]
    methods["__imul__"] = methods["mul_"]
    methods["__itruediv__"] = methods["div_"]
    for name, fn in methods.items():
        setattr(Tensor, name, fn)


bind()
