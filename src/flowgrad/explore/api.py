"""The JSON API behind ``flowgrad explore``, as plain functions of a parsed request body.

Nothing here knows about HTTP: each handler takes the request's JSON object (a dict), checks
every field, computes with flowgrad and returns a JSON-ready answer, or raises
:class:`ApiError` with the HTTP status and a one-line message. The web layer
(:mod:`flowgrad.explore.app`) only reads bodies, calls these and writes answers, so scripts
and tests can call them directly too.

Every number is computed here, by flowgrad: the page's JavaScript only draws.

* :func:`parse` -- ``POST /api/parse``: a formula's variables (and any error in it).
* :func:`explain` -- ``POST /api/explain``: exactly the JSON of ``flowgrad explain --json``.
* :func:`surface` -- ``POST /api/surface``: a 2-D surface on a grid, with contour levels.
* :func:`curve` -- ``POST /api/curve``: a 1-D function, its minimum and the bound 2/f''.
* :func:`descent` -- ``POST /api/descent``: optimizer paths, stepped by ``fg.optim``.
* :func:`info` -- ``GET /api/info``: optimizers, surfaces, functions, models and limits.
"""

from __future__ import annotations

import math
import time
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

__all__ = [
    "DEFAULT_LIMITS", "ApiError", "Limits",
    "curve", "descent", "explain", "info", "parse", "surface",
]


class ApiError(Exception):
    """A request that cannot be answered: the HTTP status and a one-line message."""

    def __init__(self, status: int, message: str):
        super().__init__(message)
        self.status = status
        self.message = message


@dataclass(frozen=True)
class Limits:
    """What one request may ask for; larger requests get HTTP 400, 413 or 503.

    Attributes:
        max_body_bytes: the largest request body (413 beyond it).
        max_formula_length: the longest formula, in characters.
        max_paths: the most chain-rule paths listed per variable.
        max_steps: the most optimizer steps per run.
        max_runs: the most runs (optimizer and learning rate pairs) per descent request.
        max_grid: the most grid points along one side of a surface or curve.
        seconds: the longest a computation may run (503 beyond it).
        max_epochs: the most epochs of one training run.
        max_hidden: the widest hidden layer of one training run.
        max_image_side: the largest side, in pixels, of an image sent to predict.
    """

    max_body_bytes: int = 256 * 1024
    max_formula_length: int = 500
    max_paths: int = 256
    max_steps: int = 5000
    max_runs: int = 8
    max_grid: int = 401
    seconds: float = 10.0
    max_epochs: int = 200
    max_hidden: int = 1024
    max_image_side: int = 2048


#: The limits ``flowgrad explore`` serves with.
DEFAULT_LIMITS = Limits()


# ---------------------------------------------------------------------------------------------
# Reading fields
# ---------------------------------------------------------------------------------------------


class _Body:
    """Typed access to a request object's fields; any problem is an ApiError(400)."""

    def __init__(self, body: Any, allowed: Sequence[str]):
        if not isinstance(body, dict):
            raise ApiError(400, f"the request body must be a JSON object, got "
                                f"{_json_type(body)}")
        unknown = sorted(set(body) - set(allowed))
        if unknown:
            raise ApiError(400, f"unknown field{'s' if len(unknown) > 1 else ''} "
                                f"{', '.join(map(repr, unknown))}; known: {', '.join(allowed)}")
        self.body = body

    def has(self, name: str) -> bool:
        return self.body.get(name) is not None

    def string(self, name: str, default: str | None = None, max_length: int = 500) -> str:
        value = self.body.get(name, default)
        if value is None:
            raise ApiError(400, f"missing field {name!r}")
        if not isinstance(value, str):
            raise ApiError(400, f"{name!r} must be a string, got {_json_type(value)}")
        if len(value) > max_length:
            raise ApiError(400, f"{name!r} is too long ({len(value)} characters, at most "
                                f"{max_length})")
        return value

    def number(self, name: str, default: float | None = None, *, positive: bool = False) -> float:
        raw = self.body.get(name, default)
        if raw is None:
            raise ApiError(400, f"missing field {name!r}")
        return _number(name, raw, positive=positive)

    def integer(self, name: str, default: int, lo: int, hi: int) -> int:
        value = self.body.get(name, default)
        if isinstance(value, bool) or not isinstance(value, int):
            raise ApiError(400, f"{name!r} must be an integer, got {_json_type(value)}")
        if not lo <= value <= hi:
            raise ApiError(400, f"{name!r} must be between {lo} and {hi}, got {value}")
        return value


