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
import stat
import zipfile
from collections.abc import Mapping
from pathlib import Path
from typing import IO, Any
from urllib.parse import quote

import numpy as np

from flowgrad import _backend
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
            # Host values from any device (an explicit copy back from a GPU).
            node = self._array("tensor", keys, np.asarray(_backend.to_host(obj.data)))
            node["requires_grad"] = bool(obj.requires_grad)
            return node
        if isinstance(obj, np.ndarray):
            return self._array("ndarray", keys, obj)
        if _backend.is_array(obj):  # a device array (an optimizer's state): saved as NumPy
            return self._array("ndarray", keys, _backend.to_host(obj))
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


def save(state_dict: Any, path: str | os.PathLike | IO[bytes]) -> None:
    """Write a state (nested dicts of Tensors, arrays and plain values) to ``path``.

    The file is an ``.npz`` archive with a JSON manifest (see the module docstring); it is
    written to exactly ``path`` (no extension is added) and atomically, so a crash or error
    mid-write leaves any previous file at ``path`` intact. As with ``torch.save``, ``path``
    may also be a writable binary file object (then the caller owns atomicity); a symlink
    is written through to its target, whose permission bits are kept; a folder, FIFO or
    device is refused. Tensors (and arrays) on any device are saved as host arrays, so a
    checkpoint made on a GPU loads anywhere.

    Args:
        state_dict: dicts (keys str, int, bool or None), lists and tuples, nesting freely,
            whose leaves are Tensors, NumPy arrays or scalars, Python ints, floats, bools,
            strings or None; e.g. ``{"model": model.state_dict(), "optimizer":
            opt.state_dict(), "epoch": 3}``.
        path: the destination file, or an open binary file.

    Raises:
        TypeError: a leaf or key of an unsupported type (an object array, a set, ...);
            the message gives its key path. Nothing is written then.
        ValueError: a state that contains itself.
        OSError: ``path`` is not a regular file or cannot be written; the message names
            ``path`` (never a temporary file).

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
    if hasattr(path, "write"):
        _write_npz(path, arrays)  # type: ignore[arg-type]
        return
    with atomic_write(path) as fh:  # type: ignore[arg-type]
        _write_npz(fh, arrays)


# ---------------------------------------------------------------- reading

#: How far one compressed member may inflate (uncompressed / compressed size). fg.save stores
#: members uncompressed (ratio 1); ``numpy.savez_compressed`` of real data stays far below.
MAX_INFLATION = 100
_LEEWAY = 1 << 20  # small members may compress better than MAX_INFLATION (a page of zeros)
_ARRAY_KINDS = ("tensor", "ndarray", "npscalar")
_VALUE_TYPES = {"bool": (bool,), "int": (int,), "str": (str,)}


def _bad(message: str) -> CheckpointError:
    return CheckpointError(message)


def _check_tree(node: Any, where: tuple, members: dict) -> None:
    """Refuse a manifest whose nodes have the wrong shape or leaf types, before any array is
    read; collect each array node's member (each may be named once) in ``members``."""
    at = _where(where)
    if not isinstance(node, dict) or not isinstance(node.get("t"), str):
        raise _bad(f"the manifest entry at {at} is not a node")
    kind = node["t"]
    if kind in _ARRAY_KINDS:
        name, dtype, shape = node.get("member"), node.get("dtype"), node.get("shape")
        if not isinstance(name, str) or not isinstance(dtype, str):
            raise _bad(f"the manifest entry at {at} names no member or dtype")
        if not isinstance(shape, list) or not all(
                type(n) is int and n >= 0 for n in shape):
            raise _bad(f"the manifest gives the array at {at} an invalid shape {shape!r}")
        if kind == "tensor" and not isinstance(node.get("requires_grad"), bool):
            raise _bad(f"the manifest entry at {at} has no bool requires_grad")
        if kind == "npscalar" and shape:
            raise _bad(f"the manifest gives the scalar at {at} the shape {shape}")
        try:
            parsed = np.dtype(dtype)
        except (TypeError, ValueError):
            raise _bad(f"the manifest gives the array at {at} an unknown dtype {dtype!r}") \
                from None
        if parsed.hasobject:
            raise _bad(f"the manifest gives the array at {at} an object dtype")
        if name in members:
            raise _bad(f"member {name!r} is named twice in the manifest")
        members[name] = (parsed, tuple(shape))
    elif kind == "none":
        pass
    elif kind in _VALUE_TYPES:
        value = node.get("v")
        if not isinstance(value, _VALUE_TYPES[kind]) or (kind == "int" and type(value) is bool):
            raise _bad(f"the manifest entry at {at} is a {kind} holding {value!r}")
    elif kind == "float":
        value = node.get("v")
        if not (isinstance(value, (int, float)) and type(value) is not bool) and \
                value not in ("inf", "-inf", "nan"):
            raise _bad(f"the manifest entry at {at} is a float holding {value!r}")
    elif kind == "dict":
        items = node.get("items")
        if not isinstance(items, list):
            raise _bad(f"the manifest entry at {at} is a dict without items")
        for item in items:
            if not (isinstance(item, list) and len(item) == 2 and
                    (item[0] is None or isinstance(item[0], (str, int)))):
                raise _bad(f"the manifest entry at {at} has an item that is not [key, value]")
            _check_tree(item[1], (*where, item[0]), members)
    elif kind in ("list", "tuple"):
        items = node.get("items")
        if not isinstance(items, list):
            raise _bad(f"the manifest entry at {at} is a {kind} without items")
        for i, item in enumerate(items):
            _check_tree(item, (*where, i), members)
    else:
        raise _bad(f"unknown node type {kind!r} in the manifest at {at}")


