"""Gradient descent you can see: trajectories and pictures of optimizers at work.

Every number here comes from flowgrad itself: the loss is built from flowgrad operations on
a parameter leaf, its gradient comes from ``backward()``, and each step is taken by an
optimizer of :mod:`flowgrad.optim`. Nothing re-implements an update rule; the trajectory
is recorded by a per-step callback that sees the point, the loss and the gradient before
each step.

* :func:`run_descent` runs one optimizer from one start and returns a :class:`Trajectory`
  (points, losses, gradient norms, status ``"converged"``/``"max_steps"``/``"diverged"``);
  :func:`run_descent_batch` runs many starts at once, as one parameter of shape
  ``(n, dim)`` (exact, since every optimizer here updates each coordinate on its own).
* :func:`plot_learning_rates`: a 1-D function, several learning rates side by side, with the
  stability bound ``2 / f''(x*)`` from flowgrad's own second derivative.
* :func:`plot_optimizers`: SGD, momentum, Nesterov, Adagrad, RMSprop and Adam on a contour
  plot of a 2-D surface.
* :func:`plot_basins`: many starts on a surface with several minima, each path coloured by
  the minimum it reaches.

Each plot returns a :class:`DescentPlot` that saves a PNG/SVG (:meth:`DescentPlot.save`),
an animated GIF (:meth:`DescentPlot.save_gif`) and prints a summary table.

Example:
    >>> import flowgrad as fg
    >>> traj = run_descent("x**2", start=1.0, optimizer="sgd", lr=0.25, steps=50)
    >>> traj.status, traj.steps_to_tol
    ('converged', 21)
"""

from __future__ import annotations

import math
import os
import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from flowgrad.viz.surfaces import SURFACES, Surface, get_surface

