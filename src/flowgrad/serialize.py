"""Checkpoints without pickle: ``save(state_dict, path)`` and ``load(path)``.

A checkpoint is one ordinary ``.npz`` archive (readable with ``numpy.load(path,
allow_pickle=False)``): every array or Tensor in the state becomes one ``.npy`` member, and
a JSON manifest member, ``__flowgrad_manifest__``, records the structure: the nested dicts
(with their key types, so optimizer states keyed by int come back keyed by int), lists and
tuples, which leaves were Tensors, and the plain Python values (numbers, bools, strings,
None) themselves. Nothing is ever unpickled, so loading a checkpoint cannot run code.

Writes are atomic (:func:`flowgrad._atomic.atomic_write`): the archive goes to a temporary
file in the same folder, is flushed and fsynced, then renamed over the destination, so a
crash mid-write leaves the previous checkpoint intact. Every member's CRC-32 is checked on
load, so a truncated or corrupted file raises :class:`CheckpointError` instead of loading
wrong values.
"""

from __future__ import annotations

import errno
import json
import math
import os
import zipfile
from collections.abc import Mapping
from pathlib import Path
from typing import IO, Any
from urllib.parse import quote

import numpy as np

from flowgrad._atomic import atomic_write
from flowgrad.creation import tensor
from flowgrad.tensor import Tensor

MANIFEST_KEY = "__flowgrad_manifest__"
FORMAT = "flowgrad.checkpoint"
VERSION = 1


class CheckpointError(ValueError):
    """A checkpoint file that is truncated, corrupted or not a flowgrad checkpoint."""


def _where(keys: tuple) -> str:
    return "".join(f"[{k!r}]" for k in keys) or "the top level"


class _Encoder:
    """Turns a state into a JSON-able tree plus a dict of arrays to store as members."""

    def __init__(self) -> None:
        self.arrays: dict[str, np.ndarray] = {}
        self._active: set[int] = set()

    def _member(self, keys: tuple, array: np.ndarray) -> str:
        # Readable member names ("model/fc1.weight") for people inspecting the .npz; the
        # manifest records each name, so loading never parses them.
        # surrogatepass: a str key need not be valid Unicode (a lone surrogate) to be saved.
        base = "/".join(quote(str(k), safe=".-_~ ", errors="surrogatepass") for k in keys) or "_"
        name, n = base, 1
        while name in self.arrays or name == MANIFEST_KEY:
            name, n = f"{base}~{n}", n + 1
        self.arrays[name] = array
        return name

    def _array(self, kind: str, keys: tuple, array: np.ndarray) -> dict:
        if array.dtype.hasobject:
            raise TypeError(f"cannot save an object array at {_where(keys)}: only numeric, "
                            "bool and fixed-width string arrays can be stored without pickle")
        return {"t": kind, "member": self._member(keys, array),
                "dtype": array.dtype.str, "shape": list(array.shape)}

    def encode(self, obj: Any, keys: tuple = ()) -> dict:
        if isinstance(obj, Tensor):
            node = self._array("tensor", keys, np.asarray(obj.numpy()))
            node["requires_grad"] = bool(obj.requires_grad)
            return node
        if isinstance(obj, np.ndarray):
            return self._array("ndarray", keys, obj)
        if isinstance(obj, np.generic):
            return self._array("npscalar", keys, np.asarray(obj))
        if obj is None:
            return {"t": "none"}
        if isinstance(obj, bool):
            return {"t": "bool", "v": obj}
        if isinstance(obj, int):
            return {"t": "int", "v": obj}
        if isinstance(obj, float):
            # JSON has no inf/nan; repr() of every finite float reads back exactly.
            return {"t": "float", "v": obj if math.isfinite(obj) else repr(obj)}
        if isinstance(obj, str):
            return {"t": "str", "v": obj}
        if isinstance(obj, (Mapping, list, tuple)):
            if id(obj) in self._active:
                raise ValueError(f"cannot save a state that contains itself (at {_where(keys)})")
            self._active.add(id(obj))
            try:
                if isinstance(obj, Mapping):
                    items = []
                    for k, v in obj.items():
                        if not (k is None or isinstance(k, (str, int))):
                            raise TypeError(f"cannot save a dict key of type "
                                            f"{type(k).__name__} ({k!r}) at {_where(keys)}; "
                                            "keys must be str, int, bool or None")
                        items.append([k, self.encode(v, (*keys, k))])
                    return {"t": "dict", "items": items}
                return {"t": "tuple" if isinstance(obj, tuple) else "list",
                        "items": [self.encode(v, (*keys, i)) for i, v in enumerate(obj)]}
            finally:
                self._active.discard(id(obj))
        raise TypeError(f"cannot save a value of type {type(obj).__name__} at {_where(keys)}; "
                        "a state holds dicts, lists, tuples, Tensors, arrays, numbers, bools, "
                        "strings and None")


def _write_npz(fh: IO[bytes], arrays: Mapping[str, np.ndarray]) -> None:
    # What numpy.savez does, minus its **kwargs, so member names like "file" cannot collide
    # with its parameters.
    with zipfile.ZipFile(fh, "w", compression=zipfile.ZIP_STORED, allowZip64=True) as zf:
        for name, array in arrays.items():
            with zf.open(name + ".npy", "w", force_zip64=True) as member:
                np.lib.format.write_array(member, np.asanyarray(array), allow_pickle=False)


