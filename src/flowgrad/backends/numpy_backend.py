"""The ``cpu`` device: NumPy.

The namespace ops receive is NumPy with the reductions, reshape and astype called without
NumPy's Python wrappers (see ``_namespace``), and with the array API standard's names an
older NumPy lacks.
"""

from __future__ import annotations

import functools
import math
import types
from collections.abc import Callable
from typing import Any

import numpy as np

name = "cpu"
ndarray = np.ndarray

# Typed as Any: NumPy's stubs cannot express keepdims given as a run-time bool.
_add: Any = np.add
_maximum: Any = np.maximum
_minimum: Any = np.minimum
_logical_or: Any = np.logical_or
_logical_and: Any = np.logical_and


def _mean(x: Any, axis: Any = None, keepdims: bool = False) -> Any:
    if axis is None:
        n = x.size
    else:
        n = math.prod(x.shape[a] for a in ((axis,) if isinstance(axis, int) else axis))
    total = _add.reduce(x, axis=axis, keepdims=keepdims)
    return np.true_divide(total, n) if total.dtype.kind == "f" else total / n


def _reshape(x: Any, shape: Any, copy: bool | None = None) -> Any:
    return x.reshape(shape) if copy is None else np.reshape(x, shape, copy=copy)


def _astype(x: Any, dtype: Any, /, *, copy: bool = True, device: Any = None) -> Any:
    return x.astype(dtype, copy=copy)


def _matrix_transpose(x: Any) -> Any:
    return x.swapaxes(-1, -2)


def _cumulative_sum(x: Any, /, *, axis: int | None = None, dtype: Any = None,
                    include_initial: bool = False) -> Any:
    if include_initial:
        raise NotImplementedError("cumulative_sum(include_initial=True)")
    return np.cumsum(x, axis=axis, dtype=dtype)


def _cumulative_prod(x: Any, /, *, axis: int | None = None, dtype: Any = None,
                     include_initial: bool = False) -> Any:
    if include_initial:
        raise NotImplementedError("cumulative_prod(include_initial=True)")
    return np.cumprod(x, axis=axis, dtype=dtype)


def _namespace() -> types.ModuleType:
    """NumPy, with sum/mean/max/min/any/all called as ufunc reductions, reshape and astype
    as the array methods: the same results (NumPy's own functions end in these calls)
    without their Python wrappers, which cost more than the work itself on a graph's small
    arrays; and the array API standard's names an older NumPy lacks."""
    ns = types.ModuleType("flowgrad.numpy_namespace", _namespace.__doc__)
    ns.__dict__.update({k: v for k, v in vars(np).items() if not k.startswith("__")})
    ns.__dict__["__getattr__"] = lambda name: getattr(np, name)  # lazily loaded submodules
    # C callables (partials of ufunc reductions), so an op's call to them adds no Python
    # frame; axis keeps NumPy's default of None (all axes).
    reductions = {
        "sum": _add, "max": _maximum, "amax": _maximum, "min": _minimum, "amin": _minimum,
        "any": _logical_or, "all": _logical_and}
    for name, ufunc in reductions.items():
        ns.__dict__[name] = functools.partial(ufunc.reduce, axis=None)
    ns.__dict__.update(mean=_mean, reshape=_reshape, astype=_astype,
                       matrix_transpose=_matrix_transpose)
    if not hasattr(np, "cumulative_sum"):  # NumPy < 2.1
        ns.__dict__["cumulative_sum"] = _cumulative_sum
        ns.__dict__["cumulative_prod"] = _cumulative_prod
    return ns


#: The array namespace ops receive as ``xp``.
xp = _namespace()


# Ops return PyTorch's values at the edges of their domains (log(0) = -inf, 0/0 = nan)
# without NumPy's floating-point warnings, which would point into flowgrad rather than at
# the user's code. ``quiet()`` / ``loud(token)`` bracket every forward and backward pass;
# they set NumPy's error-state context variable directly, ten times cheaper than entering
# ``np.errstate`` once per op.
try:
    from numpy._core._ufunc_config import (  # type: ignore[attr-defined]
        _extobj_contextvar,
        _make_extobj,
    )

    # quiet() silences floating-point warnings until loud(token); both are C calls.
    quiet: Callable[[], Any] = functools.partial(_extobj_contextvar.set,
                                                 _make_extobj(all="ignore"))
    loud: Callable[[Any], None] = _extobj_contextvar.reset

except ImportError:  # a NumPy without that context variable: the public, slower way
    def quiet() -> Any:
        state = np.errstate(all="ignore")
        state.__enter__()
        return state

    def loud(token: Any) -> None:
        token.__exit__(None, None, None)


def available() -> str | None:
    return None


def device_count() -> int:
    return 1


def native_device(index: int) -> Any:
    return "cpu"


def device_index(arr: Any) -> int:
    return 0


def use(index: int) -> None:
    """NumPy has one device: nothing to select."""


def synchronize(index: int | None = None) -> None:
    """NumPy runs synchronously: nothing to wait for."""


def from_host(arr: Any, index: int) -> Any:
    return arr


def to_host(arr: Any) -> np.ndarray:
    return arr


def host_dtype(dtype: Any) -> Any:
    return dtype


def native_dtype(dtype: Any) -> Any:
    return np.dtype(dtype)


def is_private(arr: Any) -> bool:
    """Whether ``arr`` owns its memory (not a view into another array)."""
    return arr.base is None


def copy(arr: Any) -> Any:
    return arr.copy()


def expand(arr: Any, shape: tuple) -> Any:
    """A new array of ``shape`` holding ``arr`` broadcast (faster than broadcast_to + copy)."""
    out = np.empty(shape, dtype=arr.dtype)
    out[...] = arr
    return out


def scatter_add(target: Any, index: Any, values: Any) -> None:
    """``target[index] += values`` with repeated indices accumulating (``np.add.at``)."""
    np.add.at(target, index, values)


def take(x: Any, index: Any) -> Any:
    """``x[index]`` with NumPy's rules for integer-array indices (mixed with slices, fewer
    than ``x.ndim``), which the array API standard does not have."""
    return x[index]


def index_put(target: Any, index: Any, values: Any) -> None:
    """``target[index] = values`` for any index, integer arrays included."""
    target[index] = values


def sliding_windows(x: Any, window_shape: tuple[int, ...], axis: tuple[int, ...]) -> Any:
    """A read-only view of every window of ``window_shape`` over ``axis`` of ``x``, the window
    dims appended last (NumPy's ``sliding_window_view``): im2col without copying."""
    return np.lib.stride_tricks.sliding_window_view(x, window_shape, axis=axis)


def einsum(equation: str, *operands: Any) -> Any:
    return np.asarray(np.einsum(equation, *operands))


def into(out: Any, name: str, *args: Any) -> Any:
    return getattr(np, name)(*args, out=out)


def contiguous(x: Any) -> Any:
    return np.ascontiguousarray(x)


def channels_first(x: Any) -> bool:
    """Whether the 4-D ``x`` is (C, N, H, W) memory seen as (N, C, H, W)."""
    return not x.flags.c_contiguous and x.transpose(1, 0, 2, 3).flags.c_contiguous


def shares_memory(a: Any, b: Any) -> bool:
    return bool(np.shares_memory(a, b))


def c_contiguous(x: Any) -> bool:
    return bool(x.flags.c_contiguous)