def _decode(node: Any, arrays: Mapping[str, np.ndarray], device: Any = None) -> Any:
    kind = node["t"]
    if kind in _ARRAY_KINDS:
        array = arrays[node["member"]]
        if kind == "tensor":
            return tensor(array, requires_grad=node["requires_grad"],
                          device=_backend.CPU if device is None else device)
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
        return {k: _decode(v, arrays, device) for k, v in node["items"]}
    if kind == "list":
        return [_decode(v, arrays, device) for v in node["items"]]
    return tuple(_decode(v, arrays, device) for v in node["items"])


def _open_member(zf: zipfile.ZipFile, info: zipfile.ZipInfo) -> IO[bytes]:
    """The member, opened for reading, after checking it cannot inflate without bound."""
    if info.compress_type != zipfile.ZIP_STORED and \
            info.file_size > MAX_INFLATION * info.compress_size + _LEEWAY:
        raise _bad(f"member {info.filename!r} would inflate from {info.compress_size} to "
                   f"{info.file_size} bytes, more than {MAX_INFLATION} times: refused as a "
                   "possible decompression bomb (fg.save writes members uncompressed)")
    return zf.open(info)


def _read_header(fh: IO[bytes], name: str) -> tuple[tuple, bool, np.dtype]:
    fmt = np.lib.format
    try:
        version = fmt.read_magic(fh)
        if version == (1, 0):
            shape, fortran, dtype = fmt.read_array_header_1_0(fh)
        elif version == (2, 0):
            shape, fortran, dtype = fmt.read_array_header_2_0(fh)
        else:
            raise ValueError(f"unsupported .npy format version {version}")
    except ValueError as exc:
        raise _bad(f"member {name!r} is not a NumPy array ({exc})") from None
    if dtype.hasobject:
        raise _bad(f"member {name!r} holds Python objects (pickled), which flowgrad never loads")
    return shape, fortran, dtype


def _read_array(zf: zipfile.ZipFile, info: zipfile.ZipInfo,
                expected: tuple[np.dtype, tuple] | None = None) -> np.ndarray:
    """One ``.npy`` member: its header checked (against the manifest's dtype and shape when
    given, and against the size the zip declares) before any data is read; the data read
    to the member's end, so its CRC-32 is checked."""
    name = info.filename
    with _open_member(zf, info) as fh:
        shape, fortran, dtype = _read_header(fh, name)
        if expected is not None and (dtype != expected[0] or shape != expected[1]):
            raise _bad(f"member {name!r} is {dtype.str}{list(shape)}, the manifest says "
                       f"{expected[0].str}{list(expected[1])}")
        nbytes = dtype.itemsize * math.prod(shape)
        if info.file_size != fh.tell() + nbytes:
            raise _bad(f"member {name!r} declares {info.file_size} bytes, but its header "
                       f"describes {fh.tell() + nbytes}")
        buffer = bytearray(nbytes)
        view, done = memoryview(buffer), 0
        while done < nbytes:
            n = fh.readinto(view[done:])
            if not n:
                raise _bad(f"member {name!r} is truncated")
            done += n
        if fh.read(1):  # also reaches the end, where zipfile checks the CRC-32
            raise _bad(f"member {name!r} is longer than its header says")
    if nbytes == 0:
        return np.zeros(shape, dtype=dtype, order="F" if fortran else "C")
    return np.frombuffer(buffer, dtype=dtype).reshape(shape, order="F" if fortran else "C")


