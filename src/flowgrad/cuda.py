"""``fg.cuda``: whether a GPU can be used, as ``torch.cuda``.

Tensors go to a GPU with ``device="cuda"`` (or ``t.cuda()``, ``t.to("cuda:1")``); that needs
CuPy (``pip install "flowgrad[cuda12]"``) and an NVIDIA GPU with a working driver. These
functions answer without raising, so code can choose its device::

    device = "cuda" if fg.cuda.is_available() else "cpu"
"""

from __future__ import annotations

from flowgrad import _backend


def is_available() -> bool:
    """Whether CuPy is installed and at least one CUDA GPU can be used."""
    try:
        _backend.backend("cuda")
    except RuntimeError:
        return False
    return True


def device_count() -> int:
    """How many CUDA GPUs can be used (0 without CuPy or a GPU)."""
    try:
        return int(_backend.backend("cuda").device_count())
    except RuntimeError:
        return 0


def get_device_name(device: int | str | _backend.device | None = None) -> str:
    """The GPU's name, e.g. ``'NVIDIA H200'`` (the current GPU by default)."""
    d = _backend.as_device("cuda" if device is None else device)
    return str(_backend.backend("cuda").device_name(d.index))


def current_device() -> int:
    """The index of the GPU that new ``cuda`` tensors go to."""
    return _backend.backend("cuda").current_index()


def set_device(device: int | str | _backend.device) -> None:
    """Make GPU ``device`` the current one (``"cuda"`` tensors go there)."""
    d = _backend.as_device(device)
    if d.type != "cuda":
        raise ValueError(f"set_device: expected a cuda device, got {d}")
    _backend.backend("cuda").use(d.index)


def synchronize(device: int | str | _backend.device | None = None) -> None:
    """Wait until every kernel queued on the GPU has finished (for timing)."""
    d = _backend.as_device("cuda" if device is None else device)
    _backend.synchronize(d)
