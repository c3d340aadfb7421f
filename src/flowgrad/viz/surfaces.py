"""Loss surfaces of two variables for the gradient-descent pictures.

A :class:`Surface` is a function ``f(x, y)`` built from flowgrad operations, so the same
code gives values on a whole plotting grid (NumPy arrays in, one array out) and gradients
for an optimizer (parameter leaves in, a graph out). Each built-in surface carries what a
good picture of it needs: a window, a start, a number of steps, learning rates per
optimizer that make the comparison instructive, its known minima and saddle points.

Built-ins (see :data:`SURFACES`):

* ``ill-conditioned``: the bowl ``0.1 x² + 2 y²``; curvatures 0.2 and 4 differ 20-fold, so
  plain SGD zig-zags across the steep direction while crawling along the flat one.
* ``rosenbrock``: ``(1 − x)² + 100 (y − x²)²``; a curved, flat-bottomed valley.
* ``beale``: three squared terms with a sharp minimum at (3, 0.5) and flat plateaus.
* ``himmelblau``: ``(x² + y − 11)² + (x + y² − 7)²``; four minima of equal height.
* ``saddle``: ``x² + y⁴/4 − y²/2``; a saddle point at the origin between minima (0, ±1).

Any formula of ``x`` and ``y`` works too (:func:`get_surface` parses it with the safe
formula parser of :mod:`flowgrad.viz.formula`); its window, start and learning rates are
then chosen from its values and curvature (:func:`surface_from_formula`).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any

import numpy as np

__all__ = [
    "SURFACES",
    "Surface",
    "get_surface",
    "grid_minima",
    "hessian_norm",
    "surface_from_formula",
]

SurfaceFn = Callable[[Any, Any], Any]


@dataclass(frozen=True, eq=False)
class Surface:
    """A function of two variables with the settings that make a good descent picture.

    Attributes:
        name: short name (``"rosenbrock"``) or the formula text.
        title: the plot title, with the formula written out.
        fn: ``fn(x, y) -> Tensor``, elementwise, built from flowgrad operations.
        xlim: the plot window along x.
        ylim: the plot window along y.
        start: the default starting point for :func:`~flowgrad.viz.descent.plot_optimizers`.
        steps: the default number of steps there.
        lrs: default learning rate per optimizer name there.
        minima: known (or, for formulas, grid-found) minima, shape ``(k, 2)``.
        saddles: saddle points worth marking, shape ``(k, 2)``.
        basin_lr: default learning rate (plain SGD) for the multi-start picture.
        basin_steps: default number of steps for the multi-start picture.
        min_value: the lowest value of the surface in the window (for log-spaced contours
            and the loss panel).
        formula: the formula text for surfaces made from a formula, else ``None``.
        minima_known: whether :attr:`minima` are exact (built-ins) or grid estimates.
    """

    name: str
    title: str
    fn: SurfaceFn
    xlim: tuple[float, float]
    ylim: tuple[float, float]
    start: tuple[float, float]
    steps: int
    lrs: Mapping[str, float]
    minima: np.ndarray
    saddles: np.ndarray = field(default_factory=lambda: np.zeros((0, 2)))
    basin_lr: float = 0.01
    basin_steps: int = 200
    min_value: float = 0.0
    formula: str | None = None
    minima_known: bool = True

    def __call__(self, x: Any, y: Any) -> Any:
        """Evaluate with flowgrad operations (Tensors in, a Tensor out)."""
        return self.fn(x, y)

    def values(self, x: np.ndarray, y: np.ndarray) -> np.ndarray:
        """Values on arrays of points (no graph recorded), broadcast to the inputs' shape."""
        import flowgrad as fg

        x = np.asarray(x, dtype=np.float64)
        y = np.asarray(y, dtype=np.float64)
        with fg.no_grad(), np.errstate(all="ignore"):
            z = self.fn(fg.tensor(x), fg.tensor(y))
        z = np.asarray(z.numpy() if isinstance(z, fg.Tensor) else z, dtype=np.float64)
        return np.broadcast_to(z, np.broadcast(x, y).shape).copy()

    def grid(self, n: int = 241) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """``(X, Y, Z)`` on an ``n × n`` grid over the window, evaluated all at once."""
        xs = np.linspace(*self.xlim, n)
        ys = np.linspace(*self.ylim, n)
        X, Y = np.meshgrid(xs, ys)
        return X, Y, self.values(X, Y)


