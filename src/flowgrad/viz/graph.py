"""Draw the dataflow graph behind a Tensor: Graphviz DOT text, rendered to SVG or PNG.

The DOT text is built by a pure function (:func:`graph_source`) from the core's public walk
(:func:`flowgrad.graph.walk`); rendering (:meth:`GraphDrawing.render`) is separate and runs
Graphviz's ``dot`` program. One node per operation, never per element, so a network with
large weight matrices stays a handful of boxes.

What the picture shows:

* **operation nodes** (ellipses): the op's name and non-tensor arguments;
* **leaves** (boxes): parameters (named, orange), other inputs that require a gradient
  (green), data that does not (grey), and constants such as the ``2`` in ``x**2`` (plain
  text);
* **edges**, pointing the way values flow: the value flowing along the edge (a scalar's
  value, or a tensor's shape with mean, min and max); after
  ``backward(retain_graph=True)``, the gradient flowing back along it (``∇``); and, where
  both ends are scalars, the local derivative of the consuming node with respect to that
  input (``∂``), computed from the saved forward values by the node's own derivative rule.
  Multiplying the ``∂`` factors along a path and summing over paths gives the gradient: the
  chain rule, on the picture.

Example:
    >>> import flowgrad as fg
    >>> w = fg.tensor(0.5, requires_grad=True)
    >>> y = fg.sigmoid(w * 2.0)
    >>> y.backward(retain_graph=True)
    >>> drawing = fg.viz.draw_graph(y, params={"w": w})
    >>> drawing.render("graph.svg")  # doctest: +SKIP
"""

from __future__ import annotations

import html
import os
import shutil
import subprocess
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from flowgrad._atomic import write_bytes

__all__ = ["GraphDrawing", "GraphFreedError", "draw_graph", "graph_source"]

_FREED_HINT = (
    "the dataflow graph behind this output was freed by backward(); call "
    "backward(retain_graph=True) to keep it for drawing, or draw the graph before backward()"
)

_MISSING_DOT = (
    "Graphviz's `dot` program is needed to render graphs and was not found on PATH; install "
    "Graphviz (Debian/Ubuntu: `apt-get install graphviz`; macOS: `brew install graphviz`), "
    "or save the DOT text with drawing.save('graph.dot')"
)

_FORMATS = {".svg": "svg", ".png": "png", ".pdf": "pdf"}

# Colours: values dark blue, gradients red, local derivatives purple (also in the legend).
_VALUE_COLOR = "#1f3a93"
_GRAD_COLOR = "#c0392b"
_LOCAL_COLOR = "#7d3c98"

_STYLE = {
    "op": 'shape=ellipse, style=filled, fillcolor="#dbe9f6", color="#4a76a8"',
    "output": 'shape=ellipse, style="filled,bold", fillcolor="#a9cce3", color="#1f3a93", '
    "penwidth=2",
    "param": 'shape=box, style="filled,rounded", fillcolor="#fcd9a8", color="#c56a00"',
    "input": 'shape=box, style="filled,rounded", fillcolor="#d5f0d5", color="#3c8d3c"',
    "data": 'shape=box, style="filled,rounded,dashed", fillcolor="#eeeeee", color="#777777"',
    "const": 'shape=plaintext, fontcolor="#555555"',
    # highlight=: the culprit (an anomaly's or a wrong rule's node) and what it fed
    "culprit": 'shape=ellipse, style="filled,bold", fillcolor="#ec7063", color="#922b21", '
    "penwidth=2.5",
    "fed": 'shape=ellipse, style=filled, fillcolor="#f5b041", color="#b9770e"',
}
_CULPRIT_COLOR = "#c0392b"
_FED_COLOR = "#d35400"


class GraphFreedError(RuntimeError):
    """The graph to draw was freed by a ``backward()`` without ``retain_graph=True``."""


# ---------------------------------------------------------------------------------------------
# Number formatting
# ---------------------------------------------------------------------------------------------


def _num(v: float, digits: int = 4) -> str:
    """A number with ``digits`` significant digits, without a negative zero."""
    v = float(v)
    if v == 0.0:
        return "0"
    return f"{v:.{digits}g}"


def _shape(shape: tuple[int, ...]) -> str:
    return "×".join(str(s) for s in shape) if shape else "scalar"


