"""Training the reference network end to end: data, model, optimizer, run folder.

The reference network is ``softmax(W2 · relu(W1 · x + b1) + b2)``; the softmax is folded into
the cross-entropy loss (fused and numerically stable), so the model outputs logits. A run
writes a folder with the checkpoint (``model.npz``), the configuration (``config.json``), the
metrics per epoch (``metrics.csv``) and a picture of the curves (``curves.png``).

Example:
    >>> from flowgrad.training import TrainConfig, train
    >>> result = train(TrainConfig(epochs=2, out="/tmp/fg-doc-run"), progress=False,
    ...                log=lambda line: None)  # doctest: +SKIP
    >>> result.test_accuracy > 0.9  # doctest: +SKIP
    True
"""

from __future__ import annotations

import csv
import io
import json
import math
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

import flowgrad as fg
from flowgrad import nn, optim
from flowgrad.serialize import atomic_write

DATASETS = ("digits", "mnist", "fashion-mnist")
OPTIMIZERS = ("sgd", "momentum", "nesterov", "adagrad", "rmsprop", "adam", "adamw")
# Learning rates that train the reference network well on digits with each optimizer.
DEFAULT_LR = {"sgd": 0.1, "momentum": 0.02, "nesterov": 0.02, "adagrad": 0.05,
              "rmsprop": 0.001, "adam": 0.001, "adamw": 0.001}
CHECKPOINT, CONFIG, METRICS, CURVES = "model.npz", "config.json", "metrics.csv", "curves.png"


class DataUnavailable(Exception):
    """The dataset's files are missing or unreadable; the message says what to do."""


@dataclass
class TrainConfig:
    """What ``flowgrad train`` runs; every field is a command-line option."""

    dataset: str = "digits"
    data_dir: str | None = None
    download: bool = False
    hidden: int = 128
    epochs: int = 30
    batch_size: int = 32
    lr: float | None = None
    optimizer: str = "sgd"
    seed: int = 0
    out: str | None = None

    def __post_init__(self) -> None:
        # Paths may come as Path objects; the config is written as JSON.
        self.out = None if self.out is None else str(self.out)
        self.data_dir = None if self.data_dir is None else str(self.data_dir)
        if self.dataset not in DATASETS:
            raise ValueError(f"unknown dataset {self.dataset!r}; choose from {', '.join(DATASETS)}")
        if self.optimizer not in OPTIMIZERS:
            raise ValueError(f"unknown optimizer {self.optimizer!r}; choose from "
                             f"{', '.join(OPTIMIZERS)}")
        for name in ("hidden", "epochs", "batch_size"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name.replace('_', '-')} must be at least 1, "
                                 f"got {getattr(self, name)}")
        if self.lr is None:
            self.lr = DEFAULT_LR[self.optimizer]
        if not (self.lr > 0 and math.isfinite(self.lr)):
            raise ValueError(f"lr must be a positive number, got {self.lr}")


@dataclass
class Dataset:
    """Flattened float32 inputs and int64 labels, split into train and test."""

    name: str
    x_train: np.ndarray
    y_train: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray
    image_shape: tuple[int, int]
    classes: int = 10


@dataclass
class RunResult:
    run_dir: Path
    metrics: list[dict] = field(default_factory=list)

    @property
    def test_accuracy(self) -> float:
        return self.metrics[-1]["test_accuracy"]


def load_dataset(name: str, data_dir: str | None = None, download: bool = False) -> Dataset:
    """The train and test split of a dataset, inputs flattened to ``(N, pixels)``.

    Raises:
        DataUnavailable: the files are missing (without ``download``) or malformed.
    """
    from flowgrad import data

    if name == "digits":
        (xtr, ytr), (xte, yte) = data.load_digits("train"), data.load_digits("test")
    else:
        loader = data.load_mnist if name == "mnist" else data.load_fashion_mnist
        try:
            xtr, ytr = loader(data_dir, train=True, download=download)
            xte, yte = loader(data_dir, train=False, download=download)
        except FileNotFoundError:
            where = data_dir or data.cache_dir()
            raise DataUnavailable(f"{name} IDX files not found in {where} (nor in its "
                                  f"torchvision layout); pass --download to fetch them or "
                                  f"--data-dir to point at them") from None
        except (ValueError, OSError) as exc:
            raise DataUnavailable(f"cannot read {name}: {str(exc).splitlines()[0]}") from None
    shape = tuple(xtr.shape[1:])
    return Dataset(name, xtr.reshape(len(xtr), -1), ytr, xte.reshape(len(xte), -1), yte,
                   shape)


