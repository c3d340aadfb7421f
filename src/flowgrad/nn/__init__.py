"""Neural-network building blocks, PyTorch-shaped: ``Module``, layers, losses, ``functional``.

    >>> import flowgrad as fg
    >>> fg.manual_seed(0)
    >>> net = fg.nn.Sequential(fg.nn.Linear(64, 32), fg.nn.ReLU(), fg.nn.Linear(32, 10))
    >>> loss = fg.nn.CrossEntropyLoss()(net(fg.randn(8, 64)), fg.tensor([0, 1, 2, 3] * 2))
    >>> loss.backward()
    >>> net[0].weight.grad.shape
    (32, 64)
"""

from flowgrad.nn import functional, init, parallel, utils
from flowgrad.nn.attention import MultiheadAttention
from flowgrad.nn.conv import (
    AdaptiveAvgPool2d,
    AvgPool1d,
    AvgPool2d,
    Conv1d,
    Conv2d,
    MaxPool1d,
    MaxPool2d,
)
from flowgrad.nn.layers import (
    ELU,
    GELU,
    Dropout,
    Embedding,
    Flatten,
    Identity,
    LeakyReLU,
    Linear,
    LogSoftmax,
    ModuleDict,
    ModuleList,
    ReLU,
    Sequential,
    Sigmoid,
    SiLU,
    Softmax,
    Softplus,
    Tanh,
    Unflatten,
)
from flowgrad.nn.losses import (
    BCEWithLogitsLoss,
    CrossEntropyLoss,
    L1Loss,
    MSELoss,
    NLLLoss,
    SmoothL1Loss,
)
from flowgrad.nn.module import IncompatibleKeys, Module, Parameter
from flowgrad.nn.normalization import BatchNorm1d, BatchNorm2d, LayerNorm

__all__ = [
    "Module", "Parameter", "IncompatibleKeys", "Linear", "Sequential", "ModuleList", "ModuleDict",
    "Identity", "Flatten", "Unflatten", "ReLU", "Sigmoid", "Tanh", "LeakyReLU", "GELU", "SiLU",
    "ELU", "Softplus", "Softmax", "LogSoftmax", "Conv1d", "Conv2d", "MaxPool1d", "MaxPool2d",
    "AvgPool1d", "AvgPool2d", "AdaptiveAvgPool2d", "BatchNorm1d", "BatchNorm2d", "LayerNorm",
    "Dropout", "Embedding", "MultiheadAttention", "MSELoss", "L1Loss", "SmoothL1Loss", "NLLLoss",
    "CrossEntropyLoss", "BCEWithLogitsLoss", "functional", "init", "parallel", "utils",
]
