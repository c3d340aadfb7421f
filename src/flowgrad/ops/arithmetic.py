"""Arithmetic: + - * / ** @, negation, and comparisons (which have no gradient)."""

from __future__ import annotations

import math

from flowgrad.errors import ShapeError
from flowgrad.ops.elementwise import log, where
from flowgrad.ops.registry import op, promote_divide, promote_elementwise
from flowgrad.ops.shape import squeeze, unsqueeze
from flowgrad.tensor import Tensor


@op(method=True, promote=promote_elementwise, saves_inputs=False)
def add(xp, x, y):
    """d(x+y)/dx = 1, d(x+y)/dy = 1"""
    return xp.add(x, y)


@add.rule
def _(g, x, y):
    return g, g


@add.fast
def _(xp, g, x, y):
    return g, g


@op(method=True, promote=promote_elementwise, saves_inputs=False)
def sub(xp, x, y):
    """d(x-y)/dx = 1, d(x-y)/dy = -1"""
    return xp.subtract(x, y)


@sub.rule
def _(g, x, y, needs):
    return g, (-g if needs[1] else None)


@sub.fast
def _(xp, g, x, y, needs):
    return g, (-g if needs[1] else None)


@op(method=True, promote=promote_elementwise)
def mul(xp, x, y):
    """d(x*y)/dx = y, d(x*y)/dy = x"""
    return xp.multiply(x, y)


@mul.rule
def _(g, x, y, needs):
    return (g * y if needs[0] else None), (g * x if needs[1] else None)


@mul.fast
def _(xp, g, x, y, needs):
    return (g * y if needs[0] else None), (g * x if needs[1] else None)


@op(method=True, promote=promote_divide)
def div(xp, x, y):
    """d(x/y)/dx = 1/y, d(x/y)/dy = -x/y²"""
    return xp.divide(x, y)


@div.rule
def _(g, x, y, needs):
    gx = g / y if needs[0] else None
    # (x/y)/y, as PyTorch: y·y overflows for |y| > 1e154 where the quotients do not.
    gy = -g * ((x / y) / y) if needs[1] else None
    return gx, gy


@div.fast
def _(xp, g, x, y, needs):
    gx = g / y if needs[0] else None
    gy = -g * ((x / y) / y) if needs[1] else None
    return gx, gy


@op(method=True, promote=promote_elementwise)
def pow(xp, x, y):
    """d(xʸ)/dx = y·xʸ⁻¹, d(xʸ)/dy = xʸ·log(x) (taken as 0 where x = 0 and y >= 0)"""
    if type(y) is float and y == -0.5:
        # PyTorch computes x ** -0.5 as rsqrt (so -0.0 gives -inf), as NumPy does x ** 0.5
        # as sqrt; the derivative of x ** 0.5 goes through here.
        return 1.0 / xp.sqrt(x)
    return xp.pow(x, y)


@pow.rule
def _(g, x, y, out, needs):
    gx = None
    if needs[0]:
        # y·x^(y-1) is 0·x^-1 for y = 0, NaN at x = 0; PyTorch and JAX take 0 there.
        if isinstance(y, Tensor):
            gx = where(y == 0, 0.0, g * y * x ** (y - 1))
        else:
            gx = g * 0.0 if y == 0 else g * y * x ** (y - 1)
    gy = None
    if needs[1]:
        # xʸ·log(x) is 0·(-inf) at x = 0 and y >= 0; PyTorch takes the limit 0 there (and
        # keeps ±inf for y < 0). The masked log sees 1, so no NaN reaches order 2.
        if isinstance(x, Tensor):
            zero = where(y >= 0, x == 0, False)
            gy = g * where(zero, 0.0, out * log(where(zero, 1.0, x)))
        else:  # a number base (2.0 ** t): its log is a number too, on no device
            log_x = math.log(x) if x > 0 else (-math.inf if x == 0 else math.nan)
            gy = g * (where(y >= 0, 0.0, out * log_x) if x == 0 else out * log_x)
    return gx, gy


@op(method=True, saves_inputs=False)
def neg(xp, x):
    """d(-x)/dx = -1"""
    return xp.negative(x)


@neg.rule
def _(g, x):
    return -g


@neg.fast
def _(xp, g, x):
    return -g


@op(method=True, promote=promote_elementwise)
def matmul(xp, x, y):
    """d(x@y)/dx = g @ yᵀ, d(x@y)/dy = xᵀ @ g (batched, as numpy.matmul; 1-D operands promoted)"""
    if x.ndim == 0 or y.ndim == 0:
        raise ShapeError(f"matmul: both operands need at least 1 dimension, got shapes "
                         f"{tuple(x.shape)} and {tuple(y.shape)}")
    k_y = y.shape[0] if y.ndim == 1 else y.shape[-2]
    if x.shape[-1] != k_y:
        raise ShapeError(
            f"matmul: shapes {tuple(x.shape)} and {tuple(y.shape)} are not aligned: "
            f"{x.shape[-1]} (last dim of the first) != {k_y} "
            f"({'first' if y.ndim == 1 else 'second-to-last'} dim of the second)")
    return xp.matmul(x, y)


@matmul.rule
def _(g, x, y, needs):
    x2 = unsqueeze(x, 0) if x.ndim == 1 else x
    y2 = unsqueeze(y, -1) if y.ndim == 1 else y
    if x.ndim == 1:
        g = unsqueeze(g, -2)
    if y.ndim == 1:
        g = unsqueeze(g, -1)
    gx = gy = None
    if needs[0]:
        gx = g @ y2.mT
        if x.ndim == 1:
            gx = squeeze(gx, -2)
    if needs[1]:
        gy = x2.mT @ g
        if y.ndim == 1:
            gy = squeeze(gy, -1)
    return gx, gy