__all__ = [
    "OPTIMIZERS",
    "SURFACES",
    "Surface",
    "get_surface",
    "DescentPlot",
    "Minimum1D",
    "Trajectory",
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

#: Optimizer names accepted everywhere: name -> (fg.optim class name, default options).
OPTIMIZERS: Mapping[str, tuple[str, Mapping[str, Any]]] = {
    "sgd": ("SGD", {}),
    "momentum": ("SGD", {"momentum": 0.9}),
    "nesterov": ("SGD", {"momentum": 0.9, "nesterov": True}),
    "adagrad": ("Adagrad", {}),
    "rmsprop": ("RMSprop", {}),
    "adam": ("Adam", {}),
    "adamw": ("AdamW", {}),
}

DEFAULT_OPTIMIZERS: tuple[str, ...] = ("sgd", "momentum", "nesterov", "adagrad", "rmsprop", "adam")

# A learning rate when nothing better is known (the class defaults are PyTorch's, and SGD
# has none).
_FALLBACK_LR = {"sgd": 0.01, "momentum": 0.01, "nesterov": 0.01, "adagrad": 0.01,
                "rmsprop": 0.01, "adam": 0.001, "adamw": 0.001}

IMAGE_SUFFIXES = (".png", ".svg", ".pdf")


# ---------------------------------------------------------------------------------------------
# Running an optimizer
# ---------------------------------------------------------------------------------------------


@dataclass(eq=False)
class Trajectory:
    """The recorded run of one optimizer from one start.

    ``points[k]`` is the point after ``k`` steps, ``losses[k]`` and ``grad_norms[k]`` the
    loss and gradient norm there. The arrays hold finite numbers only: a run that diverges
    keeps the points up to its last finite one, so a drawn path never contains NaN.

    Attributes:
        optimizer: the optimizer's name (``"sgd"``, ``"momentum"``, ...).
        lr: the learning rate.
        points: shape ``(n_steps + 1, dim)``.
        losses: shape ``(n_steps + 1,)``.
        grad_norms: shape ``(n_steps + 1,)``, the Euclidean norm of the gradient.
        status: ``"converged"`` (the gradient norm is below ``tol`` at the end),
            ``"max_steps"`` (it is not) or ``"diverged"``.
        steps_to_tol: the step from which the gradient norm stayed below ``tol`` to the
            end of the run, or ``None``.
        tol: the gradient-norm tolerance.
        steps: the number of steps asked for.
        diverged_at: the step at which divergence was detected, or ``None``.
        options: the optimizer's options besides the learning rate.
    """

    optimizer: str
    lr: float
    points: np.ndarray
    losses: np.ndarray
    grad_norms: np.ndarray
    status: str
    steps_to_tol: int | None
    tol: float
    steps: int
    diverged_at: int | None = None
    options: dict[str, Any] = field(default_factory=dict)

    @property
    def n_steps(self) -> int:
        """Steps actually recorded (fewer than :attr:`steps` after a divergence)."""
        return max(len(self.points) - 1, 0)

    @property
    def start(self) -> np.ndarray:
        """The first point (empty if the start itself was not finite)."""
        return self.points[0] if len(self.points) else np.zeros(0)

    @property
    def final_point(self) -> np.ndarray:
        """The last finite point."""
        return self.points[-1] if len(self.points) else np.zeros(0)

    @property
    def final_loss(self) -> float:
        """The loss at the last finite point (NaN if there is none)."""
        return float(self.losses[-1]) if len(self.losses) else math.nan

    @property
    def label(self) -> str:
        """``"momentum lr=0.01"``."""
        return f"{self.optimizer} lr={self.lr:g}"


def make_optimizer(name: str, params: list, lr: float | None = None, **options: Any) -> Any:
    """An optimizer of :mod:`flowgrad.optim` by name.

    Args:
        name: one of :data:`OPTIMIZERS` (``"momentum"`` and ``"nesterov"`` are SGD with
            ``momentum=0.9``, the latter with ``nesterov=True``).
        params: the leaves to optimize.
        lr: the learning rate (``None``: a generic default).
        **options: passed to the optimizer, overriding the name's defaults.

    Returns:
        The optimizer.

    Raises:
        ValueError: unknown name or a learning rate that is not a positive finite number.
    """
    from flowgrad import optim

    key = name.strip().lower()
    if key not in OPTIMIZERS:
        raise ValueError(f"unknown optimizer {name!r}; known: {', '.join(OPTIMIZERS)}")
    cls_name, defaults = OPTIMIZERS[key]
    lr = _FALLBACK_LR[key] if lr is None else float(lr)
    if not (math.isfinite(lr) and lr > 0):
        raise ValueError(f"the learning rate must be a positive number, got {lr!r}")
    return getattr(optim, cls_name)(params, lr=lr, **{**defaults, **options})


def _start_array(start: Any) -> np.ndarray:
    arr = np.atleast_1d(np.asarray(start, dtype=np.float64))
    if arr.ndim != 1 or arr.size == 0:
        raise ValueError(f"a start must be a number or a point (x, y), got {start!r}")
    if not np.all(np.isfinite(arr)):
        raise ValueError(f"the start must be finite, got {start!r}")
    return arr


def _row_objective(f: Any, dim: int) -> Callable[[Any], Any]:
    """A formula, Surface or elementwise function as ``losses(P) -> (n,)`` on ``P (n, dim)``."""
    from flowgrad.viz.formula import Formula, compile_formula

    if isinstance(f, str):
        if dim == 1 and f.strip().lower().replace("_", "-") in SURFACES:
            raise ValueError(f"surface {f!r} needs a 2-D start (x, y), got a number")
        if dim == 1:
            f = compile_formula(f, variables=("x",))
        elif dim == 2:
            f = get_surface(f)
        else:
            raise ValueError(f"formulas describe 1-D (x) or 2-D (x, y) problems, not {dim}-D")
    if isinstance(f, Surface):
        if dim != 2:
            raise ValueError(f"surface {f.name!r} needs a 2-D start (x, y), got {dim}-D")
        return lambda P: f.fn(P[:, 0], P[:, 1])
    if isinstance(f, Formula):
        names = ("x", "y")[:dim]
        extra = [v for v in f.variables if v not in names]
        if extra or dim > 2:
            raise ValueError(
                f"formula {f.text!r} uses {', '.join(f.variables)}; a {dim}-D start needs "
                f"{' and '.join(names)}"
            )
        return lambda P: f(**{n: P[:, i] for i, n in enumerate(names) if n in f.variables})
    if callable(f):
        if dim != 1:
            raise ValueError("run_descent_batch takes a formula or Surface for 2-D problems")
        return lambda P: f(P[:, 0])
    raise TypeError(f"expected a formula, a Surface or a function, got {type(f).__name__}")


class _Recorder:
    """The per-step callback that records trajectories and detects divergence.

    A row diverges at the first step whose point, loss or gradient is not finite, whose
    point leaves ``|x| <= bound``, or whose loss has grown past ``growth`` times its
    starting size. From then on that row is no longer recorded.
    """

    def __init__(self, n: int, dim: int, steps: int, tol: float, bound: float, growth: float,
                 stop_at_tol: bool):
        self.points = np.zeros((steps + 1, n, dim))
        self.losses = np.zeros((steps + 1, n))
        self.grad_norms = np.zeros((steps + 1, n))
        self.end = np.full(n, -1)  # last recorded index per row
        self.diverged_at = np.full(n, -1)
        self.active = np.ones(n, dtype=bool)
        self.tol, self.bound, self.growth, self.stop_at_tol = tol, bound, growth, stop_at_tol
        self.scale = np.ones(n)
        self.last = -1

    def __call__(self, k: int, points: np.ndarray, losses: np.ndarray, grads: np.ndarray) -> bool:
        with np.errstate(all="ignore"):
            gn = np.sqrt(np.sum(grads * grads, axis=1))
            finite = np.isfinite(points).all(axis=1) & np.isfinite(losses) & np.isfinite(gn)
            if k == 0:
                self.scale = np.where(finite, np.maximum(np.abs(losses), 1.0), 1.0)
            bad = (
                ~finite
                | (np.abs(points).max(axis=1) > self.bound)
                | (np.abs(losses) > self.growth * self.scale)
            )
        self.points[k], self.losses[k], self.grad_norms[k] = points, losses, gn
        self.last = k
        newly = self.active & bad
        self.diverged_at[newly] = k
        # The point that tripped the check is still drawn when it is finite (it shows the
        # jump out); a non-finite one is dropped.
        self.end[newly & finite] = k
        keep = self.active & ~bad
        self.end[keep] = k
        self.active &= ~bad
        if self.stop_at_tol:
            self.active &= ~(gn < self.tol)
        return not self.active.any()

    def trajectories(self, optimizer: str, lr: float, steps: int,
                     options: dict[str, Any]) -> list[Trajectory]:
        K = self.last + 1
        idx = np.arange(K)[:, None]
        valid = idx <= self.end[None, :]
        above = (self.grad_norms[:K] >= self.tol) & valid
        last_above = np.where(above.any(axis=0), K - 1 - np.argmax(above[::-1], axis=0), -1)
        out = []
        for i in range(self.points.shape[1]):
            e = int(self.end[i])
            diverged = self.diverged_at[i] >= 0
            settled = not diverged and e >= 0 and self.grad_norms[e, i] < self.tol
            out.append(
                Trajectory(
                    optimizer=optimizer,
                    lr=lr,
                    points=self.points[: e + 1, i].copy(),
                    losses=self.losses[: e + 1, i].copy(),
                    grad_norms=self.grad_norms[: e + 1, i].copy(),
                    status="diverged" if diverged else ("converged" if settled else "max_steps"),
                    steps_to_tol=int(last_above[i] + 1) if settled else None,
                    tol=self.tol,
                    steps=steps,
                    diverged_at=int(self.diverged_at[i]) if diverged else None,
                    options=dict(options),
                )
            )
        return out


def _descend(losses_fn: Callable[[Any], Any], leaf: Any, opt: Any, steps: int,
             callback: Callable[[int, np.ndarray, np.ndarray, np.ndarray], bool | None]) -> None:
    """The one loop: loss, backward, report to the callback, step.

    The loss of each row is evaluated on the leaf; their sum is differentiated, which
    gives every row its own gradient because the rows do not interact.
    """
    n = leaf.shape[0]
    for k in range(steps + 1):
        opt.zero_grad()
        with np.errstate(all="ignore"):
            out = losses_fn(leaf)
            if out.requires_grad:
                out.sum().backward()
        grads = leaf.grad.numpy() if leaf.grad is not None else np.zeros(leaf.shape)
        losses = np.broadcast_to(np.asarray(out.numpy(), dtype=np.float64), (n,))
        stop = callback(k, leaf.data.reshape(n, -1), losses, grads.reshape(n, -1))
        if stop or k == steps:
            return
        with np.errstate(all="ignore"):
            opt.step()


def _check_run_args(steps: int, tol: float, bound: float, growth: float) -> None:
    if int(steps) != steps or steps < 0:
        raise ValueError(f"steps must be a non-negative integer, got {steps!r}")
    for name, v in (("tol", tol), ("bound", bound), ("growth", growth)):
        if not (isinstance(v, (int, float)) and v > 0):
            raise ValueError(f"{name} must be a positive number, got {v!r}")


def run_descent_batch(
    f: Any,
    starts: Any,
    optimizer: str = "sgd",
    lr: float | None = None,
    steps: int = 100,
    tol: float = 1e-6,
    *,
    bound: float = 1e6,
    growth: float = 1e6,
    stop_at_tol: bool = False,
    callback: Callable[[int, np.ndarray, np.ndarray, np.ndarray], Any] | None = None,
    **opt_kwargs: Any,
) -> list[Trajectory]:
    """Run one optimizer from many starts at once.

    The starts are the rows of one parameter leaf of shape ``(n, dim)`` and the loss is the
    sum of the rows' losses, so one backward pass gives every row its own gradient. Every
    optimizer of :data:`OPTIMIZERS` updates each coordinate independently, so this equals
    ``n`` separate runs (and is far faster).

    Args:
        f: a formula of ``x`` (1-D) or of ``x, y`` (2-D), a built-in surface name, a
            :class:`~flowgrad.viz.surfaces.Surface`, a parsed
            :class:`~flowgrad.viz.formula.Formula`, or (1-D) an elementwise function of a
            Tensor built from flowgrad operations.
        starts: shape ``(n, dim)`` (or ``(n,)`` for 1-D).
        optimizer: a name from :data:`OPTIMIZERS`.
        lr: the learning rate.
        steps: the number of optimizer steps.
        tol: the gradient-norm tolerance for ``"converged"``.
        bound: a row diverges when a coordinate's magnitude exceeds this.
        growth: a row diverges when its loss exceeds ``growth · max(|loss₀|, 1)``.
        stop_at_tol: stop recording a row once its gradient norm is below ``tol``.
        callback: called after each evaluation as ``callback(step, points, losses, grads)``
            with arrays of shape ``(n, dim)``, ``(n,)``, ``(n, dim)``; returning True stops.
        **opt_kwargs: further optimizer options (``momentum=``, ``betas=``, ...).

    Returns:
        One :class:`Trajectory` per start (a start where the loss is not finite gives an
        empty, ``"diverged"`` trajectory).
    """
    import flowgrad as fg

    _check_run_args(steps, tol, bound, growth)
    arr = np.asarray(starts, dtype=np.float64)
    if arr.ndim == 1:
        arr = arr[:, None]
    if arr.ndim != 2 or arr.shape[0] == 0:
        raise ValueError(f"starts must have shape (n, dim), got {np.shape(starts)}")
    n, dim = arr.shape
    losses_fn = _row_objective(f, dim)
    leaf = fg.tensor(arr.copy(), requires_grad=True)
    opt = make_optimizer(optimizer, [leaf], lr, **opt_kwargs)
    lr_used = float(opt.param_groups[0]["lr"]) if hasattr(opt, "param_groups") else float(lr)
    rec = _Recorder(n, dim, int(steps), float(tol), float(bound), float(growth), stop_at_tol)

    def on_step(k, points, losses, grads):
        stop = rec(k, points, losses, grads)
        if callback is not None and callback(k, points, losses, grads):
            return True
        return stop

    _descend(losses_fn, leaf, opt, int(steps), on_step)
    return rec.trajectories(optimizer, lr_used, int(steps), opt_kwargs)


def run_descent(
    f: Any,
    start: Any,
    optimizer: str = "sgd",
    lr: float | None = None,
    steps: int = 100,
    tol: float = 1e-6,
    *,
    bound: float = 1e6,
    growth: float = 1e6,
    stop_at_tol: bool = False,
    callback: Callable[[int, np.ndarray, float, np.ndarray], Any] | None = None,
    **opt_kwargs: Any,
) -> Trajectory:
    """Run one optimizer of :mod:`flowgrad.optim` on ``f`` from ``start``.

    Each step: the loss is computed from the parameter leaf with flowgrad operations,
    ``backward()`` fills the leaf's gradient, the per-step callback records the point, loss
    and gradient norm, and ``optimizer.step()`` moves the leaf.

    Args:
        f: a formula of ``x`` (1-D start) or of ``x, y`` (2-D start), a built-in surface
            name or :class:`~flowgrad.viz.surfaces.Surface`, a parsed formula, or a function
            taking the point as a Tensor of shape ``(dim,)`` and returning a scalar Tensor
            built from flowgrad operations.
        start: a number (1-D) or a point ``(x, y)``.
        optimizer: a name from :data:`OPTIMIZERS`.
        lr: the learning rate (``None``: a generic default).
        steps: the number of optimizer steps; ``points`` has ``steps + 1`` rows unless the
            run diverges (or ``stop_at_tol`` ends it early).
        tol: the gradient-norm tolerance.
        bound: the run diverges when a coordinate's magnitude exceeds this.
        growth: the run diverges when the loss exceeds ``growth · max(|loss₀|, 1)``.
        stop_at_tol: stop as soon as the gradient norm is below ``tol``.
        callback: called after each evaluation as ``callback(step, point, loss, grad)``;
            returning True stops the run.
        **opt_kwargs: further optimizer options (``momentum=``, ``betas=``, ...).

    Returns:
        The :class:`Trajectory`.

    Raises:
        ValueError: bad arguments, or a loss that is not finite at the start.

    Example:
        >>> t = run_descent(lambda p: (p ** 2).sum(), start=[1.0, -2.0], lr=0.1, steps=3)
        >>> t.points[1].tolist()
        [0.8, -1.6]
    """
    import flowgrad as fg

    x0 = _start_array(start)
    _check_run_args(steps, tol, bound, growth)
    dim = x0.size
    if callable(f) and not isinstance(f, (str, Surface)) and not _is_formula(f):
        leaf = fg.tensor(x0.copy(), requires_grad=True)

        def losses_fn(p):
            out = f(p)
            if not isinstance(out, fg.Tensor) or out.data.size != 1:
                raise ValueError("f must return a scalar Tensor built from flowgrad operations")
            return out.reshape(1)

    else:
        losses_fn = _row_objective(f, dim)
        leaf = fg.tensor(x0[None, :].copy(), requires_grad=True)
    opt = make_optimizer(optimizer, [leaf], lr, **opt_kwargs)
    lr_used = float(opt.param_groups[0]["lr"]) if hasattr(opt, "param_groups") else float(lr)
    rec = _Recorder(1, dim, int(steps), float(tol), float(bound), float(growth), stop_at_tol)

    def on_step(k, points, losses, grads):
        stop = rec(k, points, losses, grads)
        if callback is not None and callback(k, points[0].copy(), float(losses[0]),
                                             grads[0].copy()):
            return True
        return stop

    if leaf.ndim == 1:
        # A user function sees the point itself; present it to the loop as one row.
        _descend_single(losses_fn, leaf, opt, int(steps), on_step)
    else:
        _descend(losses_fn, leaf, opt, int(steps), on_step)
    traj = rec.trajectories(optimizer, lr_used, int(steps), opt_kwargs)[0]
    if len(traj.points) == 0:
        raise ValueError(f"the loss is not finite at the start {x0.tolist()}")
    return traj


def _descend_single(losses_fn, leaf, opt, steps, callback) -> None:
    """:func:`_descend` for a leaf of shape ``(dim,)`` seen as one row."""
    for k in range(steps + 1):
        opt.zero_grad()
        with np.errstate(all="ignore"):
            out = losses_fn(leaf)
            if out.requires_grad:
                out.sum().backward()
        grads = leaf.grad.numpy() if leaf.grad is not None else np.zeros(leaf.shape)
        stop = callback(k, leaf.data.reshape(1, -1), np.asarray(out.numpy(), np.float64),
                        grads.reshape(1, -1))
        if stop or k == steps:
            return
        with np.errstate(all="ignore"):
            opt.step()


def _is_formula(f: Any) -> bool:
    from flowgrad.viz.formula import Formula

    return isinstance(f, Formula)


def _fmt(v: float) -> str:
    if v == 0:
        return "0"
    return f"{v:.4g}" if 1e-3 <= abs(v) < 1e5 else f"{v:.3e}"


def _point_text(p: np.ndarray) -> str:
    if p.size == 1:
        return _fmt(float(p[0]))
    return "(" + ", ".join(_fmt(float(v)) for v in p) + ")"


def summary_table(trajectories: Sequence[Trajectory]) -> str:
    """A plain-text table: optimizer, learning rate, status, final point and loss, steps to tol.

    Args:
        trajectories: the runs.

    Returns:
        The table, one line per run, without a trailing newline.
    """
    tol = trajectories[0].tol if trajectories else 1e-6
    header = ["optimizer", "lr", "status", "final point", "final loss", f"steps to |grad|<{tol:g}"]
    rows = []
    for t in trajectories:
        if t.status == "diverged":
            last = f"diverged at step {t.diverged_at}"
            rows.append([t.optimizer, f"{t.lr:g}", "diverged", "-", "-", last])
        else:
            reached = str(t.steps_to_tol) if t.steps_to_tol is not None else f"not in {t.n_steps}"
            rows.append([t.optimizer, f"{t.lr:g}", t.status, _point_text(t.final_point),
                         _fmt(t.final_loss), reached])
    widths = [max(len(r[i]) for r in [header, *rows]) for i in range(len(header))]
    lines = ["  ".join(c.ljust(w) for c, w in zip(r, widths)).rstrip() for r in [header, *rows]]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)


