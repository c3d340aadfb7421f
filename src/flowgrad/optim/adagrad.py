"""Adagrad: per-coordinate learning rates from the running sum of squared gradients."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from flowgrad._backend import full_like as _full_like
from flowgrad._backend import namespace
from flowgrad.optim.optimizer import Optimizer, _check_nonneg


class Adagrad(Optimizer):
    """Adagrad, PyTorch's rule exactly.

    For each parameter ``p`` with gradient ``g``, in code order::

        step = step + 1
        if maximize:          g = -g
        if weight_decay != 0: g = g + weight_decay * p          # L2 penalty, coupled
        clr = lr / (1 + (step - 1) * lr_decay)
        sum = sum + g * g
        p = p - clr * g / (sqrt(sum) + eps)                      # eps added after the sqrt

    PyTorch's conventions: the accumulator ``sum`` starts at ``initial_accumulator_value``
    (default 0) and is created for every parameter when the optimizer is built; ``eps`` is
    added after the square root. State per parameter: ``"step"`` (int) and ``"sum"``.

    Args:
        params: the Tensors to optimize, or a list of parameter-group dicts.
        lr: learning rate (default 0.01).
        lr_decay: learning-rate decay per step (default 0).
        weight_decay: L2 penalty coefficient (default 0).
        initial_accumulator_value: starting value of ``sum`` (default 0).
        eps: added to the denominator for numerical stability (default 1e-10).
        maximize: ascend instead of descend.
    """

    def __init__(self, params: Iterable[Any], lr: float = 1e-2, lr_decay: float = 0.0,
                 weight_decay: float = 0.0, initial_accumulator_value: float = 0.0,
                 eps: float = 1e-10, maximize: bool = False):
        defaults = dict(lr=lr, lr_decay=lr_decay, eps=eps, weight_decay=weight_decay,
                        initial_accumulator_value=initial_accumulator_value,
                        maximize=maximize)
        super().__init__(params, defaults)

    def add_param_group(self, param_group: dict[str, Any]) -> None:
        super().add_param_group(param_group)
        group = self.param_groups[-1]
        # PyTorch creates Adagrad's state up front, so a fresh optimizer already has it.
        for p in group["params"]:
            self.state[p] = {
                "step": 0,
                "sum": _full_like(p.data, group["initial_accumulator_value"]),
            }

    def _check_group(self, group: dict[str, Any]) -> None:
        super()._check_group(group)
        _check_nonneg(group, "lr_decay", "lr_decay value")
        _check_nonneg(group, "weight_decay", "weight decay")
        _check_nonneg(group, "initial_accumulator_value", "initial accumulator value")
        _check_nonneg(group, "eps", "epsilon value")

    def _update(self, p: Any, g: Any, state: dict[str, Any], group: dict[str, Any]) -> None:
        lr, lr_decay, eps = group["lr"], group["lr_decay"], group["eps"]
        weight_decay = group["weight_decay"]
        if "sum" not in state:
            # A state dict saved before this parameter had state; start it as PyTorch would.
            state["step"] = 0
            state["sum"] = _full_like(p, group["initial_accumulator_value"])
        state["step"] += 1
        step = state["step"]
        if group["maximize"]:
            g = -g
        if weight_decay != 0:
            g = g + weight_decay * p
        clr = lr / (1 + (step - 1) * lr_decay)
        state["sum"] += g * g
        std = namespace(p).sqrt(state["sum"])
        std += eps
        p -= clr * (g / std)