def _json_type(value: Any) -> str:
    names = {dict: "an object", list: "an array", str: "a string", bool: "true/false",
             type(None): "null", int: "a number", float: "a number"}
    return names.get(type(value), type(value).__name__)


def _number(name: str, raw: Any, positive: bool = False) -> float:
    if isinstance(raw, bool) or not isinstance(raw, (int, float)):
        raise ApiError(400, f"{name!r} must be a number, got {_json_type(raw)}")
    value = float(raw)
    if not math.isfinite(value):
        raise ApiError(400, f"{name!r} must be a finite number, got {raw!r}")
    if positive and value <= 0:
        raise ApiError(400, f"{name!r} must be a positive number, got {raw!r}")
    return value


def _window(body: _Body, name: str) -> tuple[float, float] | None:
    if not body.has(name):
        return None
    raw = body.body[name]
    if not (isinstance(raw, list) and len(raw) == 2):
        raise ApiError(400, f"{name!r} must be two numbers [lo, hi]")
    lo, hi = (_number(name, v) for v in raw)
    if not lo < hi:
        raise ApiError(400, f"{name!r} must have lo < hi, got [{lo:g}, {hi:g}]")
    return lo, hi


def _finite_or_none(values: np.ndarray) -> list:
    """A list of floats with non-finite entries as None (JSON null): gaps in a picture."""
    arr = np.asarray(values, dtype=np.float64)
    out = arr.astype(object)
    out[~np.isfinite(arr)] = None
    return out.tolist()


def _clean(value: float) -> float | str:
    """A float for JSON: non-finite ones as strings, as ``flowgrad explain --json`` does."""
    return value if math.isfinite(value) else str(value)


class _Deadline:
    """A per-step check that stops a computation once the time limit is spent."""

    def __init__(self, seconds: float):
        self.seconds = seconds
        self.end = time.monotonic() + seconds

    def __call__(self, *_: Any) -> None:
        if time.monotonic() > self.end:
            raise ApiError(503, f"the computation took longer than the limit of "
                                f"{self.seconds:g} s; ask for fewer steps or runs")


# ---------------------------------------------------------------------------------------------
# Handlers
# ---------------------------------------------------------------------------------------------


def explain(body: Any, limits: Limits = DEFAULT_LIMITS) -> str:
    """``POST /api/explain``: the chain rule for a formula, as ``flowgrad explain --json``.

    Args:
        body: ``{"formula": "sigmoid(w*x + b)", "values": {"w": 0.5, "x": 2, "b": -1},
            "max_paths": 64}`` (``max_paths`` optional).
        limits: the request limits.

    Returns:
        The JSON text, identical to what ``flowgrad explain FORMULA NAME=VALUE... --json``
        prints (one library function, :meth:`Explanation.to_json`, writes both).

    Raises:
        ApiError: 400 for an invalid formula (the parser's one-line message; nothing in
            the formula is ever executed), missing or extra values, or values that are
            not finite numbers.
    """
    from flowgrad.viz.explain import MAX_PATHS, explain_formula
    from flowgrad.viz.formula import FormulaError

    b = _Body(body, ("formula", "values", "max_paths"))
    text = b.string("formula", max_length=limits.max_formula_length)
    values = b.body.get("values", {})
    if not isinstance(values, dict):
        raise ApiError(400, f"'values' must be an object of numbers, got {_json_type(values)}")
    nums = {str(k): _number(f"values.{k}", v) for k, v in values.items()}
    max_paths = b.integer("max_paths", MAX_PATHS, 0, limits.max_paths)
    try:
        return explain_formula(text, nums, max_paths=max_paths).to_json()
    except FormulaError as exc:
        raise ApiError(400, str(exc)) from None
    except (TypeError, ValueError) as exc:
        raise ApiError(400, str(exc)) from None


