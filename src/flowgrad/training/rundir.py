"""The run folder: its files, writing them as a run goes, and loading a finished run.

A run folder holds ``model.npz`` (the checkpoint), ``config.json`` (every option, the
data's shapes and class names, the architecture, the versions), ``metrics.csv`` (one row
per epoch) and ``curves.png``; ``flowgrad evaluate`` adds ``confusion.png``.
"""

from __future__ import annotations

import contextlib
import csv
import dataclasses
import io
import json
import os
import platform
import signal
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import numpy as np

import flowgrad as fg
from flowgrad._atomic import atomic_write
from flowgrad.training.config import TrainConfig
from flowgrad.training.datasets import DatasetSplits
from flowgrad.training.model import build_model

__all__ = [
    "CHECKPOINT_FILE",
    "CONFIG_FILE",
    "CONFUSION_FILE",
    "CURVES_FILE",
    "METRICS_FILE",
    "METRIC_COLUMNS",
    "EpochMetrics",
    "Run",
    "RunError",
    "load_run",
    "read_metrics",
]


CHECKPOINT_FILE = "model.npz"
CONFIG_FILE = "config.json"
METRICS_FILE = "metrics.csv"
CURVES_FILE = "curves.png"
CONFUSION_FILE = "confusion.png"

METRIC_COLUMNS: tuple[str, ...] = ("epoch", "train_loss", "train_accuracy", "test_loss",
                                   "test_accuracy", "seconds")


class RunError(ValueError):
    """A run folder that is missing, incomplete or corrupt; the message names the file."""


@dataclass
class EpochMetrics:
    """One row of ``metrics.csv``."""

    epoch: int
    train_loss: float
    train_accuracy: float
    test_loss: float
    test_accuracy: float
    seconds: float


def _default_run_dir(dataset: str) -> Path:
    stamp = datetime.now().strftime("%Y%m%d-%H%M%S")
    base = Path("runs") / f"{dataset}-{stamp}"
    run_dir, k = base, 2
    while run_dir.exists():  # two runs in the same second get their own folders
        run_dir = base.with_name(f"{base.name}-{k}")
        k += 1
    return run_dir


#: Every file a run folder may hold; ``overwrite`` removes exactly these (nothing else).
RUN_FILES: tuple[str, ...] = (CHECKPOINT_FILE, CONFIG_FILE, METRICS_FILE, CURVES_FILE,
                              CONFUSION_FILE)


def _make_run_dir(out: str | os.PathLike | None, dataset: str, overwrite: bool = False,
                  created: list[Path] | None = None) -> Path:
    """Create (or, with ``overwrite``, clear) the run folder; never mix two runs in one.

    A folder that already holds a run's files is refused unless ``overwrite``, which removes
    those files first (and only those), so the new run starts fresh. The folders made here
    are appended to ``created``, so a run that fails before its first epoch can remove them.

    Raises:
        FileExistsError: ``out`` is a file, or a folder holding a run (without overwrite).
        OSError: the folder cannot be created or cleared.
    """
    run_dir = _default_run_dir(dataset) if out is None else Path(out).expanduser()
    if run_dir.exists() and not run_dir.is_dir():
        raise FileExistsError(f"run folder {run_dir} exists and is not a folder")
    if run_dir.is_dir():
        held = sorted(name for name in RUN_FILES if (run_dir / name).is_file())
        if held and not overwrite:
            raise FileExistsError(f"run folder {run_dir} already holds a run "
                                  f"({', '.join(held)}); choose another folder, or "
                                  "overwrite it (--overwrite) to start afresh")
        try:
            for name in held:
                (run_dir / name).unlink()
        except OSError as exc:
            raise OSError(f"cannot clear run folder {run_dir}: {exc.strerror or exc}") \
                from exc
        return run_dir
    missing = [run_dir, *(p for p in run_dir.parents if not p.exists())]
    try:
        for folder in reversed(missing):
            folder.mkdir()
            if created is not None:
                created.append(folder)
    except FileExistsError:  # made meanwhile by someone else: theirs, not ours to remove
        pass
    except OSError as exc:
        raise OSError(f"cannot create run folder {run_dir}: {exc.strerror or exc}") from exc
    return run_dir


