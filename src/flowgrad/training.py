"""Train, evaluate and use the reference network ``softmax(W2 relu(W1 x + b1) + b2)``.

This is the library behind ``flowgrad train``, ``flowgrad evaluate`` and ``flowgrad
predict``. The network is :func:`build_reference_model`, a ``Linear -> ReLU -> Linear``
stack whose softmax is folded into the cross-entropy loss (the fused, stable
``log_softmax``), so the model outputs logits and :func:`predict` applies the softmax.

A training run writes a *run folder*:

* ``model.npz``   the checkpoint, ``fg.save({"model": ..., "optimizer": ..., "epoch": n})``,
  rewritten after every epoch, so an interrupted run keeps its last finished epoch;
* ``config.json`` every option (with the learning rate actually used), the dataset's shapes
  and class names, the architecture and the versions of flowgrad, NumPy and Python;
* ``metrics.csv`` one row per epoch: train loss and accuracy (averaged over the epoch's
  batches while training), test loss and accuracy (after the epoch), seconds;
* ``curves.png``  loss and accuracy against epoch.

Reproducibility: ``fg.manual_seed(seed)`` fixes the initial weights and the DataLoader gets
the same ``seed`` for its shuffling, so the same configuration on the same machine gives the
same metrics, bit for bit (only the ``seconds`` column differs).

Example:
    >>> from flowgrad.training import TrainConfig, train
    >>> result = train(TrainConfig(epochs=5, out="runs/quick"), progress=False)  # doctest: +SKIP
    >>> round(result.test_accuracy, 2)  # doctest: +SKIP
    0.96
"""

from __future__ import annotations

import csv
import dataclasses
import io
import json
import math
import os
import platform
import sys
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import numpy as np

import flowgrad as fg
from flowgrad import _atomic
from flowgrad.optim import catalogue
from flowgrad.viz import figures

DATASETS: tuple[str, ...] = ("digits", "mnist", "fashion-mnist")
#: The optimizer names (:data:`flowgrad.optim.catalogue.OPTIMIZERS`).
OPTIMIZERS: tuple[str, ...] = tuple(catalogue.OPTIMIZERS)
SCHEDULES: tuple[str, ...] = ("constant", "cosine")

#: The learning rate each optimizer gets on the digits when none is given. Tuned on the
#: defaults (hidden 128, batch 32, 30 epochs, cosine decay) over ten seeds; momentum's 0.05
#: is sgd's 0.5 over the momentum sum's gain 1 / (1 - 0.9).
DEFAULT_LR: dict[str, float] = {
    "sgd": 0.5,
    "momentum": 0.05,
    "nesterov": 0.05,
    "adagrad": 0.05,
    "rmsprop": 0.003,
    "adam": 0.003,
    "adamw": 0.003,
}

#: The same for MNIST and Fashion-MNIST. Their 784 inputs carry about 8x the squared norm
#: of the digits' 64, which scales the first layer's steps, so the rates are the usual
#: MNIST ones, 3-5x smaller (0.5 diverges for small hidden layers).
DEFAULT_LR_28X28: dict[str, float] = {
    "sgd": 0.1,
    "momentum": 0.01,
    "nesterov": 0.01,
    "adagrad": 0.02,
    "rmsprop": 0.001,
    "adam": 0.001,
    "adamw": 0.001,
}


def default_lr(optimizer: str, dataset: str = "digits") -> float:
    """The learning rate ``flowgrad train`` uses for ``optimizer`` on ``dataset``."""
    return (DEFAULT_LR if dataset == "digits" else DEFAULT_LR_28X28)[optimizer]

CHECKPOINT_FILE = "model.npz"
CONFIG_FILE = "config.json"
METRICS_FILE = "metrics.csv"
CURVES_FILE = "curves.png"
CONFUSION_FILE = "confusion.png"

METRIC_COLUMNS: tuple[str, ...] = ("epoch", "train_loss", "train_accuracy", "test_loss",
                                   "test_accuracy", "seconds")

# Large batches for inference: one matmul per few thousand samples amortises the graph-free
# dispatch while keeping the (batch, hidden) activations small.
_EVAL_BATCH = 4096
_DIGIT_CLASSES = tuple(str(k) for k in range(10))


# --------------------------------------------------------------------------- errors

class DataUnavailable(OSError):
    """A dataset's files are missing, unreadable or failed to download; says what to do."""


class RunError(ValueError):
    """A run folder that is missing, incomplete or corrupt; the message names the file."""


class ImageError(ValueError):
    """An image that cannot be read, or shows no digit (no ink); names the file."""


# --------------------------------------------------------------------------- configuration

