"""flowgrad.training: the reference network, training runs, run folders, evaluation, images."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import numpy as np
import pytest
from conftest import PNG_MAGIC

import flowgrad as fg
from flowgrad import training
from flowgrad.training import (
    DataUnavailable,
    ImageError,
    RunError,
    TrainConfig,
    build_reference_model,
    confusion_matrix,
    evaluate,
    load_run,
    make_optimizer,
    predict,
    preprocess_image,
    read_metrics,
    rundir,
    train,
)

PIL = pytest.importorskip("PIL.Image")
pytest.importorskip("matplotlib")


@pytest.fixture(scope="module")
def short_run(tmp_path_factory):
    """One 5-epoch digits run shared by the read-only tests below."""
    out = tmp_path_factory.mktemp("runs") / "digits"
    return train(TrainConfig(epochs=5, out=out), progress=False)


def _upscaled(pixels: np.ndarray, size: int = 120, dark_ink: bool = True):
    values = (1.0 - pixels) if dark_ink else pixels
    return PIL.fromarray((values * 255).astype(np.uint8)).resize((size, size), PIL.BILINEAR)


# --------------------------------------------------------------------------- model, config

def test_reference_model_is_softmax_of_two_layers():
    fg.manual_seed(0)
    model = build_reference_model(6, 5, 3)
    assert [n for n, _ in model.named_parameters()] == ["0.weight", "0.bias", "2.weight",
                                                        "2.bias"]
    x = np.random.default_rng(1).standard_normal((4, 6)).astype(np.float32)
    w1, b1, w2, b2 = (p.numpy() for p in model.parameters())
    expected = np.maximum(x @ w1.T + b1, 0) @ w2.T + b2
    np.testing.assert_allclose(model(fg.tensor(x)).numpy(), expected, rtol=1e-5, atol=1e-6)
    # PyTorch's Linear initialisation: U(-1/sqrt(fan_in), 1/sqrt(fan_in)).
    assert np.abs(w1).max() <= 1 / np.sqrt(6) and np.abs(w2).max() <= 1 / np.sqrt(5)


def test_config_validation_names_the_option():
    with pytest.raises(ValueError, match="epochs must be a positive integer"):
        TrainConfig(epochs=0)
    with pytest.raises(ValueError, match="lr must be a positive finite number"):
        TrainConfig(lr=float("nan"))
    with pytest.raises(ValueError, match="unknown optimizer 'lbfgs'"):
        TrainConfig(optimizer="lbfgs")
    with pytest.raises(ValueError, match="unknown dataset"):
        TrainConfig(dataset="cifar")
    with pytest.raises(ValueError, match="unknown schedule"):
        TrainConfig(schedule="linear")
    config = TrainConfig(out=Path("a") / "b", data_dir=Path("d"))
    assert config.out == str(Path("a") / "b") and config.data_dir == "d"
    assert TrainConfig(optimizer="adam").learning_rate == training.DEFAULT_LR["adam"]
    assert TrainConfig(dataset="mnist").learning_rate == training.DEFAULT_LR_28X28["sgd"] < \
        TrainConfig().learning_rate
    assert TrainConfig(optimizer="adam", lr=0.5).learning_rate == 0.5


@pytest.mark.parametrize("name, kind, extra", [
    ("sgd", "SGD", {"momentum": 0, "nesterov": False}),
    ("momentum", "SGD", {"momentum": 0.9, "nesterov": False}),
    ("nesterov", "SGD", {"momentum": 0.9, "nesterov": True}),
    ("adagrad", "Adagrad", {}),
    ("rmsprop", "RMSprop", {}),
    ("adam", "Adam", {}),
    ("adamw", "AdamW", {"weight_decay": 0.01}),
])
def test_make_optimizer(name, kind, extra):
    opt = make_optimizer(name, build_reference_model(4, 3, 2).parameters())
    group = opt.param_groups[0]
    assert type(opt).__name__ == kind
    assert group["lr"] == training.DEFAULT_LR[name]
    for key, value in extra.items():
        assert group[key] == value


# --------------------------------------------------------------------------- training

def test_short_digits_run_exceeds_90_percent(short_run):
    m = short_run.metrics
    assert [e.epoch for e in m] == [1, 2, 3, 4, 5]
    assert m[-1].test_accuracy > 0.90
    assert m[-1].train_loss < m[0].train_loss
    assert short_run.train_samples == 1438 and short_run.test_samples == 359
    # Test accuracy is a count out of 359, not an estimate.
    assert round(m[-1].test_accuracy * 359, 6) == round(m[-1].test_accuracy * 359)


def test_run_folder_contents(short_run):
    run_dir = short_run.run_dir
    for name in ("model.npz", "config.json", "metrics.csv", "curves.png"):
        assert (run_dir / name).stat().st_size > 0
    assert (run_dir / "curves.png").read_bytes()[:8] == PNG_MAGIC
    info = json.loads((run_dir / "config.json").read_text())
    assert info["dataset"] == "digits" and info["epochs"] == 5 and info["hidden"] == 128
    assert info["lr"] == training.DEFAULT_LR["sgd"] and info["optimizer"] == "sgd"
    assert info["data"]["train_shape"] == [1438, 8, 8]
    assert info["data"]["test_shape"] == [359, 8, 8]
    assert info["flowgrad_version"] == fg.__version__
    assert info["model"]["parameters"] == 64 * 128 + 128 + 128 * 10 + 10
    rows = read_metrics(run_dir)
    assert len(rows) == 5
    for row, m in zip(rows, short_run.metrics):
        assert row.test_accuracy == pytest.approx(m.test_accuracy, abs=1e-6)
        assert row.train_loss == pytest.approx(m.train_loss, abs=1e-6)
    state = fg.load(run_dir / "model.npz")
    assert set(state) == {"model", "optimizer", "epoch"} and state["epoch"] == 5


def test_checkpoint_restores_the_trained_model(short_run):
    run = load_run(short_run.run_dir)
    x = fg.data.load_digits("test")[0].reshape(-1, 64)
    np.testing.assert_array_equal(training.predict_logits(run.model, x),
                                  training.predict_logits(short_run.model, x))
    assert run.config.epochs == 5 and run.image_shape == (8, 8)


def test_same_seed_same_metrics(tmp_path):
    def metrics(seed, name):
        result = train(TrainConfig(epochs=2, seed=seed, out=tmp_path / name), progress=False,
                       plot=False)
        return [dataclasses.replace(m, seconds=0.0) for m in result.metrics], result.model

    (a, model_a), (b, model_b) = metrics(3, "a"), metrics(3, "b")
    assert a == b
    for p, q in zip(model_a.parameters(), model_b.parameters()):
        np.testing.assert_array_equal(p.numpy(), q.numpy())
    c, _ = metrics(4, "c")
    assert c != a
    assert (tmp_path / "a" / "metrics.csv").read_text().splitlines()[1].split(",")[:5] == \
        (tmp_path / "b" / "metrics.csv").read_text().splitlines()[1].split(",")[:5]


def test_log_lines_and_constant_schedule(tmp_path):
    lines: list[str] = []
    result = train(TrainConfig(epochs=2, hidden=16, optimizer="adam", schedule="constant",
                               out=tmp_path / "r"), progress=False, log=lines.append,
                   plot=False)
    assert "with adam lr 0.003 (constant)" in lines[0]
    assert lines[1] == f"run folder: {tmp_path / 'r'}"
    assert lines[2].startswith("epoch 1/2  train loss ") and "test acc" in lines[2]
    assert len(lines) == 4 and "curves" not in result.files
    assert result.optimizer.param_groups[0]["lr"] == 0.003  # constant: never decayed


def test_cosine_schedule_decays_to_zero(tmp_path):
    result = train(TrainConfig(epochs=2, hidden=8, out=tmp_path / "r"), progress=False,
                   plot=False)
    assert result.optimizer.param_groups[0]["lr"] == pytest.approx(0.0, abs=1e-12)


def test_divergence_is_reported(tmp_path):
    with pytest.raises(FloatingPointError, match="smaller learning rate"):
        train(TrainConfig(epochs=1, lr=1e38, out=tmp_path / "r"), progress=False, plot=False)


def test_default_run_folder_is_timestamped(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    first = rundir._make_run_dir(None, "digits")
    second = rundir._make_run_dir(None, "digits")
    assert first.parent == Path("runs") and first.name.startswith("digits-")
    assert second != first and second.is_dir()


def test_missing_mnist_says_how_to_get_it(tmp_path):
    with pytest.raises(DataUnavailable, match="--download"):
        training.load_dataset("mnist", tmp_path)


def _write_fake_mnist(root: Path, n_train: int = 300, n_test: int = 100) -> None:
    # The digits drawn into 28x28 frames the way MNIST was made: an MNIST stand-in.
    x, y = fg.data.load_digits()
    frames = np.stack([preprocess_image(_upscaled(a, 40), "mnist")
                       for a in x[:n_train + n_test]])
    pixels = np.round(frames * 255).astype(np.uint8)
    labels = y[:n_train + n_test].astype(np.uint8)
    root.mkdir(parents=True, exist_ok=True)
    fg.data.write_idx(pixels[:n_train], root / "train-images-idx3-ubyte.gz")
    fg.data.write_idx(labels[:n_train], root / "train-labels-idx1-ubyte.gz")
    fg.data.write_idx(pixels[n_train:], root / "t10k-images-idx3-ubyte")
    fg.data.write_idx(labels[n_train:], root / "t10k-labels-idx1-ubyte")


def test_mnist_run_from_idx_files(tmp_path):
    _write_fake_mnist(tmp_path / "data")
    result = train(TrainConfig(dataset="mnist", data_dir=tmp_path / "data", epochs=10,
                               hidden=32, out=tmp_path / "run"), progress=False, plot=False)
    assert result.train_samples == 300 and result.test_samples == 100
    assert result.test_accuracy > 0.7
    run = load_run(tmp_path / "run")
    assert run.image_shape == (28, 28) and run.model[0].weight.shape == (32, 784)
    (pred,) = predict(run, [_upscaled(fg.data.load_digits()[0][0], 90)])
    assert pred.input.shape == (28, 28) and pred.probabilities.shape == (10,)


def test_benchmark_epoch_small():
    r = training.benchmark_epoch(n_samples=512, in_features=20, hidden=8, batch_size=128)
    assert r["batches"] == 4 and r["samples"] == 512
    assert r["samples_per_second"] == pytest.approx(512 / r["seconds"])


# --------------------------------------------------------------------------- evaluate

def test_confusion_matrix_counts():
    m = confusion_matrix(np.array([0, 1, 1, 2, 2]), np.array([0, 1, 2, 2, 0]), 3)
    assert m.tolist() == [[1, 0, 0], [0, 1, 1], [1, 0, 1]]


def test_evaluate_agrees_with_training(short_run, tmp_path):
    result = evaluate(short_run.run_dir, out=tmp_path / "pictures")
    assert result.accuracy == pytest.approx(short_run.test_accuracy, abs=1e-12)
    assert result.samples == 359 and result.confusion.sum() == 359
    assert result.confusion.trace() == round(result.accuracy * 359)
    support = result.confusion.sum(axis=1)
    np.testing.assert_allclose(result.per_class_accuracy, np.diag(result.confusion) / support)
    assert result.loss == pytest.approx(short_run.metrics[-1].test_loss, rel=1e-6)
    assert result.confusion_path == tmp_path / "pictures" / "confusion.png"
    assert result.confusion_path.read_bytes()[:8] == PNG_MAGIC
    named = evaluate(short_run.run_dir, out=tmp_path / "c.png")
    assert named.confusion_path == tmp_path / "c.png" and (tmp_path / "c.png").is_file()


# --------------------------------------------------------------------------- run errors

def test_load_run_errors(short_run, tmp_path):
    with pytest.raises(RunError, match="does not exist"):
        load_run(tmp_path / "nothing")
    with pytest.raises(RunError, match="no config.json"):
        load_run(tmp_path)
    broken = tmp_path / "broken"
    broken.mkdir()
    (broken / "config.json").write_text("{not json")
    with pytest.raises(RunError, match="not valid JSON"):
        load_run(broken)
    (broken / "config.json").write_text((short_run.run_dir / "config.json").read_text())
    with pytest.raises(RunError, match="no checkpoint"):
        load_run(broken)
    data = (short_run.run_dir / "model.npz").read_bytes()
    (broken / "model.npz").write_bytes(data[: len(data) // 2])
    with pytest.raises(RunError, match="corrupt"):
        load_run(broken)
    info = json.loads((short_run.run_dir / "config.json").read_text())
    info["hidden"] = 7
    (broken / "config.json").write_text(json.dumps(info))
    (broken / "model.npz").write_bytes(data)
    with pytest.raises(RunError, match="does not fit"):
        load_run(broken)


# --------------------------------------------------------------------------- images

def test_preprocess_recovers_an_upscaled_digit():
    images, _ = fg.data.load_digits("test")
    for k in range(3):
        dark = preprocess_image(_upscaled(images[k]))
        light = preprocess_image(_upscaled(images[k], dark_ink=False))
        assert dark.shape == (8, 8) and dark.dtype == np.float32
        assert 0.0 <= dark.min() and dark.max() <= 1.0
        # The background is detected either way round.
        np.testing.assert_allclose(dark, light, atol=0.02)
        assert np.corrcoef(dark.ravel(), images[k].ravel())[0, 1] > 0.85


def test_preprocess_accepts_files_colour_and_transparency(tmp_path):
    digit = fg.data.load_digits("test")[0][0]
    gray = preprocess_image(_upscaled(digit))
    rgb = _upscaled(digit).convert("RGB")
    rgb.save(tmp_path / "d.jpg", quality=95)
    np.testing.assert_allclose(preprocess_image(tmp_path / "d.jpg"), gray, atol=0.1)
    # Black strokes on a transparent canvas: the opacity is the ink.
    rgba = PIL.new("RGBA", rgb.size, (0, 0, 0, 0))
    rgba.putalpha(_upscaled(digit, dark_ink=False))
    rgba.save(tmp_path / "d.png")
    np.testing.assert_allclose(preprocess_image(tmp_path / "d.png"), gray, atol=0.02)
    # 16-bit gray (converting it to 8 bits naively would clip it to white).
    deep = (1.0 - np.asarray(_upscaled(digit, dark_ink=False), np.float32) / 255) * 60000
    PIL.fromarray(deep.astype(np.uint16)).save(tmp_path / "d16.png")
    np.testing.assert_allclose(preprocess_image(tmp_path / "d16.png"), gray, atol=0.02)


def test_thin_strokes_are_thickened():
    canvas = PIL.new("L", (400, 400), 255)
    from PIL import ImageDraw

    ImageDraw.Draw(canvas).line([(100, 60), (300, 60), (170, 350)], fill=0, width=3)
    x = preprocess_image(canvas)
    # Shrunk as it is, a 3 px line on 400 px would leave no 8x8 pixel above 0.1.
    assert x.max() > 0.75 and (x > 0.5).sum() >= 6


def test_preprocess_mnist_centres_the_mass():
    digit = fg.data.load_digits("test")[0][3]
    frame = preprocess_image(_upscaled(digit, 200), "mnist")
    assert frame.shape == (28, 28) and 0 <= frame.min() and frame.max() <= 1
    ys, xs = np.indices(frame.shape)
    centre = [(ys * frame).sum() / frame.sum(), (xs * frame).sum() / frame.sum()]
    np.testing.assert_allclose(centre, [13.5, 13.5], atol=0.6)
    # MNIST's 4-pixel margin: the 20x20 box leaves the border rows empty.
    assert frame[:2].max() == 0 and frame[-2:].max() == 0
    assert preprocess_image(_upscaled(digit), "fashion-mnist").shape == (28, 28)


def test_image_errors(tmp_path):
    with pytest.raises(ImageError, match="does not exist"):
        preprocess_image(tmp_path / "missing.png")
    (tmp_path / "bad.png").write_bytes(b"not an image at all")
    with pytest.raises(ImageError, match="cannot read image"):
        preprocess_image(tmp_path / "bad.png")
    PIL.new("L", (50, 50), 200).save(tmp_path / "blank.png")
    with pytest.raises(ImageError, match="no visible ink"):
        preprocess_image(tmp_path / "blank.png")


def test_predict_classifies_clear_examples(short_run):
    images, labels = fg.data.load_digits("test")
    logits = training.predict_logits(short_run.model, images.reshape(-1, 64))
    probs = fg.softmax(fg.tensor(logits), dim=1).numpy()
    clear = np.flatnonzero((probs.argmax(1) == labels) & (probs.max(1) > 0.99))[:5]
    assert len(clear) == 5
    preds = predict(short_run.run_dir, [_upscaled(images[k], 100 + 37 * k) for k in clear])
    assert [p.label for p in preds] == labels[clear].tolist()
    for p in preds:
        assert p.probabilities.sum() == pytest.approx(1.0)
        assert p.name == str(p.label) and p.source.startswith("image ")
