"""MNIST and Fashion-MNIST from their standard IDX files, with an optional verified download."""

from __future__ import annotations

import os
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from flowgrad.data.download import DEFAULT_TIMEOUT, cache_dir, download_file
from flowgrad.data.idx import read_idx

FASHION_MNIST_CLASSES = ("T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal",
                         "Shirt", "Sneaker", "Bag", "Ankle boot")


@dataclass(frozen=True)
class IDXSource:
    """Where a dataset's four gzipped IDX files come from and what they must hash to.

    Attributes:
        title: the dataset's name in messages.
        folder: torchvision's folder name (files live in ``root/<folder>/raw``).
        mirrors: base URLs tried in order.
        mirror_env: environment variable that replaces ``mirrors`` (comma or space
            separated base URLs).
        digests: for each ``*.gz`` file, its expected digests by hashlib algorithm.
    """

    title: str
    folder: str
    mirrors: tuple[str, ...]
    mirror_env: str
    digests: Mapping[str, Mapping[str, str]]


# SHA-256 as published with the files (e.g. TensorFlow Datasets' checksums); MD5 as in
# torchvision's MNIST/FashionMNIST resources. Both are checked.
MNIST = IDXSource(
    title="MNIST",
    folder="MNIST",
    mirrors=(
        "https://ossci-datasets.s3.amazonaws.com/mnist/",
        "https://storage.googleapis.com/cvdf-datasets/mnist/",
    ),
    mirror_env="FLOWGRAD_MNIST_MIRROR",
    digests={
        "train-images-idx3-ubyte.gz": {
            "sha256": "440fcabf73cc546fa21475e81ea370265605f56be210a4024d2ca8f203523609",
            "md5": "f68b3c2dcbeaaa9fbdd348bbdeb94873"},
        "train-labels-idx1-ubyte.gz": {
            "sha256": "3552534a0a558bbed6aed32b30c495cca23d567ec52cac8be1a0730e8010255c",
            "md5": "d53e105ee54ea40749a09fcbcd1e9432"},
        "t10k-images-idx3-ubyte.gz": {
            "sha256": "8d422c7b0a1c1c79245a5bcf07fe86e33eeafee792b84584aec276f5a2dbc4e6",
            "md5": "9fb629c4189551a2d022fa330f9573f3"},
        "t10k-labels-idx1-ubyte.gz": {
            "sha256": "f7ae60f92e00ec6debd23a6088c31dbd2371eca3ffa0defaefb259924204aec6",
            "md5": "ec29112dd5afa0611ce80d1b7f02629c"},
    },
)

FASHION_MNIST = IDXSource(
    title="Fashion-MNIST",
    folder="FashionMNIST",
    mirrors=(
        "http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/",
        "https://raw.githubusercontent.com/zalandoresearch/fashion-mnist/master/data/fashion/",
    ),
    mirror_env="FLOWGRAD_FASHION_MNIST_MIRROR",
    digests={
        "train-images-idx3-ubyte.gz": {
            "sha256": "3aede38d61863908ad78613f6a32ed271626dd12800ba2636569512369268a84",
            "md5": "8d4fb7e6c68d591d4c3dfef9ec88bf0d"},
        "train-labels-idx1-ubyte.gz": {
            "sha256": "a04f17134ac03560a47e3764e11b92fc97de4d1bfaf8ba1a3aa29af54cc90845",
            "md5": "25c81989df183df01b3e8a0aad5dffbe"},
        "t10k-images-idx3-ubyte.gz": {
            "sha256": "346e55b948d973a97e58d2351dde16a484bd415d4595297633bb08f03db6a073",
            "md5": "bef4ecab320f06d8554ea6380940ec79"},
        "t10k-labels-idx1-ubyte.gz": {
            "sha256": "67da17c76eaffca5446c3361aaab5c3cd6d1c2608764d35dfb1850b086bf8dd5",
            "md5": "bb300cfdad3c16e7a12a480ee83cd310"},
    },
)


def _candidates(root: Path, source: IDXSource, stem: str) -> list[Path]:
    # The canonical names, plain or gzipped, and the "train-images.idx3-ubyte" spelling some
    # re-distributions use; in root itself and in torchvision's root/<folder>/raw.
    names = [stem, stem + ".gz"]
    dotted = stem.replace("-idx", ".idx")
    names += [dotted, dotted + ".gz"]
    folders = [root, root / source.folder / "raw"]
    return [folder / name for folder in folders for name in names]


def _mirrors(source: IDXSource, mirrors: Iterable[str] | str | None) -> list[str]:
    if mirrors is None:
        mirrors = os.environ.get(source.mirror_env) or None
    if mirrors is None:
        return list(source.mirrors)
    if isinstance(mirrors, str):
        return [m for m in re.split(r"[,\s]+", mirrors) if m]
    return list(mirrors)


def _digests(source: IDXSource, filename: str,
             override: Mapping[str, str | Mapping[str, str]] | None) -> Mapping[str, str]:
    if override is not None and filename in override:
        given = override[filename]
        return {"sha256": given} if isinstance(given, str) else given
    return source.digests[filename]