# ---------------------------------------------------------------------------------------------
# Figures: creating, saving, animating
# ---------------------------------------------------------------------------------------------


def _matplotlib() -> Any:
    try:
        import matplotlib
        from matplotlib.figure import Figure  # noqa: F401
    except ImportError as exc:  # pragma: no cover - depends on the environment
        raise ImportError(
            "the descent and derivative pictures need matplotlib: "
            "pip install 'flowgrad[viz]' (or pip install matplotlib pillow)"
        ) from exc
    return matplotlib


def _new_figure(figsize: tuple[float, float]) -> Any:
    """A figure not registered with pyplot, so nothing leaks and no GUI backend is needed."""
    _matplotlib()
    from matplotlib.figure import Figure

    return Figure(figsize=figsize, layout="constrained")


def _atomic_target(path: Path) -> tuple[Path, Callable[[], None]]:
    """A temporary name beside ``path`` and a function that moves it into place.

    The temporary file is created by the writer itself (matplotlib, Pillow), so it gets
    the usual permissions; ``os.replace`` then swaps it in atomically.
    """
    parent = path.parent
    if not parent.is_dir():
        raise FileNotFoundError(f"cannot write {path}: directory {parent} does not exist")
    tmp_path = parent / f".{path.stem}.{os.getpid()}.{uuid.uuid4().hex[:8]}.tmp{path.suffix}"

    def commit() -> None:
        os.replace(tmp_path, path)

    return tmp_path, commit