def build_reference_model(in_features: int, hidden: int, classes: int) -> nn.Sequential:
    """``Linear(in, hidden) → ReLU → Linear(hidden, classes)``: the logits of the reference
    network ``softmax(W2 · relu(W1 · x + b1) + b2)``."""
    return nn.Sequential(nn.Linear(in_features, hidden), nn.ReLU(),
                         nn.Linear(hidden, classes))


def make_optimizer(name: str, params: Sequence, lr: float) -> optim.Optimizer:
    """The optimizer called ``name`` on the command line."""
    if name == "sgd":
        return optim.SGD(params, lr=lr)
    if name in ("momentum", "nesterov"):
        return optim.SGD(params, lr=lr, momentum=0.9, nesterov=name == "nesterov")
    return {"adagrad": optim.Adagrad, "rmsprop": optim.RMSprop, "adam": optim.Adam,
            "adamw": optim.AdamW}[name](params, lr=lr)


@fg.no_grad()
def predict_logits(model: nn.Module, x: np.ndarray, batch_size: int = 2048) -> np.ndarray:
    """The model's logits for ``x``, computed in large batches without recording a graph."""
    model.eval()
    parts = [model(fg.tensor(x[i:i + batch_size])).numpy() for i in range(0, len(x), batch_size)]
    return np.concatenate(parts) if parts else np.zeros((0, 10), np.float32)


def accuracy(logits: np.ndarray, labels: np.ndarray) -> float:
    return float((logits.argmax(axis=1) == labels).mean()) if len(labels) else float("nan")


def _progress(iterable, total: int, desc: str, enabled: bool):
    if not enabled:
        return iterable
    try:
        from tqdm import tqdm
    except ImportError:
        return iterable
    return tqdm(iterable, total=total, desc=desc, leave=False, unit="batch", file=sys.stderr,
                dynamic_ncols=True)


def _default_run_dir(dataset: str) -> Path:
    stamp = time.strftime("%Y%m%d-%H%M%S")
    path = Path("runs") / f"{dataset}-{stamp}"
    n = 1
    while path.exists():
        n += 1
        path = Path("runs") / f"{dataset}-{stamp}-{n}"
    return path


def train(config: TrainConfig, progress: bool | None = None,
          log: Callable[[str], Any] = print) -> RunResult:
    """Train the reference network as ``config`` says and write the run folder.

    Args:
        config: the run's settings.
        progress: show a progress bar per epoch (default: when stderr is a terminal).
        log: where the per-epoch lines go.

    Returns:
        The run folder and the metrics of every epoch.
    """
    if progress is None:
        progress = sys.stderr.isatty()
    data = load_dataset(config.dataset, config.data_dir, config.download)
    run_dir = Path(config.out) if config.out else _default_run_dir(config.dataset)
    run_dir.mkdir(parents=True, exist_ok=True)

    fg.manual_seed(config.seed)
    model = build_reference_model(data.x_train.shape[1], config.hidden, data.classes)
    optimizer = make_optimizer(config.optimizer, model.parameters(), config.lr)
    loss_fn = nn.CrossEntropyLoss()
    loader = fg.data.DataLoader(fg.data.TensorDataset(data.x_train, data.y_train),
                                batch_size=config.batch_size, shuffle=True, seed=config.seed)
    log(f"training {config.hidden}-unit reference network on {data.name}: "
        f"{len(data.x_train)} train / {len(data.x_test)} test samples, "
        f"{config.optimizer} lr={config.lr:g}, batch {config.batch_size}, "
        f"{config.epochs} epochs -> {run_dir}")
    result = RunResult(run_dir)
    width = len(str(config.epochs))
    for epoch in range(1, config.epochs + 1):
        start = time.perf_counter()
        model.train()
        total_loss, correct, seen = 0.0, 0, 0
        batches = _progress(loader, len(loader), f"epoch {epoch}/{config.epochs}", progress)
        for xb, yb in batches:
            logits = model(xb)
            loss = loss_fn(logits, yb)
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            n = len(yb)
            total_loss += loss.item() * n
            correct += int((logits.data.argmax(axis=1) == yb.data).sum())
            seen += n
        if not math.isfinite(total_loss):
            raise FloatingPointError(f"the loss became {total_loss} in epoch {epoch}; "
                                     f"try a smaller --lr than {config.lr:g}")
        test_acc = accuracy(predict_logits(model, data.x_test), data.y_test)
        seconds = time.perf_counter() - start
        row = {"epoch": epoch, "train_loss": total_loss / seen, "train_accuracy": correct / seen,
               "test_accuracy": test_acc, "seconds": seconds}
        result.metrics.append(row)
        log(f"epoch {epoch:>{width}}/{config.epochs}  loss {row['train_loss']:.4f}  "
            f"train acc {100 * row['train_accuracy']:5.1f}%  test acc {100 * test_acc:5.1f}%  "
            f"{seconds:.2f}s")

    fg.save({"model": model.state_dict(), "optimizer": optimizer.state_dict()},
            run_dir / CHECKPOINT)
    meta = {**asdict(config), "flowgrad_version": fg.__version__,
            "in_features": int(data.x_train.shape[1]), "classes": data.classes,
            "image_shape": list(data.image_shape), "train_samples": len(data.x_train),
            "test_samples": len(data.x_test)}
    with atomic_write(run_dir / CONFIG, binary=False) as fh:
        json.dump(meta, fh, indent=2)
    _write_metrics(result.metrics, run_dir / METRICS)
    try:
        plot_curves(result.metrics, run_dir / CURVES, title=f"{data.name}: {config.optimizer}, "
                    f"lr {config.lr:g}, hidden {config.hidden}")
    except ImportError:
        log("matplotlib is not installed: skipped curves.png (pip install 'flowgrad[train]')")
    return result


