"""Making tensors: from data, filled, ranges and random numbers, on any device.

Every function takes ``device=`` (``"cpu"``, ``"cuda"``, ``"cuda:1"``, a
:class:`~flowgrad.device`; default: the default device, ``cpu`` unless
:func:`~flowgrad.set_default_device` says otherwise). Filled tensors and ranges are made on
the device directly; random numbers are drawn on the host, from flowgrad's one generator,
and copied, so a seed gives the same numbers on every device.
"""

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


def _make(fn: str, device: Any, *args: Any, dtype: Any, **kwargs: Any) -> Any:
    """``xp.fn(*args, dtype=dtype)`` on ``device``: NumPy's directly for the cpu."""
    where = _backend.as_device(device)
    if where is _backend.CPU:
        return getattr(xp, fn)(*args, dtype=dtype, **kwargs)
    module = _backend.backend(where.type)
    namespace = _backend.namespace_of(where)
    return getattr(namespace, fn)(*args, dtype=module.native_dtype(dtype),
                                  device=module.native_device(where.index), **kwargs)


def tensor(data: Any, dtype=None, requires_grad: bool = False, device=None) -> Tensor:
    """A new leaf tensor holding a copy of ``data``.

    Args:
        data: a Python number, nested list, NumPy array or Tensor.
        dtype: the dtype; by default Python floats give float32, Python ints int64, and a
            NumPy array keeps its own.
        requires_grad: record operations on it for differentiation (floating dtypes only).
        device: where it lives (default: ``data``'s device for a Tensor, else the default
            device).

    Example:
        >>> import flowgrad as fg
        >>> fg.tensor([[1.0, 2.0]]).dtype
        dtype('float32')
    """
    return _new(to_array(data, dtype, device), requires_grad)


def _dtype(dtype):
    return _backend.default_float if dtype is None else xp.dtype(dtype)


def zeros(*shape, dtype=None, device=None, requires_grad: bool = False) -> Tensor:
    """A tensor of zeros; the shape as separate ints or one tuple."""
    return _new(_make("zeros", device, _shape(shape), dtype=_dtype(dtype)), requires_grad)


def ones(*shape, dtype=None, device=None, requires_grad: bool = False) -> Tensor:
    """A tensor of ones; the shape as separate ints or one tuple."""
    return _new(_make("ones", device, _shape(shape), dtype=_dtype(dtype)), requires_grad)


def full(shape, value, dtype=None, requires_grad: bool = False, device=None) -> Tensor:
    """A tensor of ``shape`` filled with ``value``."""
    shape = (shape,) if isinstance(shape, int) else tuple(shape)
    if dtype is None:
        dtype = to_array(value, None, "cpu").dtype
    return _new(_make("full", device, shape, value, dtype=xp.dtype(dtype)), requires_grad)


def _like(t, dtype, device):
    return (t.dtype if dtype is None else xp.dtype(dtype),
            getattr(t, "device", None) if device is None else device)


def zeros_like(t, dtype=None, requires_grad: bool = False, device=None) -> Tensor:
    """Zeros with the shape (and, by default, the dtype and device) of ``t``."""
    dtype, device = _like(t, dtype, device)
    return _new(_make("zeros", device, tuple(t.shape), dtype=dtype), requires_grad)


def ones_like(t, dtype=None, requires_grad: bool = False, device=None) -> Tensor:
    """Ones with the shape (and, by default, the dtype and device) of ``t``."""
    dtype, device = _like(t, dtype, device)
    return _new(_make("ones", device, tuple(t.shape), dtype=dtype), requires_grad)


def arange(start, stop=None, step=1, dtype=None, requires_grad: bool = False,
           device=None) -> Tensor:
    """Evenly spaced values in ``[start, stop)``; int64 for ints, float32 for floats."""
    if stop is None:
        start, stop = 0, start
    if dtype is None:
        is_int = all(isinstance(v, int) for v in (start, stop, step))
        dtype = _backend.int64 if is_int else _backend.default_float
    return _new(_make("arange", device, start, stop, step, dtype=xp.dtype(dtype)),
                requires_grad)


def linspace(start: float, stop: float, steps: int, dtype=None,
             requires_grad: bool = False, device=None) -> Tensor:
    """``steps`` evenly spaced values from ``start`` to ``stop`` inclusive."""
    return _new(_make("linspace", device, start, stop, steps, dtype=_dtype(dtype)),
                requires_grad)


def eye(n: int, m: int | None = None, dtype=None, requires_grad: bool = False,
        device=None) -> Tensor:
    """The identity matrix."""
    return _new(_make("eye", device, n, m, dtype=_dtype(dtype)), requires_grad)


def _random(values, dtype, device, requires_grad: bool) -> Tensor:
    data = values.astype(_dtype(dtype), copy=False)
    where = _backend.as_device(device)
    return _new(data if where is _backend.CPU else _backend.from_host(data, where),
                requires_grad)


def randn(*shape, dtype=None, device=None, requires_grad: bool = False) -> Tensor:
    """Standard normal samples from flowgrad's generator (see :func:`manual_seed`)."""
    values = _backend.rng().standard_normal(_shape(shape), dtype=_backend.float64)
    return _random(values, dtype, device, requires_grad)


def rand(*shape, dtype=None, device=None, requires_grad: bool = False) -> Tensor:
    """Uniform samples in [0, 1) from flowgrad's generator (see :func:`manual_seed`)."""
    values = _backend.rng().random(_shape(shape), dtype=_backend.float64)
    return _random(values, dtype, device, requires_grad)


def manual_seed(seed: int) -> None:
    """Seed flowgrad's random generator (randn, rand, layer initialisation): one generator,
    on the host, for every device.

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
