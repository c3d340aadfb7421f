"""``fg.viz.draw_graph`` and ``flowgrad graph``: the dataflow graph as a picture."""

from __future__ import annotations

import re
import shutil

import numpy as np
import pytest

import flowgrad as fg
from flowgrad.cli import main
from flowgrad.viz.graph import GraphFreedError, draw_graph

HAVE_DOT = shutil.which("dot") is not None
needs_dot = pytest.mark.skipif(not HAVE_DOT, reason="Graphviz dot not installed")

_NODE = re.compile(r"^  (\w+) \[label=<(.*)>, (.*)\];$")
_EDGE = re.compile(r"^  (\w+) -> (\w+)(?: \[label=<(.*)>\])?;$")


def parse_dot(source: str) -> tuple[dict[str, tuple[str, str]], list[tuple[str, str, str]]]:
    """DOT text -> ({key: (label, style)}, [(src, dst, label)]) with tags stripped."""

    def text(label: str) -> str:
        return " ".join(re.sub(r"<[^>]+>", " ", label).split())

    nodes, edges = {}, []
    for line in source.splitlines():
        if m := _EDGE.match(line):
            edges.append((m[1], m[2], text(m[3] or "")))
        elif m := _NODE.match(line):
            nodes[m[1]] = (text(m[2]), m[3])
    return nodes, edges


def scalar(v: float) -> fg.Tensor:
    return fg.tensor(np.float64(v), requires_grad=True)


def sigmoid_graph():
    w, x, b = scalar(0.5), scalar(2.0), scalar(-1.0)
    y = fg.sigmoid(w * x + b)
    return y, {"w": w, "x": x, "b": b}


def labels_of(nodes, edges, src_name, dst_op):
    src = next(k for k, (label, _) in nodes.items() if label.split()[0] == src_name)
    return [label for s, d, label in edges if s == src and nodes[d][0].split()[0] == dst_op]


def test_structure_and_labels_after_backward():
    y, params = sigmoid_graph()
    y.backward(retain_graph=True)
    nodes, edges = parse_dot(draw_graph(y, params=params).source)
    ops = {k: v for k, v in nodes.items() if k.startswith("op")}
    leaves = {k: v for k, v in nodes.items() if k.startswith("leaf")}
    assert sorted(v[0].split()[0] for v in ops.values()) == ["add", "mul", "sigmoid"]
    assert sorted(v[0].split()[0] for v in leaves.values()) == ["b", "w", "x"]
    assert len(edges) == 5
    # w -> mul carries w's value, the gradient dy/dw and the local factor d(w*x)/dw = x.
    (w_edge,) = labels_of(nodes, edges, "w", "mul")
    assert w_edge.split() == ["0.5", "∇", "0.5", "∂=2"]
    (x_edge,) = labels_of(nodes, edges, "x", "mul")
    assert x_edge.split() == ["2", "∇", "0.125", "∂=0.5"]
    (add_edge,) = labels_of(nodes, edges, "mul", "add")
    assert add_edge.split() == ["1", "∇", "0.25", "∂=1"]
    (sig_edge,) = labels_of(nodes, edges, "add", "sigmoid")
    assert sig_edge.split() == ["0", "∇", "0.25", "∂=0.25"]
    out_label = next(v[0] for v in ops.values() if v[0].startswith("sigmoid"))
    assert "out 0.5" in out_label and "∇ 1" in out_label
    # Leaves show their accumulated gradient; parameters are drawn as orange boxes.
    w_label, w_style = next(v for v in leaves.values() if v[0].startswith("w"))
    assert "∇ 0.5" in w_label and "shape=box" in w_style and "#fcd9a8" in w_style
    assert all("ellipse" in style for _, style in ops.values())