def _summary(arr: Any) -> str:
    """One line describing an array: its value if it has one element, else shape and stats."""
    a = np.asarray(arr)
    if a.size == 1:
        if a.dtype.kind == "b":
            return str(bool(a.reshape(())))
        return _num(a.reshape(()))
    if a.size == 0:
        return f"{_shape(a.shape)} (empty)"
    if a.dtype.kind == "b":
        return f"{_shape(a.shape)} bool, {int(np.count_nonzero(a))} true"
    if a.dtype.kind in "iu":
        return f"{_shape(a.shape)} int, [{a.min()}, {a.max()}]"
    mean, lo, hi = float(a.mean()), float(a.min()), float(a.max())
    # A mean that is rounding noise next to the spread reads better as 0 than as 1e-11.
    if np.isfinite(mean) and abs(mean) <= 1e-6 * max(abs(lo), abs(hi)):
        mean = 0.0
    return f"{_shape(a.shape)}  μ {_num(mean, 3)}  [{_num(lo, 3)}, {_num(hi, 3)}]"


def _param_text(key: str, value: Any) -> str:
    if isinstance(value, np.ndarray):
        value = f"array {_shape(value.shape)}" if value.size > 4 else value.tolist()
    if isinstance(value, float):
        value = _num(value)
    return f"{key}={value}"


def _esc(text: str) -> str:
    return html.escape(text, quote=True)


# ---------------------------------------------------------------------------------------------
# The pure function: graph -> DOT
# ---------------------------------------------------------------------------------------------


def _walk(output: Any) -> list:
    from flowgrad.graph import walk

    fn = output.grad_fn
    if fn is not None and getattr(fn, "freed", False):
        raise GraphFreedError(_FREED_HINT)
    try:
        return walk(output)
    except RuntimeError as exc:
        # A node further up may have been freed by an earlier backward.
        raise GraphFreedError(_FREED_HINT) from exc


def _name_map(params: Any) -> dict[int, str]:
    if params is None:
        return {}
    if hasattr(params, "named_parameters"):
        items = list(params.named_parameters())
    elif isinstance(params, Mapping):
        items = list(params.items())
    else:
        raise TypeError(
            "params must be a Module (with named_parameters()) or a dict name -> Tensor, "
            f"got {type(params).__name__}"
        )
    return {id(t): str(name) for name, t in items}


def _local_derivatives(node: Any) -> tuple | None:
    """``node.vjp(1.0)`` as floats when the node's output is a scalar, else None."""
    import flowgrad as fg

    if node.value is None or np.size(node.value) != 1:
        return None
    with fg.no_grad():
        grads = node.vjp(1.0)
    return tuple(None if g is None or g.numel() != 1 else float(g.item()) for g in grads)


def _highlighted(nodes: list, highlight: Any) -> tuple[Any, set[int]]:
    """The node to colour red and the ids of the nodes it fed, in the walked graph."""
    if highlight is None:
        return None, set()
    from flowgrad.graph import Node
    from flowgrad.tensor import Tensor

    target = highlight
    if isinstance(target, Tensor):
        target = target.grad_fn
    elif not isinstance(target, Node) and hasattr(target, "node"):
        target = target.node  # AnomalyError, GradcheckError, NodeCheck
    if target is None or not any(n is target for n in nodes):
        raise ValueError(f"highlight={highlight!r} is not a node of this graph")
    fed: set[int] = set()
    for node in nodes:  # forward order: a node's inputs come first
        for inp in node.inputs:
            fn = getattr(inp, "grad_fn", None)
            if fn is not None and (fn is target or id(fn) in fed):
                fed.add(id(node))
                break
    return target, fed


def _html_lines(lines: list[tuple[str, str | None, bool]]) -> str:
    """HTML-like label from (text, colour, bold) lines."""
    parts = []
    for text, color, bold in lines:
        t = _esc(text)
        if bold:
            t = f"<B>{t}</B>"
        if color:
            t = f'<FONT COLOR="{color}">{t}</FONT>'
        parts.append(t)
    return "<" + "<BR/>".join(parts) + ">"


@dataclass
class _Leaf:
    key: str
    kind: str
    tensor: Any
    lines: list[tuple[str, str | None, bool]] = field(default_factory=list)
    uses: int = 0


