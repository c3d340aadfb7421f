"""Optimizers with PyTorch's exact update rules, and learning-rate schedules.

    >>> import flowgrad as fg
    >>> w = fg.tensor([3.0], requires_grad=True)
    >>> opt = fg.optim.SGD([w], lr=0.25)
    >>> for _ in range(3):
    ...     opt.zero_grad()
    ...     (w * w).sum().backward()
    ...     opt.step()
    >>> w.item()   # each step halves w: w - 0.25 * 2w
    0.375
"""

from flowgrad.optim import lr_scheduler
from flowgrad.optim.adagrad import Adagrad
from flowgrad.optim.adam import Adam, AdamW
from flowgrad.optim.optimizer import Optimizer
from flowgrad.optim.rmsprop import RMSprop
from flowgrad.optim.sgd import SGD

__all__ = ["Optimizer", "SGD", "Adagrad", "RMSprop", "Adam", "AdamW", "lr_scheduler"]
