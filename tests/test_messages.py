"""Clear messages where they were vague: state-dict mismatches list every key with both
shapes, run configs that are not objects or lack a field say which, no NumPy warning
escapes from inside an op, and a graph tensor refuses pickling with a pointer to detach.
Also the PyTorch habits that produce messages of their own (view after transpose)."""

from __future__ import annotations

import json
import math
import pickle
import warnings

import numpy as np
import pytest
from test_edge_derivatives import CASES, _ours

import flowgrad as fg
from flowgrad.cli import main
from flowgrad.ops.registry import OPS
from flowgrad.training import RunError, load_run

# ---------------------------------------------------------------- state dicts


def test_a_state_dict_mismatch_lists_every_key_with_both_shapes():
    net = fg.nn.Sequential(fg.nn.Linear(3, 4), fg.nn.ReLU(), fg.nn.Linear(4, 2))
    other = fg.nn.Sequential(fg.nn.Linear(5, 4), fg.nn.ReLU(), fg.nn.Linear(4, 3))
    with pytest.raises(fg.ShapeError) as info:
        net.load_state_dict(other.state_dict())
    text = str(info.value)
    for key, theirs, ours in (("0.weight", (4, 5), (4, 3)), ("2.weight", (3, 4), (2, 4)),
                              ("2.bias", (3,), (2,))):
        assert (f"size mismatch for {key!r}: copying a value of shape {theirs} from the "
                f"state dict, the shape in the current model is {ours}") in text
    assert "0.bias" not in text  # that one fits


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
    run = tmp_path_factory.mktemp("msg") / "run"
    assert main(["train", "--epochs", "1", "--hidden", "16", "-q", "--out", str(run)]) == 0
    return run


def _with_config(run_dir, tmp_path, edit):
    import shutil

    copy = tmp_path / "run"
    shutil.copytree(run_dir, copy)
    path = copy / "config.json"
    path.write_text(edit(json.loads(path.read_text())))
    return copy


def _without(document, *keys):
    node = document
    for key in keys[:-1]:
        node = node[key]
    del node[keys[-1]]
    return json.dumps(document)


CONFIGS = [
    (lambda d: "[1, 2]", "it holds a JSON array, not an object"),
    (lambda d: '"run"', "it holds a JSON string, not an object"),
    (lambda d: "{not json", "is not valid JSON"),
    (lambda d: _without(d, "data"), "it has no 'data' object"),
    (lambda d: _without(d, "data", "classes"), "it has no list 'data.classes'"),
    (lambda d: _without(d, "data", "image_shape"), "it has no list 'data.image_shape'"),
    (lambda d: json.dumps({**d, "epochs": 0}), "epochs must be a positive integer, got 0"),
    (lambda d: json.dumps({**d, "hidden": 32}), "size mismatch for '0.weight'"),
]


@pytest.mark.parametrize("edit, message", CONFIGS, ids=[m for _, m in CONFIGS])
def test_a_bad_run_config_says_what_is_wrong(run_dir, tmp_path, edit, message, capsys):
    run = _with_config(run_dir, tmp_path, edit)
    with pytest.raises(RunError, match=message.replace("(", r"\(").replace("[", r"\[")):
        load_run(run)
    assert main(["evaluate", str(run)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and message in err


def test_the_cli_shows_every_mismatched_key_of_a_checkpoint(run_dir, tmp_path, capsys):
    run = _with_config(run_dir, tmp_path, lambda d: json.dumps({**d, "hidden": 32}))
    assert main(["predict", str(run), "nothing.png"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1
    for key in ("0.weight", "0.bias", "2.weight"):
        assert f"size mismatch for '{key}'" in err
    assert "(16, 64)" in err and "(32, 64)" in err


# ---------------------------------------------------------------- no warnings from ops


@pytest.mark.parametrize("case", [pytest.param(c, id=c.id) for c in CASES])
def test_no_numpy_warning_escapes_from_an_op(case):
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        for create_graph in (False, True):
            leaves, out, grads = _ours(case, create_graph=create_graph)
        total = None
        for g in grads:
            if g is not None and g.requires_grad:
                total = g.sum() if total is None else total + g.sum()
        if total is not None:
            total.backward()


EDGE = np.array([0.0, -0.0, 1.0, -1.0, math.inf, -math.inf, math.nan, 1e308, -1e308, 5e-324])


def test_no_warning_from_ops_without_gradients_and_in_place_updates():
    x = fg.tensor(EDGE)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        for op in OPS.values():
            if op.differentiable:
                continue
            op(x, x[::-1].clone()) if op.n_inputs == 2 else op(x)
        for method in ("add_", "sub_", "mul_", "div_"):
            y = fg.tensor(EDGE)
            getattr(y, method)(fg.tensor(EDGE[::-1].copy()))
            getattr(y, method)(0.0)
        y = fg.tensor(EDGE)
        y /= 0.0
        y.clamp_(min=-1.0, max=1.0)
        # The library's own reductions and losses on degenerate input.
        fg.var(fg.tensor([1.0]))
        fg.std(fg.zeros(0, 3), dim=0)
        fg.mean(fg.zeros(0))
        fg.nn.functional.cross_entropy(fg.zeros(0, 3), fg.tensor(np.zeros(0, dtype=np.int64)))
        fg.nn.functional.mse_loss(fg.tensor([math.inf]), fg.tensor([math.inf]))
        fg.nn.functional.log_softmax(fg.tensor([[-math.inf, -math.inf]]), dim=1)


# ---------------------------------------------------------------- pickling, habits


def test_pickling_a_graph_tensor_points_to_detach():
    w = fg.tensor([1.0, 2.0], requires_grad=True)
    assert pickle.loads(pickle.dumps(w)).tolist() == [1.0, 2.0]
    with pytest.raises(RuntimeError, match=r"detach\(\)"):
        pickle.dumps(w * 2)


def test_contiguous_and_t_as_in_pytorch():
    x = fg.tensor([[1.0, 2.0, 3.0], [4.0, 5.0, 6.0]], requires_grad=True)
    with pytest.raises(RuntimeError, match=r"use .reshape\(...\) instead"):
        x.t().view(-1)
    flat = x.t().contiguous().view(-1)
    assert flat.tolist() == [1.0, 4.0, 2.0, 5.0, 3.0, 6.0]
    (flat * fg.arange(6.0)).sum().backward()
    assert x.grad.tolist() == [[0.0, 2.0, 4.0], [1.0, 3.0, 5.0]]
    assert x.contiguous() is x and fg.tensor([1.0]).t().shape == (1,)
    with pytest.raises(RuntimeError, match="<= 2 dimensions"):
        fg.zeros(2, 2, 2).t()
