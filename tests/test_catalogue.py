"""Hand-derived derivatives at chosen points: the conventions and the chain rule, pinned."""

from __future__ import annotations

import math

import numpy as np
import pytest

import flowgrad as fg


def _leaf(value, dtype=fg.float64):
    return fg.tensor(np.asarray(value, dtype=dtype), requires_grad=True)


def _grad_of(f, value):
    """``d f(x) / dx`` at ``value`` via ``backward`` (f's output is summed)."""
    x = _leaf(value)
    f(x).sum().backward()
    return x.grad.numpy()


# ---------------------------------------------------------------- first derivatives


def test_linear_model():
    w, b, x = _leaf(1.5), _leaf(-0.5), 2.0
    y = w * x + b
    assert y.item() == pytest.approx(2.5)
    y.backward()
    assert w.grad.item() == pytest.approx(2.0)  # dW = x
    assert b.grad.item() == pytest.approx(1.0)  # db = 1


def test_quadratic_loss():
    w, b, x, y = _leaf(1.5), _leaf(0.5), _leaf(2.0), 1.0
    loss = (w * x + b - y) ** 2
    assert loss.item() == pytest.approx(6.25)  # residual r = 2.5
    loss.backward()
    assert w.grad.item() == pytest.approx(10.0)  # 2 r x
    assert b.grad.item() == pytest.approx(5.0)  # 2 r
    assert x.grad.item() == pytest.approx(7.5)  # 2 r w


def test_exp_log_identity():
    assert _grad_of(fg.exp, 0.7) == pytest.approx(math.exp(0.7))
    np.testing.assert_allclose(_grad_of(fg.log, [0.5, 2.0, 4.0]), [2.0, 0.5, 0.25])
    np.testing.assert_allclose(_grad_of(lambda x: x, [3.0, -1.0]), [1.0, 1.0])
    assert fg.grad(lambda x: x)(fg.tensor(3.0, dtype=fg.float64)).item() == 1.0


def test_unit_step_has_zero_derivative_everywhere():
    x = _leaf([-1.0, 0.0, 1e-8, 2.0])
    y = fg.step(x)
    np.testing.assert_array_equal(y.numpy(), [0.0, 0.0, 1.0, 1.0])
    y.sum().backward()
    np.testing.assert_array_equal(x.grad.numpy(), [0.0, 0.0, 0.0, 0.0])


def test_sigmoid_tanh_at_zero():
    assert _grad_of(fg.sigmoid, 0.0) == pytest.approx(0.25)
    assert _grad_of(fg.tanh, 0.0) == pytest.approx(1.0)
    s = 1 / (1 + math.exp(-1.3))
    assert _grad_of(fg.sigmoid, 1.3) == pytest.approx(s * (1 - s))
    assert _grad_of(fg.tanh, -0.4) == pytest.approx(1 - math.tanh(-0.4) ** 2)


def test_relu_derivative_is_zero_at_zero():
    np.testing.assert_array_equal(_grad_of(fg.relu, [-1.0, 0.0, 2.0]), [0.0, 0.0, 1.0])
    np.testing.assert_array_equal(_grad_of(lambda x: x.relu(), [0.0]), [0.0])


def test_leaky_relu_slopes():
    np.testing.assert_allclose(
        _grad_of(lambda x: fg.leaky_relu(x, negative_slope=0.1), [-1.0, 0.0, 2.0]),
        [0.1, 0.1, 1.0],
    )


def test_abs_derivative_is_zero_at_zero():
    np.testing.assert_array_equal(_grad_of(fg.abs, [-2.0, 0.0, 3.0]), [-1.0, 0.0, 1.0])


def test_clamp_passes_gradient_on_the_closed_interval():
    x = [-2.0, -1.0, 0.0, 1.0, 2.0]
    np.testing.assert_array_equal(
        _grad_of(lambda t: fg.clamp(t, min=-1.0, max=1.0), x), [0, 1, 1, 1, 0]
    )
    np.testing.assert_array_equal(_grad_of(lambda t: fg.clamp(t, min=-1.0), x), [0, 1, 1, 1, 1])
    np.testing.assert_array_equal(_grad_of(lambda t: fg.clamp(t, max=1.0), x), [1, 1, 1, 1, 0])


