"""`flowgrad train`, `evaluate` and `predict`, run in-process in tmp_path."""

from __future__ import annotations

import csv
import json
import re

import numpy as np
import pytest
from conftest import PNG_MAGIC

import flowgrad as fg
from flowgrad.cli import main
from flowgrad.training import predict_logits

PIL = pytest.importorskip("PIL.Image")
pytest.importorskip("matplotlib")


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """``flowgrad train --epochs 4`` into a temporary run folder: (run folder, stdout)."""
    out = tmp_path_factory.mktemp("cli") / "run"
    capture = pytest.MonkeyPatch()
    lines: list[str] = []
    capture.setattr("builtins.print", lambda *a, **k: lines.append(" ".join(map(str, a))))
    try:
        code = main(["train", "--epochs", "4", "--out", str(out), "--no-progress"])
    finally:
        capture.undo()
    assert code == 0
    return out, lines


def _digit_file(path, pixels, size, dark_ink=True, mode="L"):
    values = (1.0 - pixels) if dark_ink else pixels
    image = PIL.fromarray((values * 255).astype(np.uint8)).resize((size, size), PIL.BILINEAR)
    image.convert(mode).save(path)
    return str(path)


def _one_error_line(capsys) -> str:
    captured = capsys.readouterr()
    err = captured.err.strip()
    assert len(err.splitlines()) == 1, err
    assert "Traceback" not in err
    return err


# --------------------------------------------------------------------------- train

def test_train_writes_the_run_folder(trained):
    out, _ = trained
    for name in ("model.npz", "config.json", "metrics.csv", "curves.png"):
        assert (out / name).stat().st_size > 0
    assert (out / "curves.png").read_bytes()[:8] == PNG_MAGIC
    info = json.loads((out / "config.json").read_text())
    assert (info["epochs"], info["lr"], info["optimizer"]) == (4, 0.5, "sgd")
    rows = list(csv.DictReader((out / "metrics.csv").open()))
    assert [r["epoch"] for r in rows] == ["1", "2", "3", "4"]
    assert float(rows[-1]["test_accuracy"]) > 0.9


def test_train_prints_header_epochs_and_summary(trained):
    out, lines = trained
    assert lines[0].startswith("training 64-128-10 network on digits (1438 train / 359 test)")
    assert lines[1] == f"run folder: {out}"
    epochs = [line for line in lines if line.startswith("epoch ")]
    assert len(epochs) == 4
    pattern = (r"epoch 4/4  train loss \d\.\d{4}  train acc +\d+\.\d\d%  test acc +\d+\.\d\d%"
               r" +\d+\.\d\d s")
    assert re.fullmatch(pattern, epochs[-1])
    rows = list(csv.DictReader((out / "metrics.csv").open()))
    last = 100 * float(rows[-1]["test_accuracy"])
    assert f"test acc {last:6.2f}%" in epochs[-1]
    summary = lines[-3]
    assert summary.startswith(f"test accuracy {last:.2f}% (") and "/359) after 4 epochs" in summary
    assert lines[-2] == f"run folder: {out}  (model.npz config.json metrics.csv curves.png)"
    assert lines[-1].startswith(f"next: flowgrad evaluate {out}")


def test_train_quiet_prints_only_the_summary(tmp_path, capsys):
    assert main(["train", "--epochs", "1", "--hidden", "8", "--optimizer", "adam", "--lr",
                 "0.01", "--schedule", "constant", "--out", str(tmp_path / "r"), "-q"]) == 0
    out = capsys.readouterr().out.splitlines()
    assert len(out) == 3 and out[0].startswith("test accuracy ")
    info = json.loads((tmp_path / "r" / "config.json").read_text())
    assert (info["optimizer"], info["lr"], info["schedule"], info["hidden"]) == \
        ("adam", 0.01, "constant", 8)


def test_train_help_lists_default_learning_rates(capsys):
    assert main(["train", "--help"]) == 0
    text = " ".join(capsys.readouterr().out.split())
    assert "sgd 0.5/0.1" in text and "adam 0.003/0.001" in text


