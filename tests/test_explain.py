"""``fg.viz.explain`` and ``flowgrad explain``: the chain rule, path by path."""

from __future__ import annotations

import json
import math
import shutil

import pytest
from test_formula import HOSTILE

import flowgrad as fg
from flowgrad.cli import main
from flowgrad.viz.explain import _paths_to, explain_formula

FORMULAS = [
    ("sigmoid(w*x + b)", {"w": 0.5, "x": 2.0, "b": -1.0}),
    ("x*x + sin(x)", {"x": 2.0}),  # x reached by three paths (two through x*x)
    ("exp(-x*y)/(1 + x**2)", {"x": 0.7, "y": -1.3}),
    ("tanh(a*b) + a*log(b)", {"a": -0.4, "b": 2.5}),
    ("sqrt(x**2 + y**2)", {"x": 3.0, "y": -4.0}),
    ("(x + y)*(x - y) - abs(x)*relu(y) + step(x)", {"x": 1.25, "y": 0.5}),
    ("cos(u)**3 / sigmoid(u - v) + v**-2", {"u": 0.3, "v": 1.7}),
]


@pytest.mark.parametrize("text, values", FORMULAS)
def test_path_products_equal_backward_and_finite_difference(text, values):
    e = fg.viz.explain(text, **values)
    assert set(e.gradients) == set(values)
    for name, g in e.gradients.items():
        assert g.listed_all
        assert math.fsum(p.product for p in g.paths) == pytest.approx(g.path_sum, rel=1e-12)
        assert g.path_sum == pytest.approx(g.backward, rel=1e-12, abs=1e-15)
        assert g.finite_difference == pytest.approx(g.backward, rel=1e-7, abs=1e-9), name
        for p in g.paths:
            assert p.chain[0] == e.output_id and p.chain[-1] == name
            assert len(p.factors) == len(p.chain) - 1 == len(p.via)
            assert p.product == pytest.approx(math.prod(p.factors), rel=1e-12)
    assert not e.notes


def test_two_paths_hand_computed():
    e = fg.viz.explain("x*x + sin(x)", x=2.0)
    assert e.output == pytest.approx(4.0 + math.sin(2.0), rel=1e-15)
    assert [(n.id, n.op, n.expr) for n in e.nodes] == [
        ("n1", "mul", "x*x"),
        ("n2", "sin", "sin(x)"),
        ("n3", "add", "x*x + sin(x)"),
    ]
    assert e.nodes[0].local == [2.0, 2.0]  # d(x*x)/d(each input) = the other input
    assert e.nodes[1].local == [pytest.approx(math.cos(2.0), rel=1e-15)]
    g = e.gradients["x"]
    assert g.num_paths == 3
    chains = sorted((tuple(p.chain), tuple(p.via)) for p in g.paths)
    assert chains == [
        (("n3", "n1", "x"), (1, 1)),
        (("n3", "n1", "x"), (1, 2)),
        (("n3", "n2", "x"), (2, 1)),
    ]
    products = sorted(p.product for p in g.paths)
    assert products == [pytest.approx(math.cos(2.0)), 2.0, 2.0]
    assert g.backward == pytest.approx(4.0 + math.cos(2.0), rel=1e-14)


def test_sigmoid_example_values():
    e = fg.viz.explain("sigmoid(w*x + b)", w=0.5, x=2, b=-1)
    assert e.output == 0.5
    assert [n.value for n in e.nodes] == [1.0, 0.0, 0.5]
    assert e.nodes[2].local == [0.25]  # sigmoid'(0) = s(1 - s)
    assert e.gradients["w"].backward == 0.5
    assert e.gradients["x"].backward == 0.125
    assert e.gradients["b"].backward == 0.25
    (path,) = e.gradients["w"].paths
    assert path.chain == ["n3", "n2", "n1", "w"]
    assert path.factors == [0.25, 1.0, 2.0]
    text = e.table()
    assert "n3 → n2 → n1 → w:  0.25 × 1 × 2 = 0.5" in text
    assert "∂n3/∂n2 = 0.25" in text


def test_many_paths_are_capped_but_summed():
    # x**80 as a product of 80 x's: 80 paths to x, and d/dx x**80 = 80 at x = 1.
    terms = ["(" + "*".join(["x"] * 10) + ")"] * 8
    while len(terms) > 1:
        terms = [f"({a}*{b})" for a, b in zip(terms[::2], terms[1::2])]
    e = explain_formula(terms[0], {"x": 1.0}, max_paths=64)
    g = e.gradients["x"]
    assert g.num_paths == 80 and len(g.paths) == 64 and not g.listed_all
    assert g.path_sum == g.backward == 80.0
    assert "16 more paths not listed" in e.table()


def test_path_enumeration_stays_cheap_on_exponential_dags():
    # 60 layers, each node reaching the one below by two edges: 2**60 paths.
    hops = {("node", "n1"): [(("var", "x"), 1.0, 1), (("var", "x"), 1.0, 2)]}
    for k in range(2, 61):
        below = ("node", f"n{k - 1}")
        hops[("node", f"n{k}")] = [(below, 0.5, 1), (below, 0.5, 2)]
    listed, count, total = _paths_to(("node", "n60"), ("var", "x"), hops, 64)
    assert count == 2**60
    assert len(listed) == 64
    assert total == pytest.approx(2.0)  # each layer contributes 2 * 0.5 = 1, the first 2


