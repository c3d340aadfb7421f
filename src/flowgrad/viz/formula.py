"""A small, safe formula language evaluated with flowgrad ops.

The teaching commands (``flowgrad explain``, ``flowgrad descent``, ``flowgrad derivatives``)
accept formulas typed by a user, such as ``sigmoid(w*x + b)``. A formula is parsed by
Python's :mod:`ast` in ``"eval"`` mode and then checked against a whitelist of node types;
it is never handed to ``eval``/``exec``/``compile``. The checked tree is converted into the
small expression tree defined here, and evaluating it calls flowgrad operations, so the
result carries a dataflow graph that backpropagation (and the pictures) can use.

The language:

* numbers (``2``, ``0.5``, ``1e-3``) and variable names (ASCII letters, digits and ``_``,
  starting with a letter);
* ``+ - * / **``, unary minus (and unary plus), parentheses;
* the functions ``exp log sqrt abs sin cos tanh sigmoid relu step``, each with exactly one
  positional argument.

Anything else (attribute access, subscripts, strings, lambdas, comparisons, keyword
arguments, unknown functions, ...) raises :class:`FormulaError` with one line naming the
problem. So do formulas longer than :data:`MAX_LENGTH` characters or nested deeper than
:data:`MAX_DEPTH` levels.

Example:
    >>> import flowgrad as fg
    >>> f = compile_formula("sigmoid(w*x + b)")
    >>> f.variables
    ('b', 'w', 'x')
    >>> out = f(w=0.5, x=2.0, b=-1.0)
    >>> round(out.item(), 4)
    0.5
"""

from __future__ import annotations

import ast
import math
import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np

__all__ = [
    "FUNCTIONS",
    "MAX_DEPTH",
    "MAX_LENGTH",
    "BinaryOp",
    "Call",
    "Expr",
    "Formula",
    "FormulaError",
    "Number",
    "UnaryOp",
    "Variable",
    "compile_formula",
    "parse",
]

#: Longest formula accepted, in characters.
MAX_LENGTH = 500
#: Deepest nesting accepted (each call, unary operator, power or operand is one level; a
#: flat chain such as ``a + b - c + d`` counts once, however long).
MAX_DEPTH = 50

#: The functions a formula may call, each taking one argument.
FUNCTIONS: tuple[str, ...] = (
    "exp",
    "log",
    "sqrt",
    "abs",
    "sin",
    "cos",
    "tanh",
    "sigmoid",
    "relu",
    "step",
)

_NAME_RE = re.compile(r"[A-Za-z][A-Za-z0-9_]*\Z")

_BINARY_SYMBOLS: dict[type, str] = {
    ast.Add: "+",
    ast.Sub: "-",
    ast.Mult: "*",
    ast.Div: "/",
    ast.Pow: "**",
}

# Binding strength used when writing sub-expressions back as text; mirrors Python's.
_PRECEDENCE = {"+": 1, "-": 1, "*": 2, "/": 2, "neg": 3, "pos": 3, "**": 4}
_ATOM = 5

# Friendly names for the Python constructs people (or attackers) try most often.
_REFUSED: dict[type, str] = {
    ast.Attribute: "attribute access",
    ast.Subscript: "subscripts",
    ast.Slice: "slices",
    ast.Lambda: "lambdas",
    ast.Compare: "comparisons",
    ast.BoolOp: "boolean operators (and/or)",
    ast.IfExp: "conditional expressions",
    ast.List: "lists",
    ast.Tuple: "tuples",
    ast.Dict: "dicts",
    ast.Set: "sets",
    ast.ListComp: "comprehensions",
    ast.SetComp: "comprehensions",
    ast.DictComp: "comprehensions",
    ast.GeneratorExp: "generator expressions",
    ast.Starred: "starred arguments",
    ast.JoinedStr: "strings",
    ast.FormattedValue: "strings",
    ast.NamedExpr: "assignment expressions (:=)",
    ast.Await: "await",
    ast.Yield: "yield",
    ast.YieldFrom: "yield",
}


class FormulaError(ValueError):
    """A formula that cannot be accepted; the message is one line naming the cause."""


