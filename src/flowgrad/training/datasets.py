"""The datasets a run trains on, loaded and flattened for the reference network.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from flowgrad.training.config import DATASETS

__all__ = [
    "DataUnavailable",
    "DatasetSplits",
    "load_dataset",
]


_DIGIT_CLASSES = tuple(str(k) for k in range(10))


class DataUnavailable(OSError):
    """A dataset's files are missing, unreadable or failed to download; says what to do."""


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
