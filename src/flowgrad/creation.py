"""Making tensors: from data, filled, ranges and random numbers."""

from __future__ import annotations

from typing import Any

from flowgrad import _backend
from flowgrad._backend import xp
from flowgrad.tensor import Tensor, to_array


def _shape(shape: tuple) -> tuple[int, ...]:
    if len(shape) == 1 and isinstance(shape[0], (tuple, list)):
        shape = tuple(shape[0])
    return tuple(int(s) for s in shape)


def _new(data, requires_grad: bool) -> Tensor:
    t = Tensor._make(data, False, None)
    if requires_grad:
        t.requires_grad_(True)
    return t


def tensor(data: Any, dtype=None, requires_grad: bool = False) -> Tensor:
    """A new leaf tensor holding a copy of ``data``.

    Args:
        data: a Python number, nested list, NumPy array or Tensor.
        dtype: the dtype; by default Python floats give float32, Python ints int64, and a
            NumPy array keeps its own.
        requires_grad: record operations on it for differentiation (floating dtypes only).

    Example:
        >>> import flowgrad as fg
        >>> fg.tensor([[1.0, 2.0]]).dtype
        dtype('float32')
    """
    return _new(to_array(data, dtype), requires_grad)


def _dtype(dtype):
    return _backend.default_float if dtype is None else xp.dtype(dtype)


def zeros(*shape, dtype=None, requires_grad: bool = False) -> Tensor:
    """A tensor of zeros; the shape as separate ints or one tuple."""
    return _new(xp.zeros(_shape(shape), dtype=_dtype(dtype)), requires_grad)


def ones(*shape, dtype=None, requires_grad: bool = False) -> Tensor:
    """A tensor of ones; the shape as separate ints or one tuple."""
    return _new(xp.ones(_shape(shape), dtype=_dtype(dtype)), requires_grad)


def full(shape, value, dtype=None, requires_grad: bool = False) -> Tensor:
    """A tensor of ``shape`` filled with ``value``."""
    shape = (shape,) if isinstance(shape, int) else tuple(shape)
    if dtype is None:
        dtype = to_array(value, None).dtype
    return _new(xp.full(shape, value, dtype=dtype), requires_grad)


def zeros_like(t, dtype=None, requires_grad: bool = False) -> Tensor:
    """Zeros with the shape (and, by default, the dtype) of ``t``."""
    return _new(xp.zeros(t.shape, dtype=t.dtype if dtype is None else dtype), requires_grad)


def ones_like(t, dtype=None, requires_grad: bool = False) -> Tensor:
    """Ones with the shape (and, by default, the dtype) of ``t``."""
    return _new(xp.ones(t.shape, dtype=t.dtype if dtype is None else dtype), requires_grad)


def arange(start, stop=None, step=1, dtype=None, requires_grad: bool = False) -> Tensor:
    """Evenly spaced values in ``[start, stop)``; int64 for ints, float32 for floats."""
    if stop is None:
        start, stop = 0, start
    if dtype is None:
        is_int = all(isinstance(v, int) for v in (start, stop, step))
        dtype = _backend.int64 if is_int else _backend.default_float
    return _new(xp.arange(start, stop, step, dtype=dtype), requires_grad)


def linspace(start: float, stop: float, steps: int, dtype=None,
             requires_grad: bool = False) -> Tensor:
    """``steps`` evenly spaced values from ``start`` to ``stop`` inclusive."""
    return _new(xp.linspace(start, stop, steps, dtype=_dtype(dtype)), requires_grad)


def eye(n: int, m: int | None = None, dtype=None, requires_grad: bool = False) -> Tensor:
    """The identity matrix."""
    return _new(xp.eye(n, m, dtype=_dtype(dtype)), requires_grad)


def randn(*shape, dtype=None, requires_grad: bool = False) -> Tensor:
    """Standard normal samples from flowgrad's generator (see :func:`manual_seed`)."""
    data = _backend.rng().standard_normal(_shape(shape), dtype=_backend.float64)
    return _new(data.astype(_dtype(dtype), copy=False), requires_grad)


def rand(*shape, dtype=None, requires_grad: bool = False) -> Tensor:
    """Uniform samples in [0, 1) from flowgrad's generator (see :func:`manual_seed`)."""
    data = _backend.rng().random(_shape(shape), dtype=_backend.float64)
    return _new(data.astype(_dtype(dtype), copy=False), requires_grad)


def manual_seed(seed: int) -> None:
    """Seed flowgrad's random generator (randn, rand, layer initialisation).

    As in PyTorch, ``seed`` is an int in ``[-2**63, 2**64 - 1]``; a negative seed is
    remapped to ``2**64 - 1 + seed``.

    Raises:
        TypeError: ``seed`` is not an int.
        ValueError: ``seed`` is outside that range.
    """
    if isinstance(seed, bool) or not isinstance(seed, int):
        index = getattr(seed, "__index__", None)
        if index is None:
            raise TypeError(f"manual_seed: seed must be an int, got {type(seed).__name__}")
        seed = index()
    if not -(2**63) <= seed <= 2**64 - 1:
        raise ValueError(f"manual_seed: seed must be in [-2**63, 2**64 - 1], got {seed}")
    _backend.manual_seed(seed if seed >= 0 else 2**64 - 1 + seed)