def save_figure(figure: Any, path: str | os.PathLike, dpi: int = 110) -> Path:
    """Write a matplotlib figure atomically; the format follows the suffix (.png, .svg, .pdf).

    Args:
        figure: the figure.
        path: where to write it.
        dpi: resolution for PNG.

    Returns:
        The path written.

    Raises:
        ValueError: an unsupported suffix.
        FileNotFoundError: the directory does not exist.
    """
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix not in IMAGE_SUFFIXES:
        raise ValueError(
            f"cannot write {path.name!r}: use a .png or .svg file name (got {suffix or 'none'})"
        )
    tmp, commit = _atomic_target(path)
    try:
        figure.savefig(tmp, format=suffix[1:], dpi=dpi)
        commit()
    finally:
        tmp.unlink(missing_ok=True)
    return path


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
        _matplotlib()
        try:
            from matplotlib.animation import FuncAnimation
        except ImportError as exc:  # pragma: no cover
            raise ImportError("GIF output needs pillow: pip install pillow") from exc
        frames = _frame_steps(self.max_step, max_frames)
        update = self.update
        counter = self.figure.text(0.006, 0.994, "", ha="left", va="top", fontsize=12,
                                   weight="bold", color="0.2")

        def draw(k: int) -> None:
            update(int(k))
            counter.set_text(f"step {int(k)}")

        anim = FuncAnimation(self.figure, draw, frames=frames, blit=False, repeat=False,
                             cache_frame_data=False)
        tmp, commit = _atomic_target(path)
        try:
            anim.save(str(tmp), writer=_shared_palette_writer()(fps=fps), dpi=dpi)
            commit()
        finally:
            tmp.unlink(missing_ok=True)
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


