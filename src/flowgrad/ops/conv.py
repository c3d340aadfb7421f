"""Convolution and pooling on NCHW input: im2col from a strided view, then one matrix product.

``im2col`` lays every receptive field out as a column of ``col``, shaped
(C·kh·kw, N·OH·OW) with rows in (channel, kernel row, kernel column) order. It is a copy out of
a strided window view of the (padded) input, with no Python loop over pixels, channels or the
batch, so a convolution is one product ``W(O, C·kh·kw) @ col`` (one per group).

The derivatives are the same pieces transposed::

    out = W @ col              gW = g @ colᵀ          dcol = Wᵀ @ g      gx = col2im(dcol)

``col2im`` sums every column back onto the pixels it came from: one strided add per kernel
offset (kh·kw of them, however large the image, batch or channel count). ``im2col`` and
``col2im`` are registered ops, each the other's derivative, so the rules below are written
with ops and a convolution can be differentiated twice.

Pooling works on the strided view directly: max pooling is a running maximum over the kh·kw
shifted views, its gradient goes to the first maximum of each window (PyTorch's choice), and
average pooling divides by the window size PyTorch uses (padding counted unless
``count_include_pad=False``).
"""

from __future__ import annotations

import math
from typing import Any, NamedTuple

from flowgrad import _backend
from flowgrad.errors import ShapeError
from flowgrad.ops.registry import op
from flowgrad.ops.shape import gather
from flowgrad.tensor import Tensor


class _Geometry(NamedTuple):
    """Where the windows are: kernel, stride and dilation per spatial dim, the padding as
    (top, bottom, left, right) with any extra rows/columns ceil_mode needs, and the output
    size."""

    kernel: tuple[int, int]
    stride: tuple[int, int]
    dilation: tuple[int, int]
    padding: tuple[int, int, int, int]
    out: tuple[int, int]


def _ints(value, n: int, name: str, what: str, minimum: int) -> tuple[int, ...]:
    """``value`` (an int or a sequence of ``n`` ints) as a tuple of ``n`` ints >= minimum."""
    values = (value,) * n if isinstance(value, int) else tuple(value)
    if len(values) != n or not all(isinstance(v, int) and not isinstance(v, bool)
                                   for v in values):
        raise ValueError(f"{name}: {what} must be an int or a tuple of {n} ints, got {value!r}")
    if any(v < minimum for v in values):
        raise ValueError(f"{name}: {what} must be >= {minimum}, got {value!r}")
    return values


def _extent(k: int, d: int) -> int:
    return d * (k - 1) + 1