# ---------------------------------------------------------------------------------------------
# The expression tree
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True, eq=False)
class Expr:
    """Base class of the formula's expression tree (compared by identity)."""

    @property
    def children(self) -> tuple[Expr, ...]:
        return ()

    @property
    def precedence(self) -> int:
        return _ATOM

    def to_text(self) -> str:
        """The expression written back as text with the fewest parentheses needed."""
        raise NotImplementedError

    def __str__(self) -> str:
        return self.to_text()


@dataclass(frozen=True, eq=False)
class Number(Expr):
    """A numeric literal."""

    value: float
    text: str

    def to_text(self) -> str:
        return self.text


@dataclass(frozen=True, eq=False)
class Variable(Expr):
    """A variable name, bound to a value when the formula is evaluated."""

    name: str

    def to_text(self) -> str:
        return self.name


@dataclass(frozen=True, eq=False)
class UnaryOp(Expr):
    """Unary minus (``op == "neg"``) or plus (``op == "pos"``)."""

    op: str
    operand: Expr

    @property
    def children(self) -> tuple[Expr, ...]:
        return (self.operand,)

    @property
    def precedence(self) -> int:
        return _PRECEDENCE[self.op]

    def to_text(self) -> str:
        inner = self.operand.to_text()
        # -x**2 is -(x**2), so a power operand needs no parentheses; a sum does.
        if self.operand.precedence < self.precedence:
            inner = f"({inner})"
        return ("-" if self.op == "neg" else "+") + inner


@dataclass(frozen=True, eq=False)
class BinaryOp(Expr):
    """A binary operator: one of ``+ - * / **``."""

    op: str
    left: Expr
    right: Expr

    @property
    def children(self) -> tuple[Expr, ...]:
        return (self.left, self.right)

    @property
    def precedence(self) -> int:
        return _PRECEDENCE[self.op]

    def to_text(self) -> str:
        p = self.precedence
        left, right = self.left.to_text(), self.right.to_text()
        if self.op == "**":
            # Right-associative, and it binds tighter than unary minus on its left: (-x)**2.
            if self.left.precedence <= p:
                left = f"({left})"
            if self.right.precedence < _PRECEDENCE["neg"]:
                right = f"({right})"
            return f"{left}**{right}"
        if self.left.precedence < p:
            left = f"({left})"
        # Left-associative: a - (b - c) and a + (b + c) keep their parentheses, so the text
        # parses back to the same tree (the same graph, the same rounding).
        if self.right.precedence <= p:
            right = f"({right})"
        if self.op in "+-":
            return f"{left} {self.op} {right}"
        return f"{left}{self.op}{right}"


@dataclass(frozen=True, eq=False)
class Call(Expr):
    """A call of one of :data:`FUNCTIONS` on one argument."""

    func: str
    arg: Expr

    @property
    def children(self) -> tuple[Expr, ...]:
        return (self.arg,)

    def to_text(self) -> str:
        return f"{self.func}({self.arg.to_text()})"


# ---------------------------------------------------------------------------------------------
# Parsing
# ---------------------------------------------------------------------------------------------


def _where(node: ast.AST) -> str:
    col = getattr(node, "col_offset", None)
    return "" if col is None else f" (at column {col + 1})"