# --------------------------------------------------------------------------- evaluate

def test_evaluate_prints_accuracy_and_draws_the_matrix(trained, capsys):
    out, _ = trained
    assert main(["evaluate", str(out)]) == 0
    lines = capsys.readouterr().out.splitlines()
    rows = list(csv.DictReader((out / "metrics.csv").open()))
    assert lines[0].startswith(f"test accuracy {100 * float(rows[-1]['test_accuracy']):.2f}% (")
    assert lines[1].startswith("per class: 0: ") and lines[1].count("%") == 10
    assert lines[2] == f"confusion matrix: {out / 'confusion.png'}"
    assert (out / "confusion.png").read_bytes()[:8] == PNG_MAGIC


def test_evaluate_json_and_out_folder(trained, tmp_path, capsys):
    out, _ = trained
    assert main(["evaluate", str(out), "--json", "--out", str(tmp_path / "pics")]) == 0
    report = json.loads(capsys.readouterr().out)
    confusion = np.array(report["confusion"])
    assert confusion.shape == (10, 10) and confusion.sum() == report["samples"] == 359
    assert report["accuracy"] == pytest.approx(confusion.trace() / 359)
    assert len(report["per_class_accuracy"]) == 10
    assert report["confusion_png"] == str(tmp_path / "pics" / "confusion.png")
    assert (tmp_path / "pics" / "confusion.png").is_file()


# --------------------------------------------------------------------------- predict

@pytest.fixture(scope="module")
def clear_examples(trained):
    """Test digits the trained run classifies right with probability > 0.99."""
    from flowgrad.training import load_run

    images, labels = fg.data.load_digits("test")
    logits = predict_logits(load_run(trained[0]).model, images.reshape(-1, 64))
    p = np.exp(logits - logits.max(1, keepdims=True))
    p /= p.sum(1, keepdims=True)
    chosen = np.flatnonzero((p.argmax(1) == labels) & (p.max(1) > 0.99))[:4]
    assert len(chosen) == 4
    return images[chosen], labels[chosen]


