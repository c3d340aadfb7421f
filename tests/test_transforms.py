"""Function transforms: grad, value_and_grad, vjp, jvp, jacobian, hessian, gradcheck."""

from __future__ import annotations

import re

import numpy as np
import pytest

import flowgrad as fg

# Also run on array-api-strict's simulated device: python -m pytest --backend strict
pytestmark = pytest.mark.portable


def _t(values):
    return fg.tensor(np.asarray(values, dtype=np.float64))


def _fd_jacobian(f, x: np.ndarray, eps=1e-6) -> np.ndarray:
    """Central-difference Jacobian, shaped out.shape + x.shape."""
    out_shape = np.shape(f(_t(x)).numpy())
    jac = np.zeros(out_shape + x.shape)
    for i in np.ndindex(x.shape):
        step = np.zeros_like(x)
        step[i] = eps
        diff = (f(_t(x + step)).numpy() - f(_t(x - step)).numpy()) / (2 * eps)
        jac[(...,) + i] = diff
    return jac


def f_xy(x, y):
    return (x * y).sum() + (x**2).sum()


X = np.array([1.0, -2.0, 0.5])
Y = np.array([3.0, 0.25, -1.0])


# ---------------------------------------------------------------- grad and value_and_grad


def test_grad_argnums_int():
    gx = fg.grad(f_xy)(_t(X), _t(Y))
    assert isinstance(gx, fg.Tensor)
    np.testing.assert_allclose(gx.numpy(), Y + 2 * X)
    gy = fg.grad(f_xy, argnums=1)(_t(X), _t(Y))
    np.testing.assert_allclose(gy.numpy(), X)


def test_grad_argnums_tuple():
    grads = fg.grad(f_xy, argnums=(0, 1))(_t(X), _t(Y))
    assert isinstance(grads, tuple) and len(grads) == 2
    np.testing.assert_allclose(grads[0].numpy(), Y + 2 * X)
    np.testing.assert_allclose(grads[1].numpy(), X)
    (gy,) = fg.grad(f_xy, argnums=(1,))(_t(X), _t(Y))
    np.testing.assert_allclose(gy.numpy(), X)


def test_grad_leaves_inputs_untouched():
    x = fg.tensor(X, requires_grad=True)
    fg.grad(f_xy)(x, _t(Y))
    assert x.grad is None


def test_value_and_grad():
    value, gx = fg.value_and_grad(f_xy)(_t(X), _t(Y))
    assert value.item() == pytest.approx(float(X @ Y + X @ X))
    np.testing.assert_allclose(gx.numpy(), Y + 2 * X)
    value, (gx, gy) = fg.value_and_grad(f_xy, argnums=(0, 1))(_t(X), _t(Y))
    assert value.item() == pytest.approx(float(X @ Y + X @ X))
    np.testing.assert_allclose(gy.numpy(), X)


def test_grad_of_non_scalar_raises():
    with pytest.raises((RuntimeError, ValueError)):
        fg.grad(lambda x: x * 2.0)(_t(X))


def test_inputs_may_be_numpy_arrays_and_python_floats():
    g = fg.grad(lambda x: (x**3).sum())(np.array([1.0, 2.0]))
    assert isinstance(g, fg.Tensor)
    np.testing.assert_allclose(g.numpy(), [3.0, 12.0])
    assert fg.grad(lambda x: x * x)(3.0).item() == pytest.approx(6.0)
    value, g = fg.value_and_grad(lambda x, y: x * y, argnums=(0, 1))(2.0, np.float64(5.0))
    assert value.item() == pytest.approx(10.0)
    assert g[0].item() == pytest.approx(5.0) and g[1].item() == pytest.approx(2.0)
    _, tangent = fg.jvp(lambda x: x * x, (3.0,), (1.0,))
    assert tangent.item() == pytest.approx(6.0)
    out, vjp_fn = fg.vjp(lambda x: x.exp(), np.array([0.0, 1.0]))
    np.testing.assert_allclose(vjp_fn(np.ones(2))[0].numpy(), np.exp([0.0, 1.0]), rtol=1e-6)


# ---------------------------------------------------------------- vjp and jvp


