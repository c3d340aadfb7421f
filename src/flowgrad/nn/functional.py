"""Functional forms of the layers and losses (``import flowgrad.nn.functional as F``).

Everything that exists as a core op is that op, re-exported (one derivative rule, no second
copy of the math): the activations (``relu``, ``leaky_relu``, ``elu`` and ``silu`` through thin
wrappers, for PyTorch's ``inplace=``), ``linear``, the convolutions and pools,
``binary_cross_entropy_with_logits`` and ``embedding``. The rest is composed from core ops,
so it differentiates to any order: normalisation, dropout, attention, and the losses.
``cross_entropy`` uses the fused, numerically stable op in the common case (integer targets,
no ``weight``, ``ignore_index`` absent from the targets, no ``label_smoothing``) and the
composed form otherwise, with the same numbers.
"""

from __future__ import annotations

import math
from typing import Any

from flowgrad import _backend
from flowgrad.errors import ShapeError
from flowgrad.methods import inplace_op
from flowgrad.ops import nn as _nn_ops
from flowgrad.ops.conv import adaptive_avg_pool2d as _adaptive_avg_pool2d
from flowgrad.ops.conv import avg_pool2d as _avg_pool2d
from flowgrad.ops.conv import col2im as _col2im
from flowgrad.ops.conv import conv1d, conv2d, max_pool2d_indices
from flowgrad.ops.conv import im2col as _im2col
from flowgrad.ops.conv import max_pool2d as _max_pool2d
from flowgrad.ops.elementwise import (
    abs,
    gelu,
    sigmoid,
    softplus,
    tanh,
    where,
)
from flowgrad.ops.elementwise import elu as _elu
from flowgrad.ops.elementwise import leaky_relu as _leaky_relu
from flowgrad.ops.elementwise import relu as _relu
from flowgrad.ops.elementwise import silu as _silu
from flowgrad.ops.nn import _check_reduction, linear
from flowgrad.ops.nn import binary_cross_entropy_with_logits as _bce_with_logits
from flowgrad.ops.reduction import log_softmax, mean, softmax
from flowgrad.ops.reduction import sum as _sum
from flowgrad.ops.shape import gather, masked_fill
from flowgrad.tensor import Tensor

__all__ = [
    "relu", "relu_", "sigmoid", "tanh", "leaky_relu", "softmax", "log_softmax", "linear", "gelu",
    "silu", "elu", "softplus", "mse_loss", "l1_loss", "smooth_l1_loss", "nll_loss",
    "cross_entropy", "binary_cross_entropy_with_logits", "conv1d", "conv2d", "max_pool1d",
    "max_pool2d", "avg_pool1d", "avg_pool2d", "adaptive_avg_pool2d", "unfold", "fold",
    "batch_norm", "layer_norm", "dropout", "embedding", "one_hot",
    "scaled_dot_product_attention", "check_reduction",
]


def relu(input: Tensor, inplace: bool = False) -> Tensor:
    """max(x, 0) elementwise (relu'(0) = 0); ``inplace=True`` writes the result into
    ``input`` itself (:meth:`Tensor.relu_`), as PyTorch's.

    Example:
        >>> import flowgrad as fg
        >>> relu(fg.tensor([-1.0, 0.0, 2.0])).tolist()
        [0.0, 0.0, 2.0]
    """
    return input.relu_() if inplace else _relu(input)


def relu_(input: Tensor) -> Tensor:
    """:func:`relu` in place: ``input`` itself, its values replaced by max(x, 0)."""
    return input.relu_()


def leaky_relu(input: Tensor, negative_slope: float = 0.01, inplace: bool = False) -> Tensor:
    """x for x > 0, negative_slope · x otherwise; ``inplace=True`` overwrites ``input``."""
    if inplace:
        return inplace_op(input, "leaky_relu", negative_slope=negative_slope)
    return _leaky_relu(input, negative_slope=negative_slope)


