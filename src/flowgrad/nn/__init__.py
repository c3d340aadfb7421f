"""Neural-network building blocks, PyTorch-shaped: ``Module``, layers, losses, ``functional``.

    >>> import flowgrad as fg
    >>> fg.manual_seed(0)
    >>> net = fg.nn.Sequential(fg.nn.Linear(64, 32), fg.nn.ReLU(), fg.nn.Linear(32, 10))
    >>> loss = fg.nn.CrossEntropyLoss()(net(fg.randn(8, 64)), fg.tensor([0, 1, 2, 3] * 2))
    >>> loss.backward()
    >>> net[0].weight.grad.shape
    (32, 64)
"""

from flowgrad.nn import functional, init, parallel
from flowgrad.nn.layers import (
    Flatten,
    Identity,
    LeakyReLU,
    Linear,
    LogSoftmax,
    ReLU,
    Sequential,
    Sigmoid,
    Softmax,
    Tanh,
)
from flowgrad.nn.losses import BCEWithLogitsLoss, CrossEntropyLoss, MSELoss
from flowgrad.nn.module import IncompatibleKeys, Module, Parameter

__all__ = [
    "Module", "Parameter", "IncompatibleKeys", "Linear", "Sequential", "Identity", "ReLU",
    "Sigmoid", "Tanh", "LeakyReLU", "Softmax", "LogSoftmax", "Flatten", "MSELoss",
    "CrossEntropyLoss", "BCEWithLogitsLoss", "functional", "init", "parallel",
]
