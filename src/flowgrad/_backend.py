"""The array seam: the only core module that talks to array libraries.

Every array lives on a device, and every device type has a backend module in
:mod:`flowgrad.backends` (``cpu``: NumPy, ``cuda``: CuPy, ``strict``: array-api-strict, for
tests). The engine and ``ops/`` reach arrays only through the names here, which dispatch on
the array's type (NumPy first, with no lookup), and through the namespace ``xp`` a forward
receives: the one of its inputs' device, resolved once per op by the registry.

flowgrad's dtypes are NumPy dtypes on every device (``t.dtype``, ``fg.float32``); a backend
whose arrays have dtypes of their own translates (see ``host_dtype``/``native_dtype``).
There is one random generator, on the host, so ``fg.manual_seed(0)`` gives the same numbers
on every device.
"""

from __future__ import annotations

import importlib
from typing import Any

import numpy as np

from flowgrad.backends import numpy_backend

ndarray = np.ndarray
generic = np.generic  # NumPy's scalar types
dtype_type = np.dtype

float32 = np.dtype("float32")
float64 = np.dtype("float64")
int64 = np.dtype("int64")
bool_ = np.dtype("bool")

default_float = float32

#: The NumPy namespace (the ``cpu`` device's); other devices' come from their backends.
xp = numpy_backend.xp
quiet, loud = numpy_backend.quiet, numpy_backend.loud

_rng = np.random.default_rng()

INSTALL_HINT = 'pip install "flowgrad[cuda12]"'
_MODULES = {"cuda": "flowgrad.backends.cupy_backend",
            "strict": "flowgrad.backends.strict_backend"}
_LOADED: dict[str, Any] = {"cpu": numpy_backend}
_BY_TYPE: dict[type, Any] = {np.ndarray: numpy_backend}
_HOST_DTYPES: dict[Any, np.dtype] = {}  # a backend's own dtype objects -> NumPy dtypes
#: The array types of every loaded backend (for isinstance checks).
array_types: tuple[type, ...] = (np.ndarray,)


# ---------------------------------------------------------------- devices


class device:
    """Where a tensor's memory is: ``fg.device("cpu")``, ``fg.device("cuda:1")``,
    ``fg.device("cuda", 0)``. Prints as ``cpu`` or ``cuda:0``, as PyTorch's.

    ``cpu`` is NumPy, ``cuda`` is CuPy (one index per GPU), and ``strict`` is a test device
    (array-api-strict's simulated devices ``strict:0`` and ``strict:1``).
    """

    __slots__ = ("type", "index")
    TYPES = ("cpu", "cuda", "strict")
    type: str
    index: int | None

    def __init__(self, type: str | device, index: int | None = None) -> None:  # noqa: A002
        spec = type
        if isinstance(spec, device):
            if index is not None:
                raise TypeError("device(): an index with a device that has one")
            kind, index = spec.type, spec.index
        elif not isinstance(spec, str):
            raise TypeError(f"device(): expected a string such as 'cpu' or 'cuda:0', got "
                            f"{spec!r}")
        else:
            kind, colon, number = spec.strip().partition(":")
            if colon:
                if index is not None or not number.isdigit():
                    raise RuntimeError(f"Invalid device string: {spec!r}")
                index = int(number)
        if kind not in self.TYPES:
            raise RuntimeError(f"Expected one of {', '.join(self.TYPES)} device type at start "
                               f"of device string: {kind!r}")
        if index is not None and (not isinstance(index, int) or index < 0):
            raise RuntimeError(f"device index must be a non-negative int, got {index!r}")
        if kind == "cpu" and index not in (None, 0):
            raise RuntimeError(f"the cpu device has no index {index}")
        self.type = kind
        self.index = index

    def __str__(self) -> str:
        return self.type if self.index is None else f"{self.type}:{self.index}"

    def __repr__(self) -> str:
        index = "" if self.index is None else f", index={self.index}"
        return f"device(type='{self.type}'{index})"

    def __eq__(self, other: object) -> bool:
        if isinstance(other, str):
            try:
                other = device(other)
            except (RuntimeError, TypeError):
                return False
        return (isinstance(other, device) and self.type == other.type
                and self.index == other.index)

    def __hash__(self) -> int:
        return hash((self.type, self.index))