def elu(input: Tensor, alpha: float = 1.0, inplace: bool = False) -> Tensor:
    """x for x > 0, alpha·(exp(x) - 1) otherwise; ``inplace=True`` overwrites ``input``."""
    return inplace_op(input, "elu", alpha=alpha) if inplace else _elu(input, alpha=alpha)


def silu(input: Tensor, inplace: bool = False) -> Tensor:
    """x·sigmoid(x); ``inplace=True`` overwrites ``input``."""
    return inplace_op(input, "silu") if inplace else _silu(input)


def binary_cross_entropy_with_logits(input: Tensor, target: Any, weight: Any = None,
                                     reduction: str = "mean", pos_weight: Any = None) -> Tensor:
    """Binary cross-entropy on logits, stable for large |x|, as PyTorch's:
    ``-weight·[pos_weight·t·log σ(x) + (1-t)·log(1-σ(x))]``, averaged over every element for
    'mean'. ``weight`` broadcasts to the input's shape; ``pos_weight`` (one weight per class,
    along the last dim) scales the positive term, for unbalanced classes. Without either
    it is the fused op ``fg.binary_cross_entropy_with_logits``; with them, the fused op's
    two halves (``-log σ(x)`` at t = 1, ``-log(1-σ(x))`` at t = 0) are weighted, so the
    derivative stays ``σ(x) - t``-exact at every x, 0 included.

    Example:
        >>> import flowgrad as fg
        >>> x, t = fg.tensor([0.0, 2.0]), fg.tensor([1.0, 0.0])
        >>> round(binary_cross_entropy_with_logits(x, t, pos_weight=fg.tensor(3.0)).item(), 4)
        2.1032
    """
    if weight is None and pos_weight is None:
        return _bce_with_logits(input, target, reduction=reduction)
    check_reduction(reduction)
    t = _as_target(target, input)
    _same_shape("binary_cross_entropy_with_logits", input, t)
    xp = _backend.namespace(input.data)
    positive = _bce_with_logits(input, xp.ones_like(input.data), reduction="none")
    negative = _bce_with_logits(input, xp.zeros_like(input.data), reduction="none")
    if pos_weight is not None:
        positive = positive * pos_weight
    losses = positive * t + negative * (1 - t)
    if weight is not None:
        losses = losses * weight
    return _reduce(losses, reduction)


def check_reduction(reduction: str) -> str:
    """``reduction`` itself if it is one of 'mean', 'sum', 'none', else ValueError."""
    _check_reduction(reduction)  # the one validator, shared with the fused loss ops
    return reduction


def mse_loss(input: Tensor, target: Any, reduction: str = "mean") -> Tensor:
    """Mean squared error: reduce((input - target)²).

    Args:
        input: the predictions.
        target: the targets, same shape as ``input`` (a Tensor or array).
        reduction: 'mean' (default) and 'sum' give a 0-d tensor, 'none' the elementwise
            squared errors.

    Returns:
        The loss; d/dinput = 2 (input - target) (divided by the element count for 'mean').

    Raises:
        ValueError: an unknown ``reduction``.
        ShapeError: ``target``'s shape differs from ``input``'s (broadcasting here is almost
            always a bug, e.g. (N, 1) against (N,)).
    """
    check_reduction(reduction)
    target = _as_target(target, input)
    _same_shape("mse_loss", input, target)
    diff = input - target
    return _reduce(diff * diff, reduction)


def _as_target(target: Any, like: Tensor):
    """A loss target as a Tensor (or array) in the prediction's floating dtype."""
    if isinstance(target, Tensor) and target.requires_grad:
        return target
    arr = target.data if isinstance(target, Tensor) else _backend.asarray(target)
    if _backend.is_floating(like.dtype) and _backend.host_dtype(arr.dtype) != like.dtype:
        arr = _backend.astype(arr, like.dtype)
    return arr


def _reduce(losses: Tensor, reduction: str) -> Tensor:
    check_reduction(reduction)
    if reduction == "mean":
        return mean(losses)
    if reduction == "sum":
        return _sum(losses)
    return losses


