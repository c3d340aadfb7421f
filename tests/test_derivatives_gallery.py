"""The derivative gallery: ``fg.viz.plot_derivatives`` and ``flowgrad derivatives``."""

from __future__ import annotations

import numpy as np
import pytest
from conftest import PNG_MAGIC
from test_formula import HOSTILE

from flowgrad.viz.derivatives import (
    CATALOGUE,
    DEFAULT_FUNCTIONS,
    derivative_values,
    find_kinks,
    plot_derivatives,
)
from flowgrad.viz.formula import FormulaError

pytest.importorskip("matplotlib")

def _sigmoid(x):
    return 1 / (1 + np.exp(-x))


# The oracle: closed forms, used only to check what autodiff computed.
SMOOTH = {
    "identity": (np.linspace(-3, 3, 41), lambda x: x, lambda x: np.ones_like(x),
                 lambda x: np.zeros_like(x)),
    "sigmoid": (np.linspace(-6, 6, 41), _sigmoid, lambda x: _sigmoid(x) * (1 - _sigmoid(x)),
                lambda x: _sigmoid(x) * (1 - _sigmoid(x)) * (1 - 2 * _sigmoid(x))),
    "tanh": (np.linspace(-3, 3, 41), np.tanh, lambda x: 1 - np.tanh(x) ** 2,
             lambda x: -2 * np.tanh(x) * (1 - np.tanh(x) ** 2)),
    "exp": (np.linspace(-3, 1.5, 41), np.exp, np.exp, np.exp),
    "log": (np.linspace(0.2, 4, 41), np.log, lambda x: 1 / x, lambda x: -1 / x**2),
    "sqrt": (np.linspace(0.1, 4, 41), np.sqrt, lambda x: 0.5 / np.sqrt(x),
             lambda x: -0.25 * x**-1.5),
    "sin": (np.linspace(-3, 3, 41), np.sin, np.cos, lambda x: -np.sin(x)),
    "x**3 - 2*x": (np.linspace(-2, 2, 41), lambda x: x**3 - 2 * x, lambda x: 3 * x**2 - 2,
                   lambda x: 6 * x),
    "sigmoid(2*x)*x": (np.linspace(-2, 2, 41), lambda x: _sigmoid(2 * x) * x,
                       lambda x: 2 * x * _sigmoid(2 * x) * (1 - _sigmoid(2 * x))
                       + _sigmoid(2 * x),
                       None),
}


