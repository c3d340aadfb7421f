"""The ``cuda`` device: CuPy (installed by ``pip install "flowgrad[cuda12]"``).

CuPy follows NumPy and the array API standard; the namespace adds ``device=`` to the
creation functions (CuPy allocates on the current device), and the standard's names an
older CuPy lacks. GPU kernels raise no floating-point warnings, so ``quiet``/``loud`` are
no-ops. Importing this module imports CuPy: the seam does that on first use of ``cuda``.
"""

from __future__ import annotations

import contextlib
import types
from typing import Any

import cupy
import numpy as np

name = "cuda"
ndarray = cupy.ndarray


def _on(device: Any) -> Any:
    """A context that makes ``device`` (a cupy Device, an index or None) current."""
    if device is None:
        return contextlib.nullcontext()
    if isinstance(device, int):
        return cupy.cuda.Device(device)
    return device


def _creation(fn: Any) -> Any:
    def wrapper(*args: Any, device: Any = None, **kwargs: Any) -> Any:
        if device is None:
            return fn(*args, **kwargs)
        with _on(device):
            return fn(*args, **kwargs)

    wrapper.__name__ = getattr(fn, "__name__", "creation")
    wrapper.__doc__ = fn.__doc__
    return wrapper


def _astype(x: Any, dtype: Any, /, *, copy: bool = True, device: Any = None) -> Any:
    return x.astype(dtype, copy=copy)


def _namespace() -> types.ModuleType:
    ns = types.ModuleType("flowgrad.cupy_namespace", __doc__)
    ns.__dict__.update({k: v for k, v in vars(cupy).items() if not k.startswith("__")})
    for fn in ("asarray", "arange", "empty", "eye", "full", "linspace", "ones", "zeros"):
        ns.__dict__[fn] = _creation(getattr(cupy, fn))
    ns.__dict__["astype"] = _astype
    # The standard's names, where an older CuPy spells them NumPy's way.
    for std, old in (("concat", "concatenate"), ("permute_dims", "transpose"), ("pow", "power"),
                     ("cumulative_sum", "cumsum")):
        if std not in ns.__dict__:
            ns.__dict__[std] = getattr(cupy, old)
    if "isdtype" not in ns.__dict__:
        ns.__dict__["isdtype"] = np.isdtype
    if "matrix_transpose" not in ns.__dict__:
        ns.__dict__["matrix_transpose"] = lambda x: x.swapaxes(-1, -2)
    return ns


xp = _namespace()


def quiet() -> Any:
    return None


def loud(token: Any) -> None:
    return None


def available() -> str | None:
    """None when a GPU can be used, else why not."""
    try:
        n = cupy.cuda.runtime.getDeviceCount()
    except Exception as exc:  # no driver, driver too old, no device: CuPy says which
        return f"CuPy is installed but no CUDA GPU is usable ({exc})"
    return None if n else "CuPy is installed but this machine has no CUDA GPU"


def device_count() -> int:
    try:
        return int(cupy.cuda.runtime.getDeviceCount())
    except Exception:
        return 0


def device_name(index: int) -> str:
    name = cupy.cuda.runtime.getDeviceProperties(index)["name"]
    return name.decode() if isinstance(name, bytes) else str(name)


def native_device(index: int) -> Any:
    return cupy.cuda.Device(index)


def device_index(arr: Any) -> int:
    return int(arr.device.id)


def current_index() -> int:
    return int(cupy.cuda.runtime.getDevice())


def use(index: int) -> None:
    if cupy.cuda.runtime.getDevice() != index:
        cupy.cuda.Device(index).use()


def synchronize(index: int | None = None) -> None:
    if index is None:
        cupy.cuda.Device().synchronize()
    else:
        cupy.cuda.Device(index).synchronize()


def from_host(arr: Any, index: int) -> Any:
    with cupy.cuda.Device(index):
        return cupy.asarray(arr)


def to_host(arr: Any) -> np.ndarray:
    return arr.get()


def host_dtype(dtype: Any) -> Any:
    return dtype


def native_dtype(dtype: Any) -> Any:
    return np.dtype(dtype)


def is_private(arr: Any) -> bool:
    return arr.base is None


def copy(arr: Any) -> Any:
    return arr.copy()


def expand(arr: Any, shape: tuple) -> Any:
    out = cupy.empty(shape, dtype=arr.dtype)
    out[...] = arr
    return out


def scatter_add(target: Any, index: Any, values: Any) -> None:
    cupy.add.at(target, index, values)


def take(x: Any, index: Any) -> Any:
    """``x[index]`` with NumPy's rules for integer-array indices (mixed with slices, fewer
    than ``x.ndim``), which the array API standard does not have."""
    return x[index]


def index_put(target: Any, index: Any, values: Any) -> None:
    target[index] = values


def sliding_windows(x: Any, window_shape: tuple[int, ...], axis: tuple[int, ...]) -> Any:
    return cupy.lib.stride_tricks.sliding_window_view(x, window_shape, axis=axis)


def einsum(equation: str, *operands: Any) -> Any:
    return cupy.asarray(cupy.einsum(equation, *operands))


def into(out: Any, name: str, *args: Any) -> Any:
    return getattr(cupy, name)(*args, out=out)


def contiguous(x: Any) -> Any:
    return cupy.ascontiguousarray(x)


def channels_first(x: Any) -> bool:
    return not x.flags.c_contiguous and x.transpose(1, 0, 2, 3).flags.c_contiguous


def shares_memory(a: Any, b: Any) -> bool:
    return bool(cupy.shares_memory(a, b))


def c_contiguous(x: Any) -> bool:
    return bool(x.flags.c_contiguous)
