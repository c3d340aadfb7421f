"""Shape and indexing ops. Their rules move the gradient back without arithmetic."""

from __future__ import annotations

import string
from typing import Any

from flowgrad import _backend
from flowgrad.creation import eye, ones, zeros
from flowgrad.errors import ShapeError
from flowgrad.ops._dims import axes, sum_to_shape
from flowgrad.ops.elementwise import where
from flowgrad.ops.registry import op
from flowgrad.tensor import Tensor


@op(method=True, varargs="shape", view=True, saves_inputs=False)
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


@reshape.fast
def _(xp, g, x, shape):
    return xp.reshape(g, x.shape)


def _swap(ndim: int, dim0: int, dim1: int) -> tuple[int, ...]:
    """The permutation that swaps two dims (negative dims count from the end)."""
    order = list(range(ndim))
    a, b = axes((dim0,), ndim)[0], axes((dim1,), ndim)[0]
    order[a], order[b] = b, a
    return tuple(order)


@op(method=True, view=True, saves_inputs=False)
def transpose(xp, x, *, dim0, dim1):
    """The gradient is transposed back"""
    if x.ndim == 0:
        axes((dim0, dim1), 0)  # only 0 and -1 name the one dim of a 0-d tensor
        return x
    return xp.permute_dims(x, _swap(x.ndim, dim0, dim1))


@transpose.rule
def _(g, x, dim0, dim1):
    return transpose(g, dim0, dim1)


@transpose.fast
def _(xp, g, x, dim0, dim1):
    return g if g.ndim == 0 else xp.permute_dims(g, _swap(g.ndim, dim0, dim1))


@op(method=True, varargs="dims", view=True, saves_inputs=False)
def permute(xp, x, *, dims):
    """The gradient is permuted by the inverse permutation"""
    if sorted(d % max(x.ndim, 1) for d in dims) != list(range(x.ndim)):
        raise ValueError(f"permute: {dims} is not a permutation of the {x.ndim} dims of "
                         f"shape {tuple(x.shape)}")
    return xp.permute_dims(x, tuple(d % max(x.ndim, 1) for d in dims))


@permute.rule
def _(g, x, dims):
    inverse = [0] * len(dims)
    for i, d in enumerate(dims):
        inverse[d % len(dims)] = i
    return permute(g, *inverse)


def _is_basic(index: Any) -> bool:
    """Basic indexing (ints, slices, None, ...): a view that never repeats an element."""
    parts = index if isinstance(index, tuple) else (index,)
    return all(p is None or p is Ellipsis or isinstance(p, (int, slice)) for p in parts)


def _basic_index(params: dict) -> bool:
    return _is_basic(params["index"])


def full_index(index: Any) -> Any:
    """``index`` with a trailing ``...`` when it names fewer dims than the array has: NumPy
    and PyTorch read ``x[i]`` of a matrix as ``x[i, ...]``; the array API standard wants it
    spelled out. A sole boolean mask stays as it is."""
    parts = index if isinstance(index, tuple) else (index,)
    for p in parts:
        if p is Ellipsis or (_backend.is_array(p) and _backend.host_dtype(p.dtype).kind == "b"):
            return index
    return parts + (Ellipsis,)


def _is_mask(index: Any) -> bool:
    return _backend.is_array(index) and _backend.host_dtype(index.dtype).kind == "b"


@op(view=_basic_index, saves_inputs=False)
def getitem(xp, x, *, index):
    """x[index]: the gradient is scattered back, accumulating on repeated indices"""
    if _is_basic(index) or _is_mask(index):
        return x[full_index(index)]
    return _backend.take(x, index)  # integer arrays mixed with slices: NumPy's rules


@getitem.rule
def _(g, x, index):
    return index_add(zeros(x.shape, dtype=g.dtype, device=g.device), g, index=index)