def _same_shape(name: str, input: Tensor, target: Any) -> None:
    if tuple(target.shape) != tuple(input.shape):
        raise ShapeError(f"{name}: target of shape {tuple(target.shape)} does not match input "
                         f"of shape {tuple(input.shape)}")


def l1_loss(input: Tensor, target: Any, reduction: str = "mean") -> Tensor:
    """Mean absolute error: reduce(|input - target|) (gradient sign(input - target), 0 at 0)."""
    check_reduction(reduction)
    target = _as_target(target, input)
    _same_shape("l1_loss", input, target)
    return _reduce(abs(input - target), reduction)


def smooth_l1_loss(input: Tensor, target: Any, reduction: str = "mean",
                   beta: float = 1.0) -> Tensor:
    """Huber-like loss: 0.5·d²/beta where |d| < beta, else |d| - 0.5·beta (d = input - target);
    beta = 0 gives the L1 loss, as in PyTorch."""
    check_reduction(reduction)
    if beta < 0:
        raise ValueError(f"smooth_l1_loss: beta must be >= 0, got {beta}")
    target = _as_target(target, input)
    _same_shape("smooth_l1_loss", input, target)
    d = abs(input - target)
    if beta == 0:
        return _reduce(d, reduction)
    return _reduce(where(d < beta, d * d * (0.5 / beta), d - 0.5 * beta), reduction)


def _class_targets(name: str, input: Tensor, target: Any):
    """Integer class targets as an int64 array, checked against input (N, C, ...) or (C,)."""
    t = target.data if isinstance(target, Tensor) else _backend.asarray(target)
    dtype = _backend.host_dtype(t.dtype)
    if dtype.kind not in "iu":
        raise TypeError(f"{name}: target must hold integer class indices, got dtype {dtype}")
    expected = (input.shape[0],) + tuple(input.shape[2:]) if input.ndim >= 2 else ()
    if tuple(t.shape) != expected:
        raise ShapeError(f"{name}: input of shape {tuple(input.shape)} needs target of shape "
                         f"{expected}, got {tuple(t.shape)}")
    t = _backend.astype(t, _backend.int64, copy=False)
    # Class targets live where the input does (host targets for a GPU input are copied).
    return t if _backend.on_host(input.data) else _backend.asarray(t, device=input.device)


def _picked(name: str, logp: Tensor, t, weight, ignore_index: int):
    """(-w[t]·logp[t] per sample with 0 where t == ignore_index, w[t] per sample (0 ignored))."""
    xp = _backend.namespace(logp.data)
    classes = logp.shape[1] if logp.ndim >= 2 else logp.shape[0]
    keep = t != ignore_index
    safe = xp.where(keep, t, 0)
    # Value checks read the targets: done on the host only (on a GPU, as PyTorch's kernels,
    # a target out of range is not diagnosed here).
    if _backend.on_host(safe) and safe.size and (safe.min() < 0 or safe.max() >= classes):
        bad = t[keep]
        raise IndexError(f"{name}: target values must lie in [0, {classes}) (or be "
                         f"ignore_index={ignore_index}), got min {bad.min()} and max {bad.max()}")
    if logp.ndim == 1:
        chosen = gather(logp, 0, xp.reshape(safe, (1,))).squeeze(0)
    else:
        chosen = gather(logp, 1, xp.expand_dims(safe, axis=1)).squeeze(1)
    if weight is None:
        w = xp.ones(t.shape, dtype=logp.data.dtype, device=logp.data.device)
    else:
        table = _weights(name, weight, classes, logp)
        w = xp.reshape(xp.take(table, xp.reshape(safe, (-1,)), axis=0), tuple(safe.shape))
    w = xp.where(keep, w, 0.0)
    return -(chosen * w), w


