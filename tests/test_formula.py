"""The safe formula language: parsing, refusals, and evaluation with flowgrad ops."""

from __future__ import annotations

import ast
import keyword
import math

import numpy as np
import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

import flowgrad as fg
from flowgrad.viz.formula import (
    FUNCTIONS,
    MAX_DEPTH,
    MAX_LENGTH,
    BinaryOp,
    Call,
    Expr,
    FormulaError,
    Number,
    UnaryOp,
    Variable,
    compile_formula,
    parse,
)

# Formulas that must be refused. Several would have side effects if they were ever run by
# Python (each writes the file "pwned.txt"); the tests assert the file never appears.
HOSTILE = [
    '__import__("os").system("touch pwned.txt")',
    'open("pwned.txt", "w").write("x")',
    "exec(\"open('pwned.txt', 'w')\")",
    "eval(\"open('pwned.txt', 'w')\")",
    "().__class__.__bases__[0].__subclasses__()",
    "x.__class__",
    "sin(x).real",
    "x[0]",
    "lambda: open('pwned.txt', 'w')",
    "'pwned'",
    "b'pwned'",
    "f\"{open('pwned.txt', 'w')}\"",
    "exp(x=1)",
    "x < 1",
    "x if x else 1",
    "[open('pwned.txt', 'w') for _ in (1,)]",
    "(y := 3)",
    "foo(x)",
    "exp(x, x)",
    "exp()",
    "exp(*x)",
    "exp(**x)",
    "exp",
    "exp(x)(x)",
    "x @ x",
    "x // 2",
    "x % 2",
    "~x",
    "not x",
    "x and 1",
    "True * x",
    "1j * x",
    "1e999 * x",
    "_x",
    "x; open('pwned.txt', 'w')",
    "x\nopen('pwned.txt', 'w')",
    "x = 1",
    "x" * (MAX_LENGTH + 1),
    "(" * (MAX_DEPTH + 1) + "x" + ")" * (MAX_DEPTH + 1),
    "-" * (MAX_DEPTH + 1) + "x",
    "**".join(["x"] * (MAX_DEPTH + 2)),  # a power tower nests (right-associative)
    "x\x00",
    "",
    "   ",
    "{x}",
    "(x, x)",
    "α*2",
]


