"""Fused neural-network ops: fewer nodes and the textbook gradients (softmax - onehot)."""

from __future__ import annotations

import math

from flowgrad import _backend
from flowgrad.creation import arange, ones, zeros
from flowgrad.errors import ShapeError
from flowgrad.ops.elementwise import sigmoid, where
from flowgrad.ops.reduction import softmax
from flowgrad.ops.registry import op, promote_elementwise
from flowgrad.ops.shape import check_range, index_add
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
            gw = xp.matmul(xp.reshape(g, (-1, out_features)).T,
                           xp.reshape(x, (-1, in_features)))
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
    if not _backend.is_array(target):
        target = _backend.asarray(target)
    if _backend.host_dtype(target.dtype).kind not in "iu":
        raise TypeError(f"cross_entropy: target must hold integer class indices, got dtype "
                        f"{_backend.host_dtype(target.dtype)}")
    batched = logits.ndim == 2
    z = logits if batched else logits[None, :]
    t = xp.reshape(target, (-1,))
    if t.shape[0] != z.shape[0]:
        raise ValueError(f"cross_entropy: logits of shape {tuple(logits.shape)} need target of "
                         f"shape ({z.shape[0]},), got {tuple(target.shape)}")
    check_range(t, z.shape[1], "cross_entropy: target values", error=ValueError)
    shifted = z - xp.max(z, axis=1, keepdims=True)
    e = xp.exp(shifted)
    total = xp.sum(e, axis=1, keepdims=True)
    rows = xp.arange(z.shape[0], device=z.device)
    picked = (rows, t)
    losses = xp.log(total[:, 0]) - shifted[picked]
    # d(sum of losses)/dz, kept for the rule: softmax(z) - onehot(t).
    dz = e / total
    _backend.index_put(dz, picked, dz[picked] - 1.0)  # one entry per row: no repeats
    if reduction == "mean":
        out = xp.mean(losses) if losses.size else xp.full((), xp.nan, dtype=z.dtype,
                                                             device=z.device)
    elif reduction == "sum":
        out = xp.sum(losses)
    else:
        out = losses if batched else losses[0]
    return out, dz


@cross_entropy.rule
def _(g, logits, target, reduction):
    # Recorded (create_graph): dz = softmax - onehot as ops, so it differentiates again.
    batched = logits.ndim == 2
    z = logits if batched else logits.reshape(1, -1)
    t = target.data if isinstance(target, Tensor) else target
    t = _backend.asarray(t, device=z.device) if not _backend.is_array(t) else t
    t = _backend.namespace(t).reshape(t, (-1,))
    n = t.shape[0]
    onehot = index_add(zeros(z.shape, dtype=z.dtype, device=z.device),
                       ones(n, dtype=z.dtype, device=z.device),
                       index=(arange(n, device=z.device).data, t))
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
        gz = saved * xp.astype(g / saved.shape[0], saved.dtype, copy=False)
    elif reduction == "sum":
        gz = saved * xp.astype(g, saved.dtype, copy=False)
    else:
        gz = saved * xp.reshape(g, (-1, 1))
    return (gz if logits.ndim == 2 else xp.reshape(gz, (-1,))), None


@op()
def binary_cross_entropy_with_logits(xp, logits, target, *, reduction="mean"):
    """-[t·log σ(x) + (1-t)·log(1-σ(x))], stable; d/dx = σ(x) - t, d/dt = -x"""
    _check_reduction(reduction)
    if tuple(getattr(target, "shape", ())) != tuple(logits.shape):
        raise ShapeError(f"binary_cross_entropy_with_logits: target shape "
                         f"{tuple(getattr(target, 'shape', ()))} differs from logits shape "
                         f"{tuple(logits.shape)}")
    losses = xp.maximum(logits, 0.0) - logits * target + xp.log1p(xp.exp(-xp.abs(logits)))
    if reduction == "mean":
        return xp.mean(losses)
    return xp.sum(losses) if reduction == "sum" else losses


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
    index = input if _backend.is_array(input) else _backend.asarray(input)
    if _backend.host_dtype(index.dtype).kind not in "iu":
        raise TypeError(f"embedding: indices must be integers, got dtype "
                        f"{_backend.host_dtype(index.dtype)}")
    if weight.ndim != 2:
        raise ShapeError(f"embedding: weight must be 2-D (num_embeddings, embedding_dim), got "
                         f"shape {tuple(weight.shape)}")
    n = weight.shape[0]
    check_range(index, n, "embedding: index out of range: indices", f" for {n} embeddings")
    rows = xp.take(weight, xp.reshape(index, (-1,)), axis=0)
    return xp.reshape(rows, tuple(index.shape) + (weight.shape[1],))


@embedding.rule
def _(g, input, weight, padding_idx, needs):
    index = input.data if isinstance(input, Tensor) else input
    if not _backend.is_array(index):
        index = _backend.asarray(index, device=g.device)
    if padding_idx is not None:
        g = where((index == padding_idx)[..., None], 0.0, g)
    return None, index_add(zeros(weight.shape, dtype=g.dtype, device=g.device), g, index=index)


@embedding.fast
def _(xp, g, input, weight, padding_idx):
    index = xp.asarray(input)
    if padding_idx is not None:
        g = xp.where((index == padding_idx)[..., None], 0.0, g)
    gw = xp.zeros(weight.shape, dtype=g.dtype, device=g.device)
    _backend.scatter_add(gw, index, g)  # repeated indices accumulate
    return None, gw
