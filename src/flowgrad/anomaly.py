"""Anomaly detection: the operation that *created* a NaN or an infinity, and where.

Inside ``fg.detect_anomaly()`` every op's output is checked as it is computed, and every
gradient a derivative rule returns is checked as the backward pass runs. An op whose forward
turns inputs without NaN into a NaN (or finite inputs, arguments included, into ±Inf), or a
rule that returns NaN/Inf from a finite upstream gradient and finite saved values, *created*
the bad value and raises :class:`AnomalyError`; ops that merely pass on a NaN they received
are not blamed. Each node also remembers the line of the user's code that created it (the
first stack frame outside flowgrad), so a backward error names the forward line.

How it hooks in: the modes live in one context variable (``graph._OBSERVER``, per thread and
asyncio task, as grad mode). :func:`flowgrad.ops.registry.apply` and the engine's sweep read
it once (per op, per sweep); when it is None, which is always outside the modes, nothing else
happens. When it is set, the :class:`_Observer` runs the op (and each derivative rule) and
checks, times or records it. The profiler (:mod:`flowgrad.profiler`) uses the same hook.

Example:
    >>> import flowgrad as fg
    >>> x = fg.tensor([1.0, 0.0], requires_grad=True)
    >>> with fg.detect_anomaly():
    ...     y = fg.log(x)  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    flowgrad.anomaly.AnomalyError: log created -Inf in its forward pass from finite inputs ...
"""

from __future__ import annotations

import functools
import linecache
import math
import sys
import time
from collections.abc import Iterable
from typing import Any, NamedTuple

from flowgrad import _backend
from flowgrad.graph import _OBSERVER, Node
from flowgrad.ops import registry
from flowgrad.ops.registry import OpDef, apply
from flowgrad.tensor import Tensor

__all__ = ["AnomalyError", "Origin", "detect_anomaly", "is_anomaly_check_nan_enabled",
           "is_anomaly_enabled", "set_detect_anomaly"]

# Frames in these modules are the library's machinery: the user's code is the first frame
# outside flowgrad, and "via" names the innermost flowgrad frame that is not machinery (a
# layer of nn, a loss), when there is one.
_MACHINERY = ("flowgrad", "flowgrad.anomaly", "flowgrad.creation", "flowgrad.engine",
              "flowgrad.gradcheck", "flowgrad.graph", "flowgrad.methods", "flowgrad.profiler",
              "flowgrad.tensor", "flowgrad.transforms", "flowgrad._backend")
_SHOWN = 5  # offending elements listed in a report
_clock = time.perf_counter


# ---------------------------------------------------------------- where a node was created


class Origin(NamedTuple):
    """Where the user's code applied an op: ``file:line in function``.

    Attributes:
        file: the source file.
        line: the line number.
        function: the function's name (``<module>`` at the top level).
        via: the innermost flowgrad function on the way (e.g. ``flowgrad.nn.functional``'s
            ``cross_entropy``) when the op was applied through one, else None.
    """

    file: str
    line: int
    function: str
    via: str | None = None
    code: Any = None  # the frame's code object and instruction, for the columns
    lasti: int = -1

    @property
    def source(self) -> str:
        """The text of that line, stripped ('' when the file cannot be read)."""
        return linecache.getline(self.file, self.line).strip()

    def marked_source(self, indent: str = "") -> list[str]:
        """The source line and, where Python knows the columns (3.11+), a line of carets
        under the call that applied the op, as tracebacks show it."""
        text = linecache.getline(self.file, self.line)
        if not text.strip():
            return []
        lines = [indent + text.strip()]
        positions = getattr(self.code, "co_positions", None)
        if positions is not None and self.lasti >= 0:
            for k, (start, end, col, end_col) in enumerate(positions()):
                if k == self.lasti // 2:
                    if start == end == self.line and col is not None and end_col is not None:
                        lead = len(text) - len(text.lstrip())
                        if end_col - col < len(text.strip()):  # not the whole line
                            lines.append(indent + " " * (col - lead) + "^" * (end_col - col))
                    break
        return lines

    def __str__(self) -> str:
        return f"{self.file}:{self.line} in {self.function}"


def _in_flowgrad(module: str) -> bool:
    return module == "flowgrad" or module.startswith("flowgrad.")


def _machinery(module: str) -> bool:
    return module in _MACHINERY or module.startswith("flowgrad.ops")