@dataclass
class TrainConfig:
    """Everything that defines a training run (the options of ``flowgrad train``).

    Attributes:
        dataset: ``"digits"`` (embedded 8x8 digits, fixed held-out split), ``"mnist"`` or
            ``"fashion-mnist"`` (28x28, their standard train/test files).
        data_dir: where MNIST-style files are looked for and downloaded to; ``None`` means
            the cache folder (``$FLOWGRAD_CACHE`` or ``~/.cache/flowgrad``). Unused for
            digits.
        download: fetch missing MNIST-style files (verified) into ``data_dir``.
        hidden: width of the hidden layer.
        epochs: passes over the training set.
        batch_size: samples per gradient step.
        lr: learning rate; ``None`` means ``default_lr(optimizer, dataset)``
            (:data:`DEFAULT_LR` for digits, :data:`DEFAULT_LR_28X28` for the others).
        optimizer: one of :data:`OPTIMIZERS`; ``"momentum"`` is SGD with momentum 0.9 and
            ``"nesterov"`` SGD with Nesterov momentum 0.9.
        schedule: ``"cosine"`` anneals the learning rate to 0 over the epochs
            (``CosineAnnealingLR``, stepped once per epoch); ``"constant"`` keeps it.
        seed: seeds the initial weights (``fg.manual_seed``) and the shuffling.
        out: the run folder; ``None`` means ``runs/<dataset>-<YYYYmmdd-HHMMSS>``.
    """

    dataset: str = "digits"
    data_dir: str | None = None
    download: bool = False
    hidden: int = 128
    epochs: int = 30
    batch_size: int = 32
    lr: float | None = None
    optimizer: str = "sgd"
    schedule: str = "cosine"
    seed: int = 0
    out: str | None = None

    def __post_init__(self) -> None:
        # Paths may come as Path objects; the config is written as JSON.
        self.out = None if self.out is None else str(self.out)
        self.data_dir = None if self.data_dir is None else str(self.data_dir)
        self.validate()

    def validate(self) -> TrainConfig:
        """Check every field; returns ``self``.

        Raises:
            ValueError: an unknown dataset or optimizer, a non-positive size, or a learning
                rate that is not a positive finite number; the message names the option.
        """
        if self.dataset not in DATASETS:
            raise ValueError(f"unknown dataset {self.dataset!r}; choose one of "
                             f"{', '.join(DATASETS)}")
        if self.optimizer not in OPTIMIZERS:
            raise ValueError(f"unknown optimizer {self.optimizer!r}; choose one of "
                             f"{', '.join(OPTIMIZERS)}")
        if self.schedule not in SCHEDULES:
            raise ValueError(f"unknown schedule {self.schedule!r}; choose one of "
                             f"{', '.join(SCHEDULES)}")
        for name in ("hidden", "epochs", "batch_size"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"{name} must be a positive integer, got {value!r}")
        if self.lr is not None and not (isinstance(self.lr, (int, float))
                                        and math.isfinite(self.lr) and self.lr > 0):
            raise ValueError(f"lr must be a positive finite number, got {self.lr!r}")
        if isinstance(self.seed, bool) or not isinstance(self.seed, int) or self.seed < 0:
            raise ValueError(f"seed must be a non-negative integer, got {self.seed!r}")
        return self

    @property
    def learning_rate(self) -> float:
        """The learning rate used: ``lr``, or :func:`default_lr` when ``lr`` is None."""
        return float(self.lr) if self.lr is not None else default_lr(self.optimizer,
                                                                      self.dataset)


@dataclass
class EpochMetrics:
    """One row of ``metrics.csv``."""

    epoch: int
    train_loss: float
    train_accuracy: float
    test_loss: float
    test_accuracy: float
    seconds: float


@dataclass
class RunResult:
    """What :func:`train` returns.

    Attributes:
        run_dir: the run folder.
        config: the configuration, with ``lr`` filled in and ``out`` set to ``run_dir``.
        metrics: one :class:`EpochMetrics` per epoch.
        seconds: wall time of the whole call (data loading, training, writing files).
        model: the trained network (in eval mode).
        optimizer: its optimizer, with the state it ended in.
        files: the files written, by kind (``"checkpoint"``, ``"config"``, ``"metrics"``,
            ``"curves"``).
        train_samples, test_samples: the dataset's sizes.
    """

    run_dir: Path
    config: TrainConfig
    metrics: list[EpochMetrics]
    seconds: float
    model: Any
    optimizer: Any
    files: dict[str, Path] = field(default_factory=dict)
    train_samples: int = 0
    test_samples: int = 0

    @property
    def test_accuracy(self) -> float:
        """Test accuracy after the last epoch (a fraction in [0, 1])."""
        return self.metrics[-1].test_accuracy


@dataclass
class DatasetSplits:
    """A dataset ready for the reference network: flattened inputs in [0, 1].

    Attributes:
        name: one of :data:`DATASETS`.
        x_train, y_train, x_test, y_test: float32 ``(N, features)`` and int64 ``(N,)``.
        image_shape: ``(rows, cols)`` of one image (``features = rows * cols``).
        classes: the class names, index = label.
    """

    name: str
    x_train: np.ndarray
    y_train: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray
    image_shape: tuple[int, int]
    classes: tuple[str, ...]

    @property
    def in_features(self) -> int:
        return int(self.image_shape[0] * self.image_shape[1])


# --------------------------------------------------------------------------- building blocks

def build_reference_model(in_features: int, hidden: int, classes: int) -> Any:
    """The reference network ``softmax(W2 relu(W1 x + b1) + b2)`` as an ``fg.nn.Sequential``.

    The softmax is not a layer: the model returns logits and ``F.cross_entropy`` applies a
    fused, numerically stable log-softmax, whose gradient is ``softmax - onehot``.
    Weights are initialised as in PyTorch (``fg.nn.Linear``), from flowgrad's global
    generator, so call ``fg.manual_seed`` first for reproducible weights.

    Args:
        in_features: inputs per sample (64 for 8x8 digits, 784 for MNIST).
        hidden: width of the hidden layer.
        classes: number of classes (outputs).

    Returns:
        ``Sequential(Linear(in_features, hidden), ReLU(), Linear(hidden, classes))``.

    Example:
        >>> import flowgrad as fg
        >>> net = build_reference_model(64, 32, 10)
        >>> net(fg.zeros(5, 64)).shape
        (5, 10)
    """
    from flowgrad import nn

    return nn.Sequential(nn.Linear(in_features, hidden), nn.ReLU(),
                         nn.Linear(hidden, classes))


def make_optimizer(name: str, params: Iterable[Any], lr: float | None = None) -> Any:
    """Build one of :data:`OPTIMIZERS` over ``params``.

    ``"sgd"`` is plain SGD, ``"momentum"`` SGD with momentum 0.9, ``"nesterov"`` SGD with
    Nesterov momentum 0.9; the others are ``fg.optim``'s Adagrad, RMSprop, Adam and AdamW
    with PyTorch's defaults apart from the learning rate.

    Args:
        name: the optimizer's name.
        params: the parameters to update.
        lr: learning rate; ``None`` means ``DEFAULT_LR[name]``.

    Raises:
        ValueError: an unknown name.
    """
    # The catalogue rejects unknown names; the rate tuned for the digits is the default.
    return catalogue.make_optimizer(name, params, DEFAULT_LR.get(name) if lr is None else lr)