def _check_tree(tree: ast.Expression) -> None:
    """Whitelist every node and bound the depth, with an explicit stack (no recursion)."""
    stack: list[tuple[ast.AST, int]] = [(tree.body, 1)]
    while stack:
        node, depth = stack.pop()
        if depth > MAX_DEPTH:
            raise FormulaError(
                f"formula is nested too deeply (more than {MAX_DEPTH} levels of operators "
                "and calls)"
            )
        if isinstance(node, ast.Constant):
            value = node.value
            if isinstance(value, bool) or not isinstance(value, (int, float)):
                if isinstance(value, (str, bytes)):
                    kind = "strings"
                elif isinstance(value, bool):
                    kind = "True/False"
                elif isinstance(value, complex):
                    kind = "complex numbers"
                else:
                    kind = repr(value)
                raise FormulaError(f"not allowed in a formula: {kind}{_where(node)}")
            continue
        if isinstance(node, ast.Name):
            if node.id in FUNCTIONS:
                raise FormulaError(
                    f"'{node.id}' is a function; call it with one argument, "
                    f"e.g. {node.id}(x){_where(node)}"
                )
            if not _NAME_RE.match(node.id):
                raise FormulaError(
                    f"invalid variable name '{node.id}'{_where(node)}: use ASCII letters, "
                    "digits and '_', starting with a letter"
                )
            continue
        if isinstance(node, ast.UnaryOp):
            if not isinstance(node.op, (ast.USub, ast.UAdd)):
                raise FormulaError(f"unary operator not allowed{_where(node)}; only - and +")
            stack.append((node.operand, depth + 1))
            continue
        if isinstance(node, ast.BinOp):
            if type(node.op) not in _BINARY_SYMBOLS:
                raise FormulaError(f"operator not allowed{_where(node)}; use + - * / ** only")
            # A flat chain (x + x + ... + x, left-associative) is one level however long:
            # only its right operands nest. MAX_LENGTH bounds the chain itself.
            flat = not isinstance(node.op, ast.Pow)
            stack.append((node.left, depth if flat else depth + 1))
            stack.append((node.right, depth + 1))
            continue
        if isinstance(node, ast.Call):
            func = node.func
            if isinstance(func, ast.Attribute):
                raise FormulaError(f"not allowed in a formula: attribute access{_where(func)}")
            if not isinstance(func, ast.Name):
                raise FormulaError(
                    f"only calls of the functions {', '.join(FUNCTIONS)} by name are "
                    f"allowed{_where(node)}"
                )
            if func.id not in FUNCTIONS:
                raise FormulaError(
                    f"unknown function '{func.id}'{_where(node)}; known: {', '.join(FUNCTIONS)}"
                )
            if node.keywords:
                raise FormulaError(f"not allowed in a formula: keyword arguments{_where(node)}")
            if len(node.args) != 1:
                raise FormulaError(
                    f"{func.id}() takes exactly one argument, got {len(node.args)}{_where(node)}"
                )
            stack.append((node.args[0], depth + 1))
            continue
        what = _REFUSED.get(type(node), f"'{type(node).__name__}' expressions")
        raise FormulaError(f"not allowed in a formula: {what}{_where(node)}")


def _convert(node: ast.AST) -> Expr:
    """Checked Python AST -> :class:`Expr` (post-order with an explicit stack)."""
    done: dict[int, Expr] = {}
    stack: list[tuple[ast.AST, bool]] = [(node, False)]
    while stack:
        cur, expanded = stack.pop()
        if isinstance(cur, ast.Constant):
            try:
                value = float(cur.value)
            except OverflowError:
                value = math.inf
            if not math.isfinite(value):
                raise FormulaError(f"number out of range{_where(cur)}")
            text = repr(cur.value) if isinstance(cur.value, int) else repr(value)
            done[id(cur)] = Number(value, text)
            continue
        if isinstance(cur, ast.Name):
            done[id(cur)] = Variable(cur.id)
            continue
        kids: list[ast.AST]
        if isinstance(cur, ast.UnaryOp):
            kids = [cur.operand]
        elif isinstance(cur, ast.BinOp):
            kids = [cur.left, cur.right]
        else:
            assert isinstance(cur, ast.Call)
            kids = [cur.args[0]]
        if not expanded:
            stack.append((cur, True))
            stack.extend((k, False) for k in kids)
            continue
        parts = [done.pop(id(k)) for k in kids]
        if isinstance(cur, ast.UnaryOp):
            done[id(cur)] = UnaryOp("neg" if isinstance(cur.op, ast.USub) else "pos", parts[0])
        elif isinstance(cur, ast.BinOp):
            done[id(cur)] = BinaryOp(_BINARY_SYMBOLS[type(cur.op)], parts[0], parts[1])
        else:
            done[id(cur)] = Call(cur.func.id, parts[0])  # type: ignore[union-attr]
    return done[id(node)]


def _paren_depth(text: str) -> int:
    """Deepest parenthesis nesting, from the characters alone (cheap, before parsing)."""
    depth = deepest = 0
    for ch in text:
        if ch in "([{":
            depth += 1
            deepest = max(deepest, depth)
        elif ch in ")]}":
            depth -= 1
    return deepest