def capture_origin(skip: int = 1) -> Origin | None:
    """The first stack frame outside flowgrad, above the caller (``skip`` frames up).

    When every frame is flowgrad's own (the ``flowgrad`` command line), the innermost frame
    outside the core machinery stands in for the user's code.
    """
    frame: Any = sys._getframe(skip + 1)
    via = None
    fallback = None
    while frame is not None:
        module = frame.f_globals.get("__name__", "")
        code = frame.f_code
        if not _in_flowgrad(module):
            return Origin(code.co_filename, frame.f_lineno, code.co_name, via, code,
                          frame.f_lasti)
        if fallback is None and not _machinery(module):
            fallback = Origin(code.co_filename, frame.f_lineno, code.co_name)
            via = f"{module}.{code.co_name}"
        frame = frame.f_back
    return fallback


# ---------------------------------------------------------------- the error


class AnomalyError(RuntimeError):
    """An op created NaN or Inf (forward), or a derivative rule did (backward).

    Attributes:
        node: the graph node of the op (for a forward op run where no gradient is recorded,
            a node made for the report, not part of any graph).
        op: the op's name.
        direction: ``"forward"`` or ``"backward"``.
        kind: ``"NaN"``, ``"+Inf"``, ``"-Inf"`` or ``"Inf"`` (both signs): what was created.
        input_index: for a backward anomaly, the input whose gradient is bad (else None).
        created_at: the :class:`Origin` of the user's code that applied the op (None when
            the op ran outside anomaly mode).
        hint: one line on the usual cause.
        details: the report's lines about the values (inputs, output, offending elements).
    """

    def __init__(self, node: Node, direction: str, kind: str, headline: str,
                 details: list[str], hint: str, input_index: int | None = None):
        self.node = node
        self.op = node.name
        self.direction = direction
        self.kind = kind
        self.headline = headline
        self.details = details
        self.hint = hint
        self.input_index = input_index
        self.created_at: Origin | None = node.created_at
        super().__init__(self.report())

    def report(self, where: str | None = None) -> str:
        """The report as text; ``where`` replaces the line naming the user's code."""
        lines = [self.headline]
        if where is not None:
            lines.append(f"  {where}")
        elif self.created_at is not None:
            origin = self.created_at
            lines.append(f"  at {origin}" + (f" (via {origin.via})" if origin.via else ""))
            lines.extend(origin.marked_source("      "))
        else:
            lines.append("  (the op ran outside anomaly mode, so where it was applied is not "
                         "known: run the forward pass inside fg.detect_anomaly() too)")
        lines.extend(f"  {d}" for d in self.details)
        if self.hint:
            lines.append(f"  hint: {self.hint}")
        return "\n".join(lines)


# ---------------------------------------------------------------- value summaries


def _host(a: Any) -> Any:
    return _backend.to_host(a)


def _floating(a: Any) -> bool:
    return _backend.is_array(a) and a.dtype.kind in "fc"


def _counts(a: Any) -> tuple[int, int, int]:
    xp = _backend.xp
    nan = int(xp.count_nonzero(xp.isnan(a)))
    inf = xp.isinf(a)
    pos = int(xp.count_nonzero(inf & (a > 0))) if a.dtype.kind == "f" else \
        int(xp.count_nonzero(inf))
    return nan, pos, int(xp.count_nonzero(inf)) - pos


def _num(v: Any) -> str:
    v = float(v)
    if math.isnan(v):
        return "nan"
    if math.isinf(v):
        return "inf" if v > 0 else "-inf"
    return f"{v:.6g}"


def summarize(a: Any) -> str:
    """``shape (3,) float32, min 0, max 2, NaN 0, +Inf 0, -Inf 1`` for an array or number."""
    if a is None:
        return "None"
    if not _backend.is_array(a):
        return f"{_num(a)} (a number)" if isinstance(a, (int, float)) else repr(a)
    if a.ndim == 0 and a.dtype.kind in "fiub":
        return f"{_num(a) if a.dtype.kind != 'b' else bool(a)} (0-d {a.dtype})"
    head = f"shape {tuple(a.shape)} {a.dtype}"
    if a.size == 0 or a.dtype.kind not in "fciub":
        return head
    if a.dtype.kind == "b":
        return f"{head}, {int(_backend.xp.count_nonzero(a))} true"
    if a.dtype.kind == "c":
        nan, pos, neg = _counts(a.real)
        return f"{head}, NaN {nan}, Inf {pos + neg} (real part)"
    xp = _backend.xp
    if a.dtype.kind == "f":
        nan, pos, neg = _counts(a)
        if nan == a.size:
            return f"{head}, all NaN"
        lo, hi = xp.nanmin(a), xp.nanmax(a)
        return (f"{head}, min {_num(lo)}, max {_num(hi)}, NaN {nan}, +Inf {pos}, "
                f"-Inf {neg}")
    return f"{head}, min {a.min()}, max {a.max()}"


