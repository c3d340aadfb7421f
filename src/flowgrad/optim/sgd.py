"""Stochastic gradient descent, with momentum, dampening, Nesterov and weight decay."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from flowgrad._backend import namespace, on_host
from flowgrad.optim.optimizer import Optimizer, _check_nonneg, required


class SGD(Optimizer):
    """Stochastic gradient descent (optionally with momentum), PyTorch's rule exactly.

    For each parameter ``p`` with gradient ``g``, in code order::

        if maximize:          g = -g
        if weight_decay != 0: g = g + weight_decay * p          # L2 penalty, coupled
        if momentum != 0:
            if first step:    buf = copy(g)                     # no dampening on step 1
            else:             buf = momentum * buf + (1 - dampening) * g
            if nesterov:      g = g + momentum * buf
            else:             g = buf
        p = p - lr * g

    PyTorch's conventions, which differ from some textbooks: the momentum buffer starts at
    the first gradient (not at zero, and not at ``(1 - dampening) * g``), the learning rate
    multiplies the whole velocity (``p -= lr * buf``, not ``v = momentum * v + lr * g``),
    and weight decay is added to the gradient (so momentum carries it too). State per
    parameter: ``"momentum_buffer"`` (only when ``momentum != 0``).

    Args:
        params: the Tensors to optimize, or a list of parameter-group dicts.
        lr: learning rate (required).
        momentum: momentum factor (default 0: plain SGD).
        dampening: scales the new gradient in the momentum buffer by ``1 - dampening``.
        nesterov: use Nesterov momentum (needs ``momentum > 0`` and ``dampening == 0``).
        weight_decay: L2 penalty coefficient.
        maximize: ascend instead of descend.

    Example:
        >>> import flowgrad as fg
        >>> w = fg.tensor([1.0, -2.0], requires_grad=True)
        >>> opt = fg.optim.SGD([w], lr=0.1, momentum=0.9)
        >>> (w * w).sum().backward()
        >>> opt.step()
        >>> w
        tensor([ 0.8, -1.6], requires_grad=True)
    """

    def __init__(self, params: Iterable[Any], lr: float = required, momentum: float = 0.0,
                 dampening: float = 0.0, nesterov: bool = False, weight_decay: float = 0.0,
                 maximize: bool = False):
        defaults = dict(lr=lr, momentum=momentum, dampening=dampening, nesterov=nesterov,
                        weight_decay=weight_decay, maximize=maximize)
        super().__init__(params, defaults)

    def _check_group(self, group: dict[str, Any]) -> None:
        super()._check_group(group)
        _check_nonneg(group, "momentum", "momentum value")
        _check_nonneg(group, "weight_decay", "weight decay")
        _check_nonneg(group, "dampening", "dampening value")
        if group["nesterov"] and (group["momentum"] <= 0 or group["dampening"] != 0):
            raise ValueError(f"Nesterov momentum requires momentum > 0 and zero dampening, got "
                             f"momentum={group['momentum']}, dampening={group['dampening']}")

    def _update(self, p: Any, g: Any, state: dict[str, Any], group: dict[str, Any]) -> None:
        lr, momentum = group["lr"], group["momentum"]
        weight_decay, dampening = group["weight_decay"], group["dampening"]
        if group["maximize"]:
            g = -g
        if weight_decay != 0:
            g = g + weight_decay * p
        if momentum != 0:
            buf = state.get("momentum_buffer")
            if buf is None:
                # A copy: g may be the (read-only, shared) gradient array itself. asarray,
                # not g.copy(): for a 0-d parameter g may be a NumPy scalar here.
                buf = namespace(p).asarray(g, dtype=p.dtype, copy=True)
                state["momentum_buffer"] = buf
            else:
                buf *= momentum
                buf += (1 - dampening) * g
            g = g + momentum * buf if group["nesterov"] else buf
        _subtract_scaled(p, g, lr)


_SLICE = 1 << 16


def _subtract_scaled(p: Any, g: Any, lr: float) -> None:
    """``p -= lr * g`` in slices, so no temporary the size of a large weight is allocated
    (the same arithmetic per element, so the same result to the bit)."""
    if p.size <= _SLICE or not on_host(p) or not p.flags.c_contiguous \
            or getattr(g, "shape", None) != p.shape:
        p -= lr * g
        return
    flat_p, flat_g = p.reshape(-1), g.reshape(-1)
    for start in range(0, flat_p.size, _SLICE):
        part = slice(start, start + _SLICE)
        flat_p[part] -= lr * flat_g[part]