CPU = device("cpu")
_DEVICES: dict[tuple[str, int], device] = {("cpu", 0): CPU}
_default: device = CPU


def _device_of_kind(kind: str, index: int) -> device:
    found = _DEVICES.get((kind, index))
    if found is None:
        found = _DEVICES[(kind, index)] = device(kind, index)
    return found


def backend(kind: str) -> Any:
    """The backend module of a device type, imported on first use.

    Raises:
        RuntimeError: the device's library, or a device for it, is missing; the message
            says which and how to install it.
    """
    module = _LOADED.get(kind)
    if module is not None:
        return module
    if kind == "cuda":
        try:
            module = importlib.import_module(_MODULES[kind])
        except ImportError as exc:
            if getattr(exc, "name", None) != "cupy" and "cupy" not in str(exc):
                raise
            raise RuntimeError(f"cuda: CuPy is not installed, so tensors cannot live on a "
                               f"GPU. Install it with {INSTALL_HINT} (CUDA 12; the extra "
                               f"flowgrad[cuda] is the same), or use device='cpu'.") from None
        reason = module.available()
        if reason is not None:
            raise RuntimeError(f"cuda: {reason}. flowgrad needs an NVIDIA GPU with a working "
                               f"driver for device 'cuda' ({INSTALL_HINT} installs CuPy); "
                               f"use device='cpu'.")
    elif kind == "strict":
        try:
            module = importlib.import_module(_MODULES[kind])
        except ImportError:
            raise RuntimeError("strict: the test device needs array-api-strict (pip install "
                               "array-api-strict, or the test extra)") from None
    else:
        raise RuntimeError(f"unknown device type {kind!r}")
    _register(kind, module)
    return module


def _register(kind: str, module: Any) -> None:
    global array_types
    _LOADED[kind] = module
    _BY_TYPE[module.ndarray] = module
    _HOST_DTYPES.update(getattr(module, "HOST_DTYPES", {}))
    array_types = tuple(_BY_TYPE)


def as_device(spec: Any = None) -> device:
    """``spec`` (a device, a string such as ``"cuda:1"``, an int for a GPU, or None for the
    default device) as a concrete, usable device with an index.

    Raises:
        RuntimeError: the device is unavailable (see :func:`backend`) or has no such index.
    """
    if spec is None:
        return _default
    if isinstance(spec, device):
        d = spec
    elif isinstance(spec, int) and not isinstance(spec, bool):
        d = device("cuda", spec)
    else:
        d = device(spec)
    if d.type == "cpu":
        return CPU
    module = backend(d.type)
    index = d.index
    if index is None:
        index = module.current_index() if hasattr(module, "current_index") else 0
    count = module.device_count()
    if index >= count:
        raise RuntimeError(f"{d.type}:{index}: there is no such device ({count} "
                           f"{d.type} device{'s' if count != 1 else ''} here)")
    return _device_of_kind(d.type, index)


def set_default_device(spec: Any) -> None:
    """Make new tensors (``fg.tensor``, ``fg.zeros``, ...) go to ``spec`` unless told
    otherwise, as ``torch.set_default_device``."""
    global _default
    _default = as_device("cpu" if spec is None else spec)


def get_default_device() -> device:
    return _default


def backend_of(arr: Any) -> Any:
    """The backend module that owns ``arr``."""
    module = _BY_TYPE.get(type(arr))
    if module is None:
        if isinstance(arr, np.generic):  # a NumPy scalar, e.g. from a full reduction
            return numpy_backend
        for t, m in _BY_TYPE.items():
            if isinstance(arr, t):
                return m
        raise TypeError(f"not an array of any flowgrad device: {type(arr).__name__}")
    return module


def device_of(arr: Any) -> device:
    """The device ``arr`` lives on."""
    if type(arr) is np.ndarray:
        return CPU
    module = backend_of(arr)
    return _device_of_kind(module.name, module.device_index(arr))


