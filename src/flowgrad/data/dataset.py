"""Datasets: indexable collections of samples that a :class:`~flowgrad.data.DataLoader` batches."""

from __future__ import annotations

from typing import Any

import numpy as np


def _as_array(x: Any) -> np.ndarray:
    # Tensors expose their array through .numpy(); anything else goes through np.asarray,
    # which shares memory with an ndarray instead of copying it.
    if hasattr(x, "numpy") and not isinstance(x, np.ndarray):
        return np.asarray(x.numpy())
    return np.asarray(x)


class TensorDataset:
    """Samples are the rows of one or more arrays that share their first dimension.

    ``dataset[i]`` is the tuple ``(a[i], b[i], ...)`` of NumPy rows; an index array or a
    slice selects many rows at once, which is how :class:`DataLoader` builds a batch with
    one fancy-indexing operation per array instead of a Python loop over samples.

    Args:
        *arrays: NumPy arrays, flowgrad Tensors or array-likes, all with the same length
            along axis 0. Tensors are read through ``.numpy()`` (shared, not copied).

    Raises:
        ValueError: no arrays, a 0-d array, or arrays of different lengths (all are named).

    Example:
        >>> import numpy as np
        >>> ds = TensorDataset(np.zeros((4, 2)), np.arange(4))
        >>> len(ds), ds[1][1]
        (4, np.int64(1))
    """

    def __init__(self, *arrays: Any):
        if not arrays:
            raise ValueError("TensorDataset needs at least one array")
        converted = tuple(_as_array(a) for a in arrays)
        for k, a in enumerate(converted):
            if a.ndim == 0:
                raise ValueError(f"TensorDataset array {k} is 0-d; each array needs a first "
                                 "(sample) dimension")
        lengths = [a.shape[0] for a in converted]
        if len(set(lengths)) != 1:
            listed = ", ".join(f"array {k}: {n}" for k, n in enumerate(lengths))
            raise ValueError(
                f"TensorDataset arrays must have the same first dimension, got {listed}")
        self.arrays: tuple[np.ndarray, ...] = converted

    def __len__(self) -> int:
        return int(self.arrays[0].shape[0])

    def __getitem__(self, index: Any) -> tuple[Any, ...]:
        return tuple(a[index] for a in self.arrays)

    def __repr__(self) -> str:
        parts = ", ".join(f"{a.dtype}{list(a.shape)}" for a in self.arrays)
        return f"TensorDataset({parts})"
