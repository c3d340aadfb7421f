"""The derivative gallery: f, f' and f'' of activation functions, computed by autodiff.

Nothing here knows a derivative formula. For each function the whole grid of ``x`` values
is one Tensor; ``f'`` is the gradient of ``sum(f(x))`` (each output depends on its own
input only, so that gradient is ``f'`` at every point) and ``f''`` is the gradient of
``sum(f'(x))``, differentiating flowgrad's own recorded backward pass (``create_graph``).

Where a function has a kink or a jump, the picture marks it: the curve is broken there
instead of drawn as a vertical line, the value flowgrad actually returns *at* the point is a
filled dot, the one-sided limits are open circles, and a note states the convention
(``relu'(0) = 0``, ``step' = 0`` everywhere, as in PyTorch). Kinks are found from the
computed values (a jump in f or f' between neighbouring grid points), so formulas such as
``abs(x - 1)`` get marked too.

Example:
    >>> from flowgrad.viz.derivatives import derivative_values
    >>> import numpy as np
    >>> f, d1, d2 = derivative_values("relu", np.array([-1.0, 0.0, 1.0]))
    >>> d1.tolist()
    [0.0, 0.0, 1.0]
"""

from __future__ import annotations

import math
import os
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType
from typing import Any

import numpy as np

from flowgrad.viz.figures import new_figure, save_figure

__all__ = [
    "CATALOGUE",
    "DEFAULT_FUNCTIONS",
    "DerivativeGallery",
    "GalleryFunction",
    "Kink",
    "derivative_values",
    "find_kinks",
    "plot_derivatives",
]


@dataclass(frozen=True)
class GalleryFunction:
    """One function of the gallery.

    Attributes:
        name: the name shown (``"relu"``, or the formula text).
        fn: elementwise function of a Tensor, built from flowgrad operations.
        domain: the plotted interval of x.
        note: what to say at its kink, if it has one (the values come from flowgrad).
    """

    name: str
    fn: Callable[[Any], Any]
    domain: tuple[float, float]
    note: str = ""


def _op(name: str) -> Callable[[Any], Any]:
    def apply(x):
        import flowgrad as fg

        return getattr(fg, name)(x)

    apply.__name__ = name
    return apply


def _identity(x):
    return x


def _leaky_relu(x):
    import flowgrad as fg

    return fg.leaky_relu(x, 0.1)


CATALOGUE: Mapping[str, GalleryFunction] = MappingProxyType(
    {
        "identity": GalleryFunction("identity", _identity, (-3.0, 3.0)),
        "step": GalleryFunction(
            "step", _op("step"), (-3.0, 3.0),
            "convention: step'(x) = 0 everywhere, even at the jump",
        ),
        "sigmoid": GalleryFunction("sigmoid", _op("sigmoid"), (-6.0, 6.0)),
        "tanh": GalleryFunction("tanh", _op("tanh"), (-3.0, 3.0)),
        "relu": GalleryFunction(
            "relu", _op("relu"), (-3.0, 3.0),
            "convention at the kink: relu'(0) = 0, as in PyTorch",
        ),
        "exp": GalleryFunction("exp", _op("exp"), (-3.0, 1.5)),
        "log": GalleryFunction("log", _op("log"), (0.2, 4.0)),
        "abs": GalleryFunction(
            "abs", _op("abs"), (-3.0, 3.0), "convention at the kink: abs'(0) = 0, as in PyTorch"
        ),
        "sqrt": GalleryFunction("sqrt", _op("sqrt"), (0.05, 4.0)),
        "sin": GalleryFunction("sin", _op("sin"), (-math.pi, math.pi)),
        "leaky_relu": GalleryFunction(
            "leaky_relu(x, 0.1)", _leaky_relu, (-3.0, 3.0),
            "at the kink: the negative side's slope, as in PyTorch",
        ),
    }
)