def test_shared_input_is_one_leaf_with_two_edges_and_constants_are_leaves():
    x = scalar(2.0)
    y = x * x + fg.sin(x) + 3.0
    y.backward(retain_graph=True)
    nodes, edges = parse_dot(draw_graph(y, params={"x": x}).source)
    leaves = [k for k in nodes if k.startswith("leaf")]
    consts = [k for k in nodes if k.startswith("const")]
    assert len(leaves) == 1 and len(consts) == 1
    assert nodes[consts[0]][0].strip() == "3" and "plaintext" in nodes[consts[0]][1]
    from_x = [label for s, _, label in edges if s == leaves[0]]
    assert len(from_x) == 3
    # Each of x*x's two edges has local derivative x = 2; sin's has cos(2).
    assert sorted(lbl.split()[-1] for lbl in from_x) == ["∂=-0.4161", "∂=2", "∂=2"]
    assert "∇ 3.584" in nodes[leaves[0]][0]  # the sum over the three edges: 2x + cos x


def test_before_backward_and_switches():
    y, params = sigmoid_graph()
    nodes, edges = parse_dot(draw_graph(y, params=params).source)
    assert not any("∇" in label for _, _, label in edges)  # no gradients yet
    assert not any("∇" in label for label, _ in nodes.values())
    # Local derivatives come from the saved forward values alone.
    assert [label.split()[-1] for _, _, label in edges][-1] == "∂=0.25"
    plain = draw_graph(y, params=params, show_values=False, show_grads=False).source
    _, edges = parse_dot(plain)
    assert all(label == "" for _, _, label in edges)
    assert "∂" not in plain and "∇" not in plain


def test_unnamed_leaves_inputs_and_data():
    x = fg.tensor(np.ones((4, 3)), requires_grad=True)
    data = fg.tensor(np.arange(3.0))
    y = (x * data).sum()
    nodes, _ = parse_dot(draw_graph(y).source)
    kinds = sorted(label.split()[0] for k, (label, _) in nodes.items() if k.startswith("leaf"))
    assert kinds == ["data", "input"]


def test_tensor_edges_show_shape_and_summary_one_node_per_op():
    fg.manual_seed(0)
    rng = np.random.default_rng(0)
    x = fg.tensor(rng.standard_normal((256, 64)).astype(np.float32))
    w1 = fg.tensor(rng.standard_normal((128, 64)).astype(np.float32) * 0.1, requires_grad=True)
    b1 = fg.tensor(np.zeros(128, np.float32), requires_grad=True)
    w2 = fg.tensor(rng.standard_normal((10, 128)).astype(np.float32) * 0.1, requires_grad=True)
    target = fg.tensor(rng.integers(0, 10, 256))
    loss = fg.cross_entropy(fg.linear(fg.relu(fg.linear(x, w1, b1)), w2), target)
    loss.backward(retain_graph=True)
    params = {"w1": w1, "b1": b1, "w2": w2, "images": x, "labels": target}
    nodes, edges = parse_dot(draw_graph(loss, params=params).source)
    ops = [k for k in nodes if k.startswith("op")]
    assert len(ops) == len(fg.graph.walk(loss)) <= 6  # 256*128 elements, a handful of nodes
    (w1_edge,) = labels_of(nodes, edges, "w1", "linear")
    assert w1_edge.split()[0] == "128×64" and "μ" in w1_edge
    grad_part = w1_edge.split("∇")[1].split()
    assert grad_part[0] == "128×64"
    mean = float(grad_part[2])
    assert mean == pytest.approx(float(w1.grad.numpy().mean()), rel=1e-2, abs=1e-6)
    assert "∂" not in w1_edge  # local derivatives only where both ends are scalars
    label, style = next(v for k, v in nodes.items() if v[0].startswith("labels"))
    assert "256 int64" in label and "dashed" in style


