"""Shape and indexing ops. Their rules move the gradient back without arithmetic."""

from __future__ import annotations

from flowgrad import _backend
from flowgrad.errors import ShapeError
from flowgrad.ops.reduction import axes
from flowgrad.ops.registry import op


@op(method=True, varargs="shape")
def reshape(xp, x, *, shape):
    """The gradient is reshaped back to x's shape"""
    try:
        return xp.reshape(x, shape)
    except ValueError:
        raise ShapeError(f"reshape: cannot reshape a tensor of shape {tuple(x.shape)} "
                         f"({x.size} elements) into shape {shape}") from None


@reshape.rule
def _(g, x, shape):
    return g.reshape(x.shape)


@op(method=True)
def transpose(xp, x, *, dim0, dim1):
    """The gradient is transposed back"""
    return xp.swapaxes(x, dim0, dim1)


@transpose.rule
def _(g, x, dim0, dim1):
    return transpose(g, dim0, dim1)


@op(method=True, varargs="dims")
def permute(xp, x, *, dims):
    """The gradient is permuted by the inverse permutation"""
    if sorted(d % max(x.ndim, 1) for d in dims) != list(range(x.ndim)):
        raise ValueError(f"permute: {dims} is not a permutation of the {x.ndim} dims of "
                         f"shape {tuple(x.shape)}")
    return xp.transpose(x, dims)


@permute.rule
def _(g, x, dims):
    inverse = [0] * len(dims)
    for i, d in enumerate(dims):
        inverse[d % len(dims)] = i
    return permute(g, *inverse)


def _is_basic(index) -> bool:
    """Basic indexing (ints, slices, None, ...) never repeats an element."""
    parts = index if isinstance(index, tuple) else (index,)
    return all(p is None or p is Ellipsis or isinstance(p, (int, slice)) for p in parts)


@op()
def getitem(xp, x, *, index):
    """x[index]: the gradient is scattered back, accumulating on repeated indices"""
    return x[index]


@getitem.rule
def _(g, x, index):
    from flowgrad.creation import zeros

    return index_add(zeros(x.shape, dtype=g.dtype), g, index=index)


@op()
def index_add(xp, x, src, *, index):
    """x with src added at x[index], repeated indices accumulating (NumPy's add.at).

    d/dx = g, d/dsrc = g[index]
    """
    out = x.copy()
    if _is_basic(index) or (_backend.is_array(index) and index.dtype == _backend.bool_):
        out[index] += src  # these never select an element twice
    else:
        _backend.scatter_add(out, index, src)
    return out


@index_add.rule
def _(g, x, src, index, needs):
    return g, (getitem(g, index=index) if needs[1] else None)


@op(variadic=True)
def cat(xp, *xs, dim=0):
    """The gradient is split back into the pieces along dim"""
    return xp.concatenate(xs, axis=dim)


@cat.rule
def _(g, *xs, dim):
    d = axes(dim, g.ndim)[0]
    grads, start = [], 0
    for x in xs:
        n = x.shape[d]
        grads.append(g[(slice(None),) * d + (slice(start, start + n),)])
        start += n
    return tuple(grads)


@op(variadic=True)
def stack(xp, *xs, dim=0):
    """The gradient is unstacked along dim"""
    return xp.stack(xs, axis=dim)


@stack.rule
def _(g, *xs, dim):
    d = axes(dim, g.ndim)[0]
    return tuple(g[(slice(None),) * d + (i,)] for i in range(len(xs)))


@op(method=True)
def squeeze(xp, x, *, dim=None):
    """Size-1 dims removed; the gradient is reshaped back"""
    if dim is None:
        return xp.squeeze(x)
    ax = tuple(a for a in axes(dim, x.ndim) if x.shape[a] == 1)
    return xp.squeeze(x, axis=ax) if ax else x


@squeeze.rule
def _(g, x, dim):
    return g.reshape(x.shape)


@op(method=True)
def unsqueeze(xp, x, *, dim):
    """A size-1 dim inserted at dim; the gradient is reshaped back"""
    return xp.expand_dims(x, dim if dim >= 0 else dim + x.ndim + 1)


@unsqueeze.rule
def _(g, x, dim):
    return g.reshape(x.shape)


@op(method=True)
def flatten(xp, x, *, start_dim=0, end_dim=-1):
    """Dims start_dim..end_dim merged into one; the gradient is reshaped back"""
    if x.ndim == 0:
        return x.reshape(1)
    s, e = axes((start_dim,), x.ndim)[0], axes((end_dim,), x.ndim)[0]
    if s > e:
        raise ValueError(f"flatten: start_dim {start_dim} comes after end_dim {end_dim}")
    return x.reshape(x.shape[:s] + (-1,) + x.shape[e + 1:])


@flatten.rule
def _(g, x, start_dim, end_dim):
    return g.reshape(x.shape)


@op()
def sum_to(xp, x, *, shape):
    """Sum over the axes that broadcasting added or stretched; the gradient broadcasts back"""
    shape = tuple(shape)
    lead = x.ndim - len(shape)
    stretched = tuple(i + lead for i, n in enumerate(shape) if n == 1 and x.shape[i + lead] != 1)
    out = xp.sum(x, axis=tuple(range(lead)) + stretched, keepdims=True) if lead or stretched \
        else x
    return out.reshape(shape)


@sum_to.rule
def _(g, x, shape):
    return broadcast_to(g, shape=x.shape)


@op()
def broadcast_to(xp, x, *, shape):
    """x broadcast to shape (a read-only view); the gradient is summed back to x's shape"""
    return xp.broadcast_to(x, tuple(shape))


@broadcast_to.rule
def _(g, x, shape):
    return sum_to(g, shape=x.shape)