def load_idx_dataset(source: IDXSource, root: str | os.PathLike | None = None,
                     train: bool = True, download: bool = False, *,
                     mirrors: Iterable[str] | str | None = None,
                     digests: Mapping[str, str | Mapping[str, str]] | None = None,
                     timeout: float = DEFAULT_TIMEOUT,
                     progress: bool | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Load one split of an MNIST-style dataset (what :func:`load_mnist` calls).

    Args:
        source: :data:`MNIST`, :data:`FASHION_MNIST` or your own :class:`IDXSource`.
        root: the data folder; ``None`` means the cache folder (:func:`cache_dir`).
        train: the 60,000 training samples, else the 10,000 test samples.
        download: fetch missing files from the mirrors into ``root/<folder>/raw``.
        mirrors: base URLs replacing the source's list (also settable through the
            source's environment variable, e.g. ``FLOWGRAD_MNIST_MIRROR``).
        digests: expected digests replacing the built-in ones, by file name: a SHA-256
            hex string or a ``{algorithm: hex}`` dict.
        timeout: seconds to wait on a silent connection.
        progress: progress bar while downloading (default: when stderr is a terminal).

    Returns:
        ``(images, labels)``: float32 ``(N, rows, cols)`` equal to pixel / 255 and int64
        ``(N,)``.

    Raises:
        FileNotFoundError: a file is missing and ``download`` is false; names every path
            looked at.
        ValueError: a malformed or mismatched IDX file, naming it.
        DownloadError: the download failed on every mirror (ChecksumError for digests).
    """
    root = cache_dir() if root is None else Path(root).expanduser()
    split = "train" if train else "t10k"
    kinds = ("images", "labels")
    stems = {kind: f"{split}-{kind}-idx{3 if kind == 'images' else 1}-ubyte" for kind in kinds}
    found: dict[str, Path] = {}
    looked: list[Path] = []
    for kind, stem in stems.items():
        candidates = _candidates(root, source, stem)
        hit = next((p for p in candidates if p.is_file()), None)
        if hit is not None:
            found[kind] = hit
        elif download:
            filename = stem + ".gz"
            found[kind] = download_file(filename, root / source.folder / "raw",
                                        _mirrors(source, mirrors),
                                        _digests(source, filename, digests),
                                        timeout=timeout, progress=progress)
        else:
            looked += candidates
    if looked:
        shown = ", ".join(str(p) for p in looked)
        raise FileNotFoundError(
            f"{source.title} {'training' if train else 'test'} files not found; looked for "
            f"{shown}. Pass download=True to fetch them into {root / source.folder / 'raw'}")

    images, labels = read_idx(found["images"]), read_idx(found["labels"])
    if images.ndim != 3 or images.dtype != np.uint8:
        raise ValueError(f"{found['images']}: expected uint8 images of shape (N, rows, cols), "
                         f"got {images.dtype} {images.shape}")
    if labels.ndim != 1 or labels.dtype.kind not in "iu":
        raise ValueError(f"{found['labels']}: expected integer labels of shape (N,), got "
                         f"{labels.dtype} {labels.shape}")
    if len(images) != len(labels):
        raise ValueError(f"{found['images']} has {len(images)} images but {found['labels']} "
                         f"has {len(labels)} labels")
    return (np.true_divide(images, np.float32(255.0), dtype=np.float32),
            labels.astype(np.int64))


def load_mnist(root: str | os.PathLike | None = None, train: bool = True,
               download: bool = False, **kwargs) -> tuple[np.ndarray, np.ndarray]:
    """MNIST handwritten digits from the standard IDX files.

    Looks in ``root`` and in torchvision's layout ``root/MNIST/raw`` for
    ``train-images-idx3-ubyte`` and ``train-labels-idx1-ubyte`` (``t10k-...`` for the
    test split), gzipped or plain. With ``download=True`` missing files are fetched from
    public mirrors into ``root/MNIST/raw``, verified against their published SHA-256 and
    MD5, and written atomically.

    Args:
        root: the data folder; ``None`` means ``$FLOWGRAD_CACHE`` or ``~/.cache/flowgrad``.
        train: the 60,000 training samples, else the 10,000 test samples.
        download: fetch missing files.
        **kwargs: ``mirrors``, ``digests``, ``timeout``, ``progress`` as in
            :func:`load_idx_dataset`.

    Returns:
        ``(images, labels)``: images float32 ``(N, 28, 28)`` equal to pixel / 255, labels
        int64 ``(N,)`` in 0..9.

    Raises:
        FileNotFoundError: missing files without ``download``; the paths looked at.
        ValueError: a malformed IDX file (the message names it).
        DownloadError: no mirror delivered verified files.

    Example:
        >>> images, labels = load_mnist("data", download=True)  # doctest: +SKIP
        >>> images.shape, labels.dtype  # doctest: +SKIP
        ((60000, 28, 28), dtype('int64'))
    """
    return load_idx_dataset(MNIST, root, train, download, **kwargs)


def load_fashion_mnist(root: str | os.PathLike | None = None, train: bool = True,
                       download: bool = False, **kwargs) -> tuple[np.ndarray, np.ndarray]:
    """Zalando's Fashion-MNIST (ten clothing classes, MNIST's format and sizes).

    As :func:`load_mnist`, with torchvision's folder ``root/FashionMNIST/raw`` and the
    mirror variable ``FLOWGRAD_FASHION_MNIST_MIRROR``; class names are
    :data:`FASHION_MNIST_CLASSES`.
    """
    return load_idx_dataset(FASHION_MNIST, root, train, download, **kwargs)
