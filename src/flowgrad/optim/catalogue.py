"""Optimizers by name: the one table behind ``flowgrad train --optimizer`` and the descent
pictures.

``"momentum"`` and ``"nesterov"`` are SGD with momentum 0.9 (the latter with Nesterov's
look-ahead); the other names are the classes of :mod:`flowgrad.optim` with PyTorch's
defaults. Each entry also carries a generic learning rate for when none is given: the
class's own default, and 0.01 for the SGD family (PyTorch's SGD has none). Tasks with
better-tuned rates (``flowgrad train``, a descent surface) pass their own ``lr``.

Example:
    >>> import flowgrad as fg
    >>> from flowgrad.optim.catalogue import make_optimizer
    >>> w = fg.tensor([1.0], requires_grad=True)
    >>> opt = make_optimizer("nesterov", [w])
    >>> type(opt).__name__, opt.param_groups[0]["momentum"], opt.param_groups[0]["lr"]
    ('SGD', 0.9, 0.01)
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any

from flowgrad.optim.adagrad import Adagrad
from flowgrad.optim.adam import Adam, AdamW
from flowgrad.optim.optimizer import Optimizer
from flowgrad.optim.rmsprop import RMSprop
from flowgrad.optim.sgd import SGD

__all__ = ["OPTIMIZERS", "OptimizerSpec", "make_optimizer"]


@dataclass(frozen=True)
class OptimizerSpec:
    """One named optimizer.

    Attributes:
        name: the name users type (``"momentum"``).
        cls: the :mod:`flowgrad.optim` class (called as ``cls(params, lr=..., **options)``).
        options: keyword arguments fixed by the name (``{"momentum": 0.9}``).
        lr: the learning rate used when none is given.
    """

    name: str
    cls: Callable[..., Optimizer]
    options: Mapping[str, Any]
    lr: float

    def __call__(self, params: Iterable[Any], lr: float | None = None,
                 **options: Any) -> Optimizer:
        """The optimizer over ``params``; ``options`` override the name's own."""
        return self.cls(list(params), lr=self.lr if lr is None else lr,
                        **{**self.options, **options})


def _spec(name: str, cls: Callable[..., Optimizer], lr: float, **options: Any) -> OptimizerSpec:
    return OptimizerSpec(name, cls, MappingProxyType(options), lr)


#: name -> :class:`OptimizerSpec`, in the order the tools list them.
OPTIMIZERS: Mapping[str, OptimizerSpec] = MappingProxyType({s.name: s for s in (
    _spec("sgd", SGD, 0.01),
    _spec("momentum", SGD, 0.01, momentum=0.9),
    _spec("nesterov", SGD, 0.01, momentum=0.9, nesterov=True),
    _spec("adagrad", Adagrad, 0.01),
    _spec("rmsprop", RMSprop, 0.01),
    _spec("adam", Adam, 0.001),
    _spec("adamw", AdamW, 0.001),
)})


def make_optimizer(name: str, params: Iterable[Any], lr: float | None = None,
                   **options: Any) -> Optimizer:
    """The optimizer called ``name`` over ``params``.

    Args:
        name: a key of :data:`OPTIMIZERS` (case and surrounding spaces are ignored).
        params: the Tensors (or parameter groups) to optimize.
        lr: the learning rate; ``None`` means the entry's ``lr``.
        **options: further optimizer arguments, overriding the name's own
            (``momentum=0.5``, ``betas=(0.8, 0.99)``).

    Returns:
        The optimizer.

    Raises:
        ValueError: an unknown name, or a learning rate that is not a positive finite
            number; the message lists the names.
    """
    key = name.strip().lower() if isinstance(name, str) else name
    if key not in OPTIMIZERS:
        raise ValueError(f"unknown optimizer {name!r}; choose one of {', '.join(OPTIMIZERS)}")
    if lr is not None:
        try:
            value = float(lr)
        except (TypeError, ValueError):
            value = math.nan
        if isinstance(lr, bool) or not (math.isfinite(value) and value > 0):
            raise ValueError(f"the learning rate must be a positive finite number, got {lr!r}")
        lr = value
    return OPTIMIZERS[key](params, lr, **options)
