"""``fg.viz`` gradient-descent runs: the arithmetic, checked without matplotlib."""

from __future__ import annotations

import math
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import flowgrad as fg
from flowgrad.optim import catalogue
from flowgrad.viz import descent as pictures
from flowgrad.viz import descent_runs as runs
from flowgrad.viz.descent_runs import (
    OPTIMIZERS,
    minimum_1d,
    run_descent,
    run_descent_batch,
    summary_table,
)
from flowgrad.viz.surfaces import SURFACES, get_surface, hessian_norm, surface_from_formula

# ---------------------------------------------------------------------------------------------
# Runs against hand-computed steps
# ---------------------------------------------------------------------------------------------


def _bowl(p):
    # f(x, y) = x² + 3y², built from flowgrad ops on the parameter leaf.
    return (fg.tensor(np.array([1.0, 3.0])) * p**2).sum()


def _bowl_grad(x):
    return np.array([2.0, 6.0]) * x


def test_sgd_path_equals_hand_computed_steps():
    lr, steps = 0.1, 12
    x = np.array([1.5, -2.0])
    expected = [x.copy()]
    for _ in range(steps):
        x = x - lr * _bowl_grad(x)
        expected.append(x.copy())
    t = run_descent(_bowl, [1.5, -2.0], "sgd", lr=lr, steps=steps)
    assert t.points.shape == (steps + 1, 2)
    np.testing.assert_allclose(t.points, np.array(expected), rtol=1e-12, atol=1e-14)
    losses = [float(p[0] ** 2 + 3 * p[1] ** 2) for p in expected]
    np.testing.assert_allclose(t.losses, losses, rtol=1e-12)
    norms = [float(np.linalg.norm(_bowl_grad(p))) for p in expected]
    np.testing.assert_allclose(t.grad_norms, norms, rtol=1e-12)


@pytest.mark.parametrize("nesterov", [False, True])
def test_momentum_path_equals_hand_computed_steps(nesterov):
    # PyTorch's rule: the buffer starts at the first gradient, b = mu*b + g afterwards;
    # the step is lr*b, or lr*(g + mu*b) with Nesterov.
    lr, mu, steps = 0.05, 0.9, 15
    x = np.array([1.5, -2.0])
    buf = None
    expected = [x.copy()]
    for _ in range(steps):
        g = _bowl_grad(x)
        buf = g.copy() if buf is None else mu * buf + g
        x = x - lr * (g + mu * buf if nesterov else buf)
        expected.append(x.copy())
    name = "nesterov" if nesterov else "momentum"
    t = run_descent(_bowl, [1.5, -2.0], name, lr=lr, steps=steps)
    np.testing.assert_allclose(t.points, np.array(expected), rtol=1e-12, atol=1e-14)
    assert t.options == {}
    assert t.optimizer == name and t.lr == lr


def test_formula_and_surface_objectives_match_the_function():
    lr, steps = 0.02, 5
    a = run_descent(lambda p: p[0] ** 2 + 3 * p[1] ** 2, [1.0, 1.0], "sgd", lr, steps)
    b = run_descent("x**2 + 3*y**2", [1.0, 1.0], "sgd", lr, steps)
    c = run_descent(get_surface("x**2 + 3*y**2"), [1.0, 1.0], "sgd", lr, steps)
    np.testing.assert_allclose(a.points, b.points, rtol=1e-13)
    np.testing.assert_allclose(a.points, c.points, rtol=1e-13)
    # 1-D from a number start.
    t = run_descent("(x - 3)**2", 0.0, "sgd", 0.25, 3)
    np.testing.assert_allclose(t.points[:, 0], [0.0, 1.5, 2.25, 2.625])


def test_batched_runs_equal_separate_runs():
    starts = np.array([[-1.0, 2.0], [3.5, -1.0], [0.5, 0.5]])
    for opt, lr in [("adam", 0.1), ("rmsprop", 0.02), ("adagrad", 0.5), ("momentum", 0.002)]:
        batch = run_descent_batch("himmelblau", starts, opt, lr, steps=25)
        for s, tb in zip(starts, batch):
            ts = run_descent("himmelblau", s, opt, lr, steps=25)
            np.testing.assert_allclose(tb.points, ts.points, rtol=1e-10, atol=1e-12)
            assert tb.status == ts.status


