"""Adam and AdamW: bias-corrected first and second moment estimates."""

from __future__ import annotations

import math
import numbers
from collections.abc import Iterable
from typing import Any

from flowgrad._backend import namespace
from flowgrad.optim.optimizer import Optimizer, _check_nonneg


class Adam(Optimizer):
    """Adam, PyTorch's rule exactly (``decoupled_weight_decay=True`` gives AdamW).

    For each parameter ``p`` with gradient ``g``, in code order::

        step = step + 1
        if maximize: g = -g
        if weight_decay != 0:
            if decoupled: p = p * (1 - lr * weight_decay)       # AdamW: decay the weights
            else:         g = g + weight_decay * p              # Adam: L2 penalty in g
        m = m + (1 - beta1) * (g - m)                 # = beta1 * m + (1 - beta1) * g
        v = beta2 * v + (1 - beta2) * g * g
        bias_correction1 = 1 - beta1 ** step
        bias_correction2 = 1 - beta2 ** step
        if amsgrad: v_max = max(v_max, v); v_used = v_max  else: v_used = v
        denom = sqrt(v_used) / sqrt(bias_correction2) + eps    # eps added after sqrt(v_hat)
        p = p - (lr / bias_correction1) * m / denom

    PyTorch's conventions: ``m`` and ``v`` start at zero and are bias-corrected; ``eps`` is
    added after the square root of the corrected second moment (so it is ``eps``, not
    ``eps * sqrt(bias_correction2)``, that bounds the step); Adam's ``weight_decay`` is an
    L2 penalty added to the gradient (it then passes through the adaptive scaling), while
    AdamW's is decoupled, shrinking the weights directly by ``lr * weight_decay``. State per
    parameter: ``"step"`` (int), ``"exp_avg"``, ``"exp_avg_sq"`` and, with ``amsgrad``,
    ``"max_exp_avg_sq"``.

    Args:
        params: the Tensors to optimize, or a list of parameter-group dicts.
        lr: learning rate (default 1e-3).
        betas: decay rates of the first and second moment averages (default (0.9, 0.999)).
        eps: added to the denominator for numerical stability (default 1e-8).
        weight_decay: weight decay coefficient (default 0), L2 unless decoupled.
        amsgrad: use the running maximum of the second moment (AMSGrad).
        maximize: ascend instead of descend.
        decoupled_weight_decay: decay the weights directly, as AdamW does.

    Example:
        >>> import flowgrad as fg
        >>> w = fg.tensor([1.0, -2.0], requires_grad=True)
        >>> opt = fg.optim.Adam([w], lr=0.1)
        >>> (w * w).sum().backward()
        >>> opt.step()
        >>> w.numpy().round(4)   # the first Adam step moves each coordinate by about lr
        array([ 0.9, -1.9], dtype=float32)
    """

    def __init__(self, params: Iterable[Any], lr: float = 1e-3,
                 betas: tuple[float, float] = (0.9, 0.999), eps: float = 1e-8,
                 weight_decay: float = 0.0, amsgrad: bool = False, maximize: bool = False,
                 decoupled_weight_decay: bool = False):
        defaults = dict(lr=lr, betas=tuple(betas), eps=eps, weight_decay=weight_decay,
                        amsgrad=amsgrad, maximize=maximize,
                        decoupled_weight_decay=decoupled_weight_decay)
        super().__init__(params, defaults)

    def _check_group(self, group: dict[str, Any]) -> None:
        super()._check_group(group)
        _check_nonneg(group, "eps", "epsilon value")
        _check_nonneg(group, "weight_decay", "weight decay")
        betas = group["betas"]
        if len(betas) != 2:
            raise ValueError(f"betas must be a pair (beta1, beta2), got {betas!r}")
        for i, beta in enumerate(betas):
            if not isinstance(beta, numbers.Real) or not 0.0 <= beta < 1.0:
                raise ValueError(f"invalid beta parameter at index {i}: {beta!r} (must lie in "
                                 "[0, 1))")

    def _update(self, p: Any, g: Any, state: dict[str, Any], group: dict[str, Any]) -> None:
        lr, eps, weight_decay = group["lr"], group["eps"], group["weight_decay"]
        beta1, beta2 = group["betas"]
        xp = namespace(p)  # the parameter's device: its state lives there too
        if not state:
            state["step"] = 0
            state["exp_avg"] = xp.zeros_like(p)
            state["exp_avg_sq"] = xp.zeros_like(p)
            if group["amsgrad"]:
                state["max_exp_avg_sq"] = xp.zeros_like(p)
        state["step"] += 1
        step = state["step"]
        if group["maximize"]:
            g = -g
        if weight_decay != 0:
            if group["decoupled_weight_decay"]:
                p *= 1 - lr * weight_decay
            else:
                g = g + weight_decay * p
        exp_avg, exp_avg_sq = state["exp_avg"], state["exp_avg_sq"]
        # PyTorch's lerp form (same value as beta1 * m + (1 - beta1) * g, same rounding).
        exp_avg += (1 - beta1) * (g - exp_avg)
        exp_avg_sq *= beta2
        exp_avg_sq += (1 - beta2) * (g * g)
        bias_correction1 = 1 - beta1 ** step
        bias_correction2_sqrt = math.sqrt(1 - beta2 ** step)
        if group["amsgrad"]:
            max_sq = state["max_exp_avg_sq"]
            max_sq[...] = xp.maximum(max_sq, exp_avg_sq)
            denom = xp.sqrt(max_sq)
        else:
            denom = xp.sqrt(exp_avg_sq)
        denom /= bias_correction2_sqrt
        denom += eps
        p -= (lr / bias_correction1) * (exp_avg / denom)


class AdamW(Adam):
    """Adam with decoupled weight decay (Loshchilov & Hutter), PyTorch's rule exactly.

    The update is :class:`Adam`'s with ``decoupled_weight_decay=True``: before the moment
    updates, ``p = p * (1 - lr * weight_decay)``, and the gradient itself carries no
    penalty. Note the default ``weight_decay=0.01`` (Adam's is 0).

    Args:
        params: the Tensors to optimize, or a list of parameter-group dicts.
        lr: learning rate (default 1e-3).
        betas: decay rates of the moment averages (default (0.9, 0.999)).
        eps: added to the denominator after the square root (default 1e-8).
        weight_decay: decoupled weight decay coefficient (default 0.01).
        amsgrad: use the running maximum of the second moment (AMSGrad).
        maximize: ascend instead of descend.
    """

    def __init__(self, params: Iterable[Any], lr: float = 1e-3,
                 betas: tuple[float, float] = (0.9, 0.999), eps: float = 1e-8,
                 weight_decay: float = 1e-2, amsgrad: bool = False, maximize: bool = False):
        super().__init__(params, lr=lr, betas=betas, eps=eps, weight_decay=weight_decay,
                         amsgrad=amsgrad, maximize=maximize, decoupled_weight_decay=True)