def _bowl(x, y):
    return 0.02 * x**2 + 2.0 * y**2


def _rosenbrock(x, y):
    return (1.0 - x) ** 2 + 100.0 * (y - x**2) ** 2


def _beale(x, y):
    return (1.5 - x + x * y) ** 2 + (2.25 - x + x * y**2) ** 2 + (2.625 - x + x * y**3) ** 2


def _himmelblau(x, y):
    return (x**2 + y - 11.0) ** 2 + (x + y**2 - 7.0) ** 2


def _saddle(x, y):
    return x**2 + 0.25 * y**4 - 0.5 * y**2


def _pts(*points: tuple[float, float]) -> np.ndarray:
    return np.array(points, dtype=np.float64).reshape(-1, 2)


# The learning rates below were tuned by looking at the pictures: each optimizer gets a rate
# near the best it can do from the default start, so the comparison shows the character of
# the method (zig-zag, overshoot, per-coordinate scaling), not a badly chosen number.
SURFACES: Mapping[str, Surface] = MappingProxyType(
    {
        "ill-conditioned": Surface(
            name="ill-conditioned",
            title="ill-conditioned bowl  f = 0.02·x² + 2·y²  (curvatures 0.04 and 4)",
            fn=_bowl,
            xlim=(-6.0, 2.0),
            ylim=(-3.0, 3.0),
            start=(-5.0, -2.0),
            steps=60,
            lrs=MappingProxyType(
                {
                    "sgd": 0.45,
                    "momentum": 0.1,
                    "nesterov": 0.1,
                    "adagrad": 1.5,
                    "rmsprop": 0.1,
                    "adam": 0.3,
                    "adamw": 0.3,
                }
            ),
            minima=_pts((0.0, 0.0)),
            basin_lr=0.2,
            basin_steps=60,
        ),
        "rosenbrock": Surface(
            name="rosenbrock",
            title="Rosenbrock  f = (1 − x)² + 100·(y − x²)²",
            fn=_rosenbrock,
            xlim=(-2.0, 2.0),
            ylim=(-1.0, 3.0),
            start=(-1.5, 2.5),
            steps=1000,
            lrs=MappingProxyType(
                {
                    "sgd": 0.001,
                    "momentum": 0.0005,
                    "nesterov": 0.0005,
                    "adagrad": 0.3,
                    "rmsprop": 0.01,
                    "adam": 0.1,
                    "adamw": 0.1,
                }
            ),
            minima=_pts((1.0, 1.0)),
            basin_lr=0.001,
            basin_steps=1000,
        ),
        "beale": Surface(
            name="beale",
            title="Beale  f = (1.5 − x + xy)² + (2.25 − x + xy²)² + (2.625 − x + xy³)²",
            fn=_beale,
            xlim=(-4.5, 4.5),
            ylim=(-4.5, 4.5),
            start=(1.0, 1.5),
            steps=500,
            lrs=MappingProxyType(
                {
                    "sgd": 0.01,
                    "momentum": 0.002,
                    "nesterov": 0.002,
                    "adagrad": 0.5,
                    "rmsprop": 0.01,
                    "adam": 0.1,
                    "adamw": 0.1,
                }
            ),
            minima=_pts((3.0, 0.5)),
            basin_lr=0.001,
            basin_steps=500,
        ),
        "himmelblau": Surface(
            name="himmelblau",
            title="Himmelblau  f = (x² + y − 11)² + (x + y² − 7)²  (four minima)",
            fn=_himmelblau,
            xlim=(-5.0, 5.0),
            ylim=(-5.0, 5.0),
            start=(-0.5, -0.5),
            steps=200,
            lrs=MappingProxyType(
                {
                    "sgd": 0.01,
                    "momentum": 0.002,
                    "nesterov": 0.002,
                    "adagrad": 1.0,
                    "rmsprop": 0.05,
                    "adam": 0.2,
                    "adamw": 0.2,
                }
            ),
            minima=_pts(
                (3.0, 2.0),
                (-2.805118, 3.131312),
                (-3.779310, -3.283186),
                (3.584428, -1.848126),
            ),
            basin_lr=0.01,
            basin_steps=200,
        ),
        "saddle": Surface(
            name="saddle",
            title="saddle  f = x² + y⁴/4 − y²/2  (saddle at the origin, minima at (0, ±1))",
            fn=_saddle,
            xlim=(-2.5, 2.5),
            ylim=(-1.75, 1.75),
            start=(-2.0, 0.001),
            steps=100,
            lrs=MappingProxyType(
                {
                    "sgd": 0.1,
                    "momentum": 0.02,
                    "nesterov": 0.02,
                    "adagrad": 0.5,
                    "rmsprop": 0.05,
                    "adam": 0.1,
                    "adamw": 0.1,
                }
            ),
            minima=_pts((0.0, 1.0), (0.0, -1.0)),
            saddles=_pts((0.0, 0.0)),
            basin_lr=0.1,
            basin_steps=100,
            min_value=-0.25,
        ),
    }
)