def parse(body: Any, limits: Limits = DEFAULT_LIMITS) -> dict[str, Any]:
    """``POST /api/parse``: check a formula and list its variables (before asking for values).

    Args:
        body: ``{"formula": "sigmoid(w*x + b)"}``.
        limits: the request limits.

    Returns:
        ``{"formula": "sigmoid(w*x + b)", "variables": ["b", "w", "x"]}``: the formula as
        flowgrad writes it back, and its variable names, sorted.

    Raises:
        ApiError: 400 for an invalid formula, with the parser's one-line message.
    """
    from flowgrad.viz.formula import FormulaError, compile_formula

    b = _Body(body, ("formula",))
    text = b.string("formula", max_length=limits.max_formula_length)
    try:
        f = compile_formula(text)
    except FormulaError as exc:
        raise ApiError(400, str(exc)) from None
    return {"formula": str(f), "variables": list(f.variables)}


def _get_surface(b: _Body, limits: Limits) -> Any:
    from flowgrad.viz import get_surface
    from flowgrad.viz.formula import FormulaError

    name = b.string("surface", max_length=limits.max_formula_length)
    try:
        return get_surface(name, _window(b, "xlim"), _window(b, "ylim"))
    except FormulaError as exc:
        raise ApiError(400, str(exc)) from None
    except ValueError as exc:
        raise ApiError(400, str(exc)) from None


def _levels(z: np.ndarray, low: float, count: int = 30) -> list[float]:
    """Contour levels spaced evenly in log(f - min): dense near the minimum, as the eye wants."""
    finite = z[np.isfinite(z)]
    if finite.size == 0:
        return []
    lo = min(float(finite.min()), low)
    hi = float(np.quantile(finite, 0.98))
    span = hi - lo
    if not span > 0:
        return [lo]
    heights = np.geomspace(span * 1e-5, span, count - 1)
    # The first level is the lowest value, so every finite point lies in some band and a
    # point outside all bands is one where f is not finite (drawn as such).
    return [lo, *(lo + heights).tolist()]


def surface(body: Any, limits: Limits = DEFAULT_LIMITS) -> dict[str, Any]:
    """``POST /api/surface``: a 2-D loss surface evaluated by flowgrad on a grid.

    Args:
        body: ``{"surface": "rosenbrock", "n": 121, "xlim": [-2, 2], "ylim": [-1, 3]}``;
            ``surface`` is a built-in name (see ``GET /api/info``) or a formula of ``x``
            and ``y``; ``n`` (grid points per side) and the windows are optional.
        limits: the request limits.

    Returns:
        ``{"name", "title", "formula", "xlim", "ylim", "start", "steps", "lrs", "minima",
        "saddles", "x", "y", "z", "levels"}``: ``z[i][j]`` is f(x[j], y[i]) (null where f
        is not finite), ``levels`` the contour heights (the first is the lowest value, the
        rest denser near it), ``lrs`` a learning rate per optimizer that suits this
        surface.
    """
    b = _Body(body, ("surface", "n", "xlim", "ylim"))
    surf = _get_surface(b, limits)
    n = b.integer("n", 121, 11, limits.max_grid)
    X, Y, Z = surf.grid(n)
    return {
        "name": surf.name,
        "title": surf.title,
        "formula": surf.formula,
        "xlim": list(surf.xlim),
        "ylim": list(surf.ylim),
        "start": list(surf.start),
        "steps": int(surf.steps),
        "lrs": {k: float(v) for k, v in surf.lrs.items()},
        "minima": np.asarray(surf.minima, dtype=np.float64).tolist(),
        "saddles": np.asarray(surf.saddles, dtype=np.float64).tolist(),
        "x": X[0].tolist(),
        "y": Y[:, 0].tolist(),
        "z": [_finite_or_none(row) for row in Z],
        "levels": _levels(Z, float(surf.min_value)),
    }


