"""Gradient-descent runs: the arithmetic behind the descent pictures (no matplotlib).

Every number here comes from flowgrad itself: the loss is built from flowgrad operations on
a parameter leaf, its gradient comes from ``backward()``, and each step is taken by an
optimizer of :mod:`flowgrad.optim` (by name, from :mod:`flowgrad.optim.catalogue`). Nothing
re-implements an update rule; the trajectory is recorded by a per-step callback that sees
the point, the loss and the gradient before each step.

* :func:`run_descent` runs one optimizer from one start and returns a :class:`Trajectory`
  (points, losses, gradient norms, status ``"converged"``/``"max_steps"``/``"diverged"``);
  :func:`run_descent_batch` runs many starts at once, as one parameter of shape
  ``(n, dim)`` (exact, since every optimizer here updates each coordinate on its own).
* :func:`minimum_1d` finds the minimum descent heads for and its stability bound
  ``2 / f''(x*)``, from flowgrad's own second derivative.
* :func:`summary_table` prints runs. The private helpers at the end are the choices the
  pictures make: learning rates per optimizer, where multi-start runs begin, which minimum
  each run reached.

The drawings of these runs are in :mod:`flowgrad.viz.descent`.

Example:
    >>> traj = run_descent("x**2", start=1.0, optimizer="sgd", lr=0.25, steps=50)
    >>> traj.status, traj.steps_to_tol
    ('converged', 21)
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from flowgrad.optim.catalogue import OPTIMIZERS, make_optimizer
from flowgrad.viz.surfaces import SURFACES, Surface, get_surface

__all__ = [
    "DEFAULT_OPTIMIZERS",
    "OPTIMIZERS",
    "Minimum1D",
    "Trajectory",
    "fn_point",
    "make_optimizer",
    "minimum_1d",
    "run_descent",
    "run_descent_batch",
    "summary_table",
]

#: The optimizers ``flowgrad descent 2d`` compares by default.
DEFAULT_OPTIMIZERS: tuple[str, ...] = ("sgd", "momentum", "nesterov", "adagrad", "rmsprop", "adam")


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
    lr_used = float(opt.param_groups[0]["lr"])
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
    lr_used = float(opt.param_groups[0]["lr"])
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
# 1-D: the minimum and its stability bound
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


def fn_point(fn: Callable[[Any], Any]) -> Callable[[Any], Any]:
    """Adapt an elementwise 1-D function to :func:`run_descent`'s point function (shape (1,))."""

    def f(p):
        return fn(p).sum()

    return f


# ---------------------------------------------------------------------------------------------
# Choices the pictures make: learning rates, starts, which minimum a run reached
# ---------------------------------------------------------------------------------------------


def _surface_lr(surface: Surface, name: str) -> float:
    # The rate tuned for this surface, else the catalogue's generic one.
    return float(surface.lrs.get(name, OPTIMIZERS[name].lr))


def _resolve_lrs(names: Sequence[str], lrs: Any, surface: Surface) -> list[float]:
    if lrs is None:
        return [_surface_lr(surface, n) for n in names]
    if isinstance(lrs, (int, float)):
        return [float(lrs)] * len(names)
    if isinstance(lrs, Mapping):
        unknown = [k for k in lrs if k not in names]
        if unknown:
            raise ValueError(f"learning rate given for {', '.join(unknown)}, which is not among "
                             f"the optimizers {', '.join(names)}")
        return [float(lrs[n]) if n in lrs else _surface_lr(surface, n) for n in names]
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
            raise ValueError(f"unknown optimizer {n!r}; choose one of {', '.join(OPTIMIZERS)}")
    return names


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
