"""Gradient descent you can see: pictures and animations of optimizers at work.

The runs drawn here come from :mod:`flowgrad.viz.descent_runs` (flowgrad's own optimizers
and autodiff, no matplotlib); this module only draws them.

* :func:`plot_learning_rates`: a 1-D function, several learning rates side by side, with the
  stability bound ``2 / f''(x*)`` from flowgrad's own second derivative.
* :func:`plot_optimizers`: SGD, momentum, Nesterov, Adagrad, RMSprop and Adam on a contour
  plot of a 2-D surface.
* :func:`plot_basins`: many starts on a surface with several minima, each path coloured by
  the minimum it reaches.

Each plot returns a :class:`DescentPlot` that saves a PNG/SVG (:meth:`DescentPlot.save`),
an animated GIF (:meth:`DescentPlot.save_gif`) and prints a summary table. The run names
(:func:`run_descent`, :class:`Trajectory`, ...) are importable from here too.

Example:
    >>> plot = plot_learning_rates("x**2", lrs=[0.1, 0.9], steps=20)  # doctest: +SKIP
    >>> plot.save("lr.png")  # doctest: +SKIP
"""

from __future__ import annotations

import math
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from flowgrad._atomic import atomic_path
from flowgrad.viz import figures
from flowgrad.viz.descent_runs import (
    DEFAULT_OPTIMIZERS,
    OPTIMIZERS,
    Minimum1D,
    Trajectory,
    _assign,
    _check_optimizers,
    _cluster,
    _derivatives_1d,
    _fmt,
    _function_1d,
    _grid_starts,
    _point_text,
    _resolve_lrs,
    _start_array,
    _values_1d,
    fn_point,
    make_optimizer,
    minimum_1d,
    run_descent,
    run_descent_batch,
    summary_table,
)
from flowgrad.viz.figures import IMAGE_SUFFIXES, new_figure, save_figure
from flowgrad.viz.surfaces import SURFACES, Surface, get_surface

__all__ = [
    "DEFAULT_OPTIMIZERS",
    "IMAGE_SUFFIXES",
    "OPTIMIZERS",
    "SURFACES",
    "Surface",
    "get_surface",
    "DescentPlot",
    "Minimum1D",
    "Trajectory",
    "fn_point",
    "make_optimizer",
    "minimum_1d",
    "plot_basins",
    "plot_learning_rates",
    "plot_optimizers",
    "run_descent",
    "run_descent_batch",
    "save_figure",
    "summary_table",
]


# ---------------------------------------------------------------------------------------------
# The picture object: saving, animating
# ---------------------------------------------------------------------------------------------


