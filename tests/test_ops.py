"""Every op in the table: forward against NumPy, gradients at orders 1 and 2, and jvp.

Small inputs get full central-difference checks (``fg.gradcheck``); large ones (more than
``LARGE`` input elements) get the random-direction tests instead: the directional derivative
along a random ``v`` against a finite difference, and ``<vjp(u), v> == <u, jvp(v)>``.
"""

from __future__ import annotations

import zlib

import numpy as np
import pytest
from op_table import NON_DIFFERENTIABLE, OP_TABLE, OpSpec, sample_inputs

import flowgrad as fg
from flowgrad.graph import walk
from flowgrad.ops.registry import OPS

# Also run on array-api-strict's simulated device: python -m pytest --backend strict
pytestmark = pytest.mark.portable

LARGE = 200
EPS = 1e-6
# Tighter than gradcheck's defaults: in float64 with eps=1e-6 central differences are good
# to about 1e-9, and the defaults (rtol=1e-3) would let a 0.01% error in a rule through.
GC_ATOL, GC_RTOL = 1e-7, 1e-6

SPECS = [pytest.param(s, id=s.id) for s in OP_TABLE]
SPECS_ORDER2 = [pytest.param(s, id=s.id) for s in OP_TABLE if s.order >= 2]


def _rng(spec: OpSpec) -> np.random.Generator:
    # Seeded per row so a failure reproduces on its own.
    return np.random.default_rng(zlib.crc32(spec.id.encode()))


def _tensors(arrays, requires_grad=True, dtype=np.float64):
    return [fg.tensor(a.astype(dtype), requires_grad=requires_grad) for a in arrays]


def _out_shape(spec: OpSpec, arrays) -> tuple[int, ...]:
    return np.shape(spec.reference(*arrays))


def _scalarised(spec: OpSpec, weight: np.ndarray):
    """``<w, fn(x)>`` with a fixed random ``w``: a scalar whose gradient is the vjp at ``w``."""
    w = fg.tensor(weight)

    def f(*xs):
        return (spec.fn(*xs) * w).sum()

    return f


def _second_order(spec: OpSpec, arrays, rng):
    """A scalar function of the inputs built from ``fg.grad`` of the scalarised op."""
    n = len(arrays)
    f = _scalarised(spec, rng.standard_normal(_out_shape(spec, arrays)))
    df = fg.grad(f, argnums=tuple(range(n)))
    w2 = [fg.tensor(rng.standard_normal(a.shape)) for a in arrays]

    def h(*xs):
        grads = df(*xs)
        total = (xs[0] * 0.0).sum()
        # The zero term keeps h attached to the inputs for ops whose first derivative is
        # constant (linear ops, relu, step), so the outer differentiation still has a graph.
        for g, w in zip(grads, w2):
            total = total + (g * w).sum()
        return total

    return h


def _directional_check(f, arrays, rng, rtol=1e-5, atol=1e-7):
    """Gradient of scalar ``f`` dotted with a random direction against a central difference."""
    n = len(arrays)
    vs = [rng.standard_normal(a.shape) for a in arrays]
    grads = fg.grad(f, argnums=tuple(range(n)))(*_tensors(arrays))
    analytic = sum(float(np.sum(g.numpy() * v)) for g, v in zip(grads, vs))
    plus = f(*_tensors([a + EPS * v for a, v in zip(arrays, vs)], requires_grad=False))
    minus = f(*_tensors([a - EPS * v for a, v in zip(arrays, vs)], requires_grad=False))
    numeric = (plus.item() - minus.item()) / (2 * EPS)
    np.testing.assert_allclose(analytic, numeric, rtol=rtol, atol=atol)


# ---------------------------------------------------------------- forward


@pytest.mark.parametrize("spec", SPECS)
def test_forward_matches_numpy_float64(spec: OpSpec):
    arrays = sample_inputs(spec, _rng(spec))
    out = spec.fn(*_tensors(arrays, requires_grad=False))
    ref = spec.reference(*arrays)
    assert isinstance(out, fg.Tensor)
    assert out.shape == np.shape(ref)
    assert out.dtype == np.float64
    np.testing.assert_allclose(out.numpy(), ref, rtol=1e-9, atol=1e-12)