def _write_metrics(metrics: list[dict], path: Path) -> None:
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=list(metrics[0]))
    writer.writeheader()
    writer.writerows(metrics)
    with atomic_write(path, binary=False) as fh:
        fh.write(buffer.getvalue())


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _save_figure(fig, path: Path) -> None:
    buffer = io.BytesIO()
    fig.savefig(buffer, format=path.suffix.lstrip(".") or "png", dpi=110, bbox_inches="tight")
    with atomic_write(path) as fh:
        fh.write(buffer.getvalue())


def plot_curves(metrics: list[dict], path: str | Path, title: str = "") -> Path:
    """Loss and accuracy per epoch, side by side, saved to ``path``."""
    plt = _pyplot()
    epochs = [m["epoch"] for m in metrics]
    fig, (ax_loss, ax_acc) = plt.subplots(1, 2, figsize=(10, 4))
    ax_loss.plot(epochs, [m["train_loss"] for m in metrics], marker=".", label="train loss")
    ax_loss.set(xlabel="epoch", ylabel="cross-entropy loss", title="training loss")
    ax_loss.set_yscale("log")
    ax_acc.plot(epochs, [100 * m["train_accuracy"] for m in metrics], marker=".",
                label="train accuracy")
    ax_acc.plot(epochs, [100 * m["test_accuracy"] for m in metrics], marker=".",
                label="test accuracy")
    ax_acc.set(xlabel="epoch", ylabel="accuracy (%)", title="accuracy")
    for ax in (ax_loss, ax_acc):
        ax.grid(alpha=0.3)
        ax.legend()
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    _save_figure(fig, Path(path))
    plt.close(fig)
    return Path(path)


class RunError(Exception):
    """A run folder that is missing, incomplete or corrupt."""


def load_run(run_dir: str | Path) -> tuple[dict, nn.Sequential]:
    """The configuration and the trained model of a run folder."""
    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        raise RunError(f"run folder {run_dir} does not exist (flowgrad train writes one)")
    try:
        config = json.loads((run_dir / CONFIG).read_text())
        state = fg.load(run_dir / CHECKPOINT)
    except FileNotFoundError as exc:
        raise RunError(f"{run_dir} is not a complete run folder: missing "
                       f"{Path(exc.filename).name}") from None
    except (ValueError, OSError) as exc:
        raise RunError(f"cannot read the run in {run_dir}: {str(exc).splitlines()[0]}") from None
    try:
        model = build_reference_model(config["in_features"], config["hidden"],
                                      config["classes"])
        model.load_state_dict(state["model"])
    except (KeyError, TypeError, RuntimeError, ValueError) as exc:
        raise RunError(f"the checkpoint in {run_dir} does not match its config: {exc}") from None
    return config, model


def confusion_matrix(labels: np.ndarray, predictions: np.ndarray, classes: int) -> np.ndarray:
    """Counts ``[true class, predicted class]``."""
    matrix = np.zeros((classes, classes), dtype=np.int64)
    np.add.at(matrix, (labels, predictions), 1)
    return matrix