def _read(fh: IO[bytes], device: Any = None) -> Any:
    with zipfile.ZipFile(fh) as zf:
        infos = {info.filename: info for info in zf.infolist()}
        manifest_info = infos.get(MANIFEST_KEY + ".npy")
        if manifest_info is None:
            # A plain .npz (numpy.savez): its arrays by name; nothing else may be in it.
            for name in infos:
                if not name.endswith(".npy"):
                    raise _bad(f"member {name!r} is not a .npy array (and there is no "
                               "flowgrad manifest)")
            return {name[:-4]: _read_array(zf, info) for name, info in sorted(infos.items())}
        raw = _read_array(zf, manifest_info)
        if raw.dtype != np.uint8 or raw.ndim != 1:
            raise _bad("the manifest member is not UTF-8 text")
        manifest = json.loads(raw.tobytes().decode("utf-8"))
        if not isinstance(manifest, dict) or manifest.get("format") != FORMAT:
            raise _bad("the manifest is not a flowgrad checkpoint manifest")
        version = manifest.get("version", 0)
        if not isinstance(version, int) or version > VERSION:
            raise _bad(f"format version {version!r} is newer than this flowgrad reads "
                       f"({VERSION}); upgrade flowgrad")
        members: dict[str, tuple[np.dtype, tuple]] = {}
        _check_tree(manifest.get("tree"), (), members)
        arrays = {}
        # Only the members the manifest names are read; anything else in the zip is ignored.
        for name, expected in members.items():
            info = infos.get(name + ".npy")
            if info is None:
                raise _bad(f"member {name!r} named by the manifest is missing")
            arrays[name] = _read_array(zf, info, expected)
    return _decode(manifest["tree"], arrays, device)


def load(path: str | os.PathLike, map_location: Any = None) -> Any:
    """Read a checkpoint written by :func:`save`.

    Tensors come back as flowgrad Tensors (with their ``requires_grad``) on the device
    ``map_location`` names (default: ``cpu``, whatever device they were saved from), arrays
    as NumPy arrays, NumPy scalars as NumPy scalars, and everything else as it was saved:
    dtypes, shapes, tuples versus lists and int versus str dict keys are all kept. A plain
    ``.npz`` without a manifest loads as a dict of its arrays.

    Loading a file from elsewhere is safe: nothing is unpickled, only the members the
    manifest names are read, each member's dtype and shape are checked against the
    manifest and its size against the zip's directory *before* its data is read, and a
    compressed member that would inflate more than :data:`MAX_INFLATION` times is refused,
    so memory stays bounded by the file's size.

    Args:
        path: the checkpoint file.
        map_location: where to put the tensors: a device or a string such as ``"cuda"``.

    Returns:
        The saved state.

    Raises:
        FileNotFoundError: no file at ``path``.
        IsADirectoryError, OSError: ``path`` is a folder, a FIFO, a device (not read).
        CheckpointError: (a ``ValueError``) the file is truncated, corrupted (a CRC-32,
            structure or manifest mismatch), a possible decompression bomb, or not a
            checkpoint; the message names ``path``.
    """
    device = None if map_location is None else _backend.as_device(map_location)
    path = Path(path)
    try:
        st = os.stat(path)
    except FileNotFoundError:
        raise FileNotFoundError(errno.ENOENT, f"no checkpoint file at {path}", str(path)) \
            from None
    if not stat.S_ISREG(st.st_mode):
        # Opening a FIFO would block until a writer comes; a device could be endless.
        what = "a folder" if stat.S_ISDIR(st.st_mode) else \
            "a named pipe (FIFO)" if stat.S_ISFIFO(st.st_mode) else "not a regular file"
        kind = IsADirectoryError if stat.S_ISDIR(st.st_mode) else OSError
        exc = kind(f"cannot load {path}: it is {what}, not a checkpoint file")
        exc.errno = errno.EISDIR if stat.S_ISDIR(st.st_mode) else errno.EINVAL
        raise exc
    with open(path, "rb") as fh:
        try:
            return _read(fh, device)
        except CheckpointError as exc:
            raise CheckpointError(f"checkpoint {path} is corrupt or unsafe: {exc}") from exc
        except RecursionError:
            raise CheckpointError(f"checkpoint {path} is corrupt: its manifest nests too "
                                  "deeply") from None
        except Exception as exc:  # any parse failure of the bytes means a damaged file
            raise CheckpointError(f"checkpoint {path} is corrupt or truncated "
                                  f"({type(exc).__name__}: {exc})") from exc
