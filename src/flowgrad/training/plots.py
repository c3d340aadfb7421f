"""The run's pictures: training curves and the confusion matrix (matplotlib, via
:mod:`flowgrad.viz.figures`; PNGs written atomically).
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from flowgrad.training.rundir import EpochMetrics

__all__ = [
    "plot_confusion",
    "plot_curves",
]


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
    from flowgrad.viz import figures  # on first use: importing training draws nothing

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
    from flowgrad.viz import figures

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