def graph_source(
    output: Any,
    params: Any = None,
    show_values: bool = True,
    show_grads: bool = True,
    *,
    title: str | None = None,
    node_notes: Mapping[Any, str] | None = None,
    rankdir: str | None = None,
    highlight: Any = None,
) -> str:
    """The Graphviz DOT text of the dataflow graph that produced ``output`` (a pure function).

    Args:
        output: the Tensor whose graph to draw (e.g. a loss).
        params: names for leaves: a Module (``named_parameters()``) or a dict name -> Tensor;
            matched by identity.
        show_values: label each edge with the value flowing along it.
        show_grads: label each edge with the gradient flowing back (after
            ``backward(retain_graph=True)``) and, on scalar edges, the local derivative.
        node_notes: extra text per operation node (a dict Node -> str), e.g. ids or
            sub-expressions.
        title: a caption drawn above the graph (``\n`` starts a new line).
        rankdir: Graphviz layout direction: ``"LR"`` (inputs left), ``"TB"`` (inputs on
            top), ``"RL"`` or ``"BT"``. Default: ``"LR"`` for scalar graphs, whose short
            labels read well in a row, and ``"TB"`` when tensors flow, whose longer labels
            would make a row too wide.
        highlight: a node to single out, coloured red, with every node it fed (directly or
            further down) orange: a Node, a Tensor (its ``grad_fn``), or anything with a
            ``.node`` (``fg.AnomalyError``, ``fg.GradcheckError``, a gradcheck ``NodeCheck``).

    Returns:
        The DOT source text.

    Raises:
        GraphFreedError: the graph was freed by ``backward()`` without ``retain_graph``.
        ValueError: ``highlight`` is not a node of this graph.
    """
    from flowgrad.tensor import Tensor

    if rankdir not in (None, "LR", "RL", "TB", "BT"):
        raise ValueError(f"rankdir must be one of LR, RL, TB, BT, got {rankdir!r}")
    nodes = _walk(output)
    if rankdir is None:
        rankdir = "TB" if any(np.size(n.value) != 1 for n in nodes) else "LR"
    names = _name_map(params)
    notes = {id(k): v for k, v in (node_notes or {}).items()}
    node_key = {id(n): f"op{i}" for i, n in enumerate(nodes)}
    out_node = output.grad_fn
    culprit, fed = _highlighted(nodes, highlight)

    leaves: dict[int, _Leaf] = {}
    consts: list[tuple[str, str]] = []
    edges: list[tuple[str, str, str | None, str | None]] = []
    shown: set[str] = set()  # which kinds of edge labels appear, for the legend

    def leaf_for(t: Any) -> str:
        leaf = leaves.get(id(t))
        if leaf is not None:
            return leaf.key
        name = names.get(id(t))
        if t.requires_grad:
            kind = "param" if name is not None else "input"
        else:
            kind = "data"
        title_text = (
            name if name is not None else {"input": "input", "data": "data"}.get(kind, "parameter")
        )
        lines: list[tuple[str, str | None, bool]] = [(title_text, None, True)]
        if t.data.size == 1:
            lines.append((f"= {_summary(t.data)}", None, False))
        else:
            lines.append((f"{_shape(t.shape)} {t.dtype}", None, False))
        leaf = _Leaf(f"leaf{len(leaves)}", kind, t, lines)
        leaves[id(t)] = leaf
        return leaf.key

    if not nodes:
        # The output is itself a leaf: nothing was computed.
        leaf_for(output)

    for node in nodes:
        local = _local_derivatives(node) if show_grads else None
        input_grads = node.input_grads if show_grads else None
        dst = node_key[id(node)]
        for i, inp in enumerate(node.inputs):
            if isinstance(inp, Tensor):
                if inp.grad_fn is not None:
                    src = node_key[id(inp.grad_fn)]
                    value = inp.grad_fn.value
                else:
                    src = leaf_for(inp)
                    leaves[id(inp)].uses += 1
                    value = inp.data
                lines: list[tuple[str, str | None, bool]] = []
                if show_values:
                    lines.append((_summary(value), _VALUE_COLOR, False))
                if input_grads is not None and input_grads[i] is not None:
                    lines.append((f"∇ {_summary(input_grads[i].data)}", _GRAD_COLOR, False))
                    shown.add("grad")
                if local is not None and i < len(local) and local[i] is not None:
                    if np.size(value) == 1:
                        lines.append((f"∂={_num(local[i])}", _LOCAL_COLOR, False))
                        shown.add("local")
                color = None
                if culprit is not None and inp.grad_fn is not None:
                    if inp.grad_fn is culprit:
                        color = _CULPRIT_COLOR
                    elif id(inp.grad_fn) in fed:
                        color = _FED_COLOR
                edges.append((src, dst, _html_lines(lines) if lines else None, color))
            elif inp is None:
                continue
            else:
                key = f"const{len(consts)}"
                consts.append((key, _summary(inp)))
                edges.append((key, dst, None, None))

    out: list[str] = [
        "digraph flowgrad {",
        f"  graph [rankdir={rankdir}, nodesep=0.35, ranksep=0.55, fontname=Helvetica, "
        'fontsize=12, labelloc=t, bgcolor="white"];',
        "  node [fontname=Helvetica, fontsize=11];",
        '  edge [fontname=Helvetica, fontsize=10, color="#555555", arrowsize=0.7];',
    ]
    caption: list[str] = []
    if title:
        caption.extend(f"<B>{_esc(line)}</B>" for line in title.splitlines())
    legend = []
    if show_values:
        legend.append(f'<FONT COLOR="{_VALUE_COLOR}">value flowing forward</FONT>')
    if "grad" in shown:
        legend.append(f'<FONT COLOR="{_GRAD_COLOR}">∇ gradient flowing back</FONT>')
    if "local" in shown:
        legend.append(f'<FONT COLOR="{_LOCAL_COLOR}">∂ local derivative</FONT>')
    if legend:
        caption.append("edges: " + "   ".join(legend))
        if show_values and any(np.size(n.value) != 1 for n in nodes):
            caption.append("tensors: shape  μ mean  [min, max]")
    if culprit is not None:
        caption.append(f'<FONT COLOR="{_CULPRIT_COLOR}">red: {_esc(culprit.name)}</FONT>'
                       f'   <FONT COLOR="{_FED_COLOR}">orange: what it fed</FONT>')
    if caption:
        out.append(f"  label=<{'<BR/>'.join(caption)}>;")

    for leaf in leaves.values():
        grad = leaf.tensor.grad
        # The leaf's .grad is the sum over its edges; worth a line when it is short (a
        # scalar) or when several edges add up into it. Otherwise the edge already shows it.
        if show_grads and grad is not None and (grad.numel() == 1 or leaf.uses > 1):
            leaf.lines.append((f"∇ {_summary(grad.data)}", _GRAD_COLOR, False))
        out.append(f"  {leaf.key} [label={_html_lines(leaf.lines)}, {_STYLE[leaf.kind]}];")
    for key, text in consts:
        out.append(f"  {key} [label={_html_lines([(text, None, False)])}, {_STYLE['const']}];")
    for node in nodes:
        lines = [(node.name, None, True)]
        if node.params:
            lines.append(
                (", ".join(_param_text(k, v) for k, v in node.params.items()), None, False)
            )
        note = notes.get(id(node))
        if note:
            lines.extend((text, "#333333", False) for text in note.splitlines())
        style = _STYLE["op"]
        if node is out_node:
            style = _STYLE["output"]
            if show_values:
                lines.append((f"out {_summary(node.value)}", _VALUE_COLOR, False))
            if show_grads and node.grad is not None:
                lines.append((f"∇ {_summary(node.grad.data)}", _GRAD_COLOR, False))
        if node is culprit:
            style = _STYLE["culprit"]
        elif id(node) in fed:
            style = _STYLE["fed"] + (", penwidth=2" if node is out_node else "")
        out.append(f"  {node_key[id(node)]} [label={_html_lines(lines)}, {style}];")
    for src, dst, label, color in edges:
        attrs = [f"label={label}"] if label else []
        if color is not None:
            attrs.append(f'color="{color}", penwidth=2')
        out.append(f"  {src} -> {dst}" + (f" [{', '.join(attrs)}];" if attrs else ";"))
    out.append("}")
    return "\n".join(out) + "\n"


