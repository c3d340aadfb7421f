"""The IDX file format of MNIST and Fashion-MNIST: a strict reader and a writer.

An IDX file is a 4-byte magic number ``0x00 0x00 <dtype code> <ndim>``, then ``ndim``
big-endian uint32 dimensions, then the values in C order, big-endian. MNIST ships its
files gzipped (``train-images-idx3-ubyte.gz``); both forms are read here.
"""

from __future__ import annotations

import gzip
import math
import os
import zlib
from pathlib import Path

import numpy as np

# IDX type codes and the big-endian dtypes they denote.
IDX_DTYPES: dict[int, np.dtype] = {
    0x08: np.dtype(">u1"),
    0x09: np.dtype(">i1"),
    0x0B: np.dtype(">i2"),
    0x0C: np.dtype(">i4"),
    0x0D: np.dtype(">f4"),
    0x0E: np.dtype(">f8"),
}
_CODES = {dt.newbyteorder("="): code for code, dt in IDX_DTYPES.items()}

_GZIP_MAGIC = b"\x1f\x8b"


def _read_bytes(path: Path) -> bytes:
    raw = path.read_bytes()
    if not raw.startswith(_GZIP_MAGIC):
        return raw
    try:
        return gzip.decompress(raw)
    except (EOFError, OSError, zlib.error) as exc:
        # EOFError: truncated stream; BadGzipFile (an OSError) / zlib.error: corrupt stream.
        raise ValueError(f"{path}: corrupt or truncated gzip data ({exc})") from exc


def parse_idx(data: bytes, name: str = "<bytes>") -> np.ndarray:
    """Decode the bytes of an (uncompressed) IDX file.

    Args:
        data: the whole file.
        name: how errors refer to the data (usually the file path).

    Returns:
        A read-only array in native byte order with the file's shape and dtype.

    Raises:
        ValueError: a bad magic number, an unknown type code, or a payload whose size does
            not match the dimensions (truncated or with trailing bytes); the message names
            ``name`` and the problem.
    """
    if len(data) < 4:
        raise ValueError(f"{name}: not an IDX file: {len(data)} bytes, shorter than the "
                         "4-byte magic number")
    if data[0] != 0 or data[1] != 0:
        raise ValueError(f"{name}: not an IDX file: magic number starts with "
                         f"{data[:2].hex()}, expected 0000")
    code, ndim = data[2], data[3]
    if code not in IDX_DTYPES:
        known = ", ".join(f"0x{c:02X}" for c in IDX_DTYPES)
        raise ValueError(f"{name}: unknown IDX type code 0x{code:02X} (known: {known})")
    if ndim == 0:
        raise ValueError(f"{name}: IDX header declares 0 dimensions")
    header = 4 + 4 * ndim
    if len(data) < header:
        raise ValueError(f"{name}: truncated IDX header: {ndim} dimensions need {header} "
                         f"bytes, the file has {len(data)}")
    dims = tuple(int(d) for d in np.frombuffer(data, dtype=">u4", count=ndim, offset=4))
    dtype = IDX_DTYPES[code]
    expected = math.prod(dims) * dtype.itemsize
    payload = len(data) - header
    if payload != expected:
        what = "truncated" if payload < expected else "has trailing bytes"
        raise ValueError(f"{name}: IDX payload {what}: dimensions {dims} of {dtype.name} "
                         f"need {expected} bytes after the header, found {payload}")
    array = np.frombuffer(data, dtype=dtype, offset=header).reshape(dims)
    if dtype.itemsize > 1:
        array = array.astype(dtype.newbyteorder("="))
        array.flags.writeable = False
    return array


def read_idx(path: str | os.PathLike) -> np.ndarray:
    """Read an IDX file, gzipped (detected by its magic bytes) or plain.

    Args:
        path: the file.

    Returns:
        A read-only array with the file's shape, dtype in native byte order.

    Raises:
        FileNotFoundError: no such file.
        ValueError: corrupt gzip data or a malformed IDX file; the message names the file
            and what is wrong.

    Example:
        >>> images = read_idx("train-images-idx3-ubyte.gz")  # doctest: +SKIP
        >>> images.shape, images.dtype  # doctest: +SKIP
        ((60000, 28, 28), dtype('uint8'))
    """
    path = Path(path)
    return parse_idx(_read_bytes(path), str(path))


def encode_idx(array: np.ndarray) -> bytes:
    """The bytes of an IDX file holding ``array``.

    Args:
        array: an array of dtype uint8, int8, int16, int32, float32 or float64, at least
            one dimension.

    Raises:
        TypeError: a dtype IDX cannot hold.
        ValueError: a 0-d array.
    """
    array = np.asarray(array)
    native = array.dtype.newbyteorder("=")
    if native not in _CODES:
        raise TypeError(f"IDX cannot hold dtype {array.dtype}; use one of "
                        f"{sorted(str(d) for d in _CODES)}")
    if array.ndim == 0:
        raise ValueError("IDX needs at least one dimension")
    code = _CODES[native]
    head = bytes([0, 0, code, array.ndim]) + np.asarray(array.shape, dtype=">u4").tobytes()
    return head + np.ascontiguousarray(array, dtype=IDX_DTYPES[code]).tobytes()


def write_idx(array: np.ndarray, path: str | os.PathLike, compress: bool | None = None) -> Path:
    """Write ``array`` as an IDX file, atomically.

    Args:
        array: see :func:`encode_idx`.
        path: the destination.
        compress: gzip the file; by default when ``path`` ends in ``.gz``.

    Returns:
        The path written.
    """
    from flowgrad._atomic import atomic_write

    path = Path(path)
    data = encode_idx(array)
    if compress is None:
        compress = path.suffix == ".gz"
    if compress:
        # mtime=0 keeps the bytes (and so any digest of them) independent of the clock.
        data = gzip.compress(data, mtime=0)
    with atomic_write(path) as fh:
        fh.write(data)
    return path
