"""Normalisation layers: ``BatchNorm1d``, ``BatchNorm2d`` and ``LayerNorm``, as in PyTorch."""

from __future__ import annotations

from typing import Any

from flowgrad import _backend
from flowgrad._backend import xp
from flowgrad.creation import ones, zeros
from flowgrad.errors import ShapeError
from flowgrad.nn import functional as F
from flowgrad.nn.module import Module, Parameter
from flowgrad.tensor import Tensor


class _BatchNorm(Module):
    _input_dims: tuple[int, ...] = ()

    def __init__(self, num_features: int, eps: float = 1e-5, momentum: float | None = 0.1,
                 affine: bool = True, track_running_stats: bool = True, *, bias: bool = True):
        super().__init__()
        if not isinstance(num_features, int) or isinstance(num_features, bool) or \
                num_features <= 0:
            raise ValueError(f"{type(self).__name__}: num_features must be a positive int, "
                             f"got {num_features!r}")
        self.num_features, self.eps, self.momentum = num_features, eps, momentum
        self.affine, self.track_running_stats = affine, track_running_stats
        dtype = _backend.default_float
        if affine:
            self.weight = Parameter(xp.ones(num_features, dtype=dtype))
            if bias:
                self.bias = Parameter(xp.zeros(num_features, dtype=dtype))
            else:  # a scale without a shift (PyTorch's bias=False)
                self.register_parameter("bias", None)
        else:
            self.register_parameter("weight", None)
            self.register_parameter("bias", None)
        if track_running_stats:
            # On the default device, as the parameters (and PyTorch's torch.zeros).
            self.register_buffer("running_mean", zeros(num_features, dtype=dtype))
            self.register_buffer("running_var", ones(num_features, dtype=dtype))
            self.register_buffer("num_batches_tracked", zeros((), dtype=_backend.int64))
        else:
            self.register_buffer("running_mean", None)
            self.register_buffer("running_var", None)
            self.register_buffer("num_batches_tracked", None)

    def reset_running_stats(self) -> None:
        """Running mean 0, running variance 1, no batches seen."""
        if self.track_running_stats:
            self.running_mean.data[...] = 0
            self.running_var.data[...] = 1
            self.num_batches_tracked.data[...] = 0

    def forward(self, input: Tensor) -> Tensor:
        name = type(self).__name__
        if input.ndim not in self._input_dims:
            dims = " or ".join(f"{d}D" for d in self._input_dims)
            raise ShapeError(f"{name}: expected {dims} input, got {input.ndim}D input of shape "
                             f"{tuple(input.shape)}")
        if input.shape[1] != self.num_features:
            raise ShapeError(f"{name}: input of shape {tuple(input.shape)} has "
                             f"{input.shape[1]} channels (dim 1), expected "
                             f"num_features={self.num_features}")
        momentum = self.momentum
        if self.training and self.track_running_stats:
            self.num_batches_tracked.data += 1
            if momentum is None:  # a cumulative moving average (reads the count back)
                momentum = 1.0 / self.num_batches_tracked.item()
        # As PyTorch: batch statistics in training (or when none are tracked); the running
        # ones are updated in training and used otherwise.
        batch_stats = self.training or self.running_mean is None
        return F.batch_norm(input, self.running_mean, self.running_var, self.weight, self.bias,
                            batch_stats, momentum, self.eps)

    def extra_repr(self) -> str:
        return (f"{self.num_features}, eps={self.eps}, momentum={self.momentum}, "
                f"affine={self.affine}, track_running_stats={self.track_running_stats}")


class BatchNorm1d(_BatchNorm):
    """Batch normalisation over (N, C) or (N, C, L) input, as ``torch.nn.BatchNorm1d``.

    ``y = (x - mean) / sqrt(var + eps) · weight + bias`` per channel. In ``train()`` mode the
    batch's mean and biased variance are used and the running statistics (buffers
    ``running_mean``, ``running_var``, ``num_batches_tracked``, all in the state dict) are
    updated: ``running = (1 - momentum)·running + momentum·batch`` with the unbiased batch
    variance. In ``eval()`` mode the running statistics are used.
    """

    _input_dims = (2, 3)


class BatchNorm2d(_BatchNorm):
    """Batch normalisation over (N, C, H, W) input, per channel; see :class:`BatchNorm1d`."""

    _input_dims = (4,)


class LayerNorm(Module):
    """Normalise over the trailing ``normalized_shape`` dims, as ``torch.nn.LayerNorm``:
    ``(x - mean) / sqrt(var + eps) · weight + bias`` with ``weight`` ones and ``bias`` zeros of
    that shape (when ``elementwise_affine``)."""

    def __init__(self, normalized_shape: Any, eps: float = 1e-5,
                 elementwise_affine: bool = True, bias: bool = True):
        super().__init__()
        shape = (normalized_shape,) if isinstance(normalized_shape, int) else \
            tuple(normalized_shape)
        if not shape or not all(isinstance(n, int) and n > 0 for n in shape):
            raise ValueError(f"LayerNorm: normalized_shape must be a positive int or a tuple of "
                             f"them, got {normalized_shape!r}")
        self.normalized_shape, self.eps = shape, eps
        self.elementwise_affine = elementwise_affine
        dtype = _backend.default_float
        if elementwise_affine:
            self.weight = Parameter(xp.ones(shape, dtype=dtype))
            if bias:
                self.bias = Parameter(xp.zeros(shape, dtype=dtype))
            else:
                self.register_parameter("bias", None)
        else:
            self.register_parameter("weight", None)
            self.register_parameter("bias", None)

    def forward(self, input: Tensor) -> Tensor:
        return F.layer_norm(input, self.normalized_shape, self.weight, self.bias, self.eps)

    def extra_repr(self) -> str:
        return (f"{self.normalized_shape}, eps={self.eps}, "
                f"elementwise_affine={self.elementwise_affine}")
