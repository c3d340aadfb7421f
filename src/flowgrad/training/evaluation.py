"""Using a trained run: test-set evaluation with a confusion matrix, and predictions for
images of any size.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

import flowgrad as fg
from flowgrad._atomic import check_writable
from flowgrad.training.datasets import load_dataset
from flowgrad.training.model import predict_logits
from flowgrad.training.plots import plot_confusion
from flowgrad.training.rundir import CONFUSION_FILE, Run, RunError, load_run

__all__ = [
    "Evaluation",
    "Prediction",
    "confusion_matrix",
    "evaluate",
    "predict",
]


def _cross_entropy(logits: np.ndarray, labels: np.ndarray) -> float:
    from flowgrad.nn import functional as F

    # In float64, so the mean over many samples loses nothing.
    with fg.no_grad():
        return F.cross_entropy(fg.tensor(logits.astype(np.float64)), fg.tensor(labels)).item()


def _evaluate_arrays(model: Any, x: np.ndarray, y: np.ndarray) -> tuple[float, float]:
    logits = predict_logits(model, x)
    return _cross_entropy(logits, y), float((logits.argmax(axis=1) == y).mean())


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


def _confusion_target(out: str | os.PathLike) -> Path:
    """Where ``out`` puts the confusion matrix: itself if it ends in .png (its folder must
    exist), else ``confusion.png`` inside that folder, created if its parent exists (the one
    folder named, never its parents)."""
    text = os.fspath(out)
    if not str(text).strip():
        raise ValueError("out: the path is empty (give a folder or a .png file)")
    target = Path(out).expanduser()
    if target.suffix.lower() == ".png":
        check_writable(target)
        return target
    if target.is_dir():
        return target / CONFUSION_FILE
    if target.exists():
        raise ValueError(f"out: {target} is neither a folder nor a .png file")
    if target.suffix:
        raise ValueError(f"out: {target} is neither a folder nor a .png file (the picture "
                         "is a PNG)")
    if not target.parent.is_dir():
        raise FileNotFoundError(f"out: folder {target.parent} does not exist (only the "
                                f"folder {target.name} itself would be created)")
    target.mkdir()  # the one folder asked for; never its parents
    return target / CONFUSION_FILE


def evaluate(run_dir: str | os.PathLike, out: str | os.PathLike | None = None,
             data_dir: str | os.PathLike | None = None, plot: bool = True) -> Evaluation:
    """Accuracy, per-class accuracy and the confusion matrix of a run on its test split.

    Args:
        run_dir: a run folder written by :func:`train`.
        out: where to write the confusion-matrix PNG: a ``.png`` file (in an existing
            folder), or a folder that gets ``confusion.png``; ``None`` means the
            run folder. Checked before anything is computed; a missing folder is created
            when its parent exists (never a chain of folders).
        data_dir: where the MNIST-style files are, if not where training found them.
        plot: draw the picture (needs matplotlib).

    Returns:
        An :class:`Evaluation`.

    Raises:
        RunError: a missing, incomplete or corrupt run folder (see :func:`load_run`).
        DataUnavailable: the run's test data cannot be loaded.
        ValueError: ``out`` is empty or names neither a folder nor a ``.png`` file.
        OSError: the picture cannot be written (a missing folder, say).
        ImportError: ``plot`` and matplotlib is not installed.
    """
    run = load_run(run_dir)
    if plot:
        from flowgrad.viz.figures import require

        require("matplotlib", "drawing the confusion matrix")
        target = run.run_dir / CONFUSION_FILE if out is None else _confusion_target(out)
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
        result.confusion_path = plot_confusion(
            confusion, run.classes, target,
            title=f"{run.config.dataset} test set ({result.samples} samples): accuracy "
                  f"{100 * accuracy:.2f}%")
    return result


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
    from flowgrad.data.images import preprocess_image

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