def load_dataset(name: str, data_dir: str | os.PathLike | None = None,
                 download: bool = False) -> DatasetSplits:
    """Load a dataset's train and test parts, flattened for the reference network.

    ``digits`` is the embedded 8x8 set with its fixed stratified split (1,438 train, 359
    test; ``flowgrad.data.digits_split``); ``mnist`` and ``fashion-mnist`` are the standard
    60,000/10,000 files.

    Args:
        name: one of :data:`DATASETS`.
        data_dir: folder of the IDX files (``None``: the cache folder); unused for digits.
        download: fetch missing IDX files, verified.

    Returns:
        A :class:`DatasetSplits`.

    Raises:
        ValueError: an unknown name.
        DataUnavailable: (an ``OSError``) MNIST-style files missing and ``download`` false
            (the message says where they were looked for and how to get them), malformed,
            or a failed download.
    """
    from flowgrad import data

    if name == "digits":
        x_train, y_train = data.load_digits("train")
        x_test, y_test = data.load_digits("test")
        classes = _DIGIT_CLASSES
    elif name in ("mnist", "fashion-mnist"):
        source = data.MNIST if name == "mnist" else data.FASHION_MNIST
        root = data.cache_dir() if data_dir is None else Path(data_dir).expanduser()
        try:
            x_train, y_train = data.load_idx_dataset(source, root, True, download)
            x_test, y_test = data.load_idx_dataset(source, root, False, download)
        except FileNotFoundError:
            # The loader lists all sixteen candidate paths; one line is what a user needs.
            raise DataUnavailable(
                f"{source.title} files not found in {root} (nor in "
                f"{root / source.folder / 'raw'}); pass --download (download=True) to fetch "
                "them, or --data-dir (data_dir=) to point at them") from None
        except (ValueError, OSError) as exc:  # malformed files, failed downloads
            raise DataUnavailable(f"cannot load {source.title}: "
                                  f"{str(exc).splitlines()[0]}") from None
        classes = _DIGIT_CLASSES if name == "mnist" else tuple(data.FASHION_MNIST_CLASSES)
    else:
        raise ValueError(f"unknown dataset {name!r}; choose one of {', '.join(DATASETS)}")
    image_shape = (int(x_train.shape[1]), int(x_train.shape[2]))
    return DatasetSplits(
        name=name,
        x_train=np.ascontiguousarray(x_train.reshape(len(x_train), -1), dtype=np.float32),
        y_train=np.asarray(y_train, dtype=np.int64),
        x_test=np.ascontiguousarray(x_test.reshape(len(x_test), -1), dtype=np.float32),
        y_test=np.asarray(y_test, dtype=np.int64),
        image_shape=image_shape,
        classes=classes,
    )


def predict_logits(model: Any, x: np.ndarray, batch_size: int = _EVAL_BATCH) -> np.ndarray:
    """The model's logits for ``x`` (``(N, features)``), computed under ``fg.no_grad``.

    Runs in chunks of ``batch_size`` samples; returns a float32 ``(N, classes)`` array.
    """
    outputs = []
    with fg.no_grad():
        for start in range(0, len(x), batch_size):
            outputs.append(model(fg.tensor(x[start:start + batch_size])).numpy())
    return np.concatenate(outputs) if outputs else np.zeros((0, 0), dtype=np.float32)


def _cross_entropy(logits: np.ndarray, labels: np.ndarray) -> float:
    from flowgrad.nn import functional as F

    # In float64, so the mean over many samples loses nothing.
    with fg.no_grad():
        return F.cross_entropy(fg.tensor(logits.astype(np.float64)), fg.tensor(labels)).item()


def _evaluate_arrays(model: Any, x: np.ndarray, y: np.ndarray) -> tuple[float, float]:
    logits = predict_logits(model, x)
    return _cross_entropy(logits, y), float((logits.argmax(axis=1) == y).mean())


# --------------------------------------------------------------------------- run folders

def _default_run_dir(dataset: str) -> Path:
    stamp = datetime.now().strftime("%Y%m%d-%H%M%S")
    base = Path("runs") / f"{dataset}-{stamp}"
    run_dir, k = base, 2
    while run_dir.exists():  # two runs in the same second get their own folders
        run_dir = base.with_name(f"{base.name}-{k}")
        k += 1
    return run_dir


def _make_run_dir(out: str | os.PathLike | None, dataset: str) -> Path:
    run_dir = _default_run_dir(dataset) if out is None else Path(out).expanduser()
    if run_dir.exists() and not run_dir.is_dir():
        raise FileExistsError(f"run folder {run_dir} exists and is not a folder")
    try:
        run_dir.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise OSError(f"cannot create run folder {run_dir}: {exc.strerror or exc}") from exc
    return run_dir


def _config_document(config: TrainConfig, splits: DatasetSplits, model: Any) -> dict:
    # Flat at the top (every option under its own name, as on the command line), so
    # `config["lr"]` or `jq .lr` reads a run; what describes the data and model is nested.
    return {
        **dataclasses.asdict(config),
        "flowgrad_version": fg.__version__,
        "numpy_version": np.__version__,
        "python_version": platform.python_version(),
        "created": datetime.now().astimezone().isoformat(timespec="seconds"),
        "data": {
            "train_shape": [int(n) for n in (len(splits.x_train), *splits.image_shape)],
            "test_shape": [int(n) for n in (len(splits.x_test), *splits.image_shape)],
            "image_shape": list(splits.image_shape),
            "in_features": splits.in_features,
            "classes": list(splits.classes),
            "pixel_range": [0.0, 1.0],
        },
        "model": {
            "architecture": "softmax(W2 relu(W1 x + b1) + b2)",
            "layers": repr(model),
            "in_features": splits.in_features,
            "hidden": config.hidden,
            "classes": len(splits.classes),
            "parameters": int(sum(p.numel() for p in model.parameters())),
        },
    }