def test_vjp_fn_can_be_called_twice():
    out, vjp_fn = fg.vjp(lambda x, y: x * y + x, _t(X), _t(Y))
    np.testing.assert_allclose(out.numpy(), X * Y + X)
    u1, u2 = np.array([1.0, 0.0, 2.0]), np.array([-1.0, 3.0, 0.5])
    gx1, gy1 = vjp_fn(_t(u1))
    gx2, gy2 = vjp_fn(_t(u2))
    np.testing.assert_allclose(gx1.numpy(), u1 * (Y + 1))
    np.testing.assert_allclose(gy1.numpy(), u1 * X)
    np.testing.assert_allclose(gx2.numpy(), u2 * (Y + 1))  # no leftovers from the first call
    np.testing.assert_allclose(gy2.numpy(), u2 * X)
    assert isinstance(vjp_fn(_t(u1)), tuple)


def _scalar_f(x):
    return (x.sin() * x).sum() + (x**2).sum() * 0.5


def test_jvp_of_scalar_is_grad_dot_v():
    rng = np.random.default_rng(1)
    x = rng.standard_normal(4)
    v = rng.standard_normal(4)
    out, tangent = fg.jvp(_scalar_f, (_t(x),), (_t(v),))
    g = fg.grad(_scalar_f)(_t(x)).numpy()
    assert out.item() == pytest.approx(float(np.sum(np.sin(x) * x + x**2 / 2)))
    assert tangent.shape == ()
    assert tangent.item() == pytest.approx(float(g @ v), rel=1e-10)
    expected = np.sin(x) + x * np.cos(x) + x
    np.testing.assert_allclose(g, expected, rtol=1e-12)


def test_gradient_direction_maximises_the_directional_derivative():
    rng = np.random.default_rng(2)
    x = _t(rng.standard_normal(4))
    g = fg.grad(_scalar_f)(x).numpy()
    along_g = fg.jvp(_scalar_f, (x,), (_t(g / np.linalg.norm(g)),))[1].item()
    assert along_g == pytest.approx(np.linalg.norm(g), rel=1e-10)
    directions = rng.standard_normal((50, 4))
    for d in directions / np.linalg.norm(directions, axis=1, keepdims=True):
        assert fg.jvp(_scalar_f, (x,), (_t(d),))[1].item() < along_g


def test_jvp_of_a_vector_function_with_two_inputs():
    def f(x, y):
        return fg.stack([x * y, x.exp() + y])

    out, tangent = fg.jvp(f, (_t(X), _t(Y)), (_t([1.0, 0.0, 0.0]), _t([0.0, 1.0, 2.0])))
    assert out.shape == tangent.shape == (2, 3)
    expected = np.stack(
        [np.array([1.0, 0.0, 0.0]) * Y + X * np.array([0.0, 1.0, 2.0]),
         np.exp(X) * np.array([1.0, 0.0, 0.0]) + np.array([0.0, 1.0, 2.0])]
    )
    np.testing.assert_allclose(tangent.numpy(), expected, rtol=1e-10, atol=1e-12)


# ---------------------------------------------------------------- jacobian and hessian


def test_jacobian_vector_to_vector():
    a = np.array([[1.0, 2.0, -1.0], [0.5, 0.0, 3.0]])

    def f(x):
        return _t(a) @ x.tanh()

    x = np.array([0.3, -0.7, 1.1])
    jac = fg.jacobian(f)(_t(x))
    assert jac.shape == (2, 3)
    np.testing.assert_allclose(jac.numpy(), a * (1 - np.tanh(x) ** 2), rtol=1e-12)
    np.testing.assert_allclose(jac.numpy(), _fd_jacobian(f, x), rtol=1e-6, atol=1e-8)


def test_jacobian_shape_is_out_shape_plus_in_shape():
    def f(m):
        return (m.exp() * m).sum(dim=0)

    m = np.random.default_rng(4).standard_normal((2, 3))
    jac = fg.jacobian(f)(_t(m))
    assert jac.shape == (3, 2, 3)
    np.testing.assert_allclose(jac.numpy(), _fd_jacobian(f, m), rtol=1e-6, atol=1e-8)


def test_jacobian_argnums():
    jac = fg.jacobian(lambda x, y: x * y, argnums=1)(_t(X), _t(Y))
    np.testing.assert_allclose(jac.numpy(), np.diag(X))


