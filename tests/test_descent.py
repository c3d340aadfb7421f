"""``fg.viz`` gradient-descent runs and pictures, and ``flowgrad descent``."""

from __future__ import annotations

import math

import numpy as np
import pytest
from test_formula import HOSTILE

import flowgrad as fg
import flowgrad.cli as cli
from flowgrad.viz.descent import (
    DescentPlot,
    minimum_1d,
    plot_basins,
    plot_learning_rates,
    plot_optimizers,
    run_descent,
    run_descent_batch,
    save_figure,
    summary_table,
)
from flowgrad.viz.surfaces import SURFACES, get_surface, hessian_norm, surface_from_formula

pytest.importorskip("matplotlib")

PNG = b"\x89PNG\r\n\x1a\n"


@pytest.fixture
def main():
    """``flowgrad.cli.main``, the command line run in-process."""
    return cli.main


def _bowl(p):
    # f(x, y) = x² + 3y², built from flowgrad ops on the parameter leaf.
    return (fg.tensor(np.array([1.0, 3.0])) * p**2).sum()


def _bowl_grad(x):
    return np.array([2.0, 6.0]) * x


# ---------------------------------------------------------------------------------------------
# Runs against hand-computed steps
# ---------------------------------------------------------------------------------------------


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
# Pictures
# ---------------------------------------------------------------------------------------------


def _finite_lines(fig):
    for ax in fig.axes:
        for line in ax.get_lines():
            data = np.asarray(line.get_xydata(), dtype=float)
            assert np.isfinite(data).all(), f"non-finite values drawn in {ax.get_title()!r}"


def test_plot_learning_rates_defaults_from_the_bound(tmp_path):
    out = tmp_path / "lr.png"
    plot = plot_learning_rates("x**2", start=2.0, steps=25, out=out)
    assert isinstance(plot, DescentPlot)
    assert out.read_bytes().startswith(PNG) and out.stat().st_size > 10_000
    lrs = [t.lr for t in plot.trajectories]
    np.testing.assert_allclose(lrs, [0.05, 0.4, 0.9, 1.2])  # bound 2/f''(0) = 1
    status = [t.status for t in plot.trajectories]
    assert status[1] == "converged" and status[3] == "diverged"
    assert "stability bound 2/f''(x*) = 1" in plot.summary()
    titles = " ".join(ax.get_title() for ax in plot.figure.axes)
    assert "1.2 × bound" in titles and "diverged at step" in titles
    _finite_lines(plot.figure)


def test_plot_optimizers_svg_and_gif(tmp_path):
    plot = plot_optimizers("ill-conditioned", steps=12)
    assert [t.optimizer for t in plot.trajectories] == [
        "sgd", "momentum", "nesterov", "adagrad", "rmsprop", "adam"]
    svg = plot.save(tmp_path / "opt.svg")
    assert b"<svg" in svg.read_bytes()[:2000]
    gif = plot.save_gif(tmp_path / "opt.gif", max_frames=6, dpi=30)
    assert gif.read_bytes()[:6] == b"GIF89a"
    legend = plot.figure.legends[0]
    labels = [t.get_text() for t in legend.get_texts()]
    assert any(lab.startswith("sgd lr=0.45") for lab in labels) and "start" in labels
    # After the animation the full paths are back.
    line = plot.figure.axes[0].get_lines()[0]
    assert len(line.get_xdata()) == 13


def test_plot_optimizers_with_a_diverging_rate_draws_no_nan(tmp_path):
    plot = plot_optimizers("rosenbrock", steps=30, optimizers=("sgd", "adam"),
                           lrs={"sgd": 0.05}, out=tmp_path / "r.png")
    assert plot.trajectories[0].status == "diverged"
    _finite_lines(plot.figure)
    assert (tmp_path / "r.png").read_bytes().startswith(PNG)
    with pytest.raises(ValueError, match="not among"):
        plot_optimizers("saddle", steps=2, optimizers=("sgd",), lrs={"adam": 0.1})


def test_basins_starts_near_each_himmelblau_minimum_end_there(tmp_path):
    minima = SURFACES["himmelblau"].minima
    starts = minima + np.array([0.35, -0.3])
    plot = plot_basins("himmelblau", starts=starts, steps=150, shade=False,
                       out=tmp_path / "b.png")
    ends = np.array([t.final_point for t in plot.trajectories])
    np.testing.assert_allclose(ends, minima, atol=1e-5)
    assert all(t.status == "converged" for t in plot.trajectories)
    table = plot.summary()
    assert table.count("  1  ") == 4  # one start per minimum
    assert (tmp_path / "b.png").read_bytes().startswith(PNG)


def test_basins_default_grid_and_formula_clusters(tmp_path):
    plot = plot_basins(n_starts=16, steps=60, out=tmp_path / "grid.png")
    assert len(plot.trajectories) == 16
    assert (tmp_path / "grid.png").stat().st_size > 10_000
    # A formula with two minima at x = ±1: the end points are clustered.
    plot = plot_basins("x**4/4 - x**2/2 + y**2", n_starts=16, steps=80, shade=False)
    rows = plot.table.splitlines()[2:]
    reached = sorted(r.split(")")[0] for r in rows)
    assert reached == ["(-1.0000, -0.0000", "(1.0000, -0.0000"] or reached == [
        "(-1.0000, 0.0000", "(1.0000, 0.0000"]
    gif = plot.save_gif(tmp_path / "b.gif", max_frames=4, dpi=30)
    assert gif.read_bytes()[:6] == b"GIF89a"