def _metrics_csv(metrics: Sequence[EpochMetrics]) -> str:
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(METRIC_COLUMNS)
    for m in metrics:
        writer.writerow([m.epoch, f"{m.train_loss:.6f}", f"{m.train_accuracy:.6f}",
                         f"{m.test_loss:.6f}", f"{m.test_accuracy:.6f}", f"{m.seconds:.3f}"])
    return buf.getvalue()


def read_metrics(run_dir: str | os.PathLike) -> list[EpochMetrics]:
    """Read a run folder's ``metrics.csv``.

    Raises:
        FileNotFoundError: no ``metrics.csv``.
        ValueError: a file whose columns are not :data:`METRIC_COLUMNS`.
    """
    path = Path(run_dir) / METRICS_FILE
    if not path.is_file():
        raise FileNotFoundError(f"no {METRICS_FILE} in {run_dir}")
    with open(path, newline="", encoding="utf-8") as fh:
        rows = list(csv.DictReader(fh))
    try:
        return [EpochMetrics(int(r["epoch"]), float(r["train_loss"]),
                             float(r["train_accuracy"]), float(r["test_loss"]),
                             float(r["test_accuracy"]), float(r["seconds"])) for r in rows]
    except (KeyError, TypeError, ValueError) as exc:
        raise ValueError(f"{path} is not a flowgrad metrics file ({exc})") from None


def plot_curves(metrics: Sequence[EpochMetrics], path: str | os.PathLike,
                title: str = "training curves") -> Path:
    """Draw loss and accuracy against epoch into a PNG file (written atomically).

    Args:
        metrics: the epochs, as :func:`train` or :func:`read_metrics` give them.
        path: the PNG file to write.
        title: the figure's title.

    Returns:
        ``path`` as a ``Path``.
    """
    figures.require("matplotlib", "plotting the curves")
    epochs = [m.epoch for m in metrics]
    fig = figures.new_figure((10, 4), dpi=100)
    ax_loss, ax_acc = fig.subplots(1, 2)
    ax_loss.plot(epochs, [m.train_loss for m in metrics], "o-", ms=3, label="train")
    ax_loss.plot(epochs, [m.test_loss for m in metrics], "s-", ms=3, label="test")
    ax_loss.set(xlabel="epoch", ylabel="cross-entropy loss", title="loss")
    ax_loss.set_yscale("log")
    ax_acc.plot(epochs, [100 * m.train_accuracy for m in metrics], "o-", ms=3, label="train")
    ax_acc.plot(epochs, [100 * m.test_accuracy for m in metrics], "s-", ms=3,
                label=f"test (last {100 * metrics[-1].test_accuracy:.2f}%)")
    ax_acc.set(xlabel="epoch", ylabel="accuracy (%)", title="accuracy")
    for ax in (ax_loss, ax_acc):
        ax.grid(True, alpha=0.3)
        ax.legend()
    fig.suptitle(title)
    return figures.save_figure(fig, path, dpi=100)


# --------------------------------------------------------------------------- training

def format_epoch(m: EpochMetrics, epochs: int) -> str:
    """The line ``flowgrad train`` prints after each epoch."""
    width = len(str(epochs))
    return (f"epoch {m.epoch:>{width}}/{epochs}  train loss {m.train_loss:.4f}  "
            f"train acc {100 * m.train_accuracy:6.2f}%  test acc {100 * m.test_accuracy:6.2f}%"
            f"  {m.seconds:5.2f} s")


def _progress_bar(iterable: Any, enabled: bool, desc: str) -> Any:
    if not enabled or not sys.stderr.isatty():
        return iterable
    try:
        from tqdm import tqdm
    except ImportError:  # the bar is a nicety; training goes on without it
        return iterable
    return tqdm(iterable, desc=desc, total=len(iterable), unit="batch", leave=False,
                file=sys.stderr, dynamic_ncols=True)


