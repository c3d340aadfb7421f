"""Data: datasets, mini-batch loading, the embedded digits, MNIST and Fashion-MNIST.

``TensorDataset`` and ``DataLoader`` batch arrays into flowgrad Tensors; ``load_digits``
reads the 8x8 digits embedded in the package (no network); ``load_mnist`` and
``load_fashion_mnist`` read the standard IDX files and can download them, verified.
"""

from flowgrad.data.dataset import TensorDataset
from flowgrad.data.digits import digits_split, load_digits, train_test_split
from flowgrad.data.download import ChecksumError, DownloadError, cache_dir, download_file
from flowgrad.data.idx import encode_idx, parse_idx, read_idx, write_idx
from flowgrad.data.loader import DataLoader, default_collate
from flowgrad.data.mnist import (
    FASHION_MNIST,
    FASHION_MNIST_CLASSES,
    MNIST,
    IDXSource,
    load_fashion_mnist,
    load_idx_dataset,
    load_mnist,
)
from flowgrad.data.sampler import DistributedSampler

__all__ = [
    "FASHION_MNIST",
    "FASHION_MNIST_CLASSES",
    "MNIST",
    "ChecksumError",
    "DataLoader",
    "DistributedSampler",
    "DownloadError",
    "IDXSource",
    "TensorDataset",
    "cache_dir",
    "default_collate",
    "digits_split",
    "download_file",
    "encode_idx",
    "load_digits",
    "load_fashion_mnist",
    "load_idx_dataset",
    "load_mnist",
    "parse_idx",
    "read_idx",
    "train_test_split",
    "write_idx",
]
