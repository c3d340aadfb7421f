"""Fused neural-network ops: fewer nodes and the textbook gradients (softmax - onehot)."""

from __future__ import annotations

import math

from flowgrad import _backend
from flowgrad.creation import arange, ones, zeros
from flowgrad.errors import ShapeError
from flowgrad.ops.elementwise import sigmoid, where
from flowgrad.ops.reduction import softmax
from flowgrad.ops.registry import op, promote_elementwise
from flowgrad.ops.shape import index_add
from flowgrad.tensor import Tensor

REDUCTIONS = ("mean", "sum", "none")


def _check_reduction(reduction: str) -> None:
    if reduction not in REDUCTIONS:
        raise ValueError(f"reduction must be one of {REDUCTIONS}, got {reduction!r}")


@op(promote=promote_elementwise)
def linear(xp, x, weight, bias=None):
    """x @ weightᵀ + bias. dx = g @ W, dW = gᵀ @ x (summed over the batch), db = Σ g"""
    if x.shape[-1] != weight.shape[-1]:
        raise ShapeError(f"linear: input of shape {tuple(x.shape)} does not fit weight of shape "
                         f"{tuple(weight.shape)} (expected last dim {weight.shape[-1]})")
    out = xp.matmul(x, weight.T)
    if bias is not None:
        out += bias
    return out


@linear.rule
def _(g, x, weight, bias, needs):
    gx = g @ weight if needs[0] else None
    gw = None
    if needs[1]:
        if x.ndim == 2:
            gw = g.mT @ x
        else:
            out_features, in_features = weight.shape
            gw = g.reshape(-1, out_features).mT @ x.reshape(-1, in_features)
    return gx, gw, (g if needs[2] else None)


@linear.fast
def _(xp, g, x, weight, bias, needs):
    gx = xp.matmul(g, weight) if needs[0] else None
    gw = None
    if needs[1]:
        if x.ndim == 2:
            gw = xp.matmul(g.T, x)
        else:
            out_features, in_features = weight.shape
            gw = xp.matmul(xp.reshape(g, (-1, out_features)).T, xp.reshape(x, (-1, in_features)))
    gb = None
    if needs[2]:
        gb = g if g.ndim == 1 else xp.sum(xp.reshape(g, (-1, g.shape[-1])), axis=0)
    return gx, gw, gb


@op(saves=True)
def cross_entropy(xp, logits, target, *, reduction="mean"):
    """Mean (or sum) of -log softmax(logits)[target]; d/dlogits = softmax - onehot (/N for mean)

    ``logits`` is (N, C) (or (C,) for one sample); ``target`` holds class indices.
    """
    _check_reduction(reduction)
    if logits.ndim not in (1, 2):
        raise ValueError(f"cross_entropy: logits must be (N, C) or (C,), got shape "
                         f"{tuple(logits.shape)}")
    target = xp.asarray(target)
    if target.dtype.kind not in "iu":
        raise TypeError(f"cross_entropy: target must hold integer class indices, got dtype "
                        f"{target.dtype}")
    batched = logits.ndim == 2
    z = logits if batched else logits[None, :]
    t = target.reshape(-1)
    if t.shape[0] != z.shape[0]:
        raise ValueError(f"cross_entropy: logits of shape {tuple(logits.shape)} need target of "
                         f"shape ({z.shape[0]},), got {tuple(target.shape)}")
    if t.size and (xp.min(t) < 0 or xp.max(t) >= z.shape[1]):
        raise ValueError(f"cross_entropy: target values must lie in [0, {z.shape[1]}), got "
                         f"min {xp.min(t)} and max {xp.max(t)}")
    shifted = z - xp.max(z, axis=1, keepdims=True)
    e = xp.exp(shifted)
    total = xp.sum(e, axis=1, keepdims=True)
    rows = xp.arange(z.shape[0])
    losses = xp.log(total[:, 0]) - shifted[rows, t]
    # d(sum of losses)/dz, kept for the rule: softmax(z) - onehot(t).
    dz = e / total
    dz[rows, t] -= 1
    if reduction == "mean":
        out = xp.mean(losses) if losses.size else xp.asarray(float("nan"), dtype=z.dtype)
    elif reduction == "sum":
        out = xp.sum(losses)
    else:
        out = losses if batched else losses[0]
    return xp.asarray(out, dtype=z.dtype), dz