def namespace(arr: Any) -> Any:
    """The array namespace for ``arr``'s device (also makes that device current)."""
    if type(arr) is np.ndarray:
        return xp
    module = backend_of(arr)
    module.use(module.device_index(arr))
    return module.xp


def namespace_of(dev: device) -> Any:
    if dev is CPU or dev.type == "cpu":
        return xp
    module = backend(dev.type)
    module.use(dev.index)
    return module.xp


def native_device(dev: device) -> Any:
    return backend(dev.type).native_device(dev.index or 0)


def on_host(arr: Any) -> bool:
    """Whether ``arr`` is in host memory (reading its values costs no transfer)."""
    return type(arr) is np.ndarray or isinstance(arr, (np.ndarray, np.generic))


def is_array(obj: object) -> bool:
    return isinstance(obj, array_types)


# ---------------------------------------------------------------- moving arrays


def to_host(arr: Any) -> np.ndarray:
    """The array as a NumPy array on the host (itself for NumPy; a copy from a device)."""
    if type(arr) is np.ndarray:
        return arr
    if isinstance(arr, (np.ndarray, np.generic)):
        return np.asarray(arr)
    return backend_of(arr).to_host(arr)


def to_device(arr: Any, dev: device) -> Any:
    """``arr`` on device ``dev`` (itself when it is there already; else a copy)."""
    here = device_of(arr)
    if here == dev:
        return arr
    host = to_host(arr)
    if dev.type == "cpu":
        return host if here.type != "cpu" else host.copy()
    return backend(dev.type).from_host(host, dev.index)


def from_host(arr: Any, dev: device) -> Any:
    """A host array (or anything ``np.asarray`` takes) copied to ``dev``."""
    if dev.type == "cpu":
        return arr
    return backend(dev.type).from_host(np.asarray(arr), dev.index)


def asarray(obj: Any, dtype: Any = None, device: device | None = None) -> Any:
    """``obj`` as an array on ``device``; without one, an array stays where it is and
    anything else (numbers, lists, NumPy scalars) becomes a host array."""
    if device is None:
        if type(obj) is np.ndarray or not isinstance(obj, array_types):
            return np.asarray(obj, dtype=dtype)
        return obj if dtype is None else astype(obj, dtype)
    if device.type == "cpu":
        if isinstance(obj, np.ndarray) or not is_array(obj):
            return np.asarray(obj, dtype=dtype)
        return to_host(obj) if dtype is None else to_host(obj).astype(dtype)
    if is_array(obj) and not isinstance(obj, np.ndarray):
        arr = to_device(obj, device)
        return arr if dtype is None else astype(arr, dtype)
    return backend(device.type).from_host(np.asarray(obj, dtype=dtype), device.index)


def item(arr: Any) -> Any:
    """The one value of ``arr`` as a Python number (a transfer from a device)."""
    if type(arr) is np.ndarray:
        return arr.item()
    return to_host(arr).item()


def synchronize(dev: device | None = None) -> None:
    """Wait for the device's queued work (for timing); a no-op on the cpu."""
    if dev is not None and dev.type != "cpu":
        backend(dev.type).synchronize(dev.index)


# ---------------------------------------------------------------- dtypes


def host_dtype(dtype: Any) -> Any:
    """An array's dtype as flowgrad's (a NumPy dtype)."""
    if isinstance(dtype, np.dtype):
        return dtype
    found = _HOST_DTYPES.get(dtype)
    return np.dtype(dtype) if found is None else found


def astype(arr: Any, dtype: Any, copy: bool = True) -> Any:
    """``arr`` converted to flowgrad dtype ``dtype``, on its own device."""
    if type(arr) is np.ndarray:
        return arr.astype(dtype, copy=copy)
    module = backend_of(arr)
    return module.xp.astype(arr, module.native_dtype(dtype), copy=copy)


def is_floating(dtype: Any) -> bool:
    return host_dtype(dtype).kind == "f"


def result_type(a: Any, b: Any) -> Any:
    """The promoted dtype of two dtypes of the same category (int/int, float/float)."""
    return np.result_type(a, b)