def _weights(name: str, weight: Any, classes: int, like: Tensor):
    w = weight.data if isinstance(weight, Tensor) else _backend.asarray(weight,
                                                                         device=like.device)
    if tuple(w.shape) != (classes,):
        raise ShapeError(f"{name}: weight must have shape ({classes},) (one per class), got "
                         f"{tuple(w.shape)}")
    return _backend.astype(w, like.dtype, copy=False)


def nll_loss(input: Tensor, target: Any, weight: Any = None, ignore_index: int = -100,
             reduction: str = "mean") -> Tensor:
    """Negative log-likelihood of log-probabilities ``input`` (N, C, ...) or (C,) at integer
    ``target``: -weight[t]·input[t]; 'mean' divides by the summed weights of the samples that
    are not ``ignore_index`` (as PyTorch)."""
    check_reduction(reduction)
    t = _class_targets("nll_loss", input, target)
    losses, w = _picked("nll_loss", input, t, weight, ignore_index)
    if reduction == "mean":
        return _sum(losses) / _sum(Tensor._make(w, False, None))
    return _reduce(losses, reduction)


def cross_entropy(input: Tensor, target: Any, weight: Any = None, ignore_index: int = -100,
                  reduction: str = "mean", label_smoothing: float = 0.0) -> Tensor:
    """Cross-entropy of logits ``input`` (N, C, ...) or (C,) against integer class targets or
    class probabilities (a floating ``target`` of the input's shape), as in PyTorch.

    Args:
        input: unnormalised logits, classes on dim 1 (dim 0 for a single sample).
        target: class indices (N, ...) or probabilities of the input's shape.
        weight: optional per-class weights (C,).
        ignore_index: a target value that contributes nothing (and is not counted by 'mean').
        reduction: 'mean', 'sum' or 'none'.
        label_smoothing: ε in [0, 1]: the target becomes (1 - ε)·onehot + ε/C.

    Returns:
        The loss; the gradient is softmax(input) - target (scaled for 'mean').
    """
    check_reduction(reduction)
    if not 0.0 <= label_smoothing <= 1.0:
        raise ValueError(f"cross_entropy: label_smoothing must lie in [0, 1], got "
                         f"{label_smoothing}")
    t = target.data if isinstance(target, Tensor) else _backend.asarray(target)
    soft = _backend.is_floating(t.dtype)
    if not soft and weight is None and label_smoothing == 0.0 and input.ndim <= 2:
        # On the host the fused op refuses targets outside [0, C), so a negative
        # ignore_index (the default -100) needs no look at the targets unless the op refuses
        # them. On a device the op checks no values, so whether any target is ignore_index
        # is read back (one bool per call; PyTorch's kernel decides that on the device).
        host = _backend.on_host(t)
        if (host and ignore_index < 0) or not bool(_backend.namespace(t).any(t == ignore_index)):
            try:
                # The target itself, not its array: the graph shows it as the op's input.
                return _nn_ops.cross_entropy(input, target if isinstance(target, Tensor)
                                             else t, reduction=reduction)
            except ValueError:
                if not (host and t.dtype.kind in "iu" and bool((t == ignore_index).any())):
                    raise
    dim = 1 if input.ndim >= 2 else 0
    classes = input.shape[dim]
    logp = log_softmax(input, dim=dim)
    if soft:
        _same_shape("cross_entropy", input, t)
        probs = target if isinstance(target, Tensor) and target.requires_grad else \
            Tensor._make(_backend.astype(t, input.dtype, copy=False), False, None)
        if label_smoothing:
            probs = probs * (1.0 - label_smoothing) + label_smoothing / classes
        if weight is not None:
            w = _weights("cross_entropy", weight, classes, input)
            logp = logp * _backend.namespace(w).reshape(w, (classes,) + (1,) * (input.ndim - dim
                                                                                 - 1))
        losses = -_sum(logp * probs, dim=dim)
        return _reduce(losses, reduction)
    t = _class_targets("cross_entropy", input, t)
    nll, w = _picked("cross_entropy", logp, t, weight, ignore_index)
    if label_smoothing:
        keep = t != ignore_index
        lw = logp
        if weight is not None:
            cw = _weights("cross_entropy", weight, classes, input)
            lw = logp * _backend.namespace(cw).reshape(cw, (classes,) + (1,) * (input.ndim - dim
                                                                                - 1))
        smooth = where(keep, -_sum(lw, dim=dim), 0.0)
        losses = nll * (1.0 - label_smoothing) + smooth * (label_smoothing / classes)
    else:
        losses = nll
    if reduction == "mean":
        return _sum(losses) / _sum(Tensor._make(w, False, None))
    return _reduce(losses, reduction)