@pytest.mark.parametrize("text", HOSTILE)
def test_hostile_formulas_are_refused_with_one_line(text, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    with pytest.raises(FormulaError) as info:
        compile_formula(text)
    message = str(info.value)
    assert message and "\n" not in message
    assert not (tmp_path / "pwned.txt").exists()


def test_enough_hostile_cases():
    assert len(HOSTILE) >= 15


@pytest.mark.parametrize(
    "text, message",
    [
        ("x.real", "attribute access"),
        ("foo(x)", "unknown function 'foo'"),
        ("exp(x, y)", "exactly one argument, got 2"),
        ("exp(x=1)", "keyword arguments"),
        ("x[0]", "subscripts"),
        ("lambda: 1", "lambdas"),
        ("'a'", "strings"),
        ("x < y", "comparisons"),
        ("x" * (MAX_LENGTH + 1), "too long"),
        ("-" * (MAX_DEPTH + 1) + "x", "nested too deeply"),
        ("(" * (MAX_DEPTH + 1) + "x" + ")" * (MAX_DEPTH + 1), "nested too deeply"),
        ("exp", "is a function"),
        ("x +", "invalid formula"),
    ],
)
def test_refusal_messages_name_the_cause(text, message):
    with pytest.raises(FormulaError, match=message):
        parse(text)


def test_limits_are_inclusive():
    assert parse("-" * (MAX_DEPTH - 1) + "x").to_text().endswith("x")
    assert parse("(" * MAX_DEPTH + "x" + ")" * MAX_DEPTH).to_text() == "x"
    long = "x+" * ((MAX_LENGTH - 1) // 2) + "x"
    assert len(long) <= MAX_LENGTH
    # A flat 250-term sum is one level for the user (only powers, calls and unary signs
    # nest), however deep Python's tree is.
    assert parse(long).to_text() == " + ".join(["x"] * 250)
    assert parse("*".join(["x"] * 200) + "-x/x").to_text().startswith("x*x*")
    balanced = "((x+x)+(x+x))*((x+x)+(x+x))"
    assert parse(balanced).to_text() == "(x + x + (x + x))*(x + x + (x + x))"


def test_parser_crashes_become_formula_errors(monkeypatch):
    def explode(*args, **kwargs):
        raise RecursionError("maximum recursion depth exceeded")

    monkeypatch.setattr(ast, "parse", explode)
    with pytest.raises(FormulaError, match="nested too deeply"):
        parse("x")

    def no_memory(*args, **kwargs):
        raise MemoryError

    monkeypatch.setattr(ast, "parse", no_memory)
    with pytest.raises(FormulaError, match="nested too deeply"):
        parse("x")


@pytest.mark.parametrize(
    "text, canonical",
    [
        ("sigmoid(w*x + b)", "sigmoid(w*x + b)"),
        ("-x**2", "-x**2"),
        ("(-x)**2", "(-x)**2"),
        ("a-(b-c)", "a - (b - c)"),
        ("(a-b)-c", "a - b - c"),
        ("a/(b*c)", "a/(b*c)"),
        ("x**y**z", "x**y**z"),
        ("(x**y)**z", "(x**y)**z"),
        ("2**-x", "2**-x"),
        ("-(a+b)*c", "-(a + b)*c"),
        ("  exp( x )  ", "exp(x)"),
        ("1e3*x", "1000.0*x"),
    ],
)
def test_canonical_text(text, canonical):
    assert parse(text).to_text() == canonical
    # The canonical text parses back to the same canonical text.
    assert parse(canonical).to_text() == canonical


def test_variables_sorted_and_restricted():
    f = compile_formula("y*sin(x) + a")
    assert f.variables == ("a", "x", "y")
    g = compile_formula("x**2", variables=("x", "y"))
    assert g.variables == ("x",)
    with pytest.raises(FormulaError, match="unknown variable z"):
        compile_formula("x + z", variables=("x", "y"))


FUNCS = {
    "exp": np.exp,
    "log": np.log,
    "sqrt": np.sqrt,
    "abs": np.abs,
    "sin": np.sin,
    "cos": np.cos,
    "tanh": np.tanh,
    "sigmoid": lambda v: 1.0 / (1.0 + np.exp(-v)),
    "relu": lambda v: np.maximum(v, 0.0),
    "step": lambda v: (v > 0).astype(np.float64),
}


@pytest.mark.parametrize("name", sorted(FUNCS))
def test_each_function_matches_numpy(name):
    x = np.array([-1.5, -0.25, 0.5, 2.0])
    arg = np.abs(x) + 0.1 if name in ("log", "sqrt") else x
    out = compile_formula(f"{name}(x)")(x=arg)
    assert isinstance(out, fg.Tensor)
    np.testing.assert_allclose(out.numpy(), FUNCS[name](arg), rtol=1e-12)


@pytest.mark.parametrize(
    "text, expected",
    [
        ("a + b*c", 1.5 + (-0.75 * 2.0)),
        ("a - b - c", (1.5 - -0.75) - 2.0),
        ("a/b/c", (1.5 / -0.75) / 2.0),
        ("a**c**0.5", 1.5 ** (2.0**0.5)),
        ("-a**2", -(1.5**2)),
        ("(a - b)*(a + c)/c", ((1.5 + 0.75) * 3.5) / 2.0),
        ("2**-c", 0.25),
    ],
)
def test_arithmetic_and_precedence(text, expected):
    f = compile_formula(text)
    values = {"a": 1.5, "b": -0.75, "c": 2.0}
    assert f(**{n: values[n] for n in f.variables}).item() == pytest.approx(expected)


def test_python_numbers_become_float64_and_tensors_keep_gradients():
    f = compile_formula("x*x + sin(x)")
    assert f(x=2).dtype == np.float64
    x = fg.tensor(np.float64(2.0), requires_grad=True)
    y = f(x=x)
    y.backward()
    assert x.grad.item() == pytest.approx(2 * 2.0 + math.cos(2.0), rel=1e-12)


def test_constant_subexpressions_fold_into_one_constant():
    f = compile_formula("2*3*x + exp(0)")
    x = fg.tensor(np.float64(1.5), requires_grad=True)
    y = f(x=x)
    names = [node.name for node in fg.graph.walk(y)]
    assert names == ["mul", "add"]
    assert y.grad_fn.inputs[1] == 1.0
    assert y.item() == pytest.approx(10.0)


def test_evaluate_reports_each_subexpression_in_order():
    seen = []
    compile_formula("sigmoid(w*x + b)").evaluate(
        {"w": 0.5, "x": 2.0, "b": -1.0}, on_result=lambda e, r: seen.append(e.to_text())
    )
    assert seen == ["w", "x", "w*x", "b", "w*x + b", "sigmoid(w*x + b)"]


def test_missing_extra_and_bad_values():
    f = compile_formula("x*y", variables=("x", "y", "z"))
    with pytest.raises(TypeError, match="no value given for variable y"):
        f(x=1.0)
    assert f(x=2.0, y=3.0, z=4.0).item() == 6.0  # declared but unused is fine
    with pytest.raises(TypeError, match="does not use"):
        f(x=1.0, y=1.0, w=1.0)
    with pytest.raises(TypeError, match="must be a number"):
        f(x="1", y=1.0)


def test_grid_evaluation_for_plots():
    f = compile_formula("x**2 + y", variables=("x", "y"))
    xs, ys = np.meshgrid(np.linspace(-1, 1, 5), np.linspace(0, 1, 3))
    np.testing.assert_allclose(f(x=xs, y=ys).numpy(), xs**2 + ys)


# ---------------------------------------------------------------------------------------------
# Property: printing a tree and parsing the text gives the same tree back
# ---------------------------------------------------------------------------------------------

_NAMES = st.from_regex(r"[A-Za-z][A-Za-z0-9_]{0,4}", fullmatch=True).filter(
    lambda n: not keyword.iskeyword(n) and n not in FUNCTIONS)


def _number(v: int | float) -> Number:
    # The text the parser gives a literal: repr of the int, or of the float.
    return Number(float(v), repr(v))


_LEAF_EXPRS = st.one_of(
    _NAMES.map(Variable),
    st.integers(0, 10**6).map(_number),
    st.floats(0, 1e300, allow_nan=False, allow_infinity=False).map(_number),
)
_EXPRS = st.recursive(
    _LEAF_EXPRS,
    lambda inner: st.one_of(
        st.builds(UnaryOp, st.sampled_from(["neg", "pos"]), inner),
        st.builds(BinaryOp, st.sampled_from(["+", "-", "*", "/", "**"]), inner, inner),
        st.builds(Call, st.sampled_from(FUNCTIONS), inner),
    ),
    max_leaves=10,
)


def _depth(root: Expr) -> int:
    deepest, stack = 0, [(root, 1)]
    while stack:
        e, d = stack.pop()
        deepest = max(deepest, d)
        stack.extend((c, d + 1) for c in e.children)
    return deepest


def _shape(root: Expr) -> list:
    """The tree as nested plain data (Expr compares by identity), built without recursion."""
    out, stack = [], [root]
    while stack:
        e = stack.pop()
        if isinstance(e, Number):
            out.append(("num", e.value, e.text))
        elif isinstance(e, Variable):
            out.append(("var", e.name))
        else:
            out.append((type(e).__name__, getattr(e, "op", None), getattr(e, "func", None)))
            stack.extend(reversed(e.children))
    return out


@settings(max_examples=300, deadline=None)
@given(tree=_EXPRS)
def test_property_print_then_parse_gives_the_same_tree(tree):
    text = tree.to_text()
    assume(len(text) <= MAX_LENGTH and text.count("(") < MAX_DEPTH
           and _depth(tree) <= MAX_DEPTH)  # what the language accepts at all
    again = parse(text)  # Python's own parser underneath: its precedence, not ours
    assert _shape(again) == _shape(tree), text
    assert again.to_text() == text  # printing is a fixed point: parse -> print -> parse