@pytest.mark.parametrize("spec", SPECS)
def test_forward_matches_numpy_float32(spec: OpSpec):
    arrays = [a.astype(np.float32) for a in sample_inputs(spec, _rng(spec))]
    out = spec.fn(*_tensors(arrays, requires_grad=False, dtype=np.float32))
    ref = np.asarray(spec.reference(*arrays))
    assert out.shape == ref.shape
    assert out.dtype == ref.dtype, f"{out.dtype} from float32 inputs, NumPy gives {ref.dtype}"
    np.testing.assert_allclose(out.numpy(), ref, rtol=2e-5, atol=1e-6)


@pytest.mark.parametrize("spec", SPECS)
def test_records_the_named_op(spec: OpSpec):
    arrays = sample_inputs(spec, _rng(spec))
    xs = _tensors(arrays)
    out = spec.fn(*xs)
    assert out.requires_grad and out.grad_fn is not None and not out.is_leaf
    names = [node.name for node in walk(out)]
    assert spec.name in names, f"{spec.id} recorded {names}"
    np.testing.assert_allclose(out.grad_fn.output().numpy(), out.numpy())


# ---------------------------------------------------------------- gradients


@pytest.mark.parametrize("spec", SPECS)
def test_gradcheck_order1(spec: OpSpec):
    rng = _rng(spec)
    arrays = sample_inputs(spec, rng)
    f = _scalarised(spec, rng.standard_normal(_out_shape(spec, arrays)))
    if spec.size > LARGE:
        _directional_check(f, arrays, rng)
    else:
        assert fg.gradcheck(f, tuple(_tensors(arrays)), atol=GC_ATOL, rtol=GC_RTOL) is True


@pytest.mark.parametrize("spec", SPECS_ORDER2)
def test_gradcheck_order2(spec: OpSpec):
    rng = _rng(spec)
    arrays = sample_inputs(spec, rng)
    h = _second_order(spec, arrays, rng)
    if spec.size > LARGE:
        _directional_check(h, arrays, rng)
    else:
        assert fg.gradcheck(h, tuple(_tensors(arrays)), atol=GC_ATOL, rtol=GC_RTOL) is True