@op(saves_inputs=False)
def index_add(xp, x, src, *, index):
    """x with src added at x[index], repeated indices accumulating (NumPy's add.at).

    d/dx = g, d/dsrc = g[index]
    """
    out = xp.asarray(x, copy=True)
    if _is_basic(index) or _is_mask(index):
        index, src = _without_newaxes(xp, out, index, src)
        out[full_index(index)] += src  # these never select an element twice
    else:
        _backend.scatter_add(out, index, src)
    return out


def _without_newaxes(xp, x, index, src):
    """A basic index without its ``None`` entries, and ``src`` without the size-1 axes they
    made: assignment takes no ``None`` in the array API standard."""
    parts = index if isinstance(index, tuple) else (index,)
    if not any(p is None for p in parts):
        return index, src
    kept = tuple(p for p in parts if p is not None)
    full = xp.broadcast_to(src, x[full_index(index)].shape)
    return kept, xp.reshape(full, x[full_index(kept)].shape)


@index_add.rule
def _(g, x, src, index, needs):
    return g, (getitem(g, index=index) if needs[1] else None)


@op(variadic=True, saves_inputs=False)
def cat(xp, *xs, dim=0):
    """The gradient is split back into the pieces along dim"""
    return xp.concat(xs, axis=dim)


@cat.rule
def _(g, *xs, dim):
    d = axes(dim, g.ndim)[0]
    grads, start = [], 0
    for x in xs:
        n = x.shape[d]
        grads.append(g[(slice(None),) * d + (slice(start, start + n),)])
        start += n
    return tuple(grads)


@op(variadic=True, saves_inputs=False)
def stack(xp, *xs, dim=0):
    """The gradient is unstacked along dim"""
    return xp.stack(xs, axis=dim)


@stack.rule
def _(g, *xs, dim):
    d = axes(dim, g.ndim)[0]
    return tuple(g[(slice(None),) * d + (i,)] for i in range(len(xs)))


@op(method=True, view=True, saves_inputs=False)
def squeeze(xp, x, *, dim=None):
    """Size-1 dims removed; the gradient is reshaped back"""
    ax = tuple(a for a in axes(dim, x.ndim) if x.shape[a] == 1)
    return xp.squeeze(x, axis=ax) if ax else x


@squeeze.rule
def _(g, x, dim):
    return g.reshape(x.shape)


@op(method=True, view=True, saves_inputs=False)
def unsqueeze(xp, x, *, dim):
    """A size-1 dim inserted at dim; the gradient is reshaped back"""
    return xp.expand_dims(x, dim if dim >= 0 else dim + x.ndim + 1)


@unsqueeze.rule
def _(g, x, dim):
    return g.reshape(x.shape)


@op(method=True, view=True, saves_inputs=False)
def flatten(xp, x, *, start_dim=0, end_dim=-1):
    """Dims start_dim..end_dim merged into one; the gradient is reshaped back"""
    if x.ndim == 0:
        return xp.reshape(x, (1,))
    s, e = axes((start_dim,), x.ndim)[0], axes((end_dim,), x.ndim)[0]
    if s > e:
        raise ValueError(f"flatten: start_dim {start_dim} comes after end_dim {end_dim}")
    return xp.reshape(x, x.shape[:s] + (-1,) + x.shape[e + 1:])


@flatten.rule
def _(g, x, start_dim, end_dim):
    return g.reshape(x.shape)


@op(saves_inputs=False)
def sum_to(xp, x, *, shape):
    """Sum over the axes that broadcasting added or stretched; the gradient broadcasts back"""
    return sum_to_shape(xp, x, shape)


@sum_to.rule
def _(g, x, shape):
    return broadcast_to(g, shape=x.shape)


@op(view=True, saves_inputs=False)
def broadcast_to(xp, x, *, shape):
    """x broadcast to shape (a read-only view); the gradient is summed back to x's shape"""
    return xp.broadcast_to(x, tuple(shape))


@broadcast_to.rule
def _(g, x, shape):
    return sum_to(g, shape=x.shape)


# ---------------------------------------------------------------- more shape and indexing ops


