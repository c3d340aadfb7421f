"""The ``strict`` test device: ``array-api-strict``, a minimal implementation of the Python
array API standard, on CPU.

It proves that the ops go through the seam: its arrays have only the standard's methods and
functions (no ``.copy()``, ``.astype``, ``.T`` on N-d arrays, ``np.add.at``, mixing bool and
float, ...), and they live on one of its simulated devices (``strict:0`` is its
``device1``, ``strict:1`` its ``device2``), where converting one to NumPy implicitly or
combining it with another device's array raises. Run the tests on it with
``python -m pytest --backend strict``.

The namespace is array-api-strict's, except that functions taking a ``dtype`` also take
flowgrad's dtypes (NumPy dtypes), as every backend does. What the standard lacks
(scatter-add, fancy assignment, sliding windows, einsum) is done here on the NumPy array
inside, as a GPU library's own kernel would do it.
"""

from __future__ import annotations

import functools
import types
from typing import Any

import array_api_strict as strict
import numpy as np
from array_api_strict._array_object import Array

from flowgrad.backends import numpy_backend

name = "strict"
ndarray = Array

_DEVICES = (strict.Device("device1"), strict.Device("device2"))
_HOST = strict.Device("CPU_DEVICE")
_DTYPES = {np.dtype(n): getattr(strict, n) for n in (
    "bool", "int8", "int16", "int32", "int64", "uint8", "uint16", "uint32", "uint64",
    "float32", "float64", "complex64", "complex128")}
HOST_DTYPES = {v: k for k, v in _DTYPES.items()}
_DTYPE_TYPE = type(strict.float32)


def native_dtype(dtype: Any) -> Any:
    """flowgrad's dtype (a NumPy dtype, or anything np.dtype() takes) as this library's."""
    if dtype is None or type(dtype) is _DTYPE_TYPE:
        return dtype
    return _DTYPES[np.dtype(dtype)]


def host_dtype(dtype: Any) -> Any:
    return HOST_DTYPES[dtype]


def _with_dtype(fn: Any, position: int | None = None) -> Any:
    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        if "dtype" in kwargs:
            kwargs["dtype"] = native_dtype(kwargs["dtype"])
        if position is not None and len(args) > position:
            args = args[:position] + (native_dtype(args[position]),) + args[position + 1:]
        return fn(*args, **kwargs)

    return wrapper


def _namespace() -> types.ModuleType:
    ns = types.ModuleType("flowgrad.strict_namespace", __doc__)
    ns.__dict__.update({k: v for k, v in vars(strict).items() if not k.startswith("_")})
    for fn in ("asarray", "arange", "empty", "empty_like", "eye", "full", "full_like",
               "linspace", "ones", "ones_like", "zeros", "zeros_like", "sum", "prod",
               "cumulative_sum", "cumulative_prod", "finfo", "iinfo"):
        ns.__dict__[fn] = _with_dtype(getattr(strict, fn))
    ns.__dict__["astype"] = _with_dtype(strict.astype, 1)
    ns.__dict__["isdtype"] = _with_dtype(strict.isdtype, 0)
    ns.__dict__["can_cast"] = _with_dtype(_with_dtype(strict.can_cast, 0), 1)
    return ns


xp = _namespace()
quiet, loud = numpy_backend.quiet, numpy_backend.loud  # NumPy computes underneath


def available() -> str | None:
    return None


def device_count() -> int:
    return len(_DEVICES)


def native_device(index: int) -> Any:
    return _DEVICES[index]


def device_index(arr: Any) -> int:
    return _DEVICES.index(arr.device)


def use(index: int) -> None:
    """Arrays carry their device: nothing to select."""


def synchronize(index: int | None = None) -> None:
    """Runs synchronously: nothing to wait for."""


def from_host(arr: Any, index: int) -> Any:
    return strict.asarray(arr, device=_DEVICES[index], copy=True)


def to_host(arr: Any) -> np.ndarray:
    return np.asarray(arr.to_device(_HOST))


def is_private(arr: Any) -> bool:
    return False  # views are not visible through the standard: always copy


def copy(arr: Any) -> Any:
    return strict.asarray(arr, copy=True)


def expand(arr: Any, shape: tuple) -> Any:
    return strict.asarray(strict.broadcast_to(arr, shape), copy=True)


# What the standard lacks, done on the NumPy array inside (the test backend's "kernels").


def _inner(obj: Any) -> Any:
    if isinstance(obj, Array):
        return obj._array
    if isinstance(obj, tuple):
        return tuple(_inner(o) for o in obj)
    return obj


def _check_device(target: Any, *others: Any) -> None:
    for o in others:
        parts = o if isinstance(o, tuple) else (o,)
        for p in parts:
            if isinstance(p, Array) and p.device != target.device:
                raise ValueError(f"arrays on two devices: {target.device} and {p.device}")
            if isinstance(p, np.ndarray):
                raise TypeError("a NumPy array was passed where a strict-device array is "
                                "needed (an implicit host-to-device transfer)")


def scatter_add(target: Any, index: Any, values: Any) -> None:
    _check_device(target, index, values)
    np.add.at(target._array, _inner(index), _inner(values))


def take(x: Any, index: Any) -> Any:
    _check_device(x, index)
    return Array._new(np.asarray(x._array[_inner(index)]), device=x.device)


def index_put(target: Any, index: Any, values: Any) -> None:
    _check_device(target, index, values)
    target._array[_inner(index)] = _inner(values)


def sliding_windows(x: Any, window_shape: tuple[int, ...], axis: tuple[int, ...]) -> Any:
    view = np.lib.stride_tricks.sliding_window_view(x._array, window_shape, axis=axis)
    return Array._new(view, device=x.device)


def einsum(equation: str, *operands: Any) -> Any:
    _check_device(operands[0], *operands[1:])
    out = np.asarray(np.einsum(equation, *[o._array for o in operands]))
    return Array._new(out, device=operands[0].device)


def into(out: Any, name: str, *args: Any) -> Any:
    _check_device(out, *args)
    getattr(np, name)(*[_inner(a) for a in args], out=out._array)
    return out


def contiguous(x: Any) -> Any:
    return x


def channels_first(x: Any) -> bool:
    return False


def shares_memory(a: Any, b: Any) -> bool:
    return bool(np.shares_memory(a._array, b._array))


def c_contiguous(x: Any) -> bool:
    return True
