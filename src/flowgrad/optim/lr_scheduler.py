"""Learning-rate schedules: ``StepLR`` and ``CosineAnnealingLR``, as in PyTorch.

A scheduler rewrites ``group["lr"]`` of its optimizer's parameter groups each time its
``step()`` is called (once per epoch, after ``optimizer.step()``). Like PyTorch's, the
schedules here are *chainable*: each step computes the new rate from the current one, so
another scheduler (or your own code) may also change the rate in between.

    >>> import flowgrad as fg
    >>> opt = fg.optim.SGD([fg.zeros(1, requires_grad=True)], lr=1.0)
    >>> sched = fg.optim.lr_scheduler.StepLR(opt, step_size=2, gamma=0.5)
    >>> rates = []
    >>> for epoch in range(5):
    ...     rates.append(sched.get_last_lr()[0])
    ...     opt.step()
    ...     sched.step()
    >>> rates
    [1.0, 1.0, 0.5, 0.5, 0.25]
"""

from __future__ import annotations

import math
from typing import Any

from flowgrad.optim.optimizer import Optimizer


class LRScheduler:
    """Base class: keeps ``base_lrs``, ``last_epoch`` and the last rates set.

    Args:
        optimizer: the optimizer whose groups' ``"lr"`` this scheduler sets.
        last_epoch: the index of the last epoch when resuming (default -1: start fresh,
            recording each group's current lr as its ``"initial_lr"``).
    """

    def __init__(self, optimizer: Optimizer, last_epoch: int = -1):
        if not isinstance(optimizer, Optimizer):
            raise TypeError(f"{type(optimizer).__name__} is not an Optimizer")
        self.optimizer = optimizer
        if last_epoch == -1:
            for group in optimizer.param_groups:
                group.setdefault("initial_lr", group["lr"])
        else:
            for i, group in enumerate(optimizer.param_groups):
                if "initial_lr" not in group:
                    raise KeyError(f"param 'initial_lr' is not specified in param_groups[{i}] "
                                   "when resuming a scheduler (last_epoch != -1)")
        self.base_lrs: list[float] = [group["initial_lr"] for group in optimizer.param_groups]
        self.last_epoch = last_epoch
        # The first step() moves to epoch 0 and sets the starting rates, as PyTorch does.
        self._step_count = 0
        self._is_initial = True
        try:
            self.step()
        finally:
            self._is_initial = False

    def get_lr(self) -> list[float]:
        """The rates for the epoch ``last_epoch`` (called by :meth:`step`)."""
        raise NotImplementedError

    def get_last_lr(self) -> list[float]:
        """The rate of each parameter group as last set by this scheduler."""
        return self._last_lr

    def step(self) -> None:
        """Advance one epoch and write the new rate into every parameter group."""
        self._step_count += 1
        self.last_epoch += 1
        values = self.get_lr()
        for group, lr in zip(self.optimizer.param_groups, values):
            group["lr"] = lr
        self._last_lr = [group["lr"] for group in self.optimizer.param_groups]

    def state_dict(self) -> dict[str, Any]:
        """Everything but the optimizer (whose state is saved separately)."""
        return {key: (list(value) if isinstance(value, list) else value)
                for key, value in self.__dict__.items() if key != "optimizer"}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        """Restore what :meth:`state_dict` returned."""
        unknown = set(state_dict) - set(self.__dict__)
        if unknown:
            raise KeyError(f"{type(self).__name__} state dict has unknown entries "
                           f"{sorted(unknown)}")
        self.__dict__.update({key: (list(value) if isinstance(value, (list, tuple)) else value)
                              for key, value in state_dict.items()})


class StepLR(LRScheduler):
    """Multiply every group's learning rate by ``gamma`` once every ``step_size`` epochs.

    With a fresh start, the rate at epoch ``e`` is ``initial_lr * gamma ** (e // step_size)``.

    Args:
        optimizer: the wrapped optimizer.
        step_size: the period of the decay, in epochs (calls to ``step``).
        gamma: the multiplicative factor (default 0.1).
        last_epoch: the index of the last epoch when resuming (default -1).
    """

    def __init__(self, optimizer: Optimizer, step_size: int, gamma: float = 0.1,
                 last_epoch: int = -1):
        if isinstance(step_size, bool) or not isinstance(step_size, int) or step_size < 1:
            raise ValueError(f"step_size must be a positive int, got {step_size!r}")
        self.step_size = step_size
        self.gamma = gamma
        super().__init__(optimizer, last_epoch)

    def get_lr(self) -> list[float]:
        if self.last_epoch == 0 or self.last_epoch % self.step_size != 0:
            return [group["lr"] for group in self.optimizer.param_groups]
        return [group["lr"] * self.gamma for group in self.optimizer.param_groups]


class CosineAnnealingLR(LRScheduler):
    """Anneal every group's learning rate along a cosine from its initial value to ``eta_min``.

    With a fresh start, the rate at epoch ``t`` equals the closed form
    ``eta_min + (initial_lr - eta_min) * (1 + cos(pi * t / T_max)) / 2``; it reaches
    ``eta_min`` at ``t = T_max`` and, past it, rises again (a cosine with period
    ``2 * T_max``, no restarts). As PyTorch does, it is computed recursively from the
    current rate::

        lr_t = eta_min + (lr_{t-1} - eta_min) * (1 + cos(pi t / T_max))
                                               / (1 + cos(pi (t - 1) / T_max))

    with the special case ``lr_t = lr_{t-1} + (initial_lr - eta_min) * (1 - cos(pi /
    T_max)) / 2`` where the denominator vanishes (``t - 1 = T_max (mod 2 T_max)``).

    Args:
        optimizer: the wrapped optimizer.
        T_max: the number of epochs of the half period.
        eta_min: the minimum rate (default 0).
        last_epoch: the index of the last epoch when resuming (default -1).
    """

    def __init__(self, optimizer: Optimizer, T_max: int, eta_min: float = 0.0,
                 last_epoch: int = -1):
        if isinstance(T_max, bool) or not isinstance(T_max, int) or T_max < 1:
            raise ValueError(f"T_max must be a positive int, got {T_max!r}")
        self.T_max = T_max
        self.eta_min = eta_min
        super().__init__(optimizer, last_epoch)

    def get_lr(self) -> list[float]:
        groups = self.optimizer.param_groups
        t, T, eta_min = self.last_epoch, self.T_max, self.eta_min
        if self._is_initial:
            return [group["lr"] for group in groups]
        if self._step_count == 1 and t > 0:
            return [eta_min + (base - eta_min) * (1 + math.cos(t * math.pi / T)) / 2
                    for base in self.base_lrs]
        if (t - 1 - T) % (2 * T) == 0:
            return [group["lr"] + (base - eta_min) * (1 - math.cos(math.pi / T)) / 2
                    for base, group in zip(self.base_lrs, groups)]
        return [(1 + math.cos(math.pi * t / T)) / (1 + math.cos(math.pi * (t - 1) / T))
                * (group["lr"] - eta_min) + eta_min for group in groups]