# ---------------------------------------------------------------------------------------------
# Rendering
# ---------------------------------------------------------------------------------------------


def _dot_program() -> str:
    dot = shutil.which("dot")
    if dot is None:
        raise RuntimeError(_MISSING_DOT)
    return dot


def _run_dot(source: str, fmt: str, dpi: int | None = None) -> bytes:
    cmd = [_dot_program(), f"-T{fmt}"]
    if dpi is not None:
        cmd.append(f"-Gdpi={dpi}")
    try:
        proc = subprocess.run(
            cmd, input=source.encode("utf-8"), capture_output=True, timeout=120, check=False
        )
    except subprocess.TimeoutExpired:
        raise RuntimeError(
            "Graphviz `dot` took longer than 120 s; the graph is too large"
        ) from None
    if proc.returncode != 0:
        err = proc.stderr.decode("utf-8", "replace").strip().splitlines()
        raise RuntimeError(f"Graphviz `dot` failed: {err[0] if err else 'no message'}")
    return proc.stdout


def _write(path: Path, data: bytes) -> None:
    # Atomic; a missing folder is an error naming it (never created behind the caller's back).
    write_bytes(path, data)


@dataclass(frozen=True)
class GraphDrawing:
    """A drawn dataflow graph: the DOT text, and ways to render it.

    Attributes:
        source: the Graphviz DOT text.
    """

    source: str

    def render(self, path: str | os.PathLike, dpi: int = 144) -> Path:
        """Render with Graphviz ``dot`` to ``path``; the format follows the suffix.

        Args:
            path: ``.svg``, ``.png`` or ``.pdf`` for a picture; ``.dot``/``.gv`` for the text.
            dpi: resolution of a PNG.

        Returns:
            The path written.

        Raises:
            ValueError: an unsupported suffix.
            RuntimeError: Graphviz's ``dot`` is not installed (the message says how to
                install it) or failed.
        """
        p = Path(path)
        suffix = p.suffix.lower()
        if suffix in (".dot", ".gv"):
            data = self.source.encode("utf-8")
        elif suffix in _FORMATS:
            data = _run_dot(self.source, _FORMATS[suffix], dpi if suffix == ".png" else None)
        else:
            raise ValueError(
                f"cannot render a graph to {p.name!r}: use a .svg, .png, .pdf or .dot suffix"
            )
        _write(p, data)
        return p

    def save(self, path: str | os.PathLike) -> Path:
        """Write the DOT text (no Graphviz needed)."""
        p = Path(path)
        _write(p, self.source.encode("utf-8"))
        return p

    def svg(self) -> str:
        """The graph rendered as SVG text (needs Graphviz's ``dot``)."""
        return _run_dot(self.source, "svg").decode("utf-8")

    def _repr_svg_(self) -> str | None:
        # Notebooks show the picture; without Graphviz they fall back to the text repr.
        try:
            return self.svg()
        except RuntimeError:
            return None

    def __str__(self) -> str:
        return self.source


