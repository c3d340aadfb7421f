"""The reference network trains end to end; flowgrad train/evaluate/predict in a temp folder."""

from __future__ import annotations

import csv
import json

import numpy as np
import pytest

import flowgrad as fg
from flowgrad.cli import main
from flowgrad.training import (
    TrainConfig,
    build_reference_model,
    confusion_matrix,
    load_run,
    preprocess_image,
    train,
)

PIL = pytest.importorskip("PIL.Image")


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
    out = tmp_path_factory.mktemp("run") / "digits"
    assert main(["train", "--epochs", "8", "--out", str(out), "--no-progress"]) == 0
    return out


def test_reference_model_shapes_and_names():
    model = build_reference_model(64, 32, 10)
    names = [name for name, _ in model.named_parameters()]
    assert names == ["0.weight", "0.bias", "2.weight", "2.bias"]
    assert model(fg.zeros(5, 64)).shape == (5, 10)


def test_short_digits_run_exceeds_90_percent(tmp_path):
    result = train(TrainConfig(epochs=6, out=str(tmp_path / "r")), progress=False,
                   log=lambda line: None)
    assert result.test_accuracy > 0.90
    assert [m["epoch"] for m in result.metrics] == list(range(1, 7))
    assert result.metrics[-1]["train_loss"] < result.metrics[0]["train_loss"]


def test_same_seed_same_metrics(tmp_path):
    runs = [train(TrainConfig(epochs=2, seed=7, out=str(tmp_path / f"r{i}")), progress=False,
                  log=lambda line: None) for i in range(2)]
    strip = [[{k: v for k, v in m.items() if k != "seconds"} for m in r.metrics] for r in runs]
    assert strip[0] == strip[1]
    other = train(TrainConfig(epochs=2, seed=8, out=str(tmp_path / "r3")), progress=False,
                  log=lambda line: None)
    assert other.metrics[-1]["train_loss"] != runs[0].metrics[-1]["train_loss"]


@pytest.mark.parametrize("optimizer", ["momentum", "nesterov", "adagrad", "rmsprop", "adam",
                                       "adamw"])
def test_every_optimizer_learns(tmp_path, optimizer):
    result = train(TrainConfig(epochs=3, optimizer=optimizer, out=str(tmp_path / "r")),
                   progress=False, log=lambda line: None)
    assert result.test_accuracy > 0.85


def test_cli_train_writes_the_run_folder(run_dir, capsys):
    for name in ("model.npz", "config.json", "metrics.csv", "curves.png"):
        assert (run_dir / name).stat().st_size > 0
    assert (run_dir / "curves.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    config = json.loads((run_dir / "config.json").read_text())
    assert config["dataset"] == "digits" and config["epochs"] == 8 and config["lr"] == 0.1
    rows = list(csv.DictReader((run_dir / "metrics.csv").open()))
    assert len(rows) == 8 and float(rows[-1]["test_accuracy"]) > 0.9
    _, model = load_run(run_dir)
    assert model[0].weight.shape == (128, 64)


def test_cli_train_prints_a_line_per_epoch(tmp_path, capsys):
    assert main(["train", "--epochs", "2", "--hidden", "16", "--out", str(tmp_path / "r"),
                 "--no-progress"]) == 0
    out = capsys.readouterr().out
    assert "epoch 1/2" in out and "epoch 2/2" in out and "test acc" in out
    assert "run folder" in out


def test_cli_evaluate(run_dir, capsys):
    assert main(["evaluate", str(run_dir)]) == 0
    out = capsys.readouterr().out
    accuracy = float(out.split("test accuracy ")[1].split("%")[0])
    metrics = list(csv.DictReader((run_dir / "metrics.csv").open()))
    assert accuracy == pytest.approx(100 * float(metrics[-1]["test_accuracy"]), abs=0.01)
    assert (run_dir / "confusion.png").read_bytes()[:4] == b"\x89PNG"


def test_confusion_matrix_counts():
    m = confusion_matrix(np.array([0, 1, 1, 2]), np.array([0, 1, 2, 2]), 3)
    assert m.tolist() == [[1, 0, 0], [0, 1, 1], [0, 0, 1]]


def _digit_png(path, pixels, invert=True, scale=15):
    image = (1 - pixels if invert else pixels) * 255
    PIL.fromarray(image.astype(np.uint8)).resize((8 * scale, 8 * scale),
                                                 PIL.Resampling.NEAREST).save(path)


def test_preprocess_recovers_a_digit(tmp_path):
    images, _ = fg.data.load_digits("test")
    _digit_png(tmp_path / "d.png", images[0])
    row = preprocess_image(tmp_path / "d.png", (8, 8))
    assert row.shape == (64,) and 0 <= row.min() and row.max() <= 1
    assert np.corrcoef(row, images[0].reshape(-1))[0, 1] > 0.8


def test_cli_predict_classifies_clear_examples(run_dir, tmp_path, capsys):
    images, labels = fg.data.load_digits("test")
    paths = []
    for i in range(6):
        path = tmp_path / f"digit{i}.png"
        _digit_png(path, images[i], invert=i % 2 == 0)
        paths.append(str(path))
    assert main(["predict", str(run_dir), *paths, "--json"]) == 0
    results = json.loads(capsys.readouterr().out)
    predicted = [r["class"] for r in results]
    assert sum(p == y for p, y in zip(predicted, labels[:6])) >= 5
    for r in results:
        assert sum(r["probabilities"]) == pytest.approx(1.0, abs=1e-5)


@pytest.mark.parametrize("argv, message", [
    (["evaluate", "no-such-run"], "does not exist"),
    (["predict", "no-such-run", "x.png"], "does not exist"),
    (["train", "--dataset", "mnist", "--data-dir", "EMPTY"], "--download"),
    (["train", "--epochs", "0"], "epochs must be at least 1"),
    (["train", "--lr", "-1"], "lr must be a positive number"),
])
def test_cli_errors_are_one_line(tmp_path, capsys, argv, message):
    argv = [a.replace("EMPTY", str(tmp_path)) for a in argv]
    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert message in err and len(err.splitlines()) == 1 and "Traceback" not in err


def test_cli_predict_unreadable_image(run_dir, tmp_path, capsys):
    bad = tmp_path / "bad.png"
    bad.write_bytes(b"not an image")
    assert main(["predict", str(run_dir), str(bad)]) == 2
    assert "cannot read image" in capsys.readouterr().err


def test_cli_corrupt_checkpoint(run_dir, tmp_path, capsys):
    import shutil

    broken = tmp_path / "broken"
    shutil.copytree(run_dir, broken)
    data = (broken / "model.npz").read_bytes()
    (broken / "model.npz").write_bytes(data[: len(data) // 2])
    assert main(["evaluate", str(broken)]) == 2
    assert "cannot read the run" in capsys.readouterr().err


def test_bad_option_is_an_argparse_error(capsys):
    assert main(["train", "--optimizer", "lbfgs"]) == 2
    assert "invalid choice" in capsys.readouterr().err