def _frame_steps(max_step: int, max_frames: int) -> list[int]:
    """Frame steps spaced densely early (where paths move most), then held at the end."""
    if max_step <= 0:
        return [0] * 4
    count = min(max_frames, max_step + 1)
    u = np.linspace(0.0, 1.0, count)
    steps = np.unique(np.round(max_step * u**1.6).astype(int))
    return [*steps.tolist(), *([max_step] * max(3, count // 8))]


@dataclass(eq=False)
class DescentPlot:
    """A descent picture: the figure, the runs behind it and a way to animate it.

    Attributes:
        figure: the matplotlib figure.
        trajectories: the runs drawn.
        kind: ``"learning-rates"``, ``"optimizers"`` or ``"basins"``.
        max_step: the last step any run reached.
        notes: extra summary lines (the stability bound, the basin counts).
    """

    figure: Any
    trajectories: list[Trajectory]
    kind: str
    max_step: int
    update: Callable[[int], None] | None = None
    notes: list[str] = field(default_factory=list)
    table: str | None = None

    def save(self, path: str | os.PathLike, dpi: int = 110) -> Path:
        """Write the picture as PNG or SVG (by suffix), atomically."""
        return save_figure(self.figure, path, dpi=dpi)

    def save_gif(self, path: str | os.PathLike, fps: int = 10, max_frames: int = 60,
                 dpi: int = 60) -> Path:
        """Write an animated GIF of the runs step by step (matplotlib's PillowWriter).

        Args:
            path: a ``.gif`` file name.
            fps: frames per second.
            max_frames: at most this many distinct steps are shown.
            dpi: resolution (the figure's size in inches times this, in pixels).

        Returns:
            The path written.
        """
        path = Path(path)
        if path.suffix.lower() != ".gif":
            raise ValueError(f"cannot write {path.name!r} as an animation: use a .gif file name")
        if self.update is None:
            raise ValueError("this picture has no animation")
        figures.require("matplotlib", "GIF output")
        figures.require("PIL", "GIF output")
        from matplotlib.animation import FuncAnimation
        frames = _frame_steps(self.max_step, max_frames)
        update = self.update
        counter = self.figure.text(0.006, 0.994, "", ha="left", va="top", fontsize=12,
                                   weight="bold", color="0.2")

        def draw(k: int) -> None:
            update(int(k))
            counter.set_text(f"step {int(k)}")

        anim = FuncAnimation(self.figure, draw, frames=frames, blit=False, repeat=False,
                             cache_frame_data=False)
        try:
            with atomic_path(path) as tmp:
                anim.save(str(tmp), writer=_shared_palette_writer()(fps=fps), dpi=dpi)
        finally:
            counter.remove()
            update(self.max_step)
        return path

    def summary(self) -> str:
        """The printed summary: notes, then the table of runs."""
        table = self.table if self.table is not None else summary_table(self.trajectories)
        return "\n".join([*self.notes, table])


def _shared_palette_writer() -> type:
    """matplotlib's PillowWriter, quantizing every frame to one palette without dithering.

    PillowWriter gives each frame its own dithered palette, so the static background
    differs from frame to frame and the GIF grows several-fold. With one palette (taken
    from the last frame, which holds every path's colour) unchanged pixels stay identical
    and Pillow stores only what moved.
    """
    from io import BytesIO

    from matplotlib.animation import PillowWriter
    from PIL import Image

    class SharedPaletteWriter(PillowWriter):
        def setup(self, fig, outfile, dpi=None):
            super().setup(fig, outfile, dpi=dpi)
            self._rgb_frames: list[Any] = []

        def grab_frame(self, **savefig_kwargs):
            buf = BytesIO()
            self.fig.savefig(buf, **{**savefig_kwargs, "format": "rgba", "dpi": self.dpi})
            size = self.frame_size
            self._rgb_frames.append(
                Image.frombuffer("RGBA", size, buf.getbuffer(), "raw", "RGBA", 0, 1).convert("RGB")
            )

        def finish(self):
            frames = self._rgb_frames
            # Pillow < 9.1 has the enums as module constants.
            mediancut = getattr(getattr(Image, "Quantize", Image), "MEDIANCUT", 0)
            no_dither = getattr(getattr(Image, "Dither", Image), "NONE", 0)
            palette = frames[-1].quantize(colors=255, method=mediancut, dither=no_dither)
            quantized = [f.quantize(palette=palette, dither=no_dither) for f in frames]
            quantized[0].save(self.outfile, save_all=True, append_images=quantized[1:],
                              duration=int(1000 / self.fps), loop=0)

    return SharedPaletteWriter


def _clip_path(points: np.ndarray, k: int) -> np.ndarray:
    return points[: min(k, len(points) - 1) + 1]


# ---------------------------------------------------------------------------------------------
# 1-D: learning rates and the stability bound
# ---------------------------------------------------------------------------------------------


_VERDICT_COLORS = {"creeps": "#1f77b4", "good": "#2ca02c", "oscillates": "#ff7f0e",
                   "diverges": "#d62728"}


def _verdict(t: Trajectory, ratio: float | None) -> tuple[str, str]:
    """A one-line verdict and its colour, from the run and lr / bound (None: no bound)."""
    if t.status == "diverged":
        return f"too large: diverged at step {t.diverged_at}", _VERDICT_COLORS["diverges"]
    conv = (f"|f'| < {t.tol:g} at step {t.steps_to_tol}" if t.steps_to_tol is not None
            else f"not converged in {t.n_steps} steps")
    if ratio is None:
        return conv, _VERDICT_COLORS["good" if t.steps_to_tol is not None else "creeps"]
    if ratio > 1.0:
        return f"above the bound: {conv}", _VERDICT_COLORS["diverges"]
    if ratio > 0.5:
        return f"oscillates: {conv}", _VERDICT_COLORS["oscillates"]
    if t.steps_to_tol is None:
        return f"too small: creeps ({conv})", _VERDICT_COLORS["creeps"]
    return f"good: {conv}", _VERDICT_COLORS["good"]


def plot_learning_rates(
    f: Any = "x**2",
    lrs: Sequence[float] | None = None,
    start: float = 2.0,
    steps: int = 30,
    optimizer: str = "sgd",
    tol: float = 1e-6,
    *,
    xlim: tuple[float, float] | None = None,
    out: str | os.PathLike | None = None,
    **opt_kwargs: Any,
) -> DescentPlot:
    """Gradient descent on a 1-D function with several learning rates side by side.

    Near a minimum x*, one SGD step multiplies the distance to x* by about
    ``1 − lr·f''(x*)``: it creeps in for small ``lr``, oscillates in for
    ``1/f'' < lr < 2/f''`` and oscillates out (diverges) beyond the bound ``2/f''(x*)``.
    The bound is computed with flowgrad's second derivative at the minimum descent heads
    for, and the default learning rates are chosen around it: too small (0.05×), good
    (0.4×), near the bound (0.9×) and too large (1.2×).

    Each column shows the path drawn on the curve (top) and ``f(x_k) − f(x*)`` per step on
    a log scale (bottom); the titles give ``lr`` as a multiple of the bound and the verdict.

    Args:
        f: a formula of ``x`` (default ``"x**2"``) or an elementwise function of a Tensor.
        lrs: the learning rates (default: chosen from the bound as above).
        start: the starting point.
        steps: steps per run.
        optimizer: a name from :data:`OPTIMIZERS` (the bound is SGD's).
        tol: the gradient-norm tolerance.
        xlim: the plotted (and searched) window; default fits the converging paths.
        out: if given, the picture is also saved there (.png or .svg).
        **opt_kwargs: further optimizer options.

    Returns:
        The :class:`DescentPlot`.

    Raises:
        ValueError: no minimum to derive default learning rates from, or bad arguments.
    """
    fn, text = _function_1d(f)
    start = float(_start_array(start)[0])
    try:
        mini: Minimum1D | None = minimum_1d(f, start, xlim)
    except ValueError:
        if lrs is None:
            raise
        mini = None
    bound = mini.bound if mini is not None else math.inf
    if lrs is None:
        base = bound
        if not math.isfinite(base):
            # A flat minimum (f'' = 0) has no bound; fall back to the curvature at the start.
            h0 = _derivatives_1d(fn, np.array([start]))[1][0]
            if not (math.isfinite(h0) and h0 > 0):
                raise ValueError(f"f(x) = {text}: no positive curvature to choose lrs from; "
                                 "give learning rates explicitly")
            base = 2.0 / h0
        lrs = [0.05 * base, 0.4 * base, 0.9 * base, 1.2 * base]
    lrs = [float(v) for v in lrs]
    if not lrs:
        raise ValueError("give at least one learning rate")
    trajs = [run_descent(fn_point(fn), start, optimizer, lr, steps, tol, **opt_kwargs)
             for lr in lrs]

    x_star = mini.x if mini is not None else start
    f_star = mini.value if mini is not None else min(float(np.min(t.losses)) for t in trajs)
    if xlim is None:
        reach = [abs(start - x_star)]
        reach += [float(np.max(np.abs(t.points[:, 0] - x_star))) for t in trajs
                  if t.status != "diverged"]
        half = 1.2 * max(max(reach), 1e-3)
        xlim = (x_star - half, x_star + half)
    windows, curves = [], []
    half_base = 0.5 * (xlim[1] - xlim[0])
    for t in trajs:
        lim = xlim
        if t.status == "diverged" and len(t.points) > 1:
            # Widen this panel just enough to show the first swings outwards.
            swing = np.abs(t.points[:4, 0] - x_star)
            swing = swing[swing <= 3.0 * half_base]
            half = max(half_base, 1.15 * float(swing.max()) if swing.size else 0.0)
            lim = (x_star - half, x_star + half)
        grid = np.linspace(lim[0], lim[1], 400)
        windows.append(lim)
        curves.append((grid, _values_1d(fn, grid)))

    n = len(lrs)
    fig = new_figure((max(4.0 * n, 7.0), 7.4))
    gs = fig.add_gridspec(2, n, height_ratios=[3, 2])
    top = [fig.add_subplot(gs[0, i]) for i in range(n)]
    bottom = [fig.add_subplot(gs[1, i]) for i in range(n)]
    for ax in bottom[1:]:
        ax.sharey(bottom[0])
    # Below ~1e-15 relative, f(x_k) − f(x*) is rounding noise: draw it as a floor.
    floor = 1e-15 * max(1.0, abs(f_star))
    paths, heads, gaps_lines = [], [], []
    gap_max = 1.0
    for i, (t, ax, bx) in enumerate(zip(trajs, top, bottom)):
        ratio = t.lr / bound if math.isfinite(bound) else None
        verdict, color = _verdict(t, ratio)
        grid, curve = curves[i]
        # The vertical range follows the path, not the whole curve, so the steps stay visible.
        inside = (t.points[:, 0] >= windows[i][0]) & (t.points[:, 0] <= windows[i][1])
        finite = curve[np.isfinite(curve)]
        c_lo = min(float(finite.min()) if finite.size else f_star, f_star)
        c_hi = max(float(t.losses[inside].max()) if inside.any() else c_lo, float(t.losses[0]))
        pad = 0.08 * (c_hi - c_lo or 1.0)
        ax.plot(grid, curve, color="0.35", lw=1.4, zorder=1)
        if mini is not None:
            ax.axvline(x_star, color="0.6", ls=":", lw=1)
        xs = t.points[:, 0]
        (path,) = ax.plot(xs, t.losses, "-o", color=color, ms=3.5, lw=1.1, alpha=0.9, zorder=3)
        (head,) = ax.plot(xs[-1:], t.losses[-1:], "o", color=color, ms=8, mec="k", zorder=4)
        ax.plot([xs[0]], [t.losses[0]], "s", color="white", mec="k", ms=7, zorder=5,
                label="start")
        paths.append(path)
        heads.append(head)
        ax.set_xlim(*windows[i])
        ax.set_ylim(c_lo - pad, c_hi + pad)
        ax.set_xlabel("x")
        if i == 0:
            ax.set_ylabel("f(x)")
        head_txt = f"lr = {t.lr:.3g}"
        if math.isfinite(bound):
            head_txt += f"  ({ratio:.2g} × bound)"
        if mini is not None and math.isfinite(bound):
            head_txt += f"\nstep factor 1 − lr·f''(x*) = {1.0 - t.lr * mini.curvature:.2f}"
        ax.set_title(f"{head_txt}\n{verdict}", fontsize=10, color=color)
        gaps = np.maximum(t.losses - f_star, floor)
        gap_max = max(gap_max, float(gaps.max()))
        (gl,) = bx.semilogy(np.arange(len(gaps)), gaps, "-o", color=color, ms=2.5, lw=1.2)
        gaps_lines.append((gl, gaps))
        if t.status == "diverged":
            bx.plot([len(gaps) - 1], [gaps[-1]], "x", color=color, ms=9, mew=2)
            bx.annotate("diverged", (len(gaps) - 1, gaps[-1]), textcoords="offset points",
                        xytext=(0, -16), ha="center", fontsize=8, color=color)
        bx.set_xlim(-0.5, steps + 0.5)
        bx.set_xlabel("step k")
        if i == 0:
            bx.set_ylabel("f(x_k) − f(x*)" if mini is not None else "f(x_k) − lowest f reached")
        bx.grid(True, which="major", alpha=0.3)
    bottom[0].set_ylim(floor / 3, gap_max * 10)
    if mini is not None and math.isfinite(bound):
        head = (f"Gradient descent ({optimizer}) on f(x) = {text} from x₀ = {start:g}:  "
                f"f''(x*) = {mini.curvature:.4g} at x* = {_fmt(mini.x)}, so the stability "
                f"bound is lr < 2/f''(x*) = {bound:.4g}")
        sub = ("Near x* each step multiplies x − x* by about (1 − lr·f''(x*)): factor in (0, 1) "
               "creeps in, (−1, 0) oscillates in, below −1 oscillates out and diverges")
        fig.suptitle(f"{head}\n{sub}", fontsize=11)
    else:
        fig.suptitle(f"Gradient descent ({optimizer}) on f(x) = {text} from x₀ = {start:g}",
                     fontsize=11)

    def update(k: int) -> None:
        for t, path, head, (gl, gaps) in zip(trajs, paths, heads, gaps_lines):
            pts = _clip_path(t.points, k)
            path.set_data(pts[:, 0], t.losses[: len(pts)])
            head.set_data(pts[-1:, 0], t.losses[len(pts) - 1 : len(pts)])
            gl.set_data(np.arange(len(pts)), gaps[: len(pts)])

    notes = []
    if mini is not None:
        notes.append(f"f(x) = {text}: minimum x* = {_fmt(mini.x)}, f''(x*) = "
                     f"{mini.curvature:.6g} (flowgrad's second derivative), "
                     f"stability bound 2/f''(x*) = {bound:.6g}")
    plot = DescentPlot(fig, trajs, "learning-rates", max(t.n_steps for t in trajs), update, notes)
    if out is not None:
        plot.save(out)
    return plot


# ---------------------------------------------------------------------------------------------
# 2-D: optimizers on a surface
# ---------------------------------------------------------------------------------------------


def _contour(ax: Any, surface: Surface, n: int = 260, filled: bool = True) -> float:
    """Log-spaced contours of ``f − min`` (filled or lines); returns the minimum value used."""
    from matplotlib.colors import LogNorm

    X, Y, Z = surface.grid(n)
    finite = np.isfinite(Z)
    zmin = float(min(np.min(Z[finite]), surface.min_value)) if finite.any() else 0.0
    G = np.where(finite, Z - zmin, np.nan)
    pos = G[np.isfinite(G) & (G > 0)]
    if pos.size == 0:
        return zmin
    lo = max(float(np.quantile(pos, 0.002)), float(pos.max()) * 1e-9)
    hi = float(np.quantile(pos, 0.995))
    if hi <= lo * 1.01:
        hi = lo * 10
    levels = np.geomspace(lo, hi, 16)
    Gc = np.clip(G, lo, hi)
    if filled:
        ax.contourf(X, Y, Gc, levels=levels, norm=LogNorm(lo, hi), cmap="Blues_r", alpha=0.55,
                    extend="neither")
    ax.contour(X, Y, Gc, levels=levels, colors="0.45", linewidths=0.5, alpha=0.7, zorder=2)
    ax.set_xlim(*surface.xlim)
    ax.set_ylim(*surface.ylim)
    ax.set_xlabel("x")
    ax.set_ylabel("y")
    return zmin


def _mark_minima(ax: Any, surface: Surface, colors: Sequence[str] | None = None) -> list:
    handles = []
    if len(surface.minima):
        label = "minimum" if surface.minima_known else "grid minimum"
        if len(surface.minima) > 1:
            label = "minima" if surface.minima_known else "grid minima"
        h = ax.scatter(surface.minima[:, 0], surface.minima[:, 1], marker="*", s=240,
                       c=list(colors) if colors is not None else "gold", edgecolors="k",
                       linewidths=0.9, zorder=6, label=label)
        handles.append(h)
    if len(surface.saddles):
        h = ax.scatter(surface.saddles[:, 0], surface.saddles[:, 1], marker="X", s=110,
                       c="white", edgecolors="k", zorder=6, label="saddle point")
        handles.append(h)
    return handles


_PATH_COLORS = ("#d62728", "#ff7f0e", "#9467bd", "#2ca02c", "#8c564b", "#e377c2", "#17becf",
                "#7f7f7f", "#bcbd22", "#1f77b4")


def plot_optimizers(
    surface: str | Surface = "ill-conditioned",
    start: Sequence[float] | None = None,
    steps: int | None = None,
    optimizers: Sequence[str] = DEFAULT_OPTIMIZERS,
    lrs: Any = None,
    tol: float = 1e-6,
    *,
    xlim: tuple[float, float] | None = None,
    ylim: tuple[float, float] | None = None,
    out: str | os.PathLike | None = None,
) -> DescentPlot:
    """The paths of several optimizers from one start on a contour plot of a surface.

    Left: log-spaced contours of ``f − min f`` with every path, the start, the minima (and
    saddle points). Right: ``f − min f`` per step on a log scale. One legend names each
    optimizer, its learning rate and how its run ended.

    Args:
        surface: a built-in name (``"ill-conditioned"``, ``"rosenbrock"``, ``"beale"``,
            ``"himmelblau"``, ``"saddle"``), a formula of ``x`` and ``y``, or a
            :class:`~flowgrad.viz.surfaces.Surface`.
        start: the common start (default: the surface's).
        steps: steps per optimizer (default: the surface's).
        optimizers: names from :data:`OPTIMIZERS`.
        lrs: ``None`` (tuned per surface and optimizer), one number for all, a mapping
            name -> lr, or one number per optimizer.
        tol: the gradient-norm tolerance.
        xlim: the window along x (default: the surface's).
        ylim: the window along y.
        out: if given, the picture is also saved there (.png or .svg).

    Returns:
        The :class:`DescentPlot`.
    """
    surf = get_surface(surface, xlim, ylim)
    names = _check_optimizers(optimizers)
    rates = _resolve_lrs(names, lrs, surf)
    x0 = _start_array(surf.start if start is None else start)
    if x0.size != 2:
        raise ValueError(f"a surface needs a 2-D start (x, y), got {x0.tolist()}")
    steps = surf.steps if steps is None else int(steps)
    trajs = [run_descent(surf, x0, name, lr, steps, tol) for name, lr in zip(names, rates)]

    fig = new_figure((13.0, 6.4))
    gs = fig.add_gridspec(1, 2, width_ratios=[1.35, 1])
    ax = fig.add_subplot(gs[0, 0])
    lx = fig.add_subplot(gs[0, 1])
    zmin = _contour(ax, surf)
    floor = 1e-300
    lines, heads, loss_lines = [], [], []
    for i, t in enumerate(trajs):
        color = _PATH_COLORS[i % len(_PATH_COLORS)]
        if t.status == "diverged":
            end = f"diverged at step {t.diverged_at}"
        elif t.steps_to_tol is not None:
            end = f"|∇f| < {tol:g} at step {t.steps_to_tol}"
        else:
            end = f"f − min = {max(t.final_loss - zmin, 0):.2g} after {t.n_steps}"
        every = max(1, len(t.points) // 40)
        (line,) = ax.plot(t.points[:, 0], t.points[:, 1], "-o", color=color, lw=1.6, ms=3,
                          markevery=every, alpha=0.95, zorder=4, label=f"{t.label}: {end}")
        (head,) = ax.plot(t.points[-1:, 0], t.points[-1:, 1], "o", color=color, ms=7,
                          mec="k", zorder=5)
        gaps = np.maximum(t.losses - zmin, floor)
        (ll,) = lx.semilogy(np.arange(len(gaps)), gaps, color=color, lw=1.6)
        lines.append(line)
        heads.append(head)
        loss_lines.append((ll, gaps))
    ax.plot([x0[0]], [x0[1]], "s", color="white", mec="k", ms=9, zorder=7, label="start")
    _mark_minima(ax, surf)
    ax.set_title(surf.title, fontsize=10.5)
    if (surf.xlim[1] - surf.xlim[0]) / (surf.ylim[1] - surf.ylim[0]) < 2.5:
        ax.set_aspect("equal", adjustable="box")
    all_gaps = np.concatenate([g for _, g in loss_lines])
    lx.set_ylim(max(1e-14, float(all_gaps.min()) / 3), float(all_gaps.max()) * 5)
    lx.set_xlim(0, steps)
    lx.set_xlabel("step")
    lx.set_ylabel("f − min f" if surf.minima_known else "f − lowest grid value")
    lx.set_title("loss per step (log scale)", fontsize=10.5)
    lx.grid(True, alpha=0.3)
    fig.legend(*ax.get_legend_handles_labels(), loc="outside lower center", ncol=3,
               fontsize=9, frameon=False)

    def update(k: int) -> None:
        for t, line, head, (ll, gaps) in zip(trajs, lines, heads, loss_lines):
            pts = _clip_path(t.points, k)
            line.set_data(pts[:, 0], pts[:, 1])
            head.set_data(pts[-1:, 0], pts[-1:, 1])
            ll.set_data(np.arange(len(pts)), gaps[: len(pts)])

    notes = [f"surface: {surf.title}; start {_point_text(x0)}; {steps} steps"]
    plot = DescentPlot(fig, trajs, "optimizers", max(t.n_steps for t in trajs), update, notes)
    if out is not None:
        plot.save(out)
    return plot


# ---------------------------------------------------------------------------------------------
# Multi-start: which minimum does each start reach?
# ---------------------------------------------------------------------------------------------


def plot_basins(
    surface: str | Surface = "himmelblau",
    n_starts: int = 81,
    optimizer: str = "sgd",
    lr: float | None = None,
    steps: int | None = None,
    tol: float = 1e-6,
    *,
    starts: str | np.ndarray = "grid",
    seed: int = 0,
    shade: bool = True,
    xlim: tuple[float, float] | None = None,
    ylim: tuple[float, float] | None = None,
    out: str | os.PathLike | None = None,
    **opt_kwargs: Any,
) -> DescentPlot:
    """Many starts on one surface, each path coloured by the minimum it reaches.

    All starts run together as one batched parameter. Each end point is matched to the
    nearest minimum (the known minima of a built-in surface; for a formula, the end points
    are clustered). With ``shade=True`` the background is coloured by the minimum reached
    from every point of a fine grid, showing the basins of attraction themselves.

    Args:
        surface: a built-in name or formula of ``x`` and ``y`` (default Himmelblau's, with
            four minima).
        n_starts: number of starts (a grid uses the next square number).
        optimizer: a name from :data:`OPTIMIZERS`.
        lr: learning rate (default: the surface's multi-start rate).
        steps: steps per start (default: the surface's).
        tol: the gradient-norm tolerance.
        starts: ``"grid"``, ``"random"`` or an array of shape ``(n, 2)``.
        seed: seed for random starts.
        shade: colour the background by basin (a batched run from a 90 × 90 grid).
        xlim: the window along x (default: the surface's).
        ylim: the window along y.
        out: if given, the picture is also saved there (.png or .svg).
        **opt_kwargs: further optimizer options.

    Returns:
        The :class:`DescentPlot`; its summary counts the starts per minimum.
    """
    surf = get_surface(surface, xlim, ylim)
    if isinstance(starts, str):
        if int(n_starts) != n_starts or n_starts < 1:
            raise ValueError(f"n_starts must be a positive integer, got {n_starts!r}")
        P0 = _grid_starts(surf, int(n_starts), starts, seed)
    else:
        P0 = np.asarray(starts, dtype=np.float64).reshape(-1, 2)
    lr = surf.basin_lr if lr is None else float(lr)
    steps = surf.basin_steps if steps is None else int(steps)
    trajs = run_descent_batch(surf, P0, optimizer, lr, steps, tol, **opt_kwargs)
    trajs = [t for t in trajs if len(t.points)]
    if not trajs:
        raise ValueError(f"the surface {surf.name!r} is not finite at any start")

    span = max(surf.xlim[1] - surf.xlim[0], surf.ylim[1] - surf.ylim[0])
    radius = 0.04 * span
    ok = np.array([t.status != "diverged" for t in trajs])
    ends = np.array([t.final_point for t in trajs])
    end_vals = np.array([t.final_loss for t in trajs])
    if surf.minima_known:
        centres = surf.minima
    else:
        centres = _cluster(ends[ok], end_vals[ok], radius) if ok.any() else np.zeros((0, 2))
    which = np.where(ok, _assign(ends, centres, radius), -2)  # -1 did not settle, -2 diverged

    fig = new_figure((8.6, 7.6))
    ax = fig.add_subplot(1, 1, 1)
    _contour(ax, surf, filled=not shade)
    colors = [_PATH_COLORS[i % len(_PATH_COLORS)] for i in range(len(centres))]
    cat_color = {-1: "0.35", -2: "k"}
    if shade and len(centres):
        from matplotlib.colors import ListedColormap

        res = 90
        gx, gy = np.meshgrid(np.linspace(*surf.xlim, res), np.linspace(*surf.ylim, res))
        dense = run_descent_batch(surf, np.stack([gx.ravel(), gy.ravel()], axis=1), optimizer,
                                  lr, steps, tol, **opt_kwargs)
        d_ok = np.array([t.status != "diverged" and len(t.points) > 0 for t in dense])
        d_end = np.array([t.final_point if len(t.points) else [np.nan, np.nan] for t in dense])
        label = np.where(d_ok, _assign(np.nan_to_num(d_end), centres, radius), -1)
        img = np.where(label >= 0, label, np.nan).reshape(res, res)
        ax.imshow(img, origin="lower", extent=(*surf.xlim, *surf.ylim), aspect="auto",
                  cmap=ListedColormap(colors), vmin=-0.5, vmax=len(centres) - 0.5,
                  alpha=0.22, interpolation="nearest", zorder=1)
    lines = []
    for t, w in zip(trajs, which):
        color = colors[w] if w >= 0 else cat_color[int(w)]
        (line,) = ax.plot(t.points[:, 0], t.points[:, 1], "-", color=color, lw=1.0, alpha=0.85,
                          zorder=3)
        ax.plot(t.points[0, 0], t.points[0, 1], "o", color=color, ms=3.5, mec="k", mew=0.4,
                zorder=4)
        lines.append(line)
    handles = []
    from matplotlib.lines import Line2D

    counts_lines = []
    for i, c in enumerate(centres):
        count = int(np.sum(which == i))
        val = float(surf.values(np.array(c[0]), np.array(c[1])))
        kind = "minimum" if surf.minima_known else "end point"
        text = f"{kind} ({c[0]:.2f}, {c[1]:.2f}): {count} start{'s' if count != 1 else ''}"
        handles.append(Line2D([], [], color=colors[i], marker="*", ms=13, mec="k", lw=2,
                              label=text))
        steps_i = [t.steps_to_tol for t, w in zip(trajs, which) if w == i and t.steps_to_tol]
        med = f"{int(np.median(steps_i))}" if steps_i else "-"
        counts_lines.append([f"({c[0]:.4f}, {c[1]:.4f})", _fmt(val), str(count), med])
    if len(centres):
        ax.scatter(centres[:, 0], centres[:, 1], marker="*", s=280, c=colors, edgecolors="k",
                   linewidths=0.9, zorder=6)
    for code, name in ((-1, "did not settle"), (-2, "diverged")):
        count = int(np.sum(which == code))
        if count:
            handles.append(Line2D([], [], color=cat_color[code], lw=2,
                                  label=f"{name}: {count} start{'s' if count != 1 else ''}"))
            counts_lines.append([name, "-", str(count), "-"])
    if shade and len(centres):
        from matplotlib.patches import Patch

        handles.append(Patch(facecolor="0.85", edgecolor="0.6",
                             label="shading: the minimum reached from each point"))
    ax.legend(handles=handles, loc="upper center", bbox_to_anchor=(0.5, -0.09), ncol=2,
              fontsize=9, frameon=False)
    ax.set_title(f"{surf.title}\n{len(trajs)} starts, {optimizer} lr={lr:g}, {steps} steps: "
                 "the start selects the minimum", fontsize=10.5)
    if abs((surf.xlim[1] - surf.xlim[0]) - (surf.ylim[1] - surf.ylim[0])) < 1e-9:
        ax.set_aspect("equal", adjustable="box")

    header = ["reached", "f there", "starts", "median steps to tol"]
    widths = [max(len(r[i]) for r in [header, *counts_lines]) for i in range(4)]
    rows = [header, ["-" * w for w in widths], *counts_lines]
    table = "\n".join("  ".join(c.ljust(w) for c, w in zip(r, widths)).rstrip() for r in rows)

    def update(k: int) -> None:
        for t, line in zip(trajs, lines):
            pts = _clip_path(t.points, k)
            line.set_data(pts[:, 0], pts[:, 1])

    notes = [f"surface: {surf.title}; {len(trajs)} starts; {optimizer} lr={lr:g}; "
             f"{steps} steps; tolerance {tol:g}"]
    plot = DescentPlot(fig, trajs, "basins", max(t.n_steps for t in trajs), update, notes,
                       table=table)
    if out is not None:
        plot.save(out)
    return plot