def _index_array(index, what: str, like=None):
    """An integer index (Tensor, array or nested list) as an int64 array on ``like``'s
    device (host data is copied there), else TypeError."""
    arr = index.data if isinstance(index, Tensor) else index
    if like is not None and type(like) is not _backend.ndarray:
        arr = _backend.asarray(arr, device=_backend.device_of(like))
    elif not _backend.is_array(arr):
        arr = _backend.asarray(arr)
    dtype = _backend.host_dtype(arr.dtype)
    if dtype.kind not in "iu":
        raise TypeError(f"{what}: index must hold integers, got dtype {dtype}")
    return arr if dtype == _backend.int64 else _backend.astype(arr, _backend.int64)


def check_range(index, n: int, what: str, where: str = "", error: type = IndexError) -> None:
    """``what`` (index values) must lie in [0, n): checked where reading them is free, on
    the host.

    On another device the check would wait for the device and copy its answer back (every
    step), so there, as with PyTorch's GPU kernels, an index out of range is not diagnosed.
    """
    if _backend.on_host(index) and index.size and (index.min() < 0 or index.max() >= n):
        raise error(f"{what} must lie in [0, {n}){where}, got min {index.min()} and max "
                    f"{index.max()}")


def _dims(dims, ndim: int) -> tuple[int, ...]:
    dims = (dims,) if isinstance(dims, int) else tuple(dims)
    return axes(dims, ndim) if ndim else ()


@op(method=True, varargs="dims")
def flip(xp, x, *, dims):
    """x reversed along ``dims``; the gradient is flipped back"""
    return xp.flip(x, axis=_dims(dims, x.ndim)) if x.ndim else xp.asarray(x, copy=True)


@flip.rule
def _(g, x, dims):
    return flip(g, dims)


@op(method=True, varargs="sizes")
def expand(xp, x, *, sizes):
    """x broadcast to ``sizes`` (-1 keeps a dim, new dims go in front); the gradient is summed
    back to x's shape"""
    sizes = tuple(int(s) for s in sizes)
    lead = len(sizes) - x.ndim
    if lead < 0:
        raise ShapeError(f"expand: the number of sizes {len(sizes)} must be at least the number "
                         f"of dims of the input of shape {tuple(x.shape)}")
    shape = []
    for i, s in enumerate(sizes):
        own = x.shape[i - lead] if i >= lead else None
        if s == -1:
            if own is None:
                raise ShapeError(f"expand: -1 is not allowed for the new leading dim {i} "
                                 f"(sizes {sizes})")
            s = own
        if s < 0 or (own is not None and own != 1 and own != s):
            raise ShapeError(f"expand: the input of shape {tuple(x.shape)} cannot be expanded "
                             f"to {sizes}: size {own} at dim {i} is neither 1 nor {s}")
        shape.append(s)
    return xp.broadcast_to(x, tuple(shape))


@expand.rule
def _(g, x, sizes):
    return sum_to(g, shape=x.shape)


@op(method=True, varargs="sizes")
def repeat(xp, x, *, sizes):
    """x tiled ``sizes`` times along each dim (PyTorch's Tensor.repeat); the gradient sums the
    copies"""
    sizes = tuple(int(s) for s in sizes)
    if len(sizes) < x.ndim:
        raise ShapeError(f"repeat: the number of repeats {len(sizes)} must be at least the "
                         f"number of dims of the input of shape {tuple(x.shape)}")
    if any(s < 0 for s in sizes):
        raise ValueError(f"repeat: repeats must be >= 0, got {sizes}")
    return xp.tile(x, sizes)


@repeat.rule
def _(g, x, sizes):
    shape = (1,) * (len(sizes) - x.ndim) + tuple(x.shape)
    split = []
    for r, n in zip(sizes, shape):
        split += [r, n]
    return g.reshape(tuple(split)).sum(dim=tuple(range(0, len(split), 2))).reshape(x.shape)