def _function_1d(b: _Body, limits: Limits) -> Any:
    from flowgrad.viz.formula import FormulaError, compile_formula

    text = b.string("function", max_length=limits.max_formula_length)
    try:
        f = compile_formula(text, variables=("x",))
    except FormulaError as exc:
        raise ApiError(400, str(exc)) from None
    if not f.variables:
        raise ApiError(400, f"function {text!r} does not depend on x; nothing to descend")
    return f


def _minimum(f: Any, start: float) -> Any:
    from flowgrad.viz import minimum_1d

    try:
        return minimum_1d(f, start)
    except ValueError:
        return None


def _minimum_json(m: Any) -> dict[str, Any] | None:
    if m is None:
        return None
    return {"x": _clean(m.x), "value": _clean(m.value), "curvature": _clean(m.curvature),
            "bound": _clean(m.bound)}


def curve(body: Any, limits: Limits = DEFAULT_LIMITS) -> dict[str, Any]:
    """``POST /api/curve``: a 1-D function on a grid, its minimum and the stability bound.

    Args:
        body: ``{"function": "x**2", "start": 2.0, "window": [-3, 3], "n": 301}``;
            ``window`` and ``n`` optional.
        limits: the request limits.

    Returns:
        ``{"function", "start", "window", "x", "y", "minimum", "lr_max",
        "lr_suggested"}``; ``minimum`` is ``{"x", "value",
        "curvature", "bound"}`` for the local minimum that descent from ``start`` heads for
        (``curvature`` is f''(x*) from flowgrad's second derivative, ``bound`` is
        2 / f''(x*): plain gradient descent converges near x* exactly when lr < bound), or
        null when there is none near; ``lr_max`` (2.5 bounds) and ``lr_suggested`` (0.4
        bounds) set up the page's learning-rate slider.
    """
    b = _Body(body, ("function", "start", "window", "n"))
    f = _function_1d(b, limits)
    start = b.number("start", 2.0)
    n = b.integer("n", 301, 11, limits.max_grid)
    mini = _minimum(f, start)
    window = _window(b, "window")
    if window is None:
        centre = mini.x if mini is not None else start
        half = max(1.5 * abs(start - centre), 1.0)
        window = (centre - half, centre + half)
    import flowgrad as fg

    xs = np.linspace(window[0], window[1], n)
    with fg.no_grad(), np.errstate(all="ignore"):
        ys = np.broadcast_to(np.asarray(f(x=fg.tensor(xs)).numpy(), np.float64), xs.shape)
    # The slider's range and starting point: around the bound when there is one.
    bound = mini.bound if mini is not None and math.isfinite(mini.bound) else None
    lr_max = 2.5 * bound if bound is not None else 1.0
    lr = 0.4 * bound if bound is not None else 0.1
    return {"function": str(f), "start": start, "window": list(window), "x": xs.tolist(),
            "y": _finite_or_none(ys), "minimum": _minimum_json(mini),
            "lr_max": lr_max, "lr_suggested": lr}


def _regime(lr: float, mini: Any) -> str | None:
    """Plain SGD near x*: the distance to x* is multiplied by 1 - lr f'' each step."""
    if mini is None or not mini.curvature > 0:
        return None
    r = lr * mini.curvature
    if r < 1.0:
        return "monotone"  # creeps in from one side
    if r < 2.0:
        return "oscillating"  # jumps across x*, closing in
    return "unstable"  # jumps across x*, moving away: lr above the bound 2/f''


