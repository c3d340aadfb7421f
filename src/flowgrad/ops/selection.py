"""Selections: ``max``/``min`` with their indices, ``argmax``/``argmin``, ``sort``,
``argsort`` and ``topk``.

``max(x)`` over all elements splits the gradient evenly between tied maxima (as ``amax``);
``max(x, dim)`` returns ``(values, indices)`` and, as in PyTorch, sends each gradient to the
one element its index names (the first of tied maxima).
"""

from __future__ import annotations

from typing import Any, NamedTuple

from flowgrad._backend import namespace as xp_of
from flowgrad.creation import zeros
from flowgrad.errors import ShapeError
from flowgrad.ops._dims import axes, keep_dims
from flowgrad.ops.elementwise import maximum, minimum
from flowgrad.ops.reduction import _extreme_rule
from flowgrad.ops.registry import op
from flowgrad.ops.shape import _along, gather, getitem, index_add
from flowgrad.tensor import Tensor


class ValuesIndices(NamedTuple):
    """What ``max(x, dim)``, ``min(x, dim)``, ``sort`` and ``topk`` return (PyTorch's
    ``return_types``): unpacks as ``values, indices``."""

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


# ---------------------------------------------------------------- sorting
# Always a stable sort, whatever ``stable`` says: equal elements keep their order (the
# first in the input comes first, descending too), which is PyTorch's answer with
# stable=True and one of its allowed answers without. NaN sorts as the largest value
# (last ascending, first descending), as in PyTorch. The values are gather(x, indices),
# so their gradient goes back to the positions they came from.


@op(method=True, differentiable=False)
def argsort(xp, x, *, dim=-1, descending=False, stable=False):
    """The indices that sort x along ``dim`` (stable: ties keep their order); int64, no
    gradient"""
    if x.ndim == 0:
        axes(dim, 0)  # only 0 and -1 name the one dim of a 0-d tensor
        return xp.zeros((), dtype=xp.int64, device=x.device)
    d = _one_dim(dim, x.ndim, "argsort")
    if xp.isdtype(x.dtype, "bool"):
        x = xp.astype(x, xp.uint8)  # the standard sorts numbers only
    if not descending:
        return xp.astype(xp.argsort(x, axis=d, stable=True), xp.int64)
    # Descending and stable: sort the reversed input ascending and read the answer
    # backwards, so ties come out first-index-first and NaN (last ascending) first.
    n = x.shape[d]
    backwards = xp.argsort(xp.flip(x, axis=d), axis=d, stable=True)
    return (n - 1) - xp.astype(xp.flip(backwards, axis=d), xp.int64)


def sort(input, dim: int = -1, descending: bool = False, stable: bool = False
         ) -> ValuesIndices:
    """``(values, indices)`` of ``input`` sorted along ``dim`` (as ``torch.sort``); the values
    are differentiable, their gradient going back to where each came from.

    The sort is always stable (``stable`` is accepted for PyTorch's signature): equal values
    keep their order, also when ``descending``. NaN sorts as the largest value.

    Example:
        >>> import flowgrad as fg
        >>> values, indices = fg.sort(fg.tensor([3.0, 1.0, 2.0]))
        >>> indices
        tensor([1, 2, 0])
    """
    indices = argsort(input, dim=dim, descending=descending, stable=True)
    return ValuesIndices(gather(input, dim if input.ndim else 0, indices), indices)


def topk(input, k: int, dim: int = -1, largest: bool = True, sorted: bool = True
         ) -> ValuesIndices:
    """The ``k`` largest (``largest=False``: smallest) elements along ``dim`` and their
    indices (as ``torch.topk``); the values are differentiable, their gradient going back to
    the chosen positions.

    Ties go to the first of equal elements (a stable sort); the result is always in sorted
    order, which ``sorted=False`` allows too.

    Raises:
        ShapeError: ``k`` is negative or larger than the size of ``dim`` (a ValueError and,
            as PyTorch's, a RuntimeError).
    """
    if not isinstance(k, int) or isinstance(k, bool):
        raise TypeError(f"topk: k must be an int, got {k!r}")
    d = axes(dim, input.ndim)[0] if input.ndim else 0
    n = input.shape[d] if input.ndim else 1
    if not 0 <= k <= n:
        raise ShapeError(f"topk: k={k} is out of range: dim {dim} of the input of shape "
                         f"{tuple(input.shape)} has {n} element{'s' if n != 1 else ''}")
    order = argsort(input, dim=d, descending=largest, stable=True)
    if input.ndim:
        order = getitem(order, index=(slice(None),) * d + (slice(0, k),))
    return ValuesIndices(gather(input, d, order), order)
