"""Elementwise functions. Rules use the saved values, as backpropagation does."""

from __future__ import annotations

from flowgrad.ops.registry import op


@op(method=True)
def exp(xp, x):
    """exp'(x) = exp(x), from the saved output"""
    return xp.exp(x)


@exp.rule
def _(g, x, out):
    return g * out


@op(method=True)
def log(xp, x):
    """log'(x) = 1/x"""
    return xp.log(x)


@log.rule
def _(g, x):
    return g / x


@op(method=True)
def sqrt(xp, x):
    """sqrt'(x) = 1/(2·sqrt(x)), from the saved output"""
    return xp.sqrt(x)


@sqrt.rule
def _(g, x, out):
    return g / (out * 2.0)


@op(method=True)
def abs(xp, x):
    """abs'(x) = sign(x); 0 at x = 0 (PyTorch's convention)"""
    return xp.abs(x)


@abs.rule
def _(g, x):
    return g * sign(x)


@op(method=True, differentiable=False)
def sign(xp, x):
    """-1, 0 or 1 by the sign of x; no gradient (its derivative is 0 wherever it exists)"""
    return xp.sign(x)


@op(method=True)
def sin(xp, x):
    """sin'(x) = cos(x)"""
    return xp.sin(x)


@sin.rule
def _(g, x):
    return g * cos(x)


@op(method=True)
def cos(xp, x):
    """cos'(x) = -sin(x)"""
    return xp.cos(x)


@cos.rule
def _(g, x):
    return -g * sin(x)


@op(method=True)
def tanh(xp, x):
    """tanh'(x) = 1 - t², from the saved output t"""
    return xp.tanh(x)


@tanh.rule
def _(g, x, out):
    return g * (1.0 - out * out)


@op(method=True)
def sigmoid(xp, x):
    """sigmoid'(x) = s·(1 - s), from the saved output s"""
    # exp of a negative number only: no overflow for large |x|.
    e = xp.exp(-xp.abs(x))
    return xp.where(x >= 0, 1.0 / (1.0 + e), e / (1.0 + e)).astype(x.dtype, copy=False)


@sigmoid.rule
def _(g, x, out):
    return g * out * (1.0 - out)


@op(method=True)
def relu(xp, x):
    """relu'(x) = step(x): 1 for x > 0, 0 for x <= 0 (relu'(0) = 0, as PyTorch)"""
    return xp.maximum(x, 0)


@relu.rule
def _(g, x):
    return g * step(x)


@op(method=True)
def leaky_relu(xp, x, *, negative_slope=0.01):
    """leaky_relu'(x) = 1 for x > 0, negative_slope for x <= 0"""
    return xp.where(x > 0, x, x * negative_slope)


@leaky_relu.rule
def _(g, x, negative_slope):
    return where(x > 0, g, g * negative_slope)


@op(method=True)
def step(xp, x):
    """The unit step, 1 where x > 0 else 0; its derivative is 0 everywhere (by convention at 0)"""
    return (x > 0).astype(x.dtype if x.dtype.kind == "f" else "float32")


@step.rule
def _(g, x):
    return g * 0.0


@op(method=True)
def clamp(xp, x, *, min=None, max=None):
    """clamp'(x) = 1 where min <= x <= max (bounds included, as PyTorch), else 0"""
    if min is None and max is None:
        raise ValueError("clamp: give at least one of min and max")
    return xp.clip(x, min, max)


@clamp.rule
def _(g, x, min, max):
    inside = True
    if min is not None:
        inside = x >= min
    if max is not None:
        inside = (x <= max) if min is None else inside * (x <= max)
    return where(inside, g, 0.0)


@op(method=True)
def maximum(xp, x, y):
    """d max(x, y) = g to the larger; split evenly where x == y (as PyTorch)"""
    return xp.maximum(x, y)


@maximum.rule
def _(g, x, y):
    return _split_ties(g, x, y, x > y)


@op(method=True)
def minimum(xp, x, y):
    """d min(x, y) = g to the smaller; split evenly where x == y (as PyTorch)"""
    return xp.minimum(x, y)


@minimum.rule
def _(g, x, y):
    return _split_ties(g, x, y, x < y)


def _split_ties(g, x, y, x_wins):
    half = g * 0.5
    tie = x == y
    gx = where(x_wins, g, where(tie, half, 0.0))
    gy = where(x_wins, 0.0, where(tie, half, g))
    return gx, gy


@op(method=False)
def where(xp, cond, x, y):
    """where(c, x, y): the gradient goes to x where c holds, to y elsewhere"""
    return xp.where(cond, x, y)


@where.rule
def _(g, cond, x, y, needs):
    gx = where(cond, g, 0.0) if needs[1] else None
    gy = where(cond, 0.0, g) if needs[2] else None
    return None, gx, gy


@op()
def cast(xp, x, *, dtype):
    """A dtype conversion; the gradient is converted back (none for integer/bool inputs)"""
    return x.astype(dtype)


@cast.rule
def _(g, x, dtype):
    return cast(g, dtype=x.dtype) if x.dtype.kind == "f" else None
