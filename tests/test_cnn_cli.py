"""`flowgrad train --model cnn` and `flowgrad graph --model cnn`, run in-process in tmp_path."""

from __future__ import annotations

import json

import numpy as np
import pytest

import flowgrad as fg
from flowgrad.cli import main
from flowgrad.training import TrainConfig, build_cnn, load_run, predict_logits, train


def test_build_cnn_layers_and_shapes():
    net = build_cnn((28, 28), 10)
    assert [type(m).__name__ for m in net] == [
        "Unflatten", "Conv2d", "ReLU", "MaxPool2d", "Conv2d", "ReLU", "MaxPool2d", "Flatten",
        "Linear"]
    assert net[8].weight.shape == (10, 32 * 7 * 7)
    assert net(fg.zeros(3, 784)).shape == (3, 10)
    assert build_cnn((8, 8), 10)(fg.zeros(2, 64)).shape == (2, 10)
    with pytest.raises(ValueError, match="at least 4x4"):
        build_cnn((3, 8), 10)


def test_train_cnn_tiny_run_then_evaluate_and_predict(tmp_path, capsys):
    out = tmp_path / "run"
    assert main(["train", "--model", "cnn", "--epochs", "2", "--out", str(out),
                 "--no-progress"]) == 0
    text = capsys.readouterr().out
    assert "training CNN 8x8 -> conv3x3 16 -> pool -> conv3x3 32 -> pool -> 10" in text
    assert "sgd lr 0.3" in text and "test accuracy" in text
    info = json.loads((out / "config.json").read_text())
    assert info["model"]["parameters"] == 16 * 9 + 16 + 32 * 16 * 9 + 32 + 128 * 10 + 10
    assert info["model"]["name"] == "cnn"
    run = load_run(out)
    assert run.config.model == "cnn" and type(run.model[1]).__name__ == "Conv2d"
    assert main(["evaluate", str(out), "--json"]) == 0
    assert "accuracy" in capsys.readouterr().out
    x, y = fg.data.load_digits("test")
    acc = (predict_logits(run.model, x.reshape(len(x), -1)[:100]).argmax(1) == y[:100]).mean()
    assert acc > 0.6  # two epochs, far above chance (0.1)


def test_train_cnn_is_reproducible(tmp_path):
    runs = [train(TrainConfig(model="cnn", epochs=1, out=str(tmp_path / f"r{i}")),
                  progress=False, plot=False) for i in range(2)]
    a, b = (r.model.state_dict() for r in runs)
    for key in a:
        np.testing.assert_array_equal(a[key].numpy(), b[key].numpy())


def test_unknown_model_is_one_line_error(capsys):
    assert main(["train", "--model", "resnet"]) == 2
    last = capsys.readouterr().err.strip().splitlines()[-1]
    assert last.startswith("flowgrad train: error:") and "invalid choice: 'resnet'" in last
    with pytest.raises(ValueError, match="unknown model 'resnet'"):
        TrainConfig(model="resnet")


def test_graph_cnn_dot(tmp_path, capsys):
    out = tmp_path / "cnn.dot"
    assert main(["graph", "--model", "cnn", "--out", str(out), "--batch", "4"]) == 0
    dot = out.read_text()
    for name in ("conv2d", "max_pool2d", "relu", "linear", "cross_entropy", "1.weight",
                 "4.weight", "8.bias", "CNN 8x8"):
        assert name in dot