def _along(index, dim: int):
    """The full advanced index that picks ``index`` along ``dim`` and position elsewhere."""
    xp = _backend.namespace(index)
    parts = []
    for d, n in enumerate(index.shape):
        if d == dim:
            parts.append(index)
        else:
            shape = [1] * index.ndim
            shape[d] = n
            parts.append(xp.reshape(xp.arange(n, device=index.device), tuple(shape)))
    return tuple(parts)


@op(method=True)
def gather(xp, x, *, dim, index):
    """out[i][j][k] = x[i][index[i][j][k]][k] (for dim 1); repeated indices accumulate in the
    gradient, which is scattered back with index_add"""
    index = _index_array(index, "gather", x)
    d = axes(dim, x.ndim)[0] if x.ndim else 0
    if index.ndim != x.ndim:
        raise ShapeError(f"gather: index of shape {tuple(index.shape)} must have as many dims "
                         f"as the input of shape {tuple(x.shape)}")
    for a in range(x.ndim):
        if a != d and index.shape[a] > x.shape[a]:
            raise ShapeError(f"gather: index of shape {tuple(index.shape)} is larger than the "
                             f"input of shape {tuple(x.shape)} at dim {a}")
    check_range(index, x.shape[d] if x.ndim else 1, "gather: index values",
                f" for dim {dim} of shape {tuple(x.shape)}")
    return x[_along(index, d)]


@gather.rule
def _(g, x, dim, index):
    d = axes(dim, x.ndim)[0] if x.ndim else 0
    return index_add(zeros(x.shape, dtype=g.dtype, device=g.device), g,
                     index=_along(_index_array(index, "gather", g.data), d))


@op(method=True)
def index_select(xp, x, *, dim, index):
    """The entries of x at ``index`` (1-D) along dim; repeated indices accumulate in the
    gradient"""
    index = _index_array(index, "index_select", x)
    if index.ndim > 1:
        raise ShapeError(f"index_select: index must be 1-D, got shape {tuple(index.shape)}")
    d = axes(dim, x.ndim)[0] if x.ndim else 0
    n = x.shape[d] if x.ndim else 1
    check_range(index, n, "index_select: index values", f" for dim {dim} of shape "
                f"{tuple(x.shape)}")
    return xp.take(x, xp.reshape(index, (-1,)), axis=d) if x.ndim else x[()]


@index_select.rule
def _(g, x, dim, index):
    d = axes(dim, x.ndim)[0]
    flat = _index_array(index, "index_select", g.data)
    where = (slice(None),) * d + (_backend.namespace(flat).reshape(flat, (-1,)),)
    return index_add(zeros(x.shape, dtype=g.dtype, device=g.device), g, index=where)


@op(method=True)
def masked_fill(xp, x, mask, value):
    """x with ``value`` where ``mask`` holds; the gradient goes to x where it does not and to a
    tensor ``value`` (summed) where it does"""
    if not xp.isdtype(mask.dtype, "bool"):
        raise TypeError(f"masked_fill: mask must be a bool tensor, got dtype "
                        f"{_backend.host_dtype(mask.dtype)}")
    if tuple(xp.broadcast_shapes(mask.shape, x.shape)) != tuple(x.shape):
        raise ShapeError(f"masked_fill: mask of shape {tuple(mask.shape)} does not broadcast "
                         f"to the input of shape {tuple(x.shape)}")
    if getattr(value, "ndim", 0) != 0:
        raise ValueError(f"masked_fill: value must be a number or a 0-d tensor, got shape "
                         f"{tuple(value.shape)}")
    if _backend.is_array(value):
        fill = xp.astype(value, x.dtype)
    else:
        fill = xp.asarray(value, dtype=x.dtype, device=x.device)
    return xp.where(mask, fill, x)


@masked_fill.rule
def _(g, x, mask, value, needs):
    gx = where(mask, 0.0, g) if needs[0] else None
    gv = where(mask, g, 0.0) if needs[2] else None
    return gx, None, gv


@op(method=True)
def tril(xp, x, *, diagonal=0):
    """The lower triangle (on and below ``diagonal``) of the last two dims; zeros elsewhere"""
    if x.ndim < 2:
        raise ShapeError(f"tril: the input needs at least 2 dims, got shape {tuple(x.shape)}")
    return xp.tril(x, k=diagonal)