def parse(text: str) -> Expr:
    """Parse a formula into an expression tree, refusing anything outside the language.

    Args:
        text: the formula, e.g. ``"sigmoid(w*x + b)"``.

    Returns:
        The root :class:`Expr` of the expression tree.

    Raises:
        FormulaError: one line naming the problem (syntax, a construct outside the
            language, an unknown function, the wrong number of arguments, a formula
            over :data:`MAX_LENGTH` characters or nested over :data:`MAX_DEPTH` levels).
    """
    if not isinstance(text, str):
        raise FormulaError(f"a formula must be a string, got {type(text).__name__}")
    if len(text) > MAX_LENGTH:
        raise FormulaError(f"formula is too long ({len(text)} characters, at most {MAX_LENGTH})")
    if not text.strip():
        raise FormulaError("formula is empty")
    if "\n" in text or "\r" in text:
        raise FormulaError("a formula must be on one line")
    if _paren_depth(text) > MAX_DEPTH:
        raise FormulaError(f"formula is nested too deeply (more than {MAX_DEPTH} parentheses)")
    try:
        # Parsing builds a syntax tree only; nothing in the text is ever run.
        tree = ast.parse(text.strip(), mode="eval")
    except SyntaxError as exc:
        msg = exc.msg if isinstance(exc.msg, str) else "invalid syntax"
        col = f" (at column {exc.offset})" if exc.offset else ""
        raise FormulaError(f"invalid formula: {msg}{col}") from None
    except (RecursionError, MemoryError):
        raise FormulaError("formula is nested too deeply to parse") from None
    except ValueError as exc:  # e.g. NUL bytes in the source
        raise FormulaError(f"invalid formula: {exc}") from None
    _check_tree(tree)
    return _convert(tree.body)


# ---------------------------------------------------------------------------------------------
# Evaluation
# ---------------------------------------------------------------------------------------------


def _np_sigmoid(x: float) -> float:
    return float(0.5 * (1.0 + np.tanh(0.5 * x)))


# Constant sub-expressions (no variable inside) fold to Python floats, so they become
# constants on the graph, as the literal `2` in `x**2` is.
_CONST_FUNCS: dict[str, Callable[[float], float]] = {
    "exp": lambda x: float(np.exp(x)),
    "log": lambda x: float(np.log(x)),
    "sqrt": lambda x: float(np.sqrt(x)),
    "abs": abs,
    "sin": math.sin,
    "cos": math.cos,
    "tanh": math.tanh,
    "sigmoid": _np_sigmoid,
    "relu": lambda x: x if x > 0 else 0.0,
    "step": lambda x: 1.0 if x > 0 else 0.0,
}


def _const_binary(op: str, a: float, b: float) -> float:
    with np.errstate(all="ignore"):
        fa, fb = np.float64(a), np.float64(b)
        if op == "+":
            return float(fa + fb)
        if op == "-":
            return float(fa - fb)
        if op == "*":
            return float(fa * fb)
        if op == "/":
            return float(fa / fb)
        return float(np.power(fa, fb))


def _variables_of(root: Expr) -> tuple[str, ...]:
    names: set[str] = set()
    stack = [root]
    while stack:
        e = stack.pop()
        if isinstance(e, Variable):
            names.add(e.name)
        stack.extend(e.children)
    return tuple(sorted(names))


def _postorder(root: Expr) -> list[Expr]:
    order: list[Expr] = []
    stack: list[tuple[Expr, bool]] = [(root, False)]
    while stack:
        e, expanded = stack.pop()
        if expanded or not e.children:
            order.append(e)
            continue
        stack.append((e, True))
        stack.extend((c, False) for c in reversed(e.children))
    return order


def _as_tensor(name: str, value: Any) -> Any:
    import flowgrad as fg

    if isinstance(value, fg.Tensor):
        return value
    if isinstance(value, bool) or isinstance(value, str):
        raise TypeError(f"value for '{name}' must be a number, array or Tensor, got {value!r}")
    arr = np.asarray(value)
    if arr.dtype.kind not in "fiu":
        raise TypeError(
            f"value for '{name}' must be a number, array or Tensor, got dtype {arr.dtype}"
        )
    if arr.dtype.kind != "f":
        # Python numbers and integer arrays become float64: the teaching tools want precision.
        arr = arr.astype(np.float64)
    return fg.tensor(arr)