def test_save_figure_checks_suffix_and_directory(tmp_path):
    plot = plot_learning_rates("x**2", lrs=[0.1], steps=3)
    with pytest.raises(ValueError, match=r"\.png or \.svg"):
        save_figure(plot.figure, tmp_path / "a.jpg")
    with pytest.raises(FileNotFoundError, match="does not exist"):
        save_figure(plot.figure, tmp_path / "missing" / "a.png")
    with pytest.raises(ValueError, match=r"\.gif"):
        plot.save_gif(tmp_path / "a.png")
    assert list(tmp_path.iterdir()) == []  # no temporary files left behind


# ---------------------------------------------------------------------------------------------
# The command line
# ---------------------------------------------------------------------------------------------


def test_cli_default_is_the_2d_picture(main, tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    assert main(["descent", "--steps", "15"]) == 0
    out = capsys.readouterr().out
    assert "momentum" in out and "adam" in out and "wrote descent-2d.png" in out
    assert (tmp_path / "descent-2d.png").read_bytes().startswith(PNG)


def test_cli_1d_with_gif_and_lrs(main, tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    argv = ["descent", "1d", "--function", "(x - 1)**2", "--lr", "0.1,1.1", "--steps", "8",
            "--start=-1", "--out", "lr.svg", "--gif", "lr.gif"]
    assert main(argv) == 0
    out = capsys.readouterr().out
    assert "stability bound 2/f''(x*) = 1" in out
    rows = [line.split() for line in out.splitlines() if line.startswith("sgd")]
    assert [r[1] for r in rows] == ["0.1", "1.1"]
    assert (tmp_path / "lr.gif").read_bytes()[:6] == b"GIF89a"
    assert b"<svg" in (tmp_path / "lr.svg").read_bytes()[:2000]


def test_cli_2d_and_basins_options(main, tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    assert main(["descent", "2d", "--surface", "x**2 + 4*y**2", "--optimizers", "sgd,adam",
                 "--lr", "sgd=0.1", "--steps", "10", "--start=-2,1", "--out", "f.png"]) == 0
    out = capsys.readouterr().out
    assert "sgd        0.1" in out and "adam" in out
    assert main(["descent", "basins", "--n-starts", "9", "--steps", "30",
                 "--out", "b.png"]) == 0
    assert "reached" in capsys.readouterr().out
    assert (tmp_path / "b.png").read_bytes().startswith(PNG)
    # With only --gif, only the GIF is written.
    assert main(["descent", "basins", "--n-starts", "4", "--random-starts", "--seed", "3",
                 "--steps", "5", "--gif", "only.gif", "--frames", "3", "--dpi", "40"]) == 0
    assert "wrote only.gif" in capsys.readouterr().out
    assert sorted(p.name for p in tmp_path.iterdir()) == ["b.png", "f.png", "only.gif"]


@pytest.mark.parametrize(
    "argv, message",
    [
        (["descent", "2d", "--surface=x**2 + foo(y)"], "unknown function 'foo'"),
        (["descent", "2d", "--surface", "rosenbrok"], "unknown surface"),
        (["descent", "1d", "--function", "x + y"], "unknown variable"),
        (["descent", "1d", "--function", "exp(x)"], "no local minimum"),
        (["descent", "2d", "--lr", "adam=abc"], "is not a number"),
        (["descent", "2d", "--lr", "0.1,0.2"], "2 learning rates for 6 optimizers"),
        (["descent", "2d", "--optimizers", "sgd,lbfgs"], "unknown optimizer 'lbfgs'"),
        (["descent", "1d", "--lr=-0.1"], "must be positive"),
        (["descent", "2d", "--start", "1"], "needs X,Y"),
        (["descent", "--out", "x.jpg"], "--out must end in .png or .svg"),
        (["descent", "--gif", "x.png"], "--gif must end in .gif"),
        (["descent", "--out", "nowhere/x.png"], "does not exist"),
        (["descent", "basins", "--optimizers", "sgd,adam"], "one optimizer"),
        (["descent", "--steps", "0"], "--steps"),
        (["descent", "2d", "--window", "1,0,0,1"], "lo < hi"),
    ],
)
def test_cli_user_errors_exit_2_with_one_line(main, argv, message, tmp_path, monkeypatch,
                                               capsys):
    monkeypatch.chdir(tmp_path)
    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert "\n" not in err and message in err and "Traceback" not in err
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("text", HOSTILE[:12])
def test_cli_hostile_formulas_are_refused(main, text, tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    assert main(["descent", "2d", f"--surface={text}", "--steps", "2"]) == 2
    assert main(["descent", "1d", f"--function={text}", "--steps", "2"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 2 and all(line.startswith("flowgrad descent: error:") for line in err)
    assert not (tmp_path / "pwned.txt").exists()
    assert list(tmp_path.iterdir()) == []


def test_cli_bad_mode_is_an_argparse_error(main, capsys):
    assert main(["descent", "3d"]) == 2
    assert "invalid choice" in capsys.readouterr().err