def draw_graph(
    output: Any,
    params: Any = None,
    show_values: bool = True,
    show_grads: bool = True,
    **options: Any,
) -> GraphDrawing:
    """Draw the dataflow graph that produced ``output``.

    Call it after ``output.backward(retain_graph=True)`` to see gradients, or before any
    backward to see values only.

    Args:
        output: the Tensor whose graph to draw (e.g. a loss).
        params: names for leaves, matched by identity: a Module (its
            ``named_parameters()``, e.g. ``0.weight``) or a dict name -> Tensor.
        show_values: label edges with the values flowing forward.
        show_grads: label edges with the gradients flowing back, and scalar edges with the
            local derivative (the chain-rule factor at that hop).
        **options: passed to :func:`graph_source` (``title``, ``node_notes``, ``rankdir``,
            ``highlight``: a node to colour red, with what it fed in orange).

    Returns:
        A :class:`GraphDrawing`: ``.source`` is the DOT text, ``.render(path)`` writes an SVG
        or PNG.

    Raises:
        GraphFreedError: the graph was freed by ``backward()`` without ``retain_graph=True``.

    Example:
        >>> import flowgrad as fg
        >>> x = fg.tensor(3.0, requires_grad=True)
        >>> y = x * x
        >>> print(fg.viz.draw_graph(y, {"x": x}).source.count("->"))
        2
    """
    return GraphDrawing(graph_source(output, params, show_values, show_grads, **options))