def test_predict_reads_image_files_of_any_size(trained, clear_examples, tmp_path, capsys):
    out, _ = trained
    images, labels = clear_examples
    paths = [
        _digit_file(tmp_path / "a.png", images[0], 64),                       # dark ink
        _digit_file(tmp_path / "b.png", images[1], 333, dark_ink=False),      # light ink
        _digit_file(tmp_path / "c.jpg", images[2], 150, mode="RGB"),          # colour JPEG
        _digit_file(tmp_path / "d.bmp", images[3], 97),
    ]
    assert main(["predict", str(out), *paths]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == 4
    for line, path, label in zip(lines, paths, labels):
        assert line.startswith(f"{path}: {label}  p=")
        probs = [float(v) for v in re.findall(r"\d:(\d\.\d\d)", line)]
        assert len(probs) == 10 and sum(probs) == pytest.approx(1.0, abs=0.06)


def test_predict_json(trained, clear_examples, tmp_path, capsys):
    out, _ = trained
    images, labels = clear_examples
    path = _digit_file(tmp_path / "seven.png", images[0], 200)
    assert main(["predict", str(out), path, "--json"]) == 0
    (result,) = json.loads(capsys.readouterr().out)
    assert result["image"] == path and result["class"] == int(labels[0])
    assert result["name"] == str(labels[0])
    assert list(result["probabilities"]) == [str(k) for k in range(10)]
    assert sum(result["probabilities"].values()) == pytest.approx(1.0, abs=1e-4)
    assert result["probability"] == pytest.approx(result["probabilities"][str(labels[0])],
                                                  abs=1e-6)


# --------------------------------------------------------------------------- errors

@pytest.mark.parametrize("argv, message", [
    (["evaluate", "TMP/no-such-run"], "run folder TMP/no-such-run does not exist"),
    (["predict", "TMP/no-such-run", "x.png"], "does not exist"),
    (["evaluate", "TMP"], "is not a flowgrad run folder: no config.json"),
    (["train", "--dataset", "mnist", "--data-dir", "TMP"], "MNIST files not found in TMP"),
    (["train", "--dataset", "fashion-mnist", "--data-dir", "TMP"], "pass --download"),
    (["train", "--epochs", "0"], "epochs must be a positive integer, got 0"),
    (["train", "--batch-size", "-3"], "batch_size must be a positive integer"),
    (["train", "--lr", "-1"], "lr must be a positive finite number, got -1.0"),
    (["train", "--lr", "1e38", "--epochs", "1", "--out", "TMP/r"], "training diverged"),
])
def test_errors_are_one_line_exit_2(tmp_path, capsys, argv, message):
    argv = [a.replace("TMP", str(tmp_path)) for a in argv]
    assert main(argv) == 2
    err = _one_error_line(capsys)
    assert err.startswith(f"flowgrad {argv[0]}: error: ")
    assert message.replace("TMP", str(tmp_path)) in err


def test_out_that_is_a_file(tmp_path, capsys):
    (tmp_path / "taken").write_text("x")
    assert main(["train", "--epochs", "1", "--out", str(tmp_path / "taken")]) == 2
    assert "is not a folder" in _one_error_line(capsys)


def test_bad_optimizer_is_an_argparse_error(capsys):
    assert main(["train", "--optimizer", "lbfgs"]) == 2
    err = capsys.readouterr().err
    assert "invalid choice: 'lbfgs'" in err and "Traceback" not in err


def test_unreadable_and_blank_images(trained, tmp_path, capsys):
    out, _ = trained
    (tmp_path / "bad.png").write_bytes(b"definitely not a PNG")
    assert main(["predict", str(out), str(tmp_path / "bad.png")]) == 2
    assert f"cannot read image {tmp_path / 'bad.png'}" in _one_error_line(capsys)
    assert main(["predict", str(out), str(tmp_path / "missing.png")]) == 2
    assert "does not exist" in _one_error_line(capsys)
    PIL.new("L", (40, 40), 255).save(tmp_path / "blank.png")
    assert main(["predict", str(out), str(tmp_path / "blank.png")]) == 2
    assert "no visible ink" in _one_error_line(capsys)


def test_corrupt_run_folder(trained, tmp_path, capsys):
    import shutil

    out, _ = trained
    broken = tmp_path / "broken"
    shutil.copytree(out, broken)
    data = (broken / "model.npz").read_bytes()
    (broken / "model.npz").write_bytes(data[: len(data) // 2])
    assert main(["evaluate", str(broken)]) == 2
    assert "corrupt" in _one_error_line(capsys)
    assert main(["predict", str(broken), "x.png"]) == 2
    assert "corrupt" in _one_error_line(capsys)
    (broken / "model.npz").unlink()
    assert main(["evaluate", str(broken)]) == 2
    assert "has no checkpoint model.npz" in _one_error_line(capsys)
    (broken / "config.json").write_text("[1, 2")
    assert main(["evaluate", str(broken)]) == 2
    assert "config.json is not valid JSON" in _one_error_line(capsys)


def test_download_failure_is_one_line(tmp_path, capsys, monkeypatch):
    import gzip

    mirror = tmp_path / "mirror"
    mirror.mkdir()
    (mirror / "train-images-idx3-ubyte.gz").write_bytes(gzip.compress(b"not MNIST"))
    monkeypatch.setenv("FLOWGRAD_MNIST_MIRROR", mirror.as_uri() + "/")
    assert main(["train", "--dataset", "mnist", "--data-dir", str(tmp_path / "data"),
                 "--download", "--no-progress"]) == 2
    err = _one_error_line(capsys)
    assert "cannot load MNIST" in err and "checksum mismatch" in err
    assert not list((tmp_path / "data").rglob("*.gz"))  # nothing unverified left behind