# ---------------------------------------------------------------- convolution and pooling


def _pool_stride(stride):
    return None if stride is None or (not isinstance(stride, int) and len(stride) == 0) \
        else stride


def max_pool2d(input: Tensor, kernel_size, stride=None, padding=0, dilation=1,
               ceil_mode: bool = False, return_indices: bool = False):
    """Max pooling over (N, C, H, W) or (C, H, W) input, as PyTorch's (stride defaults to
    kernel_size); with ``return_indices``, also the flat H·W index of each maximum."""
    kwargs = dict(kernel_size=kernel_size, stride=_pool_stride(stride), padding=padding,
                  dilation=dilation, ceil_mode=ceil_mode)
    out = _max_pool2d(input, **kwargs)
    return (out, max_pool2d_indices(input, **kwargs)) if return_indices else out


def avg_pool2d(input: Tensor, kernel_size, stride=None, padding=0, ceil_mode: bool = False,
               count_include_pad: bool = True, divisor_override: int | None = None) -> Tensor:
    """Average pooling over (N, C, H, W) or (C, H, W) input, as PyTorch's."""
    return _avg_pool2d(input, kernel_size=kernel_size, stride=_pool_stride(stride),
                       padding=padding, ceil_mode=ceil_mode,
                       count_include_pad=count_include_pad, divisor_override=divisor_override)


def adaptive_avg_pool2d(input: Tensor, output_size) -> Tensor:
    """Average pooling to a fixed ``output_size`` (int, or pair; None keeps that size)."""
    return _adaptive_avg_pool2d(input, output_size=output_size)


def _one(value, name: str):
    if isinstance(value, int):
        return value
    value = tuple(value)
    if len(value) != 1:
        raise ValueError(f"{name} must be an int or a 1-tuple, got {value!r}")
    return value[0]


def max_pool1d(input: Tensor, kernel_size, stride=None, padding=0, dilation=1,
               ceil_mode: bool = False) -> Tensor:
    """Max pooling over (N, C, L) or (C, L) input: max_pool2d over a height of 1."""
    stride = _pool_stride(stride)
    out = _max_pool2d(input.unsqueeze(-2), kernel_size=(1, _one(kernel_size, "kernel_size")),
                      stride=None if stride is None else (1, _one(stride, "stride")),
                      padding=(0, _one(padding, "padding")),
                      dilation=(1, _one(dilation, "dilation")), ceil_mode=ceil_mode)
    return out.squeeze(-2)


def avg_pool1d(input: Tensor, kernel_size, stride=None, padding=0, ceil_mode: bool = False,
               count_include_pad: bool = True) -> Tensor:
    """Average pooling over (N, C, L) or (C, L) input: avg_pool2d over a height of 1."""
    stride = _pool_stride(stride)
    out = _avg_pool2d(input.unsqueeze(-2), kernel_size=(1, _one(kernel_size, "kernel_size")),
                      stride=None if stride is None else (1, _one(stride, "stride")),
                      padding=(0, _one(padding, "padding")), ceil_mode=ceil_mode,
                      count_include_pad=count_include_pad, divisor_override=None)
    return out.squeeze(-2)


