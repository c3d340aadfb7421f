"""Properties over random shapes (Hypothesis): broadcasting and reductions.

* Every elementwise binary op, on any pair of broadcast-compatible shapes, gives each
  operand a gradient of the operand's own shape, equal to the output's gradient summed over
  the broadcast axes (checked on both engine paths).
* Reductions over any set of dims, with and without keepdim, agree with NumPy.
"""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

import flowgrad as fg

SETTINGS = settings(max_examples=40, deadline=None)

# name -> (flowgrad op, d out/d x, d out/d y) as NumPy functions of the broadcast x, y
BINARY = {
    "add": (fg.add, lambda x, y: np.ones_like(x * y), lambda x, y: np.ones_like(x * y)),
    "sub": (fg.sub, lambda x, y: np.ones_like(x * y), lambda x, y: -np.ones_like(x * y)),
    "mul": (fg.mul, lambda x, y: y + 0 * x, lambda x, y: x + 0 * y),
    "div": (fg.div, lambda x, y: 1 / y + 0 * x, lambda x, y: -x / y**2),
    "pow": (fg.pow, lambda x, y: y * x ** (y - 1), lambda x, y: x**y * np.log(x)),
    "maximum": (fg.maximum, lambda x, y: (x > y) + 0.0 * y, lambda x, y: (y > x) + 0.0 * x),
    "minimum": (fg.minimum, lambda x, y: (x < y) + 0.0 * y, lambda x, y: (y < x) + 0.0 * x),
}


def _sum_to(g: np.ndarray, shape: tuple) -> np.ndarray:
    lead = g.ndim - len(shape)
    g = g.sum(axis=tuple(range(lead))) if lead else g
    axes = tuple(i for i, n in enumerate(shape) if n == 1 and g.shape[i] != 1)
    return g.sum(axis=axes, keepdims=True) if axes else g


@SETTINGS
@given(shapes=hnp.mutually_broadcastable_shapes(num_shapes=2, min_dims=0, max_dims=3,
                                                 max_side=3),
       name=st.sampled_from(sorted(BINARY)),
       seed=st.integers(0, 2**16),
       record=st.booleans())
def test_binary_op_gradients_have_the_operands_shapes(shapes, name, seed, record):
    rng = np.random.default_rng(seed)
    (sx, sy) = shapes.input_shapes
    # Positive and apart, so pow/log/div are defined and max/min have no ties.
    x_np = rng.uniform(0.5, 2.0, sx)
    y_np = rng.uniform(0.5, 2.0, sy) + 2.5 * (name in ("maximum", "minimum"))
    op, dx, dy = BINARY[name]
    x = fg.tensor(x_np, requires_grad=True)
    y = fg.tensor(y_np, requires_grad=True)
    out = op(x, y)
    assert out.shape == np.broadcast_shapes(sx, sy)
    gx, gy = fg.engine.grad(out.sum(), [x, y], create_graph=record)
    assert gx.shape == sx and gy.shape == sy
    np.testing.assert_allclose(gx.numpy(), _sum_to(dx(x_np, y_np), sx), rtol=1e-10)
    np.testing.assert_allclose(gy.numpy(), _sum_to(dy(x_np, y_np), sy), rtol=1e-10)


REDUCTIONS = {
    "sum": (fg.sum, np.sum),
    "mean": (fg.mean, np.mean),
    "amax": (fg.amax, np.amax),
    "amin": (fg.amin, np.amin),
    "prod": (fg.prod, np.prod),
    "logsumexp": (fg.logsumexp,
                  lambda a, axis, keepdims: np.log(np.sum(np.exp(a), axis=axis,
                                                          keepdims=keepdims))),
}


@st.composite
def _array_and_dims(draw):
    shape = draw(hnp.array_shapes(min_dims=1, max_dims=4, max_side=4))
    ndim = len(shape)
    dims = draw(st.lists(st.integers(-ndim, ndim - 1), min_size=1, max_size=ndim,
                         unique_by=lambda d: d % ndim))
    data = draw(hnp.arrays(np.float64, shape, elements=st.floats(-2, 2, allow_nan=False)))
    return data, (dims[0] if len(dims) == 1 and draw(st.booleans()) else tuple(dims))


@SETTINGS
@given(case=_array_and_dims(), name=st.sampled_from(sorted(REDUCTIONS)),
       keepdim=st.booleans())
def test_reductions_over_any_dims_agree_with_numpy(case, name, keepdim):
    data, dim = case
    ours, theirs = REDUCTIONS[name]
    out = ours(fg.tensor(data), dim=dim, keepdim=keepdim)
    axis = tuple(d % data.ndim for d in ((dim,) if isinstance(dim, int) else dim))
    expected = theirs(data, axis=axis, keepdims=keepdim)
    assert out.shape == np.shape(expected)
    np.testing.assert_allclose(out.numpy(), expected, rtol=1e-12, atol=1e-12)


@SETTINGS
@given(case=_array_and_dims(), keepdim=st.booleans())
def test_sum_gradient_broadcasts_back_over_any_dims(case, keepdim):
    data, dim = case
    x = fg.tensor(data, requires_grad=True)
    out = fg.sum(x * x, dim=dim, keepdim=keepdim)
    out.backward(fg.ones(out.shape, dtype=fg.float64))
    np.testing.assert_allclose(x.grad.numpy(), 2 * data, rtol=1e-12)


@pytest.mark.parametrize("name", sorted(BINARY))
def test_every_binary_op_in_the_property_is_registered(name):
    assert BINARY[name][0].name == name