def _nan_in(a: Any) -> bool:
    if isinstance(a, float):
        return math.isnan(a)
    return _floating(a) and bool(_backend.xp.isnan(a).any())


def _nonfinite_in(a: Any) -> bool:
    if isinstance(a, float):
        return not math.isfinite(a)
    return _floating(a) and not bool(_backend.xp.isfinite(a).all())


def _values(objs: Iterable[Any]) -> list[Any]:
    """The arrays and Python floats among ``objs`` (Tensors as arrays; one level of tuples,
    lists and dicts opened, for ops' arguments and saved values)."""
    found: list[Any] = []
    for obj in objs:
        if isinstance(obj, Tensor):
            obj = obj.data
        if isinstance(obj, (tuple, list)):
            found.extend(_values(obj) if len(obj) < 64 else ())
        elif isinstance(obj, dict):
            found.extend(_values(obj.values()))
        elif isinstance(obj, float) or _floating(obj):
            found.append(obj)
    return found


def _bad_mask(a: Any, kind: str) -> Any:
    xp = _backend.xp
    return xp.isnan(a) if kind == "NaN" else xp.isinf(a)


def _inf_kind(a: Any) -> str:
    xp = _backend.xp
    pos = bool((xp.isinf(a) & (a > 0)).any())
    neg = bool((xp.isinf(a) & (a < 0)).any())
    return "Inf" if pos and neg else "+Inf" if pos else "-Inf"


def _at(a: Any, shape: tuple, index: tuple) -> Any:
    """``a``'s value at ``index`` of ``shape`` if ``a`` broadcasts to it, else None."""
    if not _backend.is_array(a):
        return a if isinstance(a, (int, float)) else None
    try:
        return _backend.xp.broadcast_to(a, shape)[index]
    except ValueError:
        return None


def _positions(mask: Any) -> tuple[list[tuple], int]:
    xp = _backend.xp
    count = int(xp.count_nonzero(mask))
    if mask.ndim == 0:
        return [()], count
    first = _host(xp.argwhere(mask)[:_SHOWN])
    return [tuple(int(i) for i in row) for row in first], count


def _index_text(index: tuple) -> str:
    return "[" + ", ".join(str(i) for i in index) + "] " if index else ""


# ---------------------------------------------------------------- hints