def can_cast(source: Any, target: Any) -> bool:
    """Whether an in-place result of dtype ``source`` may be stored as ``target``."""
    return bool(np.can_cast(host_dtype(source), host_dtype(target), casting="same_kind"))


# ---------------------------------------------------------------- what the standard lacks


def full_like(arr: Any, value: Any) -> Any:
    if type(arr) is np.ndarray:
        return np.full(arr.shape, value, dtype=arr.dtype)
    return namespace(arr).full(arr.shape, value, dtype=arr.dtype, device=arr.device)


def is_private(arr: Any) -> bool:
    """Whether ``arr`` owns its memory (not a view into another array)."""
    if type(arr) is np.ndarray:
        return arr.base is None
    return backend_of(arr).is_private(arr)


def copy(arr: Any) -> Any:
    if type(arr) is np.ndarray:
        return arr.copy()
    return backend_of(arr).copy(arr)


def expand(arr: Any, shape: tuple) -> Any:
    """A new array of ``shape`` holding ``arr`` broadcast (faster than broadcast_to + copy)."""
    if type(arr) is np.ndarray:
        out = np.empty(shape, dtype=arr.dtype)
        out[...] = arr
        return out
    return backend_of(arr).expand(arr, shape)


def one(shape: tuple, dtype: Any, like: Any = None) -> Any:
    """A one-element array of ``shape`` (all sizes 1) holding 1, on ``like``'s device."""
    if like is None or type(like) is np.ndarray:
        one = np.array(1, dtype=dtype)
        return one.reshape(shape) if shape else one
    return namespace(like).ones(shape, dtype=dtype, device=like.device)


def scatter_add(target: Any, index: Any, values: Any) -> None:
    """``target[index] += values`` with repeated indices accumulating (``np.add.at``)."""
    backend_of(target).scatter_add(target, index, values)


def take(x: Any, index: Any) -> Any:
    """``x[index]`` for any index, integer arrays mixed with slices included (NumPy's
    rules; the array API standard has only simpler integer-array indexing)."""
    if type(x) is np.ndarray:
        return x[index]
    return backend_of(x).take(x, index)


def index_put(target: Any, index: Any, values: Any) -> None:
    """``target[index] = values`` for any index, integer arrays included."""
    backend_of(target).index_put(target, index, values)


def sliding_windows(x: Any, window_shape: tuple[int, ...], axis: tuple[int, ...]) -> Any:
    """A read-only view of every window of ``window_shape`` over ``axis`` of ``x``, the window
    dims appended last (NumPy's ``sliding_window_view``): im2col without copying."""
    return backend_of(x).sliding_windows(x, window_shape, axis)


def einsum(equation: str, *operands: Any) -> Any:
    return backend_of(operands[0]).einsum(equation, *operands)


def into(out: Any, name: str, *args: Any) -> Any:
    """``out[...] = xp.<name>(*args)`` without a temporary where the library can (NumPy's
    and CuPy's ``out=``); the standard has no ``out=``."""
    if type(out) is np.ndarray:
        return getattr(np, name)(*args, out=out)
    return backend_of(out).into(out, name, *args)


def contiguous(x: Any) -> Any:
    """``x`` in row-major memory (a copy only when it is laid out otherwise)."""
    if type(x) is np.ndarray:
        return np.ascontiguousarray(x)
    return backend_of(x).contiguous(x)


def channels_first(x: Any) -> bool:
    """Whether the 4-D ``x`` is (C, N, H, W) memory seen as (N, C, H, W)."""
    return backend_of(x).channels_first(x)


def shares_memory(a: Any, b: Any) -> bool:
    return backend_of(a).shares_memory(a, b)


def c_contiguous(x: Any) -> bool:
    return backend_of(x).c_contiguous(x)


# ---------------------------------------------------------------- the random generator


def manual_seed(seed: int) -> None:
    global _rng
    _rng = np.random.default_rng(seed)


def rng() -> np.random.Generator:
    """flowgrad's one generator, on the host: draws are copied to a device afterwards."""
    return _rng
