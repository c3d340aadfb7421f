"""Samplers: the order in which a :class:`~flowgrad.data.DataLoader` visits a dataset.

:class:`DistributedSampler` gives each process of a data-parallel job its own share of
the dataset, with exactly PyTorch's indices for the same seed and epoch.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from typing import Any

import numpy as np

# torch.randperm on the CPU switches algorithm at this size (ATen's randperm_cpu).
_RANDPERM_SMALL = (2**32 - 1) // 20


def torch_randperm(n: int, seed: int) -> np.ndarray:
    """``torch.randperm(n, generator=torch.Generator().manual_seed(seed))``, without torch.

    PyTorch's CPU generator is the 32-bit Mersenne Twister (mt19937) seeded with the low 32
    bits of ``seed`` by the reference ``init_genrand``, which is also how NumPy's legacy
    ``RandomState(seed)`` seeds it, so ``RandomState.randint(0, 2**32, dtype=uint32)``
    yields the same raw 32-bit words. For ``n`` below 2**32 / 20, ATen's ``randperm_cpu``
    runs a forward Fisher-Yates shuffle of ``0..n-1``: step ``i`` swaps position ``i`` with
    position ``i + word_i % (n - i)``. Larger ``n`` uses the "inside-out" variant with
    64-bit draws (two words, the first one high); that branch is written from ATen's source
    but too large to check against torch in the tests.

    The words are drawn and reduced with whole-array NumPy; the swaps are inherently
    sequential and run as a Python loop over a list (about 10 ms for n = 60,000, once per
    epoch).

    Args:
        n: the number of indices.
        seed: the generator's seed (PyTorch's ``DistributedSampler`` uses seed + epoch).

    Returns:
        An int64 array holding a permutation of ``0..n-1``.

    Example:
        >>> torch_randperm(8, 0).tolist()   # torch.randperm(8, generator=g.manual_seed(0))
        [4, 0, 7, 3, 2, 5, 1, 6]
    """
    n = int(n)
    if n < 0:
        raise ValueError(f"randperm needs n >= 0, got {n}")
    rs = np.random.RandomState(int(seed) & 0xFFFFFFFF)
    if n < _RANDPERM_SMALL:
        steps = max(n - 1, 0)
        words = rs.randint(0, 2**32, size=steps, dtype=np.uint32).astype(np.int64)
        targets = (words % (n - np.arange(steps)) + np.arange(steps)).tolist()
        perm = list(range(n))
        for i, j in enumerate(targets):
            perm[i], perm[j] = perm[j], perm[i]
        return np.asarray(perm, dtype=np.int64)
    words = rs.randint(0, 2**32, size=2 * n, dtype=np.uint32).astype(np.uint64)
    draws = (words[0::2] << np.uint64(32)) | words[1::2]
    targets = (draws % np.arange(1, n + 1, dtype=np.uint64)).astype(np.int64).tolist()
    perm = [0] * n
    for i, z in enumerate(targets):
        perm[i] = perm[z]
        perm[z] = i
    return np.asarray(perm, dtype=np.int64)


class DistributedSampler:
    """Each process's share of a dataset, PyTorch's ``DistributedSampler`` index for index.

    Every epoch all processes compute the same order of the whole dataset (a permutation
    from ``seed + epoch`` when shuffling, else ``0..n-1``), make its length a multiple of
    ``num_replicas`` (by repeating indices from the start, or with ``drop_last`` by
    dropping the tail), and process ``rank`` takes every ``num_replicas``-th index starting
    at ``rank``. So the processes' shares are disjoint (apart from the padding), equal in
    size, and together cover the dataset. Call :meth:`set_epoch` at the start of each epoch,
    or every epoch repeats the same order, exactly as in PyTorch.

    Args:
        dataset: anything with ``__len__``.
        num_replicas: number of processes (default: the process group's world size).
        rank: this process's rank (default: the process group's rank).
        shuffle: permute the indices each epoch.
        seed: the shuffle's seed; must be the same on every process.
        drop_last: drop the tail so the dataset divides evenly, instead of padding it.

    Raises:
        ValueError: ``rank`` outside ``[0, num_replicas - 1]`` or ``num_replicas < 1``.
        RuntimeError: ``num_replicas``/``rank`` left out and no process group initialized.

    Example:
        >>> s = DistributedSampler(range(10), num_replicas=3, rank=1, shuffle=False)
        >>> list(s), len(s)
        ([1, 4, 7, 0], 4)
    """

    def __init__(self, dataset: Any, num_replicas: int | None = None, rank: int | None = None,
                 shuffle: bool = True, seed: int = 0, drop_last: bool = False):
        if num_replicas is None or rank is None:
            from flowgrad import distributed as dist

            if not dist.is_initialized():
                raise RuntimeError("DistributedSampler needs num_replicas and rank, or an "
                                   "initialized process group "
                                   "(flowgrad.distributed.init_process_group())")
            num_replicas = dist.get_world_size() if num_replicas is None else num_replicas
            rank = dist.get_rank() if rank is None else rank
        if isinstance(num_replicas, bool) or not isinstance(num_replicas, (int, np.integer)) \
                or num_replicas < 1:
            raise ValueError(f"num_replicas must be a positive integer, got {num_replicas!r}")
        if isinstance(rank, bool) or not isinstance(rank, (int, np.integer)) \
                or not 0 <= rank < num_replicas:
            raise ValueError(f"Invalid rank {rank!r}, rank should be in the interval "
                             f"[0, {num_replicas - 1}]")
        if not hasattr(dataset, "__len__"):
            raise TypeError(f"DistributedSampler needs a dataset with __len__, got "
                            f"{type(dataset).__name__}")
        self.dataset = dataset
        self.num_replicas = int(num_replicas)
        self.rank = int(rank)
        self.epoch = 0
        self.shuffle = bool(shuffle)
        self.seed = int(seed)
        self.drop_last = bool(drop_last)
        n = len(dataset)
        if self.drop_last and n % self.num_replicas != 0:
            self.num_samples = math.ceil((n - self.num_replicas) / self.num_replicas)
        else:
            self.num_samples = math.ceil(n / self.num_replicas)
        self.total_size = self.num_samples * self.num_replicas

    def indices(self) -> np.ndarray:
        """This process's indices for the current epoch, as an int64 array."""
        n = len(self.dataset)
        if self.shuffle:
            order = torch_randperm(n, self.seed + self.epoch)
        else:
            order = np.arange(n, dtype=np.int64)
        if not self.drop_last:
            padding = self.total_size - n
            if padding > 0:
                # np.resize repeats the order cyclically: PyTorch's padding, also when the
                # padding is longer than the dataset (tiny datasets, many processes).
                order = np.resize(order, self.total_size)
        else:
            order = order[:self.total_size]
        return order[self.rank:self.total_size:self.num_replicas]

    def __iter__(self) -> Iterator[int]:
        return iter(self.indices().tolist())

    def __len__(self) -> int:
        return self.num_samples

    def set_epoch(self, epoch: int) -> None:
        """Use ``epoch`` for the next pass: the shuffle's seed becomes ``seed + epoch``."""
        self.epoch = int(epoch)

    def __repr__(self) -> str:
        return (f"DistributedSampler(num_replicas={self.num_replicas}, rank={self.rank}, "
                f"shuffle={self.shuffle}, seed={self.seed}, drop_last={self.drop_last})")