def test_module_parameters_are_named():
    nn = fg.nn
    fg.manual_seed(1)
    model = nn.Sequential(nn.Linear(5, 4), nn.ReLU(), nn.Linear(4, 3))
    x = fg.tensor(np.ones((2, 5), np.float32))
    loss = model(x).sum()
    loss.backward(retain_graph=True)
    source = draw_graph(loss, params=model).source
    for name in ("0.weight", "0.bias", "2.weight", "2.bias"):
        assert f"<B>{name}</B>" in source


def test_freed_graph_raises_clear_error():
    y, params = sigmoid_graph()
    y.backward()
    with pytest.raises(GraphFreedError, match=r"retain_graph=True") as info:
        draw_graph(y, params=params)
    assert isinstance(info.value, RuntimeError)


def test_leaf_output_and_bad_params():
    x = scalar(1.5)
    nodes, edges = parse_dot(draw_graph(x, params={"x": x}).source)
    assert list(nodes) == ["leaf0"] and edges == []
    with pytest.raises(TypeError, match="named_parameters"):
        draw_graph(x * 2, params=[x])


def test_render_dot_text_and_bad_suffix(tmp_path):
    y, params = sigmoid_graph()
    drawing = draw_graph(y, params=params)
    path = drawing.render(tmp_path / "g.dot")
    assert path.read_text() == drawing.source
    with pytest.raises(ValueError, match=r"\.svg"):
        drawing.render(tmp_path / "g.jpg")


def test_missing_dot_names_the_package(tmp_path, monkeypatch):
    y, params = sigmoid_graph()
    drawing = draw_graph(y, params=params)
    monkeypatch.setattr(shutil, "which", lambda name: None)
    with pytest.raises(RuntimeError, match="apt-get install graphviz") as info:
        drawing.render(tmp_path / "g.svg")
    assert "brew install graphviz" in str(info.value)
    assert not list(tmp_path.iterdir())
    assert drawing._repr_svg_() is None


@needs_dot
def test_render_svg_and_png(tmp_path):
    y, params = sigmoid_graph()
    y.backward(retain_graph=True)
    drawing = draw_graph(y, params=params, title="sigmoid(w*x + b)")
    with pytest.raises(FileNotFoundError, match="folder .*sub does not exist"):
        drawing.render(tmp_path / "sub" / "g.svg")  # folders are never made behind your back
    (tmp_path / "sub").mkdir()
    svg = drawing.render(tmp_path / "sub" / "g.svg").read_text()
    assert "<svg" in svg and "sigmoid" in svg and "∂=0.25" in svg
    png = drawing.render(tmp_path / "g.png").read_bytes()
    assert png.startswith(b"\x89PNG") and len(png) > 1000
    assert "<svg" in drawing._repr_svg_()
    # Atomic writes leave no temporary files behind.
    assert sorted(p.name for p in tmp_path.rglob("*") if p.is_file()) == ["g.png", "g.svg"]


@needs_dot
def test_cli_graph_reference_network(tmp_path, capsys):
    out = tmp_path / "net.svg"
    assert main(["graph", "--out", str(out), "--hidden", "8", "--batch", "16"]) == 0
    assert capsys.readouterr().out.strip() == str(out)
    svg = out.read_text()
    for name in ("0.weight", "0.bias", "2.weight", "2.bias", "after 1 SGD step"):
        assert name in svg


def test_cli_graph_dot_and_errors(tmp_path, capsys):
    out = tmp_path / "net.dot"
    assert main(["graph", "--out", str(out), "--hidden", "4", "--batch", "8"]) == 0
    nodes, edges = parse_dot(out.read_text())
    names = {label.split()[0] for k, (label, _) in nodes.items() if k.startswith("leaf")}
    assert {"0.weight", "0.bias", "2.weight", "2.bias", "images", "labels"} <= names
    assert main(["graph", "--out", str(tmp_path / "x.jpg")]) == 2
    assert main(["graph", "--hidden", "0"]) == 2
    err = capsys.readouterr().err
    assert "--out must end in" in err and "--hidden must be at least 1" in err