def _remove_unfinished(written: Sequence[Path], created: Sequence[Path]) -> None:
    """Undo a run that ended before its first epoch: its files, then the folders it made
    (each only if empty, innermost first). Best effort: it runs while an error propagates."""
    for path in written:
        try:
            path.unlink()
        except OSError:
            pass
    for folder in reversed(created):
        try:
            folder.rmdir()
        except OSError:
            break


@contextlib.contextmanager
def _interrupt_deferred() -> Any:
    """Hold Ctrl-C until the block is done (in the main thread; elsewhere no signal comes)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    caught: list[int] = []
    previous = signal.signal(signal.SIGINT, lambda signum, frame: caught.append(signum))
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)
    if caught and previous != signal.SIG_IGN:
        if callable(previous):
            previous(signal.SIGINT, None)  # Python's own handler raises KeyboardInterrupt
        else:
            raise KeyboardInterrupt


def _write_epoch(checkpoint: Path, state: dict, metrics_path: Path,
                 metrics: Sequence[EpochMetrics]) -> None:
    """Write an epoch's checkpoint and metrics as one step: both to temporary files, then
    both renamed, with Ctrl-C held meanwhile, so an interruption leaves both at the same
    epoch (the previous one or this one)."""
    text = _metrics_csv(metrics)
    with _interrupt_deferred():
        with atomic_write(checkpoint) as ckpt, atomic_write(metrics_path, binary=False) as csv_:
            fg.save(state, ckpt)
            csv_.write(text)


def _config_document(config: TrainConfig, splits: DatasetSplits, model: Any) -> dict:
    # Flat at the top (every option under its own name, as on the command line), so
    # `config["lr"]` or `jq .lr` reads a run; what describes the data and model is nested
    # (the --model option is the model section's "name").
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
            "name": config.model,
            "architecture": ("softmax(W2 relu(W1 x + b1) + b2)" if config.model == "mlp" else
                             "softmax(linear(pool(relu(conv(pool(relu(conv(x))))))))"),
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


def _json_kind(value: Any) -> str:
    return {list: "array", str: "string", bool: "true/false", type(None): "null"}.get(
        type(value), "number")


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
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise RunError(f"{config_path} is not valid JSON ({exc})") from None
    except RecursionError:
        raise RunError(f"{config_path} nests too deeply to be a run config") from None
    if not isinstance(info, dict):
        raise RunError(f"{config_path} is not a flowgrad run config: it holds a JSON "
                       f"{_json_kind(info)}, not an object")
    data = info.get("data")
    if not isinstance(data, dict):
        raise RunError(f"{config_path} is not a flowgrad run config: it has no 'data' object")
    for field in ("image_shape", "classes"):
        if not isinstance(data.get(field), list):
            raise RunError(f"{config_path} is not a flowgrad run config: it has no list "
                           f"'data.{field}'")
    try:
        known = {f.name for f in dataclasses.fields(TrainConfig)}
        options = {k: v for k, v in info.items() if k in known and k != "model"}
        section = info.get("model")
        # Runs from before --model existed hold only the MLP.
        options["model"] = section.get("name", "mlp") if isinstance(section, dict) else "mlp"
        config = TrainConfig(**options)
        shape = data["image_shape"]
        image_shape = (int(shape[0]), int(shape[1]))
        classes = tuple(str(c) for c in data["classes"])
    except (TypeError, IndexError, ValueError) as exc:
        raise RunError(f"{config_path} is not a valid flowgrad run config: "
                       f"{str(exc).splitlines()[0]}") from None

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
    model = build_model(config.model, image_shape, config.hidden, len(classes))
    try:
        model.load_state_dict(state["model"])
    except (KeyError, ValueError, RuntimeError, TypeError) as exc:
        # One line that still names every mismatched key and both shapes.
        details = "; ".join(line.strip() for line in str(exc).splitlines()[1:]) or str(exc)
        raise RunError(f"{checkpoint} does not fit the network in {CONFIG_FILE}: "
                       f"{details}") from None
    model.eval()
    return Run(run_dir=run_dir, config=config, info=info, model=model, classes=classes,
               image_shape=image_shape)