@dataclass(frozen=True, eq=False)
class Formula:
    """A parsed, checked formula; call it with one value per variable.

    Attributes:
        text: the formula as typed.
        expr: the root of the expression tree.
        variables: the variable names the formula uses, sorted.
        allowed: the names it may use (``None``: any name).
    """

    text: str
    expr: Expr
    variables: tuple[str, ...]
    allowed: tuple[str, ...] | None = field(default=None)

    def __call__(self, **values: Any) -> Any:
        """Evaluate with flowgrad ops and return the result as a Tensor.

        Args:
            **values: one value per name in :attr:`variables`: a Tensor (used as is, so
                gradients flow into it), a NumPy array or a Python number (converted; Python
                numbers and integer arrays become float64 Tensors). Extra names are accepted
                only if they are among :attr:`allowed`.

        Returns:
            A Tensor. Its ``grad_fn`` graph has one node per operator or function call on a
            variable; constant sub-expressions are folded into numbers.

        Raises:
            TypeError: a variable without a value, an unexpected name, or a value that is not
                numeric.
        """
        return self.evaluate(values)

    def evaluate(
        self,
        values: Mapping[str, Any],
        on_result: Callable[[Expr, Any], None] | None = None,
    ) -> Any:
        """Evaluate like ``__call__``, optionally reporting each sub-expression's result.

        Args:
            values: name -> value, as for ``__call__``.
            on_result: called as ``on_result(expr, result)`` for every sub-expression in
                evaluation order (inputs before the expressions that use them); ``result`` is
                a Tensor, or a float for a constant sub-expression.

        Returns:
            The formula's value as a Tensor.
        """
        import flowgrad as fg

        missing = [n for n in self.variables if n not in values]
        if missing:
            raise TypeError(
                f"no value given for variable{'s' if len(missing) > 1 else ''} "
                f"{', '.join(missing)} in formula {self.text!r}"
            )
        allowed = set(self.variables) | set(self.allowed or ())
        extra = sorted(set(values) - allowed)
        if extra:
            raise TypeError(
                f"value given for {', '.join(extra)}, which formula {self.text!r} does not use"
            )
        bound = {n: _as_tensor(n, values[n]) for n in self.variables}

        results: dict[int, Any] = {}
        for e in _postorder(self.expr):
            if isinstance(e, Number):
                r: Any = e.value
            elif isinstance(e, Variable):
                r = bound[e.name]
            elif isinstance(e, UnaryOp):
                a = results[id(e.operand)]
                if e.op == "pos":
                    r = a
                elif isinstance(a, float):
                    r = -a
                else:
                    r = fg.neg(a)
            elif isinstance(e, BinaryOp):
                a, b = results[id(e.left)], results[id(e.right)]
                if isinstance(a, float) and isinstance(b, float):
                    r = _const_binary(e.op, a, b)
                elif e.op == "+":
                    r = a + b
                elif e.op == "-":
                    r = a - b
                elif e.op == "*":
                    r = a * b
                elif e.op == "/":
                    r = a / b
                else:
                    r = a**b
            else:
                assert isinstance(e, Call)
                a = results[id(e.arg)]
                if isinstance(a, float):
                    with np.errstate(all="ignore"):
                        r = float(_CONST_FUNCS[e.func](a))
                else:
                    r = getattr(fg, e.func)(a)
            results[id(e)] = r
            if on_result is not None:
                on_result(e, r)
        out = results[id(self.expr)]
        if isinstance(out, float):
            out = fg.tensor(np.float64(out))
        return out

    def __str__(self) -> str:
        return self.expr.to_text()


def compile_formula(text: str, variables: Iterable[str] | None = None) -> Formula:
    """Parse and check a formula, ready to evaluate with flowgrad ops.

    Args:
        text: the formula, e.g. ``"x**2 + 3*sin(y)"``.
        variables: if given, the only variable names the formula may use (e.g.
            ``("x", "y")`` for a surface); the formula need not use all of them.

    Returns:
        A :class:`Formula`; ``formula.variables`` lists the names it uses, sorted, and
        ``formula(x=..., y=...)`` evaluates it to a Tensor.

    Raises:
        FormulaError: the text is not a valid formula (see :func:`parse`), or it uses a
            variable outside ``variables``.
    """
    expr = parse(text)
    used = _variables_of(expr)
    allowed: tuple[str, ...] | None = None
    if variables is not None:
        allowed = tuple(variables)
        unknown = [n for n in used if n not in allowed]
        if unknown:
            raise FormulaError(
                f"unknown variable{'s' if len(unknown) > 1 else ''} {', '.join(unknown)} "
                f"in formula; allowed: {', '.join(allowed) or '(none)'}"
            )
    return Formula(text=text, expr=expr, variables=used, allowed=allowed)
