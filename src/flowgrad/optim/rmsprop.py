"""RMSprop: divide the gradient by a running root-mean-square of recent gradients."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from flowgrad._backend import namespace
from flowgrad.optim.optimizer import Optimizer, _check_nonneg


class RMSprop(Optimizer):
    """RMSprop, PyTorch's rule exactly.

    For each parameter ``p`` with gradient ``g``, in code order::

        step = step + 1
        if maximize:          g = -g
        if weight_decay != 0: g = g + weight_decay * p          # L2 penalty, coupled
        square_avg = alpha * square_avg + (1 - alpha) * g * g
        if centered:
            grad_avg = grad_avg + (1 - alpha) * (g - grad_avg)
            avg = sqrt(square_avg - grad_avg * grad_avg) + eps
        else:
            avg = sqrt(square_avg) + eps                        # eps added after the sqrt
        if momentum > 0:
            buf = momentum * buf + g / avg
            p = p - lr * buf
        else:
            p = p - lr * g / avg

    PyTorch's conventions: ``square_avg`` (and ``grad_avg``, ``momentum_buffer``) start at
    zero with no bias correction (unlike Adam), ``eps`` is added after the square root, and
    the learning rate multiplies the momentum buffer. State per parameter: ``"step"``
    (int), ``"square_avg"``, plus ``"momentum_buffer"`` when ``momentum > 0`` and
    ``"grad_avg"`` when ``centered``.

    Args:
        params: the Tensors to optimize, or a list of parameter-group dicts.
        lr: learning rate (default 0.01).
        alpha: smoothing constant of the squared-gradient average (default 0.99).
        eps: added to the denominator for numerical stability (default 1e-8).
        weight_decay: L2 penalty coefficient (default 0).
        momentum: momentum factor (default 0).
        centered: normalise by an estimate of the gradient's variance instead of its
            second moment.
        maximize: ascend instead of descend.
    """

    def __init__(self, params: Iterable[Any], lr: float = 1e-2, alpha: float = 0.99,
                 eps: float = 1e-8, weight_decay: float = 0.0, momentum: float = 0.0,
                 centered: bool = False, maximize: bool = False):
        defaults = dict(lr=lr, alpha=alpha, eps=eps, weight_decay=weight_decay,
                        momentum=momentum, centered=centered, maximize=maximize)
        super().__init__(params, defaults)

    def _check_group(self, group: dict[str, Any]) -> None:
        super()._check_group(group)
        _check_nonneg(group, "eps", "epsilon value")
        _check_nonneg(group, "momentum", "momentum value")
        _check_nonneg(group, "weight_decay", "weight decay")
        _check_nonneg(group, "alpha", "alpha value")

    def _update(self, p: Any, g: Any, state: dict[str, Any], group: dict[str, Any]) -> None:
        lr, alpha, eps = group["lr"], group["alpha"], group["eps"]
        weight_decay, momentum = group["weight_decay"], group["momentum"]
        xp = namespace(p)  # the parameter's device: its state lives there too
        if not state:
            state["step"] = 0
            state["square_avg"] = xp.zeros_like(p)
            if momentum > 0:
                state["momentum_buffer"] = xp.zeros_like(p)
            if group["centered"]:
                state["grad_avg"] = xp.zeros_like(p)
        state["step"] += 1
        if group["maximize"]:
            g = -g
        if weight_decay != 0:
            g = g + weight_decay * p
        square_avg = state["square_avg"]
        square_avg *= alpha
        square_avg += (1 - alpha) * (g * g)
        if group["centered"]:
            grad_avg = state["grad_avg"]
            grad_avg += (1 - alpha) * (g - grad_avg)
            avg = xp.sqrt(square_avg - grad_avg * grad_avg)
        else:
            avg = xp.sqrt(square_avg)
        avg += eps
        if momentum > 0:
            buf = state["momentum_buffer"]
            buf *= momentum
            buf += g / avg
            p -= lr * buf
        else:
            p -= lr * (g / avg)
