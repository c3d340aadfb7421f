"""Loss modules: ``MSELoss``, ``CrossEntropyLoss`` and ``BCEWithLogitsLoss``."""

from __future__ import annotations

from typing import Any

from flowgrad.nn import functional as F
from flowgrad.nn.module import Module
from flowgrad.ops.nn import _check_reduction
from flowgrad.tensor import Tensor


class _Loss(Module):
    def __init__(self, reduction: str = "mean"):
        super().__init__()
        _check_reduction(reduction)
        self.reduction = reduction

    def extra_repr(self) -> str:
        return f"reduction={self.reduction!r}" if self.reduction != "mean" else ""


class MSELoss(_Loss):
    """Mean squared error between predictions and targets of the same shape.

    ``loss(input, target) = reduce((input - target)²)``; ``reduction`` is 'mean' (default)
    or 'sum' (both give a 0-d tensor) or 'none' (elementwise).

    Example:
        >>> import flowgrad as fg
        >>> fg.nn.MSELoss()(fg.tensor([1.0, 2.0]), fg.tensor([1.0, 4.0])).item()
        2.0
    """

    def forward(self, input: Tensor, target: Any) -> Tensor:
        return F.mse_loss(input, target, reduction=self.reduction)


class CrossEntropyLoss(_Loss):
    """Cross-entropy of logits against integer class targets (fused and stable).

    ``loss_i = logsumexp(logits_i) - logits_i[target_i]`` with the maximum subtracted
    first, so large logits never overflow; the gradient is ``softmax(logits) - onehot``
    (divided by N for 'mean'). Logits are (N, C) (or (C,)), targets (N,) int64 indices.

    Example:
        >>> import flowgrad as fg
        >>> logits = fg.tensor([[2.0, 0.0], [0.0, 2.0]], requires_grad=True)
        >>> round(fg.nn.CrossEntropyLoss()(logits, fg.tensor([0, 1])).item(), 4)
        0.1269
    """

    def forward(self, input: Tensor, target: Any) -> Tensor:
        return F.cross_entropy(input, target, reduction=self.reduction)


class BCEWithLogitsLoss(_Loss):
    """Binary cross-entropy on logits: -[t·log σ(x) + (1-t)·log(1-σ(x))], computed stably."""

    def forward(self, input: Tensor, target: Any) -> Tensor:
        return F.binary_cross_entropy_with_logits(input, target, reduction=self.reduction)
