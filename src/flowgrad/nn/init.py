"""Weight initialisation, in place on ``tensor.data``, drawing from flowgrad's generator.

Every function here fills the given tensor's array in place and returns the tensor; the
random ones draw from the generator that :func:`flowgrad.manual_seed` seeds, so a seeded
run initialises identically. The formulas are PyTorch's (``torch.nn.init``).
"""

from __future__ import annotations

import math

from flowgrad import _backend
from flowgrad.tensor import Tensor

_GAINS = {"linear": 1.0, "identity": 1.0, "sigmoid": 1.0, "conv1d": 1.0, "conv2d": 1.0,
          "conv3d": 1.0, "tanh": 5.0 / 3.0, "relu": math.sqrt(2.0), "selu": 3.0 / 4.0}


def calculate_gain(nonlinearity: str, param: float | None = None) -> float:
    """The recommended gain for a nonlinearity (PyTorch's table).

    ``leaky_relu`` uses ``sqrt(2 / (1 + a²))`` with ``a = param`` (default 0.01).
    """
    if nonlinearity == "leaky_relu":
        a = 0.01 if param is None else float(param)
        return math.sqrt(2.0 / (1.0 + a * a))
    if nonlinearity not in _GAINS:
        raise ValueError(f"unknown nonlinearity {nonlinearity!r}; choose one of "
                         f"{sorted([*_GAINS, 'leaky_relu'])}")
    return _GAINS[nonlinearity]


def _fans(tensor: Tensor) -> tuple[int, int]:
    """(fan_in, fan_out): dims 1 and 0 times the receptive field, as in PyTorch."""
    shape = tensor.shape
    if len(shape) < 2:
        raise ValueError(f"fan in and fan out need a tensor with at least 2 dims, got shape "
                         f"{tuple(shape)}")
    receptive = math.prod(shape[2:])
    return shape[1] * receptive, shape[0] * receptive


def _fill(tensor: Tensor, values) -> Tensor:
    """Host draws (one generator for every device) copied into ``tensor``'s array."""
    values = values.astype(tensor.dtype, copy=False)
    tensor.data[...] = _backend.from_host(values, tensor.device)
    return tensor


def uniform_(tensor: Tensor, a: float = 0.0, b: float = 1.0) -> Tensor:
    """Fill with samples from U(a, b)."""
    if b < a:
        raise ValueError(f"uniform_ needs a <= b, got a={a}, b={b}")
    return _fill(tensor, _backend.rng().uniform(a, b, size=tensor.shape))


def normal_(tensor: Tensor, mean: float = 0.0, std: float = 1.0) -> Tensor:
    """Fill with samples from N(mean, std²)."""
    if std < 0:
        raise ValueError(f"normal_ needs std >= 0, got {std}")
    return _fill(tensor, _backend.rng().normal(mean, std, size=tensor.shape))


def constant_(tensor: Tensor, val: float) -> Tensor:
    """Fill with ``val``."""
    tensor.data[...] = val
    return tensor


def zeros_(tensor: Tensor) -> Tensor:
    """Fill with zeros."""
    return constant_(tensor, 0.0)


def ones_(tensor: Tensor) -> Tensor:
    """Fill with ones."""
    return constant_(tensor, 1.0)


def kaiming_uniform_(tensor: Tensor, a: float = 0.0, mode: str = "fan_in",
                     nonlinearity: str = "leaky_relu") -> Tensor:
    """He initialisation: U(-bound, bound), bound = gain · sqrt(3 / fan).

    ``gain = calculate_gain(nonlinearity, a)``; ``fan`` is fan_in or fan_out by ``mode``.
    ``Linear`` uses ``a = sqrt(5)``, which gives bound = 1 / sqrt(fan_in).
    """
    if mode not in ("fan_in", "fan_out"):
        raise ValueError(f"mode must be 'fan_in' or 'fan_out', got {mode!r}")
    fan_in, fan_out = _fans(tensor)
    fan = fan_in if mode == "fan_in" else fan_out
    if fan == 0:
        return tensor  # nothing to initialise in an empty tensor (PyTorch warns likewise)
    bound = calculate_gain(nonlinearity, a) * math.sqrt(3.0 / fan)
    return uniform_(tensor, -bound, bound)


def kaiming_normal_(tensor: Tensor, a: float = 0.0, mode: str = "fan_in",
                    nonlinearity: str = "leaky_relu") -> Tensor:
    """He initialisation: N(0, std²), std = gain / sqrt(fan)."""
    if mode not in ("fan_in", "fan_out"):
        raise ValueError(f"mode must be 'fan_in' or 'fan_out', got {mode!r}")
    fan_in, fan_out = _fans(tensor)
    fan = fan_in if mode == "fan_in" else fan_out
    if fan == 0:
        return tensor
    return normal_(tensor, 0.0, calculate_gain(nonlinearity, a) / math.sqrt(fan))


def xavier_uniform_(tensor: Tensor, gain: float = 1.0) -> Tensor:
    """Glorot initialisation: U(-bound, bound), bound = gain · sqrt(6 / (fan_in + fan_out))."""
    fan_in, fan_out = _fans(tensor)
    if fan_in + fan_out == 0:
        return tensor
    bound = gain * math.sqrt(6.0 / (fan_in + fan_out))
    return uniform_(tensor, -bound, bound)


def xavier_normal_(tensor: Tensor, gain: float = 1.0) -> Tensor:
    """Glorot initialisation: N(0, std²), std = gain · sqrt(2 / (fan_in + fan_out))."""
    fan_in, fan_out = _fans(tensor)
    if fan_in + fan_out == 0:
        return tensor
    return normal_(tensor, 0.0, gain * math.sqrt(2.0 / (fan_in + fan_out)))