def test_kink_is_noted():
    e = fg.viz.explain("relu(x)*y", x=0.0, y=2.0)
    assert e.gradients["x"].backward == 0.0  # relu'(0) = 0 by convention
    assert e.gradients["x"].finite_difference == pytest.approx(1.0)
    assert any("kink" in n for n in e.notes)


def test_output_is_a_variable():
    e = fg.viz.explain("x", x=3.0)
    g = e.gradients["x"]
    assert e.nodes == [] and g.num_paths == 1 and g.backward == 1.0 and g.path_sum == 1.0


def test_python_api_value_errors():
    with pytest.raises(TypeError, match="no value given for y"):
        fg.viz.explain("x*y", x=1.0)
    with pytest.raises(TypeError, match="does not use"):
        fg.viz.explain("x", x=1.0, y=2.0)
    with pytest.raises(TypeError, match="must be a number"):
        fg.viz.explain("x", x="one")
    with pytest.raises(fg.viz.FormulaError):
        fg.viz.explain("x.y", x=1.0)


# --- the command line --------------------------------------------------------------------


def test_cli_prints_tables(capsys):
    assert main(["explain", "sigmoid(w*x + b)", "w=0.5", "x=2", "b=-1"]) == 0
    out = capsys.readouterr().out
    assert "Forward pass" in out and "Local derivatives" in out
    assert "d f/d w: 1 path from n3 to w" in out
    assert "flowgrad backward()   0.5" in out


def test_cli_json_parses_and_matches(capsys):
    assert main(["explain", "x*x + sin(x)", "x=2", "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    expected = fg.viz.explain("x*x + sin(x)", x=2.0).to_dict()
    assert data == json.loads(json.dumps(expected))
    gx = data["gradients"]["x"]
    assert gx["num_paths"] == 3
    assert gx["backward"] == pytest.approx(4.0 + math.cos(2.0))
    assert gx["finite_difference"] == pytest.approx(gx["backward"], rel=1e-7)
    assert [n["id"] for n in data["nodes"]] == ["n1", "n2", "n3"]


def test_cli_json_non_finite_is_strict_json(capsys):
    assert main(["explain", "log(x)", "x=0", "--json"]) == 0

    def refuse(constant):
        raise AssertionError(f"non-standard JSON constant {constant}")

    data = json.loads(capsys.readouterr().out, parse_constant=refuse)
    assert data["output"]["value"] == "-inf"
    assert data["gradients"]["x"]["backward"] == "inf"


def test_cli_formula_starting_with_minus(capsys):
    assert main(["explain", "--", "-x**2", "x=3"]) == 0
    assert "flowgrad backward()   -6" in capsys.readouterr().out


@pytest.mark.parametrize("text", HOSTILE)
def test_cli_refuses_hostile_formulas(text, tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    assert main(["explain", "--", text, "x=1"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("flowgrad explain: error:") and "\n" not in err
    assert "Traceback" not in err
    assert not (tmp_path / "pwned.txt").exists()
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize(
    "argv, message",
    [
        (["x*y", "x=1"], "no value given for y"),
        (["x", "x=1", "y=2"], "does not use"),
        (["x", "x=abc"], "not a number"),
        (["x", "x=nan"], "finite"),
        (["x", "x=inf"], "finite"),
        (["x", "x=1", "x=2"], "given twice"),
        (["x", "x"], "NAME=VALUE"),
        (["x", "__import__=1"], "NAME=VALUE"),
        (["x", "x=1", "--graph", "out.txt"], "--graph must end"),
        (["x", "x=1", "--max-paths", "-1"], "--max-paths"),
    ],
)
def test_cli_value_errors(argv, message, capsys, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert main(["explain", *argv]) == 2
    err = capsys.readouterr().err.strip()
    assert message in err and "\n" not in err


def test_cli_graph_dot_text(tmp_path, capsys):
    out = tmp_path / "f.dot"
    assert main(["explain", "x*x + sin(x)", "x=2", "--graph", str(out)]) == 0
    source = out.read_text()
    assert source.startswith("digraph")
    assert "n1: x*x" in source and "<B>x</B>" in source
    assert f"graph written to {out}" in capsys.readouterr().out


@pytest.mark.skipif(shutil.which("dot") is None, reason="Graphviz dot not installed")
def test_cli_graph_svg_with_json(tmp_path, capsys):
    out = tmp_path / "f.svg"
    assert (
        main(["explain", "sigmoid(w*x + b)", "w=0.5", "x=2", "b=-1", "--json", "--graph", str(out)])
        == 0
    )
    captured = capsys.readouterr()
    json.loads(captured.out)  # stdout stays pure JSON
    assert "graph written" in captured.err
    assert "<svg" in out.read_text()


def test_package_exports():
    import importlib

    module = importlib.import_module("flowgrad.viz.explain")
    # The function, not the submodule of the same name, is what fg.viz.explain means.
    assert fg.viz.explain is module.explain
    assert fg.viz.draw_graph is importlib.import_module("flowgrad.viz.graph").draw_graph
    assert fg.viz.compile_formula("x").variables == ("x",)
    with pytest.raises(AttributeError):
        fg.viz.no_such_name  # noqa: B018