def _hint(name: str, direction: str, kind: str, upstream_zero: bool,
          inputs_nonfinite: bool) -> str:
    """One line on the usual cause, from the op's name, what it created and, backward,
    whether the upstream gradient is 0 at the bad elements (the where/log pattern)."""
    if direction == "backward":
        if upstream_zero and kind == "NaN":
            return (f"the upstream gradient is 0 where {name}'s derivative is infinite, and "
                    f"0 * inf = NaN: the where(x > 0, log(x), 0) pattern (where() sends a zero "
                    f"gradient to the branch it did not take, but that branch's derivative is "
                    f"still computed). Make the input safe before the op: "
                    f"{_safe_example(name)}")
        if name in ("log", "log1p", "log2", "log10"):
            return (f"{name}'s derivative 1/x is infinite at x = 0: keep the input away from 0 "
                    f"(x.clamp(min=1e-12) or x + eps)")
        if name in ("sqrt", "rsqrt"):
            return (f"{name}'s derivative is infinite at x = 0 (1/(2·sqrt(0))): use "
                    f"sqrt(x + eps), or mask x = 0 before the op")
        if name == "div":
            return ("d(x/y)/dy = -x/y² is infinite at y = 0 (and d/dx = 1/y): guard the "
                    "denominator (y + eps, or where(y != 0, y, 1))")
        if name == "pow":
            return ("d(x**p)/dx = p·x**(p-1) is infinite at x = 0 for p < 1: add an eps to x "
                    "or use an integer power")
        return (f"the derivative rule of {name} divides by a saved value that is 0, or "
                f"overflows; if it is your own rule, check it with fg.gradcheck_nodes")
    if kind == "NaN" and inputs_nonfinite:
        return ("NaN from infinite inputs (inf - inf, 0 * inf, inf / inf): an input holds "
                "±Inf (allowed, or present in the data); find where it came from, or mask it "
                "before this op")
    if name in ("log", "log2", "log10", "log1p"):
        edge = "-1" if name == "log1p" else "0"
        return (f"{name}(x) is -inf at x = {edge} and NaN below it: clamp the input "
                f"(x.clamp(min=1e-12)) or add an eps; inside where(x > {edge}, {name}(x), 0) "
                f"write {_safe_example(name)} instead, or the backward gives NaN")
    if name in ("sqrt", "rsqrt"):
        return (f"{name}(x) is NaN for x < 0" + (" and inf at x = 0" if name == "rsqrt" else "")
                + ": clamp the input (x.clamp(min=0)) or take the square root of x*x + eps")
    if name == "div":
        return ("division by zero: x / 0 is ±inf and 0 / 0 is NaN; guard the denominator "
                "(y + eps, or where(y != 0, y, 1))")
    if name == "pow":
        return ("x**p is NaN for x < 0 with a non-integer p, inf for x = 0 with p < 0, and "
                "overflows for large x: clamp the base, or use an integer power")
    if name in ("exp", "expm1", "sinh", "cosh", "softplus"):
        return (f"{name} overflows: exp(x) is inf above 88.7 in float32 (709.8 in float64); "
                f"subtract the max first, or use log_softmax / logsumexp / softplus instead of "
                f"exp followed by log")
    if kind == "NaN":
        return ("NaN from finite inputs: an undefined value (0/0, log or sqrt of a negative "
                "number, inf - inf after an overflow inside the op)")
    return ("a result beyond the dtype's largest value (3.4e38 in float32): an overflow; "
            "rescale or normalise the inputs, or lower the learning rate")


def _safe_example(name: str) -> str:
    if name in ("log", "log2", "log10"):
        return f"fg.{name}(fg.where(x > 0, x, 1.0))"
    if name in ("sqrt", "rsqrt"):
        return f"fg.{name}(fg.where(x > 0, x, 1.0))"
    if name == "div":
        return "a / fg.where(b != 0, b, 1.0)"
    if name == "pow":
        return "fg.where(x > 0, x, 1.0) ** p"
    return f"{name}(where(ok, x, safe_value))"


# ---------------------------------------------------------------- the checks


class _Anomaly:
    """The anomaly mode's settings (immutable)."""

    __slots__ = ("check_nan", "check_inf", "allow")

    def __init__(self, check_nan: bool, check_inf: bool, allow: frozenset[str]):
        self.check_nan = check_nan
        self.check_inf = check_inf
        self.allow = allow

    def bad(self, a: Any) -> bool:
        xp = _backend.xp
        if self.check_inf:
            return not bool(xp.isfinite(a).all())
        return bool(xp.isnan(a).any())

    def created(self, out: Any, sources: list[Any], allow_inf: bool) -> str | None:
        """What ``out`` holds that none of ``sources`` did: "NaN", "+Inf"/"-Inf"/"Inf", or
        None when it only passes on what it received."""
        if bool(_backend.xp.isnan(out).any()) and not any(_nan_in(s) for s in sources):
            return "NaN"
        if self.check_inf and not allow_inf and bool(_backend.xp.isinf(out).any()) \
                and not any(_nonfinite_in(s) for s in sources):
            return _inf_kind(out)
        return None

    def forward(self, op: OpDef, inputs: tuple, params: dict, result: Tensor,
                where: Origin | None) -> None:
        out = result.data
        if not _floating(out) or not self.bad(out):
            return
        sources = _values(inputs) + _values(params.values())
        kind = self.created(out, sources, op.name in self.allow)
        if kind is None:
            return
        node = result.grad_fn
        if node is None:  # no gradient recorded: a node for the report only
            node = Node(op, inputs, [x.data if isinstance(x, Tensor) else x for x in inputs],
                        params, out)
            if where is not None:
                node.created_at = where
        raise _forward_error(node, kind, inputs, out)

    def backward(self, node: Node, g: Any, grads: tuple, record: bool) -> None:
        for i, (x, gi) in enumerate(zip(node.inputs, grads)):
            if gi is None or not isinstance(x, Tensor) or not x.requires_grad:
                continue
            arr = gi.data if record else gi
            if not _floating(arr) or not self.bad(arr):
                continue
            upstream = g.data if record else g
            saved = _values(node.arrays) + _values([node.saved])
            if node.op.reads_out:
                saved.append(node.value)
            kind = self.created(arr, [upstream] + saved, False)
            if kind is not None:
                raise _backward_error(node, kind, i, upstream, arr)