def test_callback_sees_every_step_and_can_stop():
    seen = []

    def cb(step, point, loss, grad):
        seen.append((step, point.tolist(), loss, grad.tolist()))
        return step == 3

    t = run_descent("x**2", 1.0, "sgd", 0.25, steps=10, callback=cb)
    assert [s[0] for s in seen] == [0, 1, 2, 3]
    assert len(t.points) == 4
    assert seen[1][1] == [0.5] and seen[1][2] == 0.25 and seen[1][3] == [1.0]


# ---------------------------------------------------------------------------------------------
# Status: converged, max_steps, diverged
# ---------------------------------------------------------------------------------------------


def test_converged_status_and_steps_to_tol():
    # x_k = 0.5**k, so |f'(x_k)| = 2 * 0.5**k; the first k below tol:
    tol = 1e-6
    k = next(k for k in range(100) if 2 * 0.5**k < tol)
    t = run_descent("x**2", 1.0, "sgd", lr=0.25, steps=50, tol=tol)
    assert t.status == "converged"
    assert t.steps_to_tol == k == 21
    assert t.points.shape == (51, 1)
    early = run_descent("x**2", 1.0, "sgd", lr=0.25, steps=50, tol=tol, stop_at_tol=True)
    assert early.status == "converged" and early.n_steps == k
    slow = run_descent("x**2", 1.0, "sgd", lr=0.01, steps=20, tol=tol)
    assert slow.status == "max_steps" and slow.steps_to_tol is None


def test_steps_to_tol_is_where_it_stays_below():
    # Momentum overshoots: a momentary small gradient is not convergence.
    t = run_descent("x**2", 1.0, "momentum", lr=0.3, steps=200, tol=1e-3)
    below = t.grad_norms < 1e-3
    assert t.status == "converged"
    assert below[t.steps_to_tol:].all() and not below[t.steps_to_tol - 1]


def test_divergence_is_detected_and_nothing_non_finite_is_returned():
    # lr above 2/f'' = 1: |x| grows by 1.5x per step until the loss passes 1e6 x its start.
    t = run_descent("x**2", 1.0, "sgd", lr=1.25, steps=200)
    assert t.status == "diverged"
    assert t.steps_to_tol is None
    k = next(k for k in range(200) if (1.5**k) ** 2 > 1e6)
    assert t.diverged_at == k
    assert np.isfinite(t.points).all() and np.isfinite(t.losses).all()
    assert np.isfinite(t.grad_norms).all()
    assert len(t.points) <= t.diverged_at + 1


def test_divergence_by_nan_and_by_bound():
    # log(x) with a big step jumps to x < 0 where log is NaN: the NaN point is dropped.
    t = run_descent("(log(x) - 1)**2", 2.0, "sgd", lr=50.0, steps=20)
    assert t.status == "diverged"
    assert np.isfinite(t.points).all() and np.isfinite(t.losses).all()
    b = run_descent("-x", 0.0, "sgd", lr=1.0, steps=100, bound=10.0)
    assert b.status == "diverged" and b.diverged_at == 11
    assert abs(b.points[-1, 0]) == 11.0  # the finite point that crossed the bound is kept


def test_bad_arguments_raise_clear_errors():
    with pytest.raises(ValueError, match="unknown optimizer"):
        run_descent("x**2", 1.0, "lbfgs", 0.1)
    with pytest.raises(ValueError, match="learning rate"):
        run_descent("x**2", 1.0, "sgd", -0.1)
    with pytest.raises(ValueError, match="steps"):
        run_descent("x**2", 1.0, "sgd", 0.1, steps=-1)
    with pytest.raises(ValueError, match="not finite at the start"):
        run_descent("log(x)", -1.0, "sgd", 0.1)
    with pytest.raises(ValueError, match="2-D"):
        run_descent("rosenbrock", 1.0, "sgd", 0.1)


def test_summary_table():
    runs = [run_descent("x**2", 1.0, "sgd", 0.25, 40), run_descent("x**2", 1.0, "sgd", 1.5, 40)]
    table = summary_table(runs)
    lines = table.splitlines()
    assert len(lines) == 4
    assert "steps to |grad|<1e-06" in lines[0]
    assert "converged" in lines[2] and lines[2].rstrip().endswith("21")
    assert f"diverged at step {runs[1].diverged_at}" in lines[3]