def hessian_norm(fn: SurfaceFn, x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Largest absolute eigenvalue of the Hessian of ``fn`` at each point, by autodiff.

    The second derivatives come from differentiating flowgrad's own gradient (a
    ``create_graph`` backward), evaluated at all points at once.

    Args:
        fn: ``fn(x, y)``, elementwise, built from flowgrad operations.
        x: x coordinates (any shape).
        y: y coordinates (same shape).

    Returns:
        The spectral norm of the 2 × 2 Hessian at each point (NaN where undefined).
    """
    import flowgrad as fg

    def grads(x, y):
        return fg.grad(lambda a, b: fn(a, b).sum(), argnums=(0, 1))(x, y)

    def dx(x, y):
        return grads(x, y)[0].sum()

    def dy(x, y):
        return grads(x, y)[1].sum()

    xs = np.asarray(x, dtype=np.float64).ravel()
    ys = np.asarray(y, dtype=np.float64).ravel()
    with np.errstate(all="ignore"):
        fxx, fxy = (g.numpy() for g in fg.grad(dx, argnums=(0, 1))(xs, ys))
        fyy = fg.grad(dy, argnums=1)(xs, ys).numpy()
        mean = 0.5 * (fxx + fyy)
        radius = np.sqrt((0.5 * (fxx - fyy)) ** 2 + fxy**2)
        norm = np.abs(mean) + radius
    return norm.reshape(np.shape(x))


def grid_minima(X: np.ndarray, Y: np.ndarray, Z: np.ndarray, limit: int = 8) -> np.ndarray:
    """Strict local minima of a grid of values (interior points lower than all 8 neighbours).

    Args:
        X: grid x coordinates, shape ``(m, n)``.
        Y: grid y coordinates, same shape.
        Z: values, same shape (NaN counts as +inf).
        limit: keep at most this many, lowest first.

    Returns:
        The minima's coordinates, shape ``(k, 2)``, lowest value first.
    """
    Zf = np.where(np.isfinite(Z), Z, np.inf)
    centre = Zf[1:-1, 1:-1]
    is_min = np.isfinite(centre)
    m, n = Zf.shape
    for di in (-1, 0, 1):
        for dj in (-1, 0, 1):
            if di == 0 and dj == 0:
                continue
            is_min &= centre < Zf[1 + di : m - 1 + di, 1 + dj : n - 1 + dj]
    rows, cols = np.nonzero(is_min)
    order = np.argsort(centre[rows, cols])[:limit]
    rows, cols = rows[order] + 1, cols[order] + 1
    return np.stack([X[rows, cols], Y[rows, cols]], axis=1)


def surface_from_formula(
    text: str,
    xlim: tuple[float, float] | None = None,
    ylim: tuple[float, float] | None = None,
) -> Surface:
    """A :class:`Surface` from a formula of ``x`` and ``y``, with settings derived from it.

    The window defaults to ``[-3, 3]²``. The start is the window point a quarter in from
    the upper-left corner. Learning rates come from the largest Hessian eigenvalue ``L``
    at the start and at the lowest grid point (SGD ``1/L``, momentum ``0.2/L``); the
    adaptive methods, whose steps scale with the learning rate itself, get rates
    proportional to the window size.

    Args:
        text: the formula, e.g. ``"x**2 + 3*y**2 + x*y"``.
        xlim: the window along x.
        ylim: the window along y.

    Returns:
        The surface.

    Raises:
        flowgrad.viz.formula.FormulaError: the formula is invalid or uses a name other
            than ``x`` and ``y``.
        ValueError: the formula uses neither ``x`` nor ``y``, or has no finite value in
            the window.
    """
    from flowgrad.viz.formula import compile_formula

    formula = compile_formula(text, variables=("x", "y"))
    if not formula.variables:
        raise ValueError(f"formula {text!r} depends on neither x nor y; nothing to descend")
    xlim = _check_window(xlim or (-3.0, 3.0), "x")
    ylim = _check_window(ylim or (-3.0, 3.0), "y")

    def fn(x, y):
        return formula(x=x, y=y)

    draft = Surface(
        name=text,
        title=f"f = {formula}",
        fn=fn,
        xlim=xlim,
        ylim=ylim,
        start=(0.0, 0.0),
        steps=150,
        lrs={},
        minima=np.zeros((0, 2)),
        formula=text,
        minima_known=False,
    )
    X, Y, Z = draft.grid(121)
    finite = np.isfinite(Z)
    if not finite.any():
        raise ValueError(f"formula {text!r} has no finite value in the window {xlim} × {ylim}")
    minima = grid_minima(X, Y, Z)
    wx, wy = xlim[1] - xlim[0], ylim[1] - ylim[0]
    start = (xlim[0] + 0.2 * wx, ylim[0] + 0.8 * wy)
    lowest = np.unravel_index(np.argmin(np.where(finite, Z, np.inf)), Z.shape)
    probe_x = np.array([start[0], X[lowest]])
    probe_y = np.array([start[1], Y[lowest]])
    curv = hessian_norm(fn, probe_x, probe_y)
    curv = curv[np.isfinite(curv)]
    big = float(curv.max()) if curv.size and curv.max() > 0 else 1.0
    span = max(wx, wy)
    lrs = {
        "sgd": 1.0 / big,
        "momentum": 0.2 / big,
        "nesterov": 0.2 / big,
        "adagrad": span / 6.0,
        "rmsprop": span / 300.0,
        "adam": span / 60.0,
        "adamw": span / 60.0,
    }
    return Surface(
        name=text,
        title=f"f = {formula}",
        fn=fn,
        xlim=xlim,
        ylim=ylim,
        start=start,
        steps=150,
        lrs=MappingProxyType(lrs),
        minima=minima,
        basin_lr=1.0 / big,
        basin_steps=200,
        min_value=float(np.min(Z[finite])),
        formula=text,
        minima_known=False,
    )


def _check_window(lim: tuple[float, float], axis: str) -> tuple[float, float]:
    lo, hi = (float(v) for v in lim)
    if not (np.isfinite(lo) and np.isfinite(hi) and lo < hi):
        raise ValueError(f"the {axis} window must be two finite numbers lo < hi, got {lim}")
    return lo, hi


def get_surface(
    surface: str | Surface,
    xlim: tuple[float, float] | None = None,
    ylim: tuple[float, float] | None = None,
) -> Surface:
    """Look up a built-in surface by name, or build one from a formula of ``x`` and ``y``.

    Args:
        surface: a :class:`Surface`, a built-in name (see :data:`SURFACES`; case and
            ``_``/``-``/space are ignored), or a formula such as ``"x**2 + 5*y**2"``.
        xlim: replaces the window along x.
        ylim: replaces the window along y.

    Returns:
        The surface.

    Raises:
        flowgrad.viz.formula.FormulaError: neither a built-in name nor a valid formula.
        ValueError: a bad window.
    """
    from dataclasses import replace

    from flowgrad.viz.formula import FormulaError

    if isinstance(surface, Surface):
        found = surface
    else:
        key = str(surface).strip().lower().replace("_", "-").replace(" ", "-")
        if key in SURFACES:
            found = SURFACES[key]
        elif key.replace("-", "").isalpha() and key not in ("x", "y"):
            # A bare word that is not a built-in is far more likely a typo than a formula.
            raise FormulaError(
                f"unknown surface {surface!r}; built-in: {', '.join(SURFACES)}, "
                "or give a formula of x and y such as 'x**2 + 10*y**2'"
            )
        else:
            return surface_from_formula(str(surface), xlim, ylim)
    if xlim is not None or ylim is not None:
        found = replace(
            found,
            xlim=_check_window(xlim, "x") if xlim is not None else found.xlim,
            ylim=_check_window(ylim, "y") if ylim is not None else found.ylim,
        )
    return found