@cross_entropy.rule
def _(g, logits, target, reduction):
    # Recorded (create_graph): dz = softmax - onehot as ops, so it differentiates again.
    batched = logits.ndim == 2
    z = logits if batched else logits.reshape(1, -1)
    t = (target.data if isinstance(target, Tensor) else target).reshape(-1)
    onehot = index_add(zeros(z.shape, dtype=z.dtype), ones(t.shape[0], dtype=z.dtype),
                       index=(arange(t.shape[0]).data, t))
    dz = softmax(z, dim=1) - onehot
    n = dz.shape[0]
    if reduction == "mean":
        gz = dz * (g / float(n))
    elif reduction == "sum":
        gz = dz * g
    else:
        gz = dz * g.reshape(-1, 1)
    return (gz if batched else gz.reshape(-1)), None


@cross_entropy.fast
def _(xp, g, logits, target, saved, reduction):
    # First order: one multiply of the saved softmax - onehot.
    if reduction == "mean":
        gz = saved * (g / saved.shape[0]).astype(saved.dtype, copy=False)
    elif reduction == "sum":
        gz = saved * g.astype(saved.dtype, copy=False)
    else:
        gz = saved * xp.reshape(g, (-1, 1))
    return (gz if logits.ndim == 2 else xp.reshape(gz, (-1,))), None


@op()
def binary_cross_entropy_with_logits(xp, logits, target, *, reduction="mean"):
    """-[t·log σ(x) + (1-t)·log(1-σ(x))], stable; d/dx = σ(x) - t, d/dt = -x"""
    _check_reduction(reduction)
    if xp.shape(target) != logits.shape:
        raise ShapeError(f"binary_cross_entropy_with_logits: target shape "
                         f"{tuple(xp.shape(target))} differs from logits shape "
                         f"{tuple(logits.shape)}")
    losses = xp.maximum(logits, 0) - logits * target + xp.log1p(xp.exp(-xp.abs(logits)))
    if reduction == "mean":
        return losses.mean()
    return losses.sum() if reduction == "sum" else losses


@binary_cross_entropy_with_logits.rule
def _(g, logits, target, reduction, needs):
    if reduction == "mean":
        g = g / float(max(math.prod(logits.shape), 1))
    gx = g * (sigmoid(logits) - target) if needs[0] else None
    gt = -g * logits if needs[1] else None
    return gx, gt


@op()
def embedding(xp, input, weight, *, padding_idx=None):
    """Rows of ``weight`` picked by the integer ``input``: out[..., :] = weight[input[...]].

    d/dweight: g scattered back onto the rows it came from (repeated indices accumulate), and
    nothing to the row ``padding_idx`` (as PyTorch).
    """
    index = xp.asarray(input)
    if index.dtype.kind not in "iu":
        raise TypeError(f"embedding: indices must be integers, got dtype {index.dtype}")
    if weight.ndim != 2:
        raise ShapeError(f"embedding: weight must be 2-D (num_embeddings, embedding_dim), got "
                         f"shape {tuple(weight.shape)}")
    n = weight.shape[0]
    if index.size and (index.min() < 0 or index.max() >= n):
        raise IndexError(f"embedding: index out of range: indices must lie in [0, {n}) for "
                         f"{n} embeddings, got min {index.min()} and max {index.max()}")
    return weight[index]


@embedding.rule
def _(g, input, weight, padding_idx, needs):
    index = input.data if isinstance(input, Tensor) else _backend.asarray(input)
    if padding_idx is not None:
        g = where((index == padding_idx)[..., None], 0.0, g)
    return None, index_add(zeros(weight.shape, dtype=g.dtype), g, index=index)


@embedding.fast
def _(xp, g, input, weight, padding_idx):
    index = xp.asarray(input)
    if padding_idx is not None:
        g = xp.where((index == padding_idx)[..., None], 0, g)
    gw = xp.zeros(weight.shape, dtype=g.dtype)
    _backend.scatter_add(gw, index, g)  # repeated indices accumulate
    return None, gw
