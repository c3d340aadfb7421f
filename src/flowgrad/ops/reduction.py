"""Reductions and the softmax family. ``dim`` is an int, a tuple of ints, or None (all)."""

from __future__ import annotations

import math

from flowgrad import _backend
from flowgrad.creation import ones
from flowgrad.ops._dims import axes, keep_dims
from flowgrad.ops.elementwise import abs, exp, sign, where
from flowgrad.ops.registry import op, promote_counts, promote_to_float
from flowgrad.ops.shape import broadcast_to, flip, stack

__all__ = ["sum", "mean", "amax", "amin", "logsumexp", "softmax", "log_softmax", "axes",
           "keep_dims"]


def _broadcast(g, x, dim, keepdim):
    return broadcast_to(keep_dims(g, x.shape, dim, keepdim), shape=x.shape)


@op(method=True, promote=promote_counts, saves_inputs=False)
def sum(xp, x, *, dim=None, keepdim=False):
    """d sum(x)/dx = 1 for every summed element: the gradient is broadcast back"""
    return xp.sum(x, axis=None if dim is None else axes(dim, x.ndim), keepdims=keepdim)


@sum.rule
def _(g, x, dim, keepdim):
    return _broadcast(g, x, dim, keepdim)


@sum.fast
def _(xp, g, x, dim, keepdim):
    if dim is not None:
        g = keep_dims(g, x.shape, dim, keepdim, xp)
    return _backend.expand(g, x.shape)


def _count(shape: tuple, dim) -> int:
    """How many elements each output of a reduction over ``dim`` summarises."""
    return math.prod(shape[a] for a in axes(dim, len(shape)))


@op(method=True, promote=promote_to_float, saves_inputs=False)
def mean(xp, x, *, dim=None, keepdim=False):
    """d mean(x)/dx = 1/n for each of the n averaged elements"""
    return xp.mean(x, axis=None if dim is None else axes(dim, x.ndim), keepdims=keepdim)


@mean.rule
def _(g, x, dim, keepdim):
    return _broadcast(g / float(max(_count(x.shape, dim), 1)), x, dim, keepdim)


@mean.fast
def _(xp, g, x, dim, keepdim):
    scaled = g / float(max(_count(x.shape, dim), 1))
    return _backend.expand(keep_dims(scaled, x.shape, dim, keepdim, xp), x.shape)


def _extreme_rule(g, x, out, dim, keepdim):
    # Tied extremes share the gradient evenly (PyTorch's amax/amin convention).
    mask = (x == keep_dims(out, x.shape, dim, keepdim)).astype(g.dtype)
    share = mask / mask.sum(dim=axes(dim, x.ndim), keepdim=True)
    return keep_dims(g, x.shape, dim, keepdim) * share


@op(method=True)
def amax(xp, x, *, dim=None, keepdim=False):
    """d max(x)/dx = 1 at the maximum, split evenly between tied maxima"""
    return xp.max(x, axis=axes(dim, x.ndim), keepdims=keepdim)


amax.rule(_extreme_rule)


@op(method=True)
def amin(xp, x, *, dim=None, keepdim=False):
    """d min(x)/dx = 1 at the minimum, split evenly between tied minima"""
    return xp.min(x, axis=axes(dim, x.ndim), keepdims=keepdim)


amin.rule(_extreme_rule)


def _stable_max(xp, x, ax):
    m = xp.max(x, axis=ax, keepdims=True)
    # An all -inf slice would give inf - inf = nan; shifting by 0 there keeps -inf.
    return xp.where(xp.isfinite(m), m, 0.0)


@op(method=True, promote=promote_to_float)
def logsumexp(xp, x, *, dim, keepdim=False):
    """d logsumexp(x)/dx = softmax(x) = exp(x - out)"""
    ax = axes(dim, x.ndim)
    m = _stable_max(xp, x, ax)
    out = xp.log(xp.sum(xp.exp(x - m), axis=ax, keepdims=True)) + m
    return out if keepdim else xp.squeeze(out, axis=ax)


@logsumexp.rule
def _(g, x, out, dim, keepdim):
    return keep_dims(g, x.shape, dim, keepdim) * exp(x - keep_dims(out, x.shape, dim, keepdim))


@op(method=True, promote=promote_to_float)
def softmax(xp, x, *, dim):
    """softmax'(x)ᵀg = s·(g - Σ g·s), from the saved output s"""
    ax = axes(dim, x.ndim)
    e = xp.exp(x - _stable_max(xp, x, ax))
    return e / xp.sum(e, axis=ax, keepdims=True)


@softmax.rule
def _(g, x, out, dim):
    return out * (g - (g * out).sum(dim=dim, keepdim=True))