def save(state_dict: Any, path: str | os.PathLike) -> None:
    """Write a state (nested dicts of Tensors, arrays and plain values) to ``path``.

    The file is an ``.npz`` archive with a JSON manifest (see the module docstring); it is
    written to exactly ``path`` (no extension is added) and atomically, so a crash or error
    mid-write leaves any previous file at ``path`` intact.

    Args:
        state_dict: dicts (keys str, int, bool or None), lists and tuples, nesting freely,
            whose leaves are Tensors, NumPy arrays or scalars, Python ints, floats, bools,
            strings or None; e.g. ``{"model": model.state_dict(), "optimizer":
            opt.state_dict(), "epoch": 3}``.
        path: the destination file.

    Raises:
        TypeError: a leaf or key of an unsupported type (an object array, a set, ...);
            the message gives its key path. Nothing is written then.
        ValueError: a state that contains itself.

    Example:
        >>> import flowgrad as fg
        >>> fg.save({"w": fg.tensor([1.0, 2.0]), "step": 3}, "ckpt.npz")  # doctest: +SKIP
        >>> fg.load("ckpt.npz")["step"]  # doctest: +SKIP
        3
    """
    encoder = _Encoder()
    tree = encoder.encode(state_dict)
    manifest = json.dumps({"format": FORMAT, "version": VERSION, "tree": tree},
                          allow_nan=False, separators=(",", ":"))
    arrays = {MANIFEST_KEY: np.frombuffer(manifest.encode("utf-8"), dtype=np.uint8)}
    arrays.update(encoder.arrays)
    with atomic_write(path) as fh:
        _write_npz(fh, arrays)


def _decode(node: Any, arrays: Mapping[str, np.ndarray]) -> Any:
    kind = node["t"]
    if kind in ("tensor", "ndarray", "npscalar"):
        array = arrays[node["member"]]
        if array.dtype.str != node["dtype"] or list(array.shape) != node["shape"]:
            raise CheckpointError(f"member {node['member']!r} is {array.dtype.str}"
                                  f"{list(array.shape)}, the manifest says "
                                  f"{node['dtype']}{node['shape']}")
        if kind == "tensor":
            return tensor(array, requires_grad=node["requires_grad"])
        if kind == "npscalar":
            return array[()]
        return array
    if kind == "none":
        return None
    if kind in ("bool", "int", "str"):
        return node["v"]
    if kind == "float":
        return float(node["v"])
    if kind == "dict":
        return {k: _decode(v, arrays) for k, v in node["items"]}
    if kind == "list":
        return [_decode(v, arrays) for v in node["items"]]
    if kind == "tuple":
        return tuple(_decode(v, arrays) for v in node["items"])
    raise CheckpointError(f"unknown node type {kind!r} in the manifest")


def _read(fh: IO[bytes]) -> Any:
    with zipfile.ZipFile(fh) as zf:
        bad = zf.testzip()  # reads every member and checks its CRC-32
        if bad is not None:
            raise CheckpointError(f"member {bad!r} fails its CRC-32 check")
        names = {n[:-4] for n in zf.namelist() if n.endswith(".npy")}
    fh.seek(0)
    with np.load(fh, allow_pickle=False) as npz:
        if MANIFEST_KEY not in names:
            # A plain .npz (numpy.savez): its arrays by name.
            return {name: npz[name] for name in sorted(names)}
        manifest = json.loads(npz[MANIFEST_KEY].tobytes().decode("utf-8"))
        if not isinstance(manifest, dict) or manifest.get("format") != FORMAT:
            raise CheckpointError("the manifest is not a flowgrad checkpoint manifest")
        if manifest.get("version", 0) > VERSION:
            raise CheckpointError(f"format version {manifest['version']} is newer than this "
                                  f"flowgrad reads ({VERSION}); upgrade flowgrad")
        arrays = {name: npz[name] for name in names if name != MANIFEST_KEY}
    return _decode(manifest["tree"], arrays)


def load(path: str | os.PathLike) -> Any:
    """Read a checkpoint written by :func:`save`.

    Tensors come back as flowgrad Tensors (with their ``requires_grad``), arrays as NumPy
    arrays, NumPy scalars as NumPy scalars, and everything else as it was saved: dtypes,
    shapes, tuples versus lists and int versus str dict keys are all kept. A plain ``.npz``
    without a manifest loads as a dict of its arrays.

    Args:
        path: the checkpoint file.

    Returns:
        The saved state.

    Raises:
        FileNotFoundError: no file at ``path``.
        CheckpointError: (a ``ValueError``) the file is truncated, corrupted (a CRC-32,
            structure or manifest mismatch) or not a checkpoint; the message names ``path``.
    """
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(errno.ENOENT, f"no checkpoint file at {path}", str(path))
    with open(path, "rb") as fh:
        try:
            return _read(fh)
        except CheckpointError as exc:
            raise CheckpointError(f"checkpoint {path} is corrupt: {exc}") from exc
        except Exception as exc:  # any parse failure of the bytes means a damaged file
            raise CheckpointError(f"checkpoint {path} is corrupt or truncated "
                                  f"({type(exc).__name__}: {exc})") from exc