@tril.rule
def _(g, x, diagonal):
    return tril(g, diagonal=diagonal)


@op(method=True)
def triu(xp, x, *, diagonal=0):
    """The upper triangle (on and above ``diagonal``) of the last two dims; zeros elsewhere"""
    if x.ndim < 2:
        raise ShapeError(f"triu: the input needs at least 2 dims, got shape {tuple(x.shape)}")
    return xp.triu(x, k=diagonal)


@triu.rule
def _(g, x, diagonal):
    return triu(g, diagonal=diagonal)


def unbind(input, dim: int = 0) -> tuple:
    """The slices of ``input`` along ``dim``, that dim removed (as ``torch.unbind``): a tuple
    of views whose gradients go back to their places."""
    if input.ndim == 0:
        raise IndexError("unbind: a 0-d tensor has no dim to unbind")
    d = axes(dim, input.ndim)[0]
    return tuple(input[(slice(None),) * d + (i,)] for i in range(input.shape[d]))


def split(tensor, split_size_or_sections, dim: int = 0) -> tuple:
    """Pieces of ``tensor`` along ``dim``: of size ``split_size_or_sections`` (an int; the last
    may be smaller) or of the sizes in a list, as in PyTorch. Each piece is a slice (view)."""
    n_dims = tensor.ndim
    d = axes(dim, n_dims)[0]
    n = tensor.shape[d]
    if isinstance(split_size_or_sections, int):
        size = split_size_or_sections
        if size <= 0:
            raise ValueError(f"split: split_size must be positive, got {size}")
        sizes = [min(size, n - start) for start in range(0, n, size)] or [0]
    else:
        sizes = [int(s) for s in split_size_or_sections]
        if sum(sizes) != n or any(s < 0 for s in sizes):
            raise ValueError(f"split: sizes {sizes} must be >= 0 and add up to {n}, the size of "
                             f"dim {dim} of shape {tuple(tensor.shape)}")
    pieces, start = [], 0
    for s in sizes:
        pieces.append(tensor[(slice(None),) * d + (slice(start, start + s),)])
        start += s
    return tuple(pieces)