# ---------------------------------------------------------------------------------------------
# Surfaces and the 1-D minimum
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", list(SURFACES))
def test_builtin_minima_are_stationary_points(name):
    s = SURFACES[name]
    grad = fg.grad(lambda x, y: s(x, y).sum(), argnums=(0, 1))
    gx, gy = grad(s.minima[:, 0].copy(), s.minima[:, 1].copy())
    assert np.abs(gx.numpy()).max() < 1e-4 and np.abs(gy.numpy()).max() < 1e-4
    np.testing.assert_allclose(s.values(s.minima[:, 0], s.minima[:, 1]), s.min_value, atol=1e-9)
    assert s.xlim[0] < s.start[0] < s.xlim[1] and s.ylim[0] < s.start[1] < s.ylim[1]


def test_hessian_norm_and_formula_surface_defaults():
    # Hessian of x² + 3y² + xy is [[2, 1], [1, 6]].
    lam = 4 + math.sqrt(5)
    np.testing.assert_allclose(hessian_norm(lambda x, y: x**2 + 3 * y**2 + x * y,
                                            np.array([0.3, -2.0]), np.array([1.0, 0.0])),
                               [lam, lam], rtol=1e-12)
    s = surface_from_formula("x**2 + 3*y**2 + x*y")
    assert s.lrs["sgd"] == pytest.approx(1 / lam)
    np.testing.assert_allclose(s.minima, [[0.0, 0.0]], atol=0.06)
    assert not s.minima_known
    with pytest.raises(fg.viz.FormulaError, match="unknown surface"):
        get_surface("rosenbrok")
    with pytest.raises(fg.viz.FormulaError, match="unknown variable"):
        get_surface("x + z")
    with pytest.raises(ValueError, match="neither x nor y"):
        get_surface("3 + 4")


def test_minimum_1d_uses_flowgrads_second_derivative():
    m = minimum_1d("x**4 - 3*x**2 + x", start=2.0)
    x = m.x
    assert abs(4 * x**3 - 6 * x + 1) < 1e-10  # f'(x*) = 0
    assert x > 0  # the minimum downhill of the start, not the deeper one at x < 0
    assert m.curvature == pytest.approx(12 * x**2 - 6, rel=1e-10)
    assert m.bound == pytest.approx(2 / m.curvature)
    q = minimum_1d("(x - 1)**2 * 4", start=-3.0)
    assert q.x == pytest.approx(1.0) and q.curvature == pytest.approx(8.0)
    assert q.bound == pytest.approx(0.25)
    with pytest.raises(ValueError, match="no local minimum"):
        minimum_1d("exp(x)", start=0.0)


# ---------------------------------------------------------------------------------------------
# The split: runs without matplotlib, the same names from the pictures module and fg.viz
# ---------------------------------------------------------------------------------------------


def test_runs_need_no_matplotlib():
    code = (
        "import sys; sys.modules['matplotlib'] = None\n"
        "from flowgrad.viz.descent_runs import minimum_1d, run_descent\n"
        "assert run_descent('x**2', 1.0, lr=0.25, steps=50).steps_to_tol == 21\n"
        "assert abs(minimum_1d('x**2').bound - 1.0) < 1e-12\n"
        "assert not any(m == 'matplotlib' or m.startswith('matplotlib.') for m, v in "
        "sys.modules.items() if v is not None)\n"
    )
    src = str(Path(fg.__file__).resolve().parents[1])  # this checkout's flowgrad
    env = {**os.environ, "PYTHONPATH": src}
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env)
    assert out.returncode == 0, out.stderr


def test_names_importable_from_descent_and_viz():
    for name in runs.__all__:
        assert getattr(pictures, name) is getattr(runs, name), name
        assert getattr(fg.viz, name) is getattr(runs, name), name


def test_optimizer_names_come_from_the_catalogue():
    assert OPTIMIZERS is catalogue.OPTIMIZERS
    t = run_descent("x**2", 1.0, "adam", steps=1)
    assert t.lr == catalogue.OPTIMIZERS["adam"].lr == 0.001
    with pytest.raises(ValueError, match="unknown optimizer 'lbfgs'; choose one of sgd"):
        run_descent("x**2", 1.0, "lbfgs", steps=1)
