"""The scripts in examples/ run (at small sizes) and do what they say, so they cannot rot."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import flowgrad as fg

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"


def _load(name: str):
    spec = importlib.util.spec_from_file_location(f"example_{name}", EXAMPLES / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_cnn_digits_trains_and_saves(tmp_path, capsys):
    cnn = _load("cnn_digits")
    path = tmp_path / "cnn.npz"
    accuracy = cnn.main(["--epochs", "2", "--train-limit", "400", "--save", str(path)])
    out = capsys.readouterr().out
    assert "epoch  2" in out and "test accuracy" in out and "Conv2d(1, 16" in out
    assert accuracy > 0.5  # far above chance (0.1) after two short epochs
    state = fg.load(path)
    assert "features.1.running_mean" in state and "classifier.2.weight" in state
    model = cnn.DigitsCNN()
    model.load_state_dict(state)


def test_transformer_learns_to_copy(capsys):
    copy = _load("transformer_copy")
    accuracy = copy.main(["--steps", "120", "--length", "4", "--batch-size", "32"])
    out = capsys.readouterr().out
    assert "copy accuracy on the second half" in out
    assert accuracy > 0.5  # chance is 0.1; the full run reaches 100%
