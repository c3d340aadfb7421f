"""The 8x8 handwritten digits that ship with scikit-learn, embedded, plus a fixed split.

The file ``digits.csv.gz`` beside this module is scikit-learn's copy of the UCI "Optical
Recognition of Handwritten Digits" test set (see ``DIGITS_LICENSE.txt``): 1,797 rows of 64
pixel values in 0..16 followed by the label 0..9. No network and no scikit-learn needed.
"""

from __future__ import annotations

import functools
import gzip
import io
from importlib import resources

import numpy as np

DIGITS_FILE = "digits.csv.gz"
DIGITS_SPLIT_SEED = 0
DIGITS_TEST_FRACTION = 0.2

_N_DIGITS = 1797


def _stable_permutation(n: int, seed: int) -> np.ndarray:
    """A permutation of ``range(n)`` that is the same in every NumPy version.

    ``Generator.permutation`` may change between NumPy releases (NEP 19 only freezes the bit
    generators' raw streams), so sort the raw PCG64 stream instead.
    """
    raw = np.random.PCG64(seed).random_raw(n)
    return np.argsort(raw, kind="stable")


def train_test_split(n: int, test_fraction: float = 0.2, seed: int = 0,
                     stratify: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Split the sample indices ``0..n-1`` into a train part and a held-out test part.

    The split depends only on ``n``, ``test_fraction``, ``seed`` and ``stratify``, and is
    the same across NumPy versions, so a held-out set stays held out.

    Args:
        n: the number of samples.
        test_fraction: the share of samples held out, strictly between 0 and 1.
        seed: seed of the random order.
        stratify: optional labels (length ``n``); then each class contributes
            ``round(test_fraction * class_count)`` samples to the test part, so both parts
            keep the class proportions.

    Returns:
        ``(train_indices, test_indices)``: disjoint, together ``0..n-1``, each sorted
        ascending, dtype int64.

    Raises:
        ValueError: ``test_fraction`` outside (0, 1), negative ``n``, or ``stratify`` of
            the wrong length.

    Example:
        >>> train, test = train_test_split(10, test_fraction=0.3, seed=1)
        >>> len(train), len(test)
        (7, 3)
    """
    n = int(n)
    if n < 0:
        raise ValueError(f"n must be non-negative, got {n}")
    if not 0.0 < test_fraction < 1.0:
        raise ValueError(f"test_fraction must be strictly between 0 and 1, got {test_fraction}")
    perm = _stable_permutation(n, seed)
    is_test = np.zeros(n, dtype=bool)
    if stratify is None:
        is_test[perm[:int(round(test_fraction * n))]] = True
    else:
        labels = np.asarray(stratify)
        if labels.shape != (n,):
            raise ValueError(f"stratify must have shape ({n},), got {labels.shape}")
        shuffled = labels[perm]
        # A stable sort groups each class together while keeping the random order inside it,
        # so "rank within the class < quota" picks a random quota of every class.
        by_class = np.argsort(shuffled, kind="stable")
        _, starts, counts = np.unique(shuffled[by_class], return_index=True,
                                      return_counts=True)
        rank = np.arange(n) - np.repeat(starts, counts)
        quota = np.round(test_fraction * counts).astype(np.int64)
        is_test[perm[by_class[rank < np.repeat(quota, counts)]]] = True
    indices = np.arange(n, dtype=np.int64)
    return indices[~is_test], indices[is_test]


@functools.lru_cache(maxsize=1)
def _digits_arrays() -> tuple[np.ndarray, np.ndarray]:
    packed = resources.files("flowgrad.data").joinpath(DIGITS_FILE).read_bytes()
    table = np.loadtxt(io.BytesIO(gzip.decompress(packed)), delimiter=",", dtype=np.int64)
    if table.shape != (_N_DIGITS, 65):
        raise ValueError(f"embedded {DIGITS_FILE} has shape {table.shape}, "
                         f"expected ({_N_DIGITS}, 65)")
    # Pixels are counts 0..16 (on-bits in 4x4 blocks of a 32x32 bitmap), so /16 maps them to
    # [0, 1] the way /255 does for 8-bit MNIST pixels.
    images = (table[:, :64].reshape(-1, 8, 8) / 16.0).astype(np.float32)
    labels = table[:, 64].copy()
    images.flags.writeable = False
    labels.flags.writeable = False
    return images, labels


@functools.lru_cache(maxsize=1)
def digits_split() -> tuple[np.ndarray, np.ndarray]:
    """The fixed held-out split of the digits: ``(train_indices, test_indices)``.

    Stratified by label, 20% held out (``DIGITS_TEST_FRACTION``), seed 0
    (``DIGITS_SPLIT_SEED``): 1,438 training and 359 test samples. Fixed forever, so accuracy
    numbers on the test part are comparable between runs and versions.
    """
    _, labels = _digits_arrays()
    train, test = train_test_split(len(labels), DIGITS_TEST_FRACTION, DIGITS_SPLIT_SEED,
                                   stratify=labels)
    train.flags.writeable = False
    test.flags.writeable = False
    return train, test


def load_digits(split: str | None = None) -> tuple[np.ndarray, np.ndarray]:
    """The 1,797 8x8 handwritten digits that ship with scikit-learn (no network).

    Read from the gzipped CSV embedded in the package, once per process.

    Args:
        split: ``None`` or ``"all"`` for every sample; ``"train"`` or ``"test"`` for the
            fixed held-out split (:func:`digits_split`: stratified, 20% test, seed 0).

    Returns:
        ``(images, labels)``: images ``float32`` of shape ``(N, 8, 8)`` equal to
        pixel / 16 (digits pixels are 0..16, so this is [0, 1] as pixel / 255 is for
        MNIST), labels ``int64`` of shape ``(N,)`` in 0..9. Fresh arrays the caller may
        modify.

    Raises:
        ValueError: an unknown ``split``.

    Example:
        >>> images, labels = load_digits()
        >>> images.shape, images.dtype, labels[:5]
        ((1797, 8, 8), dtype('float32'), array([0, 1, 2, 3, 4]))
    """
    images, labels = _digits_arrays()
    if split is None or split == "all":
        return images.copy(), labels.copy()
    if split not in ("train", "test"):
        raise ValueError(f"split must be None, 'all', 'train' or 'test', got {split!r}")
    index = digits_split()[0 if split == "train" else 1]
    return images[index], labels[index]