@matmul.fast
def _(xp, g, x, y, needs):
    if x.ndim == 1 and y.ndim == 1:
        return (g * y if needs[0] else None), (g * x if needs[1] else None)
    if x.ndim == 1:  # (k) @ (..., k, n) -> (..., n)
        gx = xp.matmul(g[..., None, :], xp.matrix_transpose(y))[..., 0, :] if needs[0] else None
        gy = x[:, None] * g[..., None, :] if needs[1] else None
        return gx, gy
    if y.ndim == 1:  # (..., m, k) @ (k) -> (..., m)
        gx = g[..., :, None] * y if needs[0] else None
        gy = xp.matmul(xp.matrix_transpose(x), g[..., :, None])[..., 0] if needs[1] else None
        return gx, gy
    gx = xp.matmul(g, xp.matrix_transpose(y)) if needs[0] else None
    gy = xp.matmul(xp.matrix_transpose(x), g) if needs[1] else None
    return gx, gy


def _comparison(name, ufunc_name, symbol):
    def forward(xp, x, y):
        return getattr(xp, ufunc_name)(x, y)

    forward.__name__ = name
    forward.__doc__ = f"x {symbol} y, elementwise; a bool tensor with no gradient"
    return op(name, method=True, differentiable=False)(forward)


lt = _comparison("lt", "less", "<")
le = _comparison("le", "less_equal", "<=")
gt = _comparison("gt", "greater", ">")
ge = _comparison("ge", "greater_equal", ">=")
eq = _comparison("eq", "equal", "==")
ne = _comparison("ne", "not_equal", "!=")


@op(method=True)
def bmm(xp, x, y):
    """Batched matrix product of (b, n, m) and (b, m, p); d/dx = g @ yᵀ, d/dy = xᵀ @ g"""
    if x.ndim != 3 or y.ndim != 3:
        raise ShapeError(f"bmm: both operands must be 3-D (batch, rows, cols), got shapes "
                         f"{tuple(x.shape)} and {tuple(y.shape)}")
    if x.shape[0] != y.shape[0] or x.shape[2] != y.shape[1]:
        raise ShapeError(f"bmm: shapes {tuple(x.shape)} and {tuple(y.shape)} do not fit: "
                         "the batch sizes must be equal and x's last dim must equal y's "
                         "second")
    return xp.matmul(x, y)


@bmm.rule
def _(g, x, y, needs):
    return (bmm(g, y.mT) if needs[0] else None), (bmm(x.mT, g) if needs[1] else None)


# ---------------------------------------------------------------- PyTorch's named products
# Compositions of matmul and mul (so their gradients are those ops'), with PyTorch's
# checks on the operands' ranks and sizes first: matmul would accept more.


def _shapes(x, y) -> str:
    return f"{tuple(x.shape)} and {tuple(y.shape)}"


def mm(input, mat2):
    """The matrix product of two 2-D tensors (``torch.mm``); no broadcasting.

    Raises:
        ShapeError: an operand is not 2-D, or the inner sizes differ (naming both shapes).
    """
    if input.ndim != 2 or mat2.ndim != 2:
        raise ShapeError(f"mm: both operands must be 2-D matrices, got shapes "
                         f"{_shapes(input, mat2)}")
    if input.shape[1] != mat2.shape[0]:
        raise ShapeError(f"mm: shapes {_shapes(input, mat2)} cannot be multiplied "
                         f"({input.shape[1]} columns != {mat2.shape[0]} rows)")
    return matmul(input, mat2)


def mv(input, vec):
    """The product of a 2-D matrix and a 1-D vector (``torch.mv``).

    Raises:
        ShapeError: the ranks are not 2 and 1, or the sizes differ (naming both shapes).
    """
    if input.ndim != 2 or vec.ndim != 1:
        raise ShapeError(f"mv: expected a 2-D matrix and a 1-D vector, got shapes "
                         f"{_shapes(input, vec)}")
    if input.shape[1] != vec.shape[0]:
        raise ShapeError(f"mv: shapes {_shapes(input, vec)} cannot be multiplied "
                         f"({input.shape[1]} columns != {vec.shape[0]} elements)")
    return matmul(input, vec)


def dot(input, tensor):
    """The inner product of two 1-D tensors of the same size (``torch.dot``): a 0-d tensor.

    Raises:
        ShapeError: an operand is not 1-D, or the sizes differ (naming both shapes).
    """
    if input.ndim != 1 or tensor.ndim != 1:
        raise ShapeError(f"dot: both operands must be 1-D, got shapes {_shapes(input, tensor)}")
    if input.shape[0] != tensor.shape[0]:
        raise ShapeError(f"dot: shapes {_shapes(input, tensor)} have different numbers of "
                         f"elements")
    return matmul(input, tensor)


def outer(input, vec2):
    """The outer product of two 1-D tensors (``torch.outer``): ``out[i, j] = input[i]·vec2[j]``.

    Raises:
        ShapeError: an operand is not 1-D (naming both shapes).
    """
    if input.ndim != 1 or vec2.ndim != 1:
        raise ShapeError(f"outer: both operands must be 1-D, got shapes {_shapes(input, vec2)}")
    return mul(unsqueeze(input, -1), vec2)


def reciprocal(input):
    """1/x (as ``torch.reciprocal``; integers give the default float): recorded as the
    division ``1.0 / x``, whose derivative -1/x² is PyTorch's -out²."""
    return div(1.0, input)