def chunk(input, chunks: int, dim: int = 0) -> tuple:
    """``input`` split into ``chunks`` pieces of size ceil(n / chunks) along ``dim`` (the last
    may be smaller, and there may be fewer pieces), as in PyTorch."""
    if not isinstance(chunks, int) or chunks <= 0:
        raise ValueError(f"chunk: chunks must be a positive int, got {chunks!r}")
    n = input.shape[axes(dim, input.ndim)[0]]
    return split(input, max(-(-n // chunks), 1), dim)


# -- einsum: the equation is normalised to explicit letters (no '...', an explicit output)


def _einsum_equation(equation: str, ndims: tuple[int, ...]) -> str:
    """``equation`` with every '...' spelled out in letters and the output made explicit."""

    eq = equation.replace(" ", "")
    lhs, arrow, rhs = eq.partition("->")
    terms = lhs.split(",")
    if len(terms) != len(ndims):
        raise ValueError(f"einsum: the equation {equation!r} has {len(terms)} operand(s) but "
                         f"{len(ndims)} were given")
    used = set(eq) - set(".,->")
    if not all(c.isalpha() for c in used):
        raise ValueError(f"einsum: subscripts must be letters, got {equation!r}")
    spare = [c for c in string.ascii_letters if c not in used]
    n_ell = 0
    for term, nd in zip(terms, ndims):
        letters = len(term.replace("...", ""))
        if "..." in term:
            n_ell = max(n_ell, nd - letters)
        elif letters != nd:
            raise ShapeError(f"einsum: subscripts {term!r} name {letters} dims but the operand "
                             f"has {nd}")
    ell = "".join(spare[:n_ell])
    out_terms = []
    for term, nd in zip(terms, ndims):
        k = nd - len(term.replace("...", ""))
        out_terms.append(term.replace("...", ell[len(ell) - k:] if k else ""))
    if arrow:
        out = rhs.replace("...", ell)
    else:
        counts: dict[str, int] = {}
        for c in "".join(out_terms):
            counts[c] = counts.get(c, 0) + 1
        out = ell + "".join(sorted(c for c, k in counts.items() if k == 1 and c not in ell))
    return ",".join(out_terms) + "->" + out


@op("einsum", variadic=True)
def _einsum(xp, *operands, equation):
    """Einstein summation. The gradient of each operand is another einsum: of g with the other
    operands, ones for the letters only it has, and identities for its repeated letters"""
    eq = _einsum_equation(equation, tuple(o.ndim for o in operands))
    try:
        return _backend.einsum(eq, *operands)
    except ValueError as exc:
        shapes = ", ".join(str(tuple(o.shape)) for o in operands)
        raise ShapeError(f"einsum: {equation!r} does not fit operands of shapes {shapes}: "
                         f"{exc}") from None


@_einsum.rule
def _(g, *operands, equation, needs):
    eq = _einsum_equation(equation, tuple(o.ndim for o in operands))
    lhs, out = eq.split("->")
    terms = lhs.split(",")
    spare = [c for c in string.ascii_letters if c not in eq]
    grads: list[Tensor | None] = []
    for k, term in enumerate(terms):
        if not needs[k]:
            grads.append(None)
            continue
        others = [(t, o) for i, (t, o) in enumerate(zip(terms, operands)) if i != k]
        seen = set(out) | {c for t, _ in others for c in t}
        target, extra, fresh = [], [], iter(spare)
        for pos, c in enumerate(term):
            n = operands[k].shape[pos]
            if c in target:
                # A repeated letter (a diagonal): a new letter tied to c by an identity.
                new = next(fresh)
                extra.append((c + new, eye(n, dtype=g.dtype, device=g.device)))
                target.append(new)
                continue
            if c not in seen:
                extra.append((c, ones(n, dtype=g.dtype, device=g.device)))  # summed: broadcast
                seen.add(c)
            target.append(c)
        parts = [(out, g), *others, *extra]
        spec = ",".join(t for t, _ in parts) + "->" + "".join(target)
        grads.append(_einsum([o for _, o in parts], equation=spec))
    return tuple(grads)


def einsum(equation: str, *operands):
    """Einstein summation over ``operands`` (as ``torch.einsum``; NumPy's conventions for
    '...' and the implicit output). The operands may also come as one list.

    Example:
        >>> import flowgrad as fg
        >>> fg.einsum("ij,jk->ik", fg.ones(2, 3), fg.ones(3, 4)).shape
        (2, 4)
    """
    if len(operands) == 1 and isinstance(operands[0], (list, tuple)):
        operands = tuple(operands[0])
    return _einsum(operands, equation=equation)


@op(method=True, saves_inputs=False)
def clone(xp, x):
    """A copy with its own (row-major) memory; the gradient passes through unchanged"""
    return _backend.copy(x)


@clone.rule
def _(g, x):
    return g


@op(saves_inputs=False)
def to_device(xp, x, *, device):
    """x copied to ``device`` (a :class:`~flowgrad.device`); the gradient is copied back"""
    return _backend.to_device(x, device)


@to_device.rule
def _(g, x, device):
    return to_device(g, device=x.device)


@to_device.fast
def _(xp, g, x, device):
    return _backend.to_device(g, _backend.device_of(x))


@op(saves_inputs=False)
def index_put(xp, x, value, *, index):
    """x with x[index] = value (what ``t[index] = value`` records).

    d/dx = g with the overwritten places zeroed, d/dvalue = g[index] (summed to its shape)
    """
    out = xp.asarray(x, copy=True)
    _backend.index_put(out, index, value)
    return out


@index_put.rule
def _(g, x, value, index, needs):
    gx = index_put(g, 0.0, index=index) if needs[0] else None
    return gx, (getitem(g, index=index) if needs[1] else None)
