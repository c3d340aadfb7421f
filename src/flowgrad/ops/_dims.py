"""Dimension arithmetic shared by the op families: ``dim`` arguments and broadcast shapes.

Pure functions of shapes (and, for :func:`sum_to_shape`, of one array and its namespace),
so every family and the registry can use them without importing each other.
"""

from __future__ import annotations

from typing import Any


def axes(dim: Any, ndim: int) -> tuple[int, ...]:
    """``dim`` as a sorted tuple of non-negative axes (all axes for None)."""
    if dim is None:
        return tuple(range(ndim))
    dims = (dim,) if isinstance(dim, int) else tuple(dim)
    if ndim == 0:
        if any(d not in (0, -1) for d in dims):
            raise IndexError(f"dim {dim} is out of range for a 0-d tensor")
        return ()
    out = set()
    for d in dims:
        if not -ndim <= d < ndim:
            raise IndexError(f"dim {d} is out of range for a tensor with {ndim} dimensions "
                             f"(expected {-ndim} to {ndim - 1})")
        out.add(d % ndim)
    if len(out) != len(dims):
        raise ValueError(f"dim {dim} repeats an axis")
    return tuple(sorted(out))


def keep_dims(g: Any, shape: tuple, dim: Any, keepdim: bool, xp: Any = None) -> Any:
    """``g`` reshaped so the reduced axes of ``shape`` are back: a Tensor, or an array of
    namespace ``xp``."""
    if keepdim or (dim is None and g.ndim == 0):
        return g  # a 0-d gradient broadcasts against any shape as it is
    kept = list(shape)
    for a in axes(dim, len(shape)):
        kept[a] = 1
    if g.shape == tuple(kept):
        return g
    return g.reshape(tuple(kept)) if xp is None else xp.reshape(g, tuple(kept))


def sum_to_shape(xp: Any, x: Any, shape: tuple) -> Any:
    """Sum the axes that broadcasting added or stretched, so ``x`` gets ``shape`` back."""
    shape = tuple(shape)
    lead = x.ndim - len(shape)
    stretched = tuple(i + lead for i, n in enumerate(shape) if n == 1 and x.shape[i + lead] != 1)
    if lead or stretched:
        x = xp.sum(x, axis=tuple(range(lead)) + stretched, keepdims=True)
    return xp.reshape(x, shape)