def train(config: TrainConfig, progress: bool = True,
          log: Callable[[str], None] | None = None, plot: bool = True) -> RunResult:
    """Train the reference network and write a run folder.

    Args:
        config: the run's options; see :class:`TrainConfig`.
        progress: show a tqdm bar per epoch on stderr (only when stderr is a terminal).
        log: called with each line to report (a header, then one line per epoch, as
            :func:`format_epoch`); ``None`` reports nothing. ``flowgrad train`` passes
            ``print``.
        plot: write ``curves.png`` (needs matplotlib, checked before training starts).

    Returns:
        A :class:`RunResult`.

    Raises:
        ValueError: an invalid option (see :meth:`TrainConfig.validate`).
        DataUnavailable: (an ``OSError``) the dataset cannot be loaded (see
            :func:`load_dataset`).
        OSError: the run folder cannot be created or written.
        FloatingPointError: the loss became NaN or infinite (learning rate too large).
        ImportError: ``plot`` and matplotlib is not installed.
    """
    from flowgrad import data
    from flowgrad.nn import functional as F

    started = time.perf_counter()
    config = dataclasses.replace(config)  # validates; the caller's copy stays untouched
    if plot:
        figures.require("matplotlib", "plotting the curves")
    splits = load_dataset(config.dataset, config.data_dir, config.download)
    run_dir = _make_run_dir(config.out, config.dataset)
    config = dataclasses.replace(config, lr=config.learning_rate, out=str(run_dir))

    fg.manual_seed(config.seed)
    model = build_reference_model(splits.in_features, config.hidden, len(splits.classes))
    optimizer = make_optimizer(config.optimizer, model.parameters(), config.lr)
    loader = data.DataLoader(data.TensorDataset(splits.x_train, splits.y_train),
                             batch_size=config.batch_size, shuffle=True, seed=config.seed)

    files = {"checkpoint": run_dir / CHECKPOINT_FILE, "config": run_dir / CONFIG_FILE,
             "metrics": run_dir / METRICS_FILE}
    _atomic.write_text(files["config"],
                json.dumps(_config_document(config, splits, model), indent=2) + "\n")
    if log is not None:
        log(f"training {splits.in_features}-{config.hidden}-{len(splits.classes)} network "
            f"on {config.dataset} ({len(splits.x_train)} train / {len(splits.x_test)} test) "
            f"with {config.optimizer} lr {config.lr:g} ({config.schedule}), "
            f"batch {config.batch_size}, "
            f"{config.epochs} epochs, seed {config.seed}")
        log(f"run folder: {run_dir}")

    scheduler = None
    if config.schedule == "cosine":
        from flowgrad.optim.lr_scheduler import CosineAnnealingLR

        scheduler = CosineAnnealingLR(optimizer, T_max=config.epochs)
    metrics: list[EpochMetrics] = []
    for epoch in range(1, config.epochs + 1):
        t0 = time.perf_counter()
        model.train()
        loss_sum, correct, seen = 0.0, 0, 0
        # Overflow warnings would only precede the clear error raised below.
        with np.errstate(over="ignore", invalid="ignore"):
            for xb, yb in _progress_bar(loader, progress, f"epoch {epoch}/{config.epochs}"):
                logits = model(xb)
                loss = F.cross_entropy(logits, yb)
                optimizer.zero_grad()
                loss.backward()
                optimizer.step()
                value, n = loss.item(), len(yb.numpy())
                if not math.isfinite(value):
                    raise FloatingPointError(
                        f"training diverged in epoch {epoch} (the loss became {value}); "
                        f"try a smaller learning rate than {config.lr:g}")
                loss_sum += value * n
                correct += int((logits.numpy().argmax(axis=1) == yb.numpy()).sum())
                seen += n
        model.eval()
        test_loss, test_acc = _evaluate_arrays(model, splits.x_test, splits.y_test)
        m = EpochMetrics(epoch, loss_sum / seen, correct / seen, test_loss, test_acc,
                         time.perf_counter() - t0)
        metrics.append(m)
        fg.save({"model": model.state_dict(), "optimizer": optimizer.state_dict(),
                 "epoch": epoch}, files["checkpoint"])
        _atomic.write_text(files["metrics"], _metrics_csv(metrics))
        if log is not None:
            log(format_epoch(m, config.epochs))
        if scheduler is not None:
            scheduler.step()

    if plot:
        files["curves"] = plot_curves(
            metrics, run_dir / CURVES_FILE,
            title=(f"{config.dataset}: {splits.in_features}-{config.hidden}-"
                   f"{len(splits.classes)} network, {config.optimizer} lr {config.lr:g} "
                   f"({config.schedule}), batch {config.batch_size}"))
    return RunResult(run_dir=run_dir, config=config, metrics=metrics,
                     seconds=time.perf_counter() - started, model=model,
                     optimizer=optimizer, files=files, train_samples=len(splits.x_train),
                     test_samples=len(splits.x_test))


def benchmark_epoch(n_samples: int = 60_000, in_features: int = 784, hidden: int = 256,
                    classes: int = 10, batch_size: int = 128, optimizer: str = "sgd",
                    lr: float | None = None, seed: int = 0) -> dict[str, float]:
    """Time one training epoch of the reference network on random MNIST-sized data.

    The data are uniform [0, 1) pixels with random labels (the arithmetic, not the
    accuracy, is what is timed); the loop is exactly :func:`train`'s, DataLoader included.

    Args:
        n_samples, in_features, hidden, classes, batch_size: the problem's sizes
            (defaults: 60,000 x 784 inputs, hidden 256, 10 classes, batch 128).
        optimizer, lr: as in :class:`TrainConfig`.
        seed: seeds the data, the weights and the shuffling.

    Returns:
        ``{"samples": n, "batches": b, "seconds": s, "samples_per_second": n / s}``.
    """
    from flowgrad import data
    from flowgrad.nn import functional as F

    rng = np.random.default_rng(seed)
    x = rng.random((n_samples, in_features), dtype=np.float32)
    y = rng.integers(0, classes, n_samples, dtype=np.int64)
    fg.manual_seed(seed)
    model = build_reference_model(in_features, hidden, classes)
    opt = make_optimizer(optimizer, model.parameters(), lr)
    loader = data.DataLoader(data.TensorDataset(x, y), batch_size=batch_size, shuffle=True,
                             seed=seed)
    t0 = time.perf_counter()
    for xb, yb in loader:
        loss = F.cross_entropy(model(xb), yb)
        opt.zero_grad()
        loss.backward()
        opt.step()
    seconds = time.perf_counter() - t0
    return {"samples": float(n_samples), "batches": float(len(loader)), "seconds": seconds,
            "samples_per_second": n_samples / seconds}


# --------------------------------------------------------------------------- using a run

@dataclass
class Run:
    """A trained run folder, loaded: what :func:`load_run` returns.

    Attributes:
        run_dir: the folder.
        config: its :class:`TrainConfig` (``lr`` as used).
        info: the whole ``config.json`` document.
        model: the network with the checkpoint's weights, in eval mode.
        classes: class names, index = label.
        image_shape: ``(rows, cols)`` of the model's input images.
    """

    run_dir: Path
    config: TrainConfig
    info: dict
    model: Any
    classes: tuple[str, ...]
    image_shape: tuple[int, int]


