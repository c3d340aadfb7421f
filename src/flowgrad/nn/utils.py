"""Gradient clipping, as ``torch.nn.utils``: ``clip_grad_norm_`` and ``clip_grad_value_``."""

from __future__ import annotations

import math
from collections.abc import Iterable

from flowgrad import _backend
from flowgrad.tensor import Tensor


def _with_grads(parameters: Tensor | Iterable[Tensor]) -> list[Tensor]:
    params = [parameters] if isinstance(parameters, Tensor) else list(parameters)
    return [p for p in params if p.grad is not None]


def clip_grad_norm_(parameters: Tensor | Iterable[Tensor], max_norm: float,
                    norm_type: float = 2.0, error_if_nonfinite: bool = False) -> Tensor:
    """Scale the gradients so that their total norm is at most ``max_norm``, as PyTorch.

    The total norm is the ``norm_type``-norm of all the gradients taken together (as if
    concatenated; ``inf`` for the largest absolute entry). The gradients are multiplied by
    ``min(1, max_norm / (total + 1e-6))``.

    Args:
        parameters: a Tensor or an iterable of Tensors (those without ``.grad`` are skipped).
        max_norm: the largest total norm allowed.
        norm_type: p of the p-norm (2.0 by default; ``float('inf')`` allowed).
        error_if_nonfinite: raise if the total norm is nan or inf.

    Returns:
        The total norm before clipping, as a 0-d Tensor.

    Raises:
        RuntimeError: a non-finite total norm with ``error_if_nonfinite``.
    """
    params = _with_grads(parameters)
    norm_type = float(norm_type)
    if not params:
        return Tensor._make(_backend.xp.zeros((), dtype=_backend.default_float), False, None)
    grads = [p.grad.data for p in params]
    xp = _backend.namespace(grads[0])
    dtype = grads[0].dtype
    if norm_type == math.inf:
        if _backend.on_host(grads[0]):
            total = max(xp.max(xp.abs(g)) if g.size else 0.0 for g in grads)
        else:  # on a device: no comparison read back
            total = xp.max(xp.stack([xp.max(xp.abs(g)) for g in grads if g.size]
                                    or [xp.zeros((), dtype=dtype, device=grads[0].device)]))
    else:
        norms = xp.stack([xp.sum(xp.abs(g) ** norm_type) ** (1.0 / norm_type) for g in grads])
        total = xp.sum(norms ** norm_type) ** (1.0 / norm_type)
    total = xp.asarray(total, dtype=dtype, device=grads[0].device)
    if error_if_nonfinite and not bool(xp.isfinite(total)):
        raise RuntimeError(f"clip_grad_norm_: the total norm of order {norm_type} of the "
                           f"gradients is {float(total)}, so they cannot be clipped; set "
                           "error_if_nonfinite=False to clip anyway")
    if not _backend.on_host(total):
        # On a device the factor is clamped there, with no value read back (as PyTorch).
        factor = xp.clip(float(max_norm) / (total + 1e-6), None, 1.0)
        for p in params:
            p.grad = Tensor._make(xp.astype(p.grad.data * factor, dtype, copy=False), False,
                                  None)
        return Tensor._make(total, False, None)
    coef = min(float(max_norm) / (float(total) + 1e-6), 1.0)
    if coef < 1.0:
        for p in params:
            # A new array: a gradient may be a read-only view shared with other tensors.
            p.grad = Tensor._make((p.grad.data * coef).astype(p.grad.dtype, copy=False), False,
                                  None)
    return Tensor._make(total, False, None)


def clip_grad_value_(parameters: Tensor | Iterable[Tensor], clip_value: float) -> None:
    """Clamp every gradient entry to [-clip_value, clip_value], as PyTorch."""
    clip_value = float(clip_value)
    for p in _with_grads(parameters):
        grad = p.grad.data
        p.grad = Tensor._make(_backend.namespace(grad).clip(grad, -clip_value, clip_value),
                              False, None)