@op(method=True, promote=promote_to_float)
def log_softmax(xp, x, *, dim):
    """log_softmax'(x)ᵀg = g - exp(out)·Σ g, from the saved output"""
    ax = axes(dim, x.ndim)
    shifted = x - _stable_max(xp, x, ax)
    return shifted - xp.log(xp.sum(xp.exp(shifted), axis=ax, keepdims=True))


@log_softmax.rule
def _(g, x, out, dim):
    return g - exp(out) * g.sum(dim=dim, keepdim=True)


# ---------------------------------------------------------------- more reductions


@op(method=True)
def prod(xp, x, *, dim=None, keepdim=False):
    """d prod(x)/dx_i = the product of the other elements (also where some x_j are 0)"""
    return xp.prod(x, axis=axes(dim, x.ndim), keepdims=keepdim)


# The gradient is the product of the other elements. As PyTorch decides: without a zero
# anywhere in x it is prod / x_i; with one, the exclusive products from the left times those
# from the right (right at zeros, and past order 1 too, where prod / x_i cannot be).


@prod.rule
def _(g, x, out, dim, keepdim):
    g = keep_dims(g, x.shape, dim, keepdim)
    # Whether x has a zero is read on the host only; a device takes the general way.
    if _backend.on_host(x.data) and not _backend.xp.any(x.data == 0):
        return g * (keep_dims(out, x.shape, dim, keepdim) / x)
    if x.ndim == 0:
        return g
    # Built from multiplications (n of them along the reduced axes, as PyTorch's double
    # backward does) so that it differentiates again.
    ax = axes(dim, x.ndim)
    order = [a for a in range(x.ndim) if a not in ax] + list(ax)
    moved = x.permute(*order)
    flat = moved.reshape(*moved.shape[:x.ndim - len(ax)], -1)
    n = flat.shape[-1]
    columns = [flat[..., k] for k in range(n)]
    left: list = [None] * n
    right: list = [None] * n
    for k in range(1, n):
        left[k] = columns[k - 1] if left[k - 1] is None else left[k - 1] * columns[k - 1]
        j = n - 1 - k
        right[j] = columns[j + 1] if right[j + 1] is None else right[j + 1] * columns[j + 1]
    one = ones(flat.shape[:-1], dtype=x.dtype, device=x.device)
    parts = [one if a is None and b is None else a if b is None else b if a is None else a * b
             for a, b in zip(left, right)]
    share = stack(parts, dim=-1).reshape(moved.shape)
    inverse = [order.index(a) for a in range(x.ndim)]
    return g * share.permute(*inverse)


@prod.fast
def _(xp, g, x, out, dim, keepdim):
    g = keep_dims(g, x.shape, dim, keepdim, xp)
    if _backend.on_host(x) and not xp.any(x == 0):
        return g * (keep_dims(out, x.shape, dim, keepdim, xp) / x)
    if x.ndim == 0:
        return g
    ax = axes(dim, x.ndim)
    order = tuple([a for a in range(x.ndim) if a not in ax] + list(ax))
    moved = xp.permute_dims(x, order)
    flat = xp.reshape(moved, moved.shape[:x.ndim - len(ax)] + (-1,))
    one = xp.ones(flat.shape[:-1] + (1,), dtype=x.dtype, device=x.device)
    left = xp.concat([one, xp.cumulative_prod(flat[..., :-1], axis=-1)], axis=-1)
    right = xp.flip(xp.cumulative_prod(xp.flip(flat[..., 1:], axis=-1), axis=-1), axis=-1)
    share = xp.reshape(left * xp.concat([right, one], axis=-1), moved.shape)
    return g * xp.permute_dims(share, tuple(order.index(a) for a in range(x.ndim)))


def _var(xp, x, dim, correction, keepdim):
    ax = axes(dim, x.ndim)
    n = _count(x.shape, dim)
    if n - correction > 0:
        return xp.var(x, axis=ax, correction=correction, keepdims=keepdim)
    # N - correction <= 0: PyTorch's Σ(x - mean)² / 0, inf or nan (NumPy would warn).
    if n == 0:
        shape = tuple(1 if a in ax else s for a, s in enumerate(x.shape) if keepdim or a not in ax)
        floating = xp.isdtype(x.dtype, "real floating")
        return xp.full(shape, math.nan, dtype=x.dtype if floating else _backend.default_float,
                       device=x.device)
    centred = x - xp.mean(x, axis=ax, keepdims=True)
    total = xp.sum(centred * centred, axis=ax, keepdims=keepdim)
    return total / xp.zeros((), dtype=total.dtype, device=total.device)


@op(method=True)
def var(xp, x, *, dim=None, correction=1, keepdim=False):
    """Σ(x - mean)² / (N - correction); d var/dx = 2(x - mean)/(N - correction)"""
    return _var(xp, x, dim, correction, keepdim)