def test_amax_amin_split_evenly_among_ties():
    np.testing.assert_allclose(_grad_of(fg.amax, [1.0, 3.0, 3.0, 2.0]), [0, 0.5, 0.5, 0])
    np.testing.assert_allclose(_grad_of(fg.amin, [1.0, 3.0, 1.0, 1.0]), [1 / 3, 0, 1 / 3, 1 / 3])
    np.testing.assert_allclose(
        _grad_of(lambda x: fg.amax(x, dim=1), [[1.0, 1.0, 0.0], [2.0, 5.0, 5.0], [7.0, 0.0, 1.0]]),
        [[0.5, 0.5, 0], [0, 0.5, 0.5], [1, 0, 0]],
    )
    np.testing.assert_allclose(
        _grad_of(lambda x: fg.amin(x, dim=0, keepdim=True), [[1.0, 4.0], [1.0, 2.0]]),
        [[0.5, 0], [0.5, 1]],
    )
    np.testing.assert_allclose(_grad_of(fg.amax, np.full((2, 2), 4.0)), np.full((2, 2), 0.25))


def test_maximum_minimum_split_ties_half_half():
    for op in (fg.maximum, fg.minimum):
        a, b = _leaf([1.0, 2.0, 3.0]), _leaf([1.0, 0.0, 5.0])
        op(a, b).sum().backward()
        if op is fg.maximum:
            np.testing.assert_array_equal(a.grad.numpy(), [0.5, 1.0, 0.0])
            np.testing.assert_array_equal(b.grad.numpy(), [0.5, 0.0, 1.0])
        else:
            np.testing.assert_array_equal(a.grad.numpy(), [0.5, 0.0, 1.0])
            np.testing.assert_array_equal(b.grad.numpy(), [0.5, 1.0, 0.0])
        # the same tensor on both sides gets both halves
        a = _leaf([1.0, -2.0])
        op(a, a).sum().backward()
        np.testing.assert_array_equal(a.grad.numpy(), [1.0, 1.0])


def test_where_routes_gradient():
    a, b = _leaf([1.0, 2.0, 3.0]), _leaf([10.0, 20.0, 30.0])
    cond = fg.tensor([True, False, True])
    out = fg.where(cond, a, b)
    np.testing.assert_array_equal(out.numpy(), [1.0, 20.0, 3.0])
    (out * fg.tensor(np.array([1.0, 2.0, 3.0]))).sum().backward()
    np.testing.assert_array_equal(a.grad.numpy(), [1.0, 0.0, 3.0])
    np.testing.assert_array_equal(b.grad.numpy(), [0.0, 2.0, 0.0])


# ---------------------------------------------------------------- chain rule through a network


def _softmax(z):
    e = np.exp(z - z.max(axis=1, keepdims=True))
    return e / e.sum(axis=1, keepdims=True)


@pytest.mark.parametrize("reduction", ["mean", "sum"])
def test_two_layer_network_softmax_cross_entropy(reduction):
    rng = np.random.default_rng(0)
    n, d, h, c = 5, 3, 6, 4
    x = rng.standard_normal((n, d))
    y = np.array([0, 3, 1, 3, 2])
    w1, b1 = rng.standard_normal((h, d)), rng.standard_normal(h)
    w2, b2 = rng.standard_normal((c, h)), rng.standard_normal(c)
    params = [_leaf(p) for p in (w1, b1, w2, b2)]
    W1, B1, W2, B2 = params

    pre = fg.linear(fg.tensor(x), W1, B1)
    z = fg.linear(pre.relu(), W2, B2)
    loss = fg.cross_entropy(z, fg.tensor(y), reduction=reduction)
    loss.backward()

    # the same by hand
    pre_np = x @ w1.T + b1
    hid = np.maximum(pre_np, 0)
    z_np = hid @ w2.T + b2
    p = _softmax(z_np)
    scale = n if reduction == "mean" else 1
    ref_loss = -np.log(p[np.arange(n), y]).sum() / scale
    assert loss.item() == pytest.approx(ref_loss, rel=1e-12)
    dz = (p - np.eye(c)[y]) / scale  # softmax(z) - onehot(y)
    dhid = dz @ w2
    dpre = dhid * (pre_np > 0)
    expected = [dpre.T @ x, dpre.sum(0), dz.T @ hid, dz.sum(0)]
    for param, e in zip(params, expected):
        np.testing.assert_allclose(param.grad.numpy(), e, rtol=1e-10, atol=1e-12)

    # the logits' gradient on its own, fused and composed from softmax/log
    z_leaf = _leaf(z_np)
    fused = fg.grad(lambda t: fg.cross_entropy(t, fg.tensor(y), reduction=reduction))(z_leaf)
    np.testing.assert_allclose(fused.numpy(), dz, rtol=1e-10, atol=1e-12)
    onehot = fg.tensor(np.eye(c)[y])

    def composed(t):
        nll = -(fg.log(fg.softmax(t, dim=1)) * onehot).sum()
        return nll / scale

    np.testing.assert_allclose(fg.grad(composed)(z_leaf).numpy(), dz, rtol=1e-10, atol=1e-12)