def _window_geometry(name: str, spatial: tuple[int, int], kernel, stride, padding, dilation,
                     ceil_mode: bool = False) -> _Geometry:
    """The geometry for windows over ``spatial`` (H, W); ``padding`` is normalised already."""
    outs, pads = [], list(padding)
    for axis, (n, k, s, d) in enumerate(zip(spatial, kernel, stride, dilation)):
        before, after = pads[2 * axis], pads[2 * axis + 1]
        span = n + before + after - _extent(k, d)
        if span < 0:
            padded = tuple(m + pads[2 * a] + pads[2 * a + 1] for a, m in enumerate(spatial))
            raise ShapeError(
                f"{name}: kernel size {tuple(kernel)} (with dilation {tuple(dilation)}: "
                f"{tuple(_extent(kk, dd) for kk, dd in zip(kernel, dilation))}) is larger than "
                f"the padded input {padded}")
        if ceil_mode:
            o = -(-span // s) + 1
            if (o - 1) * s >= n + before:  # the last window must start inside the input
                o -= 1
        else:
            o = span // s + 1
        outs.append(o)
        # ceil_mode's last window may run past the padding: pad that far (never used values).
        pads[2 * axis + 1] = max(after, (o - 1) * s + _extent(k, d) - n - before)
    return _Geometry(tuple(kernel), tuple(stride), tuple(dilation), tuple(pads), tuple(outs))


def _zeros_like_layout(xp, x, shape: tuple, value: float | None = 0.0, dtype=None):
    """A new (N, C, H, W) array of ``shape`` laid out in memory as ``x`` is, filled with
    ``value`` (left uninitialised for None).

    Convolutions produce channels-first memory (C, N, H, W) seen as (N, C, H, W); keeping
    that layout through pooling and its gradients keeps every elementwise pass sequential.
    """
    dtype = x.dtype if dtype is None else dtype
    channels_first = _channels_first(x)
    dims = (shape[1], shape[0]) + tuple(shape[2:]) if channels_first else tuple(shape)
    if value is None:
        out = xp.empty(dims, dtype=dtype, device=x.device)
    else:
        out = xp.full(dims, value, dtype=dtype, device=x.device)
    return xp.permute_dims(out, _SWAP01) if channels_first else out


_SWAP01 = (1, 0, 2, 3)  # (N, C, H, W) <-> (C, N, H, W)


def _channels_first(x) -> bool:
    """Whether an (N, C, H, W) array is laid out in memory as (C, N, H, W) (memory layout
    is the backend's business: the standard has none)."""
    return x.ndim == 4 and _backend.channels_first(x)


def _layout_of(xp, a, ref):
    """``a`` in ``ref``'s memory layout (a copy only when they differ): elementwise passes
    over two arrays laid out differently walk one of them out of order."""
    if a.ndim == 4 and _channels_first(ref) != _channels_first(a) and a.size > 1:
        if _channels_first(ref):
            swapped = _backend.contiguous(xp.permute_dims(a, _SWAP01))
            return xp.permute_dims(swapped, _SWAP01)
        return _backend.contiguous(a)
    return a


def _pad(xp, x, padding: tuple[int, int, int, int], value: float = 0.0):
    """``x`` (…, H, W) padded on its last two dims with ``value`` (a copy; ``x`` if none)."""
    top, bottom, left, right = padding
    if not any(padding):
        return x
    h, w = x.shape[-2:]
    out = _zeros_like_layout(xp, x, x.shape[:-2] + (h + top + bottom, w + left + right), value)
    out[..., top:top + h, left:left + w] = x
    return out


def _offset(geo: _Geometry, i: int, j: int) -> tuple[slice, slice]:
    """The slices of the padded input that kernel offset (i, j) sees, one per window."""
    (sh, sw), (dh, dw), (oh, ow) = geo.stride, geo.dilation, geo.out
    return (slice(i * dh, i * dh + (oh - 1) * sh + 1, sh),
            slice(j * dw, j * dw + (ow - 1) * sw + 1, sw))


def _overlapping(geo: _Geometry) -> bool:
    return any(s < _extent(k, d) for k, s, d in zip(geo.kernel, geo.stride, geo.dilation))


def _im2col(xp, x, geo: _Geometry):
    """x (N, C, H, W) -> col (C·kh·kw, N·OH·OW): a copy out of a strided window view."""
    n, c = x.shape[:2]
    (kh, kw), (sh, sw), (dh, dw), (oh, ow) = geo.kernel, geo.stride, geo.dilation, geo.out
    # Channels first, so that the copy below reads whole rows of each image plane.
    padded = _pad(xp, xp.permute_dims(x, _SWAP01), geo.padding)
    windows = _backend.sliding_windows(padded, (_extent(kh, dh), _extent(kw, dw)), axis=(2, 3))
    windows = windows[:, :, :(oh - 1) * sh + 1:sh, :(ow - 1) * sw + 1:sw, ::dh, ::dw]
    col = xp.empty((c, kh, kw, n, oh, ow), dtype=x.dtype, device=x.device)
    col[...] = xp.permute_dims(windows, (0, 4, 5, 1, 2, 3))
    return xp.reshape(col, (c * kh * kw, n * oh * ow))


def _col2im(xp, col, x_shape: tuple, geo: _Geometry):
    """The adjoint of :func:`_im2col`: every column summed back onto its pixels."""
    n, c, h, w = x_shape
    (kh, kw), (oh, ow) = geo.kernel, geo.out
    top, bottom, left, right = geo.padding
    out = xp.zeros((c, n, h + top + bottom, w + left + right), dtype=col.dtype,
                   device=col.device)
    parts = xp.reshape(col, (c, kh, kw, n, oh, ow))
    add = _overlapping(geo)
    for i in range(kh):
        for j in range(kw):
            rows, cols = _offset(geo, i, j)
            if add:
                out[:, :, rows, cols] += parts[:, i, j, ...]
            else:
                out[:, :, rows, cols] = parts[:, i, j, ...]
    return xp.permute_dims(out[:, :, top:top + h, left:left + w], _SWAP01)


def _geometry_of(x_shape: tuple, kernel_size, stride, padding, dilation) -> _Geometry:
    return _window_geometry("im2col", tuple(x_shape[-2:]), kernel_size, stride, padding,
                            dilation)


@op()
def im2col(xp, x, *, kernel_size, stride, padding, dilation):
    """The receptive fields of x (N, C, H, W) as columns (C·kh·kw, N·OH·OW); its derivative
    is col2im. Geometry arguments are normalised tuples (padding: top, bottom, left, right)."""
    return _im2col(xp, x, _geometry_of(x.shape, kernel_size, stride, padding, dilation))


@im2col.rule
def _(g, x, kernel_size, stride, padding, dilation):
    return col2im(g, input_shape=tuple(x.shape), kernel_size=kernel_size, stride=stride,
                  padding=padding, dilation=dilation)


@im2col.fast
def _(xp, g, x, kernel_size, stride, padding, dilation):
    geo = _geometry_of(x.shape, kernel_size, stride, padding, dilation)
    return _col2im(xp, g, tuple(x.shape), geo)


@op()
def col2im(xp, col, *, input_shape, kernel_size, stride, padding, dilation):
    """Columns (C·kh·kw, N·OH·OW) summed back into an (N, C, H, W) image; its derivative is
    im2col"""
    geo = _geometry_of(input_shape, kernel_size, stride, padding, dilation)
    return _col2im(xp, col, tuple(input_shape), geo)


@col2im.rule
def _(g, col, input_shape, kernel_size, stride, padding, dilation):
    return im2col(g, kernel_size=kernel_size, stride=stride, padding=padding,
                  dilation=dilation)


@col2im.fast
def _(xp, g, col, input_shape, kernel_size, stride, padding, dilation):
    return _im2col(xp, g, _geometry_of(input_shape, kernel_size, stride, padding, dilation))


# ---------------------------------------------------------------- convolution


def _conv_padding(name: str, padding, kernel, dilation, stride) -> tuple[int, int, int, int]:
    """PyTorch's padding argument (int, pair, 'valid' or 'same') as (top, bottom, left, right).

    A 4-tuple is taken as (top, bottom, left, right) itself.
    """
    if isinstance(padding, str):
        if padding == "valid":
            return (0, 0, 0, 0)
        if padding == "same":
            if any(s != 1 for s in stride):
                raise ValueError(f"{name}: padding='same' is not supported for strided "
                                 f"convolutions (stride {tuple(stride)})")
            pads = []
            for k, d in zip(kernel, dilation):
                total = d * (k - 1)
                pads += [total // 2, total - total // 2]  # the odd one on the far side
            return pads[0], pads[1], pads[2], pads[3]
        raise ValueError(f"{name}: padding must be an int, a tuple of ints, 'valid' or 'same', "
                         f"got {padding!r}")
    if not isinstance(padding, int) and len(tuple(padding)) == 4:
        top, bottom, left, right = _ints(padding, 4, name, "padding", 0)
        return top, bottom, left, right
    ph, pw = _ints(padding, 2, name, "padding", 0)
    return (ph, ph, pw, pw)


def _conv_geometry(name: str, x_shape: tuple, w_shape: tuple, stride, padding, dilation,
                   groups) -> _Geometry:
    if len(w_shape) != 4:
        raise ShapeError(f"{name}: weight must be 4-D (out_channels, in_channels/groups, kh, kw),"
                         f" got shape {tuple(w_shape)}")
    if len(x_shape) != 4:
        raise ShapeError(f"{name}: input must be 4-D (N, C, H, W) or 3-D (C, H, W), got shape "
                         f"{tuple(x_shape)}")
    if not isinstance(groups, int) or isinstance(groups, bool) or groups < 1:
        raise ValueError(f"{name}: groups must be a positive int, got {groups!r}")
    out_channels, per_group = w_shape[:2]
    if out_channels % groups:
        raise ValueError(f"{name}: groups={groups} does not divide the {out_channels} output "
                         f"channels of weight of shape {tuple(w_shape)}")
    if x_shape[1] != per_group * groups:
        raise ShapeError(f"{name}: input of shape {tuple(x_shape)} has {x_shape[1]} channels, "
                         f"but weight of shape {tuple(w_shape)} with groups={groups} expects "
                         f"{per_group * groups} (weight.shape[1] * groups)")
    kernel = tuple(w_shape[2:])
    stride = _ints(stride, 2, name, "stride", 1)
    dilation = _ints(dilation, 2, name, "dilation", 1)
    pads = _conv_padding(name, padding, kernel, dilation, stride)
    return _window_geometry(name, tuple(x_shape[2:]), kernel, stride, pads, dilation)


def _batched(x, ndim: int, name: str):
    """(x with a batch dim, whether it had one): unbatched input gets a leading 1."""
    if x.ndim == ndim:
        return x, True
    if x.ndim == ndim - 1:
        return x[None, ...], False
    raise ShapeError(f"{name}: input must be {ndim}-D (batched) or {ndim - 1}-D (unbatched), "
                     f"got shape {tuple(x.shape)}")


def _conv2d_forward(xp, x, weight, bias, stride, padding, dilation, groups, name):
    x, batched = _batched(x, 4, name)
    geo = _conv_geometry(name, x.shape, weight.shape, stride, padding, dilation, groups)
    col = _im2col(xp, x, geo)
    out_channels = weight.shape[0]
    w = xp.reshape(weight, (groups, out_channels // groups, -1))
    out = xp.reshape(xp.matmul(w, xp.reshape(col, (groups, -1, col.shape[1]))),
                     (out_channels, -1))
    if bias is not None:
        if tuple(bias.shape) != (out_channels,):
            raise ShapeError(f"{name}: bias must have shape ({out_channels},), got "
                             f"{tuple(bias.shape)}")
        out += xp.reshape(bias, (-1, 1))
    # (O, N, OH, OW) in memory, seen as (N, O, OH, OW): the next layer wants channels first.
    out = xp.permute_dims(xp.reshape(out, (out_channels, x.shape[0]) + geo.out), _SWAP01)
    # Saved in a list that the first-order rule empties: see _conv2d_arrays.
    return (out if batched else out[0, ...]), [col]


def _conv2d_rule(g, x, weight, needs, stride, padding, dilation, groups, name):
    """Gradients of conv2d for x (N, C, H, W), weight and bias, written with ops."""
    geo = _conv_geometry(name, x.shape, weight.shape, stride, padding, dilation, groups)
    out_channels = weight.shape[0]
    kwargs = dict(kernel_size=geo.kernel, stride=geo.stride, padding=geo.padding,
                  dilation=geo.dilation)
    gm = g.permute(1, 0, 2, 3).reshape(groups, out_channels // groups, -1)
    gx = gw = gb = None
    if needs[0]:
        w = weight.reshape(groups, out_channels // groups, -1)
        dcol = (w.mT @ gm).reshape(-1, gm.shape[-1])
        gx = col2im(dcol, input_shape=tuple(x.shape), **kwargs)
    if needs[1]:
        col = im2col(x, **kwargs)
        gw = (gm @ col.reshape(groups, -1, col.shape[-1]).mT).reshape(weight.shape)
    if needs[2]:
        gb = g.sum(dim=(0, 2, 3))
    return gx, gw, gb


@op(saves=True)
def conv2d(xp, x, weight, bias=None, *, stride=1, padding=0, dilation=1, groups=1):
    """2-D convolution (cross-correlation, as PyTorch) of x (N, C, H, W) with weight
    (O, C/groups, kh, kw): im2col and one matmul per group.

    With g the upstream gradient and col the im2col matrix: dW = g @ colᵀ, dx =
    col2im(Wᵀ @ g), db = Σ g over batch and pixels.
    """
    return _conv2d_forward(xp, x, weight, bias, stride, padding, dilation, groups, "conv2d")


@conv2d.rule
def _(g, x, weight, bias, needs, stride, padding, dilation, groups):
    if x.ndim == 3:
        g, x = g.unsqueeze(0), x.unsqueeze(0)
        gx, gw, gb = _conv2d_rule(g, x, weight, needs, stride, padding, dilation, groups,
                                  "conv2d")
        return (gx.squeeze(0) if gx is not None else None), gw, gb
    return _conv2d_rule(g, x, weight, needs, stride, padding, dilation, groups, "conv2d")


def _conv2d_arrays(xp, g, x, weight, saved: list, needs, stride, padding, dilation, groups,
                   name):
    """The first-order gradients of conv2d on arrays, from the forward's saved columns.

    ``saved`` is the list holding the forward's im2col matrix. The rule takes it out of the
    list, so that the matrix (the largest array of a convolutional step) is freed as soon as
    the weight gradient is computed, before the input gradient needs memory; a second
    backward through the same node (``retain_graph``) finds the list empty and recomputes it.
    """
    geo = _conv_geometry(name, x.shape, weight.shape, stride, padding, dilation, groups)
    out_channels = weight.shape[0]
    # (O, N·OH·OW) per group; a copy only if g is not laid out channels first already.
    gm = xp.reshape(xp.permute_dims(g, _SWAP01), (groups, out_channels // groups, -1))
    gx = gw = gb = None
    col = saved.pop() if saved else None
    if needs[1]:
        if col is None:
            col = _im2col(xp, x, geo)
        gw = xp.matmul(gm, xp.matrix_transpose(xp.reshape(col, (groups, -1, col.shape[1]))))
        gw = xp.reshape(gw, weight.shape)
    del col
    if needs[2]:
        gb = xp.reshape(xp.sum(gm, axis=2), (-1,))
    if needs[0]:
        if math.prod(weight.shape[1:]) * gm.shape[-1] * groups <= _SMALL_COLUMNS:
            # Small: one product and col2im (fewer, larger BLAS calls).
            w = xp.reshape(weight, (groups, out_channels // groups, -1))
            dcol = xp.reshape(xp.matmul(xp.matrix_transpose(w), gm), (-1, gm.shape[-1]))
            gx = _col2im(xp, dcol, tuple(x.shape), geo)
        else:
            gx = _conv2d_input_grad(xp, gm, x.shape, weight, geo, groups)
    return gx, gw, gb


# Column-gradient matrices up to this many elements (4 MiB of float32) are built whole.
_SMALL_COLUMNS = 1 << 20


def _conv2d_input_grad(xp, gm, x_shape, weight, geo: _Geometry, groups: int):
    """dx = col2im(Wᵀ @ g), one kernel offset at a time: Wᵀ[:, :, i, j] @ g is added onto
    the pixels offset (i, j) saw, so the (C·kh·kw, N·OH·OW) matrix of column gradients is
    never built; one (C, N·OH·OW) product exists at a time."""
    n, c, h, w = x_shape
    out_channels, per_group, kh, kw = weight.shape
    top, bottom, left, right = geo.padding
    dtype = xp.result_type(weight.dtype, gm.dtype)
    out = xp.zeros((c, n, h + top + bottom, w + left + right), dtype=dtype, device=gm.device)
    wt = xp.reshape(weight, (groups, out_channels // groups, per_group, kh, kw))
    part = xp.empty((groups, per_group, gm.shape[-1]), dtype=dtype, device=gm.device)
    shape = (c, n) + geo.out
    for i in range(kh):
        for j in range(kw):
            _backend.into(part, "matmul", xp.matrix_transpose(wt[:, :, :, i, j]), gm)
            rows, cols = _offset(geo, i, j)
            out[:, :, rows, cols] += xp.reshape(part, shape)
    return xp.permute_dims(out[:, :, top:top + h, left:left + w], _SWAP01)


@conv2d.fast
def _(xp, g, x, weight, bias, saved, needs, stride, padding, dilation, groups):
    batched = x.ndim == 4
    gx, gw, gb = _conv2d_arrays(xp, g if batched else g[None, ...],
                                x if batched else x[None, ...], weight, saved, needs, stride,
                                padding, dilation, groups, "conv2d")
    return (gx if batched or gx is None else gx[0, ...]), gw, gb


def _conv1d_args(stride, padding, dilation):
    """conv1d's arguments as conv2d's over a height of 1."""
    stride = (1, *_ints(stride, 1, "conv1d", "stride", 1))
    dilation = (1, *_ints(dilation, 1, "conv1d", "dilation", 1))
    if not isinstance(padding, str):
        padding = (0, 0, *(_ints(padding, 1, "conv1d", "padding", 0) * 2))
    return stride, padding, dilation


@op(saves=True)
def conv1d(xp, x, weight, bias=None, *, stride=1, padding=0, dilation=1, groups=1):
    """1-D convolution of x (N, C, L) with weight (O, C/groups, k): conv2d over a height of 1,
    with the same derivatives"""
    if weight.ndim != 3:
        raise ShapeError(f"conv1d: weight must be 3-D (out_channels, in_channels/groups, k), "
                         f"got shape {tuple(weight.shape)}")
    if x.ndim not in (2, 3):
        raise ShapeError(f"conv1d: input must be 3-D (N, C, L) or 2-D (C, L), got shape "
                         f"{tuple(x.shape)}")
    stride, padding, dilation = _conv1d_args(stride, padding, dilation)
    out, col = _conv2d_forward(xp, x[..., None, :], weight[:, :, None, :], bias, stride,
                               padding, dilation, groups, "conv1d")
    return out[..., 0, :], col


@conv1d.rule
def _(g, x, weight, bias, needs, stride, padding, dilation, groups):
    stride, padding, dilation = _conv1d_args(stride, padding, dilation)
    g4, x4 = g.unsqueeze(-2), x.unsqueeze(-2)
    if x.ndim == 2:
        g4, x4 = g4.unsqueeze(0), x4.unsqueeze(0)
    gx, gw, gb = _conv2d_rule(g4, x4, weight.unsqueeze(-2), needs, stride, padding, dilation,
                              groups, "conv1d")
    if gx is not None:
        gx = gx.reshape(x.shape)
    return gx, (gw.squeeze(-2) if gw is not None else None), gb


@conv1d.fast
def _(xp, g, x, weight, bias, saved, needs, stride, padding, dilation, groups):
    stride, padding, dilation = _conv1d_args(stride, padding, dilation)
    g4, x4 = g[..., None, :], x[..., None, :]
    if x.ndim == 2:
        g4, x4 = g4[None, ...], x4[None, ...]
    gx, gw, gb = _conv2d_arrays(xp, g4, x4, weight[:, :, None, :], saved, needs, stride,
                                padding, dilation, groups, "conv1d")
    return (None if gx is None else xp.reshape(gx, x.shape),
            None if gw is None else xp.reshape(gw, weight.shape), gb)


# ---------------------------------------------------------------- pooling


def _pool_geometry(name: str, x_shape: tuple, kernel_size, stride, padding, dilation,
                   ceil_mode: bool) -> _Geometry:
    if len(x_shape) != 4:
        raise ShapeError(f"{name}: input must be 4-D (N, C, H, W) or 3-D (C, H, W), got shape "
                         f"{tuple(x_shape)}")
    kernel = _ints(kernel_size, 2, name, "kernel_size", 1)
    stride = kernel if stride is None or stride == () else _ints(stride, 2, name, "stride", 1)
    dilation = _ints(dilation, 2, name, "dilation", 1)
    ph, pw = _ints(padding, 2, name, "padding", 0)
    for p, k, d in ((ph, kernel[0], dilation[0]), (pw, kernel[1], dilation[1])):
        if p > _extent(k, d) // 2:
            raise ValueError(f"{name}: padding should be at most half of the (dilated) kernel "
                             f"size, got padding={padding!r} with kernel_size={kernel_size!r}"
                             + (f" and dilation={dilation}" if d > 1 else ""))
    return _window_geometry(name, tuple(x_shape[2:]), kernel, stride, (ph, ph, pw, pw),
                            dilation, ceil_mode)


def _lowest(xp, dtype):
    if not _backend.is_floating(dtype):
        raise TypeError(f"max_pool2d: the input must be floating point, got dtype {dtype}")
    return -math.inf


def _inside(xp, padded_shape: tuple, geo: _Geometry, device):
    """(H, W) mask of the padded plane's real positions; None without padding.

    The padding holds -inf, which ties with a window of -inf inputs: as in PyTorch, such a
    window picks its first real element, never the padding.
    """
    top, bottom, left, right = geo.padding
    if not any(geo.padding):
        return None
    inside = xp.zeros(padded_shape[-2:], dtype=xp.bool, device=device)
    inside[top:padded_shape[-2] - bottom, left:padded_shape[-1] - right] = True
    return inside


def _window_argmax(xp, padded, out, geo: _Geometry):
    """For each window, the kernel offset (row-major) of its first maximum."""
    kh, kw = geo.kernel
    index = xp.zeros(out.shape, dtype=xp.int64, device=out.device)
    inside = _inside(xp, padded.shape, geo, padded.device)
    for p in range(kh * kw - 1, -1, -1):  # backwards, so that the first maximum wins
        rows, cols = _offset(geo, *divmod(p, kw))
        hit = padded[:, :, rows, cols] == out
        if inside is not None:
            hit &= inside[rows, cols]
        index = xp.where(hit, p, index)
    return index


@op()
def max_pool2d(xp, x, *, kernel_size, stride=None, padding=0, dilation=1, ceil_mode=False):
    """The maximum of each window; the gradient goes to the first maximum of each window (as
    PyTorch), summed where windows overlap"""
    x4, batched = _batched(x, 4, "max_pool2d")
    geo = _pool_geometry("max_pool2d", x4.shape, kernel_size, stride, padding, dilation,
                         ceil_mode)
    padded = _pad(xp, x4, geo.padding, _lowest(xp, x.dtype))
    kh, kw = geo.kernel
    out: Any = None
    for p in range(kh * kw):
        part = padded[(slice(None), slice(None)) + _offset(geo, *divmod(p, kw))]
        if out is None:
            out = xp.asarray(part, copy=True)  # (in part's memory layout)
        else:
            _backend.into(out, "maximum", out, part)
    return out if batched else out[0, ...]


@max_pool2d.rule
def _(g, x, out, kernel_size, stride, padding, dilation, ceil_mode):
    return max_pool2d_backward(g, x.detach(), out.detach(), kernel_size=kernel_size,
                               stride=stride, padding=padding, dilation=dilation,
                               ceil_mode=ceil_mode)


@max_pool2d.fast
def _(xp, g, x, out, kernel_size, stride, padding, dilation, ceil_mode):
    return max_pool2d_backward.forward(xp, g, x, out, kernel_size=kernel_size, stride=stride,
                                       padding=padding, dilation=dilation, ceil_mode=ceil_mode)


def _max_pool_setup(xp, x, out, kernel_size, stride, padding, dilation, ceil_mode):
    x4, batched = _batched(x, 4, "max_pool2d")
    out4 = out if batched else out[None, ...]
    geo = _pool_geometry("max_pool2d", x4.shape, kernel_size, stride, padding, dilation,
                         ceil_mode)
    padded = _pad(xp, x4, geo.padding, _lowest(xp, x.dtype))
    return x4, out4, batched, geo, _window_argmax(xp, padded, out4, geo)


@op()
def max_pool2d_backward(xp, g, x, pooled, *, kernel_size, stride=None, padding=0, dilation=1,
                        ceil_mode=False):
    """max_pool2d's gradient: g routed to the first maximum of each window (``pooled`` is
    max_pool2d's output). Linear in g; its own derivative gathers the upstream gradient at
    those maxima (nothing flows to x or pooled, which only choose where)"""
    x4, batched = _batched(x, 4, "max_pool2d")
    out4, g4 = (pooled, g) if batched else (pooled[None, ...], g[None, ...])
    geo = _pool_geometry("max_pool2d", x4.shape, kernel_size, stride, padding, dilation,
                         ceil_mode)
    padded = _pad(xp, x4, geo.padding, _lowest(xp, x.dtype))
    out4, g4 = _layout_of(xp, out4, padded), _layout_of(xp, g4, padded)
    add = _overlapping(geo)
    # Windows that tile the padded input exactly write every element: no zeroing first.
    tiled = not add and all(o * s == n for o, s, n in zip(geo.out, geo.stride,
                                                          padded.shape[2:]))
    gx = _zeros_like_layout(xp, padded, padded.shape, None if tiled else 0.0, g.dtype)
    kh, kw = geo.kernel
    inside = _inside(xp, padded.shape, geo, padded.device)
    taken = None  # windows whose maximum has been found (the first one gets the gradient)
    for p in range(kh * kw):
        where = (slice(None), slice(None)) + _offset(geo, *divmod(p, kw))
        hit = padded[where] == out4
        if inside is not None:
            hit &= inside[where[2:]]
        if taken is not None:
            hit &= ~taken
        if p < kh * kw - 1:
            if taken is None:
                taken = xp.asarray(hit, copy=True)
            else:
                taken |= hit
        if add:
            gx[where] += xp.where(hit, g4, 0.0)
        else:
            _backend.into(gx[where], "multiply", g4, hit)  # straight into gx's window
    top, _, left, _ = geo.padding
    n, c, h, w = x4.shape
    gx = gx[:, :, top:top + h, left:left + w]
    return gx if batched else gx[0, ...]


@max_pool2d_backward.rule
def _(gg, g, x, pooled, kernel_size, stride, padding, dilation, ceil_mode):
    xp = _backend.namespace(x.data)
    x4, out4, batched, geo, index = _max_pool_setup(xp, x.data, pooled.data, kernel_size,
                                                    stride, padding, dilation, ceil_mode)
    # Linear in g: the adjoint of routing g to each window's first maximum is picking gg there.
    flat = _flat_indices(xp, index, x4.shape, geo)
    n, c, h, w = x4.shape
    gg4 = gg if batched else gg.unsqueeze(0)
    picked = gather(gg4.reshape(n, c, h * w), 2, xp.reshape(flat, (n, c, -1)))
    picked = picked.reshape(out4.shape)
    return (picked if batched else picked.squeeze(0)), None, None


def _flat_indices(xp, index, x_shape, geo: _Geometry):
    """Window offsets as flat indices into each H·W plane (PyTorch's return_indices)."""
    kh, kw = geo.kernel
    (sh, sw), (dh, dw), (oh, ow) = geo.stride, geo.dilation, geo.out
    top, _, left, _ = geo.padding
    rows = xp.reshape(xp.arange(oh, device=index.device), (-1, 1)) * sh - top + (index // kw) * dh
    cols = xp.reshape(xp.arange(ow, device=index.device), (1, -1)) * sw - left + (index % kw) * dw
    return rows * x_shape[3] + cols


def max_pool2d_indices(x, kernel_size, stride=None, padding=0, dilation=1, ceil_mode=False):
    """The flat index (into each H·W plane) of the element each window of max_pool2d picks."""

    arr = x.data if isinstance(x, Tensor) else _backend.asarray(x)
    xp = _backend.namespace(arr)
    out = max_pool2d.forward(xp, arr, kernel_size=kernel_size, stride=stride, padding=padding,
                             dilation=dilation, ceil_mode=ceil_mode)
    x4, out4, batched, geo, index = _max_pool_setup(xp, arr, out, kernel_size, stride, padding,
                                                    dilation, ceil_mode)
    flat = _flat_indices(xp, index, x4.shape, geo)
    return Tensor._make(flat if batched else flat[0, ...], False, None)


def _avg_divisor(xp, x_shape, geo: _Geometry, count_include_pad, divisor_override, like):
    """The number each window's sum is divided by (PyTorch's rule), shaped (OH, OW), in
    the dtype and on the device of the array ``like``."""
    if divisor_override is not None:
        if not isinstance(divisor_override, int) or divisor_override == 0:
            raise ValueError(f"avg_pool2d: divisor_override must be a non-zero int, got "
                             f"{divisor_override!r}")
        return xp.asarray(float(divisor_override), dtype=like.dtype, device=like.device)
    sizes = []
    for axis, (n, k, s) in enumerate(zip(x_shape[2:], geo.kernel, geo.stride)):
        pad = geo.padding[2 * axis]
        start = xp.arange(geo.out[axis], device=like.device) * s - pad
        end = xp.minimum(start + k, n + pad)  # windows are clipped to the padded input ...
        if not count_include_pad:
            start, end = xp.maximum(start, 0), xp.minimum(end, n)  # ... or to the input
        sizes.append(end - start)
    return xp.astype(xp.reshape(sizes[0], (-1, 1)) * xp.reshape(sizes[1], (1, -1)), like.dtype)


def _avg_setup(name, x_shape, kernel_size, stride, padding, ceil_mode):
    if len(x_shape) not in (3, 4):
        raise ShapeError(f"{name}: input must be 4-D (N, C, H, W) or 3-D (C, H, W), got shape "
                         f"{tuple(x_shape)}")
    shape4 = tuple(x_shape) if len(x_shape) == 4 else (1, *x_shape)
    geo = _pool_geometry(name, shape4, kernel_size, stride, padding, 1, ceil_mode)
    return shape4, geo


@op()
def avg_pool2d(xp, x, *, kernel_size, stride=None, padding=0, ceil_mode=False,
               count_include_pad=True, divisor_override=None):
    """The mean of each window; the gradient spreads g/divisor over each window (summed where
    windows overlap)"""
    shape4, geo = _avg_setup("avg_pool2d", x.shape, kernel_size, stride, padding, ceil_mode)
    padded = _pad(xp, xp.reshape(x, shape4), geo.padding)
    kh, kw = geo.kernel
    total: Any = None
    for p in range(kh * kw):
        part = padded[(slice(None), slice(None)) + _offset(geo, *divmod(p, kw))]
        if total is None:
            total = xp.asarray(part, copy=True)  # (in part's memory layout)
        else:
            total += part
    total /= _avg_divisor(xp, shape4, geo, count_include_pad, divisor_override, x)
    return total if x.ndim == 4 else total[0, ...]


@avg_pool2d.rule
def _(g, x, kernel_size, stride, padding, ceil_mode, count_include_pad, divisor_override):
    return avg_pool2d_backward(g, input_shape=tuple(x.shape), kernel_size=kernel_size,
                               stride=stride, padding=padding, ceil_mode=ceil_mode,
                               count_include_pad=count_include_pad,
                               divisor_override=divisor_override)


@avg_pool2d.fast
def _(xp, g, x, kernel_size, stride, padding, ceil_mode, count_include_pad, divisor_override):
    return avg_pool2d_backward.forward(xp, g, input_shape=tuple(x.shape),
                                       kernel_size=kernel_size, stride=stride, padding=padding,
                                       ceil_mode=ceil_mode, count_include_pad=count_include_pad,
                                       divisor_override=divisor_override)


@op()
def avg_pool2d_backward(xp, g, *, input_shape, kernel_size, stride=None, padding=0,
                        ceil_mode=False, count_include_pad=True, divisor_override=None):
    """avg_pool2d's gradient: g/divisor spread over each window. It is avg_pool2d's adjoint,
    so its own derivative is avg_pool2d"""
    shape4, geo = _avg_setup("avg_pool2d", input_shape, kernel_size, stride, padding,
                             ceil_mode)
    top, bottom, left, right = geo.padding
    n, c, h, w = shape4
    share = xp.reshape(g, (n, c) + geo.out) / _avg_divisor(xp, shape4, geo, count_include_pad,
                                                           divisor_override, g)
    gx = xp.zeros((n, c, h + top + bottom, w + left + right), dtype=g.dtype, device=g.device)
    kh, kw = geo.kernel
    for p in range(kh * kw):
        gx[(slice(None), slice(None)) + _offset(geo, *divmod(p, kw))] += share
    return xp.reshape(gx[:, :, top:top + h, left:left + w], input_shape)


@avg_pool2d_backward.rule
def _(gg, g, input_shape, kernel_size, stride, padding, ceil_mode, count_include_pad,
      divisor_override):
    out = avg_pool2d(gg, kernel_size=kernel_size, stride=stride, padding=padding,
                     ceil_mode=ceil_mode, count_include_pad=count_include_pad,
                     divisor_override=divisor_override)
    return out.reshape(g.shape)


def _adaptive_matrix(xp, n_in: int, n_out: int, dtype, device):
    """(n_out, n_in): row i averages PyTorch's bin [floor(i·n_in/n_out), ceil((i+1)·n_in/n_out))."""
    i = xp.arange(n_out, device=device)
    start = xp.reshape((i * n_in) // n_out, (-1, 1))
    end = xp.reshape(-((-(i + 1) * n_in) // n_out), (-1, 1))
    j = xp.reshape(xp.arange(n_in, device=device), (1, -1))
    inside = (j >= start) & (j < end)
    return xp.astype(inside, dtype) / xp.astype(end - start, dtype)


def _adaptive_size(x_shape, output_size) -> tuple[int, int]:
    if len(x_shape) not in (3, 4):
        raise ShapeError(f"adaptive_avg_pool2d: input must be 4-D (N, C, H, W) or 3-D (C, H, W),"
                         f" got shape {tuple(x_shape)}")
    sizes = (output_size,) * 2 if isinstance(output_size, int) else tuple(output_size)
    if len(sizes) != 2:
        raise ValueError(f"adaptive_avg_pool2d: output_size must be an int or a pair, got "
                         f"{output_size!r}")
    out = tuple(n if s is None else s for s, n in zip(sizes, x_shape[-2:]))
    if any(not isinstance(s, int) or s < 1 for s in out):
        raise ValueError(f"adaptive_avg_pool2d: output sizes must be positive ints, got "
                         f"{output_size!r}")
    return out


@op()
def adaptive_avg_pool2d(xp, x, *, output_size):
    """The mean over PyTorch's adaptive bins: Ph @ x @ Pwᵀ with averaging matrices Ph, Pw; the
    gradient is Phᵀ @ g @ Pw"""
    oh, ow = _adaptive_size(x.shape, output_size)
    ph = _adaptive_matrix(xp, x.shape[-2], oh, x.dtype, x.device)
    pw = _adaptive_matrix(xp, x.shape[-1], ow, x.dtype, x.device)
    return xp.matmul(xp.matmul(ph, x), pw.T)


@adaptive_avg_pool2d.rule
def _(g, x, output_size):
    xp = _backend.namespace(g.data)
    oh, ow = _adaptive_size(x.shape, output_size)
    ph = Tensor._make(_adaptive_matrix(xp, x.shape[-2], oh, g.data.dtype, g.data.device),
                      False, None)
    pw = Tensor._make(_adaptive_matrix(xp, x.shape[-1], ow, g.data.dtype, g.data.device),
                      False, None)
    return ph.mT @ g @ pw


@adaptive_avg_pool2d.fast
def _(xp, g, x, output_size):
    oh, ow = _adaptive_size(x.shape, output_size)
    ph = _adaptive_matrix(xp, x.shape[-2], oh, g.dtype, g.device)
    pw = _adaptive_matrix(xp, x.shape[-1], ow, g.dtype, g.device)
    return xp.matmul(xp.matmul(ph.T, g), pw)