@pytest.mark.parametrize("name", list(SMOOTH))
def test_autodiff_derivatives_match_closed_forms(name):
    x, f, d1, d2 = SMOOTH[name]
    v, g1, g2 = derivative_values(name, x)
    np.testing.assert_allclose(v, f(x), rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(g1, d1(x), rtol=1e-10, atol=1e-12)
    if d2 is None:  # check f'' against a central difference of the autodiff f'
        h = 1e-5
        fd = (derivative_values(name, x + h)[1] - derivative_values(name, x - h)[1]) / (2 * h)
        np.testing.assert_allclose(g2, fd, rtol=1e-6, atol=1e-7)
    else:
        np.testing.assert_allclose(g2, d2(x), rtol=1e-10, atol=1e-12)


def test_conventions_at_kinks_are_flowgrads():
    x = np.array([-1.0, 0.0, 1.0])
    assert derivative_values("relu", x)[1].tolist() == [0.0, 0.0, 1.0]  # relu'(0) = 0
    assert derivative_values("abs", x)[1].tolist() == [-1.0, 0.0, 1.0]  # abs'(0) = 0
    step = derivative_values("step", x)
    assert step[0].tolist() == [0.0, 0.0, 1.0]  # 1 where x > 0
    assert step[1].tolist() == [0.0, 0.0, 0.0] and step[2].tolist() == [0.0, 0.0, 0.0]
    assert derivative_values("relu", x)[2].tolist() == [0.0, 0.0, 0.0]


def test_find_kinks_locates_jumps_and_kinks():
    def kinks(name, lo=-3.0, hi=3.0, n=601):
        x = np.linspace(lo, hi, n)
        formula = None if name in CATALOGUE else _formula(name)
        fn = CATALOGUE[name].fn if formula is None else (lambda t: formula(x=t))
        v, d1, _ = derivative_values(fn, x)
        return find_kinks(fn, x, v, d1)

    (relu,) = kinks("relu")
    assert (relu.x, relu.kind, relu.slope, relu.left, relu.right) == (0.0, "kink", 0.0, 0.0, 1.0)
    (step,) = kinks("step")
    assert (step.x, step.kind, step.value, step.slope) == (0.0, "jump", 0.0, 0.0)
    assert (step.left, step.right) == (0.0, 1.0)
    assert kinks("sigmoid") == [] and kinks("tanh") == [] and kinks("identity") == []
    (shifted,) = kinks("abs(x - 0.3)", n=500)  # 0.3 is not a grid point here
    assert shifted.x == pytest.approx(0.3) and shifted.slope == 0.0
    assert (shifted.left, shifted.right) == (-1.0, 1.0)
    assert [k.x for k in kinks("relu(x + 1) - relu(x - 1)")] == [-1.0, 1.0]


def _formula(text):
    from flowgrad.viz.formula import compile_formula

    return compile_formula(text, variables=("x",))


def test_plot_derivatives_default_catalogue(tmp_path):
    out = tmp_path / "d.png"
    g = plot_derivatives(out=out)
    assert out.read_bytes().startswith(PNG_MAGIC) and out.stat().st_size > 20_000
    assert list(g.curves) == list(DEFAULT_FUNCTIONS)
    assert len(g.figure.axes) == len(DEFAULT_FUNCTIONS)
    x, f, d1, d2 = g.curves["log"]
    assert x.min() > 0  # log on a positive domain
    assert 0.0 in g.curves["relu"][0]  # the convention point is on the grid
    summary = g.summary()
    assert "relu: kink at x=0: f'=0 there (left 0, right 1)" in summary
    assert "step: jump at x=0" in summary and "sigmoid: smooth" in summary
    # relu' is drawn broken at 0 (a NaN gap), not as a vertical line.
    relu_ax = g.figure.axes[DEFAULT_FUNCTIONS.index("relu")]
    assert "relu'(0) = 0" in relu_ax.get_title()
    dashed = [ln for ln in relu_ax.get_lines() if ln.get_linestyle() == "--"][0]
    ys = np.asarray(dashed.get_ydata(), dtype=float)
    assert np.isnan(ys).sum() == 1
    finite = ys[np.isfinite(ys)]
    assert set(np.unique(finite)) == {0.0, 1.0}


def test_plot_derivatives_formulas_and_svg(tmp_path):
    out = tmp_path / "f.svg"
    g = plot_derivatives([], ["x**3", "relu(x - 1)*x"], domain=(-2, 2), out=out)
    assert b"<svg" in out.read_bytes()[:2000]
    assert list(g.curves) == ["x**3", "relu(x - 1)*x"]
    x, f, d1, d2 = g.curves["x**3"]
    np.testing.assert_allclose(d2, 6 * x, atol=1e-12)
    (k,) = g.kinks["relu(x - 1)*x"]
    assert k.x == 1.0 and k.slope == 0.0 and k.right == pytest.approx(1.0)


def test_plot_derivatives_errors():
    with pytest.raises(FormulaError, match="unknown function 'softplus'"):
        plot_derivatives(["softplus"])
    with pytest.raises(FormulaError):
        plot_derivatives([], ["x +"])
    with pytest.raises(ValueError, match="at least one"):
        plot_derivatives([], [])
    with pytest.raises(ValueError, match="lo < hi"):
        plot_derivatives(["relu"], domain=(1, -1))


def test_cli_derivatives(main, tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    assert main(["derivatives"]) == 0
    out = capsys.readouterr().out
    assert "relu: kink at x=0" in out and "wrote derivatives.png" in out
    assert (tmp_path / "derivatives.png").read_bytes().startswith(PNG_MAGIC)
    assert main(["derivatives", "--functions", "relu,abs", "--formula", "x**3",
                 "--domain=-2,2", "--out", "k.svg", "--points", "101"]) == 0
    out = capsys.readouterr().out
    assert "abs: kink at x=0: f'=0" in out and "x**3: smooth" in out
    assert (tmp_path / "k.svg").exists()


@pytest.mark.parametrize(
    "argv, message",
    [
        (["--functions", "relu,softplus"], "unknown function 'softplus'"),
        (["--formula", "x +"], "--formula: invalid formula"),
        (["--formula", "y**2"], "unknown variable y"),
        (["--functions", ""], "nothing to plot"),
        (["--domain", "1,0"], "A < B"),
        (["--out", "d.jpg"], "--out must end in .png or .svg"),
        (["--out", "missing/d.png"], "does not exist"),
        (["--points", "5"], "--points"),
    ],
)
def test_cli_derivatives_errors(main, argv, message, tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    assert main(["derivatives", *argv]) == 2
    err = capsys.readouterr().err.strip()
    assert "\n" not in err and message in err
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("text", HOSTILE[:12])
def test_cli_hostile_formulas_are_refused(main, text, tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    assert main(["derivatives", f"--formula={text}"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("flowgrad derivatives: error: --formula:") and "\n" not in err
    assert list(tmp_path.iterdir()) == []
