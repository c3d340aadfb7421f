"""Functional forms of the layers and losses (``import flowgrad.nn.functional as F``).

Everything that exists as a core op is that op, re-exported (one derivative rule, no second
copy of the math): ``relu``, ``sigmoid``, ``tanh``, ``leaky_relu``, ``softmax``,
``log_softmax``, ``linear`` and the fused, numerically stable ``cross_entropy`` and
``binary_cross_entropy_with_logits``. ``mse_loss`` is composed from core ops.
"""

from __future__ import annotations

from typing import Any

from flowgrad import _backend
from flowgrad.errors import ShapeError
from flowgrad.ops.elementwise import leaky_relu, relu, sigmoid, tanh
from flowgrad.ops.nn import (
    _check_reduction,
    binary_cross_entropy_with_logits,
    cross_entropy,
    linear,
)
from flowgrad.ops.reduction import log_softmax, mean, softmax
from flowgrad.ops.reduction import sum as _sum
from flowgrad.tensor import Tensor

__all__ = [
    "relu", "sigmoid", "tanh", "leaky_relu", "softmax", "log_softmax", "linear",
    "mse_loss", "cross_entropy", "binary_cross_entropy_with_logits", "check_reduction",
]


def check_reduction(reduction: str) -> str:
    """``reduction`` itself if it is one of 'mean', 'sum', 'none', else ValueError."""
    _check_reduction(reduction)  # the one validator, shared with the fused loss ops
    return reduction


def mse_loss(input: Tensor, target: Any, reduction: str = "mean") -> Tensor:
    """Mean squared error: reduce((input - target)²).

    Args:
        input: the predictions.
        target: the targets, same shape as ``input`` (a Tensor or array).
        reduction: 'mean' (default) and 'sum' give a 0-d tensor, 'none' the elementwise
            squared errors.

    Returns:
        The loss; d/dinput = 2 (input - target) (divided by the element count for 'mean').

    Raises:
        ValueError: an unknown ``reduction``.
        ShapeError: ``target``'s shape differs from ``input``'s (broadcasting here is almost
            always a bug, e.g. (N, 1) against (N,)).
    """
    check_reduction(reduction)
    if not (isinstance(target, Tensor) and target.requires_grad):
        arr = target.data if isinstance(target, Tensor) else _backend.asarray(target)
        # Keep the loss in the prediction's precision (a float64 target must not upcast it).
        if _backend.is_floating(input.dtype) and arr.dtype != input.dtype:
            arr = arr.astype(input.dtype)
        target = arr
    if tuple(target.shape) != tuple(input.shape):
        raise ShapeError(f"mse_loss: target of shape {tuple(target.shape)} does not match "
                         f"input of shape {tuple(input.shape)}")
    diff = input - target
    squared = diff * diff
    if reduction == "mean":
        return mean(squared)
    if reduction == "sum":
        return _sum(squared)
    return squared