def load_run(run_dir: str | os.PathLike) -> Run:
    """Load a run folder written by :func:`train`: its config and its trained model.

    Raises:
        RunError: (a ``ValueError``) no such folder, no ``config.json`` or ``model.npz``
            in it, an invalid ``config.json``, or a checkpoint that is corrupt or does not
            fit the configured network; the message names the file.
    """
    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        raise RunError(f"run folder {run_dir} does not exist (flowgrad train writes one)")
    config_path = run_dir / CONFIG_FILE
    if not config_path.is_file():
        raise RunError(f"{run_dir} is not a flowgrad run folder: no {CONFIG_FILE}")
    try:
        info = json.loads(config_path.read_text(encoding="utf-8"))
        known = {f.name for f in dataclasses.fields(TrainConfig)}
        config = TrainConfig(**{k: v for k, v in info.items() if k in known})
        shape = info["data"]["image_shape"]
        image_shape = (int(shape[0]), int(shape[1]))
        classes = tuple(str(c) for c in info["data"]["classes"])
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise RunError(f"{config_path} is not valid JSON ({exc})") from None
    except (KeyError, TypeError, IndexError, ValueError, AttributeError) as exc:
        raise RunError(f"{config_path} is not a flowgrad run config ({type(exc).__name__}: "
                       f"{exc})") from None

    checkpoint = run_dir / CHECKPOINT_FILE
    if not checkpoint.is_file():
        raise RunError(f"{run_dir} has no checkpoint {CHECKPOINT_FILE} (training wrote no "
                       "finished epoch)")
    try:
        state = fg.load(checkpoint)
    except (ValueError, OSError) as exc:  # CheckpointError is a ValueError
        raise RunError(str(exc).splitlines()[0]) from None
    if not isinstance(state, dict) or not isinstance(state.get("model"), dict):
        raise RunError(f"{checkpoint} holds no model state (expected a 'model' entry)")
    model = build_reference_model(image_shape[0] * image_shape[1], config.hidden, len(classes))
    try:
        model.load_state_dict(state["model"])
    except (KeyError, ValueError, RuntimeError, TypeError) as exc:
        raise RunError(f"{checkpoint} does not fit the network in {CONFIG_FILE}: "
                       f"{str(exc).splitlines()[0]}") from None
    model.eval()
    return Run(run_dir=run_dir, config=config, info=info, model=model, classes=classes,
               image_shape=image_shape)


@dataclass
class Evaluation:
    """What :func:`evaluate` returns.

    Attributes:
        accuracy: fraction of test samples classified right.
        loss: mean cross-entropy on the test samples.
        confusion: int64 ``(C, C)``; ``confusion[i, j]`` counts samples of class ``i``
            predicted as ``j``.
        per_class_accuracy: ``(C,)`` recall of each class (NaN for a class with no samples).
        classes: class names.
        samples: number of test samples.
        confusion_path: the confusion-matrix PNG, or None when not drawn.
    """

    accuracy: float
    loss: float
    confusion: np.ndarray
    per_class_accuracy: np.ndarray
    classes: tuple[str, ...]
    samples: int
    confusion_path: Path | None = None


def confusion_matrix(labels: np.ndarray, predictions: np.ndarray, classes: int) -> np.ndarray:
    """Counts of (true, predicted) pairs: ``out[i, j]`` = samples of class i predicted j."""
    flat = np.asarray(labels, dtype=np.int64) * classes + np.asarray(predictions, np.int64)
    return np.bincount(flat, minlength=classes * classes).reshape(classes, classes)


def plot_confusion(confusion: np.ndarray, classes: Sequence[str], path: str | os.PathLike,
                   title: str = "confusion matrix") -> Path:
    """Draw a confusion matrix with the count in every cell into a PNG (written atomically).

    Args:
        confusion: ``(C, C)`` counts, rows true classes, columns predictions.
        classes: the C class names.
        path: the PNG file to write.
        title: the figure's title.

    Returns:
        ``path`` as a ``Path``.
    """
    figures.require("matplotlib", "drawing the confusion matrix")
    n = len(classes)
    long_names = max(len(c) for c in classes) > 3
    fig = figures.new_figure((7.5, 6.5) if long_names else (6.5, 5.5), dpi=100)
    ax = fig.subplots()
    image = ax.imshow(confusion, cmap="Blues")
    fig.colorbar(image, ax=ax, label="samples")
    ax.set_xticks(range(n), labels=classes, rotation=45 if long_names else 0,
                  ha="right" if long_names else "center")
    ax.set_yticks(range(n), labels=classes)
    ax.set(xlabel="predicted class", ylabel="true class", title=title)
    # Dark cells get white text so every count stays readable.
    threshold = confusion.max() / 2 if confusion.size else 0
    for (i, j), count in np.ndenumerate(confusion):
        ax.text(j, i, str(int(count)), ha="center", va="center", fontsize=8,
                color="white" if count > threshold else "black")
    return figures.save_figure(fig, path, dpi=100)


def evaluate(run_dir: str | os.PathLike, out: str | os.PathLike | None = None,
             data_dir: str | os.PathLike | None = None, plot: bool = True) -> Evaluation:
    """Accuracy, per-class accuracy and the confusion matrix of a run on its test split.

    Args:
        run_dir: a run folder written by :func:`train`.
        out: where to write the confusion-matrix PNG: a ``.png`` file, or a folder that
            gets ``confusion.png``; ``None`` means the run folder.
        data_dir: where the MNIST-style files are, if not where training found them.
        plot: draw the picture (needs matplotlib).

    Returns:
        An :class:`Evaluation`.

    Raises:
        RunError: a missing, incomplete or corrupt run folder (see :func:`load_run`).
        DataUnavailable: the run's test data cannot be loaded.
        OSError: the picture cannot be written.
        ImportError: ``plot`` and matplotlib is not installed.
    """
    run = load_run(run_dir)
    if plot:
        figures.require("matplotlib", "drawing the confusion matrix")
    splits = load_dataset(run.config.dataset,
                          data_dir if data_dir is not None else run.config.data_dir)
    logits = predict_logits(run.model, splits.x_test)
    predicted = logits.argmax(axis=1)
    n = len(run.classes)
    confusion = confusion_matrix(splits.y_test, predicted, n)
    support = confusion.sum(axis=1)
    per_class = np.where(support > 0, np.diag(confusion) / np.maximum(support, 1), np.nan)
    accuracy = float((predicted == splits.y_test).mean())
    result = Evaluation(accuracy=accuracy, loss=_cross_entropy(logits, splits.y_test),
                        confusion=confusion, per_class_accuracy=per_class,
                        classes=run.classes, samples=len(splits.y_test))
    if plot:
        if out is None:
            target = run.run_dir / CONFUSION_FILE
        else:
            target = Path(out).expanduser()
            if target.suffix.lower() != ".png":
                target = target / CONFUSION_FILE
            target.parent.mkdir(parents=True, exist_ok=True)
        result.confusion_path = plot_confusion(
            confusion, run.classes, target,
            title=f"{run.config.dataset} test set ({result.samples} samples): accuracy "
                  f"{100 * accuracy:.2f}%")
    return result