def _forward_error(node: Node, kind: str, inputs: tuple, out: Any) -> AnomalyError:
    arrays = [x.data if isinstance(x, Tensor) else x for x in inputs]
    mask = _bad_mask(out, "NaN" if kind == "NaN" else "Inf")
    positions, count = _positions(mask)
    details = [f"input {i}: {summarize(a)}" for i, a in enumerate(arrays)]
    shown_params = {k: v for k, v in node.params.items() if not _backend.is_array(v)}
    if shown_params:
        details.append("arguments: " + ", ".join(f"{k}={v!r}" for k, v in shown_params.items()))
    details.append(f"output:  {summarize(out)}")
    elements = []
    for index in positions:
        values = [_at(a, out.shape, index) for a in arrays]
        shown = ", ".join(f"input {i} = {_num(v)}" for i, v in enumerate(values)
                          if v is not None and _is_number(v))
        elements.append(f"{_index_text(index)}{_num(out[index])}"
                        + (f" ({shown})" if shown else ""))
    details.append(("first offending elements: " if out.ndim else "offending value: ")
                   + "; ".join(elements))
    sources = _values(inputs) + _values(node.params.values())
    hint = _hint(node.name, "forward", kind, False, any(_nonfinite_in(s) for s in sources))
    source = _made_by(inputs, ("sigmoid", "softmax"))
    if node.name in ("log", "log2", "log10") and source is not None:
        # log(sigmoid(z)) or log(1 - softmax(z)): the probability rounded to exactly 0.
        hint = (f"the input comes from {source}, which rounds to exactly 0 or 1 for large "
                f"logits: compute the log from the logits instead "
                f"(fg.binary_cross_entropy_with_logits, fg.log_softmax, fg.logsumexp), or "
                f"clamp the probability (p.clamp(min=1e-7))")
    origin = "from inputs without NaN" if kind == "NaN" and any(
        _nonfinite_in(s) for s in sources) else "from finite inputs"
    headline = (f"{node.name} created {kind} in its forward pass {origin} "
                f"({count} of {out.size} element{'s' if out.size != 1 else ''})")
    return AnomalyError(node, "forward", kind, headline, details, hint)


def _made_by(inputs: tuple, names: tuple[str, ...], depth: int = 4) -> str | None:
    """The first op among ``names`` that the inputs were computed from, at most ``depth``
    ops back (``1 - sigmoid(z).reshape(-1)`` is sigmoid, three back)."""
    frontier = [x.grad_fn for x in inputs if isinstance(x, Tensor) and x.grad_fn is not None]
    for _ in range(depth):
        found = next((n.name for n in frontier if n.name in names), None)
        if found is not None:
            return found
        frontier = [x.grad_fn for n in frontier if n.inputs is not None for x in n.inputs
                    if isinstance(x, Tensor) and x.grad_fn is not None]
    return None


def _is_number(v: Any) -> bool:
    try:
        float(v)
    except (TypeError, ValueError):
        return False
    return True