def test_cross_entropy_is_stable_for_large_logits():
    z = _leaf([[1000.0, 0.0, -1000.0], [0.0, 800.0, 0.0]])
    loss = fg.cross_entropy(z, fg.tensor([2, 1]))
    assert loss.item() == pytest.approx(1000.0, rel=1e-12)  # (2000 + 0) / 2
    loss.backward()
    np.testing.assert_allclose(z.grad.numpy(), [[0.5, 0, -0.5], [0, 0, 0]], atol=1e-12)
    bce = fg.binary_cross_entropy_with_logits(_leaf([500.0, -500.0]), fg.tensor([0.0, 0.0]))
    assert bce.item() == pytest.approx(250.0)


# ---------------------------------------------------------------- broadcasting and indexing


def test_broadcast_gradients_are_reduced_to_operand_shapes():
    a, b = _leaf(np.ones((3, 1))), _leaf(np.ones((1, 4)))
    (a + b).sum().backward()
    assert a.grad.shape == (3, 1) and b.grad.shape == (1, 4)
    np.testing.assert_array_equal(a.grad.numpy(), np.full((3, 1), 4.0))
    np.testing.assert_array_equal(b.grad.numpy(), np.full((1, 4), 3.0))

    m = np.arange(6.0).reshape(2, 3)
    a, v = _leaf(m), _leaf([1.0, 2.0, 3.0])
    (a * v).sum().backward()
    np.testing.assert_array_equal(v.grad.numpy(), m.sum(0))
    np.testing.assert_array_equal(a.grad.numpy(), np.tile([1.0, 2.0, 3.0], (2, 1)))

    s, a = _leaf(2.0), _leaf(m)
    (s * a).sum().backward()
    assert s.grad.shape == ()
    assert s.grad.item() == pytest.approx(15.0)


def test_integer_index_gradient_accumulates_on_repeats():
    x = _leaf([10.0, 20.0, 30.0, 40.0])
    y = x[[0, 2, 0, 0]]
    np.testing.assert_array_equal(y.numpy(), [10.0, 30.0, 10.0, 10.0])
    (y * fg.tensor(np.array([1.0, 2.0, 3.0, 4.0]))).sum().backward()
    np.testing.assert_array_equal(x.grad.numpy(), [8.0, 0.0, 2.0, 0.0])

    m = _leaf(np.arange(6.0).reshape(3, 2))
    m[fg.tensor([2, 2, 1])].sum().backward()
    np.testing.assert_array_equal(m.grad.numpy(), [[0, 0], [1, 1], [2, 2]])


def test_boolean_mask_gradient():
    x = _leaf([-1.0, 2.0, -3.0, 4.0])
    y = x[x > 0]
    np.testing.assert_array_equal(y.numpy(), [2.0, 4.0])
    (y * y).sum().backward()
    np.testing.assert_array_equal(x.grad.numpy(), [0.0, 4.0, 0.0, 8.0])


# ---------------------------------------------------------------- second derivatives


def _second(f, value):
    return fg.grad(fg.grad(f))(fg.tensor(value, dtype=fg.float64)).item()


def test_second_derivative_of_cube():
    assert _second(lambda x: x**3, 2.0) == pytest.approx(12.0)
    assert _second(lambda x: x * x * x, -1.5) == pytest.approx(-9.0)


def test_second_derivative_of_sin_exp_log():
    assert _second(fg.sin, 0.7) == pytest.approx(-math.sin(0.7))
    assert _second(fg.cos, 0.7) == pytest.approx(-math.cos(0.7))
    assert _second(fg.exp, 0.3) == pytest.approx(math.exp(0.3))
    assert _second(fg.log, 2.0) == pytest.approx(-0.25)


def test_second_derivative_of_sigmoid_and_tanh():
    s = 1 / (1 + math.exp(-0.3))
    assert _second(fg.sigmoid, 0.3) == pytest.approx(s * (1 - s) * (1 - 2 * s))
    t = math.tanh(0.8)
    assert _second(fg.tanh, 0.8) == pytest.approx(-2 * t * (1 - t * t))


def test_hessian_of_quadratic_form():
    rng = np.random.default_rng(3)
    a = rng.standard_normal((3, 3))  # not symmetric
    A = fg.tensor(a)
    x = fg.tensor(rng.standard_normal(3))
    hess = fg.hessian(lambda v: v @ (A @ v))(x)
    assert hess.shape == (3, 3)
    np.testing.assert_allclose(hess.numpy(), a + a.T, rtol=1e-12, atol=1e-12)