# --------------------------------------------------------------------------- images

# Strokes in the training data are about a tenth of the digit's height or more (8x8 digits:
# median 4.8 px on their 32x32 bitmaps, 5th percentile 3.5; MNIST: 2-3 px of its 20 px box).
# A fine pen on a large canvas would vanish when shrunk, so thinner strokes are thickened to
# this width, in pixels of the grid where it is checked (32x32 for digits, 80x80 for MNIST).
_MIN_STROKE = {"digits": 3.5, "mnist": 8.0}


def _to_gray(image: Any) -> np.ndarray:
    """An image (path, PIL image or array) as float32 gray in [0, 1], 2-D."""
    if isinstance(image, (str, os.PathLike)):
        from PIL import Image, ImageOps, UnidentifiedImageError

        try:
            with Image.open(image) as opened:
                opened.load()
                pil = ImageOps.exif_transpose(opened)
        except FileNotFoundError:
            raise ImageError(f"image {image} does not exist") from None
        except (UnidentifiedImageError, OSError, ValueError) as exc:
            raise ImageError(f"cannot read image {image}: {exc}") from None
        image = pil
    if hasattr(image, "getbands"):  # a PIL image
        pil = image
        if pil.mode == "P":
            pil = pil.convert("RGBA")
        if "A" in pil.getbands():
            alpha = np.asarray(pil.getchannel("A"), dtype=np.float32) / 255.0
            if alpha.min() < 0.5:
                # Strokes on a transparent canvas: the opacity is the ink, whatever its colour.
                return alpha
        if pil.mode in ("I", "F") or pil.mode.startswith("I;16"):
            # 16-bit and float images: converting to 8-bit "L" would clip them to white.
            wide = np.asarray(pil, dtype=np.float32)
            return (wide - wide.min()) / max(float(np.ptp(wide)), 1e-12)
        return np.asarray(pil.convert("L"), dtype=np.float32) / 255.0
    arr = np.asarray(image, dtype=np.float32)
    if arr.ndim == 3 and arr.shape[2] in (3, 4):
        arr = arr[..., :3] @ np.array([0.299, 0.587, 0.114], dtype=np.float32)
    if arr.ndim != 2:
        raise ImageError(f"an image array must be 2-D gray or (H, W, 3|4) colour, got shape "
                         f"{arr.shape}")
    if arr.max(initial=0.0) > 1.0:
        arr = arr / 255.0
    return arr


def _max_filter(a: np.ndarray) -> np.ndarray:
    """3x3 grey dilation: each pixel becomes the largest of itself and its 8 neighbours."""
    p = np.pad(a, 1)
    h, w = a.shape
    out = a.copy()
    for di in range(3):
        for dj in range(3):
            np.maximum(out, p[di:di + h, dj:dj + w], out=out)
    return out


def _stroke_width(ink: np.ndarray) -> float:
    """Mean stroke width in pixels of the ink (> 0.5): 2 x area / boundary length.

    A stroke of width w and length L has area w L and a boundary of about 2 L pixels.
    """
    mask = ink > 0.5
    inner = -_max_filter(-mask.astype(np.float32)) > 0.5  # 3x3 erosion
    boundary = int((mask & ~inner).sum())
    return 2.0 * mask.sum() / max(boundary, 1)


def _thicken(ink: np.ndarray, min_width: float, max_steps: int) -> np.ndarray:
    """Dilate strokes thinner than ``min_width`` pixels (each step adds about two)."""
    # Shrinking greys a stroke thinner than a pixel; restretch so its core counts as ink.
    ink = ink / max(float(ink.max()), 1e-6)
    for _ in range(max_steps):
        if _stroke_width(ink) >= min_width:
            break
        ink = _max_filter(ink)
    return ink


def _crop_to_ink(ink: np.ndarray) -> np.ndarray:
    """Crop to the ink: the box around clear ink (> 0.5), widened to take in faint ink.

    Faint ink (> 0.1) only counts within a margin of 15% of the clear ink's box, so grain in
    a photographed background cannot stretch the box to the whole picture.
    """
    def bounds(mask: np.ndarray) -> tuple[int, int, int, int]:
        rows, cols = np.flatnonzero(mask.any(axis=1)), np.flatnonzero(mask.any(axis=0))
        return rows[0], rows[-1] + 1, cols[0], cols[-1] + 1

    r0, r1, c0, c1 = bounds(ink > 0.5)
    m = max(1, round(0.15 * max(r1 - r0, c1 - c0)))
    r0, c0 = max(r0 - m, 0), max(c0 - m, 0)
    r1, c1 = min(r1 + m, ink.shape[0]), min(c1 + m, ink.shape[1])
    window = ink[r0:r1, c0:c1]
    f0, f1, g0, g1 = bounds(window > 0.1)
    return window[f0:f1, g0:g1]


