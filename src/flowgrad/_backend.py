"""The array seam: the only core module that talks to the array library.

Everything in the engine and ``ops/`` reaches NumPy through here, so a CuPy backend can
slot in by providing the same few names. Forward rules receive the namespace as ``xp``.
"""

from __future__ import annotations

import functools
import math
import types
from collections.abc import Callable
from typing import Any

import numpy as np

ndarray = np.ndarray
generic = np.generic  # NumPy's scalar types

float32 = np.dtype("float32")
float64 = np.dtype("float64")
int64 = np.dtype("int64")
bool_ = np.dtype("bool")

default_float = float32


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


def _numpy_namespace() -> types.ModuleType:
    """NumPy, with sum/mean/max/min/any/all called as ufunc reductions and reshape as the
    array method: the same results (NumPy's own functions end in these calls) without their
    Python wrappers, which cost more than the work itself on a graph's small arrays."""
    ns = types.ModuleType("flowgrad.numpy_namespace", _numpy_namespace.__doc__)
    ns.__dict__.update({k: v for k, v in vars(np).items() if not k.startswith("__")})
    ns.__dict__["__getattr__"] = lambda name: getattr(np, name)  # lazily loaded submodules
    # C callables (partials of ufunc reductions), so an op's call to them adds no Python
    # frame; axis keeps NumPy's default of None (all axes).
    reductions = {
        "sum": _add, "max": _maximum, "amax": _maximum, "min": _minimum, "amin": _minimum,
        "any": _logical_or, "all": _logical_and}
    for name, ufunc in reductions.items():
        ns.__dict__[name] = functools.partial(ufunc.reduce, axis=None)
    ns.__dict__.update(mean=_mean, reshape=_reshape)
    return ns


#: The array namespace ops receive as ``xp``.
xp = _numpy_namespace()

_rng = np.random.default_rng()

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


def is_array(obj: object) -> bool:
    return isinstance(obj, np.ndarray)


def asarray(obj: Any, dtype: Any = None) -> Any:
    return np.asarray(obj, dtype=dtype)


def to_host(arr: Any) -> np.ndarray:
    """The array as a NumPy array on the host (a no-op for NumPy)."""
    return arr


def is_floating(dtype: Any) -> bool:
    kind = getattr(dtype, "kind", None)
    return (np.dtype(dtype).kind if kind is None else kind) == "f"


def result_type(a: Any, b: Any) -> Any:
    """The promoted dtype of two dtypes of the same category (int/int, float/float)."""
    return np.result_type(a, b)


def can_cast(source: Any, target: Any) -> bool:
    """Whether an in-place result of dtype ``source`` may be stored as ``target``."""
    return bool(np.can_cast(source, target, casting="same_kind"))


def full_like(arr: Any, value: Any) -> Any:
    return np.full(arr.shape, value, dtype=arr.dtype)


def is_private(arr: Any) -> bool:
    """Whether ``arr`` owns its memory (not a view into another array)."""
    return arr.base is None


def expand(arr: Any, shape: tuple) -> Any:
    """A new array of ``shape`` holding ``arr`` broadcast (faster than broadcast_to + copy)."""
    out = np.empty(shape, dtype=arr.dtype)
    out[...] = arr
    return out


def one(shape: tuple, dtype: Any) -> Any:
    """A one-element array of ``shape`` (all sizes 1) holding 1."""
    one = np.array(1, dtype=dtype)
    return one.reshape(shape) if shape else one


def scatter_add(target: Any, index: Any, values: Any) -> None:
    """``target[index] += values`` with repeated indices accumulating (``np.add.at``)."""
    np.add.at(target, index, values)


def manual_seed(seed: int) -> None:
    global _rng
    _rng = np.random.default_rng(seed)


def rng() -> np.random.Generator:
    return _rng


def sliding_windows(x, window_shape: tuple[int, ...], axis: tuple[int, ...]):
    """A read-only view of every window of ``window_shape`` over ``axis`` of ``x``, the window
    dims appended last (NumPy's ``sliding_window_view``): im2col without copying."""
    return np.lib.stride_tricks.sliding_window_view(x, window_shape, axis=axis)