def _backward_error(node: Node, kind: str, i: int, upstream: Any, grad: Any) -> AnomalyError:
    mask = _bad_mask(grad, "NaN" if kind == "NaN" else "Inf")
    positions, count = _positions(mask)
    details = [f"upstream gradient: {summarize(upstream)}"]
    details += [f"input {k}: {summarize(a)}" for k, a in enumerate(node.arrays)]
    if node.op.reads_out:
        details.append(f"output:  {summarize(node.value)}")
    details.append(f"gradient for input {i}: {summarize(grad)}")
    elements = []
    upstream_zero = True
    for index in positions:
        x = _at(node.arrays[i], grad.shape, index)
        up = _at(upstream, grad.shape, index) if _backend.is_array(upstream) and \
            upstream.ndim <= grad.ndim else None
        if up is None or float(up) != 0.0:
            upstream_zero = False
        parts = [f"upstream {_num(up)}" if up is not None else None,
                 f"input {i} = {_num(x)}" if x is not None and _is_number(x) else None]
        shown = ", ".join(p for p in parts if p)
        elements.append(f"{_index_text(index)}{_num(grad[index])}"
                        + (f" ({shown})" if shown else ""))
    details.append(("first offending elements: " if grad.ndim else "offending value: ")
                   + "; ".join(elements))
    hint = _hint(node.name, "backward", kind, upstream_zero, False)
    headline = (f"the derivative rule of {node.name} (node #{node.seq}) returned {kind} in the "
                f"gradient for input {i}, from a finite upstream gradient and finite saved "
                f"values ({count} of {grad.size} element{'s' if grad.size != 1 else ''})")
    return AnomalyError(node, "backward", kind, headline, details, hint, input_index=i)


# ---------------------------------------------------------------- the observer


class _Observer:
    """What the debugging modes watch in this context (immutable; a mode change makes a new
    one). ``origin`` is set while a node's derivative rule runs: the ops the rule applies are
    part of that node's backward, so they are neither checked nor counted as forward ops,
    and nodes they record inherit the node's ``created_at``."""

    __slots__ = ("anomaly", "profilers", "origin")

    def __init__(self, anomaly: _Anomaly | None, profilers: tuple = (),
                 origin: Node | None = None):
        self.anomaly = anomaly
        self.profilers = profilers
        self.origin = origin

    def apply(self, op: OpDef, inputs: tuple, params: dict) -> Tensor:
        token = _OBSERVER.set(None)  # the op itself runs unobserved
        try:
            origin = self.origin
            if origin is not None:
                result = apply(op, inputs, params)
                fn = result.grad_fn
                if fn is not None and origin.created_at is not None:
                    fn.created_at = origin.created_at
                return result
            anomaly = self.anomaly
            where = capture_origin(2) if anomaly is not None else None
            if self.profilers:
                start = _clock()
                result = apply(op, inputs, params)
                seconds = _clock() - start
                view = op.view
                produced = 0 if view and (view is True or view(params)) else result.data.nbytes
                for p in self.profilers:
                    p._forward(op.name, seconds, produced)
            else:
                result = apply(op, inputs, params)
            if anomaly is not None:
                fn = result.grad_fn
                if fn is not None and where is not None:
                    fn.created_at = where
                if anomaly.check_nan:
                    anomaly.forward(op, inputs, params, result, where)
            return result
        finally:
            _OBSERVER.reset(token)

    def backward(self, node: Node, g: Any, record: bool) -> tuple:
        token = _OBSERVER.set(_Observer(self.anomaly, self.profilers, node))
        start = _clock() if self.profilers else 0.0
        try:
            grads = node.op.vjp(node, g) if record else node.op.vjp_arrays(node, g)
        except Exception as exc:
            add_note = getattr(exc, "add_note", None)  # Python 3.11+
            if self.anomaly is not None and node.created_at is not None \
                    and add_note is not None and not isinstance(exc, AnomalyError):
                add_note(f"(anomaly mode) in the derivative rule of {node.name} "
                         f"(node #{node.seq}), created at {node.created_at}")
            raise
        finally:
            _OBSERVER.reset(token)
        if self.profilers:
            seconds = _clock() - start
            for p in self.profilers:
                p._backward(node.name, seconds)
        if self.anomaly is not None and self.anomaly.check_nan:
            self.anomaly.backward(node, g, grads, record)
        return grads


def _current() -> _Observer | None:
    return _OBSERVER.get()


def push(anomaly: _Anomaly | None | bool = False, profiler: Any = None) -> Any:
    """Set the modes for this context; returns a token for :func:`pop`.

    ``anomaly``: new settings, None to turn anomaly mode off, False to keep it as it is.
    ``profiler``: a profiler to add (its ``_forward``/``_backward`` get called).
    """
    current = _current()
    kept = current.anomaly if current is not None else None
    settings = kept if anomaly is False else anomaly
    profilers = current.profilers if current is not None else ()
    if profiler is not None:
        profilers = profilers + (profiler,)
    new = _Observer(settings, profilers) if (settings is not None or profilers) else None  # type: ignore[arg-type]
    if new is not None:
        registry._watched = True  # apply reads the context variable from now on
    return _OBSERVER.set(new)


