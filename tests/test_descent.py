"""``fg.viz`` gradient-descent runs and pictures, and ``flowgrad descent``."""

from __future__ import annotations

import numpy as np
import pytest
from conftest import PNG_MAGIC
from test_formula import HOSTILE

from flowgrad.viz.descent import (
    DescentPlot,
    plot_basins,
    plot_learning_rates,
    plot_optimizers,
    save_figure,
)
from flowgrad.viz.surfaces import SURFACES

pytest.importorskip("matplotlib")

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
    assert out.read_bytes().startswith(PNG_MAGIC) and out.stat().st_size > 10_000
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
    assert (tmp_path / "r.png").read_bytes().startswith(PNG_MAGIC)
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
    assert (tmp_path / "b.png").read_bytes().startswith(PNG_MAGIC)


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
    assert (tmp_path / "descent-2d.png").read_bytes().startswith(PNG_MAGIC)


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
    assert (tmp_path / "b.png").read_bytes().startswith(PNG_MAGIC)
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