def _unfold_geometry(shape, kernel_size, dilation, padding, stride):
    from flowgrad.ops.conv import _ints

    kernel = _ints(kernel_size, 2, "unfold", "kernel_size", 1)
    dilation = _ints(dilation, 2, "unfold", "dilation", 1)
    ph, pw = _ints(padding, 2, "unfold", "padding", 0)
    stride = _ints(stride, 2, "unfold", "stride", 1)
    return dict(kernel_size=kernel, stride=stride, padding=(ph, ph, pw, pw), dilation=dilation)


def unfold(input: Tensor, kernel_size, dilation=1, padding=0, stride=1) -> Tensor:
    """The sliding blocks of (N, C, H, W) input as columns (N, C·kh·kw, L), as PyTorch's."""
    if input.ndim != 4:
        raise ShapeError(f"unfold: input must be 4-D (N, C, H, W), got shape "
                         f"{tuple(input.shape)}")
    col = _im2col(input, **_unfold_geometry(input.shape, kernel_size, dilation, padding,
                                            stride))
    return col.reshape(col.shape[0], input.shape[0], -1).permute(1, 0, 2)


def fold(input: Tensor, output_size, kernel_size, dilation=1, padding=0, stride=1) -> Tensor:
    """Columns (N, C·kh·kw, L) summed back into (N, C, H, W) images (unfold's adjoint)."""
    from flowgrad.ops.conv import _ints

    if input.ndim != 3:
        raise ShapeError(f"fold: input must be 3-D (N, C·kh·kw, L), got shape "
                         f"{tuple(input.shape)}")
    geometry = _unfold_geometry(None, kernel_size, dilation, padding, stride)
    kh, kw = geometry["kernel_size"]
    if input.shape[1] % (kh * kw):
        raise ShapeError(f"fold: dim 1 of the input of shape {tuple(input.shape)} must be "
                         f"divisible by the kernel's {kh * kw} positions")
    h, w = _ints(output_size, 2, "fold", "output_size", 1)
    shape = (input.shape[0], input.shape[1] // (kh * kw), h, w)
    col = input.permute(1, 0, 2).reshape(input.shape[1], -1)
    return _col2im(col, input_shape=shape, **geometry)


# ---------------------------------------------------------------- normalisation, dropout


def _channel_view(t, ndim: int):
    """A per-channel (C,) array or Tensor shaped to broadcast over (N, C, ...)."""
    shape = (-1,) + (1,) * (ndim - 2)
    return t.reshape(shape) if isinstance(t, Tensor) else _backend.namespace(t).reshape(t, shape)


def batch_norm(input: Tensor, running_mean: Any, running_var: Any, weight: Any = None,
               bias: Any = None, training: bool = False, momentum: float | None = 0.1,
               eps: float = 1e-5) -> Tensor:
    """Batch normalisation over (N, C, ...) input, as PyTorch's.

    In training, each channel is normalised by the batch's mean and biased variance, and
    ``running_mean``/``running_var`` (when given) are updated in place with ``momentum``,
    the variance unbiased (N/(N-1)). Otherwise the running statistics are used.
    """
    if input.ndim < 2:
        raise ShapeError(f"batch_norm: input must be (N, C, ...), got shape "
                         f"{tuple(input.shape)}")
    channels = input.shape[1]
    for name, t in (("running_mean", running_mean), ("running_var", running_var),
                    ("weight", weight), ("bias", bias)):
        if t is not None and tuple(t.shape) != (channels,):
            raise ShapeError(f"batch_norm: {name} must have shape ({channels},) for input of "
                             f"shape {tuple(input.shape)}, got {tuple(t.shape)}")
    axes = (0,) + tuple(range(2, input.ndim))
    if training:
        count = input.numel() // channels
        if count <= 1:
            raise ValueError(f"batch_norm: expected more than 1 value per channel when "
                             f"training, got input of shape {tuple(input.shape)}")
        mu = mean(input, dim=axes, keepdim=True)
        centred = input - mu
        var = mean(centred * centred, dim=axes, keepdim=True)
        if running_mean is not None and running_var is not None:
            m = 0.1 if momentum is None else momentum
            rm = running_mean.data if isinstance(running_mean, Tensor) else running_mean
            rv = running_var.data if isinstance(running_var, Tensor) else running_var
            xp = _backend.namespace(rm)
            rm *= 1 - m
            rm += m * xp.reshape(mu.data, (-1,))
            rv *= 1 - m
            rv += m * xp.reshape(var.data, (-1,)) * (count / (count - 1))
        out = centred * ((var + eps) ** -0.5)
    else:
        if running_mean is None or running_var is None:
            raise ValueError("batch_norm: running_mean and running_var are needed when not "
                             "training")
        rm = running_mean.data if isinstance(running_mean, Tensor) else running_mean
        rv = running_var.data if isinstance(running_var, Tensor) else running_var
        scale = (rv + eps) ** -0.5
        out = (input - _channel_view(rm, input.ndim)) * _channel_view(scale, input.ndim)
    if weight is not None:
        out = out * _channel_view(weight, input.ndim)
    if bias is not None:
        out = out + _channel_view(bias, input.ndim)
    return out


def layer_norm(input: Tensor, normalized_shape, weight: Any = None, bias: Any = None,
               eps: float = 1e-5) -> Tensor:
    """Normalise over the trailing ``normalized_shape`` dims (biased variance), then scale by
    ``weight`` and shift by ``bias`` (both of that shape), as PyTorch's."""
    shape = (normalized_shape,) if isinstance(normalized_shape, int) else \
        tuple(normalized_shape)
    k = len(shape)
    if k == 0 or tuple(input.shape[input.ndim - k:]) != shape or input.ndim < k:
        raise ShapeError(f"layer_norm: normalized_shape {shape} does not match the trailing "
                         f"dims of the input of shape {tuple(input.shape)}")
    for name, t in (("weight", weight), ("bias", bias)):
        if t is not None and tuple(t.shape) != shape:
            raise ShapeError(f"layer_norm: {name} must have shape {shape}, got "
                             f"{tuple(t.shape)}")
    axes = tuple(range(input.ndim - k, input.ndim))
    centred = input - mean(input, dim=axes, keepdim=True)
    var = mean(centred * centred, dim=axes, keepdim=True)
    out = centred * ((var + eps) ** -0.5)
    if weight is not None:
        out = out * weight
    if bias is not None:
        out = out + bias
    return out


def _check_p(name: str, p: float) -> float:
    if not isinstance(p, (int, float)) or isinstance(p, bool) or not 0.0 <= p < 1.0:
        raise ValueError(f"{name}: dropout probability p must lie in [0, 1), got {p!r}")
    return float(p)


def dropout(input: Tensor, p: float = 0.5, training: bool = True,
            inplace: bool = False) -> Tensor:
    """Zero each element with probability ``p`` and scale the rest by 1/(1-p) (inverted
    dropout), drawing from flowgrad's generator (``fg.manual_seed``); the identity when not
    training or p = 0."""
    p = _check_p("dropout", p)
    if not training or p == 0.0:
        return input
    dtype = input.dtype if _backend.is_floating(input.dtype) else _backend.default_float
    # Drawn on the host (flowgrad's one generator), copied to the input's device.
    keep = _backend.rng().random(input.shape, dtype=_backend.float32) >= p
    scale = (keep.astype(dtype) * (1.0 / (1.0 - p))).astype(dtype)
    return input * Tensor._make(_backend.from_host(scale, input.device), False, None)


def embedding(input: Any, weight: Tensor, padding_idx: int | None = None) -> Tensor:
    """Rows of ``weight`` (num_embeddings, dim) picked by the integer ``input``; the row
    ``padding_idx`` gets no gradient. An index outside [0, num_embeddings) is an IndexError."""
    if padding_idx is not None:
        n = weight.shape[0]
        if not -n <= padding_idx < n:
            raise ValueError(f"embedding: padding_idx must lie in [-{n}, {n}), got "
                             f"{padding_idx}")
        padding_idx %= n
    return _nn_ops.embedding(input, weight, padding_idx=padding_idx)


def one_hot(tensor: Any, num_classes: int = -1) -> Tensor:
    """int64 one-hot encoding with a new last dim of size ``num_classes`` (-1: max + 1)."""
    t = tensor.data if isinstance(tensor, Tensor) else _backend.asarray(tensor)
    xp = _backend.namespace(t)
    if _backend.host_dtype(t.dtype).kind not in "iu":
        raise TypeError(f"one_hot: the input must hold integer class indices, got dtype "
                        f"{_backend.host_dtype(t.dtype)}")
    if not isinstance(num_classes, int) or isinstance(num_classes, bool) or num_classes < -1:
        raise ValueError(f"one_hot: num_classes must be a non-negative int or -1, got "
                         f"{num_classes!r}")
    if _backend.on_host(t) and t.size and t.min() < 0:
        raise ValueError(f"one_hot: class values must be non-negative, got min {t.min()}")
    if num_classes == -1:  # (reads the largest value back from a device)
        num_classes = int(xp.max(t)) + 1 if t.size else 0
    elif _backend.on_host(t) and t.size and t.max() >= num_classes:
        raise ValueError(f"one_hot: class values must be smaller than num_classes="
                         f"{num_classes}, got max {t.max()}")
    out = xp.astype(t[..., None] == xp.arange(num_classes, device=t.device), xp.int64)
    return Tensor._make(out, False, None)


# ---------------------------------------------------------------- attention


def scaled_dot_product_attention(query: Tensor, key: Tensor, value: Tensor,
                                 attn_mask: Any = None, dropout_p: float = 0.0,
                                 is_causal: bool = False, scale: float | None = None) -> Tensor:
    """softmax(query @ keyᵀ · scale + mask) @ value over (..., L, E) query and (..., S, E) key
    and (..., S, Ev) value, as PyTorch's.

    ``attn_mask`` is a bool mask (True: may attend) or a float mask added to the scores;
    ``is_causal`` masks out the future (a lower-triangular mask). ``scale`` defaults to
    1/√E. ``dropout_p`` drops attention weights (always, as PyTorch's function does).
    """
    xp = _backend.namespace(query.data)
    if query.shape[-1] != key.shape[-1]:
        raise ShapeError(f"scaled_dot_product_attention: query of shape {tuple(query.shape)} "
                         f"and key of shape {tuple(key.shape)} differ in their last dim")
    if key.shape[-2] != value.shape[-2]:
        raise ShapeError(f"scaled_dot_product_attention: key of shape {tuple(key.shape)} and "
                         f"value of shape {tuple(value.shape)} differ in their length (dim -2)")
    if is_causal and attn_mask is not None:
        raise ValueError("scaled_dot_product_attention: give either attn_mask or "
                         "is_causal=True, not both")
    length, source = query.shape[-2], key.shape[-2]
    scale = 1.0 / math.sqrt(query.shape[-1]) if scale is None else scale
    scores = (query @ key.mT) * scale
    if is_causal:
        allowed = xp.tril(xp.ones((length, source), dtype=_backend.bool_,
                                  device=query.data.device))
        scores = masked_fill(scores, Tensor._make(~allowed, False, None), -math.inf)
    elif attn_mask is not None:
        mask = attn_mask.data if isinstance(attn_mask, Tensor) else _backend.asarray(
            attn_mask, device=query.device)
        if _backend.host_dtype(mask.dtype) == _backend.bool_:
            scores = masked_fill(scores, Tensor._make(xp.broadcast_to(~mask, scores.shape),
                                                      False, None), -math.inf)
        else:
            scores = scores + (attn_mask if isinstance(attn_mask, Tensor)
                               else _backend.astype(mask, scores.dtype))
    weights = softmax(scores, dim=-1)
    if dropout_p > 0.0:
        weights = dropout(weights, dropout_p, training=True)
    return weights @ value