DEFAULT_FUNCTIONS: tuple[str, ...] = ("identity", "step", "sigmoid", "tanh", "relu", "exp", "log")


def _resolve(item: str | GalleryFunction, domain: tuple[float, float] | None) -> GalleryFunction:
    from dataclasses import replace

    from flowgrad.viz.formula import FormulaError, compile_formula

    if isinstance(item, GalleryFunction):
        found = item
    else:
        key = item.strip().lower().replace("-", "_")
        if key in CATALOGUE:
            found = CATALOGUE[key]
        else:
            if key.replace("_", "").isalpha() and key != "x":
                raise FormulaError(
                    f"unknown function {item!r}; known: {', '.join(CATALOGUE)}, "
                    "or give a formula of x such as 'x**3'"
                )
            formula = compile_formula(item, variables=("x",))

            def fn(x, _f=formula):
                return _f(x=x)

            found = GalleryFunction(str(formula), fn, (-3.0, 3.0))
    if domain is not None:
        lo, hi = (float(v) for v in domain)
        if not (math.isfinite(lo) and math.isfinite(hi) and lo < hi):
            raise ValueError(f"the domain must be two finite numbers lo < hi, got {domain}")
        found = replace(found, domain=(lo, hi))
    return found


def derivative_values(
    f: str | GalleryFunction | Callable[[Any], Any], x: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``f(x)``, ``f'(x)`` and ``f''(x)`` at every point of ``x`` at once, by autodiff.

    ``f'`` is the gradient of ``sum(f(x))``; ``f''`` the gradient of ``sum(f'(x))``, which
    differentiates the recorded backward pass (flowgrad's ``create_graph``).

    Args:
        f: a catalogue name, a formula of ``x``, a :class:`GalleryFunction`, or an
            elementwise function of a Tensor built from flowgrad operations.
        x: the points, any shape.

    Returns:
        Three float64 arrays shaped like ``x``.
    """
    import flowgrad as fg

    if isinstance(f, (str, GalleryFunction)):
        fn = _resolve(f, None).fn
    elif callable(f):
        fn = f
    else:
        raise TypeError(f"expected a function name, formula or function, got {type(f).__name__}")
    xs = np.asarray(x, dtype=np.float64)
    leaf = fg.tensor(xs.copy(), requires_grad=True)
    with np.errstate(all="ignore"):
        y = fn(leaf)
        if not isinstance(y, fg.Tensor):
            raise TypeError("the function must return a Tensor built from flowgrad operations")
        values = np.broadcast_to(y.numpy(), xs.shape).astype(np.float64)
        if not y.requires_grad:  # a constant: both derivatives vanish
            zeros = np.zeros_like(xs)
            return values, zeros, zeros.copy()
        # Shape-preserving elementwise f: d(sum f)/dx_i = f'(x_i).
        y.sum().backward(create_graph=True)
        d1 = leaf.grad
        leaf.grad = None
        first = np.broadcast_to(d1.numpy(), xs.shape).astype(np.float64)
        if d1.requires_grad:
            d1.sum().backward()
            second = (np.broadcast_to(leaf.grad.numpy(), xs.shape).astype(np.float64)
                      if leaf.grad is not None else np.zeros_like(xs))
        else:  # f' carries no graph: it is constant in x (e.g. the step's zero)
            second = np.zeros_like(xs)
    return values, first, second


@dataclass(frozen=True)
class Kink:
    """A point where f jumps (``kind="jump"``) or f' jumps (``kind="kink"``).

    Attributes:
        x: where (rounded to the simplest number inside the jump's grid interval).
        kind: ``"jump"`` or ``"kink"``.
        value: f(x) as flowgrad computes it there.
        slope: f'(x) as flowgrad computes it there: the convention at this point.
        left: the one-sided limit from the left of f (jump) or f' (kink).
        right: the one-sided limit from the right.
    """

    x: float
    kind: str
    value: float
    slope: float
    left: float
    right: float


def _jumps(a: np.ndarray, scale: float) -> np.ndarray:
    """Indices i where a[i+1] − a[i] stands out from its neighbourhood (a jump, not a slope)."""
    d = np.abs(np.diff(a))
    d = np.where(np.isfinite(d), d, 0.0)
    if d.size < 3:
        return np.zeros(0, dtype=int)
    width = min(11, d.size)
    pad = width // 2
    padded = np.pad(d, pad, mode="edge")
    windows = np.lib.stride_tricks.sliding_window_view(padded, width)[: d.size]
    local = np.median(windows, axis=1)
    return np.flatnonzero((d > 20.0 * local) & (d > 1e-6 * scale))


def _simplest_in(lo: float, hi: float) -> float:
    """The number with the fewest decimals in [lo, hi] (so a kink at 0 is reported as 0)."""
    for decimals in range(0, 10):
        candidate = round(0.5 * (lo + hi), decimals)
        if lo <= candidate <= hi:
            return float(candidate)
    return 0.5 * (lo + hi)


def find_kinks(fn: Callable[[Any], Any], x: np.ndarray, values: np.ndarray,
               first: np.ndarray) -> list[Kink]:
    """Jumps of f and of f' on a grid, each evaluated exactly at the kink by flowgrad.

    Args:
        fn: the elementwise function.
        x: the sorted grid.
        values: f on the grid.
        first: f' on the grid.

    Returns:
        The kinks found, sorted by x; a point where f itself jumps is reported once, as a
        jump.
    """
    found: dict[float, Kink] = {}
    for kind, arr in (("jump", values), ("kink", first)):
        finite = arr[np.isfinite(arr)]
        scale = float(np.max(np.abs(finite))) + 1.0 if finite.size else 1.0
        idx = _jumps(arr, scale)
        if idx.size == 0:
            continue
        # Neighbouring flagged intervals belong to one kink (e.g. abs' at a grid point 0).
        groups = np.split(idx, np.flatnonzero(np.diff(idx) > 1) + 1)
        for g in groups:
            lo, hi = float(x[g[0]]), float(x[g[-1] + 1])
            x0 = _simplest_in(lo, hi)
            if any(abs(x0 - k) <= (hi - lo) for k in found):
                continue
            eps = 1e-7 * max(1.0, abs(x0))
            pts = np.array([x0 - eps, x0, x0 + eps])
            v, d1, _ = derivative_values(fn, pts)
            side = v if kind == "jump" else d1
            found[x0] = Kink(x=x0, kind=kind, value=float(v[1]), slope=float(d1[1]),
                             left=float(side[0]), right=float(side[2]))
    return [found[k] for k in sorted(found)]


@dataclass(eq=False)
class DerivativeGallery:
    """The gallery picture and the numbers behind it.

    Attributes:
        figure: the matplotlib figure.
        curves: name -> ``(x, f, f', f'')`` arrays.
        kinks: name -> the :class:`Kink` list.
    """

    figure: Any
    curves: dict[str, tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]]
    kinks: dict[str, list[Kink]] = field(default_factory=dict)

    def save(self, path: str | os.PathLike, dpi: int = 110) -> Path:
        """Write the picture as PNG or SVG (by suffix), atomically."""
        return save_figure(self.figure, path, dpi=dpi)

    def summary(self) -> str:
        """One line per function: smooth, or the value flowgrad gives at each kink or jump."""
        lines = []
        for name in self.curves:
            ks = self.kinks.get(name, [])
            if not ks:
                lines.append(f"{name}: smooth on the plotted domain")
                continue
            parts = []
            for k in ks:
                if k.kind == "jump":
                    parts.append(f"jump at x={_num(k.x)}: f={_num(k.value)} there "
                                 f"(left {_num(k.left)}, right {_num(k.right)}), "
                                 f"f'={_num(k.slope)}")
                else:
                    parts.append(f"kink at x={_num(k.x)}: f'={_num(k.slope)} there "
                                 f"(left {_num(k.left)}, right {_num(k.right)})")
            lines.append(f"{name}: " + "; ".join(parts))
        return "\n".join(lines)


def _num(v: float) -> str:
    return f"{v:.4g}" if v != 0 else "0"


def _broken(x: np.ndarray, y: np.ndarray, cuts: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Insert a gap after each index in ``cuts`` so a jump is not drawn as a vertical line."""
    if cuts.size == 0:
        return x, y
    return np.insert(x, cuts + 1, np.nan), np.insert(y, cuts + 1, np.nan)


_CURVE_STYLE = (
    ("f", "#1f77b4", "-", 2.2),
    ("f'", "#ff7f0e", "--", 2.0),
    ("f''", "#2ca02c", ":", 2.2),
)


def plot_derivatives(
    functions: Sequence[str | GalleryFunction] | None = DEFAULT_FUNCTIONS,
    formulas: Sequence[str] = (),
    *,
    domain: tuple[float, float] | None = None,
    points: int = 801,
    out: str | os.PathLike | None = None,
) -> DerivativeGallery:
    """One panel per function with f, f' and f'' computed by flowgrad's autodiff.

    Args:
        functions: catalogue names (see :data:`CATALOGUE`: identity, step, sigmoid, tanh,
            relu, exp, log, abs, sqrt, sin, leaky_relu) or :class:`GalleryFunction` objects.
        formulas: formulas of ``x`` to add, e.g. ``"x**3"`` or ``"relu(x - 1)"``.
        domain: one interval of x for every panel (default: each function's own; ``log``
            and ``sqrt`` use positive ones).
        points: grid points per panel.
        out: if given, the picture is also saved there (.png or .svg).

    Returns:
        The :class:`DerivativeGallery`.

    Raises:
        flowgrad.viz.formula.FormulaError: an unknown name or an invalid formula.
        ValueError: nothing to plot, or a bad domain.
    """
    items = [_resolve(f, domain) for f in (functions or ())]
    items += [_resolve(f, domain) for f in formulas]
    if not items:
        raise ValueError("give at least one function or formula")
    if int(points) != points or points < 21:
        raise ValueError(f"points must be an integer of at least 21, got {points!r}")

    n = len(items)
    ncols = min(4, n)
    nrows = math.ceil(n / ncols)
    fig = new_figure((4.1 * ncols, 3.5 * nrows + 0.7))
    axes = [fig.add_subplot(nrows, ncols, i + 1) for i in range(n)]
    curves: dict[str, tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]] = {}
    kinks: dict[str, list[Kink]] = {}
    for ax, item in zip(axes, items):
        lo, hi = item.domain
        x = np.linspace(lo, hi, int(points))
        if lo < 0 < hi:
            x = np.union1d(x, [0.0])  # conventions live at 0: evaluate exactly there
        vals = derivative_values(item.fn, x)
        name = item.name
        while name in curves:
            name += "'"
        curves[name] = (x, *vals)
        ks = find_kinks(item.fn, x, vals[0], vals[1])
        kinks[name] = ks
        # Break each curve where it jumps (jumps of f' are kinks of f, and so on).
        for (label, color, style, lw), arr in zip(_CURVE_STYLE, vals):
            finite = arr[np.isfinite(arr)]
            scale = float(np.max(np.abs(finite))) + 1.0 if finite.size else 1.0
            bx, by = _broken(x, arr, _jumps(arr, scale))
            ax.plot(bx, by, style, color=color, lw=lw, label=label, zorder=3)
        _mark_kinks(ax, ks)
        ax.axhline(0, color="0.75", lw=0.8, zorder=1)
        if lo < 0 < hi:
            ax.axvline(0, color="0.75", lw=0.8, zorder=1)
        ax.set_xlim(lo, hi)
        ax.set_ylim(*_robust_ylim(vals, ks))
        ax.set_title(_panel_title(item, name, ks, vals), fontsize=10.5)
        ax.set_xlabel("x")
        ax.grid(True, alpha=0.25)
    handles, labels = axes[0].get_legend_handles_labels()
    fig.legend(handles[:3], ["f(x)", "f'(x)  (autodiff)", "f''(x)  (autodiff of autodiff)"],
               loc="outside upper center", ncol=3, fontsize=10, frameon=False)
    gallery = DerivativeGallery(fig, curves, kinks)
    if out is not None:
        gallery.save(out)
    return gallery


def _panel_title(item: GalleryFunction, name: str, ks: Sequence[Kink],
                 vals: Sequence[np.ndarray]) -> str:
    in_catalogue = any(item.fn is entry.fn for entry in CATALOGUE.values())
    title = (name if "(" in name else f"{name}(x)") if in_catalogue else f"f(x) = {name}"
    if item.note and ks:
        title += "\n" + item.note
    elif ks:
        k = ks[0]
        where = "jumps" if k.kind == "jump" else "has a kink"
        title += f"\n{where} at x = {_num(k.x)}: flowgrad gives f'({_num(k.x)}) = {_num(k.slope)}"
    with np.errstate(all="ignore"):
        if np.allclose(vals[0], vals[1], equal_nan=True) and np.allclose(
                vals[1], vals[2], equal_nan=True):
            title += "\nf = f' = f'' (the three curves coincide)"
    return title


def _robust_ylim(vals: Sequence[np.ndarray], ks: Sequence[Kink]) -> tuple[float, float]:
    """A vertical range holding all three curves, unless one blows up (then it leaves)."""
    allv = np.concatenate([v[np.isfinite(v)] for v in vals])
    if allv.size == 0:
        return -1.0, 1.0
    q_lo, q_hi = (float(v) for v in np.quantile(allv, [0.02, 0.98]))
    f_lo, f_hi = float(allv.min()), float(allv.max())
    span = max(q_hi - q_lo, 1e-9)
    # Extend to the true extremes unless they are a blow-up far outside the bulk.
    lo = f_lo if q_lo - f_lo <= 0.5 * span else q_lo
    hi = f_hi if f_hi - q_hi <= 0.5 * span else q_hi
    marks = [v for k in ks for v in (k.value, k.slope, k.left, k.right) if math.isfinite(v)]
    lo, hi = min([lo, 0.0, *marks]), max([hi, 0.0, *marks])
    if hi - lo < 1e-9:
        lo, hi = lo - 1.0, hi + 1.0
    pad = 0.1 * (hi - lo)
    return lo - pad, hi + pad


def _mark_kinks(ax: Any, ks: Sequence[Kink]) -> None:
    for k in ks:
        ax.axvline(k.x, color="0.4", ls=(0, (2, 3)), lw=0.9, zorder=2)
        if k.kind == "jump":
            curve, at, color = "f", k.value, _CURVE_STYLE[0][1]
        else:
            curve, at, color = "f'", k.slope, _CURVE_STYLE[1][1]
        # Open circles: the one-sided limits; filled dot: the value flowgrad returns.
        ax.plot([k.x, k.x], [k.left, k.right], "o", mfc="white", mec=color, mew=1.6, ms=7,
                zorder=5)
        ax.plot([k.x], [at], "o", color=color, mec="k", mew=0.8, ms=7, zorder=6)
        text = f"{curve}({_num(k.x)}) = {_num(at)}"
        if k.kind == "jump":
            text += f"\nf'({_num(k.x)}) = {_num(k.slope)}"
        label = ax.annotate(text, xy=(k.x, at), xytext=(-8, 10), textcoords="offset points",
                            ha="right", va="bottom", fontsize=9, color="0.15", zorder=7,
                            bbox=dict(boxstyle="round,pad=0.2", fc="white", ec="none",
                                      alpha=0.85))
        label.set_in_layout(False)
