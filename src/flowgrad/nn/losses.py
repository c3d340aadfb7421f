"""Loss modules, as in PyTorch: ``MSELoss``, ``L1Loss``, ``SmoothL1Loss``, ``NLLLoss``,
``CrossEntropyLoss`` and ``BCEWithLogitsLoss``."""

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
    (divided by N for 'mean'). Logits are (N, C) (or (C,), or (N, C, d1, ...)), targets (N,)
    int64 indices (or class probabilities of the logits' shape). As in PyTorch, ``weight``
    weighs the classes, targets equal to ``ignore_index`` count for nothing (not even in the
    mean's denominator), and ``label_smoothing`` ε mixes the one-hot target with the uniform
    distribution: (1 - ε)·onehot + ε/C.

    Example:
        >>> import flowgrad as fg
        >>> logits = fg.tensor([[2.0, 0.0], [0.0, 2.0]], requires_grad=True)
        >>> round(fg.nn.CrossEntropyLoss()(logits, fg.tensor([0, 1])).item(), 4)
        0.1269
    """

    def __init__(self, weight: Any = None, ignore_index: int = -100, reduction: str = "mean",
                 label_smoothing: float = 0.0):
        super().__init__(reduction)
        if not 0.0 <= label_smoothing <= 1.0:
            raise ValueError(f"CrossEntropyLoss: label_smoothing must lie in [0, 1], got "
                             f"{label_smoothing}")
        self.weight, self.ignore_index = weight, ignore_index
        self.label_smoothing = label_smoothing

    def forward(self, input: Tensor, target: Any) -> Tensor:
        return F.cross_entropy(input, target, self.weight, self.ignore_index, self.reduction,
                               self.label_smoothing)


class BCEWithLogitsLoss(_Loss):
    """Binary cross-entropy on logits: -weight·[pos_weight·t·log σ(x) + (1-t)·log(1-σ(x))],
    computed stably (see :func:`flowgrad.nn.functional.binary_cross_entropy_with_logits`)."""

    def __init__(self, weight: Any = None, reduction: str = "mean", pos_weight: Any = None):
        super().__init__(reduction)
        self.weight, self.pos_weight = weight, pos_weight

    def forward(self, input: Tensor, target: Any) -> Tensor:
        return F.binary_cross_entropy_with_logits(input, target, self.weight, self.reduction,
                                                  self.pos_weight)


class NLLLoss(_Loss):
    """Negative log-likelihood of log-probabilities (e.g. from ``LogSoftmax``) at integer
    targets, with optional class ``weight`` and ``ignore_index``, as ``torch.nn.NLLLoss``."""

    def __init__(self, weight: Any = None, ignore_index: int = -100, reduction: str = "mean"):
        super().__init__(reduction)
        self.weight, self.ignore_index = weight, ignore_index

    def forward(self, input: Tensor, target: Any) -> Tensor:
        return F.nll_loss(input, target, self.weight, self.ignore_index, self.reduction)


class L1Loss(_Loss):
    """Mean absolute error: reduce(|input - target|)."""

    def forward(self, input: Tensor, target: Any) -> Tensor:
        return F.l1_loss(input, target, reduction=self.reduction)


class SmoothL1Loss(_Loss):
    """0.5·d²/beta where |d| < beta, |d| - 0.5·beta elsewhere (d = input - target)."""

    def __init__(self, reduction: str = "mean", beta: float = 1.0):
        super().__init__(reduction)
        self.beta = beta

    def forward(self, input: Tensor, target: Any) -> Tensor:
        return F.smooth_l1_loss(input, target, reduction=self.reduction, beta=self.beta)