def _resize(a: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    from PIL import Image

    # BOX averages the source pixels each target pixel covers: shrinking keeps ink mass.
    return np.asarray(Image.fromarray(a.astype(np.float32), mode="F")
                      .resize((size[1], size[0]), Image.BOX), dtype=np.float32)


def preprocess_image(image: Any, dataset: str = "digits") -> np.ndarray:
    """Turn a picture of a handwritten digit into the input the reference network expects.

    Steps: gray in [0, 1]; invert when the background (the median of the border pixels) is
    light, since the training data are white ink on black; stretch the contrast from the
    background to the brightest ink; crop to the ink's bounding box and pad it to a centred
    square. Then, like the data were made:

    * ``digits``: scale to 32x32, threshold to a bitmap (thickened if the strokes are too
      thin to survive), and count the ink in each 4x4 block, /16 (the UCI procedure
      behind the 8x8 digits);
    * ``mnist``: scale to 20x20 keeping the grey levels and place it in a 28x28 frame with
      its centre of mass in the middle (LeCun's procedure);
    * ``fashion-mnist``: scale the square to 28x28.

    Args:
        image: a file path, a PIL image, or an array (2-D gray or H x W x 3/4 colour, in
            [0, 1] or 0..255).
        dataset: the dataset the model was trained on.

    Returns:
        float32 array of the model's image shape (8x8 or 28x28), values in [0, 1].

    Raises:
        ImageError: (a ``ValueError``) a missing or unreadable file, or an image with no
            ink (of uniform colour); the message names the file.
        ValueError: an unknown dataset.
        ImportError: Pillow is missing.
    """
    if dataset not in DATASETS:
        raise ValueError(f"unknown dataset {dataset!r}; choose one of {', '.join(DATASETS)}")
    figures.require("PIL", "reading images")
    name = image if isinstance(image, (str, os.PathLike)) else "the image"
    gray = _to_gray(image)
    if gray.shape[0] < 2 or gray.shape[1] < 2:
        raise ImageError(f"{name} is too small ({gray.shape[1]}x{gray.shape[0]} pixels)")
    border = np.concatenate([gray[0], gray[-1], gray[:, 0], gray[:, -1]])
    if np.median(border) > 0.5:
        gray = 1.0 - gray
        border = 1.0 - border
    background, top = float(np.median(border)), float(gray.max())
    if top - background < 0.1:
        raise ImageError(f"{name} has no visible ink (it is almost uniform)")
    ink = np.clip((gray - background) / (top - background), 0.0, 1.0)

    ink = _crop_to_ink(ink)
    h, w = ink.shape
    side = max(h, w)
    square = np.zeros((side, side), dtype=np.float32)
    top_pad, left_pad = (side - h) // 2, (side - w) // 2
    square[top_pad:top_pad + h, left_pad:left_pad + w] = ink

    if dataset == "fashion-mnist":
        return np.clip(_resize(square, (28, 28)), 0.0, 1.0)
    if dataset == "digits":
        # Area-averaging to 32x32 and then counting per 4x4 block is the UCI recipe on a
        # bitmap, and keeps the grey levels of an image that was itself made from 8x8 data.
        fine = _thicken(_resize(square, (32, 32)), _MIN_STROKE["digits"], 3)
        return fine.reshape(8, 4, 8, 4).mean(axis=(1, 3), dtype=np.float32)

    # MNIST: thicken at 80x80 (4x the 20x20 box), where one dilation step adds a quarter of
    # a final pixel, then shrink into the 20x20 box.
    box = np.clip(_resize(_thicken(_resize(square, (80, 80)), _MIN_STROKE["mnist"], 6),
                          (20, 20)), 0.0, 1.0)
    ys, xs = np.indices(box.shape)
    mass = box.sum()
    # Place the box so its centre of mass lands on the frame's centre (staying inside).
    dy = int(np.clip(round(13.5 - (ys * box).sum() / mass), 0, 8))
    dx = int(np.clip(round(13.5 - (xs * box).sum() / mass), 0, 8))
    frame = np.zeros((28, 28), dtype=np.float32)
    frame[dy:dy + 20, dx:dx + 20] = box
    return frame


@dataclass
class Prediction:
    """The network's answer for one image.

    Attributes:
        source: the file name (or ``"image <k>"`` for in-memory images).
        label: the predicted class index.
        name: the predicted class's name.
        probabilities: softmax over the classes, float64 ``(C,)``.
        input: the preprocessed image the network saw.
    """

    source: str
    label: int
    name: str
    probabilities: np.ndarray
    input: np.ndarray

    def as_dict(self, classes: Sequence[str]) -> dict:
        """JSON-ready: ``{"image", "class", "name", "probability", "probabilities"}``."""
        return {"image": self.source, "class": self.label, "name": self.name,
                "probability": round(float(self.probabilities[self.label]), 6),
                "probabilities": {c: round(float(p), 6)
                                  for c, p in zip(classes, self.probabilities)}}


def predict(run_dir: str | os.PathLike | Run, images: Sequence[Any]) -> list[Prediction]:
    """Classify images of handwritten digits (or clothes, for a Fashion-MNIST run).

    Args:
        run_dir: a run folder (or a :class:`Run` from :func:`load_run`).
        images: file paths, PIL images or arrays of any size; see :func:`preprocess_image`.

    Returns:
        One :class:`Prediction` per image, in order.

    Raises:
        RunError: a bad run folder (see :func:`load_run`).
        ImageError: an image that cannot be read or shows no ink.
    """
    run = run_dir if isinstance(run_dir, Run) else load_run(run_dir)
    inputs = [preprocess_image(image, run.config.dataset) for image in images]
    if not inputs:
        return []
    for x in inputs:
        if x.shape != run.image_shape:  # a run trained on differently sized images
            raise RunError(f"the network expects {run.image_shape} images, preprocessing "
                             f"gave {x.shape}")
    batch = np.stack(inputs).reshape(len(inputs), -1)
    with fg.no_grad():
        probs = fg.softmax(fg.tensor(predict_logits(run.model, batch).astype(np.float64)),
                           dim=1).numpy()
    out = []
    for k, (image, x, p) in enumerate(zip(images, inputs, probs)):
        source = str(image) if isinstance(image, (str, os.PathLike)) else f"image {k}"
        label = int(p.argmax())
        out.append(Prediction(source, label, run.classes[label], p, x))
    return out