def evaluate(run_dir: str | Path, out: str | Path | None = None) -> dict:
    """Test accuracy, per-class accuracy and a confusion-matrix picture of a run.

    Returns:
        ``{"accuracy", "per_class", "confusion", "picture"}``.
    """
    config, model = load_run(run_dir)
    try:
        data = load_dataset(config["dataset"], config.get("data_dir"), False)
    except DataUnavailable as exc:
        raise RunError(str(exc)) from None
    logits = predict_logits(model, data.x_test)
    predictions = logits.argmax(axis=1)
    matrix = confusion_matrix(data.y_test, predictions, config["classes"])
    per_class = (np.diag(matrix) / np.maximum(matrix.sum(axis=1), 1)).tolist()
    picture = Path(out) if out else Path(run_dir) / "confusion.png"
    plot_confusion(matrix, picture, title=f"{config['dataset']} test set: accuracy "
                   f"{100 * accuracy(logits, data.y_test):.2f}%")
    return {"accuracy": accuracy(logits, data.y_test), "per_class": per_class,
            "confusion": matrix, "picture": picture}


def plot_confusion(matrix: np.ndarray, path: str | Path, title: str = "") -> Path:
    """The confusion matrix as an annotated heat map."""
    plt = _pyplot()
    n = matrix.shape[0]
    fig, ax = plt.subplots(figsize=(6.5, 5.5))
    image = ax.imshow(matrix, cmap="Blues")
    fig.colorbar(image, ax=ax, label="samples")
    threshold = matrix.max() / 2 if matrix.size else 0
    for i in range(n):
        for j in range(n):
            if matrix[i, j]:
                ax.text(j, i, str(matrix[i, j]), ha="center", va="center", fontsize=8,
                        color="white" if matrix[i, j] > threshold else "black")
    ax.set(xticks=range(n), yticks=range(n), xlabel="predicted class", ylabel="true class",
           title=title or "confusion matrix")
    fig.tight_layout()
    _save_figure(fig, Path(path))
    plt.close(fig)
    return Path(path)


def preprocess_image(path: str | Path, image_shape: Sequence[int]) -> np.ndarray:
    """An image file of a handwritten digit as the model's input row, in [0, 1].

    Grayscale; inverted when the background is light (the training digits are light ink
    on black); cropped to the ink and centred on a square. Then shaped as the training data
    was made: for the 8x8 digits, a 32x32 bitmap whose 4x4 blocks are counted (the UCI
    recipe); for 28x28 MNIST, the ink scaled into a 20x20 box centred in 28x28.
    """
    try:
        from PIL import Image, UnidentifiedImageError
    except ImportError:
        raise RunError("reading images needs Pillow: pip install 'flowgrad[train]'") from None
    try:
        with Image.open(path) as img:
            gray = np.asarray(img.convert("L"), dtype=np.float32) / 255.0
    except FileNotFoundError:
        raise RunError(f"image {path} does not exist") from None
    except (UnidentifiedImageError, OSError) as exc:
        raise RunError(f"cannot read image {path}: {exc}") from None
    border = np.concatenate([gray[0], gray[-1], gray[:, 0], gray[:, -1]])
    if np.median(border) > 0.5:
        gray = 1.0 - gray
    if gray.max() > 0:
        rows, cols = np.where(gray > 0.25 * gray.max())
        gray = gray[rows.min():rows.max() + 1, cols.min():cols.max() + 1]
        gray = gray / gray.max()
    side = max(gray.shape)
    square = np.zeros((side, side), dtype=np.float32)
    top, left = (side - gray.shape[0]) // 2, (side - gray.shape[1]) // 2
    square[top:top + gray.shape[0], left:left + gray.shape[1]] = gray

    def resized(array: np.ndarray, size: int) -> np.ndarray:
        img = Image.fromarray((array * 255).astype(np.uint8))
        return np.asarray(img.resize((size, size), Image.Resampling.LANCZOS),
                          dtype=np.float32) / 255.0

    height, width = int(image_shape[0]), int(image_shape[1])
    if (height, width) == (8, 8):
        bitmap = resized(square, 32) > 0.5
        return bitmap.reshape(8, 4, 8, 4).mean(axis=(1, 3)).astype(np.float32).reshape(-1)
    inner = round(min(height, width) * 20 / 28)
    canvas = np.zeros((height, width), dtype=np.float32)
    top, left = (height - inner) // 2, (width - inner) // 2
    canvas[top:top + inner, left:left + inner] = resized(square, inner)
    return canvas.reshape(-1)


def predict(run_dir: str | Path, images: Sequence[str | Path]) -> list[dict]:
    """Class and softmax probabilities for each image file, with a trained run."""
    config, model = load_run(run_dir)
    rows = np.stack([preprocess_image(p, config["image_shape"]) for p in images])
    with fg.no_grad():
        model.eval()
        probs = fg.softmax(model(fg.tensor(rows)), dim=1).numpy()
    return [{"image": str(p), "class": int(pr.argmax()), "probabilities": pr.tolist()}
            for p, pr in zip(images, probs)]
