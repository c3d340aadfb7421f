"""The chain rule spelled out for a formula: forward values, local derivatives, paths.

:func:`explain` evaluates a formula such as ``"sigmoid(w*x + b)"`` with flowgrad in float64,
then reads the recorded graph through the core's public walk and reports:

1. the **forward table**: each operation node, the sub-expression it computes and its value;
2. the **local derivatives**: for each node, d(node)/d(input) for each of its inputs, from the
   saved forward values, by the node's own derivative rule (``node.vjp(1.0)``);
3. for each variable, the **paths** from the output back to it, each with the product of
   the local derivatives along it, and the **sum over paths**, next to flowgrad's own
   gradient (``backward()``) and a central finite-difference estimate.

The number of paths can grow exponentially with the formula's size (each reuse of a
sub-expression doubles it), so at most ``max_paths`` are listed per variable; the sum over
*all* paths is computed anyway by dynamic programming (accumulating ``adjoint * local``
from the output back, which is exactly what backpropagation does).

Example:
    >>> import flowgrad as fg
    >>> e = fg.viz.explain("x*x + sin(x)", x=2.0)
    >>> len(e.gradients["x"].paths)
    3
    >>> round(e.gradients["x"].path_sum, 6) == round(e.gradients["x"].backward, 6)
    True
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from flowgrad.viz.formula import Formula, compile_formula

__all__ = [
    "Explanation",
    "FormulaAnomaly",
    "GradientReport",
    "NodeReport",
    "PathReport",
    "explain",
    "explain_formula",
    "find_anomaly",
]

#: Paths listed per variable by default; the sum always covers every path.
MAX_PATHS = 64


@dataclass
class NodeReport:
    """One operation node of the forward pass.

    Attributes:
        id: ``n1``, ``n2``, ... in evaluation order.
        op: the operation's registered name.
        expr: the sub-expression of the formula it computes.
        inputs: for each input edge: a node id, a variable name or a constant's text.
        value: the value it produced.
        local: for each input edge, d(this node)/d(input) from the saved values, or None
            for a constant input.
        grad: d(output)/d(this node) as ``backward()`` computed it (the upstream gradient
            this node received in the reverse sweep); None when nothing was differentiated.
        sent: for each input edge, the gradient ``backward()`` sent back along it
            (``grad × local``, by the node's own rule), or None for a constant input.
    """

    id: str
    op: str
    expr: str
    inputs: list[str]
    value: float
    local: list[float | None]
    grad: float | None = None
    sent: list[float | None] = field(default_factory=list)


@dataclass
class PathReport:
    """One path from the output back to a variable.

    Attributes:
        chain: the ids along the path, output first, the variable last.
        factors: the local derivative at each hop (``len(chain) - 1`` of them).
        product: the product of ``factors`` (1 for an empty path: the output is the variable).
        via: for each hop, which input of the node (1-based) the path leaves by; it tells
            apart the two edges of ``x*x``.
    """

    chain: list[str]
    factors: list[float]
    product: float
    via: list[int] = field(default_factory=list)


@dataclass
class GradientReport:
    """Everything known about d(output)/d(variable).

    Attributes:
        variable: the variable's name.
        paths: the paths listed (at most ``max_paths``).
        num_paths: how many paths exist in all.
        path_sum: the sum of the products over all paths (by dynamic programming).
        backward: flowgrad's gradient from ``backward()``.
        finite_difference: the central finite-difference estimate (float64).
        step: the finite-difference step used.
    """

    variable: str
    paths: list[PathReport]
    num_paths: int
    path_sum: float
    backward: float
    finite_difference: float
    step: float

    @property
    def listed_all(self) -> bool:
        return len(self.paths) == self.num_paths


@dataclass
class Explanation:
    """The chain rule spelled out for one formula at one point.

    Use :meth:`table` for text, :meth:`to_dict` for JSON and :meth:`draw` for the graph.
    """

    formula: str
    values: dict[str, float]
    output: float
    output_id: str
    nodes: list[NodeReport]
    gradients: dict[str, GradientReport]
    max_paths: int
    notes: list[str] = field(default_factory=list)
    # The recorded graph, kept (with retain_graph) so it can be drawn.
    _output_tensor: Any = field(default=None, repr=False, compare=False)
    _inputs: dict[str, Any] = field(default_factory=dict, repr=False, compare=False)
    _node_objects: list[Any] = field(default_factory=list, repr=False, compare=False)

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict with the same content as :meth:`table`."""
        return {
            "formula": self.formula,
            "values": dict(self.values),
            "output": {"id": self.output_id, "value": self.output},
            "nodes": [
                {
                    "id": n.id,
                    "op": n.op,
                    "expr": n.expr,
                    "inputs": list(n.inputs),
                    "value": n.value,
                    "local_derivatives": [
                        {"input": name, "derivative": d}
                        for name, d in zip(n.inputs, n.local)
                        if d is not None
                    ],
                    "gradient": n.grad,
                    "sent": [
                        {"input": name, "position": k, "upstream": n.grad, "local": d,
                         "sent": s}
                        for k, (name, d, s) in enumerate(
                            zip(n.inputs, n.local, n.sent or [None] * len(n.inputs)), start=1)
                        if d is not None
                    ],
                }
                for n in self.nodes
            ],
            # The reverse sweep visits the nodes from the output back (descending creation
            # order); each node's "sent" list is what it passes to its inputs.
            "backward_order": [n.id for n in reversed(self.nodes)],
            "gradients": {
                name: {
                    "paths": [
                        {
                            "chain": p.chain,
                            "via_inputs": p.via,
                            "factors": p.factors,
                            "product": p.product,
                        }
                        for p in g.paths
                    ],
                    "num_paths": g.num_paths,
                    "paths_listed": len(g.paths),
                    "path_sum": g.path_sum,
                    "backward": g.backward,
                    "finite_difference": g.finite_difference,
                    "finite_difference_step": g.step,
                }
                for name, g in self.gradients.items()
            },
            "max_paths": self.max_paths,
            "notes": list(self.notes),
        }

    def to_json(self) -> str:
        """:meth:`to_dict` as strict JSON text, as ``flowgrad explain --json`` prints it.

        Non-finite numbers become the strings ``"inf"``, ``"-inf"`` and ``"nan"`` (strict
        JSON has no literal for them). ``flowgrad explore``'s ``POST /api/explain`` answers
        this same text.
        """
        return json.dumps(_json_safe(self.to_dict()), indent=2, ensure_ascii=False)

    def table(self) -> str:
        """The explanation as plain text: forward table, local derivatives, paths."""
        lines: list[str] = []
        vals = ", ".join(f"{k} = {_fmt(v)}" for k, v in self.values.items())
        lines.append(f"f = {self.formula}" + (f"   at {vals}" if vals else ""))
        lines.append(f"f = {_fmt(self.output)}")
        lines.append("")

        lines.append("Forward pass (each node computes one operation on saved values)")
        rows = [["node", "op", "inputs", "computes", "value"]]
        for n in self.nodes:
            rows.append([n.id, n.op, ", ".join(n.inputs), n.expr, _fmt(n.value)])
        lines.extend(_grid(rows))
        lines.append("")

        lines.append("Local derivatives (from the saved forward values, node.vjp(1.0))")
        rows = [["node", "input", "derivative"]]
        repeated: set[tuple[str, str]] = set()
        for n in self.nodes:
            for position, (name, d) in enumerate(zip(n.inputs, n.local), start=1):
                if n.inputs.count(name) > 1:
                    repeated.add((n.id, name))
                if d is not None:
                    rows.append([n.id, f"{position}: {name}", f"∂{n.id}/∂{name} = {_fmt(d)}"])
        if len(rows) == 1:
            lines.append("  (none: the formula has no operation on a variable)")
        else:
            lines.extend(_grid(rows))
        lines.append("")

        lines.append("Chain rule: d f / d variable = sum over paths of the product of factors")
        for name, g in self.gradients.items():
            lines.append("")
            plural = "path" if g.num_paths == 1 else "paths"
            lines.append(f"d f/d {name}: {g.num_paths} {plural} from {self.output_id} to {name}")
            for p in g.paths:
                lines.append("  " + _path_text(p, repeated))
            if not g.listed_all:
                lines.append(
                    f"  ... {g.num_paths - len(g.paths)} more paths not listed "
                    f"(at most {self.max_paths} are); the sum covers all of them"
                )
            lines.append(f"  sum over paths        {_fmt(g.path_sum)}")
            lines.append(f"  flowgrad backward()   {_fmt(g.backward)}")
            lines.append(
                f"  finite difference     {_fmt(g.finite_difference)}   "
                f"(central, h = {g.step:.1e}, float64)"
            )
        if self.notes:
            lines.append("")
            lines.extend(f"note: {n}" for n in self.notes)
        return "\n".join(lines)

    def __str__(self) -> str:
        return self.table()

    def node(self, node_id: str) -> Any:
        """The graph node with report id ``node_id`` (``"n2"``), e.g. for ``draw(highlight=)``."""
        for obj, rep in zip(self._node_objects, self.nodes):
            if rep.id == node_id:
                return obj
        raise KeyError(f"no node {node_id!r} in this explanation")

    def draw(self, **options: Any):
        """The formula's dataflow graph with variable names and node ids, via ``draw_graph``.

        ``highlight=`` a node (see :meth:`node`) colours it red and what it fed orange.
        """
        from flowgrad.viz.graph import draw_graph

        if self._output_tensor is None:
            raise RuntimeError("this Explanation holds no graph to draw")
        notes = {obj: f"{rep.id}: {rep.expr}" for obj, rep in zip(self._node_objects, self.nodes)}
        options.setdefault("title", f"f = {self.formula}")
        options.setdefault("node_notes", notes)
        return draw_graph(self._output_tensor, params=self._inputs, **options)


def _json_safe(obj: Any) -> Any:
    """Non-finite floats as strings ("inf", "nan"): strict JSON has no literal for them."""
    if isinstance(obj, float) and not math.isfinite(obj):
        return str(obj)
    if isinstance(obj, dict):
        return {k: _json_safe(v) for k, v in obj.items()}
    if isinstance(obj, list):
        return [_json_safe(v) for v in obj]
    return obj


def _fmt(v: float) -> str:
    """Up to 6 significant digits; enough to compare the three gradient estimates by eye."""
    if v is None:
        return "-"
    v = float(v)
    if v == 0.0:
        return "0"
    if not math.isfinite(v):
        return str(v)
    return f"{v:.6g}"


def _path_text(p: PathReport, repeated: set[tuple[str, str]]) -> str:
    # Where a node uses the same input twice (x*x), name the edge: "n1 →(input 2) x".
    chain = p.chain[0] if p.chain else ""
    for k in range(1, len(p.chain)):
        if (p.chain[k - 1], p.chain[k]) in repeated and k - 1 < len(p.via):
            chain += f" →(input {p.via[k - 1]}) {p.chain[k]}"
        else:
            chain += f" → {p.chain[k]}"
    if not p.factors:
        return f"{chain}: (the output is the variable) = 1"
    factors = " × ".join(f"({_fmt(f)})" if f < 0 else _fmt(f) for f in p.factors)
    return f"{chain}:  {factors} = {_fmt(p.product)}"


def _grid(rows: list[list[str]]) -> list[str]:
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    out = []
    for k, r in enumerate(rows):
        out.append("  " + "  ".join(c.ljust(w) for c, w in zip(r, widths)).rstrip())
        if k == 0:
            out.append("  " + "  ".join("-" * w for w in widths))
    return out


def _to_float(name: str, value: Any) -> float:
    if isinstance(value, bool) or isinstance(value, str):
        raise TypeError(f"value for '{name}' must be a number, got {value!r}")
    try:
        arr = np.asarray(value, dtype=np.float64)
    except (TypeError, ValueError):
        raise TypeError(f"value for '{name}' must be a number, got {value!r}") from None
    if arr.size != 1:
        raise TypeError(f"value for '{name}' must be a single number, got shape {arr.shape}")
    v = float(arr.reshape(()))
    if not math.isfinite(v):
        raise ValueError(f"value for '{name}' must be a finite number, got {v}")
    return v


def _finite_difference(
    formula: Formula, values: dict[str, float], name: str
) -> tuple[float, float]:
    """Central difference in float64 with the step that balances truncation and rounding."""
    import flowgrad as fg

    h = float(np.cbrt(np.finfo(np.float64).eps)) * max(1.0, abs(values[name]))
    with fg.no_grad():
        plus = formula.evaluate({**values, name: values[name] + h}).item()
        minus = formula.evaluate({**values, name: values[name] - h}).item()
    return (plus - minus) / (2.0 * h), h


def explain_formula(
    formula: str | Formula, values: Mapping[str, Any], max_paths: int = MAX_PATHS
) -> Explanation:
    """Explain ``formula`` at ``values``; see :func:`explain`.

    Args:
        formula: the formula text, or a compiled :class:`~flowgrad.viz.formula.Formula`.
        values: one number per variable.
        max_paths: the most paths listed per variable (the sum covers all).

    Returns:
        The :class:`Explanation`.

    Raises:
        FormulaError: the formula is not valid.
        TypeError: a variable without a value, a value for a name the formula does not use,
            or a value that is not a single number.
        ValueError: a value that is not finite.
    """
    f = formula if isinstance(formula, Formula) else compile_formula(formula)
    if max_paths < 0:
        raise ValueError(f"max_paths must be >= 0, got {max_paths}")
    missing = [n for n in f.variables if n not in values]
    if missing:
        raise TypeError(
            f"no value given for {', '.join(missing)} (usage: NAME=VALUE for each of "
            f"{', '.join(f.variables)})"
        )
    unused = [n for n in values if n not in f.variables]
    if unused:
        raise TypeError(f"value given for {', '.join(unused)}, which the formula does not use")
    nums = {n: _to_float(n, values[n]) for n in f.variables}
    # log(0), 1/0 and friends are reported in the explanation's notes, not as warnings.
    with np.errstate(all="ignore"):
        return _explain(f, nums, max_paths)


def _explain(f: Formula, nums: dict[str, float], max_paths: int) -> Explanation:
    import flowgrad as fg
    from flowgrad.graph import walk
    from flowgrad.tensor import Tensor
    from flowgrad.viz.formula import Expr

    inputs = {n: fg.tensor(np.float64(v), requires_grad=True) for n, v in nums.items()}
    exprs: dict[int, Expr] = {}

    def remember(e: Expr, result: Any) -> None:
        # The innermost sub-expression names a node (so "+(x*y)" reports "x*y").
        if isinstance(result, Tensor) and result.grad_fn is not None:
            exprs.setdefault(id(result.grad_fn), e)

    out = f.evaluate(inputs, on_result=remember)
    nodes = walk(out)

    # Node ids n1, n2, ... ("node1", ... if a variable is itself called like n1).
    prefix = "node" if any(re.fullmatch(r"n\d+", n) for n in f.variables) else "n"
    ids: dict[int, str] = {id(node): f"{prefix}{k + 1}" for k, node in enumerate(nodes)}
    var_of = {id(t): n for n, t in inputs.items()}
    notes: list[str] = []

    if out.grad_fn is None and id(out) in var_of:
        output_key: tuple[str, str] = ("var", var_of[id(out)])
    elif out.grad_fn is None:
        output_key = ("const", "f")
        notes.append("the formula does not depend on any variable")
    else:
        output_key = ("node", ids[id(out.grad_fn)])
    output_id = output_key[1]

    # Local derivatives from the saved forward values (never through backward()).
    reports: list[NodeReport] = []
    hops: dict[tuple[str, str], list[tuple[tuple[str, str], float, int]]] = {}
    for node in nodes:
        with fg.no_grad():
            local_t = node.vjp(1.0)
        labels: list[str] = []
        local: list[float | None] = []
        node_hops: list[tuple[tuple[str, str], float, int]] = []
        for position, (inp, d) in enumerate(zip(node.inputs, local_t), start=1):
            key: tuple[str, str] | None = None
            if isinstance(inp, Tensor) and inp.grad_fn is not None:
                key = ("node", ids[id(inp.grad_fn)])
            elif isinstance(inp, Tensor) and id(inp) in var_of:
                key = ("var", var_of[id(inp)])
            labels.append(key[1] if key is not None else _fmt(float(np.asarray(inp))))
            dv = None if d is None else float(d.item())
            local.append(dv)
            if dv is not None and key is not None:
                node_hops.append((key, dv, position))
        hops[("node", ids[id(node)])] = node_hops
        e = exprs.get(id(node))
        reports.append(
            NodeReport(
                id=ids[id(node)],
                op=node.name,
                expr=e.to_text() if e is not None else node.name,
                inputs=labels,
                value=float(np.asarray(node.value).reshape(())),
                local=local,
            )
        )

    # backward() for flowgrad's own gradient; retain the graph so it can be drawn after, and
    # so each node keeps the gradient it received and the ones it sent back (node.grad,
    # node.input_grads).
    if out.requires_grad:
        out.backward(retain_graph=True)
        for node, rep in zip(nodes, reports):
            rep.grad = None if node.grad is None else float(node.grad.item())
            sent = node.input_grads or (None,) * len(rep.inputs)
            rep.sent = [None if s is None or d is None else float(s.item())
                        for s, d in zip(sent, rep.local)]

    gradients: dict[str, GradientReport] = {}
    for name in f.variables:
        fd, h = _finite_difference(f, nums, name)
        grad = inputs[name].grad
        backward_value = 0.0 if grad is None else float(grad.item())
        paths, count, total = _paths_to(output_key, ("var", name), hops, max_paths)
        gradients[name] = GradientReport(name, paths, count, total, backward_value, fd, h)
        if not (math.isfinite(total) and math.isfinite(backward_value)):
            notes.append(
                f"d f/d {name} is not finite at this point (e.g. log, sqrt or a division "
                "at 0, or an overflow); the chain rule cannot give a number here"
            )
        elif not math.isfinite(fd):
            notes.append(
                f"d f/d {name}: no finite difference, because f is not finite at or near "
                "this point"
            )
        elif not math.isclose(total, fd, rel_tol=1e-4, abs_tol=1e-6):
            notes.append(
                f"d f/d {name}: the finite difference ({_fmt(fd)}) differs from the chain "
                f"rule ({_fmt(total)}); expected at a kink such as relu(0), abs(0) or "
                "step(0), where flowgrad uses the conventions relu'(0) = abs'(0) = 0 and "
                "step' = 0 while the difference straddles the kink"
            )

    return Explanation(
        formula=f.expr.to_text(),
        values=nums,
        output=float(out.item()),
        output_id=output_id,
        nodes=reports,
        gradients=gradients,
        max_paths=max_paths,
        notes=notes,
        _output_tensor=out,
        _inputs=inputs,
        _node_objects=nodes,
    )


@dataclass
class FormulaAnomaly:
    """Where evaluating or differentiating a formula first created a NaN or an infinity.

    Attributes:
        error: the :class:`flowgrad.AnomalyError` anomaly mode raised.
        expr: the sub-expression whose operation created it, e.g. ``"log(x)"``.
        node_id: that operation's id in the :class:`Explanation` (``"n2"``).
    """

    error: Any
    expr: str
    node_id: str

    def report(self) -> str:
        """The anomaly report, naming the sub-expression instead of a source line."""
        return self.error.report(where=f"in {self.node_id} = {self.expr}")


def find_anomaly(formula: str | Formula, values: Mapping[str, Any]) -> FormulaAnomaly | None:
    """Evaluate ``formula`` at ``values`` and differentiate it under ``fg.detect_anomaly()``.

    Returns:
        The first operation that created a NaN or ±Inf from finite values, forward or in its
        derivative rule, as a :class:`FormulaAnomaly`; None when every value and gradient
        stayed finite (or only passed on a non-finite value the inputs already held).

    Example:
        >>> found = find_anomaly("log(x) * y", {"x": 0.0, "y": 1.0})
        >>> found.expr, found.error.direction, found.error.kind
        ('log(x)', 'forward', '-Inf')
    """
    import flowgrad as fg
    from flowgrad.tensor import Tensor
    from flowgrad.viz.formula import _postorder

    f = formula if isinstance(formula, Formula) else compile_formula(formula)
    nums = {n: _to_float(n, values[n]) for n in f.variables}
    inputs = {n: fg.tensor(np.float64(v), requires_grad=True) for n, v in nums.items()}
    order = _postorder(f.expr)
    done: list[Any] = []  # the sub-expressions evaluated so far, in order
    made: list[tuple[Any, Any]] = []  # (node, sub-expression), in creation order

    def remember(e: Any, result: Any) -> None:
        done.append(e)
        if isinstance(result, Tensor) and result.grad_fn is not None \
                and all(node is not result.grad_fn for node, _ in made):
            made.append((result.grad_fn, e))

    try:
        with fg.detect_anomaly():
            out = f.evaluate(inputs, on_result=remember)
            if out.requires_grad:
                out.backward()
    except fg.AnomalyError as err:
        for k, (node, e) in enumerate(made):
            if node is err.node:  # a derivative rule, or an op recorded before
                return FormulaAnomaly(err, e.to_text(), _node_id(f, k))
        # The forward of the next sub-expression raised: it is the next node.
        return FormulaAnomaly(err, order[len(done)].to_text(), _node_id(f, len(made)))
    return None


def _node_id(f: Formula, k: int) -> str:
    # As _explain numbers the nodes (n1, n2, ...; node1, ... if a variable is called n1).
    prefix = "node" if any(re.fullmatch(r"n\d+", n) for n in f.variables) else "n"
    return f"{prefix}{k + 1}"


def _paths_to(
    output: tuple[str, str],
    target: tuple[str, str],
    hops: dict[tuple[str, str], list[tuple[tuple[str, str], float, int]]],
    max_paths: int,
) -> tuple[list[PathReport], int, float]:
    """List up to ``max_paths`` paths output -> target; count and sum all by dynamic programming.

    ``hops[node]`` are the (input, local derivative) edges out of a node towards its inputs;
    keys are ``("node", id)`` or ``("var", name)``. ``hops`` is in topological order (inputs
    first), so one pass over it computes, for every node, how many paths lead from it to
    ``target`` and the sum of their products.
    """
    count: dict[tuple[str, str], int] = {target: 1}
    total: dict[tuple[str, str], float] = {target: 1.0}
    for key, edges in hops.items():
        c, s = 0, 0.0
        for src, d, _ in edges:
            # Skip edges that never reach target: inf * 0 there would poison the sum.
            if count.get(src, 0):
                c += count[src]
                s += d * total[src]
        count[key], total[key] = c, s
    n_paths = count.get(output, 0)
    path_sum = total.get(output, 0.0)

    listed: list[PathReport] = []
    # Depth-first from the output with an explicit stack, entering only nodes from which
    # target is reachable, so every step extends a real path and listing stops at max_paths.
    stack: list[tuple[tuple[str, str], list[str], list[float], list[int]]] = [
        (output, [output[1]], [], [])
    ]
    while stack and len(listed) < max_paths:
        key, chain, factors, via = stack.pop()
        if key == target:
            product = float(np.prod(factors)) if factors else 1.0
            listed.append(PathReport(chain, factors, product, via))
            continue
        for src, d, position in reversed(hops.get(key, [])):
            if count.get(src, 0) > 0:
                stack.append((src, [*chain, src[1]], [*factors, d], [*via, position]))
    return listed, n_paths, path_sum


def explain(expr: str, /, **values: Any) -> Explanation:
    """Spell out the chain rule for ``expr`` at the given values (float64 throughout).

    Args:
        expr: a formula in the small formula language (see :mod:`flowgrad.viz.formula`),
            e.g. ``"sigmoid(w*x + b)"``.
        **values: one number per variable, e.g. ``w=0.5, x=2, b=-1``.

    Returns:
        An :class:`Explanation`: ``.table()`` for text, ``.to_dict()`` for JSON, ``.draw()``
        for the graph.

    Raises:
        FormulaError: the formula is not valid (one line naming the problem).
        TypeError: a variable without a value, a value the formula does not use, or a value
            that is not a number.

    Example:
        >>> import flowgrad as fg
        >>> e = fg.viz.explain("sigmoid(w*x + b)", w=0.5, x=2, b=-1)
        >>> e.output
        0.5
        >>> e.gradients["w"].backward
        0.5
    """
    return explain_formula(expr, values)