def descent(body: Any, limits: Limits = DEFAULT_LIMITS) -> dict[str, Any]:
    """``POST /api/descent``: optimizer paths, every step taken by ``fg.optim``.

    Args:
        body: for a 2-D surface ``{"surface": "ill-conditioned", "start": [-5, -2],
            "runs": [{"optimizer": "adam", "lr": 0.3}, ...], "steps": 60, "tol": 1e-6}``;
            for a 1-D function ``{"function": "x**2", "start": 2.0, "runs": [...]}``.
            A run's ``lr`` is optional (the surface's suggestion, or the optimizer's
            default); ``start`` defaults to the surface's; ``steps`` to the surface's (2-D)
            or 30 (1-D).
        limits: the request limits.

    Returns:
        ``{"dim", "start", "steps", "runs": [...]}`` and, for 1-D, ``"minimum"``. Each run
        is ``{"optimizer", "lr", "status", "steps_to_tol", "diverged_at", "points",
        "losses", "grad_norms"}`` (``points[k]`` the point after k steps; a diverging run
        stops at its last finite point), plus ``"regime"`` for plain SGD in 1-D.
    """
    from flowgrad.viz import OPTIMIZERS, run_descent

    b = _Body(body, ("surface", "function", "start", "runs", "steps", "tol"))
    if b.has("surface") == b.has("function"):
        raise ApiError(400, "give either 'surface' (2-D: a name or a formula of x and y) or "
                            "'function' (1-D: a formula of x)")
    runs = b.body.get("runs")
    if not isinstance(runs, list) or not runs:
        raise ApiError(400, "'runs' must be a non-empty array of {\"optimizer\", \"lr\"}")
    if len(runs) > limits.max_runs:
        raise ApiError(400, f"at most {limits.max_runs} runs per request, got {len(runs)}")
    tol = b.number("tol", 1e-6, positive=True)

    mini = None
    if b.has("surface"):
        surf = _get_surface(_Body({"surface": b.body["surface"]}, ("surface",)), limits)
        objective: Any = surf
        raw = b.body.get("start", list(surf.start))
        if not (isinstance(raw, list) and len(raw) == 2):
            raise ApiError(400, "'start' must be a point [x, y] for a surface")
        start: Any = [_number("start", v) for v in raw]
        steps = b.integer("steps", int(surf.steps), 0, limits.max_steps)
        suggested: Mapping[str, float] = surf.lrs
    else:
        f = _function_1d(b, limits)
        objective = f
        start = b.number("start", 2.0)
        steps = b.integer("steps", 30, 0, limits.max_steps)
        suggested = {}
        mini = _minimum(f, start)

    deadline = _Deadline(limits.seconds)
    out_runs = []
    for k, run in enumerate(runs):
        rb = _Body(run, ("optimizer", "lr"))
        name = rb.string("optimizer", max_length=40)
        if name not in OPTIMIZERS:
            raise ApiError(400, f"runs[{k}]: unknown optimizer {name!r}; known: "
                                f"{', '.join(OPTIMIZERS)}")
        lr = rb.number("lr", positive=True) if rb.has("lr") else suggested.get(name)
        try:
            traj = run_descent(objective, start, name, lr, steps, tol, callback=deadline)
        except ValueError as exc:
            raise ApiError(400, f"runs[{k}]: {exc}") from None
        entry = {
            "optimizer": traj.optimizer,
            "lr": traj.lr,
            "status": traj.status,
            "steps_to_tol": traj.steps_to_tol,
            "diverged_at": traj.diverged_at,
            "points": traj.points.tolist(),
            "losses": traj.losses.tolist(),
            "grad_norms": traj.grad_norms.tolist(),
        }
        if b.has("function"):
            entry["regime"] = _regime(traj.lr, mini) if name == "sgd" else None
        out_runs.append(entry)
    answer: dict[str, Any] = {"dim": 2 if b.has("surface") else 1,
                              "start": start, "steps": steps, "runs": out_runs}
    if b.has("function"):
        answer["minimum"] = _minimum_json(mini)
    return answer


def info(limits: Limits = DEFAULT_LIMITS, models: Sequence[str] = ("mlp",)) -> dict[str, Any]:
    """``GET /api/info``: what the other endpoints accept.

    Returns:
        ``{"version", "optimizers", "surfaces": {name: title}, "functions", "models",
        "limits"}``.
    """
    import flowgrad
    from flowgrad.viz import OPTIMIZERS, SURFACES
    from flowgrad.viz.formula import FUNCTIONS

    return {
        "version": flowgrad.__version__,
        "optimizers": list(OPTIMIZERS),
        "surfaces": {name: s.title for name, s in SURFACES.items()},
        "functions": list(FUNCTIONS),
        "models": list(models),
        "limits": asdict(limits),
    }