@var.rule
def _(g, x, dim, correction, keepdim):
    dof = _count(x.shape, dim) - correction
    centred = x - x.mean(dim=axes(dim, x.ndim), keepdim=True)
    return keep_dims(g, x.shape, dim, keepdim) * centred * (2.0 / dof if dof else math.inf)


@op(method=True)
def std(xp, x, *, dim=None, correction=1, keepdim=False):
    """sqrt(var(x)); d std/dx = (x - mean)/((N - correction)·std), 0 where std = 0 (PyTorch)"""
    return xp.sqrt(_var(xp, x, dim, correction, keepdim))


@std.rule
def _(g, x, out, dim, correction, keepdim):
    dof = _count(x.shape, dim) - correction
    out = keep_dims(out, x.shape, dim, keepdim)
    # A safe denominator: masking after dividing by 0 would still give nan in order 2.
    flat = out == 0
    scale = where(flat, 0.0, keep_dims(g, x.shape, dim, keepdim) / where(flat, 1.0, out))
    centred = x - x.mean(dim=axes(dim, x.ndim), keepdim=True)
    return scale * centred * (1.0 / dof if dof else math.inf)


def _norm_order(p) -> float:
    if p == "fro":
        return 2.0
    if isinstance(p, str) or not isinstance(p, (int, float)) or isinstance(p, bool):
        raise ValueError(f"norm: p must be a positive number, inf or 'fro', got {p!r}")
    p = float(p)
    if not p > 0:
        raise ValueError(f"norm: p must be positive (or inf), got {p}")
    return p


@op(method=True)
def norm(xp, x, *, p=2, dim=None, keepdim=False):
    """The vector p-norm over ``dim`` (p = 1, 2, inf, or any p > 0).

    d‖x‖₂/dx = x/‖x‖ (0 at x = 0), d‖x‖₁/dx = sign(x), d‖x‖∞/dx = sign(x) at the largest
    |x|, split evenly between ties (as PyTorch); otherwise sign(x)·|x|^(p-1)/‖x‖^(p-1).
    """
    p = _norm_order(p)
    ax = axes(dim, x.ndim)
    a = xp.abs(x)
    if p == math.inf:
        return xp.max(a, axis=ax, keepdims=keepdim)
    if p == 1.0:
        return xp.sum(a, axis=ax, keepdims=keepdim)
    if p == 2.0:
        return xp.sqrt(xp.sum(a * a, axis=ax, keepdims=keepdim))
    return xp.sum(a ** p, axis=ax, keepdims=keepdim) ** (1.0 / p)


@norm.rule
def _(g, x, out, p, dim, keepdim):
    p = _norm_order(p)
    g = keep_dims(g, x.shape, dim, keepdim)
    if p == 1.0:
        return g * sign(x)
    out = keep_dims(out, x.shape, dim, keepdim)
    if p == math.inf:
        mask = (abs(x) == out).astype(g.dtype)
        return g * sign(x) * (mask / mask.sum(dim=axes(dim, x.ndim), keepdim=True))
    flat = out == 0
    safe = where(flat, 1.0, out)
    if p == 2.0:
        return where(flat, 0.0, g / safe) * x
    scaled = sign(x) * abs(x) ** (p - 1.0)
    if p < 1.0:  # |x|^(p-1) is inf at x = 0, where PyTorch takes 0
        zero = x == 0
        scaled = where(zero, 0.0, sign(x) * abs(where(zero, 1.0, x)) ** (p - 1.0))
    return where(flat, 0.0, g / safe ** (p - 1.0)) * scaled


@op(method=True)
def cumsum(xp, x, *, dim):
    """Running sums along dim; the gradient is the reversed running sum of g"""
    if x.ndim == 0:
        return xp.reshape(xp.cumulative_sum(xp.reshape(x, (1,)), axis=0), ())
    return xp.cumulative_sum(x, axis=axes(dim, x.ndim)[0])


@cumsum.rule
def _(g, x, dim):
    return flip(cumsum(flip(g, dim), dim=dim), dim)


# ---------------------------------------------------------------- logical reductions


@op("all", method=True, differentiable=False)
def all_(xp, x, *, dim=None, keepdim=False):
    """Whether every element (along ``dim``: an int, a tuple, or None for all) is nonzero;
    a bool tensor with no gradient"""
    return xp.all(x, axis=None if dim is None else axes(dim, x.ndim), keepdims=keepdim)


@op("any", method=True, differentiable=False)
def any_(xp, x, *, dim=None, keepdim=False):
    """Whether some element (along ``dim``: an int, a tuple, or None for all) is nonzero;
    a bool tensor with no gradient"""
    return xp.any(x, axis=None if dim is None else axes(dim, x.ndim), keepdims=keepdim)
