"""The array seam: the only core module that talks to the array library.

Everything in the engine and ``ops/`` reaches NumPy through here, so a CuPy backend can
slot in by providing the same few names. Forward rules receive the namespace as ``xp``.
"""

from __future__ import annotations

import numpy as np

xp = np
ndarray = np.ndarray

float32 = np.dtype("float32")
float64 = np.dtype("float64")
int64 = np.dtype("int64")
bool_ = np.dtype("bool")

default_float = float32

_rng = np.random.default_rng()


def is_array(obj: object) -> bool:
    return isinstance(obj, np.ndarray)


def asarray(obj, dtype=None):
    return np.asarray(obj, dtype=dtype)


def to_host(arr) -> np.ndarray:
    """The array as a NumPy array on the host (a no-op for NumPy)."""
    return arr


def is_floating(dtype) -> bool:
    return np.issubdtype(dtype, np.floating)


def scatter_add(target, index, values) -> None:
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