def test_hessian_shape_and_values():
    x = np.array([1.0, -2.0, 0.5])
    hess = fg.hessian(lambda v: (v**3).sum())(_t(x))
    assert hess.shape == (3, 3)
    np.testing.assert_allclose(hess.numpy(), np.diag(6 * x), atol=1e-12)

    m = np.array([[1.0, 2.0], [3.0, -1.0]])
    hess = fg.hessian(lambda v: (v[0] * v[1]).sum() + (v**2).sum())(_t(m))
    assert hess.shape == (2, 2, 2, 2)
    expected = 2 * np.eye(4).reshape(2, 2, 2, 2)
    expected[0, 0, 1, 0] = expected[1, 0, 0, 0] = 1.0
    expected[0, 1, 1, 1] = expected[1, 1, 0, 1] = 1.0
    np.testing.assert_allclose(hess.numpy(), expected, atol=1e-12)


def test_grad_of_grad_is_the_second_derivative():
    d2 = fg.grad(fg.grad(lambda x: x**4))
    assert d2(_t(1.5)).item() == pytest.approx(12 * 1.5**2)
    d3 = fg.grad(fg.grad(fg.grad(lambda x: x.sin() * x)))
    x = 0.4
    # (x sin x)''' = -3 sin x - x cos x
    assert d3(_t(x)).item() == pytest.approx(-3 * np.sin(x) - x * np.cos(x))


def test_grad_of_grad_with_two_arguments():
    # d/dy of d/dx (x^2 y^3) = 6 x y^2
    mixed = fg.grad(lambda x, y: fg.grad(lambda a, b: a**2 * b**3)(x, y), argnums=1)
    assert mixed(_t(2.0), _t(3.0)).item() == pytest.approx(6 * 2.0 * 9.0)


def test_grad_of_grad_through_a_closure():
    # the inner grad differentiates w.r.t. x only; y reaches it through the closure
    def outer(y):
        return fg.grad(lambda x: (x * y * y).sum())(_t([1.0, 2.0])).sum()

    # inner: d/dx sum(x y^2) = y^2, so outer = sum(y^2) and its gradient is 2y
    np.testing.assert_allclose(fg.grad(outer)(_t([3.0, -4.0])).numpy(), [6.0, -8.0])


def test_jacobian_of_grad_gives_mixed_partials():
    # d/dy of d/dx sum(x^2 y) = diag(2x)
    mixed = fg.jacobian(fg.grad(lambda x, y: (x * x * y).sum(), argnums=0), argnums=1)
    np.testing.assert_allclose(mixed(_t([1.0, 2.0]), _t([3.0, 4.0])).numpy(), np.diag([2.0, 4.0]))


def test_grad_of_jvp_and_of_vjp():
    v = _t([1.0, 1.0])
    x = _t([1.0, 2.0])
    # jvp of sum(x^3) along v is sum(3 x^2 v); its gradient is 6 x v
    g = fg.grad(lambda a: fg.jvp(lambda y: (y**3).sum(), (a,), (v,))[1])(x)
    np.testing.assert_allclose(g.numpy(), [6.0, 12.0])
    g = fg.grad(lambda a: fg.vjp(lambda y: (y**3).sum(), a)[1](_t(1.0))[0].sum())(x)
    np.testing.assert_allclose(g.numpy(), [6.0, 12.0])


# ---------------------------------------------------------------- gradcheck


def test_gradcheck_passes_for_correct_functions():
    rng = np.random.default_rng(5)
    x = fg.tensor(rng.standard_normal((2, 3)), requires_grad=True)
    y = fg.tensor(rng.standard_normal(3), requires_grad=True)
    assert fg.gradcheck(lambda a, b: (a * b).tanh().sum(), (x, y)) is True
    assert fg.gradcheck(lambda a: a.exp() @ a.T, (x,)) is True


def test_gradcheck_raises_naming_the_wrong_input():
    x = fg.tensor(np.array([1.0, 2.0]), requires_grad=True)
    y = fg.tensor(np.array([0.5, -1.5]), requires_grad=True)

    def wrong(a, b):
        # b.detach() hides one of the two factors from the engine: analytic d/db is b, true is 2b
        return (a * a).sum() + (b.detach() * b).sum()

    with pytest.raises(Exception) as info:
        fg.gradcheck(wrong, (x, y))
    message = str(info.value)
    # the input is named (index 1) and the largest mismatch, |b - 2b| = 1.5, is given
    assert re.search(r"input\W*1\b", message) and "input 0" not in message, message
    assert "1.5" in message, message
    assert fg.gradcheck(lambda a: (a * a).sum(), (x,)) is True
