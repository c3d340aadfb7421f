"""Layers: ``Linear``, ``Sequential`` and the activation modules."""

from __future__ import annotations

import math
import operator
from collections import OrderedDict
from collections.abc import Iterator
from typing import Any

from flowgrad import _backend
from flowgrad._backend import xp
from flowgrad.nn import functional as F
from flowgrad.nn import init
from flowgrad.nn.module import Module, Parameter
from flowgrad.tensor import Tensor


class Linear(Module):
    """y = x @ weightᵀ + bias, with ``weight`` of shape (out, in) and ``bias`` of shape (out,).

    Initialised as in PyTorch, from flowgrad's generator (so ``fg.manual_seed`` makes it
    reproducible): ``kaiming_uniform_(weight, a=sqrt(5))``, which is U(-1/√in, 1/√in), and
    the bias from the same U(-1/√in, 1/√in). The forward pass is the fused ``linear`` op.

    Args:
        in_features: size of each input sample (the last dimension of x).
        out_features: size of each output sample.
        bias: learn an additive bias (default True); with False, ``.bias`` is None.

    Example:
        >>> import flowgrad as fg
        >>> fg.manual_seed(0)
        >>> layer = fg.nn.Linear(3, 2)
        >>> layer(fg.ones(5, 3)).shape
        (5, 2)
    """

    def __init__(self, in_features: int, out_features: int, bias: bool = True):
        super().__init__()
        in_features = _size("in_features", in_features)
        out_features = _size("out_features", out_features)
        self.in_features = in_features
        self.out_features = out_features
        dtype = _backend.default_float
        self.weight = Parameter(xp.empty((out_features, in_features), dtype=dtype))
        if bias:
            self.bias = Parameter(xp.empty((out_features,), dtype=dtype))
        else:
            self.register_parameter("bias", None)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """Draw fresh weights and bias (PyTorch's scheme, see the class docstring)."""
        init.kaiming_uniform_(self.weight, a=math.sqrt(5))
        if self.bias is not None:
            bound = 1.0 / math.sqrt(self.in_features) if self.in_features > 0 else 0.0
            init.uniform_(self.bias, -bound, bound)

    def forward(self, x: Tensor) -> Tensor:
        return F.linear(x, self.weight, self.bias)

    def extra_repr(self) -> str:
        return (f"in_features={self.in_features}, out_features={self.out_features}, "
                f"bias={self.bias is not None}")


def _size(name: str, value: Any) -> int:
    if isinstance(value, bool):
        raise TypeError(f"Linear: {name} must be an int, got {value!r}")
    try:
        size = operator.index(value)
    except TypeError:
        raise TypeError(f"Linear: {name} must be an int, got {value!r}") from None
    if size < 0:
        raise ValueError(f"Linear: {name} must be >= 0, got {size}")
    return size


class Sequential(Module):
    """Modules applied one after another; indexable, sliceable, iterable, with ``len``.

    Children are named ``"0"``, ``"1"``, ... (or by the keys of one ``OrderedDict``), so the
    parameters are ``"0.weight"``, ``"0.bias"``, ... as in PyTorch.

    Example:
        >>> import flowgrad as fg
        >>> net = fg.nn.Sequential(fg.nn.Linear(4, 8), fg.nn.ReLU(), fg.nn.Linear(8, 2))
        >>> [name for name, _ in net.named_parameters()]
        ['0.weight', '0.bias', '2.weight', '2.bias']
    """

    def __init__(self, *modules: Module):
        super().__init__()
        if len(modules) == 1 and isinstance(modules[0], OrderedDict):
            items = list(modules[0].items())
        else:
            items = [(str(i), m) for i, m in enumerate(modules)]
        for name, module in items:
            if not isinstance(module, Module):
                raise TypeError(f"Sequential: item {name!r} is a {type(module).__name__}, "
                                "not a Module")
            self.add_module(name, module)

    def forward(self, x: Any) -> Any:
        for module in self._modules.values():
            x = module(x)
        return x

    def __len__(self) -> int:
        return len(self._modules)

    def __iter__(self) -> Iterator[Module]:
        return iter(self._modules.values())

    def __getitem__(self, index: int | slice) -> Module:
        if isinstance(index, slice):
            return Sequential(OrderedDict(list(self._modules.items())[index]))
        if not isinstance(index, int):
            raise TypeError(f"Sequential indices must be ints or slices, not "
                            f"{type(index).__name__}")
        n = len(self._modules)
        if not -n <= index < n:
            raise IndexError(f"index {index} is out of range for a Sequential of length {n}")
        return list(self._modules.values())[index % n]

    def append(self, module: Module) -> Sequential:
        """Add ``module`` at the end (named by its position); returns self."""
        self.add_module(str(len(self._modules)), module)
        return self


class Identity(Module):
    """Returns its input unchanged (arguments to the constructor are accepted and ignored)."""

    def __init__(self, *args: Any, **kwargs: Any):
        super().__init__()

    def forward(self, x: Any) -> Any:
        return x


class ReLU(Module):
    """max(x, 0) elementwise; relu'(0) = 0."""

    def forward(self, x: Tensor) -> Tensor:
        return F.relu(x)


class Sigmoid(Module):
    """1 / (1 + exp(-x)) elementwise, stable for large |x|."""

    def forward(self, x: Tensor) -> Tensor:
        return F.sigmoid(x)


class Tanh(Module):
    """tanh(x) elementwise."""

    def forward(self, x: Tensor) -> Tensor:
        return F.tanh(x)


class LeakyReLU(Module):
    """x for x > 0, negative_slope · x otherwise."""

    def __init__(self, negative_slope: float = 0.01):
        super().__init__()
        self.negative_slope = float(negative_slope)

    def forward(self, x: Tensor) -> Tensor:
        return F.leaky_relu(x, negative_slope=self.negative_slope)

    def extra_repr(self) -> str:
        return f"negative_slope={self.negative_slope}"


class Softmax(Module):
    """exp(x) / Σ exp(x) along ``dim`` (stable: the maximum is subtracted first)."""

    def __init__(self, dim: int):
        super().__init__()
        self.dim = dim

    def forward(self, x: Tensor) -> Tensor:
        return F.softmax(x, dim=self.dim)

    def extra_repr(self) -> str:
        return f"dim={self.dim}"


class LogSoftmax(Module):
    """log(softmax(x)) along ``dim``, computed stably."""

    def __init__(self, dim: int):
        super().__init__()
        self.dim = dim

    def forward(self, x: Tensor) -> Tensor:
        return F.log_softmax(x, dim=self.dim)

    def extra_repr(self) -> str:
        return f"dim={self.dim}"


class Flatten(Module):
    """Flattens dimensions ``start_dim`` to ``end_dim`` (default: all but the batch)."""

    def __init__(self, start_dim: int = 1, end_dim: int = -1):
        super().__init__()
        self.start_dim = start_dim
        self.end_dim = end_dim

    def forward(self, x: Tensor) -> Tensor:
        return x.flatten(self.start_dim, self.end_dim)

    def extra_repr(self) -> str:
        return f"start_dim={self.start_dim}, end_dim={self.end_dim}"
