"""DataLoader: mini-batches of a dataset as flowgrad Tensors, optionally shuffled."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import numpy as np

from flowgrad import _backend
from flowgrad.creation import tensor
from flowgrad.data.dataset import TensorDataset, _as_array


def _stack(values: list[Any]):
    return tensor(np.stack([_as_array(v) for v in values]))


def default_collate(items: list[Any]) -> Any:
    """Stack a list of samples into one batch of Tensors.

    Samples that are tuples (or lists) give a tuple with one Tensor per position, dicts give
    a dict of Tensors, anything else (an array, a number) gives a single Tensor.

    Args:
        items: the samples of one batch, as the dataset's ``__getitem__`` returned them.

    Returns:
        The batch, shaped like one sample with a new leading batch dimension.

    Raises:
        ValueError: samples of different tuple lengths.
    """
    first = items[0]
    if isinstance(first, (tuple, list)):
        width = len(first)
        if any(len(it) != width for it in items):
            raise ValueError("cannot collate samples with different numbers of fields "
                             f"({sorted({len(it) for it in items})})")
        return tuple(_stack([it[k] for it in items]) for k in range(width))
    if isinstance(first, dict):
        return {key: _stack([it[key] for it in items]) for key in first}
    return _stack(items)


class DataLoader:
    """Iterate over a dataset in mini-batches of flowgrad Tensors.

    Each pass (epoch) visits every sample exactly once, in order or, with ``shuffle=True``,
    in a fresh random permutation. A batch unpacks like the dataset's samples, so
    ``for xb, yb in DataLoader(TensorDataset(x, y), batch_size=32)`` gives Tensors ``xb`` of
    shape ``(32, ...)`` and ``yb`` of shape ``(32,)``. For a :class:`TensorDataset` a batch
    is gathered with one fancy-indexing operation per array (no Python loop over samples);
    other datasets (anything with ``__len__`` and ``__getitem__``) are read sample by
    sample and stacked by :func:`default_collate`.

    With ``sampler`` (any object with ``__len__`` whose iteration yields dataset indices,
    such as :class:`~flowgrad.data.DistributedSampler`) the loader visits the samples in
    the sampler's order, asking it afresh each epoch; ``shuffle`` must then stay False, as
    in PyTorch.

    Randomness: with ``seed`` given, the loader owns a ``numpy.random.Generator(seed)`` and
    draws each epoch's permutation from it, so two loaders with the same seed give the same
    sequence of epochs, and consecutive epochs differ. With ``seed=None`` the permutations
    come from flowgrad's global generator, so :func:`flowgrad.manual_seed` makes them
    reproducible (as ``torch.manual_seed`` does for PyTorch's DataLoader).

    Args:
        dataset: a :class:`TensorDataset` or any object with ``__len__`` and ``__getitem__``.
        batch_size: samples per batch (a positive int).
        shuffle: visit the samples in a new random order each epoch.
        drop_last: drop the final batch when it has fewer than ``batch_size`` samples.
        seed: seed of the loader's own generator (see above).
        sampler: where the indices come from (see above).

    Raises:
        ValueError: ``batch_size`` is not a positive integer, or both ``sampler`` and
            ``shuffle`` given.
        TypeError: ``dataset`` has no length.

    Example:
        >>> import numpy as np
        >>> ds = TensorDataset(np.arange(10.0).reshape(5, 2), np.arange(5))
        >>> [yb.shape for _, yb in DataLoader(ds, batch_size=2)]
        [(2,), (2,), (1,)]
    """

    def __init__(self, dataset: Any, batch_size: int = 1, shuffle: bool = False,
                 drop_last: bool = False, seed: int | None = None, sampler: Any = None):
        if isinstance(batch_size, bool) or not isinstance(batch_size, (int, np.integer)) \
                or batch_size < 1:
            raise ValueError(f"batch_size must be a positive integer, got {batch_size!r}")
        if not hasattr(dataset, "__len__") or not hasattr(dataset, "__getitem__"):
            raise TypeError("DataLoader needs a dataset with __len__ and __getitem__, got "
                            f"{type(dataset).__name__}")
        if sampler is not None:
            if shuffle:
                raise ValueError("sampler option is mutually exclusive with shuffle (the "
                                 "sampler decides the order)")
            if not hasattr(sampler, "__len__") or not hasattr(sampler, "__iter__"):
                raise TypeError("DataLoader's sampler needs __len__ and __iter__, got "
                                f"{type(sampler).__name__}")
        self.dataset = dataset
        self.sampler = sampler
        self.batch_size = int(batch_size)
        self.shuffle = bool(shuffle)
        self.drop_last = bool(drop_last)
        self.seed = seed
        self.rng: np.random.Generator | None = (
            np.random.default_rng(seed) if seed is not None else None)

    def __len__(self) -> int:
        """The number of batches in one epoch."""
        n = len(self.dataset) if self.sampler is None else len(self.sampler)
        if self.drop_last:
            return n // self.batch_size
        return -(-n // self.batch_size)

    def _order(self) -> np.ndarray:
        if self.sampler is not None:
            return np.fromiter(iter(self.sampler), dtype=np.int64, count=len(self.sampler))
        n = len(self.dataset)
        if not self.shuffle:
            return np.arange(n)
        # Looked up per epoch: fg.manual_seed replaces the global generator object.
        rng = self.rng if self.rng is not None else _backend.rng()
        return rng.permutation(n)

    def _fetch(self, index: np.ndarray) -> Any:
        if isinstance(self.dataset, TensorDataset):
            return tuple(tensor(a[index]) for a in self.dataset.arrays)
        return default_collate([self.dataset[int(i)] for i in index])

    def __iter__(self) -> Iterator[Any]:
        order = self._order()
        bs = self.batch_size
        for b in range(len(self)):
            yield self._fetch(order[b * bs:(b + 1) * bs])

    def __repr__(self) -> str:
        sampler = "" if self.sampler is None else f", sampler={self.sampler!r}"
        return (f"DataLoader({self.dataset!r}, batch_size={self.batch_size}, "
                f"shuffle={self.shuffle}, drop_last={self.drop_last}, seed={self.seed}"
                f"{sampler})")