def _function_1d(f: Any) -> tuple[Callable[[Any], Any], str]:
    """An elementwise function of a Tensor and its display text."""
    from flowgrad.viz.formula import Formula, compile_formula

    if isinstance(f, str):
        f = compile_formula(f, variables=("x",))
    if isinstance(f, Formula):
        if not f.variables:
            raise ValueError(f"formula {f.text!r} does not depend on x; nothing to descend")
        formula = f
        return (lambda x: formula(x=x)), str(formula)
    if callable(f):
        return f, getattr(f, "__name__", "f")
    raise TypeError(f"expected a formula of x or a function, got {type(f).__name__}")


def _values_1d(fn: Callable[[Any], Any], xs: np.ndarray) -> np.ndarray:
    import flowgrad as fg

    xs = np.asarray(xs, dtype=np.float64)
    with fg.no_grad(), np.errstate(all="ignore"):
        out = fn(fg.tensor(xs))
    return np.broadcast_to(np.asarray(out.numpy(), dtype=np.float64), xs.shape).copy()


def _derivatives_1d(fn: Callable[[Any], Any], xs: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """f' and f'' at every point at once: grad of the sum, then grad of that (create_graph)."""
    import flowgrad as fg

    def total(x):
        return fn(x).sum()

    d1 = fg.grad(total)

    def d1_total(x):
        return d1(x).sum()

    xs = np.asarray(xs, dtype=np.float64)
    with np.errstate(all="ignore"):
        g1 = np.broadcast_to(d1(xs).numpy(), xs.shape).copy()
        g2 = np.broadcast_to(fg.grad(d1_total)(xs).numpy(), xs.shape).copy()
    return g1, g2


@dataclass(frozen=True)
class Minimum1D:
    """A local minimum of a 1-D function and the learning-rate bound it sets.

    Attributes:
        x: the minimiser x*.
        value: f(x*).
        curvature: f''(x*) from flowgrad's second derivative.
        bound: ``2 / f''(x*)`` (``inf`` when the curvature is not positive).
    """

    x: float
    value: float
    curvature: float
    bound: float


def minimum_1d(f: Any, start: float = 2.0, window: tuple[float, float] | None = None) -> Minimum1D:
    """The local minimum that descent from ``start`` heads for, and its stability bound.

    The function is evaluated on a fine grid (all at once) to find its local minima; the
    one downhill of ``start`` is refined by Newton steps with f' and f'' from flowgrad's
    autodiff, and ``f''(x*)`` is flowgrad's second derivative, ``grad(grad(f))``.

    Args:
        f: a formula of ``x`` or an elementwise function of a Tensor.
        start: where descent starts.
        window: the interval searched (default: ``start ± (4 + |start|)``).

    Returns:
        The :class:`Minimum1D`.

    Raises:
        ValueError: no local minimum in the window.
    """
    import flowgrad as fg

    fn, text = _function_1d(f)
    start = float(start)
    lo, hi = window if window is not None else (start - 4 - abs(start), start + 4 + abs(start))
    xs = np.linspace(lo, hi, 4001)
    ys = _values_1d(fn, xs)
    ys = np.where(np.isfinite(ys), ys, np.inf)
    inner = (ys[1:-1] <= ys[:-2]) & (ys[1:-1] < ys[2:]) & np.isfinite(ys[1:-1])
    cand = xs[1:-1][inner]
    if cand.size == 0:
        raise ValueError(
            f"f(x) = {text} has no local minimum in [{lo:g}, {hi:g}]; give learning rates "
            "explicitly (there is no stability bound to choose them from)"
        )
    slope = _derivatives_1d(fn, np.array([start]))[0][0]
    side = cand[cand <= start] if slope > 0 else cand[cand >= start]
    if side.size:
        x = float(side.max() if slope > 0 else side.min())
    else:
        x = float(cand[np.argmin(np.abs(cand - start))])

    def scalar(t):
        return fn(t).sum()

    d1 = fg.grad(scalar)
    d2 = fg.grad(lambda t: d1(t).sum())  # fg.grad(fg.grad(f)): flowgrad's second derivative
    step = xs[1] - xs[0]
    for _ in range(50):
        g, h = float(d1(np.float64(x))), float(d2(np.float64(x)))
        if not (math.isfinite(g) and math.isfinite(h)) or h <= 0:
            break
        dx = float(np.clip(-g / h, -step, step))
        x += dx
        if abs(dx) < 1e-15 * max(1.0, abs(x)):
            break
    h = float(d2(np.float64(x)))
    value = float(_values_1d(fn, np.array([x]))[0])
    bound = 2.0 / h if h > 0 else math.inf
    return Minimum1D(x=x, value=value, curvature=h, bound=bound)


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
    fig = _new_figure((max(4.0 * n, 7.0), 7.4))
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


def fn_point(fn: Callable[[Any], Any]) -> Callable[[Any], Any]:
    """Adapt an elementwise 1-D function to :func:`run_descent`'s point function (shape (1,))."""

    def f(p):
        return fn(p).sum()

    return f


# ---------------------------------------------------------------------------------------------
# 2-D: optimizers on a surface
# ---------------------------------------------------------------------------------------------


def _resolve_lrs(names: Sequence[str], lrs: Any, surface: Surface) -> list[float]:
    if lrs is None:
        return [float(surface.lrs.get(n, _FALLBACK_LR.get(n, 0.01))) for n in names]
    if isinstance(lrs, (int, float)):
        return [float(lrs)] * len(names)
    if isinstance(lrs, Mapping):
        unknown = [k for k in lrs if k not in names]
        if unknown:
            raise ValueError(f"learning rate given for {', '.join(unknown)}, which is not among "
                             f"the optimizers {', '.join(names)}")
        return [float(lrs[n]) if n in lrs else float(surface.lrs.get(n, _FALLBACK_LR.get(n, 0.01)))
                for n in names]
    lrs = [float(v) for v in lrs]
    if len(lrs) != len(names):
        raise ValueError(f"{len(lrs)} learning rates for {len(names)} optimizers")
    return lrs


def _check_optimizers(optimizers: Sequence[str]) -> list[str]:
    names = [o.strip().lower() for o in ([optimizers] if isinstance(optimizers, str)
                                          else optimizers)]
    if not names:
        raise ValueError("give at least one optimizer")
    for n in names:
        if n not in OPTIMIZERS:
            raise ValueError(f"unknown optimizer {n!r}; known: {', '.join(OPTIMIZERS)}")
    return names


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

    fig = _new_figure((13.0, 6.4))
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


def _cluster(points: np.ndarray, values: np.ndarray, radius: float) -> np.ndarray:
    """Greedy clustering: the lowest unassigned point becomes a centre and takes its radius."""
    centres = []
    free = np.ones(len(points), dtype=bool)
    while free.any():
        idx = np.flatnonzero(free)
        c = points[idx[np.argmin(values[idx])]]
        centres.append(c)
        free &= np.linalg.norm(points - c, axis=1) > radius
    return np.array(centres).reshape(-1, 2)


def _assign(ends: np.ndarray, centres: np.ndarray, radius: float) -> np.ndarray:
    """Index of the centre within ``radius`` of each end point, else -1."""
    if len(centres) == 0:
        return np.full(len(ends), -1)
    d = np.linalg.norm(ends[:, None, :] - centres[None, :, :], axis=2)
    near = d.argmin(axis=1)
    return np.where(d[np.arange(len(ends)), near] <= radius, near, -1)


def _grid_starts(surf: Surface, n: int, how: str, seed: int) -> np.ndarray:
    (x0, x1), (y0, y1) = surf.xlim, surf.ylim
    inset_x, inset_y = 0.06 * (x1 - x0), 0.06 * (y1 - y0)
    if how == "random":
        rng = np.random.default_rng(seed)
        u = rng.random((n, 2))
        return np.stack([x0 + inset_x + u[:, 0] * (x1 - x0 - 2 * inset_x),
                         y0 + inset_y + u[:, 1] * (y1 - y0 - 2 * inset_y)], axis=1)
    if how != "grid":
        raise ValueError(f"starts must be 'grid' or 'random', got {how!r}")
    side = max(1, math.ceil(math.sqrt(n)))
    gx, gy = np.meshgrid(np.linspace(x0 + inset_x, x1 - inset_x, side),
                         np.linspace(y0 + inset_y, y1 - inset_y, side))
    return np.stack([gx.ravel(), gy.ravel()], axis=1)


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

    fig = _new_figure((8.6, 7.6))
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