@pytest.mark.parametrize("spec", SPECS)
def test_backward_fills_grads_of_operand_shape(spec: OpSpec):
    rng = _rng(spec)
    arrays = sample_inputs(spec, rng)
    xs = _tensors(arrays)
    weight = rng.standard_normal(_out_shape(spec, arrays))
    (spec.fn(*xs) * fg.tensor(weight)).sum().backward()
    expected = fg.grad(_scalarised(spec, weight), argnums=tuple(range(len(xs))))(
        *_tensors(arrays)
    )
    for x, e in zip(xs, expected):
        assert x.grad is not None
        assert x.grad.shape == x.shape and x.grad.dtype == x.dtype
        np.testing.assert_allclose(x.grad.numpy(), e.numpy(), rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("spec", SPECS)
def test_jvp_matches_finite_difference(spec: OpSpec):
    rng = _rng(spec)
    arrays = sample_inputs(spec, rng)
    vs = [rng.standard_normal(a.shape) for a in arrays]
    out, tangent = fg.jvp(spec.fn, tuple(_tensors(arrays)), tuple(_tensors(vs, False)))
    np.testing.assert_allclose(out.numpy(), spec.reference(*arrays), rtol=1e-9, atol=1e-12)
    plus = spec.fn(*_tensors([a + EPS * v for a, v in zip(arrays, vs)], False)).numpy()
    minus = spec.fn(*_tensors([a - EPS * v for a, v in zip(arrays, vs)], False)).numpy()
    assert tangent.shape == out.shape
    np.testing.assert_allclose(tangent.numpy(), (plus - minus) / (2 * EPS), rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("spec", [p for p in SPECS if p.values[0].size > LARGE])
def test_vjp_jvp_inner_product(spec: OpSpec):
    rng = _rng(spec)
    arrays = sample_inputs(spec, rng)
    vs = [rng.standard_normal(a.shape) for a in arrays]
    u = rng.standard_normal(_out_shape(spec, arrays))
    _, vjp_fn = fg.vjp(spec.fn, *_tensors(arrays))
    cotangents = vjp_fn(fg.tensor(u))
    _, tangent = fg.jvp(spec.fn, tuple(_tensors(arrays)), tuple(_tensors(vs, False)))
    lhs = sum(float(np.sum(c.numpy() * v)) for c, v in zip(cotangents, vs))
    rhs = float(np.sum(u * tangent.numpy()))
    np.testing.assert_allclose(lhs, rhs, rtol=1e-10, atol=1e-10)


# ---------------------------------------------------------------- the table itself


def test_table_covers_every_differentiable_op():
    differentiable = {name for name, op in OPS.items() if op.differentiable}
    covered = {spec.name for spec in OP_TABLE}
    assert differentiable - covered == set(), "ops missing from tests/op_table.py"
    assert covered - set(OPS) == set(), "table rows naming unregistered ops"
    assert covered <= differentiable


def test_table_ids_are_unique_and_large_rows_exist():
    ids = [s.id for s in OP_TABLE]
    assert len(ids) == len(set(ids))
    assert any(s.size > LARGE for s in OP_TABLE)


def test_non_differentiable_ops_are_registered_as_such():
    for name in NON_DIFFERENTIABLE:
        assert name in OPS, name
        assert not OPS[name].differentiable, name


_COMPARISONS = {
    "lt": (lambda a, b: a < b, np.less),
    "le": (lambda a, b: a <= b, np.less_equal),
    "gt": (lambda a, b: a > b, np.greater),
    "ge": (lambda a, b: a >= b, np.greater_equal),
    "eq": (lambda a, b: a == b, np.equal),
    "ne": (lambda a, b: a != b, np.not_equal),
}


@pytest.mark.parametrize("name", sorted(_COMPARISONS))
def test_comparisons_give_bool_without_grad(name):
    a_np = np.array([[-1.0, 0.0, 2.0], [3.0, 0.5, -0.5]])
    b_np = np.array([0.0, 0.0, 2.0])
    a = fg.tensor(a_np, requires_grad=True)
    b = fg.tensor(b_np, requires_grad=True)
    op, ref = _COMPARISONS[name]
    for out, expected in (
        (op(a, b), ref(a_np, b_np)),
        (op(a, 0.5), ref(a_np, 0.5)),
        (getattr(fg, name)(a, b), ref(a_np, b_np)),
    ):
        assert isinstance(out, fg.Tensor)
        assert out.dtype == np.bool_
        assert out.requires_grad is False and out.grad_fn is None
        np.testing.assert_array_equal(out.numpy(), expected)


def test_sign_gives_sign_without_grad():
    x_np = np.array([-2.5, 0.0, 3.0], dtype=np.float32)
    x = fg.tensor(x_np, requires_grad=True)
    for out in (fg.sign(x), x.sign()):
        assert out.requires_grad is False and out.grad_fn is None
        assert out.dtype == np.float32
        np.testing.assert_array_equal(out.numpy(), [-1.0, 0.0, 1.0])


def test_cast_float32_to_float64_gradient_comes_back_float32():
    x = fg.tensor([1.0, -2.0, 3.0], requires_grad=True)
    y = x.astype(fg.float64)
    assert y.dtype == np.float64 and y.grad_fn is not None and y.grad_fn.name == "cast"
    (y * fg.tensor(np.array([1.0, 2.0, 3.0]))).sum().backward()
    assert x.grad.dtype == np.float32
    np.testing.assert_array_equal(x.grad.numpy(), [1.0, 2.0, 3.0])
