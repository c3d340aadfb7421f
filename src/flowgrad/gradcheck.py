"""Finite-difference gradient checks, and the node whose derivative rule is wrong.

:func:`gradcheck` compares a function's reverse-mode Jacobian (both of the engine's paths)
with central differences. When they disagree it does not stop at "Jacobian mismatch": it
checks every node of the graph on its own, its derivative rule against central differences
of its own forward at its saved inputs, along random directions, and names the first wrong
node in forward order (op, arguments, input shapes, the line of your code, the error).
:func:`gradcheck_nodes` returns that per-node check for the whole graph.

Kinks (relu at 0, abs at 0, tied maxima) have no derivative, and a rule's convention there
(relu'(0) = 0) need not match the central difference, which averages the two sides. Where
an entry disagrees, the check looks at the one-sided differences: if they differ and do
not shrink with the step, the point is a kink and any value between the two one-sided
derivatives is accepted.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from flowgrad import _backend, anomaly, engine, graph
from flowgrad.graph import Node
from flowgrad.tensor import Tensor, to_array

__all__ = ["GradcheckError", "NodeCheck", "gradcheck", "gradcheck_nodes"]


class GradcheckError(AssertionError):
    """Analytic and numerical derivatives disagree; the message names the input and the first
    node whose own derivative rule is wrong.

    Attributes:
        node: that node (None when every node's rule agrees with its own forward, i.e. the
            function is not what its graph records).
        checks: the :class:`NodeCheck` of every node, in forward order.
    """

    def __init__(self, message: str, node: Node | None = None,
                 checks: list[NodeCheck] | None = None):
        super().__init__(message)
        self.node = node
        self.checks = checks or []


@dataclass
class NodeCheck:
    """One node's derivative rule against central differences of its own forward.

    Attributes:
        node: the graph node.
        passed: whether both rules (fast and Tensor) agree, or the node was skipped.
        max_error: the largest disagreement found, ``|<u, J v> analytic - numerical>|`` for
            random unit ``u`` (output) and standard normal ``v`` (input); 0 if none.
        input: the input whose gradient was most off (None if passed).
        rule: ``"fast rule"`` or ``"Tensor rule"``, which of the op's rules was most off
            (``"rule"`` for an op with only a Tensor rule, which both paths use).
        analytic, numerical: the two directional derivatives at the largest disagreement.
        kinks: how many output elements sat on a kink (checked against the one-sided
            derivatives, not the central difference).
        skipped: why the node was not checked (None if it was).
        raised: the exception a rule raised (then ``passed`` is False), else None.
    """

    node: Node
    passed: bool
    max_error: float = 0.0
    input: int | None = None
    rule: str | None = None
    analytic: float = math.nan
    numerical: float = math.nan
    kinks: int = 0
    skipped: str | None = None
    raised: str | None = None

    @property
    def name(self) -> str:
        return self.node.name

    def __str__(self) -> str:
        node = self.node
        head = f"{node.name} (node #{node.seq})"
        if node.created_at is not None:
            head += f" at {node.created_at}"
        if self.skipped is not None:
            return f"skip  {head}: {self.skipped}"
        if self.passed:
            kinks = f", {self.kinks} element(s) at kinks" if self.kinks else ""
            return f"ok    {head}: largest error {self.max_error:.2g}{kinks}"
        if self.raised is not None:
            return f"FAIL  {head}: its derivative rule raised {self.raised}"
        return (f"FAIL  {head}: its {self.rule} for input {self.input} is off by "
                f"{self.max_error:.3g} (analytic {self.analytic:.6g} vs numerical "
                f"{self.numerical:.6g})")


class NodeChecks(list):
    """The per-node results of :func:`gradcheck_nodes` (a list), printable as a table."""

    @property
    def failed(self) -> list[NodeCheck]:
        """The nodes whose rule disagrees, in forward order."""
        return [c for c in self if not c.passed]

    def __str__(self) -> str:
        return "\n".join(str(c) for c in self)


def _as_float64_leaf(x) -> Tensor:
    """A float64 leaf on ``x``'s device (a Tensor's, else the default device)."""
    if isinstance(x, Tensor):
        return Tensor._make(_backend.astype(x.data, np.float64), True, None)
    return Tensor._make(to_array(np.asarray(x, dtype=np.float64)), True, None)


def _host(arr: Any) -> np.ndarray:
    """Values read back to the host in float64 (explicitly copied from a device)."""
    return np.array(_backend.to_host(arr), dtype=np.float64)


def _flat_output(f: Callable, xs: list[Tensor]) -> np.ndarray:
    with graph.no_grad():
        out = f(*xs)
    return _host(out.data if isinstance(out, Tensor) else out).ravel()


def _analytic(f_out: Tensor, xs: list[Tensor], record: bool) -> list[np.ndarray]:
    """The reverse-mode Jacobian, one row per output element, on the engine's recorded
    (``create_graph``, Tensor rules) or unrecorded (fast array rules) path."""
    n_out = f_out.data.size
    analytic = [np.zeros((n_out, x.data.size)) for x in xs]
    if not f_out.requires_grad:
        return analytic
    for k in range(n_out):
        basis = np.zeros(n_out)
        basis[k] = 1.0
        ct = Tensor._make(_backend.from_host(basis.reshape(f_out.shape).astype(f_out.dtype),
                                             f_out.device), False, None)
        grads = engine.grad(f_out, xs, grad_outputs=ct, retain_graph=True, create_graph=record)
        for a, g in zip(analytic, grads):
            if g is not None:
                a[k] = _host(g.data).ravel()
    return analytic


def _one_sided(y0: np.ndarray, plus: np.ndarray, minus: np.ndarray, half_plus: np.ndarray,
               half_minus: np.ndarray, eps: float, atol: float) -> tuple[np.ndarray, ...]:
    """Per output element: whether it sits on a kink along the step, and the two one-sided
    derivatives there.

    A smooth function's one-sided differences differ by about ``eps·f''``, which halves with
    the step; at a kink they differ by the jump in the derivative, whatever the step.
    """
    jump = (plus - 2.0 * y0 + minus) / eps
    jump_half = (half_plus - 2.0 * y0 + half_minus) / (eps / 2)
    # What rounding alone can make of the differences, in float64.
    noise = 8 * np.finfo(np.float64).eps * (np.abs(plus) + np.abs(y0) + np.abs(minus)) / eps
    kink = (np.abs(jump) > atol + 2 * noise) & (np.abs(jump_half) > 0.75 * np.abs(jump))
    return kink, (plus - y0) / eps, (y0 - minus) / eps


def gradcheck(f: Callable, inputs: Sequence | Tensor, eps: float = 1e-6, atol: float = 1e-5,
              rtol: float = 1e-3) -> bool:
    """Check ``f``'s reverse-mode Jacobian against central finite differences in float64.

    Both of the engine's paths are checked: the unrecorded one every training step takes
    (ops' fast array rules) and the recorded one that ``create_graph`` and higher-order
    derivatives use (ops' Tensor rules). At a kink (relu or abs at 0, tied maxima) any value
    between the one-sided derivatives is accepted, so a rule's convention there passes.

    On a mismatch every node of the graph is checked on its own (see
    :func:`gradcheck_nodes`) and the error names the first node whose derivative rule
    disagrees with finite differences of its own forward.

    Args:
        f: a function of Tensors returning a Tensor (any shape).
        inputs: a Tensor/array or a sequence of them; each is converted to a float64 leaf.
        eps: the finite-difference step.
        atol, rtol: tolerances, as in ``numpy.allclose``.

    Returns:
        True when every input's Jacobian matches.

    Raises:
        GradcheckError (an AssertionError): naming the input index, the element, the
            largest mismatch, the path (recorded or not) that disagrees and the first wrong
            node (``err.node``).

    Example:
        >>> import flowgrad as fg
        >>> fg.gradcheck(lambda x: fg.tanh(x) * x, [fg.randn(3)])
        True
    """
    if isinstance(inputs, (Tensor, np.ndarray)):
        inputs = [inputs]
    xs = [_as_float64_leaf(x) for x in inputs]
    # Nodes remember the line of f that made them (no value checks), for the report.
    with graph.enable_grad(), anomaly.detect_anomaly(check_nan=False):
        out = f(*xs)
    if not isinstance(out, Tensor):
        raise TypeError(f"gradcheck: f must return a Tensor, got {type(out).__name__}")
    paths = {"unrecorded (fast rules)": _analytic(out, xs, record=False),
             "recorded (create_graph)": _analytic(out, xs, record=True)}
    y0 = None
    for i, x in enumerate(xs):
        numeric = np.zeros_like(paths["recorded (create_graph)"][i])
        flat = _host(x.data).reshape(-1)

        def at(j: int, step: float, flat: np.ndarray = flat, x: Tensor = x) -> np.ndarray:
            # f sees x moved by ``step`` in element j: a host copy sent to x's device (the
            # input's own array is put back afterwards).
            data = x.data
            original = flat[j]
            flat[j] = original + step
            try:
                x.data = _backend.from_host(flat.reshape(data.shape).copy(), x.device)
                return _flat_output(f, xs)
            finally:
                flat[j] = original
                x.data = data

        for j in range(flat.size):
            numeric[:, j] = (at(j, eps) - at(j, -eps)) / (2 * eps)
        for path, analytic in paths.items():
            a = analytic[i]
            bad = ~np.isclose(a, numeric, atol=atol, rtol=rtol, equal_nan=False)
            if not bad.any():
                continue
            # Columns with a mismatch: is the point a kink along that input element?
            if y0 is None:
                y0 = _flat_output(f, xs)
            for col in np.flatnonzero(bad.any(axis=0)).tolist():
                kink, right, left = _one_sided(y0, at(col, eps), at(col, -eps),
                                               at(col, eps / 2), at(col, -eps / 2), eps, atol)
                lo, hi = np.minimum(right, left), np.maximum(right, left)
                slack = atol + rtol * np.abs(numeric[:, col])
                inside = (a[:, col] >= lo - slack) & (a[:, col] <= hi + slack)
                bad[:, col] &= ~(kink & inside)
            if not bad.any():
                continue
            diff = np.where(bad, np.abs(a - numeric), 0.0)
            k, j = (int(v) for v in np.unravel_index(np.nanargmax(diff), diff.shape))
            if not np.isfinite(diff[k, j]) or diff[k, j] == 0.0:
                k, j = (int(v[0]) for v in np.nonzero(bad))
            message = (f"gradcheck: input {i} (shape {x.shape}): analytic ({path}) and "
                       f"numerical derivatives differ; largest mismatch {diff[k, j]:.3g} at "
                       f"output element {k}, input element {j}: analytic {a[k, j]:.6g} vs "
                       f"numerical {numeric[k, j]:.6g}")
            checks = NodeChecks(_check_node(n, eps, atol, rtol, 2, np.random.default_rng(0))
                                for n in graph.walk(out))
            raise _localised(message, checks)
    return True


def _localised(message: str, checks: NodeChecks) -> GradcheckError:
    failed = checks.failed
    if not failed:
        checked = sum(c.skipped is None for c in checks)
        return GradcheckError(
            f"{message}\nevery node's own derivative rule agrees with finite differences of "
            f"its forward ({checked} of {len(checks)} nodes checked), so f is not what its "
            f"graph records: a value computed outside flowgrad ops (NumPy on .data or "
            f".numpy()), a .detach(), or a tensor changed in place", None, checks)
    first = failed[0]
    node = first.node
    lines = [message, f"first wrong derivative rule, in forward order: {node.name} "
                      f"(node #{node.seq})" + (f" at {node.created_at}"
                                               if node.created_at is not None else "")]
    if node.created_at is not None:
        lines.extend(node.created_at.marked_source("    "))
    shapes = ", ".join(f"{tuple(a.shape)} {a.dtype}" if _backend.is_array(a) else repr(a)
                       for a in node.arrays)
    lines.append(f"  inputs: {shapes}")
    if node.params:
        lines.append("  arguments: " + ", ".join(f"{k}={v!r}" for k, v in node.params.items()))
    if first.raised is not None:
        lines.append(f"  its derivative rule raised {first.raised}")
    else:
        lines.append(f"  its {first.rule} for input {first.input} disagrees with central "
                     f"differences of its forward at its saved inputs: <u, J v> analytic "
                     f"{first.analytic:.6g} vs numerical {first.numerical:.6g} (error "
                     f"{first.max_error:.3g})")
    if len(failed) > 1:
        lines.append("  also wrong: " + ", ".join(f"{c.name} (node #{c.node.seq})"
                                                  for c in failed[1:]))
    return GradcheckError("\n".join(lines), node, checks)


def gradcheck_nodes(f: Callable, inputs: Sequence | Tensor, eps: float = 1e-6,
                    atol: float = 1e-5, rtol: float = 1e-3, trials: int = 2,
                    seed: int = 0) -> NodeChecks:
    """Check every node's derivative rule on its own, in forward order, without raising.

    ``f`` runs once on float64 copies of ``inputs``. For each node of its graph, the node's
    fast rule and its Tensor rule are applied to a random unit upstream gradient ``u`` at the
    node's saved inputs, and ``<rule(u), v>`` is compared with the central difference of the
    node's own forward along a random direction ``v`` of each input (``trials`` times). At
    a kink (relu at 0, tied maxima) any value between the one-sided derivatives passes.
    Nodes whose forward does not give back their saved output (a random op such as dropout,
    a value changed in place) or that are not finite there are skipped, with the reason.

    Args:
        f: a function of Tensors returning a Tensor.
        inputs: a Tensor/array or a sequence of them (converted to float64 leaves).
        eps: the finite-difference step.
        atol, rtol: tolerances on each directional derivative.
        trials: random directions per input.
        seed: seeds the directions.

    Returns:
        A list (:class:`NodeChecks`) of :class:`NodeCheck`, one per node in forward order;
        ``.failed`` lists the failures, ``str()`` prints one line per node.

    Example:
        >>> import flowgrad as fg
        >>> checks = fg.gradcheck_nodes(lambda x: fg.tanh(x * 2.0).sum(), [fg.randn(3)])
        >>> [(c.name, c.passed) for c in checks]
        [('mul', True), ('tanh', True), ('sum', True)]
    """
    if isinstance(inputs, (Tensor, np.ndarray)):
        inputs = [inputs]
    xs = [_as_float64_leaf(x) for x in inputs]
    with graph.enable_grad(), anomaly.detect_anomaly(check_nan=False):
        out = f(*xs)
    if not isinstance(out, Tensor):
        raise TypeError(f"gradcheck_nodes: f must return a Tensor, got {type(out).__name__}")
    rng = np.random.default_rng(seed)
    return NodeChecks(_check_node(n, eps, atol, rtol, trials, rng) for n in graph.walk(out))


def _check_node(node: Node, eps: float, atol: float, rtol: float, trials: int,
                rng: np.random.Generator) -> NodeCheck:
    """Both of the node's rules against central differences of its forward (see
    :func:`gradcheck_nodes`)."""
    op = node.op
    if node.freed:
        return NodeCheck(node, True, skipped="the graph was freed")
    if not _backend.on_host(node.value):
        return NodeCheck(node, True, skipped=f"on {_backend.device_of(node.value)}: nodes are "
                                             "checked on the cpu")
    wanted = [i for i, (x, a) in enumerate(zip(node.inputs, node.arrays))
              if isinstance(x, Tensor) and x.requires_grad and _backend.is_array(a)
              and a.dtype.kind == "f"]
    if not wanted:
        return NodeCheck(node, True, skipped="no floating input needs a gradient")
    base = [np.array(a, dtype=np.float64) if _backend.is_array(a) and a.dtype.kind == "f"
            else a for a in node.arrays]

    def forward(arrays: list) -> np.ndarray:
        token = _backend.quiet()
        try:
            out = op.forward(node.xp, *arrays, **node.params)
        finally:
            _backend.loud(token)
        return np.asarray(out[0] if op.saves else out)

    try:
        y0 = forward(base)
    except Exception as exc:  # an op that cannot run in float64, say: report, don't crash
        return NodeCheck(node, True, skipped=f"its forward failed on float64 inputs ({exc})")
    value = np.asarray(node.value)
    if y0.dtype.kind != "f" or value.dtype.kind != "f":
        return NodeCheck(node, True, skipped="its output is not floating")
    if not np.isfinite(y0).all():
        return NodeCheck(node, True, skipped="its output is not finite at its saved inputs")
    exact = value.dtype == np.float64
    if y0.shape != value.shape or not np.allclose(y0, value, rtol=1e-9 if exact else 1e-4,
                                                  atol=1e-12 if exact else 1e-5):
        return NodeCheck(node, True, skipped="its forward does not give back its saved output "
                                             "(a random op, or an input changed in place)")
    if y0.dtype != np.float64:  # an op that computes in lower precision (a cast): coarser
        eps, atol, rtol = max(eps, 1e-3), max(atol, 1e-3), max(rtol, 1e-2)

    result = NodeCheck(node, True)
    for _ in range(trials):
        u = rng.standard_normal(y0.shape)
        u /= max(float(np.linalg.norm(u)), 1e-300)
        g = u.astype(value.dtype)
        try:
            fast = node.op.vjp_arrays(node, g)
            with graph.no_grad():
                tensor_rule = node.op.vjp(node, Tensor._make(g, False, None))
        except Exception as exc:  # a rule that crashes is wrong too
            return NodeCheck(node, False, math.inf, raised=repr(exc))
        recorded = tuple(None if t is None else t.data for t in tensor_rule)
        # Without a fast rule the engine runs the Tensor rule on both paths: one rule.
        rules = ((("fast rule", fast), ("Tensor rule", recorded)) if op.has_fast_rule
                 else (("rule", recorded),))
        for i in wanted:
            v = rng.standard_normal(np.shape(base[i]))

            def along(step: float, i: int = i, v: Any = v) -> np.ndarray:
                moved = list(base)
                moved[i] = base[i] + step * v
                return forward(moved)

            plus, minus = along(eps), along(-eps)
            central = (plus - minus) / (2 * eps)
            numerical = float(np.sum(u * central))
            tol = atol + rtol * abs(numerical)
            bounds = None
            for name, grads in rules:
                analytic = _dot(grads[i], v)
                error = abs(analytic - numerical)
                if error <= tol:
                    if result.passed:
                        result.max_error = max(result.max_error, error)
                    continue
                if bounds is None:  # a kink? then the one-sided derivatives bound the rule
                    kink, right, left = _one_sided(y0, plus, minus, along(eps / 2),
                                                   along(-eps / 2), eps, atol)
                    ur, ul, uc = u * right, u * left, u * central
                    bounds = (float(np.where(kink, np.minimum(ur, ul), uc).sum()),
                              float(np.where(kink, np.maximum(ur, ul), uc).sum()),
                              int(kink.sum()))
                low, high, n_kinks = bounds
                if n_kinks and low - tol <= analytic <= high + tol:
                    result.kinks = max(result.kinks, n_kinks)
                    continue
                error = error if math.isfinite(error) else math.inf
                if result.passed or error > result.max_error:
                    result.passed = False
                    result.max_error, result.input, result.rule = error, i, name
                    result.analytic, result.numerical = analytic, numerical
    return result


def _dot(gradient: Any, v: np.ndarray) -> float:
    """``<gradient, v>`` in float64 (a None gradient is zero)."""
    if gradient is None:
        return 0.0
    g = np.asarray(gradient, dtype=np.float64)
    return float(np.sum(np.broadcast_to(g, v.shape) * v))