def pop(token: Any) -> None:
    """Restore the modes from before the matching :func:`push`."""
    _OBSERVER.reset(token)


# ---------------------------------------------------------------- public switches


def _settings(check_nan: bool, check_inf: bool, allow: Iterable[str | OpDef]) -> _Anomaly:
    if isinstance(allow, (str, OpDef)):
        allow = (allow,)
    names = frozenset(a.name if isinstance(a, OpDef) else str(a) for a in allow)
    return _Anomaly(bool(check_nan), bool(check_inf), names)


class detect_anomaly:
    """Context manager and decorator: check every op and derivative rule for NaN/Inf.

    Inside, an op whose forward creates NaN (from inputs without NaN) or ±Inf (from finite
    inputs and arguments), or a derivative rule that returns NaN/Inf from a finite upstream
    gradient and finite saved values, raises :class:`AnomalyError` naming the op, the
    direction, the line of your code that applied it, each input's shape, dtype, range and
    NaN/Inf counts, the first offending elements and a hint. Ops that only pass on a NaN they
    received are not blamed. Every node made inside also records where it was created
    (``node.created_at``), which errors raised in the backward pass mention.

    Outside the mode nothing is checked or captured. Inside, ops run a few times slower
    (docs/debugging.md has the measurement).

    Args:
        check_nan: check values (PyTorch's name). False keeps only the recording of where
            nodes were created.
        check_inf: treat ±Inf as an anomaly too (default). False checks for NaN only, for
            models whose infinities are intended (masks filled with -inf before a softmax).
        allow: names of ops (or the ops) whose forward may produce ±Inf, e.g. ``("log",)``
            for a log of exact zeros that is masked later; NaN is still reported for them.

    Example:
        >>> import flowgrad as fg
        >>> with fg.detect_anomaly():
        ...     y = fg.exp(fg.tensor([1.0, 2.0]))
        >>> @fg.detect_anomaly(check_inf=False)
        ... def step(x):
        ...     return fg.log(x)  # log(0) = -inf is fine here
        >>> step(fg.tensor([0.0])).item()
        -inf
    """

    def __init__(self, check_nan: bool = True, *, check_inf: bool = True,
                 allow: Iterable[str | OpDef] = ()) -> None:
        self._settings = _settings(check_nan, check_inf, allow)
        self._tokens: list[Any] = []

    def __enter__(self) -> detect_anomaly:
        self._tokens.append(push(self._settings))
        return self

    def __exit__(self, *exc: object) -> None:
        pop(self._tokens.pop())

    def __call__(self, fn):
        settings = self._settings

        @functools.wraps(fn)
        def wrapper(*args, **kwargs):
            token = push(settings)
            try:
                return fn(*args, **kwargs)
            finally:
                pop(token)

        return wrapper


class set_detect_anomaly:
    """Turn anomaly detection on or off: at once when called, or for a ``with`` block.

    As PyTorch's: ``fg.set_detect_anomaly(True)`` switches it on for this thread until
    ``fg.set_detect_anomaly(False)``; ``with fg.set_detect_anomaly(False): ...`` turns it off
    inside a block and restores it after. Arguments as :class:`detect_anomaly`.

    Example:
        >>> import flowgrad as fg
        >>> with fg.set_detect_anomaly(True):
        ...     fg.is_anomaly_enabled()
        True
        >>> fg.is_anomaly_enabled()
        False
    """

    def __init__(self, mode: bool, check_nan: bool = True, *, check_inf: bool = True,
                 allow: Iterable[str | OpDef] = ()) -> None:
        self._previous = _OBSERVER.get()
        settings = _settings(check_nan, check_inf, allow) if mode else None
        push(settings)

    def __enter__(self) -> set_detect_anomaly:
        return self

    def __exit__(self, *exc: object) -> None:
        _OBSERVER.set(self._previous)


def is_anomaly_enabled() -> bool:
    """Whether anomaly detection is on (in this thread)."""
    current = _current()
    return current is not None and current.anomaly is not None


def is_anomaly_check_nan_enabled() -> bool:
    """Whether anomaly detection is on and checks values (``check_nan``)."""
    current = _current()
    return current is not None and current.anomaly is not None and current.anomaly.check_nan
