"""Selections: ``max``/``min`` with their indices, ``argmax``/``argmin``.

``max(x)`` over all elements splits the gradient evenly between tied maxima (as ``amax``);
``max(x, dim)`` returns ``(values, indices)`` and, as in PyTorch, sends each gradient to the
one element its index names (the first of tied maxima).
"""

from __future__ import annotations

from typing import Any, NamedTuple

from flowgrad._backend import namespace as xp_of
from flowgrad.creation import zeros
from flowgrad.ops._dims import axes, keep_dims
from flowgrad.ops.elementwise import maximum, minimum
from flowgrad.ops.reduction import _extreme_rule
from flowgrad.ops.registry import op
from flowgrad.ops.shape import _along, index_add
from flowgrad.tensor import Tensor


class ValuesIndices(NamedTuple):
    """What ``max(x, dim)`` and ``min(x, dim)`` return (PyTorch's ``return_types``)."""

    values: Any
    indices: Any


def _one_dim(dim, ndim: int, what: str) -> int:
    if not isinstance(dim, int) or isinstance(dim, bool):
        raise TypeError(f"{what}: dim must be an int, got {dim!r}")
    return axes(dim, ndim)[0] if ndim else 0


def _arg(xp, x, dim, keepdim, pick):
    if dim is None:
        flat = xp.astype(pick(xp.reshape(x, (-1,))), xp.int64)
        return xp.reshape(flat, (1,) * x.ndim if keepdim else ())
    if x.ndim == 0:
        return xp.zeros((), dtype=xp.int64, device=x.device)
    return xp.astype(pick(x, axis=_one_dim(dim, x.ndim, "argmax"), keepdims=keepdim), xp.int64)


@op(method=True, differentiable=False)
def argmax(xp, x, *, dim=None, keepdim=False):
    """The index of the largest element (the first of ties) along dim, or of the flattened
    tensor for dim=None; int64, no gradient"""
    if x.size == 0:
        raise ValueError(f"argmax: the input of shape {tuple(x.shape)} is empty")
    return _arg(xp, x, dim, keepdim, xp.argmax)


@op(method=True, differentiable=False)
def argmin(xp, x, *, dim=None, keepdim=False):
    """The index of the smallest element (the first of ties) along dim, or of the flattened
    tensor for dim=None; int64, no gradient"""
    if x.size == 0:
        raise ValueError(f"argmin: the input of shape {tuple(x.shape)} is empty")
    return _arg(xp, x, dim, keepdim, xp.argmin)


def _select(xp, x, dim, keepdim, indices, pick, name):
    if x.size == 0:
        raise ValueError(f"{name}: the input of shape {tuple(x.shape)} is empty")
    if dim is None:
        return pick(x)
    d = _one_dim(dim, x.ndim, name)
    if x.ndim == 0:
        return xp.asarray(x, copy=True)
    if indices is None:
        indices = _arg(xp, x, d, True, xp.argmax if name == "max" else xp.argmin)
    values = xp.take_along_axis(x, xp.reshape(indices, _kept(x.shape, d)), axis=d)
    return values if keepdim else xp.squeeze(values, axis=d)


def _kept(shape: tuple, d: int) -> tuple:
    return tuple(1 if a == d else n for a, n in enumerate(shape))


def _select_rule(g, x, out, dim, keepdim, indices, name):
    if dim is None:
        return _extreme_rule(g, x, out, None, False)
    if x.ndim == 0:
        return g

    d = _one_dim(dim, x.ndim, name)
    if indices is None:
        # Equal values pick the first, as the forward did.
        indices = (argmax if name == "max" else argmin)(x.detach(), dim=d, keepdim=True).data
    g = keep_dims(g, x.shape, d, keepdim)
    indices = xp_of(indices).reshape(indices, _kept(x.shape, d))
    return index_add(zeros(x.shape, dtype=g.dtype, device=g.device), g,
                     index=_along(indices, d))


@op("max")
def _max(xp, x, *, dim=None, keepdim=False, indices=None):
    """max(x): the largest element (gradient split between ties); with dim, the values of
    max(x, dim) (gradient to the element at each index)"""
    return _select(xp, x, dim, keepdim, indices, xp.max, "max")


@_max.rule
def _(g, x, out, dim, keepdim, indices):
    return _select_rule(g, x, out, dim, keepdim, indices, "max")


@op("min")
def _min(xp, x, *, dim=None, keepdim=False, indices=None):
    """min(x): the smallest element (gradient split between ties); with dim, the values of
    min(x, dim) (gradient to the element at each index)"""
    return _select(xp, x, dim, keepdim, indices, xp.min, "min")


@_min.rule
def _(g, x, out, dim, keepdim, indices):
    return _select_rule(g, x, out, dim, keepdim, indices, "min")


def _public(opdef, arg, maximum_or_minimum, x, dim, keepdim):
    if dim is None:
        return opdef(x)
    if isinstance(dim, Tensor):  # torch.max(a, b) is the elementwise maximum
        return maximum_or_minimum(x, dim)
    indices = arg(x, dim=dim, keepdim=True)
    values = opdef(x, dim=dim, keepdim=keepdim, indices=indices.data)
    return ValuesIndices(values, indices if keepdim else indices.squeeze(dim))


def max(input, dim=None, keepdim: bool = False):
    """The largest element of ``input``; with ``dim``, ``(values, indices)`` along ``dim``; with
    a tensor as second argument, the elementwise ``maximum`` (as ``torch.max``).

    Example:
        >>> import flowgrad as fg
        >>> fg.max(fg.tensor([[1.0, 5.0], [7.0, 2.0]]), dim=1).indices
        tensor([1, 0])
    """

    return _public(_max, argmax, maximum, input, dim, keepdim)


def min(input, dim=None, keepdim: bool = False):
    """The smallest element of ``input``; with ``dim``, ``(values, indices)`` along ``dim``;
    with a tensor as second argument, the elementwise ``minimum`` (as ``torch.min``)."""

    return _public(_min, argmin, minimum, input, dim, keepdim)
